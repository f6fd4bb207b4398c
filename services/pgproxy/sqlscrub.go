package pgproxy

import (
	"strings"

	pg_query "github.com/pganalyze/pg_query_go/v6"

	"github.com/auditledger/auditledger/services/gateway"
	"github.com/auditledger/auditledger/services/mask"
)

// redactSQL replaces, in a statement's recorded text, each value the
// built-in detectors find in a literal or a comment, as PostgreSQL's own
// scanner delimits them (string constants, dollar-quoted and E” strings
// included, numeric constants, comments): the value inside a literal
// becomes mask.Placeholder(detector), so the text keeps its SQL shape
// ('[REDACTED:credit_card]'); a numeric constant that is one becomes the
// quoted placeholder. String literals joined by || are also judged as
// the one string they make ('4111 1111' || '1111 1111'): when that finds
// a value, each of them becomes the placeholder. The redactions name path
// "/statement". Text the scanner cannot read is scrubbed as free text
// (mask.Scrub).
//
// A statement that cannot hold a value (mask.MayHold, and no ||) — the
// common case — is returned as it is without scanning.
func redactSQL(sql string) (string, []gateway.Redaction) {
	if !mask.MayHold(sql) && !strings.Contains(sql, "||") {
		return sql, nil
	}
	toks, err := pg_query.Scan(sql)
	if err != nil {
		out, counts := mask.Scrub(sql)
		return out, gateway.Redactions("/statement", counts)
	}
	all := map[string]int{}
	note := func(counts map[string]int) {
		for d, n := range counts {
			all[d] += n
		}
	}
	repl := map[int]string{} // token index → its recorded text
	var run []int            // string literals joined by ||
	var joined strings.Builder
	endRun := func() {
		if len(run) > 1 {
			// The placeholders of what each literal held stay as they
			// are; anything found now is a value only the whole makes.
			if _, counts := mask.Scrub(joined.String()); counts != nil {
				note(counts)
				d := gateway.Redactions("", counts)[0].Detector
				for _, k := range run {
					t := toks.Tokens[k]
					pre, _, post := splitLiteral(sql[t.Start:t.End])
					repl[k] = pre + mask.Placeholder(d) + post
				}
			}
		}
		run = run[:0]
		joined.Reset()
	}
	for k, t := range toks.Tokens {
		lo, hi := int(t.Start), int(t.End)
		if hi > len(sql) || lo >= hi {
			continue
		}
		switch t.Token {
		case pg_query.Token_SCONST, pg_query.Token_USCONST:
			pre, inner, post := splitLiteral(sql[lo:hi])
			scrubbed, counts := mask.Scrub(inner)
			if counts != nil {
				note(counts)
				repl[k] = pre + scrubbed + post
			}
			// Joined by || or, as PostgreSQL does, by a line break.
			run = append(run, k)
			joined.WriteString(scrubbed)
			continue
		case pg_query.Token_Op:
			if sql[lo:hi] == "||" && len(run) > 0 && run[len(run)-1] == k-1 {
				continue
			}
		case pg_query.Token_SQL_COMMENT, pg_query.Token_C_COMMENT:
			if out, counts := mask.Scrub(sql[lo:hi]); counts != nil {
				note(counts)
				repl[k] = out
			}
		case pg_query.Token_ICONST, pg_query.Token_FCONST:
			if d := mask.Find([]byte(sql[lo:hi])); d != "" {
				note(map[string]int{d: 1})
				repl[k] = "'" + mask.Placeholder(d) + "'"
			}
		}
		endRun()
	}
	endRun()
	if len(repl) == 0 {
		return sql, nil
	}
	var b strings.Builder
	last := 0
	for k, t := range toks.Tokens {
		out, ok := repl[k]
		if !ok || int(t.Start) < last {
			continue
		}
		b.WriteString(sql[last:t.Start])
		b.WriteString(out)
		last = int(t.End)
	}
	b.WriteString(sql[last:])
	return b.String(), gateway.Redactions("/statement", all)
}

// splitLiteral splits a string constant's token into its opening
// delimiter (with any E, U& or N prefix, or a dollar quote's tag), its
// content and its closing delimiter.
func splitLiteral(tok string) (pre, inner, post string) {
	if strings.HasPrefix(tok, "$") {
		if i := strings.IndexByte(tok[1:], '$'); i >= 0 {
			tag := tok[:i+2]
			if len(tok) >= 2*len(tag) && strings.HasSuffix(tok, tag) {
				return tag, tok[len(tag) : len(tok)-len(tag)], tag
			}
		}
		return "", tok, ""
	}
	i := strings.IndexByte(tok, '\'')
	if i < 0 || len(tok) < i+2 || tok[len(tok)-1] != '\'' {
		return "", tok, ""
	}
	return tok[:i+1], tok[i+1 : len(tok)-1], "'"
}
