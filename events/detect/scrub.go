package detect

import (
	"bytes"
	"compress/gzip"
	"io"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf16"
	"unicode/utf8"
	"unsafe"
)

// Builtin lists every built-in detector, in the order they are tried.
// Recorded text always passes all of them: nothing a detector finds is
// sealed in clear, whatever a policy says.
var Builtin = builtinNames[:]

// Placeholder is what a value found by detector is replaced with in
// recorded text. It contains no quote or backslash, so it can stand
// inside any SQL or JSON string literal, and no detector matches it.
func Placeholder(detector string) string { return "[REDACTED:" + detector + "]" }

// Find returns the first built-in detector that matches v as a whole, or
// "" when none does. v is read folded (see fold).
func Find(v []byte) string {
	return find(foldBytes(v))
}

// builtinFuncs are the functions of Builtin, in its order: find is
// called for every token of every text, and looking each detector up by
// name was a third of a statement's scrub.
var builtinFuncs = func() (fs [len(builtinNames)]func([]byte) bool) {
	for i, d := range builtinNames {
		fs[i] = detectors[d]
	}
	return fs
}()

// builtinNames is Builtin as an array, the order find tries them in.
var builtinNames = [...]string{"email", "credit_card", "iban", "phone", "us_ssn", "secret"}

// find is Find on a folded value.
func find(v []byte) string {
	for i, f := range builtinFuncs {
		if f(v) {
			return builtinNames[i]
		}
	}
	return ""
}

// emailIn finds e-mail addresses inside longer text, where separators
// the token pass does not know (&, /, :) join them to their neighbours.
var emailIn = regexp.MustCompile(emailPattern)

// emailInMore finds the forms emailPatternMore adds, where emailMoreCue
// says one may stand.
var emailInMore = regexp.MustCompile(emailPatternMore)

// emailMoreCue reports whether b holds a comment beside an @ (")@",
// "@("), or an @ before a digit or an l or L (jane@192.…, @localhost).
func emailMoreCue(b []byte) bool {
	for i := 0; i < len(b); i++ {
		if b[i] != '@' {
			continue
		}
		if i > 0 && b[i-1] == ')' || i+1 < len(b) && (b[i+1] == '(' || isDigit(b[i+1]) || b[i+1]|0x20 == 'l') {
			return true
		}
	}
	return false
}

// Scrub replaces every value a built-in detector finds in text, the whole
// of it or inside it, with Placeholder(detector). counts has, per
// detector, how many values were replaced; nil when none were. Text with
// nothing found is returned as it is.
//
// The detectors read text folded (see fold: full-width forms, Unicode
// spaces and dashes), and what they find is replaced over the characters
// as written. Inside text, values are looked for as ScrubText offers them
// (quoted values, tokens between separators, runs of digits), then card
// numbers inside longer runs of digits (cardsIn), then IBANs, credentials,
// phone numbers and e-mail addresses wherever they stand.
func Scrub(text string) (out string, counts map[string]int) { return ScrubEach(text, nil) }

// ScrubEach is Scrub, and calls found (when not nil) with each value it
// replaces, as written in text (decoded, when it was found in a decoded
// reading: jane%40example.com is jane@example.com), and the detector
// that found it, in the order they stand: so that a gateway records the value's keyed search
// digest (docs/FORMAT.md §1.5). found MUST NOT keep the value longer than
// it takes to digest it.
func ScrubEach(text string, found func(detector, value string)) (out string, counts map[string]int) {
	if !MayHold(text) {
		return text, nil
	}
	spans, all := scan(text, 0, chainsAll)
	if len(spans) == 0 {
		return text, nil
	}
	counts = map[string]int{}
	var sb strings.Builder
	last := 0
	for _, f := range spans {
		if found != nil {
			v := text[f.lo:f.hi]
			if f.value != "" {
				v = f.value // as a reader decodes it, so a search finds it
			}
			found(f.detector, v)
			for _, a := range f.also {
				found(a.Detector, a.Value)
			}
		}
		sb.WriteString(text[last:f.lo])
		sb.WriteString(Placeholder(f.detector))
		last = f.hi
	}
	sb.WriteString(text[last:])
	for _, d := range all {
		counts[d]++
	}
	return sb.String(), counts
}

// maxPercentRounds bounds how many times scan percent-decodes text.
const maxPercentRounds = 6

// scan returns the values the detectors find in text, as offsets into
// it, in order and apart, and the detector of each value found (all, in
// the order found, as scrubber.all). Text holding percent-encoding
// (%40, %2C) or string escapes (\u0040, \x40) is also read decoded, as
// whatever reads it next may decode it (jane%40example.com,
// 4111%201111%20…, jane\u0040example.com), up to maxPercentRounds times
// (jane%2540…): what either reading finds is replaced, over the
// characters as written.
func scan(text string, round int, mode chainMode) ([]match, []string) {
	v := newView(text)
	s := scrubber{b: v.b, chains: mode}
	s.run()
	spans := make([]match, 0, len(s.found))
	for _, f := range s.found {
		lo, hi := v.span(text, f.lo, f.hi)
		spans = append(spans, match{lo: lo, hi: hi, detector: f.detector, value: f.value})
	}
	all := s.all
	for i := range spans {
		if spans[i].value == "" {
			spans[i].value = text[spans[i].lo:spans[i].hi]
		}
	}
	if round >= maxPercentRounds {
		return spans, all
	}
	var d string
	var from, to []int
	switch {
	case hasPercent(text):
		d, from, to = percentDecode(text)
	case wideText(text):
		d, from, to = wideDecode(text)
	case controlText(text):
		d, from, to = controlStrip(text)
	default:
		return spans, all
	}
	sub, _ := scan(d, round+1, mode)
	for _, f := range sub {
		m := match{lo: from[f.lo], hi: to[f.hi-1], detector: f.detector, value: f.value, also: f.also}
		if m.value == "" {
			m.value = d[f.lo:f.hi]
		}
		merged := false
		for i := range spans {
			if spans[i].lo < m.hi && m.lo < spans[i].hi {
				merged = true // joined by mergeSpans
			}
		}
		if !merged {
			all = append(all, m.detector)
		}
		spans = append(spans, m)
	}
	return mergeSpans(spans), all
}

// mergeSpans sorts spans and joins those that overlap, each naming the
// detector and value of the longest of them (the first of those as long)
// and keeping the values of the others (also): the longest is the
// reading that explains the most characters — the e-mail address that
// escapes spell, not the card number their digits make as written.
func mergeSpans(spans []match) []match {
	slices.SortStableFunc(spans, func(a, b match) int { return a.lo - b.lo })
	out := spans[:0]
	var long []int // the length of the match each of out names
	for _, m := range spans {
		if n := len(out); n > 0 && m.lo < out[n-1].hi {
			o := &out[n-1]
			o.hi = max(o.hi, m.hi)
			other := Span{Detector: m.detector, Value: m.value}
			if m.hi-m.lo > long[n-1] {
				other = Span{Detector: o.detector, Value: o.value}
				o.detector, o.value, long[n-1] = m.detector, m.value, m.hi-m.lo
			}
			if other.Value != o.value && !slices.ContainsFunc(o.also, func(a Span) bool { return a.Value == other.Value }) {
				o.also = append(o.also, other)
			}
			o.also = append(o.also, m.also...)
			continue
		}
		out = append(out, m)
		long = append(long, m.hi-m.lo)
	}
	return out
}

// hasPercent reports whether text holds an escape percentDecode decodes.
func hasPercent(text string) bool {
	// Most text holds neither byte: two vectorised searches find that
	// sooner than a loop over every byte.
	if strings.IndexByte(text, '%') < 0 && strings.IndexByte(text, '\\') < 0 && strings.IndexByte(text, '&') < 0 &&
		strings.IndexByte(text, '=') < 0 && strings.IndexByte(text, '+') < 0 {
		return false
	}
	for i := 0; i < len(text); i++ {
		if c := text[i]; c == '%' || c == '\\' || c == '&' || c == '=' || c == '+' {
			if _, n := escapeAt(text[i:]); n > 0 {
				return true
			}
		}
	}
	return false
}

