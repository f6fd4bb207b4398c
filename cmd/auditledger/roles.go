package main

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"reflect"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/auditledger/auditledger/cmd/auditledger/internal/busdial"
	"github.com/auditledger/auditledger/cmd/auditledger/internal/cli"
	"github.com/auditledger/auditledger/events"
	"github.com/auditledger/auditledger/internal/health"
	"github.com/auditledger/auditledger/ledger"
	"github.com/auditledger/auditledger/ledger/bus"
	"github.com/auditledger/auditledger/ledger/bus/emitter"
	"github.com/auditledger/auditledger/ledger/piikeys"
	"github.com/auditledger/auditledger/services/approvals"
	"github.com/auditledger/auditledger/services/identity"
	"github.com/auditledger/auditledger/services/telemetry"
)

// role is one long-running part of the process: a section of the
// configuration that checks and prepares itself. Adding a role is a
// section type in role_<name>.go, one row in roleTable and a documented
// block in deploy/auditledger.yaml.
type role interface {
	// check reports configuration errors, before anything connects.
	check(c *serveConfig) error
	// prepare opens stores, parses policies and binds listeners, so that
	// the process fails before any role runs; run blocks until ctx ends
	// and then releases what prepare took.
	prepare(ctx context.Context, e *env, log *slog.Logger) (run func(context.Context) error, err error)
}

// roleTable is every role serve runs, one row each: the section of the
// configuration file that holds its settings (yaml), the name that
// roles: lists it by (role), and its type, defined in its own file,
// role_<name>.go, with its defaults (setDefaults), its AUDITLEDGER_*
// variables (envOverrides), check and prepare, and the bus principal it
// connects as. Adding a role is that file, a row here and a documented
// block in deploy/auditledger.yaml.
type roleTable struct {
	Ledger        ledgerRole        `yaml:"ledger" role:"ledger"`
	API           apiRole           `yaml:"api" role:"api"`
	PostgresProxy postgresProxyRole `yaml:"postgres_proxy" role:"postgres-proxy"`
	HTTPProxy     httpProxyRole     `yaml:"http_proxy" role:"http-proxy"`
	SSHProxy      sshProxyRole      `yaml:"ssh_proxy" role:"ssh-proxy"`
	KubeGateway   kubeGatewayRole   `yaml:"kube_gateway" role:"kube-gateway"`
	Projector     projectorRole     `yaml:"projector" role:"projector"`
	// The SIEM forwarders (docs/SIEM.md).
	SyslogForwarder  syslogForwarderRole  `yaml:"syslog_forwarder" role:"syslog-forwarder"`
	HECForwarder     hecForwarderRole     `yaml:"hec_forwarder" role:"hec-forwarder"`
	WebhookForwarder webhookForwarderRole `yaml:"webhook_forwarder" role:"webhook-forwarder"`
	// Alerts on sealed events (docs/ALERTS.md).
	Alerter alerterRole `yaml:"alerter" role:"alerter"`
}

// namedRole is a row of the roleTable: a role's name and its section.
type namedRole struct {
	name string
	role role
}

// sections are the rows of t, in order, each pointing at its section.
func (t *roleTable) sections() []namedRole {
	v := reflect.ValueOf(t).Elem()
	rs := make([]namedRole, v.NumField())
	for i := range rs {
		rs[i] = namedRole{v.Type().Field(i).Tag.Get("role"), v.Field(i).Addr().Interface().(role)}
	}
	return rs
}

// roles maps each role name to its section.
func (t *roleTable) roles() map[string]role {
	m := map[string]role{}
	for _, r := range t.sections() {
		m[r.name] = r.role
	}
	return m
}

