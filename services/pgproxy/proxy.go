// Package pgproxy is the PostgreSQL wire-protocol proxy. Clients (psql,
// pgbench, any libpq or pgx program) connect to it instead of the database
// and present an identity as their password; the proxy holds the target's
// credentials, so clients never see them. Every statement is recorded as a
// command.executed event, durably, before it is forwarded (fail closed),
// and every result as a response.digest: command tag, row count, bytes and
// the SHA-256 of the DataRow messages exactly as the client received them.
//
// It covers the simple and extended query protocols, prepared statements,
// transactions, COPY, TLS from clients, masking, and deny and approval
// rules. What it records, how it holds a statement for approval and how
// it fails closed is the gateway core's (services/gateway); this package
// is the protocol.
package pgproxy

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgproto3"

	"github.com/auditledger/auditledger/events"
	"github.com/auditledger/auditledger/events/detect"
	"github.com/auditledger/auditledger/ledger/piikeys"
	"github.com/auditledger/auditledger/services/access"
	"github.com/auditledger/auditledger/services/approvals"
	"github.com/auditledger/auditledger/services/gateway"
	"github.com/auditledger/auditledger/services/identity"
	"github.com/auditledger/auditledger/services/internal/policyfile"
	"github.com/auditledger/auditledger/services/telemetry"
)

// Durability is when a statement's record must be stored (the gateway
// core's modes).
type Durability = gateway.Durability

// Durability modes.
const (
	BeforeForward  = gateway.BeforeForward
	BeforeResponse = gateway.BeforeResponse
	LocalJournal   = gateway.LocalJournal
)

// Recorder stores the proxy's events: an *emitter.Emitter, or what
// `auditledger bench proxy` measures the relay with (gateway.Recorder).
type Recorder = gateway.Recorder

// Config configures a Proxy.
type Config struct {
	// Metrics, if set, counts what the proxy records and how long each
	// record takes to be stored.
	Metrics *telemetry.Proxy
	// Stages, if set, adds up where each statement's time goes
	// (`auditledger bench proxy`); nil times nothing.
	Stages *gateway.Stages
	// Upstream is the target database as a connection URL with the
	// credentials the proxy uses; the client's database name (one of
	// Databases) replaces the URL's. Required.
	Upstream string
	// Databases are the databases a client may name: a session naming
	// another is refused with SQLSTATE 42501, naming the allowed ones, and
	// recorded as authn.failed; a client naming none gets the first. Empty:
	// the Upstream URL's database only (its user's name when the URL names
	// none, as PostgreSQL does), so that the proxy's login never reaches a
	// database nobody chose to expose.
	Databases []string
	// Auth verifies what the client sends as its password: an OIDC token
	// (identity.OIDC) or, in development, a static password. Required.
	Auth     identity.Authenticator
	Emitter  Recorder // required: an *emitter.Emitter
	Tenant   string   // required, as in events
	Instance string   // this proxy's name in events; empty means "pgproxy"
	Target   string   // the target's name in events
	Policy   *Policy  // nil: record only, mask and block nothing; see LoadPolicy
	// Access, if set, admits sessions to a target its rules name only
	// inside a live access grant, and ends them when it ends: a running
	// statement is cancelled (a CancelRequest to the server) and both
	// connections are closed.
	Access *access.Watcher
	// AccessTick: gateway.Config.AccessTick (zero: 100 ms).
	AccessTick time.Duration
	// Approvals holds statements that match the policy's approval rules
	// until an approver decides. Required when the policy has such rules.
	Approvals *approvals.Broker
	// Keys holds the personal-data keys: each value the recording rule
	// replaces is recorded with its keyed search digest, and the actor's
	// e-mail sealed under the person's key. Nil: values are replaced
	// without digests and e-mails left out.
	Keys *piikeys.Store
	// FailOpen lets statements run when their record could only be
	// spooled on this host (the Emitter needs a SpoolDir); the spool is
	// delivered when the bus returns. The default, fail closed, refuses
	// any statement whose record the bus has not stored.
	FailOpen bool
	// Durability says when a statement may reach the database: with
	// BeforeForward (the default) only once its record is stored; with
	// BeforeResponse at once, while its record is being stored, the client
	// getting no result until it is, and a failed store ending the session.
	Durability Durability
	// TLS, when set, lets clients upgrade with SSLRequest (sslmode=require
	// and up); RequireTLS refuses those that do not. TLS to the upstream
	// follows the Upstream URL's sslmode.
	TLS        *tls.Config
	RequireTLS bool
	// StateDir keeps the journal of open sessions, so that the sessions a
	// crash leaves open are recorded as ended, lost, when the proxy starts
	// again. Empty: no journal.
	StateDir string
	Logger   *slog.Logger // nil means slog.Default()
}

