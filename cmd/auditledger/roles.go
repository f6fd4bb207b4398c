package main

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"time"

	"github.com/auditledger/auditledger/events"
	"github.com/auditledger/auditledger/events/emitter"
	"github.com/auditledger/auditledger/ledger"
	"github.com/auditledger/auditledger/ledger/bus"
	"github.com/auditledger/auditledger/ledger/service"
	"github.com/auditledger/auditledger/ledger/storeurl"
	"github.com/auditledger/auditledger/services/api"
	"github.com/auditledger/auditledger/services/approvals"
	"github.com/auditledger/auditledger/services/httpproxy"
	"github.com/auditledger/auditledger/services/identity"
	"github.com/auditledger/auditledger/services/pgproxy"
	"github.com/auditledger/auditledger/services/telemetry"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// serveRole prepares one role of serve (and of dev) and returns what runs
// it until ctx ends, and the address it listens on (none for the ledger).
// Preparation errors (a bad policy, an unreachable issuer) stop serve
// before anything listens.
func serveRole(ctx context.Context, role string, cfg serveConfig, dial *busDialer, metrics *service.Metrics, log *slog.Logger) (run func() error, addr string, err error) {
	run, addr, err = prepareRole(ctx, role, cfg, dial, metrics, log)
	if err != nil {
		return nil, "", fmt.Errorf("role %s: %w", role, err)
	}
	return run, addr, nil
}

