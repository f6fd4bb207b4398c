package pgproxy_test

import (
	"encoding/binary"
	"fmt"
	"strconv"
	"strings"
	"testing"

	"github.com/auditledger/auditledger/events"
	"github.com/auditledger/auditledger/services/gateway/gatewaytest"
)

// TestMaskedColumnNumbersWithheldFromErrors: a masked column read only in
// WHERE, turned into a number the server puts unquoted in its error (an
// index out of range, a character code), reaches neither the client nor
// the recorded error_message, against a real PostgreSQL: the message is
// replaced by one naming the SQLSTATE and the rule. Errors of a class
// that names objects, not values, keep their message.
func TestMaskedColumnNumbersWithheldFromErrors(t *testing.T) {
	f := startCards(t)
	emailNum := strconv.FormatInt(int64(binary.BigEndian.Uint64([]byte("zelda@ex"))), 10)
	secrets := []string{"2424242424242424", emailNum, strconv.Itoa(1114112 + 'Z')}
	for _, q := range []string{
		`SELECT 1 FROM cards WHERE set_bit('\x00'::bytea, reverse(card)::bigint, 0) IS NULL`,
		`SELECT 1 FROM cards WHERE set_bit('\x00'::bytea, ('x' || encode(convert_to(substr(email, 1, 8), 'UTF8'), 'hex'))::bit(64)::bigint, 0) IS NULL`,
		`SELECT 1 FROM cards c WHERE chr(ascii(substr(c.name, 1, 1)) + 1114112) IS NULL`,
		`SELECT 1 FROM cards t WHERE chr(ascii(substr(t::text, 4, 1)) + 1114112) IS NULL`,
	} {
		out, err := psql(t, f.url("alice", "alice-secret"), q)
		if err == nil || !strings.Contains(out, "is withheld") || !strings.Contains(out, "cardholder") {
			t.Errorf("%q: want the withheld message (%v):\n%s", q, err, out)
		}
		for _, s := range secrets {
			if strings.Contains(out, s) {
				t.Errorf("%q: the error holds %s:\n%s", q, s, out)
			}
		}
	}
	// Prepared in SQL: judged by what EXECUTE runs.
	out, err := psql(t, f.url("alice", "alice-secret"), `PREPARE leak AS SELECT 1 FROM cards WHERE set_bit('\x00'::bytea, reverse(card)::bigint, 0) IS NULL`, "EXECUTE leak")
	if err == nil || !strings.Contains(out, "is withheld") || strings.Contains(out, secrets[0]) {
		t.Errorf("EXECUTE: want the withheld message (%v):\n%s", err, out)
	}
	// Naming objects, not values: kept.
	if out, err := psql(t, f.url("alice", "alice-secret"), "SELECT card FROM nosuch"); err == nil || !strings.Contains(out, "does not exist") {
		t.Errorf("an undefined table: %v\n%s", err, out)
	}
	// Reading no masked column: the server's message, numbers withheld.
	if out, err := psql(t, f.url("alice", "alice-secret"), `SELECT set_bit('\x00'::bytea, id + 99, 0) FROM cards`); err == nil || !strings.Contains(out, "out of valid range") || strings.Contains(out, "is withheld") {
		t.Errorf("no masked column: %v\n%s", err, out)
	}
	f.checkPairs(t)
	withheld := 0
	for _, r := range f.eventsOf(t) {
		if r.ev.Type == events.ResponseDigest && strings.Contains(fmt.Sprint(r.payload["error_message"]), "is withheld") {
			withheld++
		}
	}
	if withheld != 5 {
		t.Errorf("%d recorded errors withheld, want 5", withheld)
	}
	gatewaytest.CheckAbsent(t, gatewaytest.BusBytes(t, f.js), secrets...)
}
