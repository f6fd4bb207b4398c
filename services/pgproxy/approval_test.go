package pgproxy_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/nats-io/nats.go"

	"github.com/auditledger/auditledger/events"
	"github.com/auditledger/auditledger/internal/oidcdev"
	"github.com/auditledger/auditledger/ledger/bus/emitter"
	"github.com/auditledger/auditledger/ledger/ledgertest"
	"github.com/auditledger/auditledger/services/approvals"
	"github.com/auditledger/auditledger/services/identity"
	"github.com/auditledger/auditledger/services/pgproxy"
	"github.com/auditledger/auditledger/test/natstest"
)

// oidcFixture is a proxy whose clients present OIDC tokens from a real
// provider (zitadel's op library), with an approvals broker.
type oidcFixture struct {
	*fixture
	issuer string
	broker *approvals.Broker
	tokens map[string]string // user → access token
	verify *identity.OIDC
}

func startOIDC(t *testing.T, policy string) *oidcFixture { return startOIDCTo(t, policy, "") }

func startOIDCTo(t *testing.T, policy, upstream string) *oidcFixture {
	t.Helper()
	idp, err := oidcdev.Listen("127.0.0.1:0", oidcdev.Config{Audience: "auditledger", Users: []oidcdev.User{
		{Name: "alice", Secret: "a", Email: "alice@example.com", Groups: []string{"dba"}},
		{Name: "bob", Secret: "b", Email: "bob@example.com", Groups: []string{"approver"}},
		{Name: "etl-bot", Secret: "e", Groups: []string{"agents"}, Machine: true},
	}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { idp.Close() })
	v, err := identity.NewOIDC(t.Context(), identity.OIDCConfig{Issuer: idp.Issuer, Audience: "auditledger", Dev: true})
	if err != nil {
		t.Fatal(err)
	}
	srv := natstest.Start(t)
	_, js := srv.Connect(t, nats.MaxReconnects(-1))
	em, err := emitter.New(emitter.Config{JetStream: js, Timeout: time.Second, Retries: 1})
	if err != nil {
		t.Fatal(err)
	}
	b, err := approvals.New(t.Context(), approvals.Config{JetStream: js, Create: true, Signer: ledgertest.Signer(t, "api.test/approvals"), Emitter: em, Source: events.Source{Kind: "api", Instance: "test"}})
	if err != nil {
		t.Fatal(err)
	}
	var pol *pgproxy.Policy
	if policy != "" {
		if pol, err = pgproxy.ParsePolicy("test.yaml", []byte(policy)); err != nil {
			t.Fatal(err)
		}
	}
	f := &oidcFixture{issuer: idp.Issuer, broker: b, tokens: map[string]string{}, verify: v}
	f.fixture = serve(t, srv, js, em, pgproxy.Config{Target: "orders", Auth: v, Policy: pol, Approvals: b, Upstream: upstream})
	for u, secret := range map[string]string{"alice": "a", "bob": "b", "etl-bot": "e"} {
		tok, err := identity.ClientCredentialsToken(t.Context(), idp.Issuer, u, secret)
		if err != nil {
			t.Fatal(err)
		}
		f.tokens[u] = tok
	}
	return f
}

// psqlAs runs psql with a token as the password, passed the way libpq
// reads it (PGPASSWORD), so it is not on the command line.
func (f *oidcFixture) psqlAs(t *testing.T, user string, commands ...string) *exec.Cmd {
	args := []string{"-X", "-A", "-t", "-v", "ON_ERROR_STOP=1"}
	for _, c := range commands {
		args = append(args, "-c", c)
	}
	host, port, _ := strings.Cut(f.addr, ":")
	args = append(args, "host="+host+" port="+port+" user="+user+" dbname="+f.db+" sslmode=disable")
	cmd := exec.Command("psql", args...)
	cmd.Env = append(cmd.Environ(), "PGPASSWORD="+f.tokens[user])
	return cmd
}

func TestOIDCTokenAsPassword(t *testing.T) {
	relay, upstreamConns := countingRelay(t)
	f := startOIDCTo(t, "", relay)
	out, err := f.psqlAs(t, "alice", "SELECT current_user = 'postgres'").CombinedOutput()
	if err != nil || strings.TrimSpace(string(out)) != "t" {
		t.Fatalf("psql with alice's token: %v\n%s", err, out)
	}
	out, err = f.psqlAs(t, "etl-bot", "SELECT 1").CombinedOutput()
	if err != nil {
		t.Fatalf("psql with the agent's token: %v\n%s", err, out)
	}
	// A token for another user's name still authenticates its own subject.
	bad := f.psqlAs(t, "alice", "SELECT 1")
	parts := strings.Split(f.tokens["alice"], ".")
	forged := parts[0] + "." + parts[1] + "." + strings.Repeat("A", len(parts[2]))
	bad.Env = append(bad.Env, "PGPASSWORD="+forged)
	out, err = bad.CombinedOutput()
	if err == nil || !strings.Contains(string(out), "authentication failed: token refused") {
		t.Fatalf("forged token: %v\n%s", err, out)
	}
	if strings.Contains(string(out), forged) {
		t.Error("the error shows the token")
	}
	if n := upstreamConns(); n != 2 {
		t.Errorf("%d connections reached the database, want 2 (the two valid tokens; the forged one none)", n)
	}
	subjects := map[string]events.Actor{}
	failed := 0
	for _, r := range f.eventsOf(t) {
		if r.ev.Type == events.AuthnFailed {
			failed++
			if strings.Contains(string(r.ev.Payload), parts[2][:20]) {
				t.Error("authn.failed records the token")
			}
			continue
		}
		subjects[r.ev.Actor.Subject] = r.ev.Actor
	}
	a, bot := subjects["alice"], subjects["etl-bot"]
	// Her e-mail is sealed under her key (FORMAT §1.6), never in clear.
	if email, err := f.keys.Unseal(t.Context(), "acme", "actor.email", a.Email); err != nil || email != "alice@example.com" {
		t.Errorf("alice's e-mail in events: %q opens to %q, %v", a.Email, email, err)
	}
	if a.Kind != events.Human || len(a.Groups) != 1 || a.Issuer != f.issuer || !a.DevIdentity {
		t.Errorf("alice in events: %+v", a)
	}
	if bot.Kind != events.Machine {
		t.Errorf("etl-bot in events: %+v", bot)
	}
	if failed != 1 {
		t.Errorf("%d authn.failed events, want 1", failed)
	}
}

const approvalPolicy = `version: 1
approve:
  - id: schema-change
    kinds: [ALTER, CREATE]
    groups: [dba]
    timeout: 2m
    reason: schema changes need a second person
  - id: quick
    pattern: "(?i)^UPDATE"
    timeout: 300ms
`

// pending waits for exactly one pending request and returns it.
func (f *oidcFixture) pending(t *testing.T) *approvals.Request {
	t.Helper()
	var r *approvals.Request
	natstest.CheckFor(t, 10*time.Second, 20*time.Millisecond, func() error {
		list, err := f.broker.List(t.Context(), approvals.Pending)
		if err != nil {
			return err
		}
		if len(list) != 1 {
			return errors.New("no pending request yet")
		}
		r = list[0]
		return nil
	})
	return r
}

func (f *oidcFixture) actor(t *testing.T, user string) events.Actor {
	a, err := f.verify.Authenticate(t.Context(), "", f.tokens[user])
	if err != nil {
		t.Fatal(err)
	}
	return a
}

func columnExists(t *testing.T, db, col string) bool {
	conn, err := pgx.Connect(context.Background(), pg.DSN(db))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	var n int
	conn.QueryRow(context.Background(), "SELECT count(*) FROM information_schema.columns WHERE table_name = 'orders' AND column_name = $1", col).Scan(&n)
	return n == 1
}

func TestApprovalHoldsUntilGrantedAndBindsTheText(t *testing.T) {
	f := startOIDC(t, approvalPolicy)
	conn, err := pgx.Connect(t.Context(), pg.DSN(f.db))
	if err != nil {
		t.Fatal(err)
	}
	conn.Exec(t.Context(), "CREATE TABLE orders (id int)")
	conn.Close(t.Context())

	// The agent is not in dba: the rule does not hold its statements.
	if out, err := f.psqlAs(t, "etl-bot", "CREATE TABLE scratch (x int)").CombinedOutput(); err != nil {
		t.Fatalf("agent's CREATE: %v\n%s", err, out)
	}

	stmt := "ALTER TABLE orders ADD COLUMN note text"
	cmd := f.psqlAs(t, "alice", stmt)
	var out strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	r := f.pending(t)
	if r.Statement != stmt || r.StatementSHA256 != approvals.Digest(stmt) || r.Requester.Subject != "alice" || r.Rule != "schema-change" {
		t.Fatalf("request %+v", r)
	}
	if columnExists(t, f.db, "note") {
		t.Fatal("the held statement ran before approval")
	}
	if _, err := f.broker.Decide(t.Context(), r.ID, f.actor(t, "alice"), true, ""); !errors.Is(err, approvals.ErrSelfApproval) {
		t.Fatalf("alice approving herself: %v", err)
	}
	if _, err := f.broker.Decide(t.Context(), r.ID, f.actor(t, "bob"), true, "reviewed"); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Fatalf("psql after approval: %v\n%s", err, out.String())
	}
	if !strings.Contains(out.String(), "held for approval "+r.ID) {
		t.Errorf("psql was not told the statement is held: %q", out.String())
	}
	if !columnExists(t, f.db, "note") {
		t.Fatal("the approved statement did not run")
	}

	// Another statement does not ride on that approval: it is held anew,
	// and denied, never runs.
	cmd = f.psqlAs(t, "alice", "ALTER TABLE orders ADD COLUMN secret text")
	out.Reset()
	cmd.Stdout, cmd.Stderr = &out, &out
	cmd.Start()
	go func() { done <- cmd.Wait() }()
	r2 := f.pending(t)
	if r2.ID == r.ID {
		t.Fatal("the second statement reused the first approval")
	}
	if _, err := f.broker.Decide(t.Context(), r2.ID, f.actor(t, "bob"), false, "no secrets in orders"); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err == nil || !strings.Contains(out.String(), "denied by bob: no secrets in orders") {
		t.Fatalf("denied statement: %v\n%s", err, out.String())
	}
	if columnExists(t, f.db, "secret") {
		t.Fatal("a denied statement ran")
	}

	// Expiry, over the extended protocol (a parameter makes pgx use it).
	c, err := pgx.Connect(t.Context(), "postgres://alice:"+f.tokens["alice"]+"@"+f.addr+"/"+f.db+"?sslmode=disable")
	if err != nil {
		t.Fatal(err)
	}
	_, err = c.Exec(t.Context(), "UPDATE orders SET id = $1 WHERE id = 0", 5)
	if err == nil || !strings.Contains(err.Error(), "expired") {
		t.Fatalf("expired approval: %v", err)
	}
	c.Close(t.Context())

	// The ledger's story: requested → granted → executed with the same
	// digest; the denied and expired ones never executed.
	var seq []string
	for _, rec := range f.eventsOf(t) {
		switch rec.ev.Type {
		case events.ApprovalRequested, events.ApprovalGranted, events.ApprovalDenied, events.ApprovalExpired:
			seq = append(seq, string(rec.ev.Type)+":"+rec.payload["statement_sha256"].(string)[:8])
		case events.CommandExecuted:
			if s := rec.payload["statement"].(string); strings.HasPrefix(s, "ALTER") || strings.HasPrefix(s, "UPDATE") {
				seq = append(seq, "executed:"+rec.payload["statement_sha256"].(string)[:8])
			}
		}
	}
	// The UPDATE was held at its Execute, bound to its parameters.
	d3 := "none"
	for _, rec := range f.eventsOf(t) {
		if s, _ := rec.payload["statement"].(string); rec.ev.Type == events.ApprovalRequested && strings.HasPrefix(s, "UPDATE orders SET id = $1 WHERE id = 0\n-- parameters: 1, hmac:") {
			d3 = rec.payload["statement_sha256"].(string)[:8]
		}
	}
	d1, d2 := approvals.Digest(stmt)[:8], r2.StatementSHA256[:8]
	want := []string{"approval.requested:" + d1, "approval.granted:" + d1, "executed:" + d1,
		"approval.requested:" + d2, "approval.denied:" + d2,
		"approval.requested:" + d3, "approval.expired:" + d3}
	if strings.Join(seq, " ") != strings.Join(want, " ") {
		t.Errorf("events\n got %v\nwant %v", seq, want)
	}
}

