package gateway

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/auditledger/auditledger/events"
	"github.com/auditledger/auditledger/ledger/bus/emitter"
	"github.com/auditledger/auditledger/ledger/piikeys"
	"github.com/auditledger/auditledger/services/access"
	"github.com/auditledger/auditledger/services/approvals"
	"github.com/auditledger/auditledger/services/internal/policyfile"
	"github.com/auditledger/auditledger/services/telemetry"
)

// Recorder stores a gateway's events: an *emitter.Emitter. It is an
// interface so that `auditledger bench proxy` can measure a gateway's
// relay alone, with every event built and encoded but then discarded — a
// floor for the benchmark, never a way to run a gateway.
type Recorder interface {
	Emit(ctx context.Context, ev *events.Event) (emitter.Result, error)
	EmitAsync(ctx context.Context, ev *events.Event, done func(emitter.Result)) error
}

// laterRecorder is a Recorder that can hold an event nothing waits on
// for the next group it stores (emitter.Emitter.EmitLater), so that a
// command and the digest of the one before it cost one round trip to
// the bus.
type laterRecorder interface {
	EmitLater(ctx context.Context, ev *events.Event, done func(emitter.Result)) error
}

// Durability is when a command's record must be stored.
type Durability string

// Durability modes.
const (
	// BeforeForward: a command reaches its target only once its record
	// is stored.
	BeforeForward Durability = "before-forward"
	// BeforeResponse: a command reaches its target at once, while its
	// record is being stored; its answer is held until the record is
	// stored, and a failed store ends the session.
	BeforeResponse Durability = "before-response"
	// LocalJournal: as BeforeForward, but stored means fsynced to this
	// host's local journal (the emitter's spool in journal mode, which
	// the bus drains): the bus is out of the command's path. It survives
	// a crash of the gateway and an outage of the bus, not the loss of
	// this host's disk before the journal is drained.
	LocalJournal Durability = "local-journal"
)

// Errors of the core, wrapped with what was being done.
var (
	// ErrConfig: New was given a configuration it cannot run.
	ErrConfig = errors.New("gateway configuration")
	// ErrNotRecorded: an event the gateway needed stored was not; the
	// gateway refuses what depended on it (record or refuse).
	ErrNotRecorded = errors.New("the audit ledger did not store the record")
)

// Config configures a Gateway: what every session of one gateway shares.
type Config struct {
	// Name is the gateway's short name ("pgproxy", "httpproxy", "sshgw"):
	// the issuer of the actor of events about clients that never
	// authenticated. Required.
	Name string
	// Kind is the events' source.kind ("postgres-proxy", "http-proxy").
	// Required.
	Kind string
	// Instance is this gateway's name in events (source.instance); empty
	// means Name.
	Instance string
	// Tenant is the events' tenant, unless an Identity names its own.
	// Required.
	Tenant string
	// Emitter stores the events. Required.
	Emitter Recorder
	// FailOpen lets commands run when their record could only be spooled
	// on this host (the emitter needs a spool directory). The default,
	// fail closed, refuses any command whose record the bus has not stored.
	FailOpen bool
	// Durability says when a command may reach the target (Command);
	// empty means BeforeForward.
	Durability Durability
	// Approvals decides held commands (Hold). Required when the policy
	// has approval rules; nil otherwise refuses every Hold.
	Approvals *approvals.Broker
	// Access follows the access grants (services/access): a session to a
	// target one of its rules names is admitted only inside a live grant
	// (Session.Admit), and ended when the grant ends. Nil: no target
	// needs a grant.
	Access *access.Watcher
	// AccessTick is how often admitted sessions are checked against
	// their grants' ends (a revocation is acted on at once); zero means
	// 100 ms.
	AccessTick time.Duration
	// Keys holds the personal-data keys (ledger/piikeys): each value the
	// recording rule replaces is recorded with its keyed search digest,
	// and fields tied to a person are sealed under their key. Nil: values
	// are replaced without digests, and such fields are left out.
	Keys *piikeys.Store
	// Policy describes the policy the gateway enforces, as LoadPolicy
	// filled it in: Start records it as policy.loaded, and every event of
	// a session carries its reference (payload member "policy"). Nil: the
	// gateway enforces no policy file.
	Policy *policyfile.Loaded
	// StateDir holds the journal of open sessions, so that a session the
	// gateway could not end (it crashed) is recorded as ended, lost, when
	// it starts again. Empty: no journal; such sessions stay open in the
	// ledger.
	StateDir string
	// Metrics, if set, counts what the gateway records and how long each
	// record takes to be stored.
	Metrics *telemetry.Proxy
	// Stages, if set, adds up where each command's time goes (Command
	// times the core's stages; the gateway times its protocol's). Nil
	// times nothing.
	Stages *Stages
	// Logger gets what could not be recorded; nil means slog.Default().
	Logger *slog.Logger
	// Heartbeat says how the running gateway tells the bus it is alive
	// (heartbeat.go); the zero value beats every 10 s on the Emitter's
	// bus.
	Heartbeat HeartbeatConfig
}

// Gateway is the core one gateway records, holds and judges through. It
// is safe for concurrent use by its sessions.
type Gateway struct {
	cfg     Config
	source  events.Source
	journal *journal // nil without a StateDir
	// enforcer ends sessions whose grant ended; nil without Access.
	enforcer *enforcer

	startMu sync.Mutex
	started atomic.Bool
	// beat is the heartbeat from Start to Close, nil without a bus;
	// closed, set by Close, stops a Start that comes after it, or runs
	// beside it, from beating (startHeartbeat).
	beat   atomic.Pointer[heartbeat]
	closed atomic.Bool
}