func prepareRole(ctx context.Context, role string, cfg serveConfig, dial *busDialer, metrics *service.Metrics, log *slog.Logger) (func() error, string, error) {
	log = log.With("role", role)
	// A producer_key names this process as a producer: its name is the
	// source instance of every event the proxies and the API record.
	var psigner *ledger.NoteSigner
	if role != "ledger" && cfg.ProducerKey != "" {
		var err error
		if psigner, err = loadSigner(cfg.ProducerKey); err != nil {
			return nil, "", fmt.Errorf("producer_key: %w", err)
		}
		cfg.instance = psigner.Name()
	}
	// Proxies connect with their own producer credentials when the keys
	// directory holds them, so the bus lets them publish only as
	// themselves.
	brole := busRole(role)
	if brole == bus.Proxy && dial.hasSeed(bus.Producer(cfg.instanceName())) {
		brole = bus.Producer(cfg.instanceName())
	}
	_, js, err := dial.connect(brole)
	if err != nil {
		return nil, "", err
	}
	log.Info("connected to the bus", "bus_role", brole)
	switch role {
	case "ledger":
		signer, err := loadSigner(cfg.Ledger.Key)
		if err != nil {
			return nil, "", err
		}
		store, err := storeurl.Open(ctx, cfg.Ledger.Store)
		if err != nil {
			return nil, "", err
		}
		var producers *ledger.Producers
		if cfg.Ledger.Producers != "" {
			b, err := os.ReadFile(cfg.Ledger.Producers)
			if err != nil {
				return nil, "", fmt.Errorf("ledger.producers: %w", err)
			}
			if producers, err = ledger.ParseProducers(string(b)); err != nil {
				return nil, "", fmt.Errorf("ledger.producers %s: %w", cfg.Ledger.Producers, err)
			}
		}
		log.Info("ledger writer starting", "store", store.Store.String(), "origin", signer.Name(),
			"producers", producers.Len(), "require_signed", cfg.Ledger.RequireSigned)
		return func() error {
			return service.Run(ctx, service.Config{
				JetStream: js, Store: store.Store, Signer: signer, Retention: store.Retention,
				Streams:  bus.StreamOptions{Replicas: cfg.NATS.Replicas, Duplicates: time.Duration(cfg.NATS.Duplicates)},
				Consumer: cfg.Ledger.Consumer, BatchSize: cfg.Ledger.Batch, MaxWait: time.Duration(cfg.Ledger.MaxWait),
				LeaseTTL: time.Duration(cfg.Ledger.LeaseTTL), Logger: log, Metrics: metrics, NewLog: cfg.newLog, IndexDir: cfg.Ledger.Index,
				Producers: producers, RequireSigned: cfg.Ledger.RequireSigned,
			})
		}, "", nil
	}

	auth := cfg.auth
	if auth == nil {
		v, err := identity.NewOIDC(ctx, identity.OIDCConfig{Issuer: cfg.OIDC.Issuer, Audience: cfg.OIDC.Audience, GroupsClaim: cfg.OIDC.GroupsClaim, Dev: cfg.OIDC.DevIdentities})
		if err != nil {
			return nil, "", err
		}
		auth = v
	}
	spool := map[string]string{"postgres-proxy": cfg.PostgresProxy.Spool, "http-proxy": cfg.HTTPProxy.Spool}[role]
	failOpen := map[string]bool{"postgres-proxy": cfg.PostgresProxy.FailOpen, "http-proxy": cfg.HTTPProxy.FailOpen}[role]
	ecfg := emitter.Config{JetStream: js, SpoolDir: spool, Timeout: 2 * time.Second, Logger: log}
	if psigner != nil {
		ecfg.Attester = ledger.NewProducerAttester(psigner)
	}
	em, err := emitter.New(ecfg)
	if err != nil {
		return nil, "", err
	}
	telemetry.Emitter(metrics.Registry(), role, em)
	// The API signs decisions; proxies act only on decisions its key signed.
	var signer *ledger.NoteSigner
	var verifier *ledger.NoteVerifier
	if role == "api" {
		if signer, err = loadSigner(cfg.Approvals.Key); err != nil {
			em.Close()
			return nil, "", fmt.Errorf("approvals.key: %w", err)
		}
	} else if cfg.Approvals.VKey != "" {
		if verifier, err = loadVerifier(cfg.Approvals.VKey); err != nil {
			em.Close()
			return nil, "", fmt.Errorf("approvals.vkey: %w", err)
		}
	}
	bctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	broker, err := approvals.New(bctx, approvals.Config{JetStream: js, Emitter: em, Replicas: cfg.NATS.Replicas, Create: role == "api",
		Signer: signer, Verifier: verifier,
		Source: events.Source{Kind: role, Instance: cfg.instanceName()}, Logger: log})
	cancel()
	switch {
	case err == nil && role != "api" && verifier == nil:
		// Without the API's verifier key no decision can be trusted: a
		// proxy refuses a policy with approval rules (New says so).
		log.Warn("approvals off: set approvals.vkey to the API's verifier key to hold statements for approval")
		broker = nil
	case errors.Is(err, approvals.ErrNoBucket) && role != "api":
		// Without the bucket a proxy refuses a policy with approval
		// rules (New says so) and runs every other policy.
		log.Warn("approvals unavailable until the api role has run once", "err", err)
		broker = nil
	case err != nil && failOpen:
		// A proxy that fails open starts while the bus is down; without
		// the bucket it refuses a policy with approval rules (New says so).
		log.Warn("approvals unavailable", "err", err)
		broker = nil
	case err != nil:
		em.Close()
		return nil, "", err
	}
	withEmitter := func(run func() error) func() error {
		return func() error {
			err := run()
			if cerr := em.Close(); err == nil {
				err = cerr
			}
			return err
		}
	}

	switch role {
	case "api":
		roles := map[api.Role][]string{}
		for r, groups := range cfg.API.Roles {
			roles[api.Role(r)] = groups
		}
		if len(roles) == 0 {
			roles = nil // each role held by the group of its name
		}
		h, err := api.New(api.Config{Auth: auth, Approvals: broker, Roles: roles, Emitter: em, Tenant: cfg.Tenant, Instance: cfg.instanceName(), Logger: log,
			Metrics: telemetry.NewHTTP(metrics.Registry(), role)})
		if err != nil {
			return nil, "", err
		}
		addr, wait, err := service.ListenAndServe(ctx, cfg.API.Listen, h)
		if err != nil {
			return nil, "", fmt.Errorf("api.listen %s: %w", cfg.API.Listen, err)
		}
		log.Info("API listening", "addr", addr.String())
		addBusReadiness(metrics, role, addr.String(), js, false)
		return withEmitter(wait), addr.String(), nil

	case "postgres-proxy":
		c := cfg.PostgresProxy
		upstream := os.Getenv("AUDITLEDGER_PROXY_UPSTREAM")
		if upstream == "" {
			return nil, "", errors.New("set AUDITLEDGER_PROXY_UPSTREAM to the target's postgres:// URL (with the credentials the proxy uses)")
		}
		var pol *pgproxy.Policy
		if c.Policy != "" {
			if pol, err = pgproxy.LoadPolicy(c.Policy); err != nil {
				return nil, "", err
			}
		}
		tlsCfg, err := loadTLS(c.TLSCert, c.TLSKey)
		if err != nil {
			return nil, "", fmt.Errorf("postgres_proxy: %w", err)
		}
		p, err := pgproxy.New(pgproxy.Config{Upstream: upstream, Auth: auth, Emitter: em, Tenant: cfg.Tenant, Instance: cfg.instanceName(),
			Target: c.Target, Policy: pol, Approvals: broker, FailOpen: c.FailOpen, Durability: pgproxy.Durability(c.Durability),
			TLS: tlsCfg, RequireTLS: c.RequireTLS, Logger: log, Metrics: telemetry.NewProxy(metrics.Registry(), "postgres")})
		if err != nil {
			return nil, "", err
		}
		ln, err := net.Listen("tcp", c.Listen)
		if err != nil {
			return nil, "", fmt.Errorf("postgres_proxy.listen: %w", err)
		}
		log.Info("PostgreSQL proxy listening", "addr", ln.Addr().String(), "tls", tlsCfg != nil)
		addBusReadiness(metrics, role, ln.Addr().String(), js, c.FailOpen)
		return withEmitter(func() error { return p.Serve(ctx, ln) }), ln.Addr().String(), nil

	case "http-proxy":
		c := cfg.HTTPProxy
		var pol *httpproxy.Policy
		if c.Policy != "" {
			if pol, err = httpproxy.LoadPolicy(c.Policy); err != nil {
				return nil, "", err
			}
		}
		headers := http.Header{}
		if v := os.Getenv("AUDITLEDGER_PROXY_UPSTREAM_AUTHORIZATION"); v != "" {
			headers.Set("Authorization", v)
		}
		p, err := httpproxy.New(httpproxy.Config{Upstream: c.Upstream, UpstreamHeaders: headers, Auth: auth, Emitter: em,
			Tenant: cfg.Tenant, Instance: cfg.instanceName(), Target: c.Target, Policy: pol, Approvals: broker, FailOpen: c.FailOpen, Logger: log,
			Metrics: telemetry.NewProxy(metrics.Registry(), "http")})
		if err != nil {
			return nil, "", err
		}
		tlsCfg, err := loadTLS(c.TLSCert, c.TLSKey)
		if err != nil {
			return nil, "", fmt.Errorf("http_proxy: %w", err)
		}
		ln, err := net.Listen("tcp", c.Listen)
		if err != nil {
			return nil, "", fmt.Errorf("http_proxy.listen: %w", err)
		}
		if tlsCfg != nil {
			ln = tls.NewListener(ln, tlsCfg)
		}
		log.Info("HTTP proxy listening", "addr", ln.Addr().String(), "upstream", c.Upstream, "tls", tlsCfg != nil)
		addBusReadiness(metrics, role, ln.Addr().String(), js, c.FailOpen)
		return withEmitter(func() error { return serveHTTP(ctx, ln, p) }), ln.Addr().String(), nil
	}
	em.Close()
	return nil, "", fmt.Errorf("unknown role %q", role)
}

