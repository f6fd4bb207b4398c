package pgproxy_test

import (
	"strings"
	"testing"

	"github.com/auditledger/auditledger/events"
	"github.com/auditledger/auditledger/services/pgproxy"
)

// effectPolicy refuses DELETE and UPDATE that name no rows, and creating
// relations; an approval rule holds CREATE for another requester.
const effectPolicy = `version: 2
deny:
  - id: delete-needs-where
    kinds: [DELETE, UPDATE]
    require_where: true
    reason: every DELETE and UPDATE names its rows
  - id: no-create
    kinds: [CREATE]
    reason: relations are created by migrations
`

// TestStatementsJudgedByEffect: a statement is judged by every action it
// can perform, against a real PostgreSQL: MERGE's WHEN … THEN DELETE and
// THEN UPDATE on every row are refused like DELETE and UPDATE without
// WHERE, INSERT … ON CONFLICT DO UPDATE fed by a query like UPDATE, and
// SELECT … INTO like the CREATE TABLE AS it is; the rows and the catalog
// stay as they were, and each refusal is recorded.
func TestStatementsJudgedByEffect(t *testing.T) {
	f := startWithPolicyText(t, effectPolicy)
	direct := f.direct(t)
	if _, err := direct.Exec(t.Context(), "CREATE TABLE orders (id int PRIMARY KEY, status text); INSERT INTO orders VALUES (1, 'a'), (2, 'b')"); err != nil {
		t.Fatal(err)
	}
	attacks := []string{
		"MERGE INTO orders o USING (SELECT 1) s ON true WHEN MATCHED THEN DELETE",
		"MERGE INTO orders o USING (SELECT 1) s ON true WHEN MATCHED THEN UPDATE SET status = 'x'",
		"MERGE INTO orders o USING (SELECT 1 AS id) s ON o.id = s.id WHEN NOT MATCHED THEN INSERT VALUES (9, 'n') WHEN MATCHED THEN DO NOTHING; MERGE INTO orders USING (SELECT 1) s ON 1 = 1 WHEN MATCHED AND true THEN DELETE",
		"INSERT INTO orders SELECT id, 'x' FROM orders ON CONFLICT (id) DO UPDATE SET status = 'x'",
		"SELECT 1 AS a INTO newt",
		"SELECT * INTO TEMP newt FROM orders",
		"WITH c AS (SELECT 1 AS a) SELECT a INTO UNLOGGED newt FROM c",
	}
	for _, sql := range attacks {
		out, err := psql(t, f.url("alice", "alice-secret"), sql)
		if err == nil || !strings.Contains(out, "blocked by policy rule") {
			t.Errorf("%q: not refused (%v):\n%s", sql, err, out)
		}
	}
	var rows, statuses, tables int
	direct.QueryRow(t.Context(), "SELECT count(*), count(*) FILTER (WHERE status = 'x') FROM orders").Scan(&rows, &statuses)
	direct.QueryRow(t.Context(), "SELECT count(*) FROM pg_class WHERE relname = 'newt'").Scan(&tables)
	if rows != 2 || statuses != 0 || tables != 0 {
		t.Errorf("orders has %d rows, %d updated; %d tables newt: want 2, 0, 0", rows, statuses, tables)
	}
	// What names its rows still runs.
	for _, sql := range []string{
		"MERGE INTO orders o USING (SELECT 1 AS id) s ON o.id = s.id WHEN MATCHED THEN UPDATE SET status = 'm'",
		"INSERT INTO orders VALUES (1, 'u') ON CONFLICT (id) DO UPDATE SET status = excluded.status",
		"SELECT 1 AS a",
	} {
		if out, err := psql(t, f.url("alice", "alice-secret"), sql); err != nil {
			t.Errorf("%q: %v\n%s", sql, err, out)
		}
	}
	blocked := 0
	for _, r := range f.eventsOf(t) {
		if r.ev.Type == events.CommandBlocked {
			blocked++
		}
	}
	if blocked != len(attacks) {
		t.Errorf("%d refusals recorded, want %d", blocked, len(attacks))
	}
	// An approval rule on CREATE holds SELECT … INTO.
	p, err := pgproxy.ParsePolicy("p.yaml", []byte("version: 2\napprove:\n  - id: ddl\n    kinds: [CREATE]\n"))
	if err != nil {
		t.Fatal(err)
	}
	for _, sql := range []string{"SELECT 1 AS a INTO newt", "IMPORT FOREIGN SCHEMA s FROM SERVER srv INTO public"} {
		if r := p.NeedsApproval(sql); r == nil {
			t.Errorf("%q not held by an approval rule on CREATE", sql)
		}
	}
	// WHEN NOT MATCHED BY SOURCE (PostgreSQL 17) deletes the rows the
	// join does not select: its ON names no rows it acts on.
	q, err := pgproxy.ParsePolicy("p.yaml", []byte(effectPolicy))
	if err != nil {
		t.Fatal(err)
	}
	if r := q.Denied("MERGE INTO orders o USING (SELECT -1 AS id) s ON o.id = s.id WHEN NOT MATCHED BY SOURCE THEN DELETE"); r == nil || r.ID != "delete-needs-where" {
		t.Errorf("WHEN NOT MATCHED BY SOURCE THEN DELETE: refused by %v", r)
	}
	if r := q.Denied("MERGE INTO orders o USING (SELECT -1 AS id) s ON o.id = s.id WHEN NOT MATCHED BY SOURCE AND o.status = 'x' THEN DELETE"); r != nil {
		t.Errorf("WHEN NOT MATCHED BY SOURCE AND … THEN DELETE: refused by %s", r.ID)
	}
}
