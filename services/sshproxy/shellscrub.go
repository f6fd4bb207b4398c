package sshproxy

import (
	"bytes"
	"encoding/base64"
	"slices"
	"strconv"
	"strings"
	"unicode/utf16"
	"unicode/utf8"

	"mvdan.cc/sh/v3/expand"
	"mvdan.cc/sh/v3/syntax"

	"github.com/auditledger/auditledger/events/detect"
	"github.com/auditledger/auditledger/services/gateway"
)

// Unjudged is the detector named in place of a shell word whose value
// cannot be known from the text (a variable, a command's output) and
// that stands next to digits or an @: what the word expands to may
// complete a value the rest of the word holds, so it is not recorded.
const Unjudged = "unjudged"

// maxBraceWords bounds the words one brace expansion is judged as; a
// word expanding to more is judged unresolved.
const maxBraceWords = 256

// maxScriptDepth bounds how deep a script inside a word (sh -c '…') is
// judged in turn.
const maxScriptDepth = 4

// flagged is a word of the command line to replace: its source span.
type flagged struct {
	lo, hi   int
	detector string
	value    string
	more     []gateway.Finding // other values found in the same word
}

// spansFound is the first of spans as a detector and a value, and the
// others (and the values found over the same characters) as more: a word
// is replaced whole, and every value it held is listed.
func spansFound(spans []detect.Span) (detector, value string, more []gateway.Finding) {
	for i, sp := range spans {
		if i > 0 {
			more = append(more, gateway.Finding{Detector: sp.Detector, Value: sp.Value})
		}
		for _, a := range sp.Also {
			more = append(more, gateway.Finding{Detector: a.Detector, Value: a.Value})
		}
	}
	return spans[0].Detector, spans[0].Value, more
}

// addFindings appends to found each of fs it does not hold yet.
func addFindings(found []gateway.Finding, fs ...gateway.Finding) []gateway.Finding {
	for _, f := range fs {
		if !slices.Contains(found, f) {
			found = append(found, f)
		}
	}
	return found
}

// scrubCommand returns a command line as it is recorded: each shell word
// whose value as bash resolves it — quotes removed, backslashes applied,
// $'…' decoded, braces expanded, and read again with printf's and echo
// -e's escapes decoded — holds what a detector finds, or whose value
// joined with its neighbours' (the arguments of one command, joined as
// echo and printf %s join them) does, is replaced whole, over its source
// text, by the detector's placeholder; a word that cannot be resolved
// statically next to digits or an @ is replaced as Unjudged. A line that
// does not parse is judged with its quotes and backslashes removed. What
// was replaced is returned for the record's "redacted" member (path
// "/statement").
func scrubCommand(line string) (string, []gateway.Finding) {
	fl := judgeScript(line, 0)
	if fl == nil {
		return line, nil
	}
	slices.SortFunc(fl, func(a, b flagged) int { return a.lo - b.lo })
	var out strings.Builder
	var found []gateway.Finding
	last := 0
	var prev gateway.Finding
	for _, f := range fl {
		self := gateway.Finding{Detector: f.detector, Value: f.value}
		if f.lo < last || len(found) > 0 && strings.TrimSpace(line[last:f.lo]) == "" && prev == self {
			// inside or overlapping one replaced already, or the next
			// word of the same value: one placeholder
			last = max(last, f.hi)
			found = addFindings(found, f.more...)
			continue
		}
		out.WriteString(line[last:f.lo])
		out.WriteString(detect.Placeholder(f.detector))
		found = append(found, self)
		found = addFindings(found, f.more...)
		prev, last = self, f.hi
	}
	out.WriteString(line[last:])
	return out.String(), found
}

// scrubPath returns a path (an SFTP request's) as it is recorded: judged
// as written and with quotes and backslashes removed, the form a shell
// reads when the name is typed (jane\@example.com).
func scrubPath(p string) (string, []gateway.Finding) {
	fl := judgeStripped(p)
	if fl == nil {
		return p, nil
	}
	var out strings.Builder
	var found []gateway.Finding
	last := 0
	for _, f := range fl {
		out.WriteString(p[last:f.lo])
		out.WriteString(detect.Placeholder(f.detector))
		found = append(found, gateway.Finding{Detector: f.detector, Value: f.value})
		last = f.hi
	}
	out.WriteString(p[last:])
	return out.String(), found
}

