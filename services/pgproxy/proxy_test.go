package pgproxy_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os/exec"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgproto3"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/auditledger/auditledger/events"
	"github.com/auditledger/auditledger/ledger/bus"
	"github.com/auditledger/auditledger/ledger/bus/emitter"
	"github.com/auditledger/auditledger/ledger/piikeys"
	"github.com/auditledger/auditledger/services/gateway"
	"github.com/auditledger/auditledger/services/identity"
	"github.com/auditledger/auditledger/services/pgproxy"
	"github.com/auditledger/auditledger/test/natstest"
	"github.com/auditledger/auditledger/test/pgtest"
)

var pg *pgtest.Server

func TestMain(m *testing.M) { pgtest.Main(m, &pg) }

type fixture struct {
	js    jetstream.JetStream
	nats  *natstest.Server
	addr  string
	db    string
	users identity.StaticUsers
	// keys is the proxy's personal-data key store, as the roles open it
	// on the bus (cfg.Keys, unless the test set its own).
	keys *piikeys.Store
}

func start(t *testing.T) *fixture { return startWith(t, pgproxy.BeforeForward) }

func startWith(t *testing.T, durability pgproxy.Durability) *fixture {
	t.Helper()
	srv := natstest.Start(t)
	_, js := srv.Connect(t, nats.MaxReconnects(-1))
	em, err := emitter.New(emitter.Config{JetStream: js, Timeout: time.Second, Retries: 1})
	if err != nil {
		t.Fatal(err)
	}
	return serve(t, srv, js, em, pgproxy.Config{Target: "orders", Durability: durability})
}

// serve runs a proxy for one test on a loopback port, in front of a fresh
// database, recording through em; cfg's upstream, users, emitter and tenant
// are filled in here.
func serve(t *testing.T, srv *natstest.Server, js jetstream.JetStream, em *emitter.Emitter, cfg pgproxy.Config) *fixture {
	t.Helper()
	if err := bus.EnsureStreams(t.Context(), js, bus.StreamOptions{}); err != nil {
		t.Fatal(err)
	}
	f := &fixture{js: js, nats: srv, db: pg.NewDatabase(t), users: identity.StaticUsers{"alice": "alice-secret"}}
	cfg.Emitter, cfg.Tenant = em, "acme"
	switch {
	case cfg.Upstream == "":
		cfg.Upstream = pg.DSN(f.db) // the proxy's default: this database only
	case cfg.Databases == nil:
		cfg.Databases = []string{f.db} // an upstream of the test's own, for the test's database
	}
	if cfg.Auth == nil {
		cfg.Auth = f.users
	}
	if cfg.Keys == nil {
		keys, err := piikeys.Open(t.Context(), js, 1)
		if err != nil {
			t.Fatal(err)
		}
		cfg.Keys = keys
	}
	f.keys = cfg.Keys
	p, err := pgproxy.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	f.addr = ln.Addr().String()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- p.Serve(ctx, ln) }()
	t.Cleanup(func() { cancel(); <-done; em.Close() })
	return f
}

// url is what a client uses: the proxy's address and the client's own
// identity, never the database's credentials.
func (f *fixture) url(user, password string) string {
	return fmt.Sprintf("postgres://%s:%s@%s/%s?sslmode=disable", user, password, f.addr, f.db)
}

// direct connects straight to the fixture's database (not through the
// proxy), for set-up and for checking effects; closed at the end of t.
func (f *fixture) direct(t *testing.T) *pgx.Conn {
	t.Helper()
	c, err := pgx.Connect(t.Context(), pg.DSN(f.db))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close(context.Background()) })
	return c
}

type recorded struct {
	ev      *events.Event
	payload map[string]any
}

