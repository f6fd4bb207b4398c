package pgproxy_test

import (
	"strings"
	"testing"

	"github.com/auditledger/auditledger/events"
)

// TestMaskedColumnIntoSideEffectsRefused: a masked column read only in
// WHERE cannot be handed to a function that keeps it for a later
// statement — an advisory lock read back from pg_locks, a notification —
// against a real PostgreSQL: the proxy asks the catalog which functions
// are volatile and refuses those given row values while the statement
// refers to a masked column, through psql and the extended protocol;
// pg_locks then holds no value. Stable and immutable functions, and
// volatile ones in statements that read no masked column, still run.
func TestMaskedColumnIntoSideEffectsRefused(t *testing.T) {
	f := startCards(t)
	attacks := []string{
		"SELECT 1 FROM cards WHERE pg_advisory_lock(reverse(card)::bigint) IS NOT NULL",
		"SELECT 1 FROM cards WHERE pg_try_advisory_lock((SELECT length(email) FROM cards LIMIT 1)) AND id = 1",
		"SELECT 1 FROM cards c WHERE pg_advisory_lock(ascii(c.name), id) IS NOT NULL",
		"SELECT 1 FROM (SELECT card AS k FROM cards) x WHERE pg_catalog.pg_advisory_lock(reverse(x.k)::bigint) IS NOT NULL",
		"SELECT 1 FROM cards WHERE pg_notify('c', email) IS NULL",
	}
	for _, sql := range attacks {
		out, err := psql(t, f.url("alice", "alice-secret"), sql, "SELECT (classid::bigint << 32) | objid::bigint FROM pg_locks WHERE locktype = 'advisory'")
		if err == nil || !strings.Contains(out, "builtin-masked-side-effect") || strings.Contains(out, "2424242424242424") {
			t.Errorf("%q: not refused (%v):\n%s", sql, err, out)
		}
	}
	if _, err := pgxExec(t, f, "SELECT 1 FROM cards WHERE pg_advisory_lock(reverse(card)::bigint) IS NOT NULL AND id = $1", 1); err == nil ||
		!strings.Contains(err.Error(), "builtin-masked-side-effect") {
		t.Errorf("extended: %v", err)
	}
	for _, sql := range []string{
		"SELECT card FROM cards WHERE lower(email) LIKE '%example%' AND length(name) > now()::date - current_date",
		"SELECT pg_advisory_lock(id) FROM cards",
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
