package pgproxy_test

import (
	"bytes"
	"encoding/hex"
	"fmt"
	"strings"
	"testing"

	"github.com/auditledger/auditledger/services/gateway/gatewaytest"
)

// Values written in forms PostgreSQL reads otherwise than as typed — a
// string continued on the next line, U&'…' UESCAPE, a bytea in hex,
// JSON escapes, textcat, OPERATOR(pg_catalog.||), overlay, initcap, an
// array literal joined — run through the proxy with psql, and neither
// the value nor the encoded text that spells it reaches the bus.
func TestEncodedValuesNeverReachTheBus(t *testing.T) {
	f := start(t)
	card, email := strings.ReplaceAll(gatewaytest.Card(t), " ", ""), gatewaytest.Email(t, "enc")
	local, domain, _ := strings.Cut(email, "@")
	uesc := ""
	for _, c := range card {
		uesc += fmt.Sprintf("!%04x", c)
	}
	hexEmail := hex.EncodeToString([]byte(email))
	groups := []string{card[:4], card[4:8], card[8:12], card[12:]}
	cases := []struct{ sql, marker string }{
		{fmt.Sprintf("SELECT '%s@'\n'%s'", local, domain), local + "@'"},
		{fmt.Sprintf("SELECT U&'%s' UESCAPE '!'", uesc), uesc},
		{fmt.Sprintf(`SELECT convert_from('\x%s'::bytea, 'UTF8')`, hexEmail), hexEmail},
		{fmt.Sprintf(`SELECT '{"e":"%s\u0040%s"}'::jsonb`, local, domain), local + `\\u0040`},
		{fmt.Sprintf("SELECT textcat('%s@', '%s')", local, domain), local + "@'"},
		{fmt.Sprintf("SELECT '%s@' operator(pg_catalog.||) '%s'", local, domain), local + "@' operator"},
		{fmt.Sprintf("SELECT initcap('%s') || '@%s'", local, domain), "'@" + domain},
		{fmt.Sprintf("SELECT overlay('%sxxx%s' placing '%s' from 2)", card[:1], card[4:], card[1:4]), card[4:]},
		{fmt.Sprintf(`SELECT array_to_string('{"%s"}'::text[], '')`, strings.Join(groups, `","`)), strings.Join(groups, `\",\"`)},
	}
	url := f.url("alice", "alice-secret")
	for _, c := range cases {
		if out, err := psql(t, url, c.sql); err != nil {
			t.Fatalf("%s: %v\n%s", c.sql, err, out)
		}
	}
	f.checkPairs(t)
	stored := gatewaytest.BusBytes(t, f.js)
	if !bytes.Contains(stored, []byte("[REDACTED:credit_card]")) || !bytes.Contains(stored, []byte("[REDACTED:email]")) {
		t.Errorf("no placeholder on the bus: the statements were not recorded?")
	}
	for _, c := range cases {
		if bytes.Contains(stored, []byte(c.marker)) {
			t.Errorf("the bus holds %q, from %q", c.marker, c.sql)
		}
	}
	gatewaytest.CheckAbsent(t, stored, card, email)
}

// Values a statement computes from parts no literal holds whole —
// arithmetic on numbers, pieces cut by substr, left and right — run
// through the proxy with psql, and the value is judged as the server
// computes it: none of the parts reaches the bus.
func TestComputedValuesNeverReachTheBus(t *testing.T) {
	f := start(t)
	card := strings.ReplaceAll(gatewaytest.Card(t), " ", "")
	hi, lo := card[:8], card[8:]
	var pieces []string
	for i := 0; i < len(card); i += 2 {
		pieces = append(pieces, fmt.Sprintf("substr('%sxx',1,2)", card[i:i+2]))
	}
	cases := []struct{ sql, marker string }{
		{fmt.Sprintf("SELECT %s::bigint*100000000+%s", hi, lo), hi + "::bigint"},
		{fmt.Sprintf("SELECT (%s::bigint * 100000000 + %s)::text", hi, lo), hi + "::bigint"},
		{"SELECT " + strings.Join(pieces, "||"), pieces[1]},
		{fmt.Sprintf("SELECT left('%sabc', 8) || right('xyz%s', 8)", hi, lo), hi + "abc"},
		{fmt.Sprintf("SELECT substring('..%s..' from 3 for 8) || '%s'", hi, lo), ".." + hi},
	}
	url := f.url("alice", "alice-secret")
	for _, c := range cases {
		if out, err := psql(t, url, c.sql); err != nil {
			t.Fatalf("%s: %v\n%s", c.sql, err, out)
		}
	}
	f.checkPairs(t)
	stored := gatewaytest.BusBytes(t, f.js)
	if !bytes.Contains(stored, []byte("[REDACTED:credit_card]")) {
		t.Errorf("no placeholder on the bus: the statements were not recorded?")
	}
	for _, c := range cases {
		if bytes.Contains(stored, []byte(c.marker)) {
			t.Errorf("the bus holds %q, from %q", c.marker, c.sql)
		}
	}
	gatewaytest.CheckAbsent(t, stored, card)
}
