package pgproxy_test

import (
	"strings"
	"testing"

	"github.com/auditledger/auditledger/events"
)

// TestMaskedColumnIntoSideEffectsRefused: a masked column read only in
// WHERE cannot be handed to a function that keeps it for a later
// statement — a large object's number, a notification, the random seed —
// against a real PostgreSQL: the proxy asks the catalog which functions
// are volatile and refuses those given row values while the statement
// refers to a masked column, through psql and the extended protocol, with
// no list of such functions; no large object is created. Stable and
// immutable functions, and volatile ones in statements that read no
// masked column, still run.
func TestMaskedColumnIntoSideEffectsRefused(t *testing.T) {
	f := startCards(t)
	attacks := []string{
		"SELECT 1 FROM cards WHERE lo_create(length(name)) > 0",
		"SELECT 1 WHERE lo_create((SELECT length(email) FROM cards LIMIT 1)) > 0",
		"SELECT 1 FROM cards c WHERE setseed(ascii(c.name) / 1000.0) IS NULL",
		"SELECT 1 FROM (SELECT card AS k FROM cards) x WHERE pg_catalog.lo_create(length(x.k)) > 0",
		"SELECT 1 FROM cards WHERE pg_notify('c', email) IS NULL",
	}
	for _, sql := range attacks {
		out, err := psql(t, f.url("alice", "alice-secret"), sql)
		if err == nil || !strings.Contains(out, "builtin-masked-side-effect") {
			t.Errorf("%q: not refused (%v):\n%s", sql, err, out)
		}
	}
	if _, err := pgxExec(t, f, "SELECT 1 FROM cards WHERE lo_create(length(card) + $1) > 0", 1); err == nil ||
		!strings.Contains(err.Error(), "builtin-masked-side-effect") {
		t.Errorf("extended: %v", err)
	}
	var n int
	if err := f.direct(t).QueryRow(t.Context(), "SELECT count(*) FROM pg_largeobject_metadata").Scan(&n); err != nil || n != 0 {
		t.Errorf("%d large objects (%v), want none", n, err)
	}
	for _, sql := range []string{
		"SELECT card FROM cards WHERE lower(email) LIKE '%example%' AND length(name) > now()::date - current_date",
		"SELECT lo_create(id + 1000) FROM cards",
	} {
		if out, err := psql(t, f.url("alice", "alice-secret"), sql); err != nil {
			t.Errorf("%q: %v\n%s", sql, err, out)
		}
	}
	blocked := 0
	for _, r := range f.eventsOf(t) {
		if r.ev.Type == events.CommandBlocked && r.payload["rule"] == "builtin-masked-side-effect" {
			blocked++
		}
	}
	if blocked != len(attacks)+1 {
		t.Errorf("%d refusals recorded, want %d", blocked, len(attacks)+1)
	}
}
