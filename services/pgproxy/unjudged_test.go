package pgproxy_test

import (
	"context"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/auditledger/auditledger/events"
	"github.com/auditledger/auditledger/services/pgproxy"
)

// Statements whose effect the proxy cannot see: the DO block builds its
// DROP at run time, and the function deletes without WHERE only when
// called.
const (
	doDrop   = "DO $$ BEGIN EXECUTE 'DROP ' || 'TABLE victim'; END $$"
	doAlter  = "DO $$ BEGIN ALTER TABLE victim ADD COLUMN sneaky int; END $$"
	createFn = "CREATE FUNCTION wipe() RETURNS void LANGUAGE plpgsql AS $$ BEGIN DELETE FROM victim; END $$"
	callFn   = "SELECT wipe()"
)

// unjudgedPolicy: alice has a deny rule and no approval rule for code;
// bob has an approval rule naming DO and CREATE FUNCTION; carol, one
// naming ALTER and CREATE; etl-bot is exempt from every rule.
const unjudgedPolicy = `version: 2
deny:
  - id: no-drop
    kinds: [DROP, TRUNCATE]
    reason: dropping data needs a change ticket
    exempt: {users: [etl-bot]}
approve:
  - id: code
    kinds: [DO, CREATE FUNCTION]
    timeout: 1m
    reason: code needs a second person
    exempt: {users: [alice, carol, etl-bot]}
  - id: ddl
    kinds: [ALTER, CREATE]
    exempt: {users: [alice, bob, etl-bot]}
`

func TestUnjudgeableJudgedByPolicyView(t *testing.T) {
	p, err := pgproxy.ParsePolicy("p.yaml", []byte(unjudgedPolicy))
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		user, sql, denied, held string
	}{
		{"alice", doDrop, "builtin-unjudgeable", ""},
		{"alice", doAlter, "builtin-unjudgeable", ""},
		{"alice", createFn, "builtin-unjudgeable", ""},
		{"alice", "SELECT 1; " + doDrop, "builtin-unjudgeable", ""},
		{"alice", "CREATE OR REPLACE PROCEDURE wipe() LANGUAGE sql AS 'DELETE FROM victim'", "builtin-unjudgeable", ""},
		{"alice", "CREATE TRIGGER t AFTER INSERT ON other EXECUTE FUNCTION wipe()", "builtin-unjudgeable", ""},
		{"alice", "CREATE RULE r AS ON INSERT TO other DO ALSO DELETE FROM victim", "builtin-unjudgeable", ""},
		{"alice", "CREATE EVENT TRIGGER e ON ddl_command_end EXECUTE FUNCTION wipe()", "builtin-unjudgeable", ""},
		{"alice", "ALTER FUNCTION wipe() SECURITY DEFINER", "builtin-unjudgeable", ""},
		{"alice", "CREATE SCHEMA s CREATE TRIGGER t AFTER INSERT ON other EXECUTE FUNCTION wipe()", "builtin-unjudgeable", ""},
		{"alice", "DROP TABLE victim", "no-drop", ""}, // the policy's own rules come first
		{"alice", callFn, "", ""}, // a body the server holds: its privileges govern
		{"alice", "CREATE TABLE t (id int)", "", ""},
		{"bob", doDrop, "", "code"},
		{"bob", createFn, "", "code"},
		// Named by no approval rule of bob's: CREATE PROCEDURE is not
		// CREATE FUNCTION.
		{"bob", "CREATE PROCEDURE wipe() LANGUAGE sql AS 'DELETE FROM victim'", "builtin-unjudgeable", ""},
		{"bob", createFn + "; " + "CREATE RULE r AS ON INSERT TO other DO ALSO DELETE FROM victim", "builtin-unjudgeable", "code"},
		// An approval rule on CREATE or ALTER already holds every such
		// statement for an approver who reads it: that holds code too, but
		// not a DO.
		{"carol", createFn, "", "ddl"},
		{"carol", "ALTER FUNCTION wipe() SECURITY DEFINER", "", "ddl"},
		{"carol", doDrop, "builtin-unjudgeable", ""},
		{"etl-bot", doDrop, "", ""},
		{"etl-bot", createFn, "", ""},
	} {
		v := p.For(c.user, nil)
		denied, held := "", ""
		if r := v.Denied(c.sql); r != nil {
			denied = r.ID
		}
		if r := v.NeedsApproval(c.sql); r != nil {
			held = r.ID
		}
		if denied != c.denied || held != c.held {
			t.Errorf("%s: %q: denied by %q, held by %q; want %q, %q", c.user, c.sql, denied, held, c.denied, c.held)
		}
	}
	r := p.For("alice", nil).Denied(doDrop)
	if msg := r.Reason; !strings.Contains(msg, "DO runs code whose effect the audit proxy cannot see") ||
		!strings.Contains(msg, "approval rule naming kind DO,") || !strings.Contains(msg, "exempts you from every deny, approval and mask rule") {
		t.Errorf("refusal %q does not say why and how to allow it", msg)
	}
	// An approval rule naming the kind holds only what it matches.
	pat, err := pgproxy.ParsePolicy("p.yaml", []byte("version: 2\napprove:\n  - id: tagged\n    kinds: [DO]\n    pattern: ticket-\\d+\n"))
	if err != nil {
		t.Fatal(err)
	}
	if r := pat.Denied("DO $$ BEGIN NULL; END $$ -- ticket-42"); r != nil {
		t.Errorf("a DO the approval rule holds is refused by %s", r.ID)
	}
	if r := pat.Denied(doDrop); r == nil || r.ID != "builtin-unjudgeable" {
		t.Errorf("a DO no approval rule holds: refused by %v, want builtin-unjudgeable", r)
	}
	// A rule of the file cannot pass for the built-in one.
	if _, err := pgproxy.ParsePolicy("p.yaml", []byte("version: 2\ndeny:\n  - id: builtin-unjudgeable\n    kinds: [DROP]\n    reason: no\n")); err == nil ||
		!strings.Contains(err.Error(), "line 3") || !strings.Contains(err.Error(), "built-in") {
		t.Errorf("a deny rule with a built-in id: %v", err)
	}
	// A mask rule alone is enough: a body could read a masked column and
	// return it transformed.
	for _, text := range []string{"version: 2\nmask:\n  - id: e\n    columns: [email]\n    method: redact\n",
		"version: 2\nmask:\n  - id: d\n    detect: [email]\n    method: redact\n"} {
		q, err := pgproxy.ParsePolicy("p.yaml", []byte(text))
		if err != nil {
			t.Fatal(err)
		}
		if r := q.Denied(doDrop); r == nil || r.ID != "builtin-unjudgeable" {
			t.Errorf("%q: DO refused by %v, want builtin-unjudgeable", text, r)
		}
		// Exempt from the mask rule, and judged by nothing else: runs.
		ex, err := pgproxy.ParsePolicy("p.yaml", []byte(strings.Replace(text, "method: redact\n", "method: redact\n    exempt: {users: [etl-bot]}\n", 1)))
		if err != nil {
			t.Fatal(err)
		}
		if r := ex.For("etl-bot", nil).Denied(doDrop); r != nil {
			t.Errorf("%q: DO refused by %s for a requester exempt from every rule", text, r.ID)
		}
	}
	// Without deny, approval or mask rules nothing changes.
	q, err := pgproxy.ParsePolicy("p.yaml", []byte("version: 2\n"))
	if err != nil {
		t.Fatal(err)
	}
	if r := q.Denied(doDrop); r != nil {
		t.Errorf("a policy without rules: DO refused by %s", r.ID)
	}
}

