package detect

import (
	"strings"
	"unicode"
	"unicode/utf8"

	"golang.org/x/text/unicode/norm"
)

// view is text as the detectors read it: each character folded to the
// form a detector knows (fold), with where each of its bytes came from
// in the text, so that what is found is replaced in the text as written.
type view struct {
	b []byte
	// at[i] is the offset in the text of the character view byte i
	// comes from, and at[len(b)] is len(text); nil when b is a copy of
	// an ASCII text.
	at []int
}

// newView folds text for the detectors. Folding is for detection only:
// what a detector finds is replaced over the original characters.
//
// A control character or invalid byte that events.Clean wrote as the
// text \xHH is read as the separator it stood for (a space): a card
// number whose groups a client split with tabs stays a card number after
// an event names it.
func newView(text string) view {
	if isASCII(text) && !strings.Contains(text, `\x`) {
		return view{b: []byte(text)}
	}
	v := view{b: make([]byte, 0, len(text)), at: make([]int, 0, len(text)+1)}
	var buf [utf8.UTFMax * 4]byte
	for i := 0; i < len(text); {
		if cleanedControl(text[i:]) {
			v.at = append(v.at, i)
			v.b = append(v.b, ' ')
			i += 4
			continue
		}
		r, n := utf8.DecodeRuneInString(text[i:])
		f := fold(buf[:0], r, text[i:i+n])
		for range f {
			v.at = append(v.at, i)
		}
		v.b = append(v.b, f...)
		i += n
	}
	v.at = append(v.at, len(text))
	return v
}

// span returns the offsets in the text of view bytes [lo, hi), lo < hi:
// from the first character they come from to the end of the last.
func (v view) span(text string, lo, hi int) (int, int) {
	if v.at == nil {
		return lo, hi
	}
	last := v.at[hi-1]
	_, n := utf8.DecodeRuneInString(text[last:])
	end := last + n
	// The marks on the last character go with it.
	for end < len(text) {
		r, n := utf8.DecodeRuneInString(text[end:])
		if !unicode.Is(unicode.M, r) {
			break
		}
		end += n
	}
	return v.at[lo], end
}

// cleanedControl reports whether s starts with \xHH naming a control
// character or a byte of invalid UTF-8, as events.Clean writes them.
func cleanedControl(s string) bool {
	if len(s) < 4 || s[0] != '\\' || s[1] != 'x' {
		return false
	}
	hi, lo := hexValue(s[2]), hexValue(s[3])
	if hi < 0 || lo < 0 {
		return false
	}
	c := hi<<4 | lo
	return c < 0x20 || c == 0x7f || c >= 0x80
}

func hexValue(c byte) int {
	switch {
	case c >= '0' && c <= '9':
		return int(c - '0')
	case c >= 'a' && c <= 'f':
		return int(c-'a') + 10
	case c >= 'A' && c <= 'F':
		return int(c-'A') + 10
	}
	return -1
}

func isASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= utf8.RuneSelf {
			return false
		}
	}
	return true
}

