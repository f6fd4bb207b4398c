package pgproxy_test

import (
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/auditledger/auditledger/events"
	"github.com/auditledger/auditledger/services/gateway/gatewaytest"
)

// maskReadPolicy masks three columns by name and has no detector, so
// nothing but the column rule stands between a result and its values.
const maskReadPolicy = `version: 1
mask:
  - id: cardholder
    columns: [card, email, name]
    method: redact
`

// startCards starts a proxy with maskReadPolicy over a table whose card,
// email and name columns the policy masks (note is not masked).
func startCards(t *testing.T) *fixture {
	t.Helper()
	f := startWithPolicyText(t, maskReadPolicy)
	if _, err := f.direct(t).Exec(t.Context(), `CREATE TABLE cards (id int, card text, email text, name text, note text);
		INSERT INTO cards VALUES (1, '4242424242424242', 'zelda@example.com', 'Zelda Quartermain', 'n')`); err != nil {
		t.Fatal(err)
	}
	return f
}

// leaked reports which form of a masked value a client output holds:
// as stored, transformed (reversed, upper case, halves of the card,
// base64 of the address), or inside a row or JSON value.
func leaked(out string) string {
	low := strings.ToLower(out)
	for _, s := range []string{"42424242", "24242424", "zelda", "adlez", "quartermain", "niamretrauq", "emvszgfa", "example.com", "moc.elpmaxe"} {
		if strings.Contains(low, s) {
			return s
		}
	}
	return ""
}

