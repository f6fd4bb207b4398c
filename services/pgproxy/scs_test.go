package pgproxy_test

import (
	"context"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgproto3"

	"github.com/auditledger/auditledger/events"
)

// scsPolicy refuses drops and masks the card holder's columns.
const scsPolicy = `version: 2
mask:
  - id: cardholder
    columns: [card, email, name]
    method: redact
deny:
  - id: no-drop
    kinds: [DROP, TRUNCATE]
    reason: dropping data needs a change ticket
`

// The attack: with standard_conforming_strings on, two string constants;
// with it off, one constant, then a DROP and a comment.
const scsDrop = `SELECT 'x\' , ' ; DROP TABLE victim; -- '`

// TestStandardConformingStringsOff: whatever turns
// standard_conforming_strings off — SET, set_config, the database's own
// settings — the proxy reads statements as the server does, against a
// real PostgreSQL: a DROP inside what would be a string constant with the
// setting on is refused, a masked column read inside one is refused, a
// statement pipelined behind one that changes the setting is refused when
// the two readings differ, and a plain constant with an escaped quote runs
// and is recorded as the escape string it is.
func TestStandardConformingStringsOff(t *testing.T) {
	f := startWithPolicyText(t, scsPolicy)
	direct := f.direct(t)
	if _, err := direct.Exec(t.Context(), `CREATE TABLE victim (id int);
		CREATE TABLE cards (id int, card text, email text, name text);
		INSERT INTO cards VALUES (1, '4242424242424242', 'zelda@example.com', 'Zelda Quartermain')`); err != nil {
		t.Fatal(err)
	}
	intact := func(what string) {
		t.Helper()
		var n int
		if err := direct.QueryRow(t.Context(), "SELECT count(*) FROM pg_tables WHERE tablename = 'victim'").Scan(&n); err != nil || n != 1 {
			t.Fatalf("%s: table victim dropped (%d, %v)", what, n, err)
		}
	}
	url := f.url("alice", "alice-secret")
	for _, off := range []string{"SELECT set_config('standard_conforming_strings', 'off', false)", "SET standard_conforming_strings = off"} {
		out, err := psql(t, url, off, scsDrop)
		if err == nil || !strings.Contains(out, "blocked by policy rule no-drop") {
			t.Errorf("%s; %s: not refused (%v):\n%s", off, scsDrop, err, out)
		}
		intact(off)
		read := `SELECT 'a\' , ' , reverse(card) AS r, name::text AS n FROM cards -- '`
		out, err = psql(t, url, off, read)
		if err == nil || !strings.Contains(out, "builtin-masked-columns-bare") || leaked(out) != "" {
			t.Errorf("%s; %s: not refused (%v):\n%s", off, read, err, out)
		}
	}
	// Escaped quotes run, and are recorded as the server read them.
	out, err := psql(t, url, "SET standard_conforming_strings = off", `SELECT 'it\'s' AS v`)
	if err != nil || !strings.Contains(out, "it's") {
		t.Errorf("an escaped quote with the setting off: %v\n%s", err, out)
	}

	// Pipelined behind the statement that turns it off.
	pc, err := pgconn.Connect(t.Context(), url)
	if err != nil {
		t.Fatal(err)
	}
	fe := pc.Frontend()
	fe.Send(&pgproto3.Query{String: "SET standard_conforming_strings = off"})
	fe.Send(&pgproto3.Query{String: scsDrop})
	if err := fe.Flush(); err != nil {
		t.Fatal(err)
	}
	var errs []string
	for ready := 0; ready < 2; {
		m, err := fe.Receive()
		if err != nil {
			t.Fatal(err)
		}
		switch m := m.(type) {
		case *pgproto3.ErrorResponse:
			errs = append(errs, m.Message)
		case *pgproto3.ReadyForQuery:
			ready++
		}
	}
	pc.Close(context.Background())
	// Refused as ambiguous, or as a DROP when the SET completed first.
	if len(errs) != 1 || !strings.Contains(errs[0], "standard_conforming_strings on and off") && !strings.Contains(errs[0], "no-drop") {
		t.Errorf("pipelined: errors %q", errs)
	}
	intact("pipelined")

	// The database's own setting, reported when the session starts.
	if _, err := direct.Exec(t.Context(), "ALTER DATABASE "+f.db+" SET standard_conforming_strings = off"); err != nil {
		t.Fatal(err)
	}
	out, err = psql(t, url, scsDrop)
	if err == nil || !strings.Contains(out, "blocked by policy rule no-drop") {
		t.Errorf("database setting: %s: not refused (%v):\n%s", scsDrop, err, out)
	}
	intact("database setting")
	// The extended protocol's Parse is read the same way.
	if _, err := pgxExec(t, f, `SELECT 'x\' , $1::text ; DROP TABLE victim; -- '`, "a"); err == nil {
		t.Error("extended: not refused")
	}
	intact("extended")

	var recorded bool
	for _, r := range f.eventsOf(t) {
		if r.ev.Type != events.CommandExecuted {
			continue
		}
		stmt, _ := r.payload["statement"].(string)
		if strings.Contains(stmt, "DROP") {
			t.Errorf("recorded as executed: %q", stmt)
		}
		recorded = recorded || stmt == `SELECT E'it\'s' AS v`
	}
	if !recorded {
		t.Error(`SELECT 'it\'s' is not recorded as SELECT E'it\'s'`)
	}
}
