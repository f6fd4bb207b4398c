package pgproxy_test

import (
	"context"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/auditledger/auditledger/events"
)

// TestWholeRowsByCatalog: a whole-row read (row_to_json, to_jsonb, SELECT
// t, t.* in a set operation) and a relation rename run when the catalog
// says the relation has no masked column — in any schema, through an
// alias or a CTE over it — and are refused when it has one, when a
// view, subquery or CTE reads one, when the rows are a function's, or
// when the relation is not in the catalog yet (created in the same
// transaction). Through psql and pgx against a real PostgreSQL.
func TestWholeRowsByCatalog(t *testing.T) {
	f := startCards(t)
	if _, err := f.direct(t).Exec(t.Context(), `CREATE TABLE plain (id int, note text);
		INSERT INTO plain VALUES (1, 'plain-row-note');
		CREATE SCHEMA other; CREATE TABLE other.things (id int, label text);
		INSERT INTO other.things VALUES (1, 'other-thing-label');
		CREATE TABLE other.cards (id int, note text);
		CREATE VIEW v_cards AS SELECT id, email AS contact FROM cards;
		CREATE TYPE person AS (label text, email text);
		CREATE TABLE holders (id int, who person[]);
		GRANT ALL ON ALL TABLES IN SCHEMA public, other TO PUBLIC; GRANT ALL ON SCHEMA other TO PUBLIC`); err != nil {
		t.Fatal(err)
	}
	url := f.url("alice", "alice-secret")
	for _, c := range []struct{ sql, want string }{
		{"SELECT row_to_json(p) FROM plain p", "plain-row-note"},
		{"SELECT to_jsonb(t) FROM other.things t", "other-thing-label"},
		{"WITH w AS (SELECT * FROM plain) SELECT w FROM w", "plain-row-note"},
		{"SELECT p.* FROM plain p UNION ALL SELECT t.* FROM other.things t", "other-thing-label"},
		{"SELECT row_to_json(p) FROM plain p JOIN cards c ON c.id = p.id", "plain-row-note"},
	} {
		out, err := psql(t, url, c.sql)
		if err != nil || !strings.Contains(out, c.want) {
			t.Errorf("%q: want %q (%v):\n%s", c.sql, c.want, err, out)
		}
	}
	refused := []string{
		"SELECT row_to_json(c) FROM cards c",
		"SELECT to_jsonb(c) FROM public.cards c",
		"SELECT json_agg(public.cards.*) FROM public.cards",
		"SELECT c FROM cards c",
		"SELECT row_to_json(x) FROM (SELECT * FROM cards) x",
		"WITH w AS (SELECT id, email FROM cards) SELECT to_jsonb(w) FROM w",
		"SELECT row_to_json(v) FROM v_cards v",
		"SELECT p.* FROM plain p UNION ALL SELECT c.id, c.note FROM cards c UNION ALL SELECT * FROM v_cards",
		"SELECT row_to_json(f) FROM generate_series(1, 2) f",
		// A composite-typed column with an attribute a rule masks.
		"SELECT to_jsonb(h) FROM holders h",
		"SELECT (h.who[1]).email AS x FROM holders h",
		// other.cards has no masked column, but the name is not
		// qualified: the cards of any schema count.
		"SELECT row_to_json(cards) FROM cards",
		"BEGIN; CREATE TABLE fresh (id int, email text); SELECT row_to_json(fresh) FROM fresh; COMMIT",
		"ALTER TABLE cards RENAME TO cards2",
		"ALTER VIEW v_cards RENAME TO v2",
	}
	for _, q := range refused {
		out, err := psql(t, url, q)
		if err == nil || !strings.Contains(out, "blocked by policy rule builtin-") {
			t.Errorf("%q: not refused (%v):\n%s", q, err, out)
		}
		if s := leaked(out); s != "" {
			t.Errorf("%q: the output holds %q:\n%s", q, s, out)
		}
	}
	conn, err := pgx.Connect(t.Context(), url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	var js string
	if err := conn.QueryRow(t.Context(), "SELECT row_to_json(p)::text FROM plain p").Scan(&js); err != nil || !strings.Contains(js, "plain-row-note") {
		t.Errorf("pgx: row_to_json of plain: %q, %v", js, err)
	}
	if err := conn.QueryRow(t.Context(), "SELECT row_to_json(c)::text FROM cards c").Scan(&js); err == nil || !strings.Contains(err.Error(), "builtin-masked-columns-bare") {
		t.Errorf("pgx: row_to_json of cards: %q, %v", js, err)
	}
	if _, err := conn.Exec(t.Context(), "ALTER TABLE plain RENAME TO plain_renamed"); err != nil {
		t.Errorf("pgx: renaming a relation without a masked column: %v", err)
	}
	// A relation that gains a masked column is judged by it at once.
	if _, err := f.direct(t).Exec(t.Context(), "ALTER TABLE plain_renamed ADD COLUMN email text"); err != nil {
		t.Fatal(err)
	}
	if err := conn.QueryRow(t.Context(), "SELECT row_to_json(p)::text FROM plain_renamed p").Scan(&js); err == nil {
		t.Errorf("row_to_json of a relation that gained a masked column ran: %s", js)
	}
	// A relation being altered in a transaction still open may be gaining
	// a masked column the catalog does not show yet.
	tx, err := f.direct(t).Begin(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tx.Exec(t.Context(), "CREATE TABLE other.plain2 (id int); ALTER TABLE other.things ADD COLUMN name text"); err != nil {
		t.Fatal(err)
	}
	if err := conn.QueryRow(t.Context(), "SELECT row_to_json(t)::text FROM other.things t").Scan(&js); err == nil || !strings.Contains(err.Error(), "being altered") {
		t.Errorf("row_to_json of a relation under an open ALTER: %q, %v", js, err)
	}
	if err := tx.Rollback(t.Context()); err != nil {
		t.Fatal(err)
	}
	if err := conn.QueryRow(t.Context(), "SELECT row_to_json(t)::text FROM other.things t").Scan(&js); err != nil {
		t.Errorf("row_to_json of other.things after the rollback: %v", err)
	}
	// A temporary table created in a transaction still open takes the
	// name first in its session, unseen by the catalog; it could have
	// been given a masked column's values (UPDATE … SET email = c.email).
	tx, err = conn.Begin(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tx.Exec(t.Context(), "CREATE TEMP TABLE things (id int, email text)"); err != nil {
		t.Fatal(err)
	}
	if err := tx.QueryRow(t.Context(), "SELECT row_to_json(t)::text FROM things t").Scan(&js); err == nil || !strings.Contains(err.Error(), "being created") {
		t.Errorf("row_to_json of a name a new temporary table may shadow: %q, %v", js, err)
	}
	if err := tx.Rollback(t.Context()); err != nil {
		t.Fatal(err)
	}
	blocked := 0
	for _, r := range f.eventsOf(t) {
		if r.ev.Type == events.CommandBlocked {
			blocked++
		}
	}
	if blocked != len(refused)+4 {
		t.Errorf("%d refusals recorded, want %d", blocked, len(refused)+4)
	}
}