// escapeAt decodes the escape text starts with, and returns its length:
// %XX (percent-encoding, RFC 3986), \uXXXX (JSON, JavaScript, Java and
// Python strings; not a surrogate half) or \xHH (C, Python, PostgreSQL
// escape strings); n is 0 when text does not start with one.
func escapeAt(text string) ([]byte, int) {
	hex := func(s string) (int, bool) {
		v := 0
		for i := 0; i < len(s); i++ {
			d := hexValue(s[i])
			if d < 0 {
				return 0, false
			}
			v = v<<4 | d
		}
		return v, true
	}
	char := func(v int) bool { return v >= 0x20 && v != 0x7f && v <= unicode.MaxRune && (v < 0xd800 || v > 0xdfff) }
	switch {
	case len(text) >= 6 && text[0] == '%' && (text[1] == 'u' || text[1] == 'U'):
		// %uXXXX (IIS, JavaScript's escape()).
		if v, ok := hex(text[2:6]); ok && char(v) {
			return utf8.AppendRune(nil, rune(v)), 6
		}
	case len(text) >= 3 && text[0] == '%':
		if v, ok := hex(text[1:3]); ok {
			return []byte{byte(v)}, 3
		}
	case len(text) >= 6 && text[0] == '\\' && text[1] == 'u' && text[2] != '{':
		if v, ok := hex(text[2:6]); ok && (v < 0xd800 || v > 0xdfff) {
			return utf8.AppendRune(nil, rune(v)), 6
		}
	case len(text) >= 5 && text[0] == '\\' && text[1] == 'u' && text[2] == '{':
		// \u{40} (JavaScript, Rust, Swift).
		if end := strings.IndexByte(text[3:min(len(text), 10)], '}'); end > 0 {
			if v, ok := hex(text[3 : 3+end]); ok && char(v) {
				return utf8.AppendRune(nil, rune(v)), end + 4
			}
		}
	case len(text) >= 6 && text[0] == '\\' && text[1] == 'U':
		// \U00000040 (Python, C), or \U0040.
		if len(text) >= 10 {
			if v, ok := hex(text[2:10]); ok && char(v) {
				return utf8.AppendRune(nil, rune(v)), 10
			}
		}
		if v, ok := hex(text[2:6]); ok && char(v) {
			return utf8.AppendRune(nil, rune(v)), 6
		}
	case len(text) >= 2 && text[0] == '\\' && (text[1] == 'n' || text[1] == 't' || text[1] == 'r'):
		// \n, \t, \r written as text: white space, a separator.
		return []byte{' '}, 2
	case len(text) >= 4 && text[0] == '\\' && text[1] == 'x':
		if v, ok := hex(text[2:4]); ok {
			return []byte{byte(v)}, 4
		}
	case len(text) >= 4 && text[0] == '\\' && text[1] >= '0' && text[1] <= '3' && octal(text[2]) && octal(text[3]):
		// \100: an octal escape (C, shells, PostgreSQL's bytea).
		if v := int(text[1]-'0')<<6 | int(text[2]-'0')<<3 | int(text[3]-'0'); v >= 0x20 && v != 0x7f {
			return []byte{byte(v)}, 4
		}
	case len(text) >= 2 && text[0] == '\\' && hexValue(text[1]) >= 0:
		// \40 : a CSS escape, one to six hex digits and an optional
		// space after them.
		j := 1
		for j < len(text) && j < 7 && hexValue(text[j]) >= 0 {
			j++
		}
		if v, ok := hex(text[1:j]); ok && char(v) {
			if j < len(text) && text[j] == ' ' {
				j++
			}
			return utf8.AppendRune(nil, rune(v)), j
		}
	case len(text) >= 2 && text[0] == '\\' && text[1] > ' ' && text[1] < 0x7f && !isAlnum(text[1]):
		// A quoted-pair (RFC 9110 quoted-string, a shell word): \@ is @.
		return []byte{text[1]}, 2
	case len(text) >= 4 && text[0] == '&':
		return htmlRef(text)
	case len(text) >= 3 && text[0] == '=':
		return qpAt(text, false)
	case len(text) >= 4 && text[0] == '+':
		return utf7At(text)
	}
	return nil, 0
}

func octal(c byte) bool { return c >= '0' && c <= '7' }

// qpAt decodes the quoted-printable escape text starts with (=40): one
// of a printable ASCII character that is not a letter or a digit, or of
// any printable one in a run of such escapes (=34=31=31…; after one,
// when after is true).
func qpAt(text string, after bool) ([]byte, int) {
	if len(text) < 3 || text[0] != '=' {
		return nil, 0
	}
	hi, lo := hexValue(text[1]), hexValue(text[2])
	if hi < 0 || lo < 0 {
		return nil, 0
	}
	c := byte(hi<<4 | lo)
	if c < 0x20 || c >= 0x7f {
		return nil, 0
	}
	run := after || len(text) >= 6 && text[3] == '=' && hexValue(text[4]) >= 0 && hexValue(text[5]) >= 0
	if isAlnum(c) && !run {
		return nil, 0
	}
	return []byte{c}, 3
}

// utf7At decodes the UTF-7 shifted sequence text starts with (RFC 2152:
// +AEA- is @): +, modified base64 of UTF-16BE, -. Each character decoded
// is one that is not a control.
func utf7At(text string) ([]byte, int) {
	end := 1
	for end < len(text) && end <= 25 && (isAlnum(text[end]) || text[end] == '+' || text[end] == '/') {
		end++
	}
	if end < 4 || end >= len(text) || text[end] != '-' {
		return nil, 0
	}
	var acc uint32
	bits := 0
	var units []uint16
	for _, c := range []byte(text[1:end]) {
		var v uint32
		switch {
		case c >= 'A' && c <= 'Z':
			v = uint32(c - 'A')
		case c >= 'a' && c <= 'z':
			v = uint32(c-'a') + 26
		case isDigit(c):
			v = uint32(c-'0') + 52
		case c == '+':
			v = 62
		default:
			v = 63
		}
		acc, bits = acc<<6|v, bits+6
		if bits >= 16 {
			bits -= 16
			units = append(units, uint16(acc>>bits))
		}
	}
	if len(units) == 0 || bits >= 6 || acc&(1<<bits-1) != 0 {
		return nil, 0
	}
	var out []byte
	for _, r := range utf16.Decode(units) {
		if r < 0x20 || r == 0x7f || r == utf8.RuneError {
			return nil, 0
		}
		out = utf8.AppendRune(out, r)
	}
	return out, end + 1
}

// htmlRef decodes the HTML character reference text starts with:
// decimal (&#64;) or hexadecimal (&#x40;), the semicolon optional as
// browsers read it, of a character that is not a control; or a named
// one of an ASCII character (htmlNamed: &commat;, &period;, &amp;, …).
func htmlRef(text string) ([]byte, int) {
	if text[1] == '#' {
		i, base := 2, 10
		if text[2] == 'x' || text[2] == 'X' {
			i, base = 3, 16
		}
		v, j := 0, i
		for j < len(text) && j-i < 7 {
			d := hexValue(text[j])
			if d < 0 || base == 10 && d > 9 {
				break
			}
			v = v*base + d
			j++
		}
		if j == i || v < 0x20 || v == 0x7f || v > unicode.MaxRune || v >= 0xd800 && v <= 0xdfff {
			return nil, 0
		}
		if j < len(text) && text[j] == ';' {
			j++
		}
		return utf8.AppendRune(nil, rune(v)), j
	}
	end := strings.IndexByte(text[1:min(len(text), 16)], ';')
	if end < 0 {
		return nil, 0
	}
	if c, ok := htmlNamed[text[1:1+end]]; ok {
		return []byte{c}, end + 2
	}
	return nil, 0
}

// htmlNamed are the named character references (HTML) of the ASCII
// characters that are not letters or digits.
var htmlNamed = map[string]byte{
	"excl": '!', "quot": '"', "QUOT": '"', "num": '#', "dollar": '$', "percnt": '%', "amp": '&', "AMP": '&', "apos": '\'',
	"lpar": '(', "rpar": ')', "ast": '*', "midast": '*', "plus": '+', "comma": ',', "hyphen": '-', "dash": '-', "period": '.',
	"sol": '/', "colon": ':', "semi": ';', "lt": '<', "LT": '<', "equals": '=', "gt": '>', "GT": '>', "quest": '?',
	"commat": '@', "lsqb": '[', "lbrack": '[', "bsol": '\\', "rsqb": ']', "rbrack": ']', "Hat": '^', "lowbar": '_',
	"UnderBar": '_', "grave": '`', "DiacriticalGrave": '`', "lcub": '{', "lbrace": '{', "verbar": '|', "vert": '|',
	"VerticalLine": '|', "rcub": '}', "rbrace": '}', "nbsp": ' ', "Tab": '\t', "NewLine": '\n',
}

// percentDecode decodes every escape escapeAt reads in text; from[i] and
// to[i] are where the text that byte i of the result comes from starts
// and ends.
func percentDecode(text string) (string, []int, []int) {
	b := make([]byte, 0, len(text))
	from := make([]int, 0, len(text))
	to := make([]int, 0, len(text))
	qp := false // the escape before was quoted-printable
	for i := 0; i < len(text); {
		if c := text[i]; c == '%' || c == '\\' || c == '&' || c == '=' || c == '+' {
			d, n := escapeAt(text[i:])
			if n == 0 && c == '=' && qp {
				d, n = qpAt(text[i:], true)
			}
			if n > 0 {
				for _, c := range d {
					b = append(b, c)
					from, to = append(from, i), append(to, i+n)
				}
				qp = c == '='
				i += n
				continue
			}
		}
		qp = false
		b = append(b, text[i])
		from, to = append(from, i), append(to, i+1)
		i++
	}
	return string(b), from, to
}

// scrubber finds values in a folded text b. A value found is blanked in
// b as [, NULs and ], which no detector matches and which separates what
// is on either side as a placeholder would, so that later passes read
// around it and the offsets stay those of the text.
type scrubber struct {
	chains chainMode // how digit chains are read (chainsAll unless InEvent joins an array's elements)
	b      []byte
	depth  int      // how many times b was decoded from hex or base64
	found  []match  // by offset, apart
	all    []string // the detector of every value found, in order found
	// accept, when not nil, decides each value found, given where it
	// stands in b (covering any value found before that it overlaps): it
	// returns the value's replacement and true to take it, or false to
	// leave it, so that later passes may still find values inside it.
	accept func(lo, hi int) ([]byte, bool)
}

type match struct {
	lo, hi   int
	detector string
	repl     []byte // accept's replacement; nil without accept
	// value is the value as a reader decodes it when it was found in a
	// decoded reading of the text (percent-encoding, escapes, hex,
	// base64), for its search digest; empty when found as written.
	value string
	// also are the values of matches merged into this one (they
	// overlapped it: a raw reading's false card number over escapes that
	// spell an e-mail address), each as a reader decodes it, so that
	// every value replaced is reported, not only the first.
	also []Span
}

// claim records the value at [lo, hi) found by detector; a value that
// covers values found before replaces them (a private key's body). It
// reports whether the value was taken (see accept).
func (s *scrubber) claim(lo, hi int, detector string) bool {
	for _, f := range s.found {
		if f.lo < hi && lo < f.hi {
			lo, hi = min(lo, f.lo), max(hi, f.hi)
		}
	}
	var repl []byte
	if s.accept != nil {
		var ok bool
		if repl, ok = s.accept(lo, hi); !ok {
			return false
		}
	}
	s.all = append(s.all, detector)
	kept := s.found[:0]
	at := -1
	for _, f := range s.found {
		if f.hi <= lo || f.lo >= hi {
			if f.lo < lo {
				at = len(kept)
			}
			kept = append(kept, f)
		}
	}
	s.found = append(kept[:at+1], append([]match{{lo: lo, hi: hi, detector: detector, repl: repl}}, kept[at+1:]...)...)
	s.b[lo] = '['
	for i := lo + 1; i < hi-1; i++ {
		s.b[i] = 0
	}
	s.b[hi-1] = ']'
	return true
}