// TestForgedDecisionRunsNothing: someone with write access to the bus
// writes a "granted" decision straight into the approvals bucket — unsigned,
// or signed with a key that is not the API's. The held statement does not
// run; the request ends denied, and the ledger records the refusal naming
// what was claimed.
func TestForgedDecisionRunsNothing(t *testing.T) {
	f := startOIDC(t, approvalPolicy)
	conn, err := pgx.Connect(t.Context(), pg.DSN(f.db))
	if err != nil {
		t.Fatal(err)
	}
	conn.Exec(t.Context(), "CREATE TABLE orders (id int)")
	conn.Close(t.Context())
	kv, err := f.js.KeyValue(t.Context(), approvals.Bucket)
	if err != nil {
		t.Fatal(err)
	}
	attacker := ledgertest.Signer(t, "api.test/approvals")
	for _, c := range []struct{ name, column string }{{"unsigned", "unsigned_grant"}, {"wrong key", "wrong_key_grant"}} {
		t.Run(c.name, func(t *testing.T) {
			cmd := f.psqlAs(t, "alice", "ALTER TABLE orders ADD COLUMN "+c.column+" text")
			var out strings.Builder
			cmd.Stdout, cmd.Stderr = &out, &out
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			r := f.pending(t)
			e, err := kv.Get(t.Context(), r.ID)
			if err != nil {
				t.Fatal(err)
			}
			bob := f.actor(t, "bob")
			r.Status, r.Decider, r.Reason, r.DecidedAt = approvals.Granted, &bob, "looks fine", time.Now().UTC()
			if c.name == "wrong key" {
				sig, _ := attacker.SignNote(approvals.DecisionText(r))
				r.Signature = string(sig)
			}
			forged, _ := json.Marshal(r)
			if _, err := kv.Update(t.Context(), r.ID, forged, e.Revision()); err != nil {
				t.Fatal(err)
			}
			if err := cmd.Wait(); err == nil || !strings.Contains(out.String(), "not signed by the API") {
				t.Fatalf("psql after a forged grant: %v\n%s", err, out.String())
			}
			if columnExists(t, f.db, c.column) {
				t.Fatal("a forged grant ran the held statement")
			}
			got, err := f.broker.Get(t.Context(), r.ID)
			if err != nil || got.Status != approvals.Denied {
				t.Fatalf("request after the forgery: %+v, %v; want denied", got, err)
			}
			var recorded *events.Event
			for _, rec := range f.eventsOf(t) {
				if rec.ev.ID == "approval/"+r.ID+"/decision" {
					recorded = rec.ev
				}
			}
			if recorded == nil || recorded.Type != events.ApprovalDenied || recorded.Actor.Subject == "bob" ||
				!strings.Contains(string(recorded.Payload), "claimed: granted by "+bob.Issuer+" bob") {
				t.Fatalf("the forgery is not recorded as a refusal: %+v", recorded)
			}
		})
	}
}