// TestMaskedColumnReadsRefused: every way a result can read a masked
// column other than as the bare column — transformed by a function,
// operator, cast or CASE, in a subquery, CTE, FROM function, UNION branch
// or VALUES, aggregated, windowed, through a cursor, in RETURNING, copied
// by UPDATE SET or INSERT … SELECT into a column no rule masks — and
// every whole-row reference (row_to_json(t), to_jsonb(t), t.*, SELECT t,
// hstore(t), * in a set operation), and every function that runs a query
// given as text or returns whole tables (query_to_xml, table_to_xml), is
// refused, against a real PostgreSQL
// through psql (and pgx's extended protocol), with an error naming the
// column and the rule; each refusal is recorded as command.blocked and
// none as executed. Reading the columns bare (masked), or only in WHERE,
// JOIN, GROUP BY or ORDER BY, still runs.
func TestMaskedColumnReadsRefused(t *testing.T) {
	f := startCards(t)
	type attack struct{ sql, names string }
	attacks := []attack{
		{"SELECT substring(card, 1, 8), substring(card, 9) FROM cards", "column card"},
		{"SELECT encode(convert_to(email, 'UTF8'), 'base64') FROM cards", "column email"},
		{"SELECT reverse(card) FROM cards", "column card"},
		{"UPDATE cards SET note = note WHERE id = 1 RETURNING email || 'x'", "column email"},
		{"SELECT lower(email) FROM cards", "column email"},
		{"SELECT card::text FROM cards", "column card"},
		{"SELECT card::text AS x FROM cards", "column card"},
		{"SELECT CASE WHEN id > 0 THEN name END FROM cards", "column name"},
		{"SELECT (SELECT card FROM cards LIMIT 1)", "column card"},
		{"SELECT id, (SELECT c.name FROM cards c WHERE c.id = d.id) AS x FROM cards d", "column name"},
		{"WITH x AS (SELECT reverse(card) c FROM cards) SELECT c FROM x", "column card"},
		{"SELECT note FROM cards UNION SELECT card FROM cards", "column card"},
		{"SELECT note FROM cards UNION ALL SELECT c FROM (SELECT card AS c FROM cards) s", "column card"},
		{"SELECT format('%s', card) FROM cards", "column card"},
		{"SELECT md5(name) FROM cards", "column name"},
		{"SELECT string_agg(card, ',') FROM cards", "column card"},
		{"SELECT json_agg(card) FROM cards", "column card"},
		{"SELECT first_value(email) OVER (ORDER BY id) FROM cards", "column email"},
		{"SELECT x FROM (SELECT upper(name) AS x FROM cards) s", "column name"},
		{"SELECT x FROM cards, LATERAL reverse(email) AS x", "column email"},
		{"SELECT * FROM (VALUES ((SELECT email FROM cards LIMIT 1))) v(x)", "column email"},
		{"BEGIN; DECLARE c CURSOR FOR SELECT reverse(name) FROM cards; FETCH ALL c; COMMIT", "column name"},
		{"SELECT row_to_json(t) FROM cards t", "whole rows of t"},
		{"SELECT to_jsonb(t) FROM cards t", "whole rows of t"},
		{"SELECT row_to_json(t.*) FROM cards t", "whole rows of t.*"},
		{"SELECT json_agg(t) FROM cards t", "whole rows of t"},
		{"SELECT t FROM cards t", "whole rows of t"},
		{"SELECT cards FROM cards", "whole rows of cards"},
		{"SELECT hstore(t) FROM cards t", "whole rows of t"},
		{"SELECT (t).card AS x FROM cards t", "column card"}, // a field of the row, read as the column
		{"SELECT id, note, note, note, note FROM cards WHERE false UNION ALL SELECT * FROM cards", "whole rows of *"},
		{"UPDATE cards SET note = card WHERE id = 1", "column card"},
		{"SELECT lower(e) FROM (SELECT email AS e FROM cards) s", "column e (an alias of email)"},
		{"SELECT reverse(x) FROM cards AS t(i, x)", "column x (a column alias, which can name any column)"},
		{"INSERT INTO cards (id, note) SELECT id, reverse(name) FROM cards", "column name"},
		{"SELECT query_to_xml('SELECT card FROM cards', true, true, '')", "query_to_xml runs a query given as text"},
		{"SELECT table_to_xml('cards', true, true, '')", "table_to_xml runs a query given as text, or reads whole tables"},
	}
	for _, a := range attacks {
		out, err := psql(t, f.url("alice", "alice-secret"), a.sql)
		if err == nil || !strings.Contains(out, "blocked by policy rule builtin-masked-columns-bare") ||
			!strings.Contains(out, a.names) || !strings.Contains(out, "cardholder") {
			t.Errorf("%q: not refused naming %s and rule cardholder (%v):\n%s", a.sql, a.names, err, out)
		}
		if s := leaked(out); s != "" {
			t.Errorf("%q: the output holds %q:\n%s", a.sql, s, out)
		}
	}
	// The extended protocol: refused at Parse.
	if tag, err := pgxExec(t, f, "SELECT reverse(card) FROM cards WHERE id = $1", 1); err == nil || !strings.Contains(err.Error(), "builtin-masked-columns-bare") {
		t.Errorf("extended protocol: %q, %v", tag, err)
	}

	// Bare columns are masked; columns read only to choose, join, group
	// or order rows are not a result.
	for _, q := range []string{
		"SELECT card, email, name FROM cards",
		"SELECT * FROM cards",
		"SELECT c.* FROM cards c",
		"SELECT email AS e FROM cards",
		"SELECT x FROM (SELECT name AS x FROM cards) s",
		"WITH x AS (SELECT card c FROM cards) SELECT c FROM x",
		"SELECT id FROM cards WHERE card LIKE '4242%' AND lower(email) = 'zelda@example.com'",
		"SELECT c.id FROM cards c JOIN cards d ON c.card = d.card ORDER BY c.email",
		"SELECT name, count(*) FROM cards GROUP BY name",
		"SELECT count(*), count(email) FROM cards",
		"SELECT id FROM cards WHERE id IN (SELECT id FROM cards WHERE reverse(card) LIKE '2%')",
		"UPDATE cards SET note = 'n' WHERE card = '4242424242424242' RETURNING email, note",
		"UPDATE cards SET note = 'n' WHERE id = 1 RETURNING email AS e, card AS c, *",
		"BEGIN; DECLARE k CURSOR FOR SELECT email AS e FROM cards; FETCH ALL k; COMMIT",
		"TABLE cards",
		"UPDATE cards SET email = lower(email) WHERE id = 1", // stays in a masked column
	} {
		out, err := psql(t, f.url("alice", "alice-secret"), q)
		if err != nil {
			t.Errorf("%q: %v\n%s", q, err, out)
		}
		if s := leaked(out); s != "" {
			t.Errorf("%q: the output holds %q:\n%s", q, s, out)
		}
	}

	blocked := 0
	for _, r := range f.eventsOf(t) {
		switch r.ev.Type {
		case events.CommandBlocked:
			if r.payload["rule"] == "builtin-masked-columns-bare" {
				blocked++
			}
		case events.CommandExecuted:
			for _, a := range attacks {
				if r.payload["statement"] == a.sql {
					t.Errorf("a refused statement is recorded as executed: %q", a.sql)
				}
			}
		}
	}
	if blocked != len(attacks)+1 {
		t.Errorf("%d refusals by builtin-masked-columns-bare recorded, want %d", blocked, len(attacks)+1)
	}
}

