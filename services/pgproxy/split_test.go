package pgproxy_test

import (
	"bytes"
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/auditledger/auditledger/events"
	"github.com/auditledger/auditledger/services/gateway/gatewaytest"
	"github.com/auditledger/auditledger/test/natstest"
)

// A value split over parts the server joins — two bind parameters
// ($1 || $2, recorded by the policy), literals joined through column
// references, output columns, set_config pairs, jsonb members, two
// comments, functions the proxy does not fold — reaches none of the
// bus's streams, half or whole, as typed or digits only.
func TestSplitValuesNeverReachTheBus(t *testing.T) {
	f := startWithPolicyText(t, "version: 1\nparameters: record\n")
	conn, err := pgx.Connect(t.Context(), f.url("alice", "alice-secret"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	simple := pgx.QueryExecModeSimpleProtocol
	var absent []string
	split := func(card string) (string, string) {
		d := strings.ReplaceAll(card, " ", "")
		absent = append(absent, d, d[:8], d[8:])
		return d[:8], d[8:]
	}
	splitEmail := func(name string) (string, string) {
		e := gatewaytest.Email(t, name)
		at := strings.IndexByte(e, '@')
		absent = append(absent, e, e[:at])
		return e[:at], e[at:]
	}
	var qs []struct {
		sql  string
		args []any
	}
	add := func(sql string, args ...any) {
		qs = append(qs, struct {
			sql  string
			args []any
		}{sql, args})
	}
	a, b := split(gatewaytest.Card(t))
	add("SELECT $1::text || $2::text", a, b)
	ea, eb := splitEmail("bind")
	add("SELECT $1::text || $2::text", ea, eb)
	a, b = split(gatewaytest.Card(t))
	add("SELECT $1::text || ' ' || $2::text || $3::text", a[:4]+" "+a[4:], b[:4]+" "+b[4:], "x")
	a, b = split(gatewaytest.Card(t))
	add(fmt.Sprintf("SELECT a || b FROM (VALUES ('%s', '%s')) v(a, b)", a, b), simple)
	a, b = split(gatewaytest.Card(t))
	add(fmt.Sprintf("SELECT '%s' AS a, '%s' AS b", a, b), simple)
	ea, eb = splitEmail("cols")
	add(fmt.Sprintf("SELECT '%s' AS a, '%s' AS b", ea, eb), simple)
	a, b = split(gatewaytest.Card(t))
	add(fmt.Sprintf("SELECT set_config('x.a', '%s', false), set_config('x.b', '%s', false)", a, b), simple)
	a, b = split(gatewaytest.Card(t))
	add(fmt.Sprintf(`SELECT '{"a": "%s", "b": "%s"}'::jsonb`, a, b), simple)
	a, b = split(gatewaytest.Card(t))
	add(fmt.Sprintf("SELECT 1 /* %s */ + /* %s */ 1", a, b), simple)
	a, b = split(gatewaytest.Card(t))
	add(fmt.Sprintf("SELECT regexp_replace('%s', 'x', '') || ltrim('%s')", a, b), simple)
	a, b = split(gatewaytest.Card(t))
	add(fmt.Sprintf("SELECT %s::text || %s::text", a, b), simple)
	d := strings.ReplaceAll(gatewaytest.Card(t), " ", "")
	absent = append(absent, d)
	add(fmt.Sprintf("SELECT regexp_replace('%sx%sx%sx%s', 'x', '', 'g')", d[:4], d[4:8], d[8:12], d[12:]), simple)
	ea, eb = splitEmail("regexp")
	add(fmt.Sprintf("SELECT regexp_replace('%s#%s', '#', '@')", ea, eb[1:]), simple)
	ea, eb = splitEmail("at")
	add(fmt.Sprintf("SELECT x || '@' || y FROM (VALUES ('%s', '%s')) v(x, y)", ea, eb[1:]), simple)
	for _, q := range qs {
		rows, err := conn.Query(t.Context(), q.sql, q.args...)
		if err != nil {
			t.Fatalf("%s: %v", q.sql, err)
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			t.Fatalf("%s: %v", q.sql, err)
		}
	}
	f.checkPairs(t)
	stored := gatewaytest.BusBytes(t, f.js)
	if !bytes.Contains(stored, []byte("[REDACTED:credit_card]")) {
		t.Fatalf("no placeholder on the bus: the statements were not recorded?")
	}
	gatewaytest.CheckAbsent(t, stored, absent...)
}

// A value staged in a custom setting and compared with a masked column
// through current_setting in the same text is recorded as a constant
// compared with that column is: set_config's value, and SET's.
func TestMaskedColumnLinkThroughSetting(t *testing.T) {
	f := startCards(t)
	for _, q := range []string{
		"SELECT id FROM cards WHERE name = current_setting('x.v', true) OR set_config('x.v', 'Zedmund Roebuck', false) IS NULL",
		"SET x.w = 'Quillon Vexmoor'; SELECT id FROM cards WHERE name = current_setting('x.w')",
		"SET LOCAL x.u TO 'Ysolde Parrow'; SELECT id FROM cards WHERE name = current_setting('x.u')",
		// Nothing masked in the text: the setting is recorded as sent.
		"SELECT set_config('x.n', 'plain-setting-text', false)",
	} {
		if out, err := psql(t, f.url("alice", "alice-secret"), q); err != nil {
			t.Fatalf("%s: %v\n%s", q, err, out)
		}
	}
	// A text of two statements has a response digest for each: wait
	// for the last command instead of pairs.
	natstest.CheckFor(t, 10*time.Second, 50*time.Millisecond, func() error {
		for _, r := range f.eventsOf(t) {
			if r.ev.Type == events.CommandExecuted && strings.Contains(fmt.Sprint(r.payload["statement"]), "x.n") {
				return nil
			}
		}
		return fmt.Errorf("the last statement is not recorded yet")
	})
	stored := gatewaytest.BusBytes(t, f.js)
	gatewaytest.CheckAbsent(t, stored, "Zedmund", "Quillon", "Ysolde")
	if !bytes.Contains(stored, []byte("plain-setting-text")) {
		t.Error("a setting in a text naming no masked column was not recorded as sent")
	}
}