// free reports whether nothing in [lo, hi) was found yet.
func (s *scrubber) free(lo, hi int) bool {
	for _, f := range s.found {
		if f.lo < hi && lo < f.hi {
			return false
		}
	}
	return true
}

func (s *scrubber) offer(lo, hi int) {
	if lo >= hi || !s.free(lo, hi) {
		return
	}
	if d := find(s.b[lo:hi]); d != "" {
		s.claim(lo, hi, d)
	}
}

func (s *scrubber) run() {
	b := s.b
	if d := find(b); d != "" && s.claim(0, len(b), d) {
		return
	}
	// E-mail addresses first: their local part may hold quotes and other
	// characters the passes below split tokens at (o'brien@…).
	if bytes.IndexByte(b, '@') >= 0 {
		re := emailIn
		if emailMoreCue(b) {
			re = emailInMore
		}
		for _, m := range re.FindAllIndex(b, -1) {
			lo := emailLocal(b, m[0], m[1])
			if s.free(lo, m[1]) && isEmail(b[lo:m[1]]) {
				s.claim(lo, m[1], "email")
			}
		}
	}
	// Quoted values next: they may contain separators (a card number
	// with spaces).
	for i := 0; i < len(b); i++ {
		if q := b[i]; q == '"' || q == '\'' {
			if j := bytes.IndexByte(b[i+1:], q); j >= 0 {
				s.offer(i+1, i+1+j)
				i += j + 1
			}
		}
	}
	start := -1
	for i := 0; i <= len(b); i++ {
		if i == len(b) || isSeparator(b[i]) {
			if start >= 0 {
				s.offer(start, i)
				start = -1
			}
			continue
		}
		if start < 0 {
			start = i
		}
	}
	for _, m := range ibanCandidates(b) {
		glued := m[0] > 0 && isAlnum(b[m[0]-1])
		if glued && (isDigit(b[m[0]-1]) || !isUpper(b[m[0]]) || !isUpper(b[m[0]+1])) {
			continue // inside a longer word: a digest, an identifier
		}
		// Glued after letters (acctDE89…), an upper-case country code
		// starts it and it ends the word.
		lower := glued || !isUpper(b[m[0]])
		for end := m[1]; end >= m[0]+15; end-- {
			// Lower-case, it ends a word too: a lower-case hex word
			// starts as one (de89…) more often than capitals do.
			if lower && end < len(b) && isAlnum(b[end]) {
				continue
			}
			if isAlnum(b[end-1]) && isIBAN(b[m[0]:end]) {
				s.claim(m[0], end, "iban")
				break
			}
		}
	}
	s.numbers()
	// Numbers written with separators (card numbers, IBAN digits, phone
	// numbers) span several tokens: offer each run of digits and
	// separators (isCardSep) as a whole, then look for card numbers
	// inside it.
	for i := 0; i < len(b); {
		if !isDigit(b[i]) {
			i++
			continue
		}
		j := i
		for j < len(b) {
			if isDigit(b[j]) {
				j++
				continue
			}
			// A short run of separators, or white space, dashes, dots
			// and the like only, joins the groups on either side.
			k, ok := gapEnd(b, j)
			if k == j || !ok || k == len(b) || !isDigit(b[k]) {
				break
			}
			j = k
		}
		end := j
		for end > i && !isDigit(b[end-1]) {
			end--
		}
		lo, hi, word := hexTrim(b, i, end)
		digits := 0
		for _, c := range b[lo:hi] {
			if isDigit(c) {
				digits++
			}
		}
		if digits >= 8 && s.free(lo, hi) {
			// Next to a hex word, a card number is one written as cards
			// are, in groups of 3 to 6 digits: the decimal groups of a
			// UUID (…-1234-123456789012) are not one.
			if d := find(b[lo:hi]); d != "" && (!word || d != "credit_card" || cardGrouped(b[lo:hi])) {
				s.claim(lo, hi, d)
			}
		}
		if digits >= 13 && s.free(lo, hi) {
			for _, w := range cardsIn(b[lo:hi]) {
				s.claim(lo+w[0], lo+w[1], "credit_card")
			}
		}
		i = j
	}
	s.others()
	if hasSecretPrefix(unsafeString(b)) {
		for _, m := range secretMatches(b) {
			s.claim(m[0], m[1], "secret")
		}
	}
	if bytes.IndexByte(b, '+') >= 0 {
		for _, m := range phoneMatches(b) {
			// x+12345678 is arithmetic, 1.2.3+44440713 a version: a phone
			// number's + does not follow a letter or a digit.
			if (m[0] == 0 || !isAlnum(b[m[0]-1])) && s.free(m[0], m[1]) && isPhone(b[m[0]:m[1]]) {
				s.claim(m[0], m[1], "phone")
			}
		}
	}
	if s.depth < maxEncodedDepth {
		for _, t := range append(encodedTokens(b), hexPairRuns(b)...) {
			if !s.free(t.lo, t.hi) {
				continue
			}
			if t.unjudged {
				s.claim(t.lo, t.hi, Unjudged)
				continue
			}
			sv := newView(t.text)
			sub := scrubber{b: sv.b, depth: s.depth + 1, chains: s.chains}
			if sub.run(); len(sub.all) == 0 || !s.claim(t.lo, t.hi, sub.all[0]) {
				continue
			}
			f := sub.found[0]
			lo, hi := sv.span(t.text, f.lo, f.hi)
			v := t.text[lo:hi]
			if f.value != "" {
				v = f.value
			}
			for i := range s.found {
				if s.found[i].lo <= t.lo && t.hi <= s.found[i].hi && s.found[i].value == "" {
					s.found[i].value = v
				}
			}
		}
	}
	// Digit chains last: a token of hex or base64 that holds a value is
	// replaced whole before its digits are read as a number.
	s.readChains()
}

// maxEncodedDepth bounds how many times a value's text is decoded from
// hex or base64 inside text (base64 of hex of a card number is read;
// deeper is not).
const maxEncodedDepth = 3

// maxEncodedToken is the longest token encodedTokens decodes (a session
// output chunk in base64 is at most 21,848): a longer one is not judged,
// and is replaced whole as Unjudged, never recorded in clear.
const maxEncodedToken = 32768

// Unjudged names what replaces text the detectors do not read within
// their bounds: a token longer than maxEncodedToken, compressed data that
// inflates beyond maxInflated or does not inflate.
const Unjudged = "unjudged"

// encoded is a token of text b[lo:hi] written in hex, base32 or base64,
// and the text it decodes to (decodedText), or one not judged.
type encoded struct {
	lo, hi   int
	text     string
	unjudged bool
}

// encodedTokens returns the tokens of b that are text written in hex (an
// even number, 12 or more, of hex digits: 6a616e65406578…, 3431313131…)
// or in base64, standard or URL-safe, padded or not (16 or more
// characters: NDExMTEx…, amFuZUBleGFtcGxlLmNvbQ==), read from the token's
// start, whose decoded bytes are all printable text (valid UTF-8 with no
// control character but tab and line breaks) and may hold a value
// (MayHold). Random identifiers, digests and words almost never decode to
// printable text: a byte is printable one time in three. Not decoded: a
// token that does not start where the encoded value starts (base64 glued
// to other letters), one longer than maxEncodedToken, reversed text.
func encodedTokens(b []byte) []encoded {
	var out []encoded
	for i := 0; i < len(b); {
		if !isBase64Char(b[i]) {
			i++
			continue
		}
		j := i
		for j < len(b) && isBase64Char(b[j]) {
			j++
		}
		end := j
		for end < len(b) && end-j < 6 && b[end] == '=' {
			end++
		}
		if j-i > maxEncodedToken {
			out = append(out, encoded{lo: i, hi: end, unjudged: true})
		} else if e, ok := decodeToken(b, i, j, end); ok {
			out = append(out, e)
		} else if bytes.IndexByte(b[i:j], '/') >= 0 {
			// Slashes separate a path's segments; URL-safe base64 has
			// none.
			for k := i; k < j; {
				l := k
				for l < j && b[l] != '/' {
					l++
				}
				if e, ok := decodeToken(b, k, l, l); ok {
					out = append(out, e)
				}
				k = l + 1
			}
		}
		i = end
	}
	return out
}

// decodeToken decodes b[i:j] (end: after its padding) as hex or base64
// text that may hold a value.
func decodeToken(b []byte, i, j, end int) (encoded, bool) {
	tok := b[i:j]
	if n := len(tok); n < 12 || n > maxEncodedToken {
		return encoded{}, false
	}
	hexTok := tok
	if len(tok) > 2 && tok[0] == '0' && (tok[1] == 'x' || tok[1] == 'X') {
		hexTok = tok[2:] // 0x6a616e65…
	}
	judge := func(d string, ok bool, hi int) (encoded, bool) {
		if d == unjudgedText {
			return encoded{lo: i, hi: hi, unjudged: true}, true
		}
		if ok && MayHold(d) {
			return encoded{lo: i, hi: hi, text: d}, true
		}
		return encoded{}, false
	}
	if d, ok := hexText(hexTok); ok {
		if e, ok := judge(d, ok, j); ok {
			return e, true
		}
	}
	if d, ok := base32Text(tok); ok {
		if e, ok := judge(d, ok, end); ok {
			return e, true
		}
	}
	// Base64 from its first character, or behind one to three others
	// glued to it (a sigil, a type letter, other base64: xNDExMTEx…):
	// every alignment. The token is replaced whole. Base64 of 12 bytes
	// or more holds letters of both cases but about once in 10⁶: a word
	// or an identifier of one case (snake_case, UPPER_CASE) is not
	// decoded.
	if !bothCases(tok) {
		return encoded{}, false
	}
	cannot := base64Cannot4(tok)
	for k := 0; k <= 3 && len(tok)-k >= 16; k++ {
		if cannot[k] {
			continue // most alignments of bulk base64: no text
		}
		if d, ok := base64Text(tok[k:]); ok {
			if e, ok := judge(d, ok, end); ok {
				return e, true
			}
		}
	}
	return encoded{}, false
}

