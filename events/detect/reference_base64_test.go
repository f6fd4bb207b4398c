package detect

import (
	"bytes"
	"unicode"
	"unicode/utf8"
)

// The reference: encodedTokens, decodeToken and the readings under them
// (base64Text, base32Text, hexText, decodedText, hasRun) exactly as they
// were before base64Cannot and the run machine (runNext) read bulk
// base64, rune by rune and every alignment decoded. They are what the
// detectors found; TestBase64ReadingAgrees and FuzzBase64Reading hold
// the code as it is to them.

func referenceEncodedTokens(b []byte) []encoded {
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
		} else if e, ok := referenceDecodeToken(b, i, j, end); ok {
			out = append(out, e)
		} else if bytes.IndexByte(b[i:j], '/') >= 0 {
			// Slashes separate a path's segments; URL-safe base64 has
			// none.
			for k := i; k < j; {
				l := k
				for l < j && b[l] != '/' {
					l++
				}
				if e, ok := referenceDecodeToken(b, k, l, l); ok {
					out = append(out, e)
				}
				k = l + 1
			}
		}
		i = end
	}
	return out
}

func referenceDecodeToken(b []byte, i, j, end int) (encoded, bool) {
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
	if d, ok := referenceHexText(hexTok); ok {
		if e, ok := judge(d, ok, j); ok {
			return e, true
		}
	}
	if d, ok := referenceBase32Text(tok); ok {
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
	for k := 0; k <= 3 && len(tok)-k >= 16; k++ {
		if d, ok := referenceBase64Text(tok[k:]); ok {
			if e, ok := judge(d, ok, end); ok {
				return e, true
			}
		}
	}
	return encoded{}, false
}

func referenceDecodedText(d []byte) (string, bool) {
	if printable(d) {
		return string(d), true
	}
	if len(d) >= 18 && d[0] == 0x1f && d[1] == 0x8b && d[2] == 8 {
		out, ok := gunzip(bytes.Clone(d)) // a copy: d stays on its caller's stack
		if !ok {
			return unjudgedText, true
		}
		if t, ok := referenceDecodedText(out); ok {
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
	if !referenceHasRun(d) {
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

func referenceHasRun(d []byte) bool {
	run := 0
	for k := 0; k < len(d); {
		c := d[k]
		if c >= utf8.RuneSelf {
			if c < 0xc2 || c > 0xf4 {
				// Not the first byte of any rune (a continuation byte,
				// an overlong or out-of-range lead), as DecodeRune finds
				// at length: half of random bytes, decoded base64 that
				// is no text.
				run, k = 0, k+1
				continue
			}
			r, n := utf8.DecodeRune(d[k:])
			if r == utf8.RuneError && n <= 1 || unicode.IsControl(r) {
				run, k = 0, k+1
				continue
			}
			k += n
		} else {
			k++
			if c < 0x20 && c != '\t' && c != '\n' && c != '\r' || c == 0x7f {
				run = 0
				continue
			}
		}
		if run++; run >= minRun {
			return true
		}
	}
	return false
}

func referenceBase32Text(tok []byte) (string, bool) {
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
	return referenceDecodedText(d)
}

func referenceHexText(tok []byte) (string, bool) {
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
	return referenceDecodedText(d)
}

func referenceBase64Text(tok []byte) (string, bool) {
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
	return referenceDecodedText(d)
}

// referenceHasSecretPrefix is hasSecretPrefix before secretPair:
// secretAt at every character.
func referenceHasSecretPrefix(text string) bool {
	for i := 0; i+3 <= len(text); i++ {
		if secretAt(text[i:]) {
			return true
		}
	}
	return false
}

// referenceIbanCandidates is ibanCandidates as it was, matching ibanAt
// at every place two letters and two digits stand after the first one.
func referenceIbanCandidates(b []byte) [][]int {
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
