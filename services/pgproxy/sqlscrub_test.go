package pgproxy

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"github.com/auditledger/auditledger/services/gateway"
)

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
		{`SELECT E'jane\x40example.com'`, `SELECT E'[REDACTED:email]'`}, // the detectors read \x40 in the text
		{`SELECT U&'\0034\0031\0031\0031\0031\0031\0031\0031\0031\0031\0031\0031\0031\0031\0031\0031'`, `SELECT '[REDACTED:credit_card]'`},
		{`SELECT E'\064\061\061\061 1111 1111 1111'`, `SELECT E'[REDACTED:credit_card]'`}, // the detectors read \064 in the text
		{`SELECT 4111_1111_1111_1111`, `SELECT '[REDACTED:credit_card]'`},
		{`SELECT 4.111111111111111e15`, `SELECT '[REDACTED:credit_card]'`},
		{`SELECT E'tab\there', 1e3, 1_000`, `SELECT E'tab\there', 1e3, 1_000`},
		// A string continued on the next line is one constant, the
		// parts joined; the scanner delimits it as one token.
		{"SELECT 'jane@'\n'example.com'", `SELECT '[REDACTED:email]'`},
		{"SELECT 'x', '4111 1111' \n\t '1111 1111'", `SELECT 'x', '[REDACTED:credit_card]'`},
		{"SELECT 'it''s'\n'fine'", "SELECT 'it''s'\n'fine'"},
		// U& with another escape character.
		{`SELECT U&'!0034!0031!0031!0031!0031!0031!0031!0031!0031!0031!0031!0031!0031!0031!0031!0031' UESCAPE '!'`, `SELECT U&'[REDACTED:credit_card]' UESCAPE '!'`},
		// bytea in hex, as a plain or an E'…' string.
		{`SELECT '\x6a616e65406578616d706c652e636f6d'::bytea`, `SELECT '[REDACTED:email]'::bytea`},
		{`SELECT E'\\x34313131313131313131313131313131'::bytea`, `SELECT '[REDACTED:credit_card]'::bytea`},
		{`SELECT '\x00ff'::bytea`, `SELECT '\x00ff'::bytea`},
		{`SELECT 'jane\100example.com'::bytea`, `SELECT '[REDACTED:email]'::bytea`},
		{"SELECT E'jane\\x40'\n'example.com'", `SELECT '[REDACTED:email]'`},
		// JSON escapes in a string read as json.
		{`SELECT '{"e":"jane\u0040example.com"}'::jsonb`, `SELECT '{"e":"[REDACTED:email]"}'::jsonb`}, // and \u0040
	} {
		if got, _ := redactSQL(c.in, nil); got != c.want {
			t.Errorf("redactSQL(%q)\n = %q\nwant %q", c.in, got, c.want)
		}
	}
	// What the literal pass does not delimit (a quoted identifier) passes
	// the detectors over the whole text, and the digest is over the result.
	f := statementFields(`SELECT 1 AS "4111111111111111"`, nil)
	if fmt.Sprint(f["statement"]) != `SELECT 1 AS "[REDACTED:credit_card]"` || f["statement_sha256"] != sha256Hex(`SELECT 1 AS "[REDACTED:credit_card]"`) {
		t.Errorf("an identifier holding a card number: %v", f)
	}
}

