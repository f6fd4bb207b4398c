package pgproxy

import "testing"

// TestStandardEquivalent: texts read with standard_conforming_strings
// off are rewritten into ones the parser reads the same with it on —
// across comments, quoted identifiers, dollar quotes, escape, bit and
// Unicode strings and constants continued on the next line — and the
// rewrite is checked against the parser run with the setting off.
func TestStandardEquivalent(t *testing.T) {
	for in, want := range map[string]string{
		`SELECT 'x\' , ' ; DROP TABLE t; -- '`:                      `SELECT E'x\' , ' ; DROP TABLE t; -- '`,
		`SELECT 'it\'s', "a\b", $$q\'$$, $t$\'$t$, E'\n' -- \'`:     `SELECT E'it\'s', "a\b", $$q\'$$, $t$\'$t$, E'\n' -- \'`,
		"SELECT 'a'\n'b\\'c' /* '\\' /* nested */ */, b'01', x'0f'": "SELECT E'a'\n'b\\'c' /* '\\' /* nested */ */, b'01', x'0f'",
		`SELECT n'\'' AS n, abe'x\y', a$b FROM t WHERE c = $1`:      `SELECT NCHAR E'\'' AS n, abe E'x\y', a$b FROM t WHERE c = $1`,
		`SELECT 'no backslash'`:                                     `SELECT 'no backslash'`,
	} {
		text, why := serverReading(in, true, true)
		if why != "" {
			t.Errorf("%q: %s", in, why)
			continue
		}
		if text != want {
			t.Errorf("%q: read as %q, want %q", in, text, want)
		}
	}
}
