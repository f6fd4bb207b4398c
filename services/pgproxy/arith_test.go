package pgproxy

import (
	"math/rand/v2"
	"strings"
	"testing"

	pg_query "github.com/pganalyze/pg_query_go/v6"
	"google.golang.org/protobuf/reflect/protoreflect"
)

// TestPgKeywords: every word of pgKeywords is a keyword to the scanner
// the proxy parses with, and a name that is none is not in it.
func TestPgKeywords(t *testing.T) {
	for w := range pgKeywords {
		r, err := pg_query.Scan(w)
		if err != nil || len(r.Tokens) != 1 || r.Tokens[0].KeywordKind == pg_query.KeywordKind_NO_KEYWORD {
			t.Errorf("%q is not a keyword to the scanner (%v, %v)", w, r, err)
		}
	}
	if len(pgKeywords) < 450 || pgKeywords["abalance"] || !pgKeywords["null"] || !pgKeywords["precision"] {
		t.Errorf("pgKeywords has %d words", len(pgKeywords))
	}
}

// foldableArithmetic reports whether the parse tree of sql holds a +, -
// or * whose operands foldConst folds: what foldHint must not miss.
func foldableArithmetic(t *testing.T, sql string) (bool, bool) {
	tree, err := pg_query.Parse(sql)
	if err != nil {
		return false, false
	}
	found := false
	for _, raw := range tree.Stmts {
		prune(raw.Stmt.ProtoReflect(), func(m protoreflect.Message) bool {
			e, ok := m.Interface().(*pg_query.A_Expr)
			if !ok || e.Kind != pg_query.A_Expr_Kind_AEXPR_OP || len(e.Name) == 0 {
				return true
			}
			switch e.Name[len(e.Name)-1].GetString_().GetSval() {
			case "+", "-", "*":
				if _, ok := foldConst(&pg_query.Node{Node: &pg_query.Node_AExpr{AExpr: e}}, false); ok {
					found = true
				}
			}
			return true
		})
	}
	return found, true
}

// TestArithmeticHint: foldHint reads a text as possibly computing a
// number from constants whenever its parse tree has an operator whose
// operands fold, over random expressions of constants, casts, typed
// constants, columns, signs, comments and white space of every kind;
// and it skips pgbench's statements, whose only operator adds a
// constant to a column.
func TestArithmeticHint(t *testing.T) {
	r := rand.New(rand.NewPCG(7, 11))
	pick := func(s []string) string { return s[r.IntN(len(s))] }
	leaves := []string{"5", "4111", "0", "1.5", "1e3", "0x1F", "1_000", ".5", "'12'", "E'3'", "$$4$$", "$q$7$q$", "NULL",
		"abalance", "t.a", `"Col"`, "$1", "x$y", "value", "name", "int8 '5'", "bigint '6'", "double precision '7'",
		"interval '1' day", "true", "U&'8'", "B'101'", "X'1F'", "pg_catalog.int8 '5'", `"int8" '5'`, "CURRENT_DATE",
		"count(*)", "abs(-3)", "numeric(3) '4'", "char varying '5'", "time with time zone '1:00'", "a[1]", "(SELECT 5)"}
	types := []string{"int8", "bigint", "pg_catalog.int8", "double precision", `"int8"`, "numeric(10,2)", "int[]",
		"/*c*/int8", "-- c\nint8", "text", "timestamp with time zone", "interval day", "character varying"}
	spaces := []string{"", " ", " ", "\t", "\n", "\r", "\f", "\v", " /* c */ ", "/**/", " -- c\n", "--c\r\n"}
	ops := []string{"+", "-", "*", "/", "%", "^", "=", "<", "AND", "OPERATOR(pg_catalog.+)", "OPERATOR(*)", "+", "-", "*"}
	var expr func(d int) string
	expr = func(d int) string {
		sp := func() string { return pick(spaces) }
		if d > 3 {
			return pick(leaves)
		}
		switch r.IntN(7) {
		case 0, 1:
			return expr(d+1) + sp() + pick(ops) + sp() + expr(d+1)
		case 2:
			return pick([]string{"-", "+", "@", "NOT "}) + sp() + expr(d+1)
		case 3:
			return "(" + sp() + expr(d+1) + sp() + ")"
		case 4:
			return expr(d+1) + sp() + "::" + sp() + pick(types)
		case 5:
			return "CAST(" + expr(d+1) + " AS " + pick(types) + ")"
		}
		return pick(leaves)
	}
	wrap := []string{"SELECT %s", "SELECT %s FROM t", "UPDATE t SET a = %s WHERE b = %s", "INSERT INTO t VALUES (%s, %s)",
		"SELECT * FROM t WHERE a = %s AND %s", "SELECT CASE WHEN %s THEN %s END", "SELECT a,%s FROM t ORDER BY %s"}
	parsed, foldable := 0, 0
	for range 20000 {
		w := pick(wrap)
		for strings.Contains(w, "%s") {
			w = strings.Replace(w, "%s", expr(0), 1)
		}
		want, ok := foldableArithmetic(t, w)
		if !ok {
			continue
		}
		parsed++
		if want {
			foldable++
			if !foldHint(w) {
				t.Errorf("foldHint(%q) = false; its parse tree computes a number from constants", w)
			}
		}
	}
	t.Logf("%d texts parsed, %d computing a number from constants", parsed, foldable)
	if parsed < 5000 || foldable < 1000 {
		t.Errorf("only %d texts parsed, %d foldable: the generator no longer tests the hint", parsed, foldable)
	}
	for _, s := range pgbenchStatements(200) {
		for _, sql := range s {
			if foldHint(sql) {
				t.Errorf("foldHint(%q) = true", sql)
			}
		}
	}
	for sql, want := range map[string]bool{
		"SELECT 41111111 OPERATOR(pg_catalog.*) 100000000":   true,
		"SELECT 41111111 /**/*/**/ 100000000":                true,
		"SELECT 1111 * '3703703701'":                         true,
		"SELECT '1111' * 3703703701":                         true,
		"SELECT 5 --c\n+ 6":                                  true,
		"SELECT '5'::--c\nint8 + 6":                          true,
		"SELECT -5::int8":                                    true,
		"SELECT $$5$$ + 5":                                   true,
		"SELECT 5 +\r4":                                      true,
		"SELECT a FROM t WHERE a = 1 AND + 5 > 3":            true,
		"UPDATE t SET x = x + 5 WHERE id = 7":                false,
		"UPDATE t SET x = x + -5 WHERE id = 7":               false,
		"UPDATE t SET x = x * 5 - y WHERE id = -7":           false,
		"SELECT * FROM t":                                    false,
		"SELECT count(*), t.* FROM t WHERE a = -1 AND b = 2": false,
	} {
		if foldHint(sql) != want {
			t.Errorf("foldHint(%q) = %v", sql, !want)
		}
	}
	// A card number computed with the operators written so, each of its
	// constants replaced (the last one stayed as written before).
	for _, sql := range []string{
		"SELECT 41111111 OPERATOR(pg_catalog.*) 100000000 OPERATOR(pg_catalog.+) 11111111",
		"SELECT 41111111/**/*/**/100000000/**/+/**/11111111",
	} {
		if out, red := redactSQL(sql, nil); strings.Contains(out, "11111111") || len(red) == 0 {
			t.Errorf("redactSQL(%q) = %q, %v", sql, out, red)
		}
	}
}