// TestMaskedColumnConstantsRecordedByPlaceholder: a constant compared
// with, or assigned to, a column a mask rule names is recorded as
// [REDACTED:masked_column] although no detector recognises it (a name, a
// part of a card number, a pattern), in executed and refused statements
// alike; constants against other columns are recorded as sent.
func TestMaskedColumnConstantsRecordedByPlaceholder(t *testing.T) {
	f := startCards(t)
	stmts := []string{
		"SELECT id FROM cards WHERE name = 'Yorick Blumenfeld'",
		"SELECT id FROM cards WHERE email = 'x@y.z'",
		"SELECT id FROM cards WHERE card IN ('4242 5151', '6161 7171')",
		"SELECT id FROM cards WHERE card LIKE '8181%'",
		"SELECT c.id FROM cards c WHERE lower(c.name) = lower('Yorick Blumenfeld') OR c.name BETWEEN 'Abigail Ostrander' AND 'Abner Ostrander'",
		"SELECT id FROM cards WHERE starts_with(name, 'Ignatius')",
		"UPDATE cards SET name = 'Philippa Drummond' WHERE id = 1",
		"INSERT INTO cards (id, name, note) VALUES (2, 'Octavia Lindqvist', 'plain-note-text')",
		"SELECT id FROM cards WHERE note = 'another-plain-note'",
		"SELECT CASE name WHEN 'Mortimer Featherstone' THEN 1 END FROM cards", // refused: reads name in its result
	}
	for _, q := range stmts {
		psql(t, f.url("alice", "alice-secret"), q)
	}
	f.checkPairs(t)
	stored := gatewaytest.BusBytes(t, f.js)
	gatewaytest.CheckAbsent(t, stored, "Blumenfeld", "x@y.z", "4242 5151", "6161 7171", "8181%", "Ostrander", "Ignatius", "Philippa", "Octavia", "Mortimer")
	if !strings.Contains(string(stored), "[REDACTED:masked_column]") {
		t.Error("no [REDACTED:masked_column] on the bus")
	}
	for _, keep := range []string{"plain-note-text", "another-plain-note"} {
		if !strings.Contains(string(stored), keep) {
			t.Errorf("%q, against a column no rule masks, is not recorded as sent", keep)
		}
	}
	var red bool
	for _, r := range f.eventsOf(t) {
		if r.ev.Type == events.CommandExecuted && strings.Contains(fmt.Sprint(r.payload["redacted"]), "masked_column") {
			red = true
		}
	}
	if !red {
		t.Error("no executed statement lists masked_column among its redactions")
	}
}