// New checks cfg. It records nothing: Start does.
func New(cfg Config) (*Gateway, error) {
	if em, ok := cfg.Emitter.(*emitter.Emitter); ok && em == nil {
		cfg.Emitter = nil // a nil *Emitter in the interface is no emitter
	}
	switch {
	case cfg.Name == "" || cfg.Kind == "":
		return nil, fmt.Errorf("%w: Name and Kind are required", ErrConfig)
	case cfg.Emitter == nil || cfg.Tenant == "":
		return nil, fmt.Errorf("%w: %s: Emitter and Tenant are required", ErrConfig, cfg.Name)
	case events.CheckTenant(cfg.Tenant) != nil:
		return nil, fmt.Errorf("%w: %s: %w", ErrConfig, cfg.Name, events.CheckTenant(cfg.Tenant))
	case cfg.Policy != nil && (cfg.Policy.Source.File == "" || len(cfg.Policy.Source.SHA256) != 64 || cfg.Policy.Source.Version < 1):
		return nil, fmt.Errorf("%w: %s: the policy names no file, version and digest (load it with LoadPolicy)", ErrConfig, cfg.Name)
	}
	switch cfg.Durability {
	case "":
		cfg.Durability = BeforeForward
	case BeforeForward, BeforeResponse, LocalJournal:
	default:
		return nil, fmt.Errorf("%w: %s: durability %q, want %s, %s or %s", ErrConfig, cfg.Name, cfg.Durability, BeforeForward, BeforeResponse, LocalJournal)
	}
	if cfg.Instance == "" {
		cfg.Instance = cfg.Name
	}
	if _, err := checkHeartbeat(cfg.Heartbeat, cfg.Name); err != nil {
		return nil, err
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	g := &Gateway{cfg: cfg, source: events.Source{Kind: cfg.Kind, Instance: cfg.Instance}}
	if cfg.StateDir != "" {
		j, err := openJournal(cfg.StateDir)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", cfg.Name, err)
		}
		g.journal = j
	}
	if cfg.Access != nil {
		g.enforcer = newEnforcer(cfg.Access, cfg.AccessTick)
	}
	return g, nil
}

// Durability is the configured durability mode.
func (g *Gateway) Durability() Durability { return g.cfg.Durability }

// Close releases what New took: the state directory's lock. Sessions
// still open stay in the journal, to be recorded as lost by the next
// gateway on the directory.
func (g *Gateway) Close() error {
	g.closed.Store(true)
	g.stopHeartbeat() // not under startMu: a Start stuck on a lost bus must not hold up Close
	if g.enforcer != nil {
		g.enforcer.close()
	}
	if g.journal == nil || g.journal.unlock == nil {
		return nil
	}
	g.journal.unlock()
	g.journal.unlock = nil
	return nil
}

// Logger is the gateway's logger.
func (g *Gateway) Logger() *slog.Logger { return g.cfg.Logger }

// Start MUST succeed before the gateway serves: it records policy.loaded
// (when there is a policy) and ends the sessions a crash left open (with
// a journal), each stored by the bus. An error means the gateway must
// not serve: what it would enforce is not on record (fail closed).
// Start is idempotent: once it has succeeded it returns nil at once, and
// after a failure the next call tries again.
func (g *Gateway) Start(ctx context.Context) error {
	if g.started.Load() {
		return nil
	}
	g.startMu.Lock()
	defer g.startMu.Unlock()
	if g.started.Load() {
		return nil
	}
	if err := g.recordPolicyLoaded(ctx); err != nil {
		return err
	}
	if g.journal != nil {
		if err := g.recoverLost(ctx); err != nil {
			return err
		}
	}
	g.started.Store(true)
	g.startHeartbeat()
	return nil
}

// emit stores ev and waits: its error is nil only once the bus holds ev
// (or this host's spool does, failing open).
func (g *Gateway) emit(ctx context.Context, ev *events.Event) error {
	start := time.Now()
	r, _ := g.cfg.Emitter.Emit(ctx, ev)
	err := r.Stored(g.spoolStores())
	g.cfg.Metrics.Recorded(ev.Type, start, err)
	return err
}

// spoolStores reports whether an event on this host's spool counts as
// stored: failing open, or when the spool is the local journal.
func (g *Gateway) spoolStores() bool { return g.cfg.FailOpen || g.cfg.Durability == LocalJournal }

// emitAsync hands ev to the emitter; done gets the outcome. With strict,
// as for a command whose answer waits on it, a spooled event counts as
// stored only failing open; otherwise (a record owed for what already
// happened) the spool delivers it later and that is enough.
func (g *Gateway) emitAsync(ctx context.Context, ev *events.Event, strict bool, done func(error)) error {
	start := time.Now()
	finish := func(r emitter.Result) {
		err := r.Err
		if strict {
			err = r.Stored(g.spoolStores())
		}
		g.cfg.Metrics.Recorded(ev.Type, start, err)
		done(err)
	}
	// What nobody waits on goes with the next record someone does.
	if l, ok := g.cfg.Emitter.(laterRecorder); ok && !strict {
		return l.EmitLater(ctx, ev, finish)
	}
	return g.cfg.Emitter.EmitAsync(ctx, ev, finish)
}
