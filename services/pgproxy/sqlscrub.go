package pgproxy

import (
	"math/big"
	"strconv"
	"strings"

	pg_query "github.com/pganalyze/pg_query_go/v6"

	"github.com/auditledger/auditledger/events/detect"
	"github.com/auditledger/auditledger/services/gateway"
)

// redactSQL replaces, in a statement's recorded text, each value the
// built-in detectors find in a literal or a comment, as PostgreSQL's own
// scanner delimits them (string constants, dollar-quoted and E'…' strings
// included, numeric constants, comments): the value inside a literal
// becomes detect.Placeholder(detector), so the text keeps its SQL shape
// ('[REDACTED:credit_card]'); a numeric constant that is one becomes the
// quoted placeholder. String literals joined by || are also judged as
// the one string they make ('4111 1111' || '1111 1111'): when that finds
// a value, each of them becomes the placeholder. The redactions name path
// "/statement" and carry the values replaced (as PostgreSQL reads them),
// for the gateway core to record their keyed digests. Text the scanner
// cannot read is scrubbed as free text (detect.Scrub).
//
// A statement that cannot hold a value (detect.MayHold, and no ||) — the
// common case — is returned as it is without scanning.
func redactSQL(sql string) (string, []gateway.Redaction) {
	if !detect.MayHold(sql) && !strings.Contains(sql, "||") && !encoded(sql) {
		return sql, nil
	}
	toks, err := pg_query.Scan(sql)
	if err != nil {
		var found []gateway.Finding
		out, _ := gateway.ScrubFound(sql, &found)
		return out, gateway.Found("/statement", found)
	}
	var all []gateway.Finding
	repl := map[int]string{} // token index → its recorded text
	var run []int            // string literals joined by ||
	var joined strings.Builder
	endRun := func() {
		if len(run) > 1 {
			// The placeholders of what each literal held stay as they
			// are; anything found now is a value only the whole makes.
			var found []gateway.Finding
			if gateway.ScrubFound(joined.String(), &found); len(found) > 0 {
				all = append(all, found...)
				d := found[0].Detector
				for _, k := range run {
					t := toks.Tokens[k]
					pre, _, post := splitLiteral(sql[t.Start:t.End])
					repl[k] = pre + detect.Placeholder(d) + post
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
			scrubbed, counts := gateway.ScrubFound(inner, &all)
			if counts != nil {
				repl[k] = pre + scrubbed + post
			} else if dec, ok := decodeLiteral(pre, inner); ok {
				// Escapes (E'jane\x40example.com', U&'\0034\0031…') are
				// judged as the value PostgreSQL reads; a match replaces
				// the whole literal, whose escapes cannot be kept apart.
				if d := detect.Find([]byte(dec)); d != "" {
					all = append(all, gateway.Finding{Detector: d, Value: dec})
					scrubbed = detect.Placeholder(d)
					repl[k] = "'" + scrubbed + "'"
				}
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
			if out, counts := gateway.ScrubFound(sql[lo:hi], &all); counts != nil {
				repl[k] = out
			}
		case pg_query.Token_ICONST, pg_query.Token_FCONST:
			// 4111_1111_1111_1111 and 4.111111111111111e15 are judged
			// as the number they write.
			n := numberDigits(sql[lo:hi])
			if d := detect.Find([]byte(n)); d != "" {
				all = append(all, gateway.Finding{Detector: d, Value: n})
				repl[k] = "'" + detect.Placeholder(d) + "'"
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
	return b.String(), gateway.Found("/statement", all)
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

// encoded reports whether sql may write a value in a form the detectors do
// not read as typed: escapes in E'…' or U&'…' strings, digits grouped by
// underscores, or a numeric constant with an exponent.
func encoded(sql string) bool {
	if strings.Contains(sql, "\\") {
		return true
	}
	for i := 1; i+1 < len(sql); i++ {
		c := sql[i]
		if (c == '_' || c == 'e' || c == 'E') && isDigit(sql[i-1]) && (isDigit(sql[i+1]) || sql[i+1] == '+') {
			return true
		}
	}
	return false
}

func isDigit(c byte) bool { return '0' <= c && c <= '9' }

// numberDigits returns the integer a numeric constant writes, when it has
// one worth judging: underscores dropped, an exponent applied
// (4.111111111111111e15 → 4111111111111111); otherwise tok itself.
func numberDigits(tok string) string {
	t := strings.ReplaceAll(tok, "_", "")
	if !strings.ContainsAny(t, "eE") {
		return t
	}
	f, ok := new(big.Float).SetPrec(256).SetString(t)
	if !ok || !f.IsInt() || f.Sign() < 0 {
		return t
	}
	i, _ := f.Int(nil)
	return i.String()
}

// decodeLiteral returns the value PostgreSQL reads from a string literal
// with escapes: E'…' (\xHH, \ooo, \uXXXX, \UXXXXXXXX, \n and the like)
// or U&'…' (\XXXX, \+XXXXXX; the default escape character). ok is false
// for a literal without escapes.
func decodeLiteral(pre, inner string) (string, bool) {
	if !strings.Contains(inner, "\\") {
		return "", false
	}
	switch p := strings.ToUpper(strings.TrimSuffix(pre, "'")); p {
	case "E":
		return decodeE(inner), true
	case "U&":
		return decodeU(inner), true
	}
	return "", false
}

func decodeE(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] != '\\' || i+1 == len(s) {
			b.WriteByte(s[i])
			continue
		}
		i++
		switch c := s[i]; {
		case c == 'x':
			j := i + 1
			for j < len(s) && j < i+3 && isHex(s[j]) {
				j++
			}
			if v, err := strconv.ParseUint(s[i+1:j], 16, 8); err == nil {
				b.WriteByte(byte(v))
				i = j - 1
			} else {
				b.WriteByte(c)
			}
		case '0' <= c && c <= '7':
			j := i
			for j < len(s) && j < i+3 && '0' <= s[j] && s[j] <= '7' {
				j++
			}
			v, _ := strconv.ParseUint(s[i:j], 8, 16)
			b.WriteByte(byte(v))
			i = j - 1
		case c == 'u' || c == 'U':
			n := 4
			if c == 'U' {
				n = 8
			}
			if i+n < len(s) {
				if v, err := strconv.ParseUint(s[i+1:i+1+n], 16, 32); err == nil {
					b.WriteRune(rune(v))
					i += n
					continue
				}
			}
			b.WriteByte(c)
		default:
			b.WriteByte(unescape(c))
		}
	}
	return b.String()
}

// unescape is what a backslash before c writes in an E'…' string.
func unescape(c byte) byte {
	switch c {
	case 'b':
		return '\b'
	case 'f':
		return '\f'
	case 'n':
		return '\n'
	case 'r':
		return '\r'
	case 't':
		return '\t'
	}
	return c
}

func decodeU(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] != '\\' || i+1 == len(s) {
			b.WriteByte(s[i])
			continue
		}
		switch {
		case s[i+1] == '\\':
			b.WriteByte('\\')
			i++
		case s[i+1] == '+' && i+8 <= len(s):
			if v, err := strconv.ParseUint(s[i+2:i+8], 16, 32); err == nil {
				b.WriteRune(rune(v))
				i += 7
				continue
			}
			b.WriteByte(s[i])
		case i+5 <= len(s):
			if v, err := strconv.ParseUint(s[i+1:i+5], 16, 32); err == nil {
				b.WriteRune(rune(v))
				i += 4
				continue
			}
			b.WriteByte(s[i])
		default:
			b.WriteByte(s[i])
		}
	}
	return b.String()
}

func isHex(c byte) bool { return isDigit(c) || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F' }