// TestUnjudgeableRefusedOnPostgres: against a real PostgreSQL, a DO that
// drops or alters a table and a function that deletes without WHERE are
// refused for a requester a deny rule applies to — through psql (simple
// protocol, one statement and several in one string) and through the
// extended protocol — recorded as command.blocked by builtin-unjudgeable,
// and the table stays as it was. Held for a requester whose approval rule
// names the kind; run for one exempt from every rule.
func TestUnjudgeableRefusedOnPostgres(t *testing.T) {
	f := startOIDC(t, unjudgedPolicy)
	direct := f.direct(t)
	if _, err := direct.Exec(t.Context(), "CREATE TABLE victim (id int); INSERT INTO victim SELECT generate_series(1, 10)"); err != nil {
		t.Fatal(err)
	}
	intact := func() {
		t.Helper()
		var rows, cols, funcs int
		if err := direct.QueryRow(t.Context(), "SELECT count(*) FROM victim").Scan(&rows); err != nil {
			t.Fatalf("victim: %v", err)
		}
		direct.QueryRow(t.Context(), "SELECT count(*) FROM information_schema.columns WHERE table_name = 'victim'").Scan(&cols)
		direct.QueryRow(t.Context(), "SELECT count(*) FROM pg_proc WHERE proname = 'wipe'").Scan(&funcs)
		if rows != 10 || cols != 1 || funcs != 0 {
			t.Fatalf("victim has %d rows and %d columns, %d functions wipe; want 10, 1, 0", rows, cols, funcs)
		}
	}
	for _, cmds := range [][]string{{doDrop}, {doAlter}, {"SELECT 1; " + doDrop}, {createFn}} {
		out, err := f.psqlAs(t, "alice", cmds...).CombinedOutput()
		if err == nil || !strings.Contains(string(out), "blocked by policy rule builtin-unjudgeable") || !strings.Contains(string(out), "approval rule naming kind") {
			t.Errorf("alice: %q: not refused: %v\n%s", cmds, err, out)
		}
		intact()
	}
	// The function was never created, so calling it runs nothing.
	if out, err := f.psqlAs(t, "alice", callFn).CombinedOutput(); err == nil || !strings.Contains(string(out), "does not exist") {
		t.Errorf("alice: %s: %v\n%s", callFn, err, out)
	}
	intact()
	// The extended protocol: Parse is refused.
	pc, err := pgconn.Connect(t.Context(), "postgres://alice:"+f.tokens["alice"]+"@"+f.addr+"/"+f.db+"?sslmode=disable")
	if err != nil {
		t.Fatal(err)
	}
	res := pc.ExecParams(t.Context(), doDrop, nil, nil, nil, nil).Read()
	pc.Close(context.Background())
	if res.Err == nil || !strings.Contains(res.Err.Error(), "builtin-unjudgeable") {
		t.Errorf("alice: extended DO: %v", res.Err)
	}
	intact()

	// Bob's approval rule names DO and CREATE FUNCTION: held, and the
	// DO denied by the approver does not run.
	cmd := f.psqlAs(t, "bob", doDrop)
	var out strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	r := f.pending(t)
	if r.Rule != "code" || !strings.Contains(r.Statement, "DROP ") {
		t.Fatalf("held request %+v", r)
	}
	if _, err := f.broker.Decide(t.Context(), r.ID, f.actor(t, "alice"), false, "no dropping"); err != nil {
		t.Fatal(err)
	}
	if err := cmd.Wait(); err == nil {
		t.Errorf("bob: a denied DO ran:\n%s", out.String())
	}
	intact()

	// etl-bot is exempt from every rule: the function is created and runs.
	if out, err := f.psqlAs(t, "etl-bot", createFn, callFn).CombinedOutput(); err != nil {
		t.Fatalf("etl-bot: %v\n%s", err, out)
	}
	var n int
	direct.QueryRow(t.Context(), "SELECT count(*) FROM victim").Scan(&n)
	if n != 0 {
		t.Errorf("etl-bot's function left %d rows", n)
	}

	blocked := 0
	for _, rec := range f.eventsOf(t) {
		switch rec.ev.Type {
		case events.CommandBlocked:
			if rec.payload["rule"] == "builtin-unjudgeable" {
				blocked++
				if rec.ev.Actor.Subject != "alice" {
					t.Errorf("%s refused by builtin-unjudgeable", rec.ev.Actor.Subject)
				}
				if reason, _ := rec.payload["reason"].(string); !strings.Contains(reason, "cannot see") {
					t.Errorf("recorded reason %q", reason)
				}
			}
		case events.CommandExecuted:
			if rec.ev.Actor.Subject == "alice" && strings.Contains(rec.payload["statement"].(string), "DO $$") {
				t.Errorf("a refused statement is recorded as executed: %v", rec.payload["statement"])
			}
		}
	}
	if blocked != 5 {
		t.Errorf("%d refusals by builtin-unjudgeable recorded, want 5", blocked)
	}
}