// bothCases reports whether tok holds an upper-case and a lower-case
// letter.
func bothCases(tok []byte) bool {
	lower, upper := false, false
	for _, c := range tok {
		lower, upper = lower || c >= 'a' && c <= 'z', upper || c >= 'A' && c <= 'Z'
		if lower && upper {
			return true
		}
	}
	return false
}

// unjudgedText is what decodedText returns for bytes it cannot judge.
const unjudgedText = "\x00unjudged"

// minRun is the shortest run of printable characters decodedText keeps
// from bytes that are not text throughout.
const minRun = 8

// maxInflated bounds what decodedText inflates from gzip.
const maxInflated = 64 << 10

// decodedText is the text decoded bytes d are read as: d itself when it
// is printable text; else gzip inflated (at most maxInflated, or
// unjudgedText); else d with its NULs taken out (UTF-16 and UTF-32 of
// ASCII text, in either byte order) when that is printable; else its
// runs of minRun printable characters or more, one a line (protobuf
// framing, Latin-1 bytes, a garbage prefix around text). ok is false
// when nothing is left.
func decodedText(d []byte) (string, bool) {
	if printable(d) {
		return string(d), true
	}
	if len(d) >= 18 && d[0] == 0x1f && d[1] == 0x8b && d[2] == 8 {
		out, ok := gunzip(bytes.Clone(d)) // a copy: d stays on its caller's stack
		if !ok {
			return unjudgedText, true
		}
		if t, ok := decodedText(out); ok {
			return t, true
		}
		return "", false
	}
	if nul := bytes.Count(d, []byte{0}); nul > 0 && nul*4 >= len(d) {
		// NUL-interleaved: UTF-16 or UTF-32 of ASCII text.
		nn := bytes.ReplaceAll(d, []byte{0}, nil)
		if len(nn) > 0 && printable(nn) {
			return string(nn), true
		}
		d = nn
	}
	if !hasRun(d) {
		return "", false // most random bytes hold no run of minRun
	}
	var sb []byte
	for k := 0; k < len(d); {
		start := k
		for k < len(d) {
			c := d[k]
			if c < utf8.RuneSelf {
				if c < 0x20 && c != '\t' && c != '\n' && c != '\r' || c == 0x7f {
					break
				}
				k++
				continue
			}
			r, n := utf8.DecodeRune(d[k:])
			if r == utf8.RuneError && n <= 1 || unicode.IsControl(r) {
				break
			}
			k += n
		}
		if k-start >= minRun {
			if sb != nil {
				sb = append(sb, '\n')
			}
			sb = append(sb, d[start:k]...)
		}
		if k == start {
			k++
		}
	}
	return string(sb), len(sb) > 0
}

// gunzip inflates d, gzip, to at most maxInflated bytes; false when it
// does not inflate or inflates beyond.
func gunzip(d []byte) ([]byte, bool) {
	zr, err := gzip.NewReader(bytes.NewReader(d))
	if err != nil {
		return nil, false
	}
	out, err := io.ReadAll(io.LimitReader(zr, maxInflated+1))
	return out, err == nil && len(out) <= maxInflated
}

// hasRun reports whether d holds minRun printable characters in a row,
// a character beyond ASCII counting as one (decodedText then reads it
// closer), as utf8.DecodeRune reads them: the run machine, runNext.
func hasRun(d []byte) bool {
	return runScan(0, d) == runFound
}

// base32Text decodes tok, base32 (RFC 4648) in one case without its
// padding, 16 characters or more.
func base32Text(tok []byte) (string, bool) {
	if len(tok) < 16 {
		return "", false
	}
	upper := tok[0] >= 'A' && tok[0] <= 'Z'
	var acc uint32
	bits := 0
	var buf [128]byte // most tokens stop within it, on the stack
	d := buf[:0]
	for _, c := range tok {
		var v uint32
		switch {
		case upper && c >= 'A' && c <= 'Z':
			v = uint32(c - 'A')
		case !upper && c >= 'a' && c <= 'z':
			v = uint32(c - 'a')
		case c >= '2' && c <= '7':
			v = uint32(c-'2') + 26
		default:
			return "", false
		}
		acc, bits = acc<<5|v, bits+5
		if bits >= 8 {
			bits -= 8
			d = append(d, byte(acc>>bits))
		}
	}
	return decodedText(d)
}

// hexPairRuns returns the runs of b that are bytes written in hex with
// one separator between them, the same throughout (34:33:39…, 6a 61 6e…,
// xxd's and Wireshark's forms), six bytes or more, whose bytes are text
// (decodedText) that may hold a value.
func hexPairRuns(b []byte) []encoded {
	var out []encoded
	for i := 0; i+17 <= len(b); i++ {
		if hexValue(b[i]) < 0 || hexValue(b[i+1]) < 0 || i > 0 && isAlnum(b[i-1]) {
			continue
		}
		sep := b[i+2]
		if sep != ':' && sep != ' ' && sep != '-' && sep != '.' {
			continue
		}
		var d []byte
		j := i
		for j+2 <= len(b) && hexValue(b[j]) >= 0 && hexValue(b[j+1]) >= 0 && (j+2 == len(b) || !isAlnum(b[j+2])) {
			d = append(d, byte(hexValue(b[j])<<4|hexValue(b[j+1])))
			j += 2
			if j+2 < len(b) && b[j] == sep {
				j++
				continue
			}
			break
		}
		if b[j-1] == sep {
			j--
		}
		if len(d) >= 6 {
			if t, ok := decodedText(d); ok && (t == unjudgedText || MayHold(t)) {
				out = append(out, encoded{lo: i, hi: j, text: t, unjudged: t == unjudgedText})
			}
			i = j
		}
	}
	return out
}

// encodedWhole is the text v decodes to when v is one token of hex or
// base64 (encodedTokens) that may hold a value.
func encodedWhole(v []byte) (string, bool) {
	j := len(v)
	for j > 0 && len(v)-j < 6 && v[j-1] == '=' {
		j--
	}
	for _, c := range v[:j] {
		if !isBase64Char(c) {
			return "", false
		}
	}
	e, ok := decodeToken(v, 0, j, len(v))
	return e.text, ok && e.hi == len(v)
}

func isBase64Char(c byte) bool { return charClass[c]&ccBase64 != 0 }

// hexText decodes tok, hex digits of either case, and reads the bytes
// as decodedText does.
func hexText(tok []byte) (string, bool) {
	if len(tok)%2 != 0 {
		return "", false
	}
	var buf [128]byte // most tokens stop within it, on the stack
	d := buf[:0]
	if len(tok)/2 > len(buf) {
		d = make([]byte, 0, len(tok)/2)
	}
	d = d[:len(tok)/2]
	run, longest, nul := 0, 0, 0
	for k := 0; k < len(tok); k += 2 {
		hi, lo := hexValue(tok[k]), hexValue(tok[k+1])
		if hi < 0 || lo < 0 {
			return "", false
		}
		c := byte(hi<<4 | lo)
		d[k/2] = c
		// A cheap bound first: a byte below 0x20 but white space ends a
		// run, one beyond ASCII may be part of a character.
		switch {
		case c == 0:
			nul++
		case c < 0x20 && c != '\t' && c != '\n' && c != '\r' || c == 0x7f:
			run = 0
		default:
			run++
			longest = max(longest, run)
		}
	}
	if longest < minRun && nul*4 < len(d) && !(len(d) >= 18 && d[0] == 0x1f && d[1] == 0x8b) && longest < len(d) {
		return "", false
	}
	return decodedText(d)
}

// base64Text decodes tok, base64 of either alphabet without its padding,
// 16 characters or more, and reads the bytes as decodedText does (text
// in UTF-16LE, PowerShell's -EncodedCommand, as the text it is).
func base64Text(tok []byte) (string, bool) {
	if len(tok) < 16 || len(tok)%4 == 1 {
		return "", false
	}
	var buf [128]byte // most tokens stop within it, on the stack
	d := buf[:0]
	if n := len(tok) * 3 / 4; n > len(buf) {
		d = make([]byte, 0, n) // a long one (a terminal chunk's data) grows no more
		// (its text is still copied below: returning a view of d would
		// send buf to the heap for every token, the short ones too)
	}
	var acc uint32
	bits := 0
	// Four characters, three bytes, at a time; then what is left. The
	// whole token is decoded: bytes that are not text may still be
	// gzip, UTF-16 or text between binary framing (decodedText).
	k := 0
	for ; k+4 <= len(tok); k += 4 {
		v := uint32(base64Value[tok[k]])<<18 | uint32(base64Value[tok[k+1]])<<12 | uint32(base64Value[tok[k+2]])<<6 | uint32(base64Value[tok[k+3]])
		d = append(d, byte(v>>16), byte(v>>8), byte(v))
	}
	for ; k < len(tok); k++ {
		acc, bits = acc<<6|uint32(base64Value[tok[k]]), bits+6
		if bits >= 8 {
			bits -= 8
			d = append(d, byte(acc>>bits))
		}
	}
	if !printable(d) && wideStart(d) && len(d) >= 8 {
		w, _, _ := wideDecode(string(d[:len(d)&^1]))
		if printable([]byte(w)) {
			return w, true
		}
	}
	return decodedText(d)
}

// base64Printable reports whether tok, base64 of either alphabet without
// its padding, decodes to printable text throughout (or to ASCII text in
// UTF-16LE): what a sealed field's ciphertext never is.
func base64Printable(tok []byte) bool {
	if len(tok) < 16 || len(tok)%4 == 1 {
		return false
	}
	var buf [128]byte
	d := buf[:0]
	var acc uint32
	bits := 0
	for k, c := range tok {
		var v int
		switch {
		case c >= 'A' && c <= 'Z':
			v = int(c - 'A')
		case c >= 'a' && c <= 'z':
			v = int(c-'a') + 26
		case isDigit(c):
			v = int(c-'0') + 52
		case c == '+' || c == '-':
			v = 62
		default:
			v = 63
		}
		acc, bits = acc<<6|uint32(v), bits+6
		if bits >= 8 {
			bits -= 8
			d = append(d, byte(acc>>bits))
			if k < 8 && !printable(d) && !wideStart(d) {
				return false // ciphertext stops here
			}
		}
	}
	if printable(d) {
		return true
	}
	if wideStart(d) && len(d) >= 8 {
		w, _, _ := wideDecode(string(d[:len(d)&^1]))
		return printable([]byte(w))
	}
	return false
}

