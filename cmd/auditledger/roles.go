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
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/auditledger/auditledger/events"
	"github.com/auditledger/auditledger/internal/health"
	"github.com/auditledger/auditledger/ledger"
	"github.com/auditledger/auditledger/ledger/bus"
	"github.com/auditledger/auditledger/ledger/bus/emitter"
	"github.com/auditledger/auditledger/ledger/storeurl"
	"github.com/auditledger/auditledger/ledger/writer"
	"github.com/auditledger/auditledger/projections"
	"github.com/auditledger/auditledger/services/api"
	"github.com/auditledger/auditledger/services/approvals"
	"github.com/auditledger/auditledger/services/httpproxy"
	"github.com/auditledger/auditledger/services/identity"
	"github.com/auditledger/auditledger/services/pgproxy"
	"github.com/auditledger/auditledger/services/telemetry"
)

// role is one long-running part of the process: a section of the
// configuration that checks and prepares itself. Adding a role is a
// section type, one line in roles() and a documented block in
// deploy/auditledger.yaml.
type role interface {
	// check reports configuration errors, before anything connects.
	check(c *serveConfig) error
	// prepare opens stores, parses policies and binds listeners, so that
	// the process fails before any role runs; run blocks until ctx ends
	// and then releases what prepare took.
	prepare(ctx context.Context, e *env, log *slog.Logger) (run func(context.Context) error, err error)
}

// roles maps each role name to its section.
func (c *serveConfig) roles() map[string]role {
	return map[string]role{"ledger": &c.Ledger, "api": &c.API, "postgres-proxy": &c.PostgresProxy, "http-proxy": &c.HTTPProxy,
		"projector": &c.Projector, "syslog-forwarder": &c.SyslogForwarder, "hec-forwarder": &c.HECForwarder, "webhook-forwarder": &c.WebhookForwarder}
}

// env is what every role of one process shares, built once.
type env struct {
	cfg    *serveConfig
	dial   *busDialer
	health *health.Health
	log    *slog.Logger
	// onWriter, if set, is called each time this process's ledger role
	// becomes the writer (dev's banner).
	onWriter func(*ledger.Log)
	// sections replaces cfg.roles() (tests).
	sections map[string]role

	mu    sync.Mutex
	auth  identity.Authenticator // built on first use, shared by the roles
	addrs map[string]string      // role → the address it listens on
}

func newEnv(cfg *serveConfig, dial *busDialer, h *health.Health, log *slog.Logger) *env {
	return &env{cfg: cfg, dial: dial, health: h, log: log, auth: cfg.auth, addrs: map[string]string{}}
}

// authenticator is the process's one OIDC verifier (or the dev or
// proxy command's authenticator).
func (e *env) authenticator(ctx context.Context) (identity.Authenticator, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.auth == nil {
		c := e.cfg.OIDC
		v, err := identity.NewOIDC(ctx, identity.OIDCConfig{Issuer: c.Issuer, Audience: c.Audience, GroupsClaim: c.GroupsClaim, Dev: c.DevIdentities})
		if err != nil {
			return nil, err
		}
		e.auth = v
	}
	return e.auth, nil
}

// listening records the address a role bound.
func (e *env) listening(role, addr string) {
	e.mu.Lock()
	e.addrs[role] = addr
	e.mu.Unlock()
}

// addr is the address role listens on, once prepared.
func (e *env) addr(role string) string {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.addrs[role]
}

// stopsLast is implemented by roles that stop after the others: the
// ledger writer, which then seals what the recording roles stored on the
// bus while they stopped (their last events, their last attestations).
type stopsLast interface{ stopsLast() }

