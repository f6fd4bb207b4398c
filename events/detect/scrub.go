package detect

import (
	"bytes"
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
var Builtin = []string{"email", "credit_card", "iban", "phone", "us_ssn", "secret"}

// Placeholder is what a value found by detector is replaced with in
// recorded text. It contains no quote or backslash, so it can stand
// inside any SQL or JSON string literal, and no detector matches it.
func Placeholder(detector string) string { return "[REDACTED:" + detector + "]" }

// Find returns the first built-in detector that matches v as a whole, or
// "" when none does. v is read folded (see fold).
func Find(v []byte) string {
	v = foldBytes(v)
	for _, d := range Builtin {
		if detectors[d](v) {
			return d
		}
	}
	return ""
}

// find is Find on a folded value.
func find(v []byte) string {
	for _, d := range Builtin {
		if detectors[d](v) {
			return d
		}
	}
	return ""
}

// emailIn finds e-mail addresses inside longer text, where separators
// the token pass does not know (&, /, :) join them to their neighbours.
var emailIn = regexp.MustCompile(emailPattern)

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
	spans, all := scan(text, 0)
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
const maxPercentRounds = 4

// scan returns the values the detectors find in text, as offsets into
// it, in order and apart, and the detector of each value found (all, in
// the order found, as scrubber.all). Text holding percent-encoding
// (%40, %2C) or string escapes (\u0040, \x40) is also read decoded, as
// whatever reads it next may decode it (jane%40example.com,
// 4111%201111%20…, jane\u0040example.com), up to maxPercentRounds times
// (jane%2540…): what either reading finds is replaced, over the
// characters as written.
func scan(text string, round int) ([]match, []string) {
	v := newView(text)
	s := scrubber{b: v.b}
	s.run()
	spans := make([]match, 0, len(s.found))
	for _, f := range s.found {
		lo, hi := v.span(text, f.lo, f.hi)
		spans = append(spans, match{lo: lo, hi: hi, detector: f.detector, value: f.value})
	}
	all := s.all
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
	sub, _ := scan(d, round+1)
	for _, f := range sub {
		m := match{lo: from[f.lo], hi: to[f.hi-1], detector: f.detector, value: f.value}
		if m.value == "" {
			m.value = d[f.lo:f.hi]
		}
		merged := false
		for i := range spans {
			if spans[i].lo < m.hi && m.lo < spans[i].hi {
				spans[i].lo, spans[i].hi = min(spans[i].lo, m.lo), max(spans[i].hi, m.hi)
				merged = true
			}
		}
		if !merged {
			all = append(all, m.detector)
		}
		spans = append(spans, m)
	}
	return mergeSpans(spans), all
}

// mergeSpans sorts spans and joins those that overlap, each keeping the
// detector of the first.
func mergeSpans(spans []match) []match {
	slices.SortFunc(spans, func(a, b match) int { return a.lo - b.lo })
	out := spans[:0]
	for _, m := range spans {
		if n := len(out); n > 0 && m.lo < out[n-1].hi {
			out[n-1].hi = max(out[n-1].hi, m.hi)
			continue
		}
		out = append(out, m)
	}
	return out
}

// hasPercent reports whether text holds an escape percentDecode decodes.
func hasPercent(text string) bool {
	// Most text holds neither byte: two vectorised searches find that
	// sooner than a loop over every byte.
	if strings.IndexByte(text, '%') < 0 && strings.IndexByte(text, '\\') < 0 && strings.IndexByte(text, '&') < 0 {
		return false
	}
	for i := 0; i < len(text); i++ {
		if c := text[i]; c == '%' || c == '\\' || c == '&' {
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
	switch {
	case len(text) >= 3 && text[0] == '%':
		if v, ok := hex(text[1:3]); ok {
			return []byte{byte(v)}, 3
		}
	case len(text) >= 6 && text[0] == '\\' && text[1] == 'u':
		if v, ok := hex(text[2:6]); ok && (v < 0xd800 || v > 0xdfff) {
			return utf8.AppendRune(nil, rune(v)), 6
		}
	case len(text) >= 4 && text[0] == '\\' && text[1] == 'x':
		if v, ok := hex(text[2:4]); ok {
			return []byte{byte(v)}, 4
		}
	case len(text) >= 2 && text[0] == '\\' && text[1] > ' ' && text[1] < 0x7f && !isAlnum(text[1]):
		// A quoted-pair (RFC 9110 quoted-string, a shell word): \@ is @.
		return []byte{text[1]}, 2
	case len(text) >= 4 && text[0] == '&':
		return htmlRef(text)
	}
	return nil, 0
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
	for i := 0; i < len(text); {
		if c := text[i]; c == '%' || c == '\\' || c == '&' {
			if d, n := escapeAt(text[i:]); n > 0 {
				for _, c := range d {
					b = append(b, c)
					from, to = append(from, i), append(to, i+n)
				}
				i += n
				continue
			}
		}
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
	b     []byte
	depth int      // how many times b was decoded from hex or base64
	found []match  // by offset, apart
	all   []string // the detector of every value found, in order found
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
		for _, m := range emailIn.FindAllIndex(b, -1) {
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
	for _, m := range ibanCandidates(b) {
		if m[0] > 0 && isAlnum(b[m[0]-1]) {
			continue // inside a longer word: a digest, an identifier
		}
		lower := !isUpper(b[m[0]])
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
		for _, t := range encodedTokens(b) {
			if !s.free(t.lo, t.hi) {
				continue
			}
			sv := newView(t.text)
			sub := scrubber{b: sv.b, depth: s.depth + 1}
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
}

// maxEncodedDepth bounds how many times a value's text is decoded from
// hex or base64 inside text (base64 of hex of a card number is read;
// deeper is not).
const maxEncodedDepth = 2

// maxEncodedToken is the longest token encodedTokens decodes: a longer
// one (a file, a session's output chunk) is data, not a value.
const maxEncodedToken = 4096

// encoded is a token of text b[lo:hi] written in hex or base64, and the
// text it decodes to.
type encoded struct {
	lo, hi int
	text   string
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
		for end < len(b) && end-j < 2 && b[end] == '=' {
			end++
		}
		if e, ok := decodeToken(b, i, j, end); ok {
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
	if d, ok := hexText(tok); ok && MayHold(d) {
		return encoded{i, j, d}, true
	}
	if d, ok := base64Text(tok); ok && MayHold(d) {
		return encoded{i, end, d}, true
	}
	// Base64 behind one to three characters glued to it (a sigil, a
	// type letter: xNDExMTEx…): the token is replaced whole.
	for k := 1; k <= 3 && len(tok)-k >= 16; k++ {
		if d, ok := base64Text(tok[k:]); ok && MayHold(d) {
			return encoded{i, end, d}, true
		}
	}
	return encoded{}, false
}

// encodedWhole is the text v decodes to when v is one token of hex or
// base64 (encodedTokens) that may hold a value.
func encodedWhole(v []byte) (string, bool) {
	j := len(v)
	for j > 0 && len(v)-j < 2 && v[j-1] == '=' {
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

func isBase64Char(c byte) bool {
	return isAlnum(c) || c == '+' || c == '/' || c == '-' || c == '_'
}

// hexText decodes tok, hex digits of one case, when it is printable text.
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
	lower, upper := false, false
	for k := 0; k < len(tok); k += 2 {
		hi, lo := hexValue(tok[k]), hexValue(tok[k+1])
		if hi < 0 || lo < 0 {
			return "", false
		}
		for _, c := range tok[k : k+2] {
			lower, upper = lower || c >= 'a' && c <= 'f', upper || c >= 'A' && c <= 'F'
		}
		d[k/2] = byte(hi<<4 | lo)
		if k < 8 && !printable(d[:k/2+1]) {
			return "", false // most tokens stop here
		}
	}
	if lower && upper || !printable(d) {
		return "", false
	}
	return string(d), true
}

// base64Text decodes tok, base64 of either alphabet without its padding,
// when it is printable text of 16 characters or more.
func base64Text(tok []byte) (string, bool) {
	if len(tok) < 16 || len(tok)%4 == 1 {
		return "", false
	}
	var buf [128]byte // most tokens stop within it, on the stack
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
		default: // '/' or '_'
			v = 63
		}
		acc, bits = acc<<6|uint32(v), bits+6
		if bits >= 8 {
			bits -= 8
			d = append(d, byte(acc>>bits))
			if k < 8 && !printable(d) && !wideStart(d) {
				return "", false // most tokens stop here
			}
		}
	}
	if !printable(d) {
		// Text in UTF-16LE (PowerShell's -EncodedCommand) is read as
		// the text it is.
		if wideStart(d) && len(d) >= 8 {
			w, _, _ := wideDecode(string(d[:len(d)&^1]))
			if printable([]byte(w)) {
				return w, true
			}
		}
		return "", false
	}
	return string(d), true
}

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
	return len(encodedTokens(unsafeBytes(text))) > 0
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
	tok := -1 // where the run of base64 characters being read starts
	for i := 0; i < len(text); i++ {
		f := plainClass[text[i]]
		if plainLetter(text, i, f) {
			// Most bytes are letters that start no secret prefix here:
			// they only go on the token they are part of.
			if tok < 0 {
				tok = i
			}
			run, dash = 0, false
			for i+1 < len(text) && plainLetter(text, i+1, plainClass[text[i+1]]) {
				i++
			}
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
			if i-tok >= 12 && encodedRun(unsafeBytes(text), tok, i) {
				return true, true
			}
			tok = -1
		}
		switch f & 7 {
		case clOther:
			run, dash = 0, false
		case clAt:
			return true, true
		case clDigit:
			if run++; run >= 13 || run >= 8 && (plus || dash) {
				return true, true
			}
			eight = eight || run >= 8
		case clDash:
			if run > 0 {
				dash = true
			} else if i+2 < len(text) && text[i+1] == '-' && secretAt(text[i:]) {
				return true, true
			}
		case clSep:
		case clPlus:
			plus = true
		case clParen:
			if !plus {
				run, dash = 0, false
			}
		case clSecret:
			run, dash = 0, false
			if i+2 < len(text) && secretNext[text[i]]&secretBit(text[i+1]) != 0 && secretAt(text[i:]) {
				return true, true
			}
		}
	}
	if tok >= 0 && len(text)-tok >= 12 && encodedRun(unsafeBytes(text), tok, len(text)) {
		return true, true
	}
	return eight && ibanStart(text), true
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
// token encodedTokens returns, or holds one between its slashes.
func encodedRun(b []byte, i, j int) bool {
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
	for i := 0; i < len(text); i++ {
		switch holdClass[text[i]] {
		case clOther:
			run, dash = 0, false
		case clAt:
			return true
		case clDigit:
			if run++; run >= 13 || run >= 8 && (plus || dash) {
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
			if !plus {
				run, dash = 0, false
			}
		case clSecret:
			run, dash = 0, false
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
	for i := 0; i+3 <= len(text); i++ {
		if secretAt(text[i:]) {
			return true
		}
	}
	return false
}

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

// ibanCandidates is ibanIn's matches in b, looked for only when b holds
// what every IBAN starts with: two letters and two digits.
func ibanCandidates(b []byte) [][]int {
	for i := 0; i+4 <= len(b); i++ {
		if isLetter(b[i]) && isLetter(b[i+1]) && isDigit(b[i+2]) && isDigit(b[i+3]) {
			c := b[i:]
			ms := matchesAt(ibanAt, c, ibanWidth, func(j int) bool {
				return j+4 <= len(c) && isLetter(c[j]) && isLetter(c[j+1]) && isDigit(c[j+2]) && isDigit(c[j+3])
			})
			for _, m := range ms {
				m[0], m[1] = m[0]+i, m[1]+i
			}
			return ms
		}
	}
	return nil
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

func isLetter(c byte) bool { return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' }
func isAlnum(c byte) bool  { return isDigit(c) || isLetter(c) }

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
	try := func(first int, ps []string, sep string) {
		var sb strings.Builder
		at := make([][2]int, len(ps))
		for i, p := range ps {
			if i > 0 {
				sb.WriteString(sep)
			}
			at[i][0] = sb.Len()
			sb.WriteString(p)
			at[i][1] = sb.Len()
		}
		for _, sp := range Spans(sb.String()) {
			var idx []int
			for i, a := range at {
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
				out = append(out, Joined{Detector: sp.Detector, Value: sp.Value, Parts: idx})
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
