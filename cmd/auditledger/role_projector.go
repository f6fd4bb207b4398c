package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/auditledger/auditledger/ledger"
	"github.com/auditledger/auditledger/ledger/storeurl"
	"github.com/auditledger/auditledger/projections"
)

// projectorRole is the projector role: applies each sealed segment,
// verified, to the PostgreSQL projection ($AUDITLEDGER_DATABASE_URL). It
// reads the store, not the bus.
type projectorRole struct {
	Store       string   `yaml:"store"`
	VKey        string   `yaml:"vkey"`
	Name        string   `yaml:"name"`
	Poll        duration `yaml:"poll"`
	VerifyEvery duration `yaml:"verify_every"`
}

func (c *projectorRole) setDefaults() {
	c.Poll = duration(200 * time.Millisecond)
	c.VerifyEvery = duration(24 * time.Hour)
}

func (c *projectorRole) envOverrides() []envOverride {
	return []envOverride{
		{"AUDITLEDGER_PROJECTOR_STORE", func(v string) error { c.Store = v; return nil }},
		{"AUDITLEDGER_PROJECTOR_VKEY", func(v string) error { c.VKey = v; return nil }},
		{"AUDITLEDGER_PROJECTOR_POLL", func(v string) error { return setDuration(&c.Poll, v) }},
		{"AUDITLEDGER_PROJECTOR_VERIFY_EVERY", func(v string) error { return setDuration(&c.VerifyEvery, v) }},
	}
}

func (c *projectorRole) check(cfg *serveConfig) error {
	if c.VKey == "" {
		return fmt.Errorf("projector.vkey: required (the log's verifier key: the projector checks every segment before applying it)")
	}
	if c.Store == "" && cfg.Ledger.Store == "" {
		return fmt.Errorf("projector.store: required (or ledger.store)")
	}
	return nil
}

func (c *projectorRole) prepare(ctx context.Context, e *env, log *slog.Logger) (func(context.Context) error, error) {
	database := e.cfg.databaseURL()
	if database == "" {
		return nil, errors.New("set AUDITLEDGER_DATABASE_URL to the projection database's postgres:// URL")
	}
	v, err := loadVerifier(c.VKey)
	if err != nil {
		return nil, fmt.Errorf("projector.vkey: %w", err)
	}
	url := c.Store
	if url == "" {
		url = e.cfg.Ledger.Store
	}
	store, err := storeurl.Open(ctx, url)
	if err != nil {
		return nil, fmt.Errorf("projector.store: %w", err)
	}
	db, err := pgxpool.New(ctx, database)
	if err != nil {
		return nil, fmt.Errorf("AUDITLEDGER_DATABASE_URL: %w", err)
	}
	var applied atomic.Uint64
	var started atomic.Bool // the cursor of earlier runs is read: applied is the projection's size
	segments := prometheus.NewCounter(prometheus.CounterOpts{Name: "auditledger_projector_segments_total", Help: "segments the projector applied"})
	e.health.Registry().MustRegister(segments, prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "auditledger_projector_applied",
		Help: "records applied to the projection (its size)"}, func() float64 { return float64(applied.Load()) }))
	e.health.AddReadiness("projector", func() (string, error) {
		pctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		if err := db.Ping(pctx); err != nil {
			return "", fmt.Errorf("projection database unreachable: %v", err)
		}
		if !started.Load() {
			return "", errors.New("reading the projection's cursor")
		}
		return fmt.Sprintf("applied %d records", applied.Load()), nil
	})
	log.Info("projector starting", "store", store.Store.String())
	return func(ctx context.Context) error {
		defer db.Close()
		if pos, err := projections.Cursor(ctx, db, c.Name); err == nil {
			applied.Store(pos.Size) // what earlier runs applied
			started.Store(true)
		}
		return projections.Run(ctx, projections.Config{DB: db, Store: store.Store, Verifier: v, Name: c.Name, Poll: time.Duration(c.Poll), Logger: log,
			Applied:     func(p ledger.Position) { applied.Store(p.Size); started.Store(true); segments.Inc() },
			VerifyEvery: time.Duration(c.VerifyEvery), Retention: store.Retention})
	}, nil
}
