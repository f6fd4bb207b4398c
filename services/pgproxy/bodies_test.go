package pgproxy_test

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/auditledger/auditledger/events"
	"github.com/auditledger/auditledger/services/gateway/gatewaytest"
)

// bodiesPolicy masks email and name for everyone but ops, for whom the
// code below runs.
const bodiesPolicy = `version: 2
mask:
  - id: people
    columns: [email, name]
    method: redact
    exempt: {users: [ops]}
`

// TestCodeBodiesRecordedByPlaceholder: values written against a masked
// column inside code — a DO block, SQL and PL/pgSQL function bodies,
// quoted or dollar-quoted, an EXECUTE string nested in them, a variable
// that carries the value to the column — are recorded as the masked
// column placeholder, whether the statement is refused (alice) or runs
// (ops, exempt); a body that builds its query at run time has every
// literal replaced. Through psql and pgx, against a real PostgreSQL.
func TestCodeBodiesRecordedByPlaceholder(t *testing.T) {
	f := startWithPolicyText(t, bodiesPolicy)
	f.users["ops"] = "ops-secret"
	if _, err := f.direct(t).Exec(t.Context(), `CREATE TABLE people (id int, email text, name text, note text)`); err != nil {
		t.Fatal(err)
	}
	email, email2 := gatewaytest.Email(t, "body"), gatewaytest.Email(t, "exec")
	// Names no detector recognises: only the column says what they are.
	const name1, name2, name3, name4, name5 = "Quillon Vantrease", "Brisbane Okonkwo", "Thaddeus Wolverton", "Marisol Pettigrew", "Ignatius Farquhar"
	stmts := []string{
		fmt.Sprintf("DO $$ BEGIN PERFORM 1 FROM people WHERE email = '%s'; END $$", email),
		fmt.Sprintf("DO $outer$ DECLARE v text := '%s'; BEGIN PERFORM 1 FROM people WHERE name = v; EXECUTE $in$SELECT 1 FROM people WHERE name = '%s'$in$; EXECUTE 'SELECT 1 FROM people WHERE email = ''%s'''; END $outer$", name1, name2, email2),
		fmt.Sprintf("CREATE FUNCTION n_named() RETURNS bigint LANGUAGE sql AS 'SELECT count(*) FROM people WHERE name = ''%s'''", name3),
		fmt.Sprintf("CREATE FUNCTION n_pl(p int) RETURNS bigint LANGUAGE plpgsql AS $f$ BEGIN RETURN (SELECT count(*) FROM people WHERE name = '%s' AND id > p); END $f$", name4),
		fmt.Sprintf("DO $$ BEGIN EXECUTE 'SELECT 1 FROM people WHERE name = ' || quote_literal('%s'); END $$", name5),
	}
	for _, q := range stmts {
		out, err := psql(t, f.url("alice", "alice-secret"), q)
		if err == nil || !strings.Contains(out, "builtin-unjudgeable") {
			t.Errorf("alice: %q not refused (%v):\n%s", q, err, out)
		}
	}
	for _, q := range stmts[:2] {
		if out, err := psql(t, f.url("ops", "ops-secret"), q); err != nil {
			t.Fatalf("ops: %q: %v\n%s", q, err, out)
		}
	}
	conn, err := pgx.Connect(t.Context(), f.url("ops", "ops-secret"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	for _, q := range stmts[2:] {
		if _, err := conn.Exec(t.Context(), q); err != nil {
			t.Fatalf("ops (pgx): %q: %v", q, err)
		}
	}
	var n int64
	if err := conn.QueryRow(t.Context(), "SELECT n_named() + n_pl(0)").Scan(&n); err != nil || n != 0 {
		t.Fatalf("the functions created run: %d, %v", n, err)
	}
	f.checkPairs(t)
	stored := gatewaytest.BusBytes(t, f.js)
	gatewaytest.CheckAbsent(t, stored, email, email2, name1, name2, name3, name4, name5)
	for _, want := range []string{"[REDACTED:masked_column]", "[REDACTED:unjudged_literal]", "FROM people WHERE name = v"} {
		if !strings.Contains(string(stored), want) {
			t.Errorf("%q is not on the bus", want)
		}
	}
	executed, blocked := 0, 0
	for _, r := range f.eventsOf(t) {
		switch r.ev.Type {
		case events.CommandExecuted:
			if s := fmt.Sprint(r.payload["statement"]); strings.HasPrefix(s, "DO ") || strings.HasPrefix(s, "CREATE FUNCTION") {
				executed++
			}
		case events.CommandBlocked:
			blocked++
		}
	}
	if executed != len(stmts) || blocked != len(stmts) {
		t.Errorf("%d statements recorded as executed, %d as blocked; want %d of each", executed, blocked, len(stmts))
	}
}