// Constants written against a masked column are recorded by the
// placeholder of the masked column rule; constant string expressions are
// judged as the string they make.
func TestRedactSQLTree(t *testing.T) {
	pol, err := ParsePolicy("p", []byte("version: 1\nmask:\n  - id: m\n    columns: [name, card2]\n    method: redact\n"))
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct{ in, want string }{
		{"SELECT id FROM t WHERE name = 'Zelda' AND note = 'kept'", "SELECT id FROM t WHERE name = '[REDACTED:masked_column]' AND note = 'kept'"},
		{"SELECT id FROM t WHERE t.name IN ('a', E'b') OR name LIKE 'Ze%'", "SELECT id FROM t WHERE t.name IN ('[REDACTED:masked_column]', E'[REDACTED:masked_column]') OR name LIKE '[REDACTED:masked_column]'"},
		{"SELECT id FROM t WHERE card2 = -42 OR card1 = 42", "SELECT id FROM t WHERE card2 = -'[REDACTED:masked_column]' OR card1 = 42"},
		{"UPDATE t SET name = 'Zelda', note = 'kept' WHERE id = 1", "UPDATE t SET name = '[REDACTED:masked_column]', note = 'kept' WHERE id = 1"},
		{"INSERT INTO t (id, name) VALUES (1, 'Zelda'), (2, 'Yorick')", "INSERT INTO t (id, name) VALUES (1, '[REDACTED:masked_column]'), (2, '[REDACTED:masked_column]')"},
		{"SELECT concat('4111 1111', ' 1111 1111'), concat('a', 'b')", "SELECT concat('[REDACTED:credit_card]', '[REDACTED:credit_card]'), concat('a', 'b')"},
		{"SELECT chr(52)||chr(49)||chr(49)||chr(49)||'1111'||'11111111'", "SELECT chr('[REDACTED:credit_card]')||chr('[REDACTED:credit_card]')||chr('[REDACTED:credit_card]')||chr('[REDACTED:credit_card]')||'[REDACTED:credit_card]'||'[REDACTED:credit_card]'"},
		{"SELECT format('%s@%s', 'jane', 'example.com')", "SELECT format('[REDACTED:email]', '[REDACTED:email]', '[REDACTED:email]')"},
		{"SELECT lpad('1', 10, 'x'), replace('abc', 'b', 'c')", "SELECT lpad('1', 10, 'x'), replace('abc', 'b', 'c')"},
		{"SELECT array_to_string(ARRAY['4111', '1111', '1111', '1111'], ' ')", "SELECT array_to_string(ARRAY['[REDACTED:credit_card]', '[REDACTED:credit_card]', '[REDACTED:credit_card]', '[REDACTED:credit_card]'], '[REDACTED:credit_card]')"},
		{"SELECT convert_from(decode('34313131313131313131313131313131', 'hex'), 'UTF8')", "SELECT convert_from(decode('[REDACTED:credit_card]', 'hex'), 'UTF8')"}, // the literal read as hex text
		{"SELECT convert_from(decode('amFuZUBleGFtcGxlLmNvbQ==', 'base64'), 'UTF8')", "SELECT convert_from(decode('[REDACTED:email]', 'base64'), 'UTF8')"},         // the literal read as base64 text
		{`SELECT convert_from('\x6a616e65406578616d706c652e636f6d'::bytea, 'UTF8')`, `SELECT convert_from('[REDACTED:email]'::bytea, '[REDACTED:email]')`},
		{"SELECT textcat('jane@', 'example.com')", "SELECT textcat('[REDACTED:email]', '[REDACTED:email]')"},
		{"SELECT 'jane@' operator(pg_catalog.||) 'example.com'", "SELECT '[REDACTED:email]' operator(pg_catalog.||) '[REDACTED:email]'"},
		// Not the concatenation operator, but a statement's literals are
		// judged joined whatever joins them: both go (fail closed).
		{"SELECT 'jane@' operator(other.||) 'example.com'", "SELECT '[REDACTED:email]' operator(other.||) '[REDACTED:email]'"},
		{"SELECT initcap('jane') || '@example.com'", "SELECT initcap('[REDACTED:email]') || '[REDACTED:email]'"},
		{"SELECT overlay('4xxx111111111111' placing '111' from 2)", "SELECT overlay('[REDACTED:credit_card]' placing '[REDACTED:credit_card]' from '[REDACTED:credit_card]')"},
		{"SELECT overlay('4111xxxx11111111' placing '1111' from 5 for 4)", "SELECT overlay('[REDACTED:credit_card]' placing '[REDACTED:credit_card]' from '[REDACTED:credit_card]' for '[REDACTED:credit_card]')"},
		{"SELECT array_to_string('{4111,1111,1111,1111}'::int[], '')", "SELECT array_to_string('{[REDACTED:credit_card]}'::int[], '')"}, // groups joined by commas
		{"SELECT ARRAY[4,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1]", "SELECT ARRAY['[REDACTED:credit_card]','[REDACTED:credit_card]','[REDACTED:credit_card]','[REDACTED:credit_card]','[REDACTED:credit_card]','[REDACTED:credit_card]','[REDACTED:credit_card]','[REDACTED:credit_card]','[REDACTED:credit_card]','[REDACTED:credit_card]','[REDACTED:credit_card]','[REDACTED:credit_card]','[REDACTED:credit_card]','[REDACTED:credit_card]','[REDACTED:credit_card]','[REDACTED:credit_card]']"},
		{"SELECT translate(quote_literal('4111x1111'), '''x', '') || '11111111'", "SELECT translate(quote_literal('[REDACTED:credit_card]'), '[REDACTED:credit_card]', '[REDACTED:credit_card]') || '[REDACTED:credit_card]'"},
		{"SELECT ARRAY[1,2,3], initcap('ann lee')", "SELECT ARRAY[1,2,3], initcap('ann lee')"},
	} {
		if got, _ := redactSQL(c.in, pol); got != c.want {
			t.Errorf("redactSQL(%q)\n = %q\nwant %q", c.in, got, c.want)
		}
	}
	_, red := redactSQL("SELECT 1 FROM t WHERE name = 'Zelda'", pol)
	if len(red) != 1 || red[0].Detector != "masked_column" || red[0].Count != 1 {
		t.Errorf("redactions %+v", red)
	}
}