// base64Value is the value of a base64 character of either alphabet:
// '+' and '-' are 62, and every byte not a letter or digit 63 ('/' and
// '_'; callers pass base64 characters only).
var base64Value = func() (t [256]byte) {
	for c := range t {
		switch {
		case c >= 'A' && c <= 'Z':
			t[c] = byte(c - 'A')
		case c >= 'a' && c <= 'z':
			t[c] = byte(c-'a') + 26
		case c >= '0' && c <= '9':
			t[c] = byte(c-'0') + 52
		case c == '+' || c == '-':
			t[c] = 62
		default:
			t[c] = 63
		}
	}
	return t
}()

// wideStart reports whether d starts as ASCII text in UTF-16LE does:
// each character's second byte NUL.
func wideStart(d []byte) bool {
	for i := 0; i < len(d); i++ {
		if i%2 == 1 && d[i] != 0 || i%2 == 0 && (d[i] < 0x20 && d[i] != '\t' && d[i] != '\n' && d[i] != '\r' || d[i] >= 0x7f) {
			return false
		}
	}
	return len(d) > 0
}

// printable reports whether d is valid UTF-8 text with no control
// character but tab and line breaks. A multi-byte character cut at the
// end of d counts as printable.
func printable(d []byte) bool {
	for k := 0; k < len(d); {
		c := d[k]
		if c < utf8.RuneSelf {
			if c < 0x20 && c != '\t' && c != '\n' && c != '\r' || c == 0x7f {
				return false
			}
			k++
			continue
		}
		r, n := utf8.DecodeRune(d[k:])
		if r == utf8.RuneError && n <= 1 {
			return !utf8.FullRune(d[k:]) // cut at the end
		}
		if unicode.IsControl(r) {
			return false
		}
		k += n
	}
	return true
}

// emailLocal returns where the address emailIn found at b[lo:hi] starts.
// Inside text, the local part is cut after the last =, ?, & or / (URL
// syntax: ?to=jane@…, /u/jane@…) unless that leaves it empty (ab=@…),
// and a quote that opens it (SQL 'jane@…', text `jane@…`) is not part
// of it, while one inside it is (o'brien@…).
func emailLocal(b []byte, lo, hi int) int {
	if b[lo] == '"' {
		return lo // a quoted local part
	}
	at := lo + bytes.IndexByte(b[lo:hi], '@')
	for i := at - 2; i >= lo; i-- {
		if c := b[i]; c == '=' || c == '?' || c == '&' || c == '/' {
			lo = i + 1
			break
		}
	}
	for lo < at-1 && (b[lo] == '\'' || b[lo] == '`') {
		lo++
	}
	return lo
}

// secretIn finds the shapes isSecret knows inside longer text (a token
// in a query string, a key in a config file), a PEM private key through
// its END line, so the key's body goes with its header.
var secretIn = regexp.MustCompile(`eyJ[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}|(?:AKIA|ASIA)[A-Z0-9]{16}|gh[pousr]_[A-Za-z0-9]{36,}|xox[abprs]-[A-Za-z0-9-]{10,}|(?:sk|rk)_(?:live|test)_[A-Za-z0-9]{16,}|-----BEGIN [A-Z ]*PRIVATE KEY-----(?s:.*?)(?:-----END [A-Z ]*PRIVATE KEY-----|$)`)

// secretAnchored is secretIn anchored: secretMatches tries it only where
// secretAt finds what each of its forms starts with.
var secretAnchored = regexp.MustCompile(`^(?:` + secretIn.String() + `)`)

// secretMatches is secretIn.FindAllIndex(b, -1).
func secretMatches(b []byte) [][]int {
	return matchesAt(secretAnchored, b, 0, func(i int) bool { return secretAt(unsafeString(b[i:])) })
}

// phoneIn finds what may be an international phone number inside longer
// text, where the token pass splits it at its parentheses and the digit
// pass leaves out its +.
var phoneIn = regexp.MustCompile(`\+[0-9][0-9\t-\r\x20-\x2a\x2c-\x2f\x3a-\x3f\x5b-\x60\x7b-\x7e]{6,21}[0-9]`)

// phoneAt is phoneIn anchored, and phoneWidth the longest it matches:
// phoneMatches tries it only where a + and a digit stand.
var phoneAt = regexp.MustCompile(`^(?:` + phoneIn.String() + `)`)

const phoneWidth = 1 + 1 + 21 + 1

// phoneMatches is phoneIn.FindAllIndex(b, -1).
func phoneMatches(b []byte) [][]int {
	return matchesAt(phoneAt, b, phoneWidth, func(i int) bool { return b[i] == '+' && i+1 < len(b) && isDigit(b[i+1]) })
}

// ibanIn finds what may be an IBAN written in groups inside longer text
// (the token pass sees only its groups).
var ibanIn = regexp.MustCompile(`[A-Za-z]{2}[0-9]{2}[A-Za-z0-9\t-\r\x20-\x2f\x3a-\x3f\x5b-\x60\x7b-\x7e]{11,40}`)

// ibanAt is ibanIn anchored, and ibanWidth the longest it matches.
var ibanAt = regexp.MustCompile(`^(?:` + ibanIn.String() + `)`)

const ibanWidth = 2 + 2 + 40

// matchesAt is what re.FindAllIndex(b, -1) gives for a pattern re whose
// matches start only where at(i) holds and are at most width bytes long
// (0: unbounded; a bounded pattern has no end-of-text assertion),
// anchored its anchored form:
// tried at those places only, in a window of width bytes, so that text
// with few of them costs a byte loop rather than a regexp scan of all of
// it (random base64 holds a + every 64 bytes, and two letters and two
// digits every 70 or so: bulk terminal output).
func matchesAt(anchored *regexp.Regexp, b []byte, width int, at func(i int) bool) [][]int {
	var out [][]int
	for i := 0; i < len(b); i++ {
		if !at(i) {
			continue
		}
		end := len(b)
		if width > 0 {
			end = min(end, i+width)
		}
		if m := anchored.FindIndex(b[i:end]); m != nil {
			out = append(out, []int{i, i + m[1]})
			i += m[1] - 1
		}
	}
	return out
}

// MayHold reports whether text may hold a value a built-in detector
// finds, a cheap test so that most recorded strings skip the full scan;
// false is certain. An e-mail address has an @; a card number a run of 13
// digits or more broken only by separators (isCardSep); an SSN such a run of 9
// with dashes in it; a phone number a + and then a run of 8 that may also
// be broken by dots and parentheses; an IBAN two letters and two
// digits, and a run of 8 or more (its account number); and a secret
// starts with a prefix hasSecretPrefix looks for. A new detector MUST be
// reflected here. Text with characters beyond ASCII is read folded, text
// with percent-encoding decoded too (as scan reads it), and a token
// written in hex or base64 as the text it decodes to (encodedTokens).
//
// Most recorded text is ASCII with no backslash and no percent sign: it
// is read in one pass (mayHoldPlain), which answers as the readings
// below would.
func MayHold(text string) bool {
	if len(text) < 6 { // a@b.cc
		return false
	}
	if hold, done := mayHoldPlain(text); done {
		return hold
	}
	return mayHoldRead(text)
}

// mayHoldRead is MayHold reading text as written, folded, decoded and
// as the tokens encodedTokens decodes, one reading after the other.
func mayHoldRead(text string) bool {
	if mayHoldAsWritten(text) {
		return true
	}
	if hasPercent(text) {
		if d, _, _ := percentDecode(text); MayHold(d) {
			return true
		}
	} else if wideText(text) {
		if d, _, _ := wideDecode(text); MayHold(d) {
			return true
		}
	} else if controlText(text) {
		if d, _, _ := controlStrip(text); MayHold(d) {
			return true
		}
	}
	return len(encodedTokens(unsafeBytes(text))) > 0 || len(hexPairRuns(unsafeBytes(text))) > 0 || notationIn(unsafeBytes(text), 0, len(text))
}

// notationIn reports whether b[i:j] holds a token of letters and digits
// notationValue reads as a number of 13–19 digits.
func notationIn(b []byte, i, j int) bool {
	for k := i; k < j; {
		if !isAlnum(b[k]) {
			k++
			continue
		}
		l := k
		for l < j && isAlnum(b[l]) {
			l++
		}
		if l-k >= 10 && l-k <= 66 && hexValue(b[k]) >= 0 {
			if _, ok := notationValue(b, k, l); ok {
				return true
			}
		}
		k = l
	}
	return false
}

// Flags of plainClass beside a byte's holdClass (its low three bits).
const (
	fBase64 = 1 << 3 // isBase64Char: the byte goes on a token encodedTokens reads
	fStop   = 1 << 4 // beyond ASCII, a backslash, a percent sign, a control character (NUL: UTF-16; ESC: a terminal sequence) or an & that starts a reference: mayHoldPlain stops
)

// plainClass is holdClass with the flags mayHoldPlain reads, one table
// lookup a byte.
var plainClass = func() (t [256]byte) {
	for c := range 256 {
		t[c] = holdClass[c]
		if isBase64Char(byte(c)) {
			t[c] |= fBase64
		}
		if c >= utf8.RuneSelf || c == '\\' || c == '%' || c == '&' || isControl(byte(c)) {
			t[c] |= fStop
		}
	}
	return t
}()

