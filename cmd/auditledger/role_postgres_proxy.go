package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strings"

	"github.com/auditledger/auditledger/ledger/bus"
	"github.com/auditledger/auditledger/services/pgproxy"
	"github.com/auditledger/auditledger/services/telemetry"
)

// postgresProxyRole is the postgres-proxy role: the PostgreSQL gateway
// (services/pgproxy). It connects to the bus as bus.Proxy, or as its
// producer when the keys directory holds that producer's seed. The upstream
// URL, which holds the proxy's credentials, is read from
// $AUDITLEDGER_PROXY_UPSTREAM.
type postgresProxyRole struct {
	Listen     string `yaml:"listen"`
	Policy     string `yaml:"policy"`
	Target     string `yaml:"target"`
	Durability string `yaml:"durability"`
	FailOpen   bool   `yaml:"fail_open"`
	Spool      string `yaml:"spool"`
	TLSCert    string `yaml:"tls_cert"`
	TLSKey     string `yaml:"tls_key"`
	RequireTLS bool   `yaml:"require_tls"`

	// Databases clients may name; empty: the upstream URL's only.
	Databases []string `yaml:"databases"`

	// StateDir holds the journal of open sessions, so that sessions a
	// crash left open are recorded as ended, lost, at the next start;
	// empty: no journal.
	StateDir string `yaml:"state_dir"`
}

func (c *postgresProxyRole) setDefaults() {
	c.Listen, c.Durability = defaultPGProxyAddr, "before-forward"
}

func (c *postgresProxyRole) envOverrides() []envOverride {
	return []envOverride{
		{"AUDITLEDGER_POSTGRES_PROXY_LISTEN", func(v string) error { c.Listen = v; return nil }},
		{"AUDITLEDGER_POSTGRES_PROXY_POLICY", func(v string) error { c.Policy = v; return nil }},
		{"AUDITLEDGER_POSTGRES_PROXY_DATABASES", func(v string) error { c.Databases = strings.Split(v, ","); return nil }},
		{"AUDITLEDGER_POSTGRES_PROXY_STATE_DIR", func(v string) error { c.StateDir = v; return nil }},
	}
}

func (c *postgresProxyRole) failsOpen() bool { return c.FailOpen }

func (c *postgresProxyRole) check(cfg *serveConfig) error {
	if cfg.OIDC.Issuer == "" && cfg.auth == nil {
		return fmt.Errorf("oidc.issuer: required by the postgres-proxy role (the provider whose tokens clients present)")
	}
	if c.FailOpen && c.Spool == "" {
		return fmt.Errorf("postgres_proxy.fail_open needs postgres_proxy.spool")
	}
	if c.Durability == string(pgproxy.LocalJournal) && c.Spool == "" {
		return fmt.Errorf("postgres_proxy.durability local-journal needs postgres_proxy.spool, the journal's directory on this host")
	}
	return nil
}

func (c *postgresProxyRole) prepare(ctx context.Context, e *env, log *slog.Logger) (func(context.Context) error, error) {
	upstream := os.Getenv("AUDITLEDGER_PROXY_UPSTREAM")
	if upstream == "" {
		return nil, errors.New("set AUDITLEDGER_PROXY_UPSTREAM to the target's postgres:// URL (with the credentials the proxy uses)")
	}
	var pol *pgproxy.Policy
	if c.Policy != "" {
		var err error
		if pol, err = pgproxy.LoadPolicy(c.Policy); err != nil {
			return nil, err
		}
	}
	tlsCfg, err := loadTLS(c.TLSCert, c.TLSKey)
	if err != nil {
		return nil, fmt.Errorf("postgres_proxy: %w", err)
	}
	p, err := e.producer(ctx, recording{role: "postgres-proxy", principal: bus.Proxy, spool: c.Spool, failOpen: c.FailOpen,
		journal: c.Durability == string(pgproxy.LocalJournal)}, log)
	if err != nil {
		return nil, err
	}
	aw, runAccess, err := e.accessWatcher(ctx, p, c.Policy, "postgres-proxy", log)
	if err != nil {
		p.em.Close()
		return nil, err
	}
	px, err := pgproxy.New(pgproxy.Config{Upstream: upstream, Auth: p.auth, Emitter: p.em, Tenant: e.cfg.Tenant, Instance: e.cfg.instanceName(),
		Target: c.Target, Databases: c.Databases, Policy: pol, Approvals: p.broker, Access: aw, Keys: p.keys, FailOpen: c.FailOpen, Durability: pgproxy.Durability(c.Durability),
		TLS: tlsCfg, RequireTLS: c.RequireTLS, StateDir: c.StateDir, Logger: log, Metrics: telemetry.NewProxy(e.health.Registry(), "postgres")})
	if err != nil {
		p.em.Close()
		return nil, err
	}
	ln, err := e.listen("postgres-proxy", c.Listen, p, c.FailOpen)
	if err != nil {
		return nil, fmt.Errorf("postgres_proxy.listen: %w", err)
	}
	log.Info("PostgreSQL proxy listening", "addr", ln.Addr().String(), "tls", tlsCfg != nil)
	return func(ctx context.Context) error {
		if runAccess != nil {
			go runAccess(ctx)
		}
		return p.closing(func() error { return px.Serve(ctx, ln) })
	}, nil
}
