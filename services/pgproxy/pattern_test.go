package pgproxy_test

import (
	"strings"
	"testing"

	"github.com/auditledger/auditledger/events"
)

// TestPatternMatchesCanonicalText: a pattern rule matches the statement
// as the server reads it, not only as written, against a real PostgreSQL:
// pg_sleep called through a Unicode-escaped, quoted or schema-qualified
// identifier, or with a comment inside the qualified name, is refused like
// the plain call, and the refusal recorded.
func TestPatternMatchesCanonicalText(t *testing.T) {
	f := startWithPolicyText(t, "version: 2\ndeny:\n  - id: no-sleep\n    pattern: \"(?i)pg_sleep\"\n    reason: no sleep\n")
	attacks := []string{
		"SELECT pg_sleep(0.01)",
		`SELECT U&"pg\005fsleep"(0.01)`,
		`SELECT U&"pg!005fsleep" UESCAPE '!' (0.01)`,
		`SELECT "pg_sleep"(0.01)`,
		`SELECT pg_catalog . /* x */ "pg_sleep"(0.01)`,
	}
	for _, sql := range attacks {
		out, err := psql(t, f.url("alice", "alice-secret"), sql)
		if err == nil || !strings.Contains(out, "blocked by policy rule no-sleep") {
			t.Errorf("%q: not refused (%v):\n%s", sql, err, out)
		}
	}
	if out, err := psql(t, f.url("alice", "alice-secret"), `SELECT U&"a\0062c" FROM (SELECT 1 AS abc) t`); err != nil {
		t.Errorf("an escaped identifier no pattern names: %v\n%s", err, out)
	}
	blocked := 0
	for _, r := range f.eventsOf(t) {
		if r.ev.Type == events.CommandBlocked && r.payload["rule"] == "no-sleep" {
			blocked++
		}
	}
	if blocked != len(attacks) {
		t.Errorf("%d refusals recorded, want %d", blocked, len(attacks))
	}
}