// judgeStripped judges text read with every quote and backslash
// removed, as offsets into text.
func judgeStripped(text string) []flagged {
	if !strings.ContainsAny(text, `'"\`) {
		return nil
	}
	var b []byte
	var at []int
	for i := 0; i < len(text); i++ {
		if c := text[i]; c != '\'' && c != '"' && c != '\\' {
			b = append(b, c)
			at = append(at, i)
		}
	}
	var out []flagged
	for _, sp := range detect.Spans(string(b)) {
		_, _, more := spansFound([]detect.Span{sp})
		out = append(out, flagged{lo: at[sp.Lo], hi: at[sp.Hi-1] + 1, detector: sp.Detector, value: sp.Value, more: more})
	}
	return out
}

// judgeScript returns the words of script to replace.
func judgeScript(script string, depth int) []flagged {
	f, err := syntax.NewParser(syntax.Variant(syntax.LangBash)).Parse(strings.NewReader(script), "")
	if err != nil {
		return judgeStripped(script)
	}
	var out []flagged
	env := assignments(f)
	flag := func(w *syntax.Word, detector, value string, more []gateway.Finding) {
		out = append(out, flagged{lo: int(w.Pos().Offset()), hi: int(w.End().Offset()), detector: detector, value: value, more: more})
		// the assignments whose values the word's expansion used: each
		// holds a part of the value
		for _, src := range env.used[w] {
			out = append(out, flagged{lo: int(src.Pos().Offset()), hi: int(src.End().Offset()), detector: detector, value: value, more: more})
		}
	}
	syntax.Walk(f, func(n syntax.Node) bool {
		switch n := n.(type) {
		case *syntax.Word:
			lo, hi := int(n.Pos().Offset()), int(n.End().Offset())
			vals, ok := env.wordValues(n)
			if !ok {
				if unjudgedNext(n) {
					flag(n, Unjudged, script[lo:hi], nil)
				}
				return true
			}
			for _, v := range vals {
				if d, val, more := judgeValue(v, depth); d != "" {
					flag(n, d, val, more)
					break
				}
			}
		case *syntax.CallExpr:
			judgeJoins(n, env, flag)
		}
		return true
	})
	return out
}

// judgeValue judges one resolved value: as it is, with printf's escapes
// decoded, and, when it may be a script (sh -c '…'), as one.
func judgeValue(v string, depth int) (detector, value string, more []gateway.Finding) {
	if sp := detect.Spans(v); len(sp) > 0 {
		return spansFound(sp)
	}
	if strings.Contains(v, `\`) {
		if sp := detect.Spans(printfUnescape(v)); len(sp) > 0 {
			return spansFound(sp)
		}
	}
	if t, ok := base64UTF16(v); ok {
		if sp := detect.Spans(t); len(sp) > 0 {
			return spansFound(sp)
		}
	}
	if depth < maxScriptDepth && strings.ContainsAny(v, `'"\{$`) {
		if fl := judgeScript(v, depth+1); len(fl) > 0 {
			for _, f := range fl[1:] {
				more = addFindings(more, gateway.Finding{Detector: f.detector, Value: f.value})
			}
			for _, f := range fl {
				more = addFindings(more, f.more...)
			}
			return fl[0].detector, fl[0].value, more
		}
	}
	return "", "", nil
}

