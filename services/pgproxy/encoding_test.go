package pgproxy_test

import (
	"strings"
	"testing"

	"github.com/auditledger/auditledger/events"
	"github.com/auditledger/auditledger/services/gateway/gatewaytest"
)

// TestClientEncodingRead: the proxy reads a statement in the session's
// client_encoding, as the server does, against a real PostgreSQL: a card
// number written with LATIN1 no-break spaces (byte 0xA0) is recorded by
// its placeholder, not sealed in clear; while a rule detects values in
// results, a client in another encoding than UTF-8 (whose results it
// could not read) has its statements refused until it sets UTF8 again;
// an encoding the proxy cannot decode has its non-ASCII statements
// refused.
func TestClientEncodingRead(t *testing.T) {
	f := start(t) // no rule: every statement runs, and is recorded
	latin1Card := "4539\xa05787\xa06362\xa01486"
	out, err := psql(t, f.url("alice", "alice-secret"), "SET client_encoding = 'LATIN1'", "SELECT '"+latin1Card+"' AS v")
	if err != nil || !strings.Contains(out, latin1Card) {
		t.Fatalf("LATIN1: %v\n%s", err, out)
	}
	f.checkPairs(t)
	var recorded bool
	for _, r := range f.eventsOf(t) {
		if stmt, _ := r.payload["statement"].(string); r.ev.Type == events.CommandExecuted && strings.HasPrefix(stmt, "SELECT '") {
			recorded = true
			if !strings.Contains(stmt, "[REDACTED:credit_card]") {
				t.Errorf("recorded as %q", stmt)
			}
		}
	}
	if !recorded {
		t.Error("the statement is not recorded")
	}
	gatewaytest.CheckAbsent(t, gatewaytest.BusBytes(t, f.js), "4539578763621486", "1486\xa0", "\xa05787")

	// Not decodable: refused when not ASCII, ASCII still runs.
	out, err = psql(t, f.url("alice", "alice-secret"), "SET client_encoding = 'EUC_TW'", "SELECT 1", "SELECT '\xa4\xa1' AS v")
	if err == nil || !strings.Contains(out, "client_encoding EUC_TW is not one the audit proxy can read") {
		t.Errorf("EUC_TW: %v\n%s", err, out)
	}

	// A rule that detects values in results: LATIN1 refused, UTF8 again runs.
	d := startWithPolicyText(t, "version: 2\nmask:\n  - id: cards\n    detect: [credit_card]\n    method: redact\n")
	if _, err := d.direct(t).Exec(t.Context(), "UPDATE customers SET note = E'4539\\u00a05787\\u00a06362\\u00a01486'"); err != nil {
		t.Fatal(err)
	}
	out, err = psql(t, d.url("alice", "alice-secret"), "SET client_encoding = 'LATIN1'", "SELECT note FROM customers")
	if err == nil || !strings.Contains(out, "client_encoding is LATIN1") || strings.Contains(out, "1486") {
		t.Errorf("LATIN1 with a detector rule: %v\n%s", err, out)
	}
	out, err = psql(t, d.url("alice", "alice-secret"), "SET client_encoding = 'LATIN1'", "SET client_encoding = 'UTF8'", "SELECT note FROM customers")
	if err != nil || strings.Contains(out, "5787") {
		t.Errorf("back to UTF8: %v\n%s", err, out)
	}
}
