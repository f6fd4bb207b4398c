package pgproxy

import (
	"math/rand/v2"
	"strings"
	"testing"

	pg_query "github.com/pganalyze/pg_query_go/v6"
)

// TestScanAgrees: scan gives the tokens pg_query.Scan gives (start, end,
// token, keyword kind), and fails where it fails, over pgbench's
// statements, texts of every kind of token, and random cuts and
// splices of them.
func TestScanAgrees(t *testing.T) {
	texts := []string{"", " ", "SELECT 1", "SELECT 'a''b', E'\\x41', U&'\\0041' UESCAPE '!', $$x$$, $q$y$q$, B'101', X'1F', 0x1F, 1e3, 1_000, .5",
		"SELECT \"Quoted\"\"Name\", U&\"\\0061\", $1, :x, a::int8, a[1:2] -- comment\n/* nested /* c */ */ FROM t",
		"SELECT 'unterminated", "SELECT $$open", "SELECT /* open", "INSERT INTO t VALUES ('ünïcödé', '日本', 'x' || 'y')",
		"DO $$BEGIN RAISE NOTICE 'x'; END$$", "SELECT 123abc", "SELECT 0x", "\x00", "SELECT '\xff'"}
	for _, s := range pgbenchStatements(50) {
		texts = append(texts, s...)
	}
	r := rand.New(rand.NewPCG(3, 5))
	for range 3000 {
		a, b := texts[r.IntN(len(texts))], texts[r.IntN(len(texts))]
		i, j := r.IntN(len(a)+1), r.IntN(len(b)+1)
		texts = append(texts, a[:i]+b[j:], strings.Repeat(a, 1+r.IntN(3)))
	}
	for _, s := range texts {
		want, werr := pg_query.Scan(s)
		got, gerr := scan(s)
		if (werr == nil) != (gerr == nil) {
			t.Fatalf("scan(%q): error %v, pg_query.Scan: %v", s, gerr, werr)
		}
		if werr != nil {
			continue
		}
		if got.Version != want.Version || len(got.Tokens) != len(want.Tokens) {
			t.Fatalf("scan(%q): version %d, %d tokens; pg_query.Scan: %d, %d", s, got.Version, len(got.Tokens), want.Version, len(want.Tokens))
		}
		for i, w := range want.Tokens {
			g := got.Tokens[i]
			if g.Start != w.Start || g.End != w.End || g.Token != w.Token || g.KeywordKind != w.KeywordKind {
				t.Fatalf("scan(%q) token %d: %v; pg_query.Scan: %v", s, i, g, w)
			}
		}
	}
}

func BenchmarkScan(b *testing.B) {
	sql := "INSERT INTO pgbench_history (tid, bid, aid, delta, mtime) VALUES (47, 6, 958535, 1733, CURRENT_TIMESTAMP);"
	b.Run("pg_query", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			pg_query.Scan(sql)
		}
	})
	b.Run("scan", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			scan(sql)
		}
	})
}

// plainTexts returns random texts in and around numberTokens' subset:
// names, keywords, numbers of every form, the subset's punctuation and
// a few characters outside it, and pgbench's statements.
func plainTexts(n int) []string {
	r := rand.New(rand.NewPCG(13, 17))
	pieces := []string{"SELECT", "abalance", "FROM", "t1", "_x", "WHERE", "aid", "=", "<>", "<=", "+", "-", "*", "(", ")",
		",", ";", ":", "::", "[", "]", ".", "..", " ", " ", " ", "\t", "\n", "\r", "\f", "\v", "5", "4111", "41111111",
		"1111111111111111", "4111111111111111", "99999999999999999999", "0", "07", "1.5", ".5", "5.", "1e3", "1e", "0x1F", "0x",
		"1_000", "1__0", "12abc", "x9", "e5", "--", "-- c\n", "/*", "'", "\"", "$1", "$$", "é", "|", "&", "@", "%", "/"}
	var out []string
	for _, s := range pgbenchStatements(100) {
		out = append(out, s...)
	}
	for range n {
		var b strings.Builder
		for range 1 + r.IntN(24) {
			b.WriteString(pieces[r.IntN(len(pieces))])
			if r.IntN(3) == 0 {
				b.WriteByte(' ')
			}
		}
		out = append(out, b.String())
	}
	return out
}

// TestNumberTokens: where numberTokens reads a text, the scanner reads
// it too, and its numeric constants are the ones numberTokens gives.
func TestNumberTokens(t *testing.T) {
	read := 0
	for _, s := range plainTexts(20000) {
		got, ok := numberTokens(s)
		if !ok {
			continue
		}
		read++
		want, err := pg_query.Scan(s)
		if err != nil {
			t.Fatalf("numberTokens(%q) read it; the scanner refuses it: %v", s, err)
		}
		var nums []*pg_query.ScanToken
		for _, w := range want.Tokens {
			switch w.Token {
			case pg_query.Token_ICONST, pg_query.Token_FCONST:
				nums = append(nums, w)
			case pg_query.Token_SCONST, pg_query.Token_USCONST, pg_query.Token_BCONST, pg_query.Token_XCONST,
				pg_query.Token_SQL_COMMENT, pg_query.Token_C_COMMENT, pg_query.Token_PARAM:
				t.Fatalf("numberTokens(%q) read it; the scanner finds %v", s, w)
			}
		}
		if len(got) != len(nums) {
			t.Fatalf("numberTokens(%q) = %v; the scanner's numbers: %v", s, got, nums)
		}
		for i, w := range nums {
			if got[i].Start != w.Start || got[i].End != w.End {
				t.Fatalf("numberTokens(%q) number %d: %v; the scanner's: %v", s, i, got[i], w)
			}
		}
	}
	t.Logf("%d texts read", read)
	if read < 2000 {
		t.Errorf("numberTokens read only %d texts: the generator no longer tests it", read)
	}
}

// TestScrubNumberTokens: in numberTokens' subset, the recorded text and
// the values found from its numbers alone are those from every token
// the scanner gives, over texts whose numbers hold card numbers whole,
// split over constants, and none.
func TestScrubNumberTokens(t *testing.T) {
	texts := plainTexts(5000)
	for _, c := range []string{"4111111111111111", "4111 1111 1111 1111", "41111111, 11111111", "4111, 1111, 1111, 1111", "378282246310005"} {
		texts = append(texts, "INSERT INTO t VALUES ("+c+")", "UPDATE t SET a = a + "+c+" WHERE b = 1")
	}
	changed := 0
	for _, s := range texts {
		nt, ok := numberTokens(s)
		if !ok {
			continue
		}
		all, err := pg_query.Scan(s)
		if err != nil {
			t.Fatal(err)
		}
		want, wf := scrubScanned(s, nil, 0, tokenRules{}, all)
		got, gf := scrubScanned(s, nil, 0, tokenRules{}, &pg_query.ScanResult{Tokens: nt})
		if got != want || len(gf) != len(wf) {
			t.Fatalf("%q recorded from its numbers as %q (%v); from every token: %q (%v)", s, got, gf, want, wf)
		}
		for i := range wf {
			if gf[i] != wf[i] {
				t.Fatalf("%q: values %v; from every token: %v", s, gf, wf)
			}
		}
		if got != s {
			changed++
		}
	}
	t.Logf("%d texts with a value replaced", changed)
	if changed < 10 {
		t.Errorf("only %d texts had a value replaced: the test no longer tests replacements", changed)
	}
}