// TestSplitValuesRecordedByPlaceholder: a card number or address built
// from pieces no detector recognises alone — arguments of concat,
// concat_ws and format, characters from chr() (joined by ||, or one per
// result column), literals joined by || with casts between, replace,
// array_to_string of an ARRAY of pieces, decode of the hex digits —
// is judged as the string PostgreSQL would make, and every piece is
// recorded as the placeholder, although the policy names no detector.
func TestSplitValuesRecordedByPlaceholder(t *testing.T) {
	card := gatewaytest.Card(t)
	digits := strings.ReplaceAll(card, " ", "")
	email := gatewaytest.Email(t, "split")
	user, domain, _ := strings.Cut(email, "@")
	f := startWithPolicyText(t, "version: 1\n")
	chrs := func(s, sep string) string {
		var parts []string
		for _, c := range s {
			parts = append(parts, fmt.Sprintf("chr(%d)", c))
		}
		return strings.Join(parts, sep)
	}
	stmts := []string{
		fmt.Sprintf("SELECT concat('%s', '%s')", card[:9], card[9:]),
		fmt.Sprintf("SELECT concat_ws(' ', '%s', '%s')", card[:9], card[10:]),
		fmt.Sprintf("SELECT format('%%s%%s', '%s', '%s')", card[:9], card[9:]),
		"SELECT " + chrs(digits, " || "),
		"SELECT " + chrs(digits, ", "),
		fmt.Sprintf("SELECT '%s'::text || '%s'::varchar", digits[:8], digits[8:]),
		fmt.Sprintf("SELECT concat('%s', chr(64), '%s')", user, domain),
		fmt.Sprintf("SELECT replace('%s', 'z', '')", strings.Join(strings.Split(digits, ""), "z")),
		fmt.Sprintf("SELECT chr(%d + 0) || '%s'", digits[0], digits[1:6]+" "+digits[6:]),
		fmt.Sprintf("SELECT array_to_string(ARRAY['%s', '%s'], '')", digits[:8], digits[8:]),
		fmt.Sprintf("SELECT convert_from(decode('%x', 'hex'), 'UTF8')", digits),
	}
	for _, q := range stmts {
		if out, err := psql(t, f.url("alice", "alice-secret"), q); err != nil {
			t.Fatalf("%q: %v\n%s", q, err, out)
		}
	}
	recorded := f.checkPairs(t)
	chr := regexp.MustCompile(`chr\(\d`)
	for i, s := range recorded {
		if !strings.Contains(s, "[REDACTED:") || chr.MatchString(s) {
			t.Errorf("sent %q\nrecorded %q", stmts[i], s)
		}
	}
	if len(recorded) != len(stmts) {
		t.Errorf("%d statements recorded, want %d", len(recorded), len(stmts))
	}
	stored := gatewaytest.BusBytes(t, f.js)
	gatewaytest.CheckAbsent(t, stored, card, card[:9], card[10:], digits[:8], digits[8:], user, domain)
}

// TestMaskedColumnParametersRecordedByPlaceholder: with parameters:
// record, a bind parameter compared with or assigned to a masked column is
// recorded as the masked column placeholder, as a constant there would
// be; the others as sent.
func TestMaskedColumnParametersRecordedByPlaceholder(t *testing.T) {
	f := startWithPolicyText(t, strings.Replace(maskReadPolicy, "version: 1\n", "version: 1\nparameters: record\n", 1))
	if _, err := f.direct(t).Exec(t.Context(), `CREATE TABLE cards (id int, card text, email text, name text, note text)`); err != nil {
		t.Fatal(err)
	}
	for _, q := range []struct {
		sql  string
		args []any
		want string
	}{
		{"SELECT count(*) FROM cards WHERE note = $2 OR name = $1", []any{"Yorick Blumenfeld", "plain-note"}, "[[REDACTED:masked_column] plain-note]"},
		{"UPDATE cards SET name = $1, note = $2 WHERE id = 1", []any{"Octavia Lindqvist", "other-note"}, "[[REDACTED:masked_column] other-note]"},
	} {
		if _, err := pgxExec(t, f, q.sql, q.args...); err != nil {
			t.Fatalf("%s: %v", q.sql, err)
		}
		var got any
		for _, r := range f.eventsOf(t) {
			if r.ev.Type == events.CommandExecuted && r.payload["statement"] == q.sql {
				got = r.payload["parameters"].(map[string]any)["values"]
			}
		}
		if fmt.Sprint(got) != q.want {
			t.Errorf("%s: recorded parameters %v, want %s", q.sql, got, q.want)
		}
	}
	gatewaytest.CheckAbsent(t, gatewaytest.BusBytes(t, f.js), "Blumenfeld", "Octavia")
}

