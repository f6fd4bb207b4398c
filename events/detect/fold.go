package detect

import (
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
func newView(text string) view {
	if isASCII(text) {
		return view{b: []byte(text)}
	}
	v := view{b: make([]byte, 0, len(text)), at: make([]int, 0, len(text)+1)}
	var buf [utf8.UTFMax * 4]byte
	for i := 0; i < len(text); {
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
	return v.at[lo], last + n
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
//   - every Unicode space (no-break, thin, figure, ideographic) as a space
//     and every dash (U+2010–U+2015, minus sign) as a hyphen-minus, the
//     separators a number is written with;
//   - zero-width characters (zero-width space and joiners, word joiner,
//     BOM, soft hyphen) as nothing, so they cannot split a value.
//
// Other characters (letters of any script, for IDN e-mail addresses)
// stay as they are.
func fold(dst []byte, r rune, raw string) []byte {
	switch {
	case r < utf8.RuneSelf:
		return append(dst, byte(r))
	case r == 0x200B || r == 0x200C || r == 0x200D || r == 0x2060 || r == 0xFEFF || r == 0x00AD:
		return dst
	case r >= 0x2010 && r <= 0x2015 || r == 0x2212 || r == 0xFE58 || r == 0xFE63:
		return append(dst, '-')
	case r == 0x00A0 || r >= 0x2000 && r <= 0x200A || r == 0x202F || r == 0x205F || r == 0x3000:
		return append(dst, ' ')
	case r == utf8.RuneError:
		return append(dst, raw...)
	}
	return norm.NFKC.AppendString(dst, raw)
}

// foldBytes is v folded, or v itself when it is ASCII.
func foldBytes(v []byte) []byte {
	if isASCII(string(v)) {
		return v
	}
	return newView(string(v)).b
}