// TestGrantCoversOneExecution: a statement prepared once and executed
// twice (pgx caches the prepared statement) is held at each Execute: the
// grant of the first execution does not cover the second, which has other
// parameters and is denied.
func TestGrantCoversOneExecution(t *testing.T) {
	f := startOIDC(t, "version: 1\napprove:\n  - id: inserts\n    kinds: [INSERT]\n    groups: [dba]\n    timeout: 1m\n")
	direct := f.direct(t)
	direct.Exec(t.Context(), "CREATE TABLE orders (id int)")
	c, err := pgx.Connect(t.Context(), "postgres://alice:"+f.tokens["alice"]+"@"+f.addr+"/"+f.db+"?sslmode=disable")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close(t.Context())
	run := func(id int) chan error {
		done := make(chan error, 1)
		go func() { _, err := c.Exec(t.Context(), "INSERT INTO orders VALUES ($1)", id); done <- err }()
		return done
	}
	done := run(1)
	r := f.pending(t)
	if !strings.Contains(r.Statement, "-- parameters: 1, hmac:") {
		t.Fatalf("held statement %q does not bind its parameters", r.Statement)
	}
	if _, err := f.broker.Decide(t.Context(), r.ID, f.actor(t, "bob"), true, "one row"); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Fatalf("granted execution: %v", err)
	}
	done = run(2)
	r2 := f.pending(t)
	if r2.ID == r.ID || r2.Statement == r.Statement {
		t.Fatal("the second execution rode on the first grant")
	}
	if _, err := f.broker.Decide(t.Context(), r2.ID, f.actor(t, "bob"), false, "one was enough"); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err == nil || !strings.Contains(err.Error(), "denied by bob") {
		t.Fatalf("second execution: %v", err)
	}
	var ids []int
	rows, _ := direct.Query(t.Context(), "SELECT id FROM orders ORDER BY id")
	for rows.Next() {
		var id int
		rows.Scan(&id)
		ids = append(ids, id)
	}
	if len(ids) != 1 || ids[0] != 1 {
		t.Fatalf("orders holds %v, want [1]", ids)
	}
}