// TestMaskedColumnValuesWithheldFromErrors: a masked column read only in
// WHERE, cast to a type its values are not, makes the server quote them in
// its error; the client and the ledger get the placeholder instead.
func TestMaskedColumnValuesWithheldFromErrors(t *testing.T) {
	f := startCards(t)
	if _, err := f.direct(t).Exec(t.Context(), "CREATE TABLE uniq (id int, name text UNIQUE); INSERT INTO uniq VALUES (1, 'Zelda Quartermain'), (2, 'other')"); err != nil {
		t.Fatal(err)
	}
	for _, q := range []string{
		"SELECT id FROM cards WHERE name::int = 1",
		"SELECT id FROM cards WHERE email::date > now()",
		"SELECT id FROM cards WHERE card::json IS NOT NULL AND name::json IS NOT NULL",
		"SELECT id FROM cards WHERE name::int[] IS NOT NULL",
		"UPDATE uniq SET name = (SELECT u.name FROM uniq u WHERE u.id = 1) WHERE id = 2",
	} {
		out, err := psql(t, f.url("alice", "alice-secret"), q)
		if err == nil {
			t.Errorf("%q: no error:\n%s", q, out)
		}
		if s := leaked(out); s != "" {
			t.Errorf("%q: the error holds %q:\n%s", q, s, out)
		}
	}
	f.checkPairs(t)
	gatewaytest.CheckAbsent(t, gatewaytest.BusBytes(t, f.js), "Zelda Quartermain", "zelda@example.com", "4242424242424242")
}

// TestMaskedColumnQuotesWithheldFromErrors: a masked column read only in
// WHERE can reach an error as a name the server quotes — a type
// (name::regtype), a setting (current_setting(name)), a relation
// (name::regclass) — not only as a value it could not use. While column
// rules apply, every quoted part of an error is withheld from the client
// and the recorded error_message, and DETAIL, HINT and WHERE are
// withheld whole; the SQLSTATE and the message around the quotes stay.
func TestMaskedColumnQuotesWithheldFromErrors(t *testing.T) {
	f := startCards(t)
	for _, q := range []struct{ sql, want, code string }{
		{"SELECT 1 FROM cards WHERE name::regtype IS NOT NULL", `syntax error at or near "[REDACTED:masked_column]"`, "42601"},
		{"SELECT 1 FROM cards WHERE current_setting(name) IS NOT NULL", `unrecognized configuration parameter "[REDACTED:masked_column]"`, "42704"},
		// Classes that may carry values unquoted are withheld whole.
		{"SELECT 1 FROM cards WHERE email::regclass IS NOT NULL", `(SQLSTATE 3F000) is withheld`, "3F000"},
		{"SELECT 1 FROM cards WHERE to_regtype(note) IS NULL AND (card || 'x')::jsonb IS NULL", `(SQLSTATE 22P02) is withheld`, "22P02"},
	} {
		out, err := psql(t, f.url("alice", "alice-secret"), q.sql)
		if err == nil || !strings.Contains(out, q.want) {
			t.Errorf("%q: want an error with %q (%v):\n%s", q.sql, q.want, err, out)
		}
		if s := leaked(out); s != "" {
			t.Errorf("%q: the error holds %q:\n%s", q.sql, s, out)
		}
		var recorded bool
		for _, r := range f.eventsOf(t) {
			if r.ev.Type == events.ResponseDigest && r.payload["error_code"] == q.code {
				recorded = true
				if msg := fmt.Sprint(r.payload["error_message"]); leaked(msg) != "" || !strings.Contains(msg, "[REDACTED:masked_column]") && !strings.Contains(msg, "is withheld") {
					t.Errorf("%q: recorded error_message %q", q.sql, msg)
				}
			}
		}
		if !recorded {
			t.Errorf("%q: no response.digest with error_code %s", q.sql, q.code)
		}
	}
	f.checkPairs(t)
	gatewaytest.CheckAbsent(t, gatewaytest.BusBytes(t, f.js), "Zelda Quartermain", "Quartermain", "zelda@example.com", "4242424242424242")
}

