package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"regexp"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/auditledger/auditledger/ledger"
	"github.com/auditledger/auditledger/ledger/bus"
	"github.com/auditledger/auditledger/ledger/storeurl"
	"github.com/auditledger/auditledger/ledger/writer"
)

// ledgerRole is the ledger role: the writer, which seals what the bus holds
// into segments of the store and signs checkpoints. It connects to the bus
// as bus.Ledger.
type ledgerRole struct {
	Store    string   `yaml:"store"`
	Key      string   `yaml:"key"`
	Consumer string   `yaml:"consumer"`
	Index    string   `yaml:"index"`
	Batch    int      `yaml:"batch"`
	MaxWait  duration `yaml:"max_wait"`
	LeaseTTL duration `yaml:"lease_ttl"`
	// Producers is the registry of producer verifier keys (one per
	// line); RequireSigned rejects unsigned events.
	Producers     string `yaml:"producers"`
	RequireSigned bool   `yaml:"require_signed"`
	// TenantRetention is how long each listed tenant's records stay
	// locked (7y, 30d, 36h); tenants not listed get the store URL's
	// retention. A segment is locked for the longest among its tenants.
	TenantRetention map[string]string `yaml:"tenant_retention"`
	// ClockSource names the time source the host's clock follows (e.g.
	// "chrony: time.example.com"), which the kernel does not know: it is
	// sealed with the clock's status (ledger.clock.status) at start and
	// hourly.
	ClockSource string `yaml:"clock_source"`
	// VerifyEvery is how often the writer verifies the whole log (every
	// record, the chain, each checkpoint's signature) beside sealing and
	// seals what it found as a ledger.verification record: when it
	// starts on a log that holds records, then every VerifyEvery (default
	// 24h); on a new (empty) log, first one VerifyEvery after the start.
	VerifyEvery duration `yaml:"verify_every"`
}

// tenantName is the tenant alphabet of docs/FORMAT.md §1.
var tenantName = regexp.MustCompile(`^[a-z0-9_-]{1,64}$`)

// parseTenantRetention reads AUDITLEDGER_LEDGER_TENANT_RETENTION:
// tenant=retention pairs separated by commas.
func parseTenantRetention(v string) (map[string]string, error) {
	m := map[string]string{}
	for _, kv := range strings.Split(v, ",") {
		t, d, ok := strings.Cut(strings.TrimSpace(kv), "=")
		if !ok || t == "" || d == "" {
			return nil, fmt.Errorf("%q: want tenant=retention pairs separated by commas (acme=7y,beta=30d)", kv)
		}
		m[t] = d
	}
	return m, nil
}

func (c *ledgerRole) setDefaults() {
	c.Consumer = "ledger"
	c.Batch = 5000
	c.MaxWait = duration(250 * time.Millisecond)
	c.LeaseTTL = duration(5 * time.Second)
	c.VerifyEvery = duration(24 * time.Hour)
}

func (c *ledgerRole) envOverrides() []envOverride {
	return []envOverride{
		{"AUDITLEDGER_LEDGER_PRODUCERS", func(v string) error { c.Producers = v; return nil }},
		{"AUDITLEDGER_LEDGER_REQUIRE_SIGNED", func(v string) (err error) { c.RequireSigned, err = strconv.ParseBool(v); return }},
		{"AUDITLEDGER_LEDGER_STORE", func(v string) error { c.Store = v; return nil }},
		{"AUDITLEDGER_LEDGER_KEY", func(v string) error { c.Key = v; return nil }},
		{"AUDITLEDGER_LEDGER_CONSUMER", func(v string) error { c.Consumer = v; return nil }},
		{"AUDITLEDGER_LEDGER_BATCH", func(v string) (err error) { c.Batch, err = strconv.Atoi(v); return }},
		{"AUDITLEDGER_LEDGER_MAX_WAIT", func(v string) error { return setDuration(&c.MaxWait, v) }},
		{"AUDITLEDGER_LEDGER_INDEX", func(v string) error { c.Index = v; return nil }},
		{"AUDITLEDGER_LEDGER_LEASE_TTL", func(v string) error { return setDuration(&c.LeaseTTL, v) }},
		{"AUDITLEDGER_LEDGER_TENANT_RETENTION", func(v string) (err error) { c.TenantRetention, err = parseTenantRetention(v); return }},
		{"AUDITLEDGER_LEDGER_CLOCK_SOURCE", func(v string) error { c.ClockSource = v; return nil }},
		{"AUDITLEDGER_LEDGER_VERIFY_EVERY", func(v string) error { return setDuration(&c.VerifyEvery, v) }},
	}
}

func (*ledgerRole) stopsLast() {}

func (c *ledgerRole) check(*serveConfig) error {
	switch {
	case c.Store == "":
		return fmt.Errorf("ledger.store: required (a directory or s3://bucket/prefix?endpoint=...)")
	case c.Key == "":
		return fmt.Errorf("ledger.key: required (a key file from `auditledger keys generate`)")
	case c.Batch < 1:
		return fmt.Errorf("ledger.batch: must be positive")
	case c.RequireSigned && c.Producers == "":
		return fmt.Errorf("ledger.require_signed needs ledger.producers, the registry of producer keys")
	case c.VerifyEvery < duration(time.Second):
		return fmt.Errorf("ledger.verify_every: at least 1s (how often the writer verifies the whole log)")
	case c.MaxWait <= 0 || c.LeaseTTL < duration(time.Second):
		return fmt.Errorf("ledger.max_wait must be positive and ledger.lease_ttl at least 1s")
	case len(c.TenantRetention) > 0 && !strings.HasPrefix(c.Store, "s3://"):
		return fmt.Errorf("ledger.tenant_retention: the store %s is a local directory, which cannot enforce a retention; per-tenant retention needs an s3:// store with Object Lock", c.Store)
	}
	_, err := c.tenantRetention()
	return err
}