// mayHoldPlain is MayHold in one pass over text: mayHoldASCII's reading
// and encodedTokens' (each run of base64 characters of 12 or more tried
// as hex and base64 text, encodedRun) side by side. done is false when it
// meets a byte beyond ASCII, a backslash, a percent sign, a NUL or an & that starts a character reference before it can
// answer: such text has other readings (folded, \xHH as a separator,
// percent-decoded), and MayHold reads it as mayHoldRead does. An answer
// it gives before such a byte is mayHoldRead's too: up to there (and
// through the letters secretAt looks ahead at, all plain ASCII) the
// folded text is the text itself (fold keeps ASCII as it is, character
// by character), and a token that ended before it is one encodedTokens
// reads (TestMayHoldPlainAgrees holds it to that).
func mayHoldPlain(text string) (hold, done bool) {
	run, plus, dash, eight := 0, false, false, false
	grp := 0 // digits in a row before text[i]
	var hw hexWordCache
	tok := -1 // where the run of base64 characters being read starts
	for i := 0; i < len(text); i++ {
		f := plainClass[text[i]]
		if plainLetter(text, i, f) {
			// Most bytes are letters that start no secret prefix here:
			// they only go on the token they are part of.
			if tok < 0 {
				tok = i
			}
			start := i
			for i+1 < len(text) && plainLetter(text, i+1, plainClass[text[i+1]]) {
				i++
			}
			if i != start || !hw.chainLetter(text, i, grp) {
				run, dash = 0, false
			}
			grp = 0
			continue
		}
		if f&fStop != 0 {
			if text[i] != '&' {
				return false, false
			}
			if _, n := escapeAt(text[i:]); n > 0 {
				return false, false // a reference: read decoded
			}
			f &^= fStop
		}
		if f&fBase64 != 0 {
			if tok < 0 {
				tok = i
			}
		} else if tok >= 0 {
			if i-tok >= 10 && encodedRun(unsafeBytes(text), tok, i) {
				return true, true
			}
			tok = -1
		}
		g := grp
		grp = 0
		switch f & 7 {
		case clOther:
			run, dash = 0, false
		case clAt:
			return true, true
		case clDigit:
			grp = g + 1
			if run++; run >= 9 || run >= 8 && (plus || dash) {
				return true, true
			}
			eight = eight || run >= 8
		case clDash:
			if run > 0 {
				dash = true
			} else if i+2 < len(text) && text[i+1] == '-' && secretAt(text[i:]) {
				return true, true
			}
			if hexPairAt(text, i) {
				return true, true
			}
		case clSep:
			if text[i] == '=' {
				if _, n := qpAt(text[i:], false); n > 0 {
					return false, false // quoted-printable: read decoded
				}
			}
			if hexPairAt(text, i) {
				return true, true
			}
		case clPlus:
			if _, n := utf7At(text[i:]); n > 0 {
				return false, false // UTF-7: read decoded
			}
			plus = true
		case clParen:
		case clSecret:
			if !hw.chainLetter(text, i, g) {
				run, dash = 0, false
			}
			if i+2 < len(text) && secretNext[text[i]]&secretBit(text[i+1]) != 0 && secretAt(text[i:]) {
				return true, true
			}
		}
	}
	if tok >= 0 && len(text)-tok >= 10 && encodedRun(unsafeBytes(text), tok, len(text)) {
		return true, true
	}
	return eight && ibanStart(text), true
}

// joinsDigits reports whether the letter text[k] stands alone between
// two digits (a digit chain's gap, chains), or is the e of an exponent
// after a digit (4.1e+15).
func joinsDigits(text string, k int) bool {
	if k == 0 || k+1 >= len(text) || !isDigit(text[k-1]) || !isLetter(text[k]) {
		return false
	}
	if isDigit(text[k+1]) {
		return true
	}
	return (text[k] == 'e' || text[k] == 'E') && k+2 < len(text) && (text[k+1] == '+' || text[k+1] == '-') && isDigit(text[k+2])
}

// chainLetter reports whether the letter text[k], after grp digits in a
// row, may join two groups of a digit chain (joinsDigits): a hex letter
// a–f does so inside a hex word only after 4 digits or more, and a word
// of digits and hex letters is one unless it holds both cases or a
// letter beyond f (readChains).
func chainLetter(text string, k, grp int) bool {
	var w hexWordCache
	return w.chainLetter(text, k, grp)
}

// hexWordCache keeps chainLetter's reading of the last word it read,
// [lo, hi): one scan a word, however many letters it holds.
type hexWordCache struct {
	lo, hi int
	joins  bool
}

func (w *hexWordCache) chainLetter(text string, k, grp int) bool {
	if !joinsDigits(text, k) {
		return false
	}
	if grp >= 4 || !hexLetterOf(text[k]) {
		return true
	}
	if w.hi > 0 && w.lo <= k && k < w.hi {
		return w.joins
	}
	j := w.word(text, k)
	return j
}

// word reads the word around text[k] (letters, digits and dashes) and
// reports whether a hex letter joins digit groups in it: unless it is a
// hex word of one case.
func (w *hexWordCache) word(text string, k int) bool {
	lo, hi := k, k+1
	lower, upper := false, false
	for lo > 0 && isAlnum(text[lo-1]) || lo > 0 && text[lo-1] == '-' {
		lo--
	}
	for hi < len(text) && (isAlnum(text[hi]) || text[hi] == '-') {
		hi++
	}
	for _, c := range []byte(text[lo:hi]) {
		switch {
		case c >= 'a' && c <= 'f':
			lower = true
		case c >= 'A' && c <= 'F':
			upper = true
		case isLetter(c):
			w.lo, w.hi, w.joins = lo, hi, true
			return true // not a hex word
		}
	}
	w.lo, w.hi, w.joins = lo, hi, hi-lo < 16 || lower && upper
	return w.joins
}

// hexPairAt reports whether the separator text[i] follows the first
// byte of a run hexPairRuns reads.
func hexPairAt(text string, i int) bool {
	if i < 2 || i+2 >= len(text) || hexValue(text[i-2]) < 0 || hexValue(text[i-1]) < 0 || hexValue(text[i+1]) < 0 || i >= 3 && isAlnum(text[i-3]) {
		return false
	}
	switch text[i] {
	case ':', ' ', '-', '.':
		return len(hexPairRuns(unsafeBytes(text[i-2:min(len(text), i-2+3*maxEncodedToken)]))) > 0
	}
	return false
}

// plainLetter reports whether text[i], of plainClass f, is a letter
// mayHoldPlain only adds to its token: one no secret prefix starts with,
// or one that starts none here (its next letter is none that follows it
// in a prefix).
func plainLetter(text string, i int, f byte) bool {
	return f == clOther|fBase64 || f == clSecret|fBase64 && (i+2 >= len(text) || secretNext[text[i]]&secretBits[text[i+1]] == 0)
}

// secretBits is secretBit as a table.
var secretBits = func() (t [256]uint8) {
	for c := range 256 {
		t[c] = secretBit(byte(c))
	}
	return t
}()

// encodedRun reports whether the run of base64 characters b[i:j] is a
// token encodedTokens returns, or holds one between its slashes, or
// holds a number in another notation (notationValue) between its
// other characters.
func encodedRun(b []byte, i, j int) bool {
	if notationIn(b, i, j) {
		return true
	}
	if j-i < 12 {
		return false
	}
	if j-i > maxEncodedToken {
		return true // replaced as Unjudged
	}
	if _, ok := decodeToken(b, i, j, j); ok {
		return true
	}
	if bytes.IndexByte(b[i:j], '/') < 0 {
		return false
	}
	for k := i; k < j; {
		l := k
		for l < j && b[l] != '/' {
			l++
		}
		if _, ok := decodeToken(b, k, l, l); ok {
			return true
		}
		k = l + 1
	}
	return false
}

// mayHoldAsWritten is MayHold without reading text decoded.
func mayHoldAsWritten(text string) bool {
	for i := 0; i < len(text); i++ {
		if text[i] >= 0x80 || text[i] == '\\' && cleanedControl(text[i:]) {
			return mayHoldASCII(string(newView(text).b))
		}
	}
	return mayHoldASCII(text)
}

// mayHoldASCII is MayHold on folded text: one pass, the secret prefixes
// looked for at the characters that start them.
func mayHoldASCII(text string) bool {
	run, plus, dash, eight := 0, false, false, false
	grp := 0 // digits in a row before text[i]
	var hw hexWordCache
	for i := 0; i < len(text); i++ {
		g := grp
		grp = 0
		switch holdClass[text[i]] {
		case clOther:
			if !hw.chainLetter(text, i, g) {
				run, dash = 0, false
			}
		case clAt:
			return true
		case clDigit:
			grp = g + 1
			if run++; run >= 9 || run >= 8 && (plus || dash) {
				return true
			}
			eight = eight || run >= 8
		case clDash:
			if run > 0 {
				dash = true
			} else if i+2 < len(text) && text[i+1] == '-' && secretAt(text[i:]) {
				return true
			}
		case clSep:
		case clPlus:
			// A + starts a phone number, or separates groups of a
			// card number (4111+1111+…): the run goes on.
			plus = true
		case clParen:
		case clSecret:
			if !hw.chainLetter(text, i, g) {
				run, dash = 0, false
			}
			// Most letters that start a prefix are not followed by its
			// second letter: a table read spares the call.
			if i+2 < len(text) && secretNext[text[i]]&secretBit(text[i+1]) != 0 && secretAt(text[i:]) {
				return true
			}
		}
	}
	return eight && ibanStart(text)
}

// Classes of bytes for mayHoldASCII, one table lookup a byte.
const (
	clOther  = iota
	clAt     // @
	clDigit  // 0–9
	clDash   // -
	clSep    // isCardSep but -
	clPlus   // +
	clParen  // ( ), part of a phone number after a +
	clSecret // a letter a secret prefix starts with (secretAt)
)

var holdClass = func() (t [256]byte) {
	for c := range 256 {
		switch b := byte(c); {
		case b == '@':
			t[c] = clAt
		case isDigit(b):
			t[c] = clDigit
		case b == '-':
			t[c] = clDash
		case b == '+':
			t[c] = clPlus
		case isCardSep(b):
			t[c] = clSep
		case strings.IndexByte("eAgxsr", b) >= 0:
			t[c] = clSecret
		}
	}
	return t
}()