// eventsOf reads every event on AUDIT_EVENTS.
//
// A response.digest goes to the bus with the next record the proxy waits
// for, or a few milliseconds after its result: before returning, it
// waits (up to a few seconds) until every command.executed on the bus
// has its digest, and returns what it read last whether or not they do.
func (f *fixture) eventsOf(t *testing.T) []recorded {
	t.Helper()
	var out []recorded
	for deadline := time.Now().Add(5 * time.Second); ; {
		out = out[:0]
		commands, digests := map[string]bool{}, map[string]bool{}
		for _, st := range natstest.Events(t, f.js, "") {
			out = append(out, recorded{st.Event, st.Payload})
			switch st.Event.Type {
			case events.CommandExecuted:
				commands[st.Event.ID] = true
			case events.ResponseDigest:
				id, _ := st.Payload["command_id"].(string)
				digests[id] = true
			}
		}
		missing := false
		for id := range commands {
			missing = missing || !digests[id]
		}
		if !missing || time.Now().After(deadline) {
			return out
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// checkPairs waits until every command.executed has exactly one
// response.digest and returns the commands' statements.
func (f *fixture) checkPairs(t *testing.T) []string {
	t.Helper()
	var stmts []string
	natstest.CheckFor(t, 10*time.Second, 50*time.Millisecond, func() error {
		evs := f.eventsOf(t)
		digests := map[string]int{}
		stmts = nil
		var ids []string
		for _, r := range evs {
			switch r.ev.Type {
			case events.CommandExecuted:
				ids = append(ids, r.ev.ID)
				stmts = append(stmts, r.payload["statement"].(string))
			case events.ResponseDigest:
				digests[r.payload["command_id"].(string)]++
			}
		}
		for _, id := range ids {
			if digests[id] != 1 {
				return fmt.Errorf("command %s has %d digests, want 1", id, digests[id])
			}
		}
		if len(digests) != len(ids) {
			return fmt.Errorf("%d digests for %d commands", len(digests), len(ids))
		}
		return nil
	})
	return stmts
}

func psql(t *testing.T, url string, commands ...string) (string, error) {
	args := []string{"-X", "-A", "-t", "-v", "ON_ERROR_STOP=1"}
	for _, c := range commands {
		args = append(args, "-c", c)
	}
	args = append(args, url)
	out, err := exec.Command("psql", args...).CombinedOutput()
	return string(out), err
}

func TestPsqlRecordsEveryStatement(t *testing.T) {
	f := start(t)
	out, err := psql(t, f.url("alice", "alice-secret"),
		"CREATE TABLE customers (id int, email text)",
		"INSERT INTO customers VALUES (1, 'a@example.com'), (2, 'b@example.com')",
		"SELECT id, email FROM customers ORDER BY id")
	if err != nil || !strings.Contains(out, "1|a@example.com\n2|b@example.com") {
		t.Fatalf("psql through the proxy: %v\n%s", err, out)
	}
	stmts := f.checkPairs(t)
	if len(stmts) != 3 {
		t.Fatalf("recorded statements %q, want the 3 psql ran", stmts)
	}
	var digest map[string]any
	for _, r := range f.eventsOf(t) {
		if r.ev.Type == events.ResponseDigest && r.payload["command_tag"] == "SELECT 2" {
			digest = r.payload
		}
		if r.ev.Actor.Subject != "alice" || !r.ev.Actor.DevIdentity || r.ev.SessionID == "" {
			t.Errorf("event %s: actor %+v session %q", r.ev.ID, r.ev.Actor, r.ev.SessionID)
		}
	}
	if digest == nil || digest["rows"].(float64) != 2 || !strings.HasPrefix(fmt.Sprint(digest["hmac"]), "hmac:") || len(digest["hmac"].(string)) != 69 {
		t.Fatalf("SELECT digest: %v", digest)
	}
	var ended map[string]any
	natstest.CheckFor(t, 10*time.Second, 20*time.Millisecond, func() error {
		for _, r := range f.eventsOf(t) {
			if r.ev.Type == events.SessionEnded {
				ended = r.payload
				return nil
			}
		}
		return errors.New("no session.ended yet")
	})
	if ended == nil || ended["commands"].(float64) != 3 || ended["rows"].(float64) != 2 || ended["errors"].(float64) != 0 || ended["database"] != f.db {
		t.Errorf("session.ended totals: %v", ended)
	}
}

func TestWrongPasswordNeverReachesUpstream(t *testing.T) {
	f := start(t)
	out, err := psql(t, f.url("alice", "guess"), "SELECT 1")
	if err == nil || !strings.Contains(out, "authentication failed") {
		t.Fatalf("wrong password: %v\n%s", err, out)
	}
	evs := f.eventsOf(t)
	if len(evs) != 1 || evs[0].ev.Type != events.AuthnFailed {
		t.Fatalf("want one authn.failed event, got %d events", len(evs))
	}
	// The client's identity is not a database login: the target refuses it.
	direct := fmt.Sprintf("postgres://alice:alice-secret@%s:%d/%s?sslmode=disable", pg.Host, pg.Port, f.db)
	if c, err := pgx.Connect(t.Context(), direct); err == nil {
		c.Close(t.Context())
		t.Fatal("the client's credentials work on the database directly")
	}
}

// TestMissingDatabaseSaysSo: a database the target does not have is
// named in the client's error with the server's own code, and the
// proxy's upstream user is not.
func TestMissingDatabaseSaysSo(t *testing.T) {
	srv := natstest.Start(t)
	_, js := srv.Connect(t, nats.MaxReconnects(-1))
	em, err := emitter.New(emitter.Config{JetStream: js, Timeout: time.Second, Retries: 1})
	if err != nil {
		t.Fatal(err)
	}
	f := serve(t, srv, js, em, pgproxy.Config{Upstream: pg.DSN("postgres"), Databases: []string{"no_such_db"}})
	url := strings.Replace(f.url("alice", "alice-secret"), "/"+f.db+"?", "/no_such_db?", 1)
	out, err := psql(t, url, "SELECT 1")
	if err == nil || !strings.Contains(out, `database "no_such_db" does not exist`) || strings.Contains(out, "postgres@") {
		t.Fatalf("missing database: %v\n%s", err, out)
	}
	c, err := pgx.Connect(t.Context(), url)
	var pe *pgconn.PgError
	if err == nil || !errors.As(err, &pe) || pe.Code != "3D000" {
		if c != nil {
			c.Close(t.Context())
		}
		t.Fatalf("pgx to a missing database: %v, want SQLSTATE 3D000", err)
	}
}

func TestPgxExtendedProtocol(t *testing.T) {
	f := start(t)
	conn, err := pgx.Connect(t.Context(), f.url("alice", "alice-secret"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(t.Context())
	var sum int
	if err := conn.QueryRow(t.Context(), "SELECT $1::int + $2::int", 40, 2).Scan(&sum); err != nil || sum != 42 {
		t.Fatalf("extended query: %d, %v", sum, err)
	}
	if _, err := conn.Prepare(t.Context(), "q", "SELECT generate_series(1, $1::int)"); err != nil {
		t.Fatal(err)
	}
	rows, _ := conn.Query(t.Context(), "q", 5)
	n := 0
	for rows.Next() {
		n++
	}
	if rows.Err() != nil || n != 5 {
		t.Fatalf("prepared statement: %d rows, %v", n, rows.Err())
	}
	tx, _ := conn.Begin(t.Context())
	tx.Exec(t.Context(), "CREATE TABLE x (a int)")
	if err := tx.Rollback(t.Context()); err != nil {
		t.Fatal(err)
	}
	if _, err := conn.Exec(t.Context(), "SELECT * FROM x"); err == nil {
		t.Fatal("rolled-back table exists")
	}
	f.checkPairs(t)
}

func TestPgbenchThroughProxy(t *testing.T) {
	f := start(t)
	pg.InitPgbench(t, f.db)
	for _, mode := range []string{"simple", "extended", "prepared"} {
		for _, script := range [][]string{{"-S"}, {}} {
			args := append([]string{"-n", "-c", "2", "-t", "10", "-M", mode}, script...)
			args = append(args, f.url("alice", "alice-secret"))
			cmd := exec.Command("pgbench", args...)
			if out, err := cmd.CombinedOutput(); err != nil || !strings.Contains(string(out), "number of failed transactions: 0") {
				t.Fatalf("pgbench %v: %v\n%s", args, err, out)
			}
		}
	}
	stmts := f.checkPairs(t)
	// select-only: 1 statement per transaction; TPC-B-like: 7 (BEGIN,
	// 3 UPDATEs, SELECT, INSERT, END); 2 clients × 10 transactions; 3 modes.
	// pgbench also asks for the scale and partitioning once per run.
	txStmts := 0
	for _, st := range stmts {
		u := strings.ToUpper(strings.TrimSpace(st))
		for _, p := range []string{"BEGIN", "END", "UPDATE PGBENCH_", "SELECT ABALANCE", "INSERT INTO PGBENCH_HISTORY"} {
			if strings.HasPrefix(u, p) {
				txStmts++
				break
			}
		}
	}
	if want := 3 * 2 * 10 * (1 + 7); txStmts != want || len(stmts) > want+6*3 {
		t.Fatalf("%d transaction statements recorded (of %d in all), want %d", txStmts, len(stmts), want)
	}
}

func TestFailClosedWithoutTheBus(t *testing.T) {
	f := start(t)
	conn, err := pgx.Connect(t.Context(), f.url("alice", "alice-secret"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	f.nats.Shutdown()
	f.nats.WaitForShutdown()
	_, err = conn.Exec(t.Context(), "CREATE TABLE must_not_exist (a int)")
	if err == nil || !strings.Contains(err.Error(), "fails closed") {
		t.Fatalf("statement with the bus down: %v", err)
	}
	direct := f.direct(t)
	var n int
	direct.QueryRow(t.Context(), "SELECT count(*) FROM pg_tables WHERE tablename = 'must_not_exist'").Scan(&n)
	if n != 0 {
		t.Fatal("the statement reached the database although its record was not stored")
	}
}

// TestSpooledStatementsRunAndArrive: with fail-open and a spool, and with
// durability local-journal (every record through the gateway's fsynced
// journal, the bus out of the statement's path), statements run while
// the bus is down, and their records arrive, in pairs as always, when it
// returns. Without either, TestFailClosedWithoutTheBus.
func TestSpooledStatementsRunAndArrive(t *testing.T) {
	for _, c := range []struct {
		name    string
		journal bool
		cfg     pgproxy.Config
	}{
		{"fail-open", false, pgproxy.Config{FailOpen: true}},
		{"local-journal", true, pgproxy.Config{Durability: pgproxy.LocalJournal}},
	} {
		t.Run(c.name, func(t *testing.T) {
			natsDir := t.TempDir()
			srv := natstest.StartIn(t, natsDir, -1)
			port := srv.Addr().(*net.TCPAddr).Port
			_, js := srv.Connect(t, nats.MaxReconnects(-1), nats.ReconnectWait(50*time.Millisecond), nats.ReconnectBufSize(-1))
			em, err := emitter.New(emitter.Config{JetStream: js, Timeout: 300 * time.Millisecond, SpoolDir: t.TempDir(), Journal: c.journal})
			if err != nil {
				t.Fatal(err)
			}
			f := serve(t, srv, js, em, c.cfg)
			if c.journal {
				// With the bus up, too: every statement through the journal.
				pg.InitPgbench(t, f.db)
				if out, err := exec.Command("pgbench", "-n", "-c", "2", "-t", "10", f.url("alice", "alice-secret")).CombinedOutput(); err != nil {
					t.Fatalf("pgbench: %v\n%s", err, out)
				}
			}
			conn, err := pgx.Connect(t.Context(), f.url("alice", "alice-secret"))
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close(context.Background())
			srv.Shutdown()
			srv.WaitForShutdown()
			if _, err := conn.Exec(t.Context(), "CREATE TABLE made_while_bus_down (a int)"); err != nil {
				t.Fatalf("a statement with the bus down: %v", err)
			}
			natstest.StartIn(t, natsDir, port)
			natstest.CheckFor(t, 30*time.Second, 50*time.Millisecond, func() error {
				if em.Spooled() {
					return fmt.Errorf("spool not delivered")
				}
				return nil
			})
			found := false
			for _, st := range f.checkPairs(t) {
				found = found || strings.Contains(st, "made_while_bus_down")
			}
			if !found {
				t.Fatal("the spooled command.executed never reached the stream")
			}
		})
	}
}

// TestShutdownEndsSessions: stopping the proxy ends idle sessions, so
// Serve returns (the fixture's cleanup waits for it) instead of waiting for
// clients to leave.
func TestShutdownEndsSessions(t *testing.T) {
	f := start(t)
	conn, err := pgx.Connect(t.Context(), f.url("alice", "alice-secret"))
	if err != nil {
		t.Fatal(err)
	}
	_ = conn // left open on purpose: the cleanup must not wait for it
}

// TestBeforeResponse: statements run while their records are stored; every
// statement still gets its pair of events, and when a record cannot be
// stored the client gets no result: the session ends.
func TestBeforeResponse(t *testing.T) {
	f := startWith(t, pgproxy.BeforeResponse)
	pg.InitPgbench(t, f.db)
	for _, mode := range []string{"simple", "extended"} {
		if out, err := exec.Command("pgbench", "-n", "-c", "2", "-t", "10", "-M", mode, f.url("alice", "alice-secret")).CombinedOutput(); err != nil {
			t.Fatalf("pgbench -M %s: %v\n%s", mode, err, out)
		}
	}
	f.checkPairs(t)

	conn, err := pgx.Connect(t.Context(), f.url("alice", "alice-secret"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	f.nats.Shutdown()
	f.nats.WaitForShutdown()
	var one int
	err = conn.QueryRow(t.Context(), "SELECT 1").Scan(&one)
	if err == nil || !strings.Contains(err.Error(), "the session ends") {
		t.Fatalf("result with the bus down: %v, %v", one, err)
	}
}

// countingRelay forwards TCP connections to PostgreSQL and counts them, so
// a test can tell whether anything reached the database at all.
func countingRelay(t *testing.T) (dsn string, count func() int64) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	var n atomic.Int64
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			n.Add(1)
			go func() {
				defer c.Close()
				up, err := net.Dial("tcp", net.JoinHostPort(pg.Host, strconv.Itoa(pg.Port)))
				if err != nil {
					return
				}
				defer up.Close()
				go io.Copy(up, c)
				io.Copy(c, up)
			}()
		}
	}()
	_, port, _ := net.SplitHostPort(ln.Addr().String())
	return fmt.Sprintf("postgres://%s:%s@127.0.0.1:%s/postgres?sslmode=disable", pg.User, pg.Password, port), n.Load
}

// TestAnyUserNameRecorded: a failed login is recorded whatever name the
// client sent — here 10 KiB of control characters and escape sequences —
// cleaned and cut to fit, with its length and digest.
func TestAnyUserNameRecorded(t *testing.T) {
	f := start(t)
	name := strings.Repeat("\x1b[2J\x07\x01evil\r\n", 1024)[:10<<10]
	cfg, err := pgconn.ParseConfig(fmt.Sprintf("postgres://%s/%s?sslmode=disable", f.addr, f.db))
	if err != nil {
		t.Fatal(err)
	}
	cfg.User, cfg.Password = name, "guess"
	if c, err := pgconn.ConnectConfig(t.Context(), cfg); err == nil {
		c.Close(t.Context())
		t.Fatal("a login with a made-up name succeeded")
	}
	evs := f.eventsOf(t)
	if len(evs) != 1 || evs[0].ev.Type != events.AuthnFailed {
		t.Fatalf("want one authn.failed event, got %d", len(evs))
	}
	p := evs[0].payload
	user, _ := p["user"].(string)
	if p["user_bytes"] != float64(len(name)) || p["user_sha256"] != sha256Hex(name) || !strings.HasPrefix(user, `\x1b[2J\x07\x01evil\x0d\x0a`) {
		t.Fatalf("authn.failed payload: %v", p)
	}
}

// exchange sends msgs on a raw protocol connection and collects what
// comes back up to ReadyForQuery.
func exchange(t *testing.T, pc *pgconn.PgConn, msgs ...pgproto3.FrontendMessage) []pgproto3.BackendMessage {
	t.Helper()
	fe := pc.Frontend()
	for _, m := range msgs {
		fe.Send(m)
	}
	if err := fe.Flush(); err != nil {
		t.Fatal(err)
	}
	var out []pgproto3.BackendMessage
	for {
		m, err := fe.Receive()
		if err != nil {
			t.Fatal(err)
		}
		switch m := m.(type) {
		case *pgproto3.ErrorResponse:
			c := *m
			out = append(out, &c)
		case *pgproto3.DataRow:
			out = append(out, &pgproto3.DataRow{Values: [][]byte{append([]byte(nil), m.Values[0]...)}})
		case *pgproto3.ReadyForQuery:
			return out
		default:
			out = append(out, m)
		}
	}
}

// TestProtocolRecordsWhatRuns: protocol-level tricks that would run one
// thing while the ledger records another, or nothing. A FunctionCall is
// refused; a second Parse of an existing name (which the server refuses)
// does not replace the text recorded for later Executes of that name; a
// statement prepared in SQL cannot be executed through the protocol
// unrecorded.
func TestProtocolRecordsWhatRuns(t *testing.T) {
	f := start(t)
	direct := f.direct(t)
	if _, err := direct.PgConn().Exec(t.Context(), `CREATE TABLE hits (n int);
		CREATE FUNCTION bump() RETURNS int LANGUAGE sql AS $$ INSERT INTO hits VALUES (1) RETURNING 1 $$`).ReadAll(); err != nil {
		t.Fatal(err)
	}
	var oid uint32
	if err := direct.QueryRow(t.Context(), "SELECT 'bump'::regproc::oid").Scan(&oid); err != nil {
		t.Fatal(err)
	}
	hits := func() int {
		var n int
		direct.QueryRow(t.Context(), "SELECT count(*) FROM hits").Scan(&n)
		return n
	}
	pc, err := pgconn.Connect(t.Context(), f.url("alice", "alice-secret"))
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close(t.Context())

	// FunctionCall.
	got := exchange(t, pc, &pgproto3.FunctionCall{Function: oid, ResultFormatCode: 0})
	if len(got) != 1 || !strings.Contains(fmt.Sprint(got[0]), "FunctionCall") || hits() != 0 {
		t.Fatalf("FunctionCall: %v, %d hits; want refused, none", got, hits())
	}

	// A duplicate Parse, refused by the server, then an Execute of the name.
	exchange(t, pc, &pgproto3.Parse{Name: "s1", Query: "SELECT 'first'"}, &pgproto3.Sync{})
	got = exchange(t, pc, &pgproto3.Parse{Name: "s1", Query: "SELECT 'second'"}, &pgproto3.Sync{})
	if len(got) != 1 || !strings.Contains(fmt.Sprint(got[0]), "already exists") {
		t.Fatalf("second Parse of s1: %v", got)
	}
	got = exchange(t, pc, &pgproto3.Bind{PreparedStatement: "s1"}, &pgproto3.Execute{}, &pgproto3.Sync{})
	ran := ""
	for _, m := range got {
		if d, ok := m.(*pgproto3.DataRow); ok {
			ran = string(d.Values[0])
		}
	}
	if ran != "first" {
		t.Fatalf("Execute of s1 returned %q", ran)
	}

	// SQL PREPARE, then protocol Bind/Execute of it.
	exchange(t, pc, &pgproto3.Query{String: "PREPARE p1 AS INSERT INTO hits VALUES (2)"})
	got = exchange(t, pc, &pgproto3.Bind{PreparedStatement: "p1"}, &pgproto3.Execute{}, &pgproto3.Sync{})
	if len(got) != 1 || !strings.Contains(fmt.Sprint(got[0]), "has not seen the server confirm") || hits() != 0 {
		t.Fatalf("Bind to a SQL-prepared statement: %v, %d hits; want refused, none", got, hits())
	}

	// What the ledger says ran: s1's Execute as the first text, nothing
	// with an empty statement, and both refusals recorded.
	blocked, firstRecorded := 0, false
	for _, r := range f.eventsOf(t) {
		switch r.ev.Type {
		case events.CommandExecuted:
			stmt, _ := r.payload["statement"].(string)
			if stmt == "" {
				t.Errorf("a command.executed with no statement: %v", r.payload)
			}
			if r.payload["protocol"] == "extended" && stmt == "SELECT 'second'" {
				t.Errorf("the ledger records the refused second text for s1's Execute")
			}
			firstRecorded = firstRecorded || (r.payload["protocol"] == "extended" && stmt == "SELECT 'first'")
		case events.CommandBlocked:
			blocked++
		}
	}
	if !firstRecorded || blocked != 2 {
		t.Fatalf("s1's Execute recorded as SELECT 'first': %v; %d refusals recorded, want 2", firstRecorded, blocked)
	}
}

// TestNewRefusesNoEmitter: a proxy that could record nothing does not
// start, whether the emitter is missing or a nil *emitter.Emitter.
func TestNewRefusesNoEmitter(t *testing.T) {
	var nilEmitter *emitter.Emitter
	for _, em := range []pgproxy.Recorder{nil, nilEmitter} {
		_, err := pgproxy.New(pgproxy.Config{Upstream: "postgres://u@127.0.0.1:5432/db", Auth: identity.StaticUsers{"a": "b"}, Emitter: em, Tenant: "t"})
		if err == nil || !strings.Contains(err.Error(), "Emitter") {
			t.Fatalf("emitter %#v: err %v, want one naming the Emitter", em, err)
		}
	}
}

// TestOtherDatabasesRefused: the proxy's login can reach every database
// of the cluster, but a client reaches only those the target names (by
// default the upstream URL's own); naming another is refused before any
// upstream connection, with the allowed ones named, and recorded.
func TestOtherDatabasesRefused(t *testing.T) {
	f := start(t)
	other := pg.NewDatabase(t)
	// A long name holding a card number: recorded cut and with the value
	// replaced, within the field's bound (it once failed validation and
	// the refusal went unrecorded).
	long := "db_" + strings.Repeat("x", 245) + " 4111 1111 1111 1111 tail"
	for _, db := range []string{"postgres", other, strings.ToUpper(f.db), f.db + " ", long} {
		url := fmt.Sprintf("host=127.0.0.1 port=%s user=alice password=alice-secret dbname='%s' sslmode=disable", portOf(f.addr), db)
		out, err := psql(t, url, "SELECT current_database()")
		want := fmt.Sprintf("database %q is not one this proxy serves (allowed: %s)", gateway.Clip(db, 256), f.db)
		if err == nil || !strings.Contains(out, want) {
			t.Fatalf("psql to database %q through the proxy: %v\n%s\nwant the refusal %q", db, err, out, want)
		}
		c, err := pgx.Connect(t.Context(), url)
		var pe *pgconn.PgError
		if err == nil || !errors.As(err, &pe) || pe.Code != "42501" {
			if c != nil {
				c.Close(t.Context())
			}
			t.Fatalf("pgx to database %q: %v, want SQLSTATE 42501", db, err)
		}
	}
	// The allowed one still works, and a client naming none gets it.
	if out, err := psql(t, f.url("alice", "alice-secret"), "SELECT current_database()"); err != nil || strings.TrimSpace(out) != f.db {
		t.Fatalf("psql to the allowed database: %v\n%s", err, out)
	}
	natstest.CheckFor(t, 20*time.Second, 50*time.Millisecond, func() error {
		refused, started := 0, 0
		for _, r := range f.eventsOf(t) {
			switch r.ev.Type {
			case events.AuthnFailed:
				if r.ev.Actor.Subject != "alice" || !strings.Contains(r.payload["reason"].(string), "is not one this proxy serves") || r.payload["database"] == f.db {
					return fmt.Errorf("authn.failed %s: actor %+v payload %v", r.ev.ID, r.ev.Actor, r.payload)
				}
				refused++
			case events.SessionStarted:
				if r.payload["database"] != f.db {
					return fmt.Errorf("a session started on database %v", r.payload["database"])
				}
				started++
			}
		}
		if refused != 10 || started != 1 {
			return fmt.Errorf("%d refusals recorded (want 10: five databases, psql and pgx), %d sessions (want 1)", refused, started)
		}
		return nil
	})
}

// TestDatabasesAllowList: a target naming several databases serves each,
// refuses the rest naming all, and a bad list is refused at New.
func TestDatabasesAllowList(t *testing.T) {
	srv := natstest.Start(t)
	_, js := srv.Connect(t, nats.MaxReconnects(-1))
	em, err := emitter.New(emitter.Config{JetStream: js, Timeout: time.Second, Retries: 1})
	if err != nil {
		t.Fatal(err)
	}
	second := pg.NewDatabase(t)
	f := serve(t, srv, js, em, pgproxy.Config{Upstream: pg.DSN("postgres"), Databases: []string{second, "postgres"}})
	for _, db := range []string{second, "postgres"} {
		url := fmt.Sprintf("postgres://alice:alice-secret@%s/%s?sslmode=disable", f.addr, db)
		if out, err := psql(t, url, "SELECT current_database()"); err != nil || strings.TrimSpace(out) != db {
			t.Fatalf("psql to allowed database %s: %v\n%s", db, err, out)
		}
	}
	out, err := psql(t, f.url("alice", "alice-secret"), "SELECT 1")
	if want := fmt.Sprintf("(allowed: %s, postgres)", second); err == nil || !strings.Contains(out, want) {
		t.Fatalf("psql to %s, not in the list: %v\n%s\nwant %q", f.db, err, out, want)
	}
	users := identity.StaticUsers{"a": "b"}
	for _, bad := range [][]string{{""}, {" orders"}, {"a\x00b"}, {"orders", "orders"}} {
		_, err := pgproxy.New(pgproxy.Config{Upstream: "postgres://u@127.0.0.1:5432/db", Databases: bad, Auth: users, Emitter: em, Tenant: "t"})
		if err == nil || !strings.Contains(err.Error(), "Databases[") {
			t.Errorf("Databases %q: %v, want a refusal naming the entry", bad, err)
		}
	}
}

func portOf(addr string) string {
	_, port, _ := net.SplitHostPort(addr)
	return port
}
