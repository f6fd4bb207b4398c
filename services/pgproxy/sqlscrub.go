package pgproxy

import (
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"io"
	"math/big"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"unicode"

	pg_query "github.com/pganalyze/pg_query_go/v6"
	"google.golang.org/protobuf/reflect/protoreflect"

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
// Two more kinds of literal are replaced whole, found on the parse tree
// (treeRedactions): one compared with or assigned to a column a mask rule
// of pol names (email = 'x', card IN (…), name LIKE 'Jo%', UPDATE SET,
// INSERT VALUES) becomes [REDACTED:masked_column], whatever it holds; and
// the literals of a constant string expression — concat, concat_ws,
// format, chr, || (OPERATOR(pg_catalog.||) too) with casts between,
// textcat, lower, upper, initcap, replace, translate, reverse, lpad,
// rpad, overlay, quote_literal, decode, convert_from and encode of a
// bytea, array_to_string of an ARRAY or an array literal, an ARRAY's
// elements joined — whose value the detectors find become that
// detector's placeholder.
//
// A statement that cannot hold a value (detect.MayHold, no ||, nothing
// found on the tree) — the common case — is returned as it is without
// scanning.
func redactSQL(sql string, pol *Policy) (string, []gateway.Redaction) {
	out, found := redactText(sql, pol, 0)
	if out == sql {
		return sql, nil
	}
	return out, gateway.Found("/statement", found)
}

// redactText is redactSQL for a text found at depth levels of code
// below the statement (a function body, an EXECUTE string): the text as
// recorded and the values replaced. A text PostgreSQL's parser refuses,
// while a mask rule names columns, has every literal replaced (the
// constants compared with a masked column cannot be told apart).
func redactText(sql string, pol *Policy, depth int) (string, []gateway.Finding) {
	forced, whole := treeRedactions(sql, pol)
	r := tokenRules{forced: forced, whole: whole}
	if pol.hasColumnRules() || depth > 0 || strings.ContainsAny(sql, "$'") && mayHoldCode(sql) {
		a := analyze(sql)
		r.all = a.err != nil && pol.hasColumnRules()
		if a.err == nil && (a.has("DO") || a.has("CREATE FUNCTION") || a.has("CREATE PROCEDURE") || len(a.textSQL) > 0) {
			r.codeAt = codeStrings(sql)
		}
	}
	return scrubTokens(sql, pol, depth, r)
}

// mayHoldCode reports whether sql may hold code in a string: a DO, a
// CREATE FUNCTION or PROCEDURE, a call of one of textSQLFuncs, or a name
// spelled with Unicode escapes (U&"…"), letter case ignored. The parse
// tree decides; this only skips texts that cannot.
func mayHoldCode(sql string) bool {
	for _, w := range []string{"do", "function", "procedure", "_xml", "dblink", `u&"`} {
		if containsFold(sql, w) {
			return true
		}
	}
	return false
}

// tokenRules say what scrubTokens replaces besides what the detectors
// find: constants by offset (forced) or by their text (forcedRaw), each
// with the name of its placeholder; string constants holding code, by
// offset (codeAt) or text (codeRaw), judged as that code; with all,
// every constant.
type tokenRules struct {
	forced    map[int32]string
	forcedRaw map[string]string
	codeAt    map[int32]codeLang
	codeRaw   map[string]codeLang
	all       bool
	whole     []gateway.Finding // values constant string expressions make
}

// none reports whether r names nothing to replace but what the detectors
// find.
func (r tokenRules) none() bool {
	return len(r.forced)+len(r.forcedRaw)+len(r.codeAt)+len(r.codeRaw)+len(r.whole) == 0 && !r.all
}

// numberTokens returns the numeric constants of sql, as PostgreSQL's
// scanner delimits them, when sql is written in a subset of SQL whose
// scanning is plain: ASCII letters, digits, _, white space and the
// punctuation ( ) , ; = < > + - * : [ ] . only — no string, quoted name,
// comment, $ or escape — and each number digits alone (no 1.5, 1e3, 0x1F,
// 1_000 or digits glued to a letter, which the scanner reads otherwise or
// refuses). Those are the tokens scrubScanned acts on in such a text
// (TestNumberTokens holds them to the scanner's; TestScrubNumberTokens
// the recorded text to the one from every token), so that pgbench's and
// most applications' statements, numbers and names only, are not sent to
// the scanner (about 10 µs of cgo a statement). ok is false for any
// other text.
func numberTokens(sql string) (toks []*pg_query.ScanToken, ok bool) {
	for i := 0; i < len(sql); {
		c := sql[i]
		switch {
		case 'a' <= c|0x20 && c|0x20 <= 'z' || c == '_':
			// A name or keyword: the digits in it are no number.
			for i < len(sql) && (isDigit(sql[i]) || sql[i] == '_' || 'a' <= sql[i]|0x20 && sql[i]|0x20 <= 'z') {
				i++
			}
		case isDigit(c):
			j := i
			for j < len(sql) && isDigit(sql[j]) {
				j++
			}
			if j < len(sql) && (isWordByte(sql[j]) || sql[j] == '.' || sql[j] >= 0x80) {
				return nil, false
			}
			toks = append(toks, &pg_query.ScanToken{Start: int32(i), End: int32(j), Token: pg_query.Token_ICONST})
			i = j
		case c == '.' && (i+1 == len(sql) || !isDigit(sql[i+1])),
			c == '-' && (i+1 == len(sql) || sql[i+1] != '-'),
			isSpace(c) || strings.IndexByte("(),;=<>+*:[]", c) >= 0:
			i++
		default:
			return nil, false
		}
	}
	return toks, true
}

// scrubTokens scans sql with PostgreSQL's scanner and replaces what the
// detectors find in its literals and comments, and what r names.
func scrubTokens(sql string, pol *Policy, depth int, r tokenRules) (string, []gateway.Finding) {
	if len(r.forced)+len(r.forcedRaw)+len(r.codeAt)+len(r.codeRaw) == 0 && !r.all &&
		!detect.MayHold(sql) && !strings.Contains(sql, "||") && !encoded(sql) && !nonDecimal(sql) && countDigits(sql) < minSplitDigits {
		return sql, nil
	}
	var toks *pg_query.ScanResult
	if r.none() {
		if nt, ok := numberTokens(sql); ok {
			toks = &pg_query.ScanResult{Tokens: nt}
		}
	}
	if toks == nil {
		var err error
		if toks, err = scan(sql); err != nil {
			var found []gateway.Finding
			if r.all {
				return withheldFrom(sql, &found), found
			}
			out, _ := gateway.ScrubFound(sql, &found)
			return out, found
		}
	}
	return scrubScanned(sql, pol, depth, r, toks)
}

// scrubScanned is scrubTokens on sql's tokens. With no rule in r, the
// tokens it acts on are the constants and comments (and || between
// strings): the others only end a run of strings.
func scrubScanned(sql string, pol *Policy, depth int, r tokenRules, toks *pg_query.ScanResult) (string, []gateway.Finding) {
	// A value a constant string expression makes is recorded (its search
	// digest) as the whole it makes, not as the pieces.
	all := slices.Clone(r.whole)
	repl := map[int]string{} // token index → its recorded text
	forcedTok := map[int]string{}
	for k, t := range toks.Tokens {
		if int(t.End) > len(sql) || t.Start >= t.End {
			continue
		}
		if d, ok := r.forced[t.Start]; ok {
			if isSign(t.Token) {
				k++ // a sign: the constant follows
			}
			forcedTok[k] = d
			continue
		}
		if isConst(t.Token) || quotedName(sql, t) {
			if d, ok := r.forcedRaw[sql[t.Start:t.End]]; ok {
				forcedTok[k] = d
			} else if r.all && !r.isCode(sql, t) {
				forcedTok[k] = unjudgedLiteral
			}
		}
	}
	var run []int // string literals joined by ||
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
		if lang, ok := r.code(sql, t); ok {
			// A string that holds code (a function body, an EXECUTE or
			// dblink string) is judged as that code, and written back
			// as the same kind of literal.
			if pre, _, post := splitLiteral(sql[lo:hi]); post != "" {
				if v, ok := literalValue(sql[lo:hi]); ok {
					if nv, f := judgeCode(v, lang, pol, depth+1); nv != v {
						repl[k] = encodeLiteral(pre, nv, post)
						all = append(all, f...)
						endRun()
						continue
					}
				}
			}
		}
		if d, ok := forcedTok[k]; ok && !isConst(t.Token) {
			// A name where a value of a masked column is expected: a
			// quoted one is recorded as the placeholder, a bare one (a
			// column) as written.
			if quotedName(sql, t) {
				all = append(all, gateway.Finding{Detector: d, Value: strings.ReplaceAll(sql[lo+1:hi-1], `""`, `"`)})
				repl[k] = `"` + detect.Placeholder(d) + `"`
			}
			endRun()
			continue
		}
		if d, ok := forcedTok[k]; ok {
			switch t.Token {
			case pg_query.Token_SCONST, pg_query.Token_USCONST, pg_query.Token_BCONST, pg_query.Token_XCONST:
				pre, inner, post := splitLiteral(sql[lo:hi])
				if d == maskedColumn || d == unjudgedLiteral {
					all = append(all, gateway.Finding{Detector: d, Value: inner})
					gateway.ScrubFound(inner, &all)
				}
				repl[k] = pre + detect.Placeholder(d) + post
				run = append(run, k)
				joined.WriteString(detect.Placeholder(d))
				continue
			default:
				if d == maskedColumn || d == unjudgedLiteral {
					all = append(all, gateway.Finding{Detector: d, Value: sql[lo:hi]})
				}
				repl[k] = "'" + detect.Placeholder(d) + "'"
			}
			endRun()
			continue
		}
		switch t.Token {
		case pg_query.Token_SCONST, pg_query.Token_USCONST:
			// The text as written first: what the detectors find there is
			// replaced where it stands. Then escapes (E'jane\x40…', U&'\0034
			// \0031…' with or without UESCAPE), strings continued on the
			// next line and the bytea and JSON texts a string may be read
			// as are judged as the value PostgreSQL reads; a value found
			// there that the text as written did not show replaces the
			// whole literal, whose escapes cannot be kept apart. The
			// digits of escapes (\0043\006e…) can make a chain a detector
			// reads as a card number: that must not keep the value they
			// spell from being found, nor leave the rest of it in clear.
			pre, inner, post := splitLiteral(sql[lo:hi])
			var written []gateway.Finding
			scrubbed, counts := gateway.ScrubFound(inner, &written)
			esc, uescape := byte('\\'), false
			if t.Token == pg_query.Token_USCONST && k+2 < len(toks.Tokens) && toks.Tokens[k+1].Token == pg_query.Token_UESCAPE {
				if e := toks.Tokens[k+2]; e.Token == pg_query.Token_SCONST && int(e.End) <= len(sql) {
					if _, c, _ := splitLiteral(sql[e.Start:e.End]); len(c) == 1 {
						esc, uescape = c[0], true
					}
				}
			}
			readings := literalReadings(pre, inner, esc)
			for _, dec := range readings {
				var read []gateway.Finding
				if d := findIn(dec, &read); d != "" && !coveredBy(read, written) {
					scrubbed, written = detect.Placeholder(d), read
					if uescape {
						// U&'…' UESCAPE '!' stays valid SQL.
						repl[k] = pre + scrubbed + post
					} else {
						repl[k] = "'" + scrubbed + "'"
					}
					break
				}
			}
			all = append(all, written...)
			if _, ok := repl[k]; !ok {
				if counts != nil {
					repl[k] = pre + scrubbed + post
				} else if len(readings) > 0 {
					scrubbed = readings[0] // joined by || as PostgreSQL reads it
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
	all = append(all, joinLiterals(sql, toks.Tokens, forcedTok, repl)...)
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
	return b.String(), all
}

// minSplitDigits is how many digits a statement holds at least for
// scrubTokens to look for a number split over its literals when nothing
// else calls for a scan: the shortest number a detector finds (a phone
// number, an IBAN's account digits) has 8.
const minSplitDigits = 8

func countDigits(s string) int {
	n := 0
	for i := 0; i < len(s); i++ {
		if s[i] >= '0' && s[i] <= '9' {
			n++
		}
	}
	return n
}

// joinLiterals judges a statement's literals — string and numeric
// constants, as PostgreSQL reads them, and comments — joined in order
// (detect.JoinedValues: all of them, and each adjacent pair, with and
// without a space between): a value split over constants the server
// joins other than by a literal || (VALUES columns joined through column
// references, 'a' AS x, 'b' AS y, set_config pairs, jsonb members, two
// comments, functions the proxy does not fold) is found so. Every
// literal that goes into a value found is replaced whole by the
// detector's placeholder in repl (a constant the proxy did not need to
// replace costs only the detail it held: fail closed); it returns the
// values found, for their search digests. Constants already replaced
// whole (forced) are not judged again.
func joinLiterals(sql string, toks []*pg_query.ScanToken, forced map[int]string, repl map[int]string) []gateway.Finding {
	var parts []string
	var idx []int
	for k, t := range toks {
		lo, hi := int(t.Start), int(t.End)
		if hi > len(sql) || lo >= hi {
			continue
		}
		if _, ok := forced[k]; ok {
			continue
		}
		var v string
		switch t.Token {
		case pg_query.Token_SCONST, pg_query.Token_USCONST:
			if lv, ok := literalValue(sql[lo:hi]); ok {
				v = lv
			} else {
				_, v, _ = splitLiteral(sql[lo:hi])
			}
		case pg_query.Token_ICONST, pg_query.Token_FCONST:
			v = numberDigits(sql[lo:hi])
		case pg_query.Token_SQL_COMMENT:
			v = strings.TrimPrefix(sql[lo:hi], "--")
		case pg_query.Token_C_COMMENT:
			v = strings.TrimSuffix(strings.TrimPrefix(sql[lo:hi], "/*"), "*/")
		default:
			continue
		}
		if leaves := jsonLeaves(v); len(leaves) > 1 {
			// A JSON text's members, each a part (jsonb members).
			for _, l := range leaves {
				parts = append(parts, l)
				idx = append(idx, k)
			}
			continue
		}
		parts = append(parts, v)
		idx = append(idx, k)
	}
	var found []gateway.Finding
	for n, j := range detect.JoinedValues(parts) {
		if n < maxJoinedDigests {
			found = append(found, gateway.Finding{Detector: j.Detector, Value: j.Value})
		}
		for _, p := range j.Parts {
			k := idx[p]
			t := toks[k]
			tok := sql[t.Start:t.End]
			switch t.Token {
			case pg_query.Token_SQL_COMMENT:
				// The line's end, when the token holds it, stays.
				repl[k] = "-- " + detect.Placeholder(j.Detector) + tok[len(strings.TrimRight(tok, "\r\n")):]
			case pg_query.Token_C_COMMENT:
				repl[k] = "/* " + detect.Placeholder(j.Detector) + " */"
			default:
				// A plain string, whatever the constant was written as
				// (E'…', U&'…', $$…$$, a number).
				repl[k] = "'" + detect.Placeholder(j.Detector) + "'"
			}
		}
	}
	return found
}

// maxJoinedDigests is how many values made of joined literals a
// statement's record lists with their search digests at most; every
// literal that goes into one is replaced all the same. A long list of
// small numbers can make many (4001, 4002, 4003, 4004), and the record
// must stay within the bus's message size.
const maxJoinedDigests = 16

// jsonLeaves returns the strings and numbers of v, when v is a JSON
// object or array, in order; nil otherwise.
func jsonLeaves(v string) []string {
	t := strings.TrimSpace(v)
	if len(t) < 2 || t[0] != '{' && t[0] != '[' {
		return nil
	}
	d := json.NewDecoder(strings.NewReader(t))
	d.UseNumber()
	var out []string
	for {
		tok, err := d.Token()
		if err != nil {
			if err == io.EOF {
				return out
			}
			return nil
		}
		switch x := tok.(type) {
		case string:
			out = append(out, x)
		case json.Number:
			out = append(out, x.String())
		}
	}
}

// maskedColumn names, in a placeholder, a constant replaced because it is
// compared with or assigned to a column a mask rule names.
const maskedColumn = "masked_column"

// treeRedactions returns the offsets of the constants to replace whole
// in sql's recorded text, each with the name its placeholder takes: those
// written against a masked column of pol (valuePairs), and those of a
// constant string expression the detectors find a value in
// (foldRedactions). The text is parsed only when the cached analysis
// names a masked column compared with a constant, or when the text calls
// something that joins or transforms strings.
//
// whole lists the values the constant string expressions make that the
// detectors found, for their search digests.
func treeRedactions(sql string, pol *Policy) (forced map[int32]string, whole []gateway.Finding) {
	needMask := false
	if pol.hasColumnRules() {
		for _, c := range analyze(sql).compared {
			if c == anyColumn || pol.columnRules([]string{c})[0] != nil {
				needMask = true
				break
			}
		}
	}
	needFold := foldHint(sql)
	needSetting := pol.hasColumnRules() && (containsFold(sql, "set_config") || strings.Contains(sql, ";") && containsFold(sql, "set"))
	if !needMask && !needFold && !needSetting {
		return nil, nil
	}
	tree, err := pg_query.Parse(sql)
	if err != nil {
		return nil, nil // the scanner still judges every literal
	}
	out := map[int32]string{}
	if needSetting {
		settingRedactions(tree, pol, out)
	}
	if needMask {
		pairs := valuePairs(tree)
		for i, masked := range linkedMasked(pairs, pol) {
			if masked {
				for _, l := range pairs[i].locs {
					out[l] = maskedColumn
				}
			}
		}
	}
	if needFold {
		whole = foldRedactions(tree, out)
	}
	return out, whole
}

// settingRedactions marks, in a text whose statements name a column a
// mask rule of pol names, the value a custom setting is given — the
// value argument of set_config, SET and SET LOCAL of a name with a dot —
// as a constant compared with that column: a value staged in a setting
// and compared through current_setting in the same text (name =
// current_setting('x.v') OR set_config('x.v', 'Zelda', false) IS NULL)
// is linked to the column so. A value staged in one text and compared
// in a later one is not (docs/POLICY.md).
func settingRedactions(tree *pg_query.ParseResult, pol *Policy, out map[int32]string) {
	touches := false
	var locs []int32
	for _, raw := range tree.Stmts {
		if raw.Stmt == nil {
			continue
		}
		m := raw.Stmt.ProtoReflect()
		for _, c := range columnsIn(m) {
			if c == anyColumn || pol.columnRules([]string{c})[0] != nil {
				touches = true
			}
		}
		visit(m, func(m protoreflect.Message) bool {
			switch x := m.Interface().(type) {
			case *pg_query.FuncCall:
				if n := len(x.Funcname); n > 0 && strings.EqualFold(x.Funcname[n-1].GetString_().GetSval(), "set_config") && len(x.Args) >= 2 {
					locs = append(locs, constLocs(x.Args[1])...)
				}
			case *pg_query.VariableSetStmt:
				if strings.Contains(x.Name, ".") {
					for _, a := range x.Args {
						locs = append(locs, constLocs(a)...)
					}
				}
			}
			return true
		})
	}
	if !touches {
		return
	}
	for _, l := range locs {
		out[l] = maskedColumn
	}
}

// constLocs returns where the constants of n start: n a constant, or
// casts of one.
func constLocs(n *pg_query.Node) []int32 {
	switch {
	case n == nil:
		return nil
	case n.GetAConst() != nil:
		return []int32{n.GetAConst().Location}
	case n.GetTypeCast() != nil:
		return constLocs(n.GetTypeCast().Arg)
	}
	return nil
}

// maskedParams returns the numbers of sql's bind parameters ($n) that
// are compared with or assigned to a column a mask rule of pol names, as
// constants are in treeRedactions: their values are recorded as the
// masked column placeholder.
func maskedParams(sql string, pol *Policy) map[int32]bool {
	if !pol.hasColumnRules() || !strings.Contains(sql, "$") {
		return nil
	}
	a := analyze(sql)
	var out map[int32]bool
	for i, masked := range linkedMasked(a.pairs, pol) {
		if !masked {
			continue
		}
		for _, n := range a.pairs[i].params {
			if out == nil {
				out = map[int32]bool{}
			}
			out[n] = true
		}
	}
	return out
}

// foldFuncs are the functions foldConst evaluates: a text that calls
// none of them and joins nothing with || has no constant string
// expression to judge.
var foldFuncs = map[string]bool{"chr": true, "concat": true, "concat_ws": true, "format": true, "lower": true, "upper": true,
	"replace": true, "regexp_replace": true, "translate": true, "reverse": true, "ascii": true, "lpad": true, "rpad": true,
	"array_to_string": true, "decode": true, "convert_from": true, "unistr": true,
	"textcat": true, "quote_literal": true, "quote_nullable": true, "initcap": true, "overlay": true, "encode": true,
	"substr": true, "substring": true, "left": true, "right": true}

// foldHint reports whether sql may call one of foldFuncs, join with ||
// or compute a number: it holds || or one of their names, letter case
// ignored, anywhere (so comments between a name and its parenthesis do
// not hide it), a quoted identifier with Unicode escapes (U&"…"), which
// can spell one, OPERATOR (OPERATOR(pg_catalog.+) is +), or a +, - or *
// that may apply to constants (arithmetic: 51598415::bigint*100000000+
// 80634868 makes a card number no literal holds). The parse tree
// decides; this only skips texts that cannot have one.
func foldHint(sql string) bool {
	for i := 0; i < len(sql); i++ {
		switch c := sql[i] | 0x20; c {
		case '+', '*', '-': // | 0x20 leaves them as they are
			if arithmetic(sql, i) {
				return true
			}
		case '|':
			if sql[i] == '|' && i+1 < len(sql) && sql[i+1] == '|' {
				return true
			}
		case 'u':
			if i+2 < len(sql) && sql[i+1] == '&' && sql[i+2] == '"' {
				return true
			}
			fallthrough
		default:
			for _, w := range foldNames[c] {
				if hasPrefixFold(sql[i:], w) {
					return true
				}
			}
		}
	}
	return false
}

// arithmetic reports whether the +, - or * at sql[i] may be an operator
// whose operands foldConst folds (constants, casts of them, arithmetic
// and the folding functions), so that the parse tree must be read. It
// answers false only where the text shows they cannot be:
//
//   - what follows (white space skipped) cannot start a constant: not a
//     digit, a quote, a parenthesis, a sign, a $, a comment, a name
//     followed by a quote or parenthesis (a typed constant, a call), NULL,
//     CAST, ARRAY, or the first word of a type name of several words (so
//     SELECT * FROM and count(*) are not arithmetic);
//   - it has a left operand (the operator is not a prefix one) that is a
//     column: a name that is no keyword of PostgreSQL's (NULL is one, as
//     are the words of type names and those before a prefix operator,
//     AND, THEN…), not qualified and not after :: (a cast's type), after
//     another word or an operator (abalance + 1234);
//   - it is a prefix - before an integer or decimal written in digits
//     that no cast or subscript follows: the parser makes it a negative
//     constant, no expression (abalance + -1234);
//   - it is a * with no left operand.
//
// Anything else — a comment, a quote, a character beyond ASCII, a word
// before or after that could be more — is read as arithmetic.
func arithmetic(sql string, i int) bool {
	op := sql[i]
	if op != '+' && op != '-' && op != '*' {
		return false
	}
	j := skipSpace(sql, i+1)
	if !mayStartConstant(sql, j) {
		return false
	}
	k, nl := spaceBefore(sql, i)
	if nl {
		return true // a line comment can end the line before
	}
	if k >= 0 {
		switch c := sql[k]; {
		case isWordByte(c):
			s := k
			for s > 0 && isWordByte(sql[s-1]) {
				s--
			}
			w := sql[s : k+1]
			if isDigit(w[0]) || strings.IndexByte(w, '$') >= 0 || pgKeywords[strings.ToLower(w)] {
				return true // a number, a dollar-quoted string, a keyword
			}
			p, nl := spaceBefore(sql, s)
			if p < 0 || nl {
				return true
			}
			// A column: after another word or an operator. After ::
			// or a dot it can be a type's name, after anything else
			// (a comment's end, a quote) it is not known.
			c := sql[p]
			return !(isWordByte(c) || strings.IndexByte("=,(<>;|+-*%^!~@#&?", c) >= 0)
		case strings.IndexByte("=,(<>;|+-*%^!~@#&?[:", c) < 0:
			return true // the end of an operand: a constant, a parenthesis…
		}
	}
	// A prefix operator.
	switch op {
	case '*':
		return false
	case '+':
		return true
	}
	e := j
	for e < len(sql) && isDigit(sql[e]) {
		e++
	}
	if e == j || e < len(sql) && (isWordByte(sql[e]) || sql[e] == '.' || sql[e] >= 0x80) {
		return true // not digits alone: 0x1F, 1.5, 1e3, '5', (5)…
	}
	// -5 is the constant -5 unless what binds tighter than a sign (a
	// cast, a subscript) follows.
	m := skipSpace(sql, e)
	return m < len(sql) && (sql[m] == ':' || sql[m] == '[' || sql[m] == '/' || sql[m] == '-' || sql[m] == '.')
}

// mayStartConstant reports whether the text at sql[j] may start an
// operand foldConst folds (arithmetic).
func mayStartConstant(sql string, j int) bool {
	if j >= len(sql) {
		return false
	}
	c := sql[j]
	if !isWordByte(c) || isDigit(c) || c == '$' {
		return isDigit(c) || c >= 0x80 || strings.IndexByte(".'(+-$\"/\\", c) >= 0
	}
	e := j
	for e < len(sql) && isWordByte(sql[e]) {
		e++
	}
	switch strings.ToLower(sql[j:e]) {
	case "null", "cast", "array", "double", "bit", "character", "char", "national", "nchar", "time", "timestamp", "interval":
		return true
	}
	if e < len(sql) && sql[e] >= 0x80 {
		return true
	}
	m := skipSpace(sql, e)
	if m == len(sql) {
		return false
	}
	// A typed constant (int8 '5', E'5', U&'5'), a call, a qualified
	// name, a quoted one, a comment.
	return strings.IndexByte("'(.\"$&/[", sql[m]) >= 0 || sql[m] >= 0x80 || sql[m] == '-' && m+1 < len(sql) && sql[m+1] == '-'
}

// isSpace reports whether c is white space to PostgreSQL's scanner.
func isSpace(c byte) bool {
	return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v'
}

// spaceBefore returns the offset of the last byte before i that is not
// white space (-1 if none), and whether the white space skipped holds a
// line break.
func spaceBefore(sql string, i int) (int, bool) {
	k, nl := i-1, false
	for k >= 0 && isSpace(sql[k]) {
		nl = nl || sql[k] == '\n' || sql[k] == '\r'
		k--
	}
	return k, nl
}

// skipSpace returns the offset of the first byte from j on that is not
// white space.
func skipSpace(sql string, j int) int {
	for j < len(sql) && isSpace(sql[j]) {
		j++
	}
	return j
}

// isWordByte reports whether c may be part of a name or keyword (ASCII).
func isWordByte(c byte) bool {
	return isDigit(c) || c == '_' || c == '$' || 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z'
}

// foldNames are the names of foldFuncs by their first letter, "array"
// (ARRAY[4,1,1,…], its elements joined) and "operator".
// An array, not a map: foldHint looks up every byte of a statement.
var foldNames = func() (m [256][]string) {
	m['a'] = []string{"array"}
	m['o'] = []string{"operator"}
	for f := range foldFuncs {
		m[f[0]] = append(m[f[0]], f)
	}
	return m
}()

// hasPrefixFold reports whether s starts with w, ASCII letter case
// ignored; w is lower case.
func hasPrefixFold(s, w string) bool {
	if len(s) < len(w) {
		return false
	}
	for i := 0; i < len(w); i++ {
		c := s[i]
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		if c != w[i] {
			return false
		}
	}
	return true
}

// foldRedactions evaluates every constant string expression of the tree
// (foldConst) that joins or transforms constants, and judges the string
// it makes: when the detectors find a value in it, every constant that
// went into it is added to out with that detector. The characters all
// chr() calls with constant arguments make, in order, are judged joined
// too (chr(52), chr(49), … spelling a number across a SELECT list). It
// returns the values found, as the expressions make them.
func foldRedactions(tree *pg_query.ParseResult, out map[int32]string) (found []gateway.Finding) {
	var chars strings.Builder
	var charLocs []int32
	judge := func(v string, locs []int32) bool {
		d := detect.Find([]byte(v))
		if d != "" {
			found = append(found, gateway.Finding{Detector: d, Value: v})
		} else {
			n := len(found)
			gateway.ScrubFound(v, &found)
			if len(found) == n {
				return false
			}
			d = found[n].Detector
		}
		for _, l := range locs {
			if _, ok := out[l]; !ok {
				out[l] = d
			}
		}
		return true
	}
	strs := map[int32]string{} // string constants as written, by offset
	own := map[int32][]gateway.Finding{}
	// holds reports whether the constant at l holds r by itself: a value
	// found in it alone that is r's, separators aside ('{4111,1111,…}'
	// joined by array_to_string is the number it writes).
	holds := func(l int32, r gateway.Finding) bool {
		s, ok := strs[l]
		if !ok {
			return false
		}
		f, ok := own[l]
		if !ok {
			findIn(s, &f)
			own[l] = f
		}
		return slices.ContainsFunc(f, func(o gateway.Finding) bool { return alnum(o.Value) == alnum(r.Value) })
	}
	judgeNew := func(v string, locs []int32) bool {
		var read []gateway.Finding
		if findIn(v, &read) == "" {
			return false
		}
		var fresh []gateway.Finding
		for _, r := range read {
			if !slices.ContainsFunc(locs, func(l int32) bool { return holds(l, r) }) {
				fresh = append(fresh, r)
			}
		}
		if len(fresh) == 0 {
			return false
		}
		found = append(found, fresh...)
		for _, l := range locs {
			if _, ok := out[l]; !ok {
				out[l] = fresh[0].Detector
			}
		}
		return true
	}
	for _, raw := range tree.Stmts {
		if raw.Stmt == nil {
			continue
		}
		prune(raw.Stmt.ProtoReflect(), func(m protoreflect.Message) bool {
			if c, ok := m.Interface().(*pg_query.A_Const); ok && c.GetSval() != nil {
				strs[c.Location] = c.GetSval().Sval
			}
			return true
		})
		prune(raw.Stmt.ProtoReflect(), func(m protoreflect.Message) bool {
			var n *pg_query.Node
			switch x := m.Interface().(type) {
			case *pg_query.FuncCall:
				n = &pg_query.Node{Node: &pg_query.Node_FuncCall{FuncCall: x}}
			case *pg_query.A_Expr:
				n = &pg_query.Node{Node: &pg_query.Node_AExpr{AExpr: x}}
			case *pg_query.TypeCast:
				n = &pg_query.Node{Node: &pg_query.Node_TypeCast{TypeCast: x}}
			case *pg_query.A_ArrayExpr:
				// ARRAY[4,1,1,…]: its elements, joined.
				n = &pg_query.Node{Node: &pg_query.Node_AArrayExpr{AArrayExpr: x}}
			default:
				return true
			}
			f, ok := foldConst(n, false)
			if !ok || !f.composite {
				return true
			}
			if judge(f.val, f.locs) {
				return false
			}
			// A constant holding a value by itself is read above as its
			// placeholder, which can hide a longer value the whole makes
			// (chr(52) || '2364 5765…', the literal's tail a card number
			// of its own): the whole as PostgreSQL makes it is judged
			// too, and a value no constant holds alone replaces them all.
			if r, ok := foldConst(n, true); ok && r.val != f.val && judgeNew(r.val, r.locs) {
				return false
			}
			if fc := n.GetFuncCall(); fc != nil && funcName(fc) == "chr" {
				chars.WriteString(f.val)
				charLocs = append(charLocs, f.locs...)
			}
			return true
		})
	}
	if len(charLocs) > 1 {
		judge(chars.String(), charLocs)
	}
	return found
}

// folded is the value of a constant expression and the offsets of the
// constants that make it; composite when more than one constant, or a
// function, went into it.
type folded struct {
	val       string
	locs      []int32
	composite bool
}

// maxFolded bounds what folding builds (lpad, format): longer values are
// not judged.
const maxFolded = 4096

// foldConst evaluates n when it is a string expression of constants, as
// PostgreSQL would: string and numeric constants (each as the recording
// reads it, so a value one constant holds alone is not found again; with
// raw, as written, to find a value the whole makes that one of its
// constants only partly shows),
// casts, ||, +, - and * on integers, and the functions of foldWords.
// Arguments that are not constant count as empty strings in the joining
// functions (concat, concat_ws, format, ||), so constants around a column
// are still judged together; any other function or operator is not
// folded.
func foldConst(n *pg_query.Node, raw bool) (folded, bool) {
	if n == nil {
		return folded{}, false
	}
	switch x := n.Node.(type) {
	case *pg_query.Node_AConst:
		c := x.AConst
		switch {
		case c.Isnull:
			return folded{}, true
		case c.GetSval() != nil:
			v := c.GetSval().Sval
			if !raw {
				v, _ = detect.Scrub(v)
			}
			return folded{val: v, locs: []int32{c.Location}}, true
		case c.GetIval() != nil:
			return folded{val: strconv.Itoa(int(c.GetIval().Ival)), locs: []int32{c.Location}}, true
		case c.GetFval() != nil:
			v := c.GetFval().Fval
			if !raw && detect.Find([]byte(numberDigits(v))) != "" {
				v = detect.Placeholder("x")
			}
			return folded{val: v, locs: []int32{c.Location}}, true
		}
		return folded{}, false
	case *pg_query.Node_TypeCast:
		return foldConst(x.TypeCast.Arg, raw)
	case *pg_query.Node_AArrayExpr:
		// ARRAY['4111', '1111', …]: its elements, joined.
		f := folded{composite: true}
		known := false
		for _, e := range x.AArrayExpr.Elements {
			v, ok := foldConst(e, raw)
			known = known || ok
			f.val += v.val
			f.locs = append(f.locs, v.locs...)
		}
		return f, known && len(f.val) <= maxFolded
	case *pg_query.Node_AExpr:
		e := x.AExpr
		// OPERATOR(pg_catalog.||) is the operator || names.
		if e.Kind != pg_query.A_Expr_Kind_AEXPR_OP || len(e.Name) == 0 || len(e.Name) > 2 ||
			len(e.Name) == 2 && !strings.EqualFold(e.Name[0].GetString_().GetSval(), "pg_catalog") {
			return folded{}, false
		}
		l, lok := foldConst(e.Lexpr, raw)
		r, rok := foldConst(e.Rexpr, raw)
		switch op := e.Name[len(e.Name)-1].GetString_().GetSval(); op {
		case "||":
			if !lok && !rok {
				return folded{}, false
			}
			return join(l, r), len(l.val)+len(r.val) <= maxFolded
		case "+", "-", "*":
			if !rok || (!lok && e.Lexpr != nil) {
				return folded{}, false
			}
			a, err1 := strconv.ParseInt(orZero(l.val), 10, 64)
			b, err2 := strconv.ParseInt(r.val, 10, 64)
			if err1 != nil || err2 != nil {
				return folded{}, false
			}
			v := map[string]int64{"+": a + b, "-": a - b, "*": a * b}[op]
			f := join(l, r)
			f.val = strconv.FormatInt(v, 10)
			return f, true
		}
		return folded{}, false
	case *pg_query.Node_FuncCall:
		fc := x.FuncCall
		args := make([]folded, len(fc.Args))
		oks := make([]bool, len(fc.Args))
		anyOK := false
		for i, a := range fc.Args {
			args[i], oks[i] = foldConst(a, raw)
			anyOK = anyOK || oks[i]
		}
		all := !slices.Contains(oks, false)
		f := folded{composite: true}
		for _, a := range args {
			f.locs = append(f.locs, a.locs...)
		}
		switch name := funcName(fc); {
		case (name == "concat" || name == "textcat") && anyOK:
			for _, a := range args {
				f.val += a.val
			}
		case name == "array_to_string" && len(args) >= 2 && oks[0] && oks[1] && fc.Args[0].GetAArrayExpr() != nil:
			var parts []string
			for _, e := range fc.Args[0].GetAArrayExpr().Elements {
				v, _ := foldConst(e, raw)
				parts = append(parts, v.val)
			}
			f.val = strings.Join(parts, args[1].val)
		case name == "array_to_string" && len(args) >= 2 && oks[0] && oks[1]:
			// An array literal: '{4111,1111,1111,1111}'::int[].
			parts, ok := arrayLiteral(args[0].val)
			if !ok {
				return folded{}, false
			}
			f.val = strings.Join(parts, args[1].val)
		case name == "concat_ws" && len(args) > 0 && oks[0]:
			var parts []string
			for _, a := range args[1:] {
				parts = append(parts, a.val)
			}
			f.val = strings.Join(parts, args[0].val)
		case name == "format" && len(args) > 0 && oks[0]:
			f.val = pgFormat(args[0].val, args[1:])
		case !all || len(args) == 0:
			return folded{}, false
		case name == "chr" && len(args) == 1:
			c, err := strconv.ParseInt(args[0].val, 10, 32)
			if err != nil || c <= 0 || c > 0x10FFFF {
				return folded{}, false
			}
			f.val = string(rune(c))
		case name == "decode" && len(args) == 2:
			// hex and base64 text of the value; escape as E'…' reads.
			var b []byte
			var err error
			switch strings.ToLower(args[1].val) {
			case "hex":
				b, err = hex.DecodeString(args[0].val)
			case "base64":
				b, err = base64.StdEncoding.DecodeString(strings.Join(strings.Fields(args[0].val), ""))
			case "escape":
				b = []byte(decodeE(args[0].val))
			default:
				return folded{}, false
			}
			if err != nil {
				return folded{}, false
			}
			f.val = string(b)
		case name == "convert_from" && len(args) == 2:
			f.val = args[0].val
			if b, ok := byteaHex(f.val); ok {
				f.val = string(b) // '\x6a61…', a bytea in hex
			}
		case name == "encode" && len(args) == 2 && strings.EqualFold(args[1].val, "escape"):
			f.val = args[0].val
			if b, ok := byteaHex(f.val); ok {
				f.val = string(b)
			}
		case (name == "quote_literal" || name == "quote_nullable") && len(args) == 1:
			f.val = "'" + strings.ReplaceAll(args[0].val, "'", "''") + "'"
		case name == "initcap" && len(args) == 1:
			f.val = initcap(args[0].val)
		case name == "overlay" && (len(args) == 3 || len(args) == 4):
			// overlay(s PLACING r FROM n [FOR m])
			v, ok := overlay(args)
			if !ok {
				return folded{}, false
			}
			f.val = v
		case name == "unistr" && len(args) == 1:
			f.val = decodeE(decodeU(args[0].val, '\\'))
		case name == "ascii" && len(args) == 1:
			for _, r := range args[0].val {
				f.val = strconv.Itoa(int(r))
				break
			}
		case (name == "substr" || name == "substring") && (len(args) == 2 || len(args) == 3):
			v, ok := substr(args)
			if !ok {
				return folded{}, false
			}
			f.val = v
		case (name == "left" || name == "right") && len(args) == 2:
			n, err := strconv.Atoi(args[1].val)
			if err != nil {
				return folded{}, false
			}
			f.val = leftRight(args[0].val, n, name == "left")
		case name == "lower" && len(args) == 1:
			f.val = strings.ToLower(args[0].val)
		case name == "upper" && len(args) == 1:
			f.val = strings.ToUpper(args[0].val)
		case name == "reverse" && len(args) == 1:
			r := []rune(args[0].val)
			slices.Reverse(r)
			f.val = string(r)
		case name == "replace" && len(args) == 3:
			if args[1].val == "" {
				f.val = args[0].val
			} else if n := strings.Count(args[0].val, args[1].val); len(args[0].val)+n*(len(args[2].val)-len(args[1].val)) > maxFolded {
				return folded{}, false
			} else {
				f.val = strings.ReplaceAll(args[0].val, args[1].val, args[2].val)
			}
		case name == "regexp_replace" && (len(args) == 3 || len(args) == 4):
			// regexp_replace('4111x1111x…', 'x', '', 'g'): the pattern
			// read by Go's regexp (linear time), a replacement without
			// back references; what it cannot read is not folded.
			flags := ""
			if len(args) == 4 {
				flags = args[3].val
			}
			v, ok := regexpReplace(args[0].val, args[1].val, args[2].val, flags)
			if !ok {
				return folded{}, false
			}
			f.val = v
		case name == "translate" && len(args) == 3:
			f.val = translate(args[0].val, args[1].val, args[2].val)
		case (name == "lpad" || name == "rpad") && (len(args) == 2 || len(args) == 3):
			fill := " "
			if len(args) == 3 {
				fill = args[2].val
			}
			n, err := strconv.Atoi(args[1].val)
			if err != nil || n < 0 || n > maxFolded {
				return folded{}, false
			}
			f.val = pad(args[0].val, n, fill, name == "lpad")
		default:
			return folded{}, false
		}
		return f, len(f.val) <= maxFolded
	}
	return folded{}, false
}

// alnum is s's letters and digits, lower case: a value found, its
// separators aside.
func alnum(s string) string {
	return strings.Map(func(c rune) rune {
		switch {
		case unicode.IsLetter(c) || unicode.IsDigit(c):
			return unicode.ToLower(c)
		}
		return -1
	}, s)
}

// arrayLiteral reads a one-dimensional array literal's elements
// ({4111,1111} or {"a","b"}); ok is false for anything else.
func arrayLiteral(s string) ([]string, bool) {
	s = strings.TrimSpace(s)
	if len(s) < 2 || s[0] != '{' || s[len(s)-1] != '}' || strings.ContainsAny(s[1:len(s)-1], "{}\\") {
		return nil, false
	}
	var parts []string
	for _, e := range strings.Split(s[1:len(s)-1], ",") {
		e = strings.TrimSpace(e)
		if len(e) >= 2 && e[0] == '"' && e[len(e)-1] == '"' {
			e = e[1 : len(e)-1]
		}
		parts = append(parts, e)
	}
	return parts, true
}

// initcap upper-cases the first letter of each run of letters and
// digits and lower-cases the rest, as PostgreSQL's initcap does.
func initcap(s string) string {
	var b strings.Builder
	inWord := false
	for _, r := range s {
		if unicode.IsLetter(r) || unicode.IsDigit(r) {
			if inWord {
				r = unicode.ToLower(r)
			} else {
				r = unicode.ToUpper(r)
			}
			inWord = true
		} else {
			inWord = false
		}
		b.WriteRune(r)
	}
	return b.String()
}

// overlay is overlay(s PLACING r FROM n [FOR m]): s's characters before
// n, r, then s's from n+m on (m defaults to r's length).
func overlay(args []folded) (string, bool) {
	s, r := []rune(args[0].val), []rune(args[1].val)
	n, err := strconv.Atoi(args[2].val)
	if err != nil || n < 1 {
		return "", false
	}
	m := len(r)
	if len(args) == 4 {
		if m, err = strconv.Atoi(args[3].val); err != nil || m < 0 {
			return "", false
		}
	}
	head := s[:min(n-1, len(s))]
	var tail []rune
	if n-1+m < len(s) {
		tail = s[n-1+m:]
	}
	return string(head) + string(r) + string(tail), true
}

// substr is substr(s, from [, count]) as PostgreSQL computes it: from
// counts characters from 1, and a from below 1 shortens what count
// takes; a negative count is an error there, and not folded here.
func substr(args []folded) (string, bool) {
	s := []rune(args[0].val)
	from, err := strconv.Atoi(args[1].val)
	if err != nil {
		return "", false
	}
	end := len(s) + 1
	if len(args) == 3 {
		n, err := strconv.Atoi(args[2].val)
		if err != nil || n < 0 {
			return "", false
		}
		end = from + n
	}
	lo, hi := max(from, 1)-1, min(max(end, 1), len(s)+1)-1
	if lo >= hi {
		return "", true
	}
	return string(s[lo:hi]), true
}

// leftRight is left(s, n) or right(s, n): the first (last) n characters,
// or with n negative all but the last (first) -n.
func leftRight(s string, n int, left bool) string {
	r := []rune(s)
	if n < 0 {
		n = max(len(r)+n, 0)
	}
	n = min(n, len(r))
	if left {
		return string(r[:n])
	}
	return string(r[len(r)-n:])
}

func orZero(s string) string {
	if s == "" {
		return "0" // unary minus
	}
	return s
}

func join(l, r folded) folded {
	return folded{val: l.val + r.val, locs: append(slices.Clone(l.locs), r.locs...), composite: true}
}

// pgFormat applies format()'s %s, %I and %L (with n$ positions and
// widths) and %%; what cannot be read is kept as written.
func pgFormat(spec string, args []folded) string {
	var b strings.Builder
	next := 0
	for i := 0; i < len(spec); i++ {
		if spec[i] != '%' || i+1 == len(spec) {
			b.WriteByte(spec[i])
			continue
		}
		j := i + 1
		if spec[j] == '%' {
			b.WriteByte('%')
			i = j
			continue
		}
		k := j
		for k < len(spec) && (isDigit(spec[k]) || spec[k] == '$' || spec[k] == '-' || spec[k] == '*') {
			k++
		}
		if k == len(spec) || !strings.ContainsRune("sIL", rune(spec[k])) {
			b.WriteByte(spec[i])
			continue
		}
		arg := next
		if d := strings.IndexByte(spec[j:k], '$'); d >= 0 {
			if p, err := strconv.Atoi(spec[j : j+d]); err == nil && p > 0 {
				arg = p - 1
			}
		}
		next = arg + 1
		if b.Len() > maxFolded {
			break
		}
		if arg < len(args) {
			b.WriteString(args[arg].val)
		}
		i = k
	}
	return b.String()
}

// regexpReplace is PostgreSQL's regexp_replace(s, pattern, repl, flags)
// for what Go's regexp reads alike: flags g (every match) and i
// (letter case ignored) only, and a replacement without a backslash.
func regexpReplace(s, pattern, repl, flags string) (string, bool) {
	if strings.Trim(flags, "gi") != "" || strings.ContainsRune(repl, '\\') || len(s) > maxFolded {
		return "", false
	}
	if strings.ContainsRune(flags, 'i') {
		pattern = "(?i)" + pattern
	}
	re, err := regexp.Compile(pattern)
	if err != nil {
		return "", false
	}
	if strings.ContainsRune(flags, 'g') {
		out := re.ReplaceAllLiteralString(s, repl)
		return out, len(out) <= maxFolded
	}
	loc := re.FindStringIndex(s)
	if loc == nil {
		return s, true
	}
	return s[:loc[0]] + repl + s[loc[1]:], true
}

func translate(s, from, to string) string {
	f, t := []rune(from), []rune(to)
	var b strings.Builder
	for _, r := range s {
		if i := slices.Index(f, r); i >= 0 {
			if i < len(t) {
				b.WriteRune(t[i])
			}
			continue
		}
		b.WriteRune(r)
	}
	return b.String()
}

func pad(s string, n int, fill string, left bool) string {
	r := []rune(s)
	if len(r) >= n || fill == "" {
		return string(r[:min(len(r), n)])
	}
	var p []rune
	for f := []rune(fill); len(p) < n-len(r); {
		p = append(p, f[len(p)%len(f)])
	}
	if left {
		return string(p) + s
	}
	return s + string(p)
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
// not read as typed: escapes in E'…' or U&'…' strings (UESCAPE too), a
// string continued on the next line, digits grouped by underscores, or a
// numeric constant with an exponent.
func encoded(sql string) bool {
	if strings.Contains(sql, "\\") || continuedString(sql) || containsFold(sql, "uescape") {
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

// containsFold reports whether s holds w, ASCII letter case ignored; w
// is lower case.
func containsFold(s, w string) bool {
	for i := 0; i+len(w) <= len(s); i++ {
		if s[i]|0x20 == w[0] && hasPrefixFold(s[i:], w) {
			return true
		}
	}
	return false
}

// continuedString reports whether sql may continue a string constant on
// the next line: a quote, white space with a line break, a quote.
func continuedString(sql string) bool {
	for i := strings.IndexByte(sql, '\''); i >= 0 && i+1 < len(sql); {
		j, nl := i+1, false
		for j < len(sql) && strings.IndexByte(" \t\n\r\f\v", sql[j]) >= 0 {
			nl = nl || sql[j] == '\n' || sql[j] == '\r'
			j++
		}
		if nl && j < len(sql) && sql[j] == '\'' {
			return true
		}
		n := strings.IndexByte(sql[i+1:], '\'')
		if n < 0 {
			return false
		}
		i += 1 + n
	}
	return false
}

// nonDecimal reports whether sql may hold a hexadecimal, octal or binary
// integer (0x…, 0o…, 0b…), whose digits the detectors' quick look
// (detect.MayHold) does not read as a number.
func nonDecimal(sql string) bool {
	for i := 0; i+2 < len(sql); i++ {
		if sql[i] != '0' || i > 0 && (isDigit(sql[i-1]) || sql[i-1] == '_' || sql[i-1] == '.' || isLetter(sql[i-1])) {
			continue
		}
		switch sql[i+1] {
		case 'x', 'X', 'o', 'O', 'b', 'B':
			return true
		}
	}
	return false
}

func isLetter(c byte) bool { return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || c >= 0x80 }

// numberDigits returns the integer a numeric constant writes, when it has
// one worth judging: underscores dropped, an exponent applied
// (4.111111111111111e15 → 4111111111111111), a hexadecimal, octal or
// binary integer (0x…, 0o…, 0b…, PostgreSQL 16) read as the number it
// denotes; otherwise tok itself.
func numberDigits(tok string) string {
	t := strings.ReplaceAll(tok, "_", "")
	if len(t) > 2 && t[0] == '0' {
		base := map[byte]int{'x': 16, 'X': 16, 'o': 8, 'O': 8, 'b': 2, 'B': 2}[t[1]]
		if base == 0 {
			return t
		}
		if i, ok := new(big.Int).SetString(t[2:], base); ok {
			return i.String()
		}
		return t
	}
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

// findIn judges v: the detector of a value it is, or else of the first
// it holds ({"e":"jane@example.com"}), with the values added to found;
// empty when it holds none.
// coveredBy reports whether every value of read is among those of
// written.
func coveredBy(read, written []gateway.Finding) bool {
	for _, r := range read {
		if !slices.ContainsFunc(written, func(w gateway.Finding) bool { return w.Value == r.Value }) {
			return false
		}
	}
	return true
}

func findIn(v string, found *[]gateway.Finding) string {
	if d := detect.Find([]byte(v)); d != "" {
		*found = append(*found, gateway.Finding{Detector: d, Value: v})
		return d
	}
	n := len(*found)
	if gateway.ScrubFound(v, found); len(*found) > n {
		return (*found)[n].Detector
	}
	return ""
}

// literalReadings returns the values a string literal's content (inner,
// between pre and its closing quote) may stand for, when PostgreSQL reads
// it otherwise than as written: the value itself, with escapes of E'…'
// or U&'…' (esc, the UESCAPE character, else a backslash) decoded, doubled
// quotes read as one, and strings continued on the next line ('jane@'
// NEWLINE 'example.com', which the scanner delimits as one token)
// joined; then, for a value holding a backslash, what it is as bytea
// ('\x6a61…' hex, '\152\141…' escape) and as JSON ("\u0040"). None
// for a literal written as it reads.
func literalReadings(pre, inner string, esc byte) []string {
	v, continued := joinContinued(inner)
	p := strings.ToUpper(strings.TrimSuffix(pre, "'"))
	if !continued && !strings.ContainsRune(inner, rune(esc)) && !strings.Contains(inner, "''") {
		return nil
	}
	switch p {
	case "E":
		v = decodeE(strings.ReplaceAll(v, "''", "'"))
	case "U&":
		v = decodeU(strings.ReplaceAll(v, "''", "'"), esc)
	case "":
		v = strings.ReplaceAll(v, "''", "'")
	default:
		return nil // N'…' and the like: as written
	}
	out := []string{v}
	if strings.Contains(v, "\\") {
		if b, ok := byteaHex(v); ok {
			out = append(out, string(b))
		}
		out = append(out, decodeE(v))
	}
	return out
}

// joinContinued joins the parts of a string constant continued on the
// next line: a quote, white space holding a line break, and a quote are
// dropped, as PostgreSQL reads them. A doubled quote stays as it is.
func joinContinued(inner string) (string, bool) {
	if !strings.Contains(inner, "'") {
		return inner, false
	}
	var b strings.Builder
	continued := false
	for i := 0; i < len(inner); i++ {
		if inner[i] != '\'' {
			b.WriteByte(inner[i])
			continue
		}
		if i+1 < len(inner) && inner[i+1] == '\'' {
			b.WriteString("''")
			i++
			continue
		}
		j, nl := i+1, false
		for j < len(inner) && strings.IndexByte(" \t\n\r\f\v", inner[j]) >= 0 {
			nl = nl || inner[j] == '\n' || inner[j] == '\r'
			j++
		}
		if nl && j < len(inner) && inner[j] == '\'' {
			continued = true
			i = j
			continue
		}
		b.WriteByte(inner[i])
	}
	return b.String(), continued
}

// byteaHex decodes bytea's hex format: \x and pairs of hex digits, white
// space between pairs allowed.
func byteaHex(v string) ([]byte, bool) {
	if len(v) < 4 || v[0] != '\\' || v[1]|0x20 != 'x' {
		return nil, false
	}
	h := strings.Map(func(r rune) rune {
		if r == ' ' || r == '\t' || r == '\n' || r == '\r' {
			return -1
		}
		return r
	}, v[2:])
	b, err := hex.DecodeString(h)
	return b, err == nil
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

// decodeU reads a U&'…' string's escapes under the escape character esc
// (a backslash, or the one UESCAPE names).
func decodeU(s string, esc byte) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] != esc || i+1 == len(s) {
			b.WriteByte(s[i])
			continue
		}
		switch {
		case s[i+1] == esc:
			b.WriteByte(esc)
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