// secretNext holds, for each letter a secret prefix starts with, the
// letters that come second in one (secretAt): e-y, A-K, A-S, g-h, x-o,
// s-k, r-k, as bits of secretBit.
var secretNext = func() (t [256]uint8) {
	for _, p := range []string{"ey", "AK", "AS", "gh", "xo", "sk", "rk"} {
		t[p[0]] |= secretBit(p[1])
	}
	return t
}()

// secretBit is c's bit in secretNext: one of the second letters, or none.
func secretBit(c byte) uint8 {
	switch c {
	case 'y':
		return 1
	case 'K':
		return 2
	case 'S':
		return 4
	case 'h':
		return 8
	case 'o':
		return 16
	case 'k':
		return 32
	}
	return 0
}

// ibanStart reports whether text holds two letters followed by two
// digits, as every IBAN starts.
func ibanStart(text string) bool {
	for i := 0; i+4 <= len(text); i++ {
		if isLetter(text[i]) && isLetter(text[i+1]) && isDigit(text[i+2]) && isDigit(text[i+3]) {
			return true
		}
	}
	return false
}

// hasSecretPrefix reports whether text holds the start of a shape
// isSecret knows: eyJ, AKIA, ASIA, gh[pousr]_, xox[abprs]-, sk_, rk_,
// -----BEGIN.
func hasSecretPrefix(text string) bool {
	// secretAt only where the first two characters start a prefix: one
	// place in some thousands of base64.
	for i := 0; i+3 <= len(text); i++ {
		if secretPair[text[i]]&secretPairBits[text[i+1]] != 0 && secretAt(text[i:]) {
			return true
		}
	}
	return false
}

// secretPair holds, for each character a prefix secretAt knows starts
// with, the characters that come second in one (e-y, A-K, A-S, g-h, x-o,
// s-k, r-k, and the dashes of -----BEGIN), as bits of secretPairBits.
var secretPair = func() (t [256]uint8) {
	for _, p := range []string{"ey", "AK", "AS", "gh", "xo", "sk", "rk", "--"} {
		t[p[0]] |= secretPairBits[p[1]]
	}
	return t
}()

// secretPairBits is secretBit, and a bit of its own for a dash.
var secretPairBits = func() (t [256]uint8) {
	for c := range 256 {
		t[c] = secretBit(byte(c))
	}
	t['-'] = 64
	return t
}()

// secretAt reports whether t starts with a prefix hasSecretPrefix looks
// for.
func secretAt(t string) bool {
	if len(t) < 3 {
		return false
	}
	switch t[0] {
	case 'e':
		return t[1] == 'y' && t[2] == 'J'
	case 'A':
		return strings.HasPrefix(t, "AKIA") || strings.HasPrefix(t, "ASIA")
	case 'g':
		return len(t) >= 4 && t[1] == 'h' && strings.IndexByte("pousr", t[2]) >= 0 && t[3] == '_'
	case 'x':
		return len(t) >= 5 && t[1] == 'o' && t[2] == 'x' && strings.IndexByte("abprs", t[3]) >= 0 && t[4] == '-'
	case 's', 'r':
		return t[1] == 'k' && t[2] == '_'
	case '-':
		return strings.HasPrefix(t, "-----BEGIN")
	}
	return false
}

// IsDigest reports whether s has the shape of a digest the ledger and
// the gateways write, and nothing else: 64 lower-case hex digits (SHA-256:
// statement_sha256, payload and record sha256, leaf hashes), 32 (a sealed
// field's pseudonym), or "hmac:" and 64 (keyed digests: body_hmac, search
// digests). Such values are not personal data, and a run of decimal
// digits inside one may pass a card-number check by chance. At least two
// of its hex digits must be letters a–f, as all but one in 10¹¹ SHA-256
// digests have: a run of decimal digits (16 digits four times) is judged.
func IsDigest(s string) bool {
	s, keyed := strings.CutPrefix(s, "hmac:")
	if len(s) != 64 && (keyed || len(s) != 32) {
		return false
	}
	letters := 0
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c >= 'a' && c <= 'f':
			letters++
		case !isDigit(c):
			return false
		}
	}
	return letters >= 2
}

// ibanCandidates is ibanIn's matches in b, read without the regular
// expression (ibanLen): two letters and two digits, then 11 to 40 of
// the characters ibanIn allows, as many as stand there.
func ibanCandidates(b []byte) [][]int {
	var out [][]int
	for i := 0; i+4 <= len(b); i++ {
		if ibanHead[b[i]]&1 == 0 || ibanHead[b[i+1]]&1 == 0 || ibanHead[b[i+2]]&2 == 0 || ibanHead[b[i+3]]&2 == 0 {
			continue
		}
		if n := ibanLen(b[i:min(len(b), i+ibanWidth)]); n > 0 {
			out = append(out, []int{i, i + n})
			i += n - 1
		}
	}
	return out
}

// ibanHead has bit 1 for a letter and bit 2 for a digit: the first four
// characters of ibanIn.
var ibanHead = func() (t [256]uint8) {
	for c := range 256 {
		if isLetter(byte(c)) {
			t[c] = 1
		}
		if isDigit(byte(c)) {
			t[c] = 2
		}
	}
	return t
}()

// ibanTail holds the characters ibanIn allows after the first four:
// tab to carriage return, and every printable ASCII character but @.
var ibanTail = func() (t [256]bool) {
	for c := range 256 {
		t[c] = c >= '\t' && c <= '\r' || c >= 0x20 && c <= 0x7e && c != '@'
	}
	return t
}()

// ibanLen is how long ibanAt's match is at the start of c, which starts
// with two letters and two digits and is at most ibanWidth long: the
// greedy {11,40} takes every character ibanTail allows; 0 when fewer
// than 11 stand there.
func ibanLen(c []byte) int {
	n := 4
	for n < len(c) && ibanTail[c[n]] {
		n++
	}
	if n-4 < 11 {
		return 0
	}
	return n
}

// unsafeBytes views s as bytes without copying; they MUST NOT be
// written.
func unsafeBytes(s string) []byte { return unsafe.Slice(unsafe.StringData(s), len(s)) }

// unsafeString views b as a string without copying, for tests that do
// not keep it; b must not change while it is in use.
func unsafeString(b []byte) string { return unsafe.String(unsafe.SliceData(b), len(b)) }

// hexTrim returns the part of the run of digits b[lo:hi] (separators
// between them) that is not part of a longer hexadecimal word, and
// whether the run stands in one — 16
// characters or more of digits and one case of the letters a–f, at least
// two of them letters, dashes allowed (a UUID) — such as an identifier or
// a digest shorter than IsDigest's: about one in a thousand random
// 16-digit hex identifiers holds a run of 13 decimal digits that passes
// Luhn. Only the digits joined to a letter with nothing between are the
// word's: the group of the run next to the letter
// (0f1e4111111111111111-a2b3, a456-426614174000 leaves 426614174000). A
// card number written apart from letters by a dash
// (4111-1111-1111-1111-ab, fe-4111111111111111), or next to letters
// beyond f (card:4111111111111111x), is judged.
func hexTrim(b []byte, lo, hi int) (int, int, bool) {
	for k := lo; k < hi; k++ {
		if c := b[k]; c != '-' && !isDigit(c) {
			return lo, hi, false // other separators: not a hex word
		}
	}
	for _, upper := range []bool{false, true} {
		hexLetter := func(c byte) bool {
			if upper {
				return c >= 'A' && c <= 'F'
			}
			return c >= 'a' && c <= 'f'
		}
		hex := func(c byte) bool { return isDigit(c) || c == '-' || hexLetter(c) }
		start, end := lo, hi
		for start > 0 && hex(b[start-1]) {
			start--
		}
		for end < len(b) && hex(b[end]) {
			end++
		}
		letters := 0
		for _, c := range b[start:end] {
			if isLetter(c) {
				letters++
			}
		}
		if end-start < 16 || letters < 2 || start > 0 && isAlnum(b[start-1]) || end < len(b) && isAlnum(b[end]) {
			continue
		}
		l, h := lo, hi
		if l > 0 && hexLetter(b[l-1]) {
			for l < h && isDigit(b[l]) {
				l++
			}
			for l < h && !isDigit(b[l]) {
				l++
			}
		}
		if h < len(b) && hexLetter(b[h]) {
			for h > l && isDigit(b[h-1]) {
				h--
			}
			for h > l && !isDigit(b[h-1]) {
				h--
			}
		}
		return l, h, true
	}
	return lo, hi, false
}

// cardGrouped reports whether every group of digits in v, a run of
// digits and separators, has 3 to 6 digits.
func cardGrouped(v []byte) bool {
	group := 0
	for i := 0; i <= len(v); i++ {
		if i < len(v) && isDigit(v[i]) {
			group++
			continue
		}
		if group > 0 && (group < 3 || group > 6) {
			return false
		}
		group = 0
	}
	return true
}

// chainBreak is white space too long for a gap of a digit chain.
var chainBreak = strings.Repeat(" ", maxChainGap+1)

// letterGapAt reports whether a part a followed by b, back to back,
// meet in a one-letter gap between digits: a ends with a digit and b
// begins with a letter and a digit, or a ends with a digit and a letter
// and b begins with a digit.
func letterGapAt(a, b string) bool {
	n := len(a)
	switch {
	case n >= 1 && len(b) >= 2 && isDigit(a[n-1]) && isLetter(b[0]) && isDigit(b[1]):
		return true
	case n >= 2 && len(b) >= 1 && isDigit(a[n-2]) && isLetter(a[n-1]) && isDigit(b[0]):
		return true
	}
	return false
}

func isLetter(c byte) bool { return charClass[c]&ccLetter != 0 }
func isAlnum(c byte) bool  { return charClass[c]&(ccLetter|ccDigit) != 0 }

// charClass has isLetter, isDigit and isBase64Char of each byte as bits,
// one lookup where comparisons branched in every pass over bulk text.
var charClass = func() (t [256]uint8) {
	for c := range 256 {
		switch {
		case c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z':
			t[c] = ccLetter | ccBase64
		case c >= '0' && c <= '9':
			t[c] = ccDigit | ccBase64
		case c == '+' || c == '/' || c == '-' || c == '_':
			t[c] = ccBase64
		}
	}
	return t
}()