// TestSQLExecuteJudgedByWhatItRuns: a statement prepared in SQL and
// approved once is held again at each EXECUTE, judged by the text that
// prepared it; an EXECUTE of a name never prepared through the proxy is
// refused.
func TestSQLExecuteJudgedByWhatItRuns(t *testing.T) {
	f := startOIDC(t, "version: 1\napprove:\n  - id: updates\n    kinds: [UPDATE]\n    groups: [dba]\n    timeout: 1m\n")
	direct := f.direct(t)
	direct.Exec(t.Context(), "CREATE TABLE orders (id int); INSERT INTO orders VALUES (1)")
	cmd := f.psqlAs(t, "alice", "PREPARE bump AS UPDATE orders SET id = id + 1", "EXECUTE bump")
	var out strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	defer func() {
		if t.Failed() {
			cmd.Process.Kill()
			<-done
			t.Logf("psql:\n%s", out.String())
		}
	}()
	r := f.pending(t)
	if !strings.HasPrefix(r.Statement, "PREPARE bump") {
		t.Fatalf("first hold: %q", r.Statement)
	}
	if _, err := f.broker.Decide(t.Context(), r.ID, f.actor(t, "bob"), true, "prepare it"); err != nil {
		t.Fatal(err)
	}
	r2 := f.pending(t)
	if !strings.HasPrefix(r2.Statement, "EXECUTE bump\n-- bump prepared as: PREPARE bump AS UPDATE") {
		t.Fatalf("the EXECUTE was not held as what it runs: %q", r2.Statement)
	}
	f.broker.Decide(t.Context(), r2.ID, f.actor(t, "bob"), false, "not today")
	if err := <-done; err == nil || !strings.Contains(out.String(), "denied by bob") {
		t.Fatalf("psql: %v\n%s", err, out.String())
	}
	var id int
	direct.QueryRow(t.Context(), "SELECT id FROM orders").Scan(&id)
	if id != 1 {
		t.Fatalf("the denied EXECUTE ran: id %d", id)
	}
	if out, err := f.psqlAs(t, "alice", "EXECUTE never_prepared").CombinedOutput(); err == nil || !strings.Contains(string(out), "has not seen it prepared") {
		t.Fatalf("EXECUTE of an unknown name: %v\n%s", err, out)
	}
}