// Proxy accepts client connections and relays them to the upstream.
type Proxy struct {
	cfg      Config
	upstream *pgconn.Config
	dbs      []string // the databases clients may name; never empty
	catalog  *catalog
	gw       *gateway.Gateway
	wg       sync.WaitGroup
}

// New checks cfg.
func New(cfg Config) (*Proxy, error) {
	if cfg.Auth == nil {
		return nil, errors.New("pgproxy: Auth is required")
	}
	up, err := pgconn.ParseConfig(cfg.Upstream)
	if err != nil {
		return nil, fmt.Errorf("pgproxy: upstream URL: %w", err) // pgconn redacts the password
	}
	if cfg.Policy != nil && len(cfg.Policy.Approve) > 0 && cfg.Approvals == nil {
		return nil, errors.New("pgproxy: the policy has approval rules but no approvals broker is configured")
	}
	if cfg.RequireTLS && cfg.TLS == nil {
		return nil, errors.New("pgproxy: RequireTLS needs a TLS configuration")
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	dbs, err := allowedDatabases(cfg.Databases, up)
	if err != nil {
		return nil, err
	}
	var info *policyfile.Loaded
	if cfg.Policy != nil {
		info = cfg.Policy.Info() // ParsePolicy and LoadPolicy fill in its Source
	}
	gw, err := gateway.New(gateway.Config{Name: "pgproxy", Kind: "postgres-proxy", Instance: cfg.Instance, Tenant: cfg.Tenant,
		Emitter: cfg.Emitter, FailOpen: cfg.FailOpen, Durability: cfg.Durability, Approvals: cfg.Approvals, Keys: cfg.Keys,
		Access: cfg.Access, AccessTick: cfg.AccessTick, StateDir: cfg.StateDir, Metrics: cfg.Metrics, Stages: cfg.Stages, Logger: cfg.Logger, Policy: info})
	if err != nil {
		return nil, err
	}
	return &Proxy{cfg: cfg, upstream: up, dbs: dbs, catalog: newCatalog(up), gw: gw}, nil
}

// allowedDatabases checks the configured databases, or defaults to the
// upstream URL's own.
func allowedDatabases(names []string, up *pgconn.Config) ([]string, error) {
	if len(names) == 0 {
		db := up.Database
		if db == "" {
			db = up.User
		}
		if db == "" {
			return nil, errors.New("pgproxy: the upstream URL names no database and no user, and no Databases are configured: name the databases clients may reach")
		}
		return []string{db}, nil
	}
	var out []string
	for i, n := range names {
		switch {
		case n == "" || strings.TrimSpace(n) != n:
			return nil, fmt.Errorf("pgproxy: Databases[%d] %q: empty or padded with spaces", i, n)
		case strings.ContainsRune(n, 0) || !utf8.ValidString(n):
			return nil, fmt.Errorf("pgproxy: Databases[%d] %q: not a database name (NUL or invalid UTF-8)", i, n)
		case slices.Contains(out, n):
			return nil, fmt.Errorf("pgproxy: Databases[%d] %q: named twice", i, n)
		}
		out = append(out, n)
	}
	return out, nil
}

// Start records what must be on record before the proxy serves (the
// gateway core's Start: policy.loaded, sessions a crash left open). Serve
// calls it; call it earlier to fail before listening.
func (p *Proxy) Start(ctx context.Context) error { return p.gw.Start(ctx) }

// Serve accepts connections on ln until ctx is cancelled, then waits for
// the sessions to end and releases the state directory. It serves nothing unless Start succeeds: it then
// closes ln and returns Start's error.
func (p *Proxy) Serve(ctx context.Context, ln net.Listener) error {
	stop := context.AfterFunc(ctx, func() { ln.Close() })
	defer stop()
	defer p.catalog.close()
	defer p.gw.Close() // after the sessions: the state directory is free again
	if err := p.Start(ctx); err != nil {
		ln.Close()
		return err
	}
	for {
		conn, err := ln.Accept()
		if err != nil {
			p.wg.Wait()
			if ctx.Err() != nil {
				return nil
			}
			return err
		}
		p.wg.Go(func() {
			defer conn.Close()
			if err := p.session(ctx, conn); err != nil && !errors.Is(err, errClosed) {
				p.cfg.Logger.Info("session ended with an error", "client", conn.RemoteAddr().String(), "err", logSafe(err.Error()))
			}
		})
	}
}

var errClosed = errors.New("connection closed")

// session is one client connection.
type session struct {
	p      *Proxy
	gs     *gateway.Session
	pol    *Policy // the policy as it applies to the requester (Policy.For)
	client *pgproto3.Backend
	out    sync.Mutex // serialises messages to the client from both directions
	cmds   int
	// Totals of the results, kept by the upstream side; read after the
	// relay has ended.
	rows, bytes, errors int64
	descs               *describeQueue
	shapes              *shapes
	stmts               *stmtTable
	binds               *nameQueue
	sqlPrep             sqlPrepared
	db                  string // the database the session uses
	// scsOff is the server's standard_conforming_strings being off, as
	// it last reported it (scs.go).
	scsOff atomic.Bool
	// clientEnc is the session's client_encoding, as the server last
	// reported it (encoding.go).
	clientEnc atomic.Value
	// keyFailed is when the tenant's search key last could not be read
	// for a result's digest (keyedSum).
	keyFailed time.Time
	// released is when the last answer was released to the client
	// (unix nanoseconds), while Config.Stages times statements.
	released atomic.Int64
	// owed holds the payloads of response digests not yet recorded: the
	// upstream side records them once the answer is flushed.
	owed []map[string]any
}

func (p *Proxy) session(ctx context.Context, conn net.Conn) error {
	// Shutting down ends open sessions too, so Serve can return.
	defer context.AfterFunc(ctx, func() { conn.Close() })()
	s := &session{p: p, pol: p.cfg.Policy, gs: p.gw.Session(events.Target{Kind: "postgres", Name: p.cfg.Target, Host: p.upstream.Host})}
	// Until the server reports standard_conforming_strings, it may be off.
	s.scsOff.Store(true)
	// A connection that never gets as far as a user name is a failed
	// login too, recorded with what is known (a client that connects and
	// closes at once, as health checks do, is not).
	startupFailed := func(reason string) {
		s.gs.RecordOrLog(ctx, events.AuthnFailed, map[string]any{"client_addr": conn.RemoteAddr().String(), "reason": gateway.Clip(reason, 1024)})
	}
	var be *pgproto3.Backend
	var startup *pgproto3.StartupMessage
	var tlsState *tls.ConnectionState
	for startup == nil {
		msg, err := readStartup(conn)
		if err != nil {
			if !errors.Is(err, io.EOF) {
				startupFailed(err.Error())
			}
			return err
		}
		switch m := msg.(type) {
		case *pgproto3.SSLRequest:
			if p.cfg.TLS == nil || tlsState != nil {
				if _, err := conn.Write([]byte("N")); err != nil {
					return err
				}
				continue
			}
			if _, err := conn.Write([]byte("S")); err != nil {
				return err
			}
			tc := tls.Server(conn, p.cfg.TLS)
			hctx, cancel := context.WithTimeout(ctx, 10*time.Second)
			err := tc.HandshakeContext(hctx)
			cancel()
			if err != nil {
				startupFailed("TLS handshake: " + err.Error())
				return fmt.Errorf("TLS handshake: %w", err)
			}
			st := tc.ConnectionState()
			tlsState, conn = &st, tc
		case *pgproto3.GSSEncRequest:
			if _, err := conn.Write([]byte("N")); err != nil {
				return err
			}
		case *pgproto3.CancelRequest:
			return p.cancel(ctx, m)
		case *pgproto3.StartupMessage:
			startup = m
		}
	}
	be = pgproto3.NewBackend(conn, conn)
	s.client = be
	if p.cfg.RequireTLS && tlsState == nil {
		return fatal(be, "28000", "this proxy requires TLS: connect with sslmode=require (or stronger)")
	}
	user := startup.Parameters["user"]
	db := startup.Parameters["database"]
	if db == "" {
		db = p.dbs[0]
	}
	s.db = db
	be.Send(&pgproto3.AuthenticationCleartextPassword{})
	if err := be.Flush(); err != nil {
		return err
	}
	if err := be.SetAuthType(pgproto3.AuthTypeCleartextPassword); err != nil {
		return err
	}
	msg, err := be.Receive()
	if err != nil {
		return err
	}
	pw, ok := msg.(*pgproto3.PasswordMessage)
	if !ok {
		return fatal(be, "08P01", "expected a password message")
	}
	target := s.gs.Target()
	target.Database = gateway.Clip(db, 0)
	s.gs.SetTarget(target)
	actor, err := p.cfg.Auth.Authenticate(ctx, user, pw.Password)
	if err != nil {
		// Whatever the client sent as its name is recorded, made safe:
		// cleaned and cut to fit, with its length and digest — the digest
		// over the name with detector matches replaced, as the recorded
		// name is, so an e-mail address cannot be guessed back from it.
		scrubbed, _ := detect.Scrub(user)
		s.gs.RecordOrLog(ctx, events.AuthnFailed, map[string]any{"user": gateway.Clip(user, 0), "user_bytes": len(user), "user_sha256": sha256Hex(scrubbed),
			"client_addr": conn.RemoteAddr().String(), "reason": err.Error()})
		return fatal(be, "28P01", "authentication failed: "+err.Error())
	}
	s.gs.Authenticated(gateway.Identity{Actor: actor})
	s.pol = p.cfg.Policy.For(actor.Subject, actor.Groups).withRelations(func(rel relRef) ([]string, error) {
		return p.catalog.columns(ctx, db, rel)
	})
	// Only the databases the target exposes: the proxy's login may reach
	// others (the projection, the cluster's own), and a client must not
	// borrow it to get there. Compared byte for byte, as PostgreSQL does.
	if !slices.Contains(p.dbs, db) {
		reason := fmt.Sprintf("database %q is not one this proxy serves (allowed: %s)", gateway.Clip(db, 256), strings.Join(p.dbs, ", "))
		s.gs.RecordOrLog(ctx, events.AuthnFailed, map[string]any{"user": gateway.Clip(user, 0), "database": gateway.Clip(db, 0),
			"client_addr": conn.RemoteAddr().String(), "reason": reason})
		return fatal(be, "42501", reason)
	}

	// A target an access rule names: only inside a live grant (checked
	// before the target is reached), and ended when it ends — a running
	// statement cancelled, then both connections closed, which ends the
	// relay and records the end.
	var upstreamConn atomic.Pointer[pgconn.HijackedConn]
	release, err := s.gs.Admit(ctx, func(reason string) {
		// The client is told why first: the server's answer to the
		// cancel ("canceling statement due to user request") would
		// otherwise reach it first, and psql stops at that error
		// without reading the reason.
		s.fatal("57P01", "session ended by the gateway: "+reason)
		hj := upstreamConn.Load()
		if hj != nil {
			cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Second)
			if err := p.cancel(cctx, &pgproto3.CancelRequest{ProcessID: hj.PID, SecretKey: hj.SecretKey}); err != nil {
				p.cfg.Logger.Warn("cancel request at the end of an access grant failed", "session_id", s.gs.ID(), "err", logSafe(err.Error()))
			}
			cancel()
		}
		if hj != nil {
			hj.Conn.Close()
		}
		conn.Close()
	})
	if errors.Is(err, gateway.ErrAccessDenied) {
		return fatal(be, "42501", err.Error())
	}
	if err != nil {
		return fatal(be, "58000", "the audit ledger is unavailable; the proxy fails closed")
	}
	defer release()

	cfg := p.upstream.Copy()
	cfg.Database = db
	if app := startup.Parameters["application_name"]; app != "" {
		cfg.RuntimeParams["application_name"] = app
	}
	up, err := pgconn.ConnectConfig(ctx, cfg)
	if err != nil {
		p.cfg.Logger.Warn("upstream connection failed", "database", logSafe(db), "err", logSafe(err.Error()))
		code, msg := upstreamRefusal(err, cfg.User)
		return fatal(be, code, msg)
	}
	hj, err := up.Hijack()
	if err != nil {
		return err
	}
	defer hj.Conn.Close()
	upstreamConn.Store(hj)
	if err := s.gs.Start(ctx, map[string]any{
		"client_addr": conn.RemoteAddr().String(), "user": user, "database": db, "tls": tlsDescription(tlsState),
		"application_name": startup.Parameters["application_name"],
	}); err != nil {
		return fatal(be, "58000", "the audit ledger is unavailable; the proxy fails closed")
	}
	be.Send(&pgproto3.AuthenticationOk{})
	for k, v := range hj.ParameterStatuses {
		s.setting(k, v)
		be.Send(&pgproto3.ParameterStatus{Name: k, Value: v})
	}
	be.Send(&pgproto3.BackendKeyData{ProcessID: hj.PID, SecretKey: hj.SecretKey})
	be.Send(&pgproto3.ReadyForQuery{TxStatus: 'I'})
	if err := be.Flush(); err != nil {
		return err
	}
	err = s.relay(ctx, conn, hj)
	s.gs.End(ctx, map[string]any{
		"duration_ms": time.Since(s.gs.Started()).Milliseconds(), "commands": s.cmds,
		"rows": s.rows, "bytes": s.bytes, "errors": s.errors,
		"client_addr": conn.RemoteAddr().String(), "database": gateway.Clip(db, 0), "tls": tlsDescription(tlsState),
	})
	return err
}