// foldHint misses no text that can call a folding function.
func TestFoldHint(t *testing.T) {
	for sql, want := range map[string]bool{
		"SELECT id FROM t WHERE id = 1":              false,
		"SELECT CHR/**/(52)":                         true,
		`SELECT U&"\0063hr"(52)`:                     true,
		"SELECT pg_catalog.Concat_WS('', 'a')":       true,
		"SELECT 'a' || 'b'":                          true,
		"SELECT upper(x) FROM t":                     true,
		"SELECT a | b FROM t":                        false,
		"SELECT TEXTCAT(a, b)":                       true,
		"SELECT Initcap(a)":                          true,
		"SELECT ARRAY[4, 1]":                         true,
		"SELECT * FROM t":                            false,
		"SELECT count(*) FROM t":                     false,
		"SELECT 51598415::bigint*100000000+80634868": true,
		"SELECT (4671 * 100) - 3":                    true,
		"SELECT x FROM t -- comment":                 false,
		"SELECT Substr('46', 1, 2)":                  true,
		"SELECT left('4611', 2)":                     true,
	} {
		if foldHint(sql) != want {
			t.Errorf("foldHint(%q) = %v", sql, !want)
		}
	}
}

// TestNumberDigits: an integer written in another base is read as the
// number it denotes; what is not one is returned as written.
func TestNumberDigits(t *testing.T) {
	for _, c := range []struct{ in, want string }{
		{"0x10", "16"},
		{"0XFF_FF", "65535"},
		{"0o17", "15"},
		{"0B1010", "10"},
		{"0x1E", "30"},
		{"4111_1111", "41111111"},
		{"4.2e3", "4200"},
		{"0xZZ", "0xZZ"},
		{"0", "0"},
		{"01", "01"},
	} {
		if got := numberDigits(c.in); got != c.want {
			t.Errorf("numberDigits(%q) = %q, want %q", c.in, got, c.want)
		}
	}
}

// TestWithholdQuoted: every quoted part is withheld, a doubled quote
// stays inside its part, and an open quote withholds the rest.
func TestWithholdQuoted(t *testing.T) {
	const w = "[REDACTED:masked_column]"
	for _, c := range []struct {
		in, want string
		n        int
	}{
		{`syntax error at or near "Quartermain"`, `syntax error at or near "` + w + `"`, 1},
		{`column "a" of relation "b" does not exist`, `column "` + w + `" of relation "` + w + `" does not exist`, 2},
		{`invalid value 'it''s "x"' here`, `invalid value '` + w + `' here`, 1},
		{`near "Zelda "" Q`, `near "` + w, 1},
		{`empty "" stays`, `empty "" stays`, 0},
		{`no quotes`, `no quotes`, 0},
	} {
		got, n := withholdQuoted(c.in)
		if got != c.want || n != c.n {
			t.Errorf("withholdQuoted(%q) = %q, %d; want %q, %d", c.in, got, n, c.want, c.n)
		}
	}
}