// TestMaskedColumnNotificationWithheld: pg_notify can carry a masked
// column read in WHERE to a listening client: the call is refused (a
// volatile function given row values), and as a trigger, a function or
// another session can send one unseen, while column rules apply the
// payload of every notification is withheld, the channel kept.
func TestMaskedColumnNotificationWithheld(t *testing.T) {
	f := startCards(t)
	out, err := psql(t, f.url("alice", "alice-secret"), "SELECT 1 FROM cards WHERE pg_notify('ch', name) IS NULL")
	if err == nil || !strings.Contains(out, "builtin-masked-side-effect") {
		t.Errorf("pg_notify given a masked column: %v\n%s", err, out)
	}
	out, err = psql(t, f.url("alice", "alice-secret"), "LISTEN ch", "SELECT pg_notify('ch', reverse('niamretrauQ adleZ')) IS NULL", "SELECT 2")
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	if !strings.Contains(out, `Asynchronous notification "ch" with payload "[REDACTED:masked_column]"`) {
		t.Errorf("no notification with the payload withheld:\n%s", out)
	}
	if s := leaked(out); s != "" {
		t.Errorf("the notification holds %q:\n%s", s, out)
	}
	f.checkPairs(t)
	gatewaytest.CheckAbsent(t, gatewaytest.BusBytes(t, f.js), "Zelda Quartermain")
}

// TestMaskedColumnRenameRefused: rules match columns by name, so
// renaming a masked column (or, as the gateway cannot tell what a
// relation holds, a relation) would unmask it; while column rules apply
// it is refused naming the rule, recorded as blocked, and the column
// keeps its name. Renaming a column no rule names still runs.
func TestMaskedColumnRenameRefused(t *testing.T) {
	f := startCards(t)
	attacks := []struct{ sql, names string }{
		{"ALTER TABLE cards RENAME COLUMN name TO nm; SELECT reverse(nm) FROM cards", "renaming column name of cards"},
		{"ALTER TABLE cards RENAME email TO e", "renaming column email of cards"},
		{"ALTER TABLE IF EXISTS cards RENAME COLUMN CARD TO c", "renaming column card of cards"},
		{"ALTER TABLE cards RENAME TO plain", "renaming relation cards"},
	}
	for _, a := range attacks {
		out, err := psql(t, f.url("alice", "alice-secret"), a.sql)
		if err == nil || !strings.Contains(out, "blocked by policy rule builtin-masked-rename") ||
			!strings.Contains(out, a.names) || !strings.Contains(out, "cardholder") {
			t.Errorf("%q: not refused naming %s and rule cardholder (%v):\n%s", a.sql, a.names, err, out)
		}
		if s := leaked(out); s != "" {
			t.Errorf("%q: the output holds %q:\n%s", a.sql, s, out)
		}
	}
	if out, err := psql(t, f.url("alice", "alice-secret"), "ALTER TABLE cards RENAME COLUMN note TO remark"); err != nil {
		t.Errorf("renaming an unmasked column: %v\n%s", err, out)
	}
	var n int
	if err := f.direct(t).QueryRow(t.Context(), "SELECT count(*) FROM information_schema.columns WHERE table_name = 'cards' AND column_name IN ('card', 'email', 'name', 'remark')").Scan(&n); err != nil || n != 4 {
		t.Errorf("columns of cards after the refusals: %d of 4 (%v)", n, err)
	}
	blocked := 0
	for _, r := range f.eventsOf(t) {
		switch r.ev.Type {
		case events.CommandBlocked:
			if r.payload["rule"] == "builtin-masked-rename" {
				blocked++
			}
		case events.CommandExecuted:
			for _, a := range attacks {
				if r.payload["statement"] == a.sql {
					t.Errorf("a refused statement is recorded as executed: %q", a.sql)
				}
			}
		}
	}
	if blocked != len(attacks) {
		t.Errorf("%d refusals by builtin-masked-rename recorded, want %d", blocked, len(attacks))
	}
}

