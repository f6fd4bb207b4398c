package pgproxy

import "testing"

// Values the detectors find in literals and comments are replaced in the
// recorded text, which keeps its SQL shape; the rest stays byte for byte.
func TestRedactSQL(t *testing.T) {
	for _, c := range []struct{ in, want string }{
		{"SELECT * FROM cards WHERE number = '4111 1111 1111 1111' AND id = 7",
			"SELECT * FROM cards WHERE number = '[REDACTED:credit_card]' AND id = 7"},
		{"SELECT 1 FROM u WHERE email IN ('a.b@example.com', E'c@example.org', 'plain')",
			"SELECT 1 FROM u WHERE email IN ('[REDACTED:email]', E'[REDACTED:email]', 'plain')"},
		{"DO $f$ BEGIN PERFORM 'x' || '4111-1111-1111-1111'; END $f$",
			"DO $f$ BEGIN PERFORM 'x' || '[REDACTED:credit_card]'; END $f$"},
		{"SELECT 1 -- for jane@example.com\n/* card 4111111111111111 */",
			"SELECT 1 -- for [REDACTED:email]\n/* card [REDACTED:credit_card] */"},
		{"SELECT * FROM t WHERE n = 4111111111111111", "SELECT * FROM t WHERE n = '[REDACTED:credit_card]'"},
		{"SELECT 'note: call jane@example.com today'", "SELECT 'note: call [REDACTED:email] today'"},
		{"SELECT 42, 'nothing'", "SELECT 42, 'nothing'"},
		{"SELECT '4111 1111' || '1111 1111', 'a' || 'b'", "SELECT '[REDACTED:credit_card]' || '[REDACTED:credit_card]', 'a' || 'b'"},
		{"SELECT 'jane' || '@example.com' AS e, name || 'x'", "SELECT '[REDACTED:email]' || '[REDACTED:email]' AS e, name || 'x'"},
		{"SELECT '4111 1111 1111 1111' || 'x'", "SELECT '[REDACTED:credit_card]' || 'x'"},
	} {
		got, red := redactSQL(c.in, nil)
		if got != c.want {
			t.Errorf("redactSQL(%q)\n = %q\nwant %q", c.in, got, c.want)
		}
		if (got != c.in) != (len(red) > 0) {
			t.Errorf("redactSQL(%q): redactions %+v", c.in, red)
		}
	}
	f := statementFields("SELECT 1 WHERE c = '4111 1111 1111 1111'", nil)
	if f["statement_sha256"] != sha256Hex("SELECT 1 WHERE c = '[REDACTED:credit_card]'") {
		t.Errorf("the digest is not over the recorded text: %v", f)
	}
}

// Values written in forms the detectors do not read as typed are judged as
// PostgreSQL reads them: escapes in E and U& string constants, digits grouped
// by underscores, a numeric constant with an exponent.
func TestRedactSQLEncodedForms(t *testing.T) {
	for _, c := range []struct{ in, want string }{
		{`SELECT E'jane\x40example.com'`, `SELECT '[REDACTED:email]'`},
		{`SELECT U&'\0034\0031\0031\0031\0031\0031\0031\0031\0031\0031\0031\0031\0031\0031\0031\0031'`, `SELECT '[REDACTED:credit_card]'`},
		{`SELECT E'\064\061\061\061 1111 1111 1111'`, `SELECT '[REDACTED:credit_card]'`},
		{`SELECT 4111_1111_1111_1111`, `SELECT '[REDACTED:credit_card]'`},
		{`SELECT 4.111111111111111e15`, `SELECT '[REDACTED:credit_card]'`},
		{`SELECT E'tab\there', 1e3, 1_000`, `SELECT E'tab\there', 1e3, 1_000`},
	} {
		if got, _ := redactSQL(c.in, nil); got != c.want {
			t.Errorf("redactSQL(%q)\n = %q\nwant %q", c.in, got, c.want)
		}
	}
	// What the literal pass does not delimit (a quoted identifier) passes
	// the detectors over the whole text, and the digest is over the result.
	f := statementFields(`SELECT 1 AS "4111111111111111"`, nil)
	if f["statement"] != `SELECT 1 AS "[REDACTED:credit_card]"` || f["statement_sha256"] != sha256Hex(`SELECT 1 AS "[REDACTED:credit_card]"`) {
		t.Errorf("an identifier holding a card number: %v", f)
	}
}