// judgeJoins judges the arguments of a command joined, without and with
// a space between them (printf %s, echo): a value split over arguments
// is replaced in each of them. A run is broken by a word that cannot be
// resolved.
func judgeJoins(ce *syntax.CallExpr, env *shellEnv, flag func(*syntax.Word, string, string, []gateway.Finding)) {
	if len(ce.Args) < 3 {
		return // the program's name is not joined with its arguments
	}
	var run []*syntax.Word
	var vals []string
	var self []bool // the word holds a value by itself
	judge := func() {
		if len(run) >= 2 {
			for _, sep := range []string{"", " "} {
				var b strings.Builder
				starts := make([]int, len(run)+1)
				for i, v := range vals {
					if i > 0 {
						b.WriteString(sep)
					}
					starts[i] = b.Len()
					b.WriteString(v)
				}
				starts[len(run)] = b.Len() + 1
				joined := b.String()
				spans := detect.Spans(joined)
				if strings.Contains(joined, `\`) {
					// escapes decoded: offsets no longer line up, so
					// a value found flags every word of the run
					if d := detect.Spans(printfUnescape(joined)); len(d) > 0 {
						dd, dv, more := spansFound(d)
						for _, w := range run {
							flag(w, dd, dv, more)
						}
					}
				}
				for _, sp := range spans {
					var in []int // the words the value spans
					whole := false
					for i := range run {
						if starts[i] < sp.Hi && sp.Lo < starts[i]+len(vals[i]) {
							in = append(in, i)
							whole = whole || self[i]
						}
					}
					if whole {
						continue // a word holds a value by itself, judged alone (-c jane@… is not one value)
					}
					for _, i := range in {
						_, _, more := spansFound([]detect.Span{sp})
						flag(run[i], sp.Detector, sp.Value, more)
					}
				}
			}
		}
		run, vals, self = run[:0], vals[:0], self[:0]
	}
	for _, w := range ce.Args[1:] {
		vs, ok := env.wordValues(w)
		if !ok || len(vs) != 1 {
			judge()
			continue
		}
		run = append(run, w)
		vals = append(vals, vs[0])
		self = append(self, len(detect.Spans(vs[0])) > 0 || strings.Contains(vs[0], `\`) && len(detect.Spans(printfUnescape(vs[0]))) > 0)
	}
	judge()
}

// shellEnv is what a script's own assignments make known: the variables
// it assigns a value the text decides (a=41124978; b=$a…), for the words
// that expand them, with arithmetic ($((X*100000000+Y))) on them and on
// numbers. A variable the script does not assign so (an environment
// variable, one read or looped over, an array) stays unknown, and a word
// expanding it unresolved.
type shellEnv struct {
	vars    map[string]string
	srcs    map[string][]*syntax.Word // the assignment values each variable's value came from
	unknown map[string]bool
	// used: for each word resolved by expansion, the assignment values
	// it used, flagged with it
	used map[*syntax.Word][]*syntax.Word
	// during one expansion: a variable not known, and those used
	miss bool
	uses []*syntax.Word
}

// assignments reads the assignments of f in order.
func assignments(f *syntax.File) *shellEnv {
	e := &shellEnv{vars: map[string]string{}, srcs: map[string][]*syntax.Word{}, unknown: map[string]bool{}, used: map[*syntax.Word][]*syntax.Word{}}
	syntax.Walk(f, func(n syntax.Node) bool {
		switch n := n.(type) {
		case *syntax.Assign:
			if n.Name == nil {
				return true
			}
			name := n.Name.Value
			if n.Array != nil || n.Index != nil || n.Value == nil {
				e.unknown[name] = true
				return true
			}
			vs, ok := e.wordValues(n.Value)
			if !ok || len(vs) != 1 || len(vs[0]) > maxAssigned {
				e.unknown[name] = true
				return true
			}
			srcs := append(slices.Clone(e.used[n.Value]), n.Value)
			if n.Append {
				vs[0] = e.vars[name] + vs[0]
				srcs = append(slices.Clone(e.srcs[name]), srcs...)
			}
			e.vars[name], e.srcs[name] = vs[0], srcs
		case *syntax.WordIter: // for name in …
			if n.Name != nil {
				e.unknown[n.Name.Value] = true
			}
		}
		return true
	})
	return e
}

// maxAssigned bounds the value of a variable kept for expansion.
const maxAssigned = 4096

// Get is expand.Environ's: a variable the script assigned a known value,
// or unset, which fails the expansion (Config.NoUnset).
func (e *shellEnv) Get(name string) expand.Variable {
	v, ok := e.vars[name]
	if !ok || e.unknown[name] {
		if name != "IFS" { // expand reads IFS itself; bash's default is what it wants
			e.miss = true
		}
		return expand.Variable{}
	}
	e.uses = append(e.uses, e.srcs[name]...)
	return expand.Variable{Set: true, Kind: expand.String, Str: v}
}

// Each is expand.Environ's.
func (e *shellEnv) Each(f func(name string, vr expand.Variable) bool) {
	for name, v := range e.vars {
		if !e.unknown[name] && !f(name, expand.Variable{Set: true, Kind: expand.String, Str: v}) {
			return
		}
	}
}

// wordValues returns the values a word stands for as bash resolves it
// (brace expansion gives several), or false when an expansion decides
// it that the script's own assignments do not (a variable it does not
// assign, a command substitution, a glob).
func (e *shellEnv) wordValues(w *syntax.Word) ([]string, bool) {
	if vs, ok := wordValues(w); ok {
		return vs, true
	}
	if e == nil || !e.expands(w) {
		return nil, false
	}
	e.miss, e.uses = false, nil
	v, err := expand.Literal(&expand.Config{Env: e, NoUnset: true}, w)
	if err != nil || e.miss || len(v) > maxAssigned {
		return nil, false
	}
	if len(e.uses) > 0 {
		e.used[w] = slices.Clone(e.uses)
	}
	return []string{v}, true
}

// expands reports whether w holds only parts expand.Literal resolves
// from the script's text — literals, quotes, parameter expansions of
// names and arithmetic (no command or process substitution, no extglob,
// no indirection) — and whether what it makes is bounded before it is
// made: at most maxAssigned bytes, each expansion counted at its
// variable's length, a replacement (${a//x/y}) at that times the
// replacement's length plus one, which must then be a literal (a
// replacement holding expansions, nested, would grow as a power).
func (e *shellEnv) expands(w *syntax.Word) bool {
	ok, size := true, 0
	syntax.Walk(w, func(n syntax.Node) bool {
		switch n := n.(type) {
		case *syntax.CmdSubst, *syntax.ProcSubst, *syntax.ExtGlob:
			ok = false
		case *syntax.Lit:
			size += len(n.Value)
		case *syntax.ParamExp:
			if n.Param == nil || n.Excl || n.Names != 0 || n.NestedParam != nil {
				ok = false
				break
			}
			v := len(e.vars[n.Param.Value])
			if n.Repl != nil {
				with := ""
				if n.Repl.With != nil {
					vs, lit := wordValues(n.Repl.With)
					if !lit || len(vs) != 1 {
						ok = false
						break
					}
					with = vs[0]
				}
				v *= len(with) + 1
			}
			size += v
		}
		if size > maxAssigned {
			ok = false
		}
		return ok
	})
	return ok
}

// wordValues returns the values a word stands for as bash resolves it
// (brace expansion gives several), or false when an expansion decides
// it (a variable, a command substitution, arithmetic, a glob).
func wordValues(w *syntax.Word) ([]string, bool) {
	c := &syntax.Word{Parts: slices.Clone(w.Parts)}
	if !syntax.SplitBraces(c) {
		v, ok := literalValue(c.Parts)
		if !ok {
			return nil, false
		}
		return []string{v}, true
	}
	var out []string
	for x, err := range expand.BracesSeq(nil, c) {
		if err != nil || len(out) == maxBraceWords {
			return nil, false
		}
		v, ok := literalValue(x.Parts)
		if !ok {
			return nil, false
		}
		out = append(out, v)
	}
	return out, true
}

// literalValue resolves word parts made of literals and quotes only.
func literalValue(parts []syntax.WordPart) (string, bool) {
	var b strings.Builder
	for _, p := range parts {
		switch p := p.(type) {
		case *syntax.Lit:
			b.WriteString(unescape(p.Value, false))
		case *syntax.SglQuoted:
			if p.Dollar {
				b.WriteString(ansiC(p.Value))
			} else {
				b.WriteString(p.Value)
			}
		case *syntax.DblQuoted:
			for _, q := range p.Parts {
				l, ok := q.(*syntax.Lit)
				if !ok {
					return "", false
				}
				b.WriteString(unescape(l.Value, true))
			}
		default:
			return "", false
		}
	}
	return b.String(), true
}

// unjudgedNext reports whether a word holds an expansion next to a
// digit or an @ (after separators a value is written with): what it
// expands to may complete a value.
func unjudgedNext(w *syntax.Word) bool {
	parts := w.Parts
	if len(parts) == 1 {
		if dq, ok := parts[0].(*syntax.DblQuoted); ok {
			parts = dq.Parts
		}
	}
	lit := func(p syntax.WordPart) (string, bool) {
		switch p := p.(type) {
		case *syntax.Lit:
			return p.Value, true
		case *syntax.SglQuoted:
			return p.Value, true
		case *syntax.DblQuoted:
			v, ok := literalValue([]syntax.WordPart{p})
			return v, ok
		}
		return "", false
	}
	near := func(s string, end bool) bool {
		t := strings.TrimLeft(s, ` -./_:,\'"`)
		if end {
			t = strings.TrimRight(s, ` -./_:,\'"`)
		}
		if t == "" {
			return false
		}
		c := t[0]
		if end {
			c = t[len(t)-1]
		}
		return c >= '0' && c <= '9' || c == '@'
	}
	for i, p := range parts {
		if _, ok := lit(p); ok {
			continue
		}
		if i > 0 {
			if s, ok := lit(parts[i-1]); ok && near(s, true) {
				return true
			}
		}
		if i+1 < len(parts) {
			if s, ok := lit(parts[i+1]); ok && near(s, false) {
				return true
			}
		}
	}
	return false
}

// base64UTF16 decodes a word of base64 whose bytes are UTF-16 text
// (PowerShell's -EncodedCommand): the detectors read base64 of UTF-8
// text themselves.
func base64UTF16(v string) (string, bool) {
	if len(v) < 16 || strings.Trim(v, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/=-_") != "" {
		return "", false
	}
	b, err := base64.StdEncoding.DecodeString(v)
	if err != nil {
		if b, err = base64.RawStdEncoding.DecodeString(strings.TrimRight(v, "=")); err != nil {
			if b, err = base64.RawURLEncoding.DecodeString(strings.TrimRight(v, "=")); err != nil {
				return "", false
			}
		}
	}
	if len(b) < 8 || len(b)%2 != 0 {
		return "", false
	}
	b = bytes.TrimPrefix(bytes.TrimPrefix(b, []byte{0xff, 0xfe}), []byte{0xfe, 0xff})
	zeroOdd, zeroEven := 0, 0
	for i := 0; i+1 < len(b); i += 2 {
		if b[i] == 0 {
			zeroEven++
		}
		if b[i+1] == 0 {
			zeroOdd++
		}
	}
	u := make([]uint16, 0, len(b)/2)
	for i := 0; i+1 < len(b); i += 2 {
		if zeroOdd >= zeroEven {
			u = append(u, uint16(b[i])|uint16(b[i+1])<<8)
		} else {
			u = append(u, uint16(b[i])<<8|uint16(b[i+1]))
		}
	}
	if max(zeroOdd, zeroEven) < len(u)/2 {
		return "", false // not mostly ASCII: not taken for UTF-16
	}
	return string(utf16.Decode(u)), true
}

// ansiC decodes the body of a $'…' string as bash does.
func ansiC(s string) string { return decodeEscapes(s, true) }

// printfUnescape decodes the escapes printf (and echo -e) decode: \NNN
// and \0NNN octal, \xHH, \uHHHH, \UHHHHHHHH and the one-letter ones.
func printfUnescape(s string) string { return decodeEscapes(s, false) }

func decodeEscapes(s string, ansi bool) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] != '\\' || i+1 >= len(s) {
			b.WriteByte(s[i])
			continue
		}
		c := s[i+1]
		i++
		switch c {
		case 'a':
			b.WriteByte(7)
		case 'b':
			b.WriteByte(8)
		case 'e', 'E':
			b.WriteByte(0x1b)
		case 'f':
			b.WriteByte('\f')
		case 'n':
			b.WriteByte('\n')
		case 'r':
			b.WriteByte('\r')
		case 't':
			b.WriteByte('\t')
		case 'v':
			b.WriteByte('\v')
		case '\\', '\'', '"', '?':
			b.WriteByte(c)
		case 'c':
			if ansi && i+1 < len(s) {
				i++
				b.WriteByte(s[i] & 0x1f)
			} else {
				b.WriteString(`\c`)
			}
		case 'x', 'u', 'U':
			n := map[byte]int{'x': 2, 'u': 4, 'U': 8}[c]
			j := i + 1
			for j < len(s) && j < i+1+n && isHex(s[j]) {
				j++
			}
			if j == i+1 {
				b.WriteByte('\\')
				b.WriteByte(c)
				continue
			}
			v, _ := strconv.ParseUint(s[i+1:j], 16, 32)
			if c == 'x' {
				b.WriteByte(byte(v))
			} else if utf8.ValidRune(rune(v)) {
				b.WriteRune(rune(v))
			}
			i = j - 1
		default:
			if c >= '0' && c <= '7' {
				j := i // the first octal digit
				if c == '0' && !ansi {
					j = i + 1 // printf's \0NNN
				}
				k := j
				for k < len(s) && k < j+3 && s[k] >= '0' && s[k] <= '7' {
					k++
				}
				var v uint64
				if k > j {
					v, _ = strconv.ParseUint(s[j:k], 8, 16)
				}
				b.WriteByte(byte(v))
				i = k - 1
				continue
			}
			b.WriteByte('\\')
			b.WriteByte(c)
		}
	}
	return b.String()
}

func isHex(c byte) bool {
	return c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F'
}