// cancel forwards a cancel request to the upstream server. The client got
// the upstream's key data, so the request passes through unchanged.
func (p *Proxy) cancel(ctx context.Context, m *pgproto3.CancelRequest) error {
	addr := net.JoinHostPort(p.upstream.Host, fmt.Sprint(p.upstream.Port))
	c, err := (&net.Dialer{Timeout: 5 * time.Second}).DialContext(ctx, "tcp", addr)
	if err != nil {
		return err
	}
	defer c.Close()
	b, err := m.Encode(nil)
	if err != nil {
		return err
	}
	_, err = c.Write(b)
	return err
}

// fatal ends the session with an error to the client, holding the lock
// on the client's writes: the relay's other goroutine may be writing too.
func (s *session) fatal(code, msg string) error {
	s.out.Lock()
	defer s.out.Unlock()
	return fatal(s.client, code, msg)
}

// upstreamRefusal is what a client is told when the proxy cannot open
// its session on the target. The server's own answer is passed on when it
// concerns what the client asked for (a database that does not exist,
// too many connections, a server starting up or shutting down), with the
// proxy's upstream user name taken out; a refusal of the proxy's own
// login, or no answer at all, is the operator's to fix and says so.
func upstreamRefusal(err error, upstreamUser string) (code, msg string) {
	var pe *pgconn.PgError
	if !errors.As(err, &pe) {
		return "08006", "the proxy cannot reach the target database (the operator can see why in the proxy's log)"
	}
	switch {
	case pe.Code == "28000" || pe.Code == "28P01":
		return "08004", "the target database refused the proxy's own login (the operator can see why in the proxy's log)"
	case pe.Code == "3D000" || strings.HasPrefix(pe.Code, "53") || strings.HasPrefix(pe.Code, "57P") || strings.HasPrefix(pe.Code, "08"):
		m := pe.Message
		if upstreamUser != "" {
			m = strings.ReplaceAll(m, upstreamUser, "<proxy's user>")
		}
		return pe.Code, "the target database refused the session: " + m
	}
	return "08004", "the target database refused the session (SQLSTATE " + pe.Code + "; the operator can see why in the proxy's log)"
}