// fold appends to dst the form of rune r (written as raw in the text)
// the detectors read:
//   - compatibility forms by NFKC: full-width digits, letters, @ and dots
//     (４１１１, ｊａｎｅ＠ｅｘａｍｐｌｅ．ｃｏｍ), mathematical digits,
//     superscripts;
//   - every Unicode space (no-break, thin, figure, ideographic, line and
//     paragraph separators) as a space and every dash (U+2010–U+2015,
//     minus sign) as a hyphen-minus, the separators a number is written
//     with; every full stop (ideographic 。, halfwidth ｡) as a dot;
//   - characters that render as nothing (Default_Ignorable_Code_Point and
//     format characters: zero-width space and joiners, word joiner,
//     invisible operators U+2061–U+2064, BOM, soft hyphen, U+034F,
//     U+180E, variation selectors) as nothing, so they cannot split a
//     value;
//   - combining marks (category M: an accent stacked on a digit, 4́1́1́1́;
//     an enclosing keycap) as nothing: they change how a character
//     renders, not which it is, and an address keeps its letters;
//   - a decimal digit of any script (Arabic-Indic ٤, Devanagari ४, …) as
//     its ASCII digit, and the CJK numerals 〇零一二三四五六七八九 (and
//     the financial 壹贰叁肆伍陆柒捌玖) as the digits they name: a number
//     written one numeral a digit (四三九八…) reads as one;
//   - punctuation and symbols beyond ASCII whose NFKC form is punctuation
//     and symbols beyond ASCII too (middle dots · ・, bullets, currency
//     and other signs, emoji) as a space: they separate digit groups.
//
// Other characters (letters of any script, for IDN e-mail addresses)
// stay as they are.
func fold(dst []byte, r rune, raw string) []byte {
	switch {
	case r < utf8.RuneSelf:
		return append(dst, byte(r))
	case r == utf8.RuneError:
		return append(dst, raw...)
	case r >= 0x2010 && r <= 0x2015 || r == 0x2212 || r == 0xFE58 || r == 0xFE63:
		return append(dst, '-')
	case unicode.IsSpace(r):
		return append(dst, ' ')
	case r == 0x3002 || r == 0xFF61 || r == 0xFE52 || r == 0xFF0E || r == 0x2024:
		return append(dst, '.') // ideographic, halfwidth, small, full-width full stops; one dot leader
	case ignorable(r) || unicode.Is(unicode.M, r):
		return dst
	case unicode.Is(unicode.Nd, r):
		return append(dst, byte('0'+digitValue(r)))
	}
	if d, ok := cjkDigits[r]; ok {
		return append(dst, d)
	}
	f := norm.NFKC.AppendString(dst, raw)
	if (unicode.IsPunct(r) || unicode.IsSymbol(r)) && punctOnly(f[len(dst):]) {
		// Punctuation and symbols of any script (· ・ ‧ € ★) separate
		// the digit groups of a number as a space would.
		return append(dst, ' ')
	}
	return f
}

// punctOnly reports whether f, a character's NFKC form, is punctuation
// or symbols beyond ASCII only (not ＠ or ，, whose forms are ASCII).
func punctOnly(f []byte) bool {
	for _, r := range string(f) {
		if r < utf8.RuneSelf || !unicode.IsPunct(r) && !unicode.IsSymbol(r) {
			return false
		}
	}
	return len(f) > 0
}

// ignorable reports whether r is a character that renders as nothing,
// or changes only how its neighbours render: Unicode's
// Default_Ignorable_Code_Point (format characters, variation selectors,
// fillers, U+034F, U+180B–U+180F, tags) and every other format
// character (category Cf: U+2061–U+2064, bidirectional marks).
func ignorable(r rune) bool {
	return unicode.Is(unicode.Cf, r) || unicode.Is(unicode.Other_Default_Ignorable_Code_Point, r) || unicode.Is(unicode.Variation_Selector, r) ||
		r == 0x115F || r == 0x1160 || r == 0x3164 || r == 0xFFA0 // Hangul fillers (Lo)
}

// digitValue is the value of r, a decimal digit (category Nd) of any
// script: Unicode encodes each script's digits 0 to 9 as a contiguous
// run, and every range of unicode.Nd is whole runs (TestDigitRuns).
func digitValue(r rune) int {
	for _, g := range unicode.Nd.R16 {
		if rune(g.Lo) <= r && r <= rune(g.Hi) {
			return int(r-rune(g.Lo)) % 10
		}
	}
	for _, g := range unicode.Nd.R32 {
		if rune(g.Lo) <= r && r <= rune(g.Hi) {
			return int(r-rune(g.Lo)) % 10
		}
	}
	return 0
}

// foldBytes is v folded, or v itself when it is ASCII.
func foldBytes(v []byte) []byte {
	if isASCII(string(v)) {
		return v
	}
	return newView(string(v)).b
}

// cjkDigits are the CJK numerals that name one digit each.
var cjkDigits = map[rune]byte{
	'〇': '0', '零': '0', '一': '1', '二': '2', '三': '3', '四': '4', '五': '5', '六': '6', '七': '7', '八': '8', '九': '9',
	'壹': '1', '贰': '2', '貳': '2', '叁': '3', '參': '3', '肆': '4', '伍': '5', '陆': '6', '陸': '6', '柒': '7', '捌': '8', '玖': '9',
}