// TestApprovalTricks: comments, casing and multi-statement strings that
// hid DDL from keyword matching are held for approval like plain DDL,
// and do not run when denied.
func TestApprovalTricks(t *testing.T) {
	f := startOIDC(t, approvalPolicy)
	direct := f.direct(t)
	direct.Exec(t.Context(), "CREATE TABLE orders (id int)")
	for i, stmt := range []string{
		"/**/ALTER TABLE orders ADD COLUMN c%d int",
		"alter/**/table orders add column c%d int",
		"-- harmless\nALTER TABLE orders ADD COLUMN c%d int",
		"SELECT 1; ALTER TABLE orders ADD COLUMN c%d int",
		"BEGIN; ALTER TABLE orders ADD COLUMN c%d int; COMMIT",
	} {
		sql := fmt.Sprintf(stmt, i)
		cmd := f.psqlAs(t, "alice", sql)
		var out strings.Builder
		cmd.Stdout, cmd.Stderr = &out, &out
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		r := f.pending(t)
		if r.Statement != sql {
			t.Fatalf("held %q, want %q", r.Statement, sql)
		}
		if _, err := f.broker.Decide(t.Context(), r.ID, f.actor(t, "bob"), false, "no"); err != nil {
			t.Fatal(err)
		}
		if err := cmd.Wait(); err == nil {
			t.Fatalf("%q ran after a denial:\n%s", sql, out.String())
		}
		if columnExists(t, f.db, fmt.Sprintf("c%d", i)) {
			t.Fatalf("%q: the column exists", sql)
		}
	}
}