// A value written in escapes is found as the value PostgreSQL reads, even
// where the escapes' own digits make a chain a detector reads as a card
// number: \0073\0066\0070… spelled the first e-mail below, and the text
// as written, judged alone, had a "card" in the escapes replaced and the
// rest of the e-mail left in clear, its search digest never recorded.
func TestRedactSQLEscapedValueFoundWhole(t *testing.T) {
	escaped := func(format, s string) string {
		var b strings.Builder
		for i := 0; i < len(s); i++ {
			fmt.Fprintf(&b, format, s[i])
		}
		return b.String()
	}
	emails := []string{"Cnsfpaksduph@Canary-fqpew.Example.org"}
	r := rand.New(rand.NewPCG(1, 2))
	for range 2000 {
		var b strings.Builder
		b.WriteString("Cn")
		for range 10 {
			b.WriteByte(byte('a' + r.IntN(26)))
		}
		b.WriteString("@Canary-")
		for range 5 {
			b.WriteByte(byte('a' + r.IntN(26)))
		}
		emails = append(emails, b.String()+".Example.org")
	}
	for _, e := range emails {
		for _, sql := range []string{
			fmt.Sprintf(`SELECT U&'%s' AS e`, escaped(`\%04x`, e)),
			fmt.Sprintf(`SELECT E'%s' AS e`, escaped(`\%03o`, e)),
		} {
			got, found := redactText(sql, nil, 0)
			if got != `SELECT '[REDACTED:email]' AS e` && got != `SELECT E'[REDACTED:email]' AS e` {
				t.Fatalf("redactText(%q)\n = %q", sql, got)
			}
			// The digits of the escapes may read as card numbers too;
			// the e-mail address must be among the values listed.
			if !slices.Contains(found, gateway.Finding{Detector: "email", Value: e}) {
				t.Fatalf("redactText(%q): found %+v, not the e-mail %q", sql, found, e)
			}
		}
	}
}

// TestRedactSQLFoldedValueAroundAFoundOne: a constant expression making
// a card number, one of whose literals holds a shorter card number by
// itself ('23645 7651653651', its tail 14 Luhn-valid digits), is judged
// as the whole PostgreSQL makes: every constant becomes the placeholder
// and the whole number is the value listed, not the literal's tail with
// the number's first digits left as written (CI, stop 38).
func TestRedactSQLFoldedValueAroundAFoundOne(t *testing.T) {
	cards := []string{"4236457651653651"}
	r := rand.New(rand.NewPCG(3, 4))
	for range 3000 {
		d := make([]byte, 15)
		d[0] = '4'
		for i := 1; i < 15; i++ {
			d[i] = byte('0' + r.IntN(10))
		}
		cards = append(cards, string(d)+luhnCheck(string(d)))
	}
	digitsOf := func(s string) string {
		return strings.Map(func(c rune) rune {
			if '0' <= c && c <= '9' {
				return c
			}
			return -1
		}, s)
	}
	partAlone := 0
	for _, c := range cards {
		tail := c[1:6] + " " + c[6:]
		if got, _ := redactText(fmt.Sprintf("SELECT '%s'", tail), nil, 0); got != fmt.Sprintf("SELECT '%s'", tail) {
			partAlone++
		}
		for _, sql := range []string{
			fmt.Sprintf("SELECT chr(%d + 0) || '%s'", c[0], tail),
			fmt.Sprintf("SELECT concat('%s', '%s')", c[:2], c[2:]),
			fmt.Sprintf("SELECT format('%%s%%s', '%s', '%s')", c[:1], tail),
		} {
			got, found := redactText(sql, nil, 0)
			if digitsOf(got) != "" {
				t.Fatalf("redactText(%q)\n = %q: digits of the card number left as written", sql, got)
			}
			if !slices.ContainsFunc(found, func(f gateway.Finding) bool { return digitsOf(f.Value) == c }) {
				t.Fatalf("redactText(%q): found %+v, not the card number %s", sql, found, c)
			}
		}
	}
	if partAlone == 0 {
		t.Fatal("no case had a literal holding a value by itself: the test does not exercise the class")
	}
	t.Logf("%d of %d cards had a literal holding a value by itself", partAlone, len(cards))
}

// luhnCheck is the Luhn check digit of the digits d.
func luhnCheck(d string) string {
	sum := 0
	for i := range len(d) { // from the right, the check digit's neighbour doubles
		v := int(d[len(d)-1-i] - '0')
		if i%2 == 0 {
			if v *= 2; v > 9 {
				v -= 9
			}
		}
		sum += v
	}
	return fmt.Sprint((10 - sum%10) % 10)
}