// TestNonDecimalCardRecordedByPlaceholder: a card number written as a
// hexadecimal, octal or binary integer is judged as the number it
// denotes and recorded as the placeholder.
func TestNonDecimalCardRecordedByPlaceholder(t *testing.T) {
	f := startCards(t)
	digits := strings.ReplaceAll(gatewaytest.Card(t), " ", "")
	v, err := strconv.ParseInt(digits, 10, 64)
	if err != nil {
		t.Fatal(err)
	}
	lits := []string{"0x" + strconv.FormatInt(v, 16), "0o" + strconv.FormatInt(v, 8), "0B" + strconv.FormatInt(v, 2)}
	for _, l := range lits {
		psql(t, f.url("alice", "alice-secret"), "SELECT id FROM cards WHERE id = "+l) // PostgreSQL 15 refuses these literals; they are recorded all the same
	}
	recorded := f.checkPairs(t)
	for _, l := range lits {
		found := false
		for _, s := range recorded {
			if strings.HasPrefix(s, "SELECT id FROM cards WHERE id = ") {
				found = found || strings.Contains(s, "[REDACTED:")
			}
		}
		if !found {
			t.Errorf("%s: not recorded by placeholder: %q", l, recorded)
		}
	}
	gatewaytest.CheckAbsent(t, gatewaytest.BusBytes(t, f.js), append(lits, digits)...)
}

// TestMaskedColumnStoredCopiesRefused: a masked column read only in
// WHERE or in DDL can be kept where a later statement reads it back
// under no masked name — a generated column, ALTER COLUMN … TYPE …
// USING, a setting (set_config, then current_setting), a sequence
// (setval), a large object (lo_from_bytea): each is refused naming the
// column and the rule, and recorded as blocked; the same over columns no
// rule names still runs.
func TestMaskedColumnStoredCopiesRefused(t *testing.T) {
	f := startCards(t)
	attacks := []struct{ sql, names string }{
		{"ALTER TABLE cards ADD COLUMN nm text GENERATED ALWAYS AS (name) STORED; SELECT reverse(nm) FROM cards", "column name"},
		{"ALTER TABLE cards ALTER COLUMN note TYPE text USING reverse(email)", "column email"},
		{"ALTER TABLE cards ALTER COLUMN note TYPE text USING cards::text", "whole rows of cards"},
		{"SELECT 1 FROM cards WHERE set_config('my.x', name, false) IS NOT NULL; SELECT current_setting('my.x')", "set_config is given column name"},
		{"SELECT id FROM cards WHERE setval('s', card::bigint) > 0", "setval is given column card"},
		{"SELECT id FROM cards WHERE lo_from_bytea(0, convert_to(email, 'UTF8')) > 0", "lo_from_bytea is given column email"},
	}
	for _, a := range attacks {
		out, err := psql(t, f.url("alice", "alice-secret"), a.sql)
		if err == nil || !strings.Contains(out, "blocked by policy rule builtin-masked-columns-bare") ||
			!strings.Contains(out, a.names) || !strings.Contains(out, "cardholder") {
			t.Errorf("%q: not refused naming %s and rule cardholder (%v):\n%s", a.sql, a.names, err, out)
		}
		if s := leaked(out); s != "" {
			t.Errorf("%q: the output holds %q:\n%s", a.sql, s, out)
		}
	}
	for _, q := range []string{
		"ALTER TABLE cards ALTER COLUMN note TYPE varchar USING note || 'x'",
		"ALTER TABLE cards ADD COLUMN n2 text GENERATED ALWAYS AS (upper(note)) STORED",
		"SELECT 1 FROM cards WHERE set_config('my.y', note, false) IS NOT NULL",
	} {
		if out, err := psql(t, f.url("alice", "alice-secret"), q); err != nil {
			t.Errorf("%q: %v\n%s", q, err, out)
		}
	}
	blocked := 0
	for _, r := range f.eventsOf(t) {
		if r.ev.Type == events.CommandBlocked && r.payload["rule"] == "builtin-masked-columns-bare" {
			blocked++
		}
	}
	if blocked != len(attacks) {
		t.Errorf("%d refusals by builtin-masked-columns-bare recorded, want %d", blocked, len(attacks))
	}
}