// addBusReadiness registers the readiness of a role that records what it
// does on the bus: ready while connected — or, failing open with a spool,
// whenever it listens.
func addBusReadiness(metrics *service.Metrics, role, addr string, js jetstream.JetStream, failOpen bool) {
	nc := js.Conn()
	metrics.AddReadiness(role, func() (string, error) {
		if st := nc.Status(); st != nats.CONNECTED && !failOpen {
			return "", fmt.Errorf("no bus connection (%s): nothing can be recorded, and the role fails closed", st)
		}
		return "listening on " + addr, nil
	})
}

// serveHTTP serves h on ln until ctx ends, then shuts down gracefully.
func serveHTTP(ctx context.Context, ln net.Listener, h http.Handler) error {
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}
	go func() {
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
		defer cancel()
		srv.Shutdown(sctx)
	}()
	if err := srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

// loadTLS loads a certificate for TLS from clients; none when both are
// empty.
func loadTLS(certFile, keyFile string) (*tls.Config, error) {
	if (certFile == "") != (keyFile == "") {
		return nil, errors.New("a TLS certificate and its key are given together")
	}
	if certFile == "" {
		return nil, nil
	}
	cert, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		return nil, err
	}
	return &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}, nil
}

// instanceName names this process in events: the host, or dev's "dev".
func (c *serveConfig) instanceName() string {
	if c.instance != "" {
		return c.instance
	}
	return hostname()
}

func hostname() string {
	h, err := os.Hostname()
	if err != nil || h == "" {
		return "auditledger"
	}
	return h
}