// runRoles prepares the named roles in order — all of them, closing what
// was prepared if one fails — and then, after calling each of prepared
// (banners), runs them together. When ctx ends or a role fails, the
// roles are stopped and awaited, then those that stop last; it returns
// once all have stopped, with every role's error.
func runRoles(ctx context.Context, e *env, names []string, prepared ...func()) error {
	first, stopFirst := context.WithCancelCause(ctx)
	last, stopLast := context.WithCancelCause(context.WithoutCancel(ctx))
	defer stopFirst(nil)
	defer stopLast(nil)
	sections := e.sections
	if sections == nil {
		sections = e.cfg.roles()
	}
	type running struct {
		name string
		run  func(context.Context) error
		last bool
	}
	var rs []running
	var err error
	for _, name := range names {
		r, ok := sections[name]
		if !ok {
			err = fmt.Errorf("unknown role %q", name)
			break
		}
		if err = r.check(e.cfg); err != nil {
			break
		}
		run, perr := r.prepare(ctx, e, e.log.With("role", name))
		if perr != nil {
			err = fmt.Errorf("role %s: %w", name, perr)
			break
		}
		_, l := r.(stopsLast)
		rs = append(rs, running{name, run, l})
	}
	if err != nil {
		// What was prepared releases itself when run on an ended context.
		stopFirst(err)
	} else {
		for _, f := range prepared {
			f()
		}
	}
	var firsts, lasts sync.WaitGroup
	errs := make([]error, len(rs))
	for i, r := range rs {
		wg, rctx := &firsts, first
		if r.last {
			wg, rctx = &lasts, last
		}
		wg.Go(func() {
			if errs[i] = r.run(rctx); errs[i] != nil {
				errs[i] = fmt.Errorf("role %s: %w", r.name, errs[i])
				stopFirst(errs[i]) // and the roles that stop last after them
			}
		})
	}
	// Stopping: the others, then those that stop last.
	go func() {
		<-first.Done()
		firsts.Wait()
		stopLast(context.Cause(first))
	}()
	firsts.Wait()
	lasts.Wait()
	if err != nil {
		return err
	}
	return errors.Join(errs...)
}

// producer is what a role that records events holds: its bus
// connection, its emitter, and the approvals broker (nil when approvals
// are off).
type producer struct {
	auth   identity.Authenticator
	js     jetstream.JetStream
	em     *emitter.Emitter
	broker *approvals.Broker
}

// producer connects a recording role to the bus as itself and builds its
// emitter and approvals broker. A producer_key names this process as a
// producer: its name is the source instance of every event the role
// records, and the role attests them with it.
func (e *env) producer(ctx context.Context, role, spool string, failOpen bool, log *slog.Logger) (*producer, error) {
	cfg := e.cfg
	auth, err := e.authenticator(ctx)
	if err != nil {
		return nil, err
	}
	var psigner *ledger.NoteSigner
	if cfg.ProducerKey != "" {
		if psigner, err = loadSigner(cfg.ProducerKey); err != nil {
			return nil, fmt.Errorf("producer_key: %w", err)
		}
		cfg.instance = psigner.Name() // roles prepare one at a time
	}
	// Proxies connect with their own producer credentials when the keys
	// directory holds them, so the bus lets them publish only as
	// themselves.
	brole := busRole(role)
	if brole == bus.Proxy && e.dial.hasSeed(bus.Producer(cfg.instanceName())) {
		brole = bus.Producer(cfg.instanceName())
	}
	_, js, err := e.dial.connect(brole)
	if err != nil {
		return nil, err
	}
	log.Info("connected to the bus", "bus_role", brole)
	ecfg := emitter.Config{JetStream: js, SpoolDir: spool, Timeout: 2 * time.Second, Logger: log}
	if psigner != nil {
		ecfg.Attester = ledger.NewProducerAttester(psigner)
	}
	em, err := emitter.New(ecfg)
	if err != nil {
		return nil, err
	}
	telemetry.Emitter(e.health.Registry(), role, em)
	// The API signs decisions; proxies act only on decisions its key signed.
	var signer *ledger.NoteSigner
	var verifier *ledger.NoteVerifier
	if role == "api" {
		if signer, err = loadSigner(cfg.Approvals.Key); err != nil {
			em.Close()
			return nil, fmt.Errorf("approvals.key: %w", err)
		}
	} else if cfg.Approvals.VKey != "" {
		if verifier, err = loadVerifier(cfg.Approvals.VKey); err != nil {
			em.Close()
			return nil, fmt.Errorf("approvals.vkey: %w", err)
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
		return nil, err
	}
	return &producer{auth: auth, js: js, em: em, broker: broker}, nil
}

// listen binds a recording role's listener, and registers its address
// and its readiness.
func (e *env) listen(role, addr string, p *producer, failOpen bool) (net.Listener, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		p.em.Close()
		return nil, inUse(addr, err)
	}
	e.listening(role, ln.Addr().String())
	addBusReadiness(e.health, role, ln.Addr().String(), p.js, failOpen)
	return ln, nil
}