// TestRemovedRequestEndsRecorded: someone with the gateway's bus
// credentials purges (or deletes) a pending request from the approvals
// bucket. The held statement does not run, and the request's end is in the
// ledger — a denial naming what happened — before the client is told.
func TestRemovedRequestEndsRecorded(t *testing.T) {
	f := startOIDC(t, approvalPolicy)
	conn, err := pgx.Connect(t.Context(), pg.DSN(f.db))
	if err != nil {
		t.Fatal(err)
	}
	conn.Exec(t.Context(), "CREATE TABLE orders (id int)")
	conn.Close(t.Context())
	kv, err := f.js.KeyValue(t.Context(), approvals.Bucket)
	if err != nil {
		t.Fatal(err)
	}
	// (A purge is refused by the bucket: approvals' TestRemovedRequestIsRecorded.)
	for _, how := range []string{"delete"} {
		t.Run(how, func(t *testing.T) {
			column := how + "d_request"
			cmd := f.psqlAs(t, "alice", "ALTER TABLE orders ADD COLUMN "+column+" text")
			var out strings.Builder
			cmd.Stdout, cmd.Stderr = &out, &out
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			r := f.pending(t)
			if err = kv.Delete(t.Context(), r.ID); err != nil {
				t.Fatal(err)
			}
			if err := cmd.Wait(); err == nil || !strings.Contains(out.String(), "removed from the bus") {
				t.Fatalf("psql after the request was removed: %v\n%s", err, out.String())
			}
			if columnExists(t, f.db, column) {
				t.Fatal("the held statement ran after its request was removed")
			}
			var recorded *events.Event
			for _, rec := range f.eventsOf(t) {
				if rec.ev.ID == "approval/"+r.ID+"/decision" {
					recorded = rec.ev
				}
			}
			if recorded == nil || recorded.Type != events.ApprovalDenied ||
				!strings.Contains(string(recorded.Payload), "removed from the bus") || !strings.Contains(string(recorded.Payload), "not known") {
				t.Fatalf("the request's end is not recorded as a denial saying it was removed: %+v", recorded)
			}
		})
	}
}
