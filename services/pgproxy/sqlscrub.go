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
// quoted placeholder. The redactions name path "/statement". Text the
// scanner cannot read is scrubbed as free text (mask.Scrub).
//
// A statement in which the detectors find nothing even as free text — the
// common case — is returned as it is without scanning.
func redactSQL(sql string) (string, []gateway.Redaction) {
	if _, counts := mask.Scrub(sql); counts == nil {
		return sql, nil
	}
	toks, err := pg_query.Scan(sql)
	if err != nil {
		out, counts := mask.Scrub(sql)
		return out, gateway.Redactions("/statement", counts)
	}
	var b strings.Builder
	all := map[string]int{}
	last := 0
	for _, t := range toks.Tokens {
		lo, hi := int(t.Start), int(t.End)
		if lo < last || hi > len(sql) || lo >= hi {
			continue
		}
		var out string
		var counts map[string]int
		switch t.Token {
		case pg_query.Token_SCONST, pg_query.Token_USCONST:
			pre, inner, post := splitLiteral(sql[lo:hi])
			if inner, counts = mask.Scrub(inner); counts != nil {
				out = pre + inner + post
			}
		case pg_query.Token_SQL_COMMENT, pg_query.Token_C_COMMENT:
			out, counts = mask.Scrub(sql[lo:hi])
		case pg_query.Token_ICONST, pg_query.Token_FCONST:
			if d := mask.Find([]byte(sql[lo:hi])); d != "" {
				out, counts = "'"+mask.Placeholder(d)+"'", map[string]int{d: 1}
			}
		}
		if counts == nil {
			continue
		}
		b.WriteString(sql[last:lo])
		b.WriteString(out)
		last = hi
		for d, n := range counts {
			all[d] += n
		}
	}
	if last == 0 {
		return sql, nil
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