// closing runs serve and then closes the emitter: every record the role
// made is stored (or spooled) before it returns.
func (p *producer) closing(serve func() error) error {
	err := serve()
	if cerr := p.em.Close(); err == nil {
		err = cerr
	}
	return err
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
	case c.MaxWait <= 0 || c.LeaseTTL < duration(time.Second):
		return fmt.Errorf("ledger.max_wait must be positive and ledger.lease_ttl at least 1s")
	}
	return nil
}

func (c *ledgerRole) prepare(ctx context.Context, e *env, log *slog.Logger) (func(context.Context) error, error) {
	_, js, err := e.dial.connect(bus.Ledger)
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
	log.Info("ledger writer starting", "store", store.Store.String(), "origin", signer.Name(),
		"producers", producers.Len(), "require_signed", c.RequireSigned)
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
			Streams:  bus.StreamOptions{Replicas: nats.Replicas, Duplicates: time.Duration(nats.Duplicates)},
			Consumer: c.Consumer, BatchSize: c.Batch, MaxWait: time.Duration(c.MaxWait),
			LeaseTTL: time.Duration(c.LeaseTTL), Logger: log, Health: e.health, NewLog: e.cfg.newLog, IndexDir: c.Index,
			Producers: producers, RequireSigned: c.RequireSigned,
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

func (c *apiRole) check(cfg *serveConfig) error {
	if cfg.OIDC.Issuer == "" && cfg.auth == nil {
		return fmt.Errorf("oidc.issuer: required by the api role (the provider whose tokens callers send)")
	}
	if cfg.Approvals.Key == "" {
		return fmt.Errorf("approvals.key: required by the api role, which signs every approval decision (a key file from `auditledger keys generate --file approvals`)")
	}
	if (c.EvidenceKey != "") != (c.LogVKey != "") || (c.EvidenceKey != "") != (c.EvidenceDir != "") {
		return fmt.Errorf("api.evidence_key, api.evidence_dir and api.log_vkey: give all three to serve evidence bundles, or none")
	}
	if _, err := c.scope(); err != nil {
		return err
	}
	return nil
}

// scope is the API's reading of tenant and target scopes from groups.
func (c *apiRole) scope() (api.ScopeConfig, error) {
	s := api.ScopeConfig{TenantPrefix: c.Scope.TenantPrefix, TargetPrefix: c.Scope.TargetPrefix}
	switch c.Scope.Unscoped {
	case "", "none":
	case "all":
		s.UnscopedAll = true
	default:
		return s, fmt.Errorf("api.scope.unscoped: %q is not none or all (what a caller in no tenant:NAME or target:NAME group reaches)", c.Scope.Unscoped)
	}
	if s.TenantPrefix != "" && s.TenantPrefix == s.TargetPrefix {
		return s, fmt.Errorf("api.scope: tenant_prefix and target_prefix are both %q: a group would name a tenant and a target at once", s.TenantPrefix)
	}
	return s, nil
}

// evidence loads what the API needs to build evidence bundles, if
// configured.
func (c *apiRole) evidence() (*api.EvidenceConfig, error) {
	if c.EvidenceKey == "" {
		return nil, nil
	}
	signer, err := loadEvidenceKey(c.EvidenceKey)
	if err != nil {
		return nil, fmt.Errorf("api.evidence_key: %w", err)
	}
	v, err := loadVerifier(c.LogVKey)
	if err != nil {
		return nil, fmt.Errorf("api.log_vkey: %w", err)
	}
	return &api.EvidenceConfig{Dir: c.EvidenceDir, Signer: signer, LogVKey: v.String(), Generator: versionString()}, nil
}

func (c *apiRole) prepare(ctx context.Context, e *env, log *slog.Logger) (func(context.Context) error, error) {
	p, err := e.producer(ctx, "api", "", false, log)
	if err != nil {
		return nil, err
	}
	roles := map[api.Role][]string{}
	for r, groups := range c.Roles {
		roles[api.Role(r)] = groups
	}
	if len(roles) == 0 {
		roles = nil // each role held by the group of its name
	}
	// The read path queries the projection, when there is one.
	var db *pgxpool.Pool
	if dsn := e.cfg.databaseURL(); dsn != "" {
		if db, err = pgxpool.New(ctx, dsn); err != nil {
			p.em.Close()
			return nil, fmt.Errorf("AUDITLEDGER_DATABASE_URL: %w", err)
		}
	} else {
		log.Info("read path off: set AUDITLEDGER_DATABASE_URL to the projection database to serve /v1/events and proofs")
	}
	ev, err := c.evidence()
	if err != nil {
		p.em.Close()
		return nil, err
	}
	scope, _ := c.scope() // checked by check
	h, err := api.New(api.Config{Auth: p.auth, Approvals: p.broker, Roles: roles, Scope: scope, Emitter: p.em, Tenant: e.cfg.Tenant, Instance: e.cfg.instanceName(), Logger: log,
		Metrics: telemetry.NewHTTP(e.health.Registry(), "api"), DB: db, Evidence: ev})
	if err != nil {
		p.em.Close()
		return nil, err
	}
	ln, err := e.listen("api", c.Listen, p, false)
	if err != nil {
		return nil, fmt.Errorf("api.listen: %w", err)
	}
	log.Info("API listening", "addr", ln.Addr().String())
	return func(ctx context.Context) error {
		if db != nil {
			defer db.Close()
		}
		return p.closing(func() error { return health.Serve(ctx, ln, h) })
	}, nil
}

func (c *postgresProxyRole) check(cfg *serveConfig) error {
	if cfg.OIDC.Issuer == "" && cfg.auth == nil {
		return fmt.Errorf("oidc.issuer: required by the postgres-proxy role (the provider whose tokens clients present)")
	}
	if c.FailOpen && c.Spool == "" {
		return fmt.Errorf("postgres_proxy.fail_open needs postgres_proxy.spool")
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
	p, err := e.producer(ctx, "postgres-proxy", c.Spool, c.FailOpen, log)
	if err != nil {
		return nil, err
	}
	px, err := pgproxy.New(pgproxy.Config{Upstream: upstream, Auth: p.auth, Emitter: p.em, Tenant: e.cfg.Tenant, Instance: e.cfg.instanceName(),
		Target: c.Target, Databases: c.Databases, Policy: pol, Approvals: p.broker, FailOpen: c.FailOpen, Durability: pgproxy.Durability(c.Durability),
		TLS: tlsCfg, RequireTLS: c.RequireTLS, Logger: log, Metrics: telemetry.NewProxy(e.health.Registry(), "postgres")})
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
		return p.closing(func() error { return px.Serve(ctx, ln) })
	}, nil
}

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
	p, err := e.producer(ctx, "http-proxy", c.Spool, c.FailOpen, log)
	if err != nil {
		return nil, err
	}
	px, err := httpproxy.New(httpproxy.Config{Upstream: c.Upstream, UpstreamHeaders: headers, Auth: p.auth, Emitter: p.em,
		Tenant: e.cfg.Tenant, Instance: e.cfg.instanceName(), Target: c.Target, Policy: pol, Approvals: p.broker, FailOpen: c.FailOpen, Logger: log,
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
		// Serve returns once every exchange has finished: the emitter
		// closes after the last record.
		return p.closing(func() error { return health.Serve(ctx, ln, px) })
	}, nil
}

// addBusReadiness registers the readiness of a role that records what it
// does on the bus: ready while connected — or, failing open with a spool,
// whenever it listens.
func addBusReadiness(h *health.Health, role, addr string, js jetstream.JetStream, failOpen bool) {
	nc := js.Conn()
	h.AddReadiness(role, func() (string, error) {
		if st := nc.Status(); st != nats.CONNECTED && !failOpen {
			return "", fmt.Errorf("no bus connection (%s): nothing can be recorded, and the role fails closed", st)
		}
		return "listening on " + addr, nil
	})
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
// databaseURL is the projection database: the one dev started, or
// $AUDITLEDGER_DATABASE_URL.
func (c *serveConfig) databaseURL() string {
	if c.database != "" {
		return c.database
	}
	return os.Getenv("AUDITLEDGER_DATABASE_URL")
}

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