// TestUnjudgeableRunWithoutDenyOrApprovalRules: a policy without deny,
// approval or mask rules judges no statement, so code runs as before.
func TestUnjudgeableRunWithoutDenyOrApprovalRules(t *testing.T) {
	f := startWithPolicyText(t, "version: 2\nparameters: hash\n")
	if out, err := psql(t, f.url("alice", "alice-secret"), "CREATE TABLE victim (id int)", doAlter, createFn, callFn, doDrop); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	var n int
	f.direct(t).QueryRow(t.Context(), "SELECT count(*) FROM pg_tables WHERE tablename = 'victim'").Scan(&n)
	if n != 0 {
		t.Error("the DO did not drop the table")
	}
}

// TestUnjudgeableRefusedWhileMasking: under a policy that only masks, a
// function whose body returns a masked column transformed cannot be
// created, nor a DO run, through psql against a real PostgreSQL; each
// refusal is recorded as command.blocked by builtin-unjudgeable, and no
// such function exists afterwards.
func TestUnjudgeableRefusedWhileMasking(t *testing.T) {
	f := startWithPolicyText(t, "version: 2\nmask:\n  - id: e\n    columns: [email]\n    method: redact\n")
	attacks := []string{
		"CREATE FUNCTION leak() RETURNS SETOF text LANGUAGE sql AS 'SELECT reverse(email) FROM customers'",
		"CREATE FUNCTION leak() RETURNS SETOF text LANGUAGE plpgsql AS $$ BEGIN RETURN QUERY SELECT reverse(email) FROM customers; END $$",
		"DO $$ BEGIN RAISE NOTICE '%', (SELECT string_agg(reverse(email), ',') FROM customers); END $$",
	}
	for _, sql := range attacks {
		out, err := psql(t, f.url("alice", "alice-secret"), sql)
		if err == nil || !strings.Contains(out, "blocked by policy rule builtin-unjudgeable") || strings.Contains(out, "moc.elpmaxe") {
			t.Errorf("%q: %v\n%s", sql, err, out)
		}
	}
	var n int
	if err := f.direct(t).QueryRow(t.Context(), "SELECT count(*) FROM pg_proc WHERE proname = 'leak'").Scan(&n); err != nil || n != 0 {
		t.Errorf("function leak: %d (%v), want none", n, err)
	}
	blocked := 0
	for _, r := range f.eventsOf(t) {
		if r.ev.Type == events.CommandBlocked && r.payload["rule"] == "builtin-unjudgeable" {
			blocked++
		}
	}
	if blocked != len(attacks) {
		t.Errorf("%d refusals by builtin-unjudgeable recorded, want %d", blocked, len(attacks))
	}
}