// env is what every role of one process shares, built once.
type env struct {
	cfg    *serveConfig
	dial   *busdial.Dialer
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

func newEnv(cfg *serveConfig, dial *busdial.Dialer, h *health.Health, log *slog.Logger) *env {
	return &env{cfg: cfg, dial: dial, health: h, log: log, auth: cfg.auth, addrs: map[string]string{}}
}

// authenticator is the process's one OIDC verifier (or the dev or
// proxy command's authenticator).
func (e *env) authenticator(ctx context.Context) (identity.Authenticator, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.auth == nil {
		c := e.cfg.OIDC
		cfg := identity.OIDCConfig{Issuer: c.Issuer, Audience: c.Audience, GroupsClaim: c.GroupsClaim, Dev: c.DevIdentities}
		// An issuer that does not answer yet (started beside this
		// process, as compose does) is waited for, up to oidcWait;
		// one that answers wrongly fails at once.
		deadline := time.Now().Add(oidcWait)
		for {
			v, err := identity.NewOIDC(ctx, cfg)
			if err == nil {
				e.auth = v
				break
			}
			var op *net.OpError
			if !errors.As(err, &op) || time.Now().After(deadline) {
				return nil, err
			}
			e.log.Warn("waiting for the OIDC issuer to answer", "issuer", c.Issuer, "for_at_most", oidcWait, "err", err)
			select {
			case <-ctx.Done():
				return nil, err
			case <-time.After(time.Second):
			}
		}
	}
	return e.auth, nil
}

// oidcWait bounds how long serve waits for its OIDC issuer to answer.
const oidcWait = time.Minute

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
	stopping := false
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
		if stopped(ctx, perr) {
			// Asked to stop while preparing: not a failure.
			stopping = true
			break
		}
		if perr != nil {
			err = fmt.Errorf("role %s: %w", name, perr)
			break
		}
		_, l := r.(stopsLast)
		rs = append(rs, running{name, run, l})
	}
	if err != nil || stopping {
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
			// A role that returns its context's cancellation has stopped
			// as asked (or because another failed, whose error says so).
			if errs[i] = r.run(rctx); stopped(rctx, errs[i]) {
				errs[i] = nil
			} else if errs[i] != nil {
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

// stopped reports whether err is only the consequence of a requested
// stop: ctx has ended and err is its cancellation. Every start-up step
// and role returns such an error when it is stopped, and a stop is no
// failure: the process then exits 0.
func stopped(ctx context.Context, err error) bool {
	return err != nil && ctx.Err() != nil && errors.Is(err, context.Canceled)
}

// stopClean makes a stop at any moment of a command's start-up a clean
// exit: an error that is only the stop's is no failure.
func stopClean(run cli.Run) cli.Run {
	return func(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) error {
		err := run(ctx, args, stdin, stdout, stderr)
		if stopped(ctx, err) {
			return nil
		}
		return err
	}
}

// recording is how a role records events.
type recording struct {
	role string // the role: the source kind of its events, its metrics' label
	// principal is what it connects to the bus as. bus.Proxy is replaced
	// by the process's producer when the keys directory holds its seed.
	principal bus.Principal
	// decides: the role signs approval decisions with approvals.key and
	// creates the approvals bucket (the api); otherwise it acts only on
	// decisions approvals.vkey verifies.
	decides bool
	// spool and failOpen: where events wait while the bus is down, and
	// whether the role serves meanwhile.
	spool    string
	failOpen bool
	// journal: every event goes through the spool, the local journal
	// the bus drains (durability local-journal).
	journal bool
}

// producer is what a role that records events holds: its bus
// connection, its emitter, and the approvals broker (nil when approvals
// are off).
type producer struct {
	auth   identity.Authenticator
	js     jetstream.JetStream
	em     *emitter.Emitter
	broker *approvals.Broker
	// keys holds the personal-data keys (search digests, sealed fields);
	// nil only for a role that fails open while the bus is down.
	keys *piikeys.Store
}

// producer connects a recording role to the bus as itself and builds its
// emitter and approvals broker. A producer_key names this process as a
// producer: its name is the source instance of every event the role
// records, and the role attests them with it.
func (e *env) producer(ctx context.Context, rec recording, log *slog.Logger) (*producer, error) {
	cfg := e.cfg
	role, spool, failOpen := rec.role, rec.spool, rec.failOpen
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
	brole := rec.principal
	if brole == bus.Proxy && e.dial.HasSeed(bus.Producer(cfg.instanceName())) {
		brole = bus.Producer(cfg.instanceName())
	}
	_, js, err := e.dial.Connect(brole)
	if err != nil {
		return nil, err
	}
	log.Info("connected to the bus", "bus_role", brole)
	ecfg := emitter.Config{JetStream: js, SpoolDir: spool, Journal: rec.journal, Timeout: 2 * time.Second, Logger: log}
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
	if rec.decides {
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
	broker, err := approvals.New(bctx, approvals.Config{JetStream: js, Emitter: em, Replicas: cfg.NATS.Replicas, Create: rec.decides,
		Signer: signer, Verifier: verifier,
		Source: events.Source{Kind: role, Instance: cfg.instanceName()}, Logger: log})
	cancel()
	switch {
	case err == nil && !rec.decides && verifier == nil:
		// Without the API's verifier key no decision can be trusted: a
		// proxy refuses a policy with approval rules (New says so).
		log.Warn("approvals off: set approvals.vkey to the API's verifier key to hold statements for approval")
		broker = nil
	case errors.Is(err, approvals.ErrNoBucket) && !rec.decides:
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
	kctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	keys, err := piikeys.Open(kctx, js, cfg.NATS.Replicas)
	cancel()
	if err != nil && failOpen {
		// Without the keys values are still replaced, but recorded without
		// their search digest, and fields tied to a person are left out.
		log.Warn("personal-data keys unavailable: replaced values are recorded without search digests", "err", err)
		keys = nil
	} else if err != nil {
		em.Close()
		return nil, err
	}
	return &producer{auth: auth, js: js, em: em, broker: broker, keys: keys}, nil
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