// tenantRetention parses ledger.tenant_retention.
func (c *ledgerRole) tenantRetention() (map[string]time.Duration, error) {
	var out map[string]time.Duration
	for t, v := range c.TenantRetention {
		if !tenantName.MatchString(t) {
			return nil, fmt.Errorf("ledger.tenant_retention: %q is not a tenant (lower-case letters, digits, - and _, at most 64)", t)
		}
		d, err := storeurl.ParseRetention(v)
		if err != nil {
			return nil, fmt.Errorf("ledger.tenant_retention.%s: %w", t, err)
		}
		if out == nil {
			out = map[string]time.Duration{}
		}
		out[t] = d
	}
	return out, nil
}

func (c *ledgerRole) prepare(ctx context.Context, e *env, log *slog.Logger) (func(context.Context) error, error) {
	_, js, err := e.dial.Connect(bus.Ledger)
	if err != nil {
		return nil, err
	}
	log.Info("connected to the bus", "bus_role", bus.Ledger)
	signer, err := loadSigner(c.Key)
	if err != nil {
		return nil, err
	}
	store, err := storeurl.Open(ctx, c.Store)
	if err != nil {
		return nil, err
	}
	// A local store is probed for writing now, not at the first seal. (An
	// S3 store is not: a probe object would stay locked for the bucket's
	// default retention; /readyz reports failing seals.)
	if w, ok := store.Store.(interface{ CheckWritable() error }); ok {
		if err := w.CheckWritable(); err != nil {
			return nil, fmt.Errorf("ledger.store: %w", err)
		}
	}
	var producers *ledger.Producers
	if c.Producers != "" {
		b, err := os.ReadFile(c.Producers)
		if err != nil {
			return nil, fmt.Errorf("ledger.producers: %w", err)
		}
		if producers, err = ledger.ParseProducers(string(b)); err != nil {
			return nil, fmt.Errorf("ledger.producers %s: %w", c.Producers, err)
		}
	}
	// The index is this process's alone while it runs: a second serve on
	// it is refused naming the first, not left to the index's own lock.
	unlock := func() {}
	if c.Index != "" {
		if err := os.MkdirAll(c.Index, 0o700); err != nil {
			return nil, fmt.Errorf("ledger.index: %w", err)
		}
		if unlock, err = lockDir(c.Index); err != nil {
			return nil, fmt.Errorf("ledger.index: %w", err)
		}
	}
	tenantRetention, err := c.tenantRetention()
	if err != nil {
		return nil, err
	}
	log.Info("ledger writer starting", "store", store.Store.String(), "origin", signer.Name(),
		"producers", producers.Len(), "require_signed", c.RequireSigned, "retention", store.Retention, "tenant_retention", len(tenantRetention))
	source := "ledger.tenant_retention and the store URL's retention"
	if e.cfg.path != "" {
		source += " in " + e.cfg.path
	}
	nats := e.cfg.NATS
	return func(ctx context.Context) error {
		defer unlock()
		var leading atomic.Bool
		wctx, stop := context.WithCancel(context.WithoutCancel(ctx))
		defer stop()
		// Stopping, the writer first seals what the bus holds already —
		// the last events of the roles that stopped before it — for up
		// to five seconds; a standby just stops.
		defer context.AfterFunc(ctx, func() {
			if leading.Load() {
				drainConsumer(js, c.consumer(), 5*time.Second, log)
			}
			stop()
		})()
		return writer.Run(wctx, writer.Config{
			JetStream: js, Store: store.Store, Signer: signer, Retention: store.Retention,
			TenantRetention: tenantRetention, RetentionSource: source,
			Streams:  bus.StreamOptions{Replicas: nats.Replicas, Duplicates: time.Duration(nats.Duplicates)},
			Consumer: c.Consumer, BatchSize: c.Batch, MaxWait: time.Duration(c.MaxWait),
			LeaseTTL: time.Duration(c.LeaseTTL), Logger: log, Health: e.health, NewLog: e.cfg.newLog, IndexDir: c.Index,
			Producers: producers, RequireSigned: c.RequireSigned,
			Clock: func() ledger.ClockStatus { return ledger.ReadClockStatus(c.ClockSource) },
			Verify: func(ctx context.Context, known uint64) (ledger.Verification, bool) {
				return ledger.VerifyWhole(ctx, store.Store, signer.Verifier(), known)
			},
			VerifyEvery: time.Duration(c.VerifyEvery),
			OnWriter: func(l *ledger.Log) {
				leading.Store(true)
				if e.onWriter != nil {
					e.onWriter(l)
				}
			},
		})
	}, nil
}

func (c *ledgerRole) consumer() string {
	if c.Consumer == "" {
		return "ledger"
	}
	return c.Consumer
}

// drainConsumer waits until the writer's consumer has nothing pending or
// unacknowledged on AUDIT_EVENTS, for at most d.
func drainConsumer(js jetstream.JetStream, name string, d time.Duration, log *slog.Logger) {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	for {
		cons, err := js.Consumer(ctx, bus.EventsStream, name)
		if err == nil {
			var info *jetstream.ConsumerInfo
			if info, err = cons.Info(ctx); err == nil && info.NumPending == 0 && info.NumAckPending == 0 {
				return
			}
		}
		select {
		case <-ctx.Done():
			log.Warn("stopping before the bus was drained: the rest is sealed at the next start", "waited", d, "err", err)
			return
		case <-time.After(50 * time.Millisecond):
		}
	}
}