// fatal sends a FATAL error and flushes; only for the startup phase, when
// one goroutine owns the connection.
func fatal(be *pgproto3.Backend, code, msg string) error {
	be.Send(&pgproto3.ErrorResponse{Severity: "FATAL", SeverityUnlocalized: "FATAL", Code: code, Message: msg})
	be.Flush()
	return fmt.Errorf("%s: %s", code, msg)
}

// maxStartup bounds the startup packet. PostgreSQL refuses packets over
// 10,000 bytes; the proxy reads up to this much so that the user name of
// an oversized login can still be recorded.
const maxStartup = 64 << 10

// Startup request codes (PostgreSQL's protocol.h).
const (
	protocol3     = 3 << 16
	protocol32    = 3<<16 | 2
	sslRequest    = 80877103
	cancelRequest = 80877102
	gssEncRequest = 80877104
)

// readStartup reads one startup-phase message from r.
func readStartup(r io.Reader) (pgproto3.FrontendMessage, error) {
	var h [4]byte
	if _, err := io.ReadFull(r, h[:]); err != nil {
		return nil, err
	}
	size := int64(binary.BigEndian.Uint32(h[:])) - 4
	if size < 4 || size > maxStartup {
		return nil, fmt.Errorf("startup packet of %d bytes refused (at most %d)", size+4, maxStartup)
	}
	buf := make([]byte, size)
	if _, err := io.ReadFull(r, buf); err != nil {
		return nil, fmt.Errorf("startup packet cut short: %w", err)
	}
	var m interface {
		pgproto3.FrontendMessage
		Decode([]byte) error
	}
	switch code := binary.BigEndian.Uint32(buf); code {
	case protocol3, protocol32:
		m = &pgproto3.StartupMessage{}
	case sslRequest:
		m = &pgproto3.SSLRequest{}
	case cancelRequest:
		m = &pgproto3.CancelRequest{}
	case gssEncRequest:
		m = &pgproto3.GSSEncRequest{}
	default:
		return nil, fmt.Errorf("unknown startup request code %d", code)
	}
	if err := m.Decode(buf); err != nil {
		return nil, fmt.Errorf("startup packet: %w", err)
	}
	return m, nil
}

// statementKind is the first keyword of a statement, upper-cased.
func statementKind(sql string) string {
	f := strings.Fields(strings.TrimLeft(sql, " \t\r\n("))
	if len(f) == 0 {
		return ""
	}
	return strings.ToUpper(strings.TrimRight(f[0], ";"))
}

// logSafe is text a client chose (a database or user name, an error
// quoting one) as the process log may carry it: what the detectors find
// replaced, as in events.
func logSafe(s string) string {
	out, _ := detect.Scrub(s)
	return out
}

func sha256Hex(s string) string {
	h := sha256.Sum256([]byte(s))
	return hex.EncodeToString(h[:])
}

// tlsDescription is the session's TLS in session.started: false, or the
// protocol version and cipher suite.
func tlsDescription(st *tls.ConnectionState) any {
	if st == nil {
		return false
	}
	return map[string]any{"version": tls.VersionName(st.Version), "cipher_suite": tls.CipherSuiteName(st.CipherSuite)}
}
