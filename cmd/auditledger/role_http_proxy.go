package main

import (
	"context"
	"crypto/tls"
	"fmt"
	"log/slog"
	"net/http"
	"os"

	"github.com/auditledger/auditledger/internal/health"
	"github.com/auditledger/auditledger/ledger/bus"
	"github.com/auditledger/auditledger/services/httpproxy"
	"github.com/auditledger/auditledger/services/telemetry"
)

// httpProxyRole is the http-proxy role: the HTTP gateway
// (services/httpproxy). It connects to the bus as bus.Proxy, or as its
// producer when the keys directory holds that producer's seed. An
// Authorization header for the upstream is read from
// $AUDITLEDGER_PROXY_UPSTREAM_AUTHORIZATION.
type httpProxyRole struct {
	Listen   string `yaml:"listen"`
	Upstream string `yaml:"upstream"`
	Policy   string `yaml:"policy"`
	Target   string `yaml:"target"`
	FailOpen bool   `yaml:"fail_open"`
	Spool    string `yaml:"spool"`
	TLSCert  string `yaml:"tls_cert"`
	TLSKey   string `yaml:"tls_key"`
}

func (c *httpProxyRole) setDefaults() { c.Listen = defaultHTTPProxyAddr }

func (c *httpProxyRole) envOverrides() []envOverride {
	return []envOverride{
		{"AUDITLEDGER_HTTP_PROXY_LISTEN", func(v string) error { c.Listen = v; return nil }},
		{"AUDITLEDGER_HTTP_PROXY_UPSTREAM", func(v string) error { c.Upstream = v; return nil }},
		{"AUDITLEDGER_HTTP_PROXY_POLICY", func(v string) error { c.Policy = v; return nil }},
	}
}

func (c *httpProxyRole) failsOpen() bool { return c.FailOpen }

func (c *httpProxyRole) check(cfg *serveConfig) error {
	switch {
	case cfg.OIDC.Issuer == "" && cfg.auth == nil:
		return fmt.Errorf("oidc.issuer: required by the http-proxy role (the provider whose tokens clients present)")
	case c.Upstream == "":
		return fmt.Errorf("http_proxy.upstream: required by the http-proxy role")
	case c.FailOpen && c.Spool == "":
		return fmt.Errorf("http_proxy.fail_open needs http_proxy.spool")
	}
	return nil
}

func (c *httpProxyRole) prepare(ctx context.Context, e *env, log *slog.Logger) (func(context.Context) error, error) {
	var pol *httpproxy.Policy
	if c.Policy != "" {
		var err error
		if pol, err = httpproxy.LoadPolicy(c.Policy); err != nil {
			return nil, err
		}
	}
	tlsCfg, err := loadTLS(c.TLSCert, c.TLSKey)
	if err != nil {
		return nil, fmt.Errorf("http_proxy: %w", err)
	}
	headers := http.Header{}
	if v := os.Getenv("AUDITLEDGER_PROXY_UPSTREAM_AUTHORIZATION"); v != "" {
		headers.Set("Authorization", v)
	}
	p, err := e.producer(ctx, recording{role: "http-proxy", principal: bus.Proxy, spool: c.Spool, failOpen: c.FailOpen}, log)
	if err != nil {
		return nil, err
	}
	aw, runAccess, err := e.accessWatcher(ctx, p, c.Policy, "http-proxy", log)
	if err != nil {
		p.em.Close()
		return nil, err
	}
	px, err := httpproxy.New(httpproxy.Config{Upstream: c.Upstream, UpstreamHeaders: headers, Auth: p.auth, Emitter: p.em,
		Tenant: e.cfg.Tenant, Instance: e.cfg.instanceName(), Target: c.Target, Policy: pol, Approvals: p.broker, Access: aw, Keys: p.keys, FailOpen: c.FailOpen, Logger: log,
		Metrics: telemetry.NewProxy(e.health.Registry(), "http")})
	if err != nil {
		p.em.Close()
		return nil, err
	}
	ln, err := e.listen("http-proxy", c.Listen, p, c.FailOpen)
	if err != nil {
		return nil, fmt.Errorf("http_proxy.listen: %w", err)
	}
	if tlsCfg != nil {
		ln = tls.NewListener(ln, tlsCfg)
	}
	log.Info("HTTP proxy listening", "addr", ln.Addr().String(), "upstream", c.Upstream, "tls", tlsCfg != nil)
	return func(ctx context.Context) error {
		if runAccess != nil {
			go runAccess(ctx)
		}
		// Serve returns once every exchange has finished: the emitter
		// closes after the last record.
		return p.closing(func() error { return health.Serve(ctx, ln, px) })
	}, nil
}