const (
	ccLetter = 1 << iota
	ccDigit
	ccBase64
)

// Joined is a value the detectors find in parts joined that no part
// holds alone: its detector, its value, and the indexes of the parts it
// is made of, in order.
type Joined struct {
	Detector string
	Value    string
	Parts    []int
}

// JoinSeparators are what JoinedValues puts between parts: nothing (a
// value split in two and concatenated back, $1 || $2) and a space (the
// groups of a number, words of a text).
var JoinSeparators = []string{"", " "}

// JoinedValues judges parts — values a reader may join: bind parameters,
// a statement's literals, a path's segments, a query parameter's
// repeated values — joined in order by each of JoinSeparators: all of
// them (up to maxJoinedAll parts) and every run of 2 to joinWindow
// adjacent parts; and the parts that write numbers only (digits and
// separators) the same way, without the words between them. It returns
// each value the detectors find that spans two parts or more (one part
// alone is judged as itself).
func JoinedValues(parts []string) []Joined {
	if len(parts) < 2 {
		return nil
	}
	// What one part holds alone is judged as that part: here it is its
	// placeholder, so that it does not reach into its neighbours (an
	// address's local part would take the part before it).
	parts = slices.Clone(parts)
	for i, p := range parts {
		parts[i], _ = Scrub(p)
	}
	var out []Joined
	seen := map[string]bool{}
	// One buffer for every joining tried: what is kept of it (a value
	// found) is copied.
	var buf []byte
	var bounds [][2]int
	try := func(first int, ps []string, sep string) {
		buf, bounds = buf[:0], bounds[:0]
		for i, p := range ps {
			if i > 0 {
				if sep == "" && letterGapAt(ps[i-1], p) {
					// Joined back to back, the two would meet in a
					// one-letter gap of a digit chain (v1024 and v1025
					// as v1024v1025): a letter inside a value is read
					// so, a letter a part begins or ends with is not —
					// a list of codes would read as card numbers. A gap
					// longer than a chain's keeps them apart.
					buf = append(buf, chainBreak...)
				}
				buf = append(buf, sep...)
			}
			lo := len(buf)
			buf = append(buf, p...)
			bounds = append(bounds, [2]int{lo, len(buf)})
		}
		for _, sp := range Spans(unsafeString(buf)) {
			var idx []int
			for i, a := range bounds {
				if a[0] < sp.Hi && sp.Lo < a[1] {
					idx = append(idx, first+i)
				}
			}
			if len(idx) < 2 {
				continue
			}
			key := sp.Detector + "\x00" + sp.Value
			for _, i := range idx {
				key += "\x00" + strconv.Itoa(i)
			}
			if !seen[key] {
				seen[key] = true
				out = append(out, Joined{Detector: sp.Detector, Value: strings.Clone(sp.Value), Parts: idx})
			}
		}
	}
	judge := func(parts []string, at []int) {
		if len(parts) < 2 {
			return
		}
		for _, sep := range JoinSeparators {
			n := len(out)
			maxW := joinWindow
			if len(parts) <= maxJoinedAll {
				try(0, parts, sep)
				maxW = min(joinWindow, len(parts)-1) // all of them is the longest run
			}
			for w := 2; w <= maxW; w++ {
				for i := 0; i+w <= len(parts); i++ {
					try(i, parts[i:i+w], sep)
				}
			}
			for _, j := range out[n:] {
				for k := range j.Parts {
					j.Parts[k] = at[j.Parts[k]]
				}
			}
		}
	}
	all := make([]int, len(parts))
	for i := range all {
		all[i] = i
	}
	judge(parts, all)
	// The parts that write numbers only, joined without the words
	// between them (set_config('x.a', '4111 1111', …), set_config('x.b',
	// '1111 1111', …)).
	var nums []string
	var at []int
	for i, p := range parts {
		if numberLike(p) {
			nums, at = append(nums, p), append(at, i)
		}
	}
	if len(nums) < len(parts) {
		judge(nums, at)
	}
	// An @ standing alone joins an address's two other parts, in
	// whatever order the text writes them (x || '@' || y FROM (VALUES
	// ('jane', 'example.com')) v(x, y)).
	if len(parts) <= maxJoinedAll {
		for a, p := range parts {
			if strings.TrimSpace(p) != "@" {
				continue
			}
			for i := range parts {
				for j := range parts {
					if i == j || i == a || j == a {
						continue
					}
					v := strings.TrimSpace(parts[i]) + "@" + strings.TrimSpace(parts[j])
					if Find([]byte(v)) == "email" {
						idx := []int{i, a, j}
						slices.Sort(idx)
						out = append(out, Joined{Detector: "email", Value: v, Parts: idx})
					}
				}
			}
		}
	}
	return out
}

// numberLike reports whether p, folded, holds digits and the separators
// of digit groups (NumberSeparator) only, a digit at least.
func numberLike(p string) bool {
	f := Fold(p)
	digit := false
	for i := 0; i < len(f); i++ {
		switch c := f[i]; {
		case isDigit(c):
			digit = true
		case !isCardSep(c):
			return false
		}
	}
	return digit
}

// maxJoinedAll is how many parts JoinedValues joins all together at
// most; joinWindow how many adjacent parts it joins in every run (a card
// number in four groups, an address in up to four pieces), whatever
// their number. A long list of small numbers, joined whole, would be
// read as one long number.
const (
	maxJoinedAll = 32
	joinWindow   = 4
)

// wideText reports whether text is UTF-16: it starts with a byte order
// mark (FF FE, FE FF), or one byte in two is NUL, as ASCII text written
// in UTF-16 (iconv -t UTF-16LE, a Windows tool's output) is.
func wideText(text string) bool {
	if len(text) < 4 {
		return false
	}
	if text[0] == 0xff && text[1] == 0xfe || text[0] == 0xfe && text[1] == 0xff {
		return true
	}
	if strings.IndexByte(text, 0) < 0 {
		return false
	}
	var nul [2]int
	for i := 0; i < len(text); i++ {
		if text[i] == 0 {
			nul[i%2]++
		}
	}
	half := len(text) / 2
	return nul[0]*4 >= half*3 || nul[1]*4 >= half*3
}

// wideDecode reads text as UTF-16 — big-endian after FE FF or when its
// NULs stand first in each pair, little-endian otherwise — and returns
// it as UTF-8, with from[i] and to[i] where the text that byte i of the
// result comes from starts and ends. A unit that is not a character (a
// lone surrogate) becomes U+FFFD.
func wideDecode(text string) (string, []int, []int) {
	start, big := 0, false
	switch {
	case text[0] == 0xff && text[1] == 0xfe:
		start = 2
	case text[0] == 0xfe && text[1] == 0xff:
		start, big = 2, true
	default:
		var nul [2]int
		for i := 0; i < len(text); i++ {
			if text[i] == 0 {
				nul[i%2]++
			}
		}
		big = nul[0] > nul[1]
	}
	var b []byte
	var from, to []int
	for i := start; i+1 < len(text); {
		u := func(k int) rune {
			if big {
				return rune(text[k])<<8 | rune(text[k+1])
			}
			return rune(text[k+1])<<8 | rune(text[k])
		}
		r, n := u(i), 2
		if utf16.IsSurrogate(r) && i+3 < len(text) {
			r, n = utf16.DecodeRune(r, u(i+2)), 4
		}
		before := len(b)
		b = utf8.AppendRune(b, r)
		for range len(b) - before {
			from, to = append(from, i), append(to, i+n)
		}
		i += n
	}
	return string(b), from, to
}

// isControl: a control character beyond tab, line feed and carriage
// return (C0 and DEL).
func isControl(c byte) bool {
	return c < 0x20 && c != '\t' && c != '\n' && c != '\r' || c == 0x7f
}

// controlText reports whether text holds a control character beyond tab,
// line feed and carriage return — a terminal escape sequence, a
// backspace, a NUL —, which may stand between a value's characters
// (grep --color's 4111\e[01;31m\e[K 1111…, a parameter with \e[0m
// inside): such text is also read with them taken out (controlStrip).
func controlText(text string) bool {
	for i := 0; i < len(text); i++ {
		if isControl(text[i]) {
			return true
		}
	}
	return false
}

// controlStrip returns text without its escape sequences — CSI (ESC [,
// parameter and intermediate bytes, a final byte 0x40–0x7E), the string
// sequences OSC, DCS, SOS, PM and APC (ESC ] P X ^ _, up to BEL or
// ESC \\), any other ESC with the byte after it — and its other control
// characters (isControl), with from[i] and to[i] where the text that byte i of
// the result comes from starts and ends. A value found in the result is
// replaced over the characters as written, the sequences inside it
// included.
func controlStrip(text string) (string, []int, []int) {
	b := make([]byte, 0, len(text))
	from := make([]int, 0, len(text))
	to := make([]int, 0, len(text))
	for i := 0; i < len(text); {
		c := text[i]
		switch {
		case c == 0x1b:
			i = escapeEnd(text, i)
		case isControl(c):
			i++
		default:
			b = append(b, c)
			from = append(from, i)
			to = append(to, i+1)
			i++
		}
	}
	return string(b), from, to
}

// escapeEnd returns the offset after the escape sequence that starts at
// text[i] (an ESC).
func escapeEnd(text string, i int) int {
	i++
	if i >= len(text) {
		return i
	}
	switch text[i] {
	case '[': // CSI
		for i++; i < len(text); i++ {
			if c := text[i]; c >= 0x40 && c <= 0x7e {
				return i + 1
			} else if c < 0x20 || c > 0x7e {
				return i // malformed: the sequence ends before it
			}
		}
		return i
	case ']', 'P', 'X', '^', '_': // string sequences
		for j := i + 1; j < len(text); j++ {
			if text[j] == 0x07 {
				return j + 1
			}
			if text[j] == 0x1b && j+1 < len(text) && text[j+1] == '\\' {
				return j + 2
			}
		}
		// Unterminated: only its introducer is taken out, so that it
		// cannot hide the rest of the text from this reading.
		return i + 1
	}
	return i + 1
}
