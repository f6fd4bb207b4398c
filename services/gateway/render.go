package gateway

import (
	"slices"
	"unicode/utf8"
)

// rendering is a stream's bytes as a terminal shows them: the text the
// detectors judge, with where each of its bytes came from.
type rendering struct {
	// b is the rendered text: escape sequences (CSI, OSC, DCS and the
	// other ESC forms) and control characters other than tab, line feed
	// and carriage return removed, and each backspace or DEL applied as
	// the erasure of the character before it on its line.
	b []byte
	// lo[i] is the raw offset of the first byte of the character
	// rendered byte i belongs to (hiOf gives the byte after its last).
	lo []int32
	// done is how many raw bytes were rendered; the rest (an escape
	// sequence or a UTF-8 character not yet complete) waits for more.
	done int
	// text is false when the bytes are not text the detectors read
	// (see textControl).
	text bool
	// hidden is true when the rendering dropped what may hold a value
	// by itself: an erased character, the text of an OSC, DCS, SOS, PM
	// or APC string, or a control sequence with more than 6 digits in
	// its parameters. Only then do the raw bytes need judging as well.
	hidden bool
}

// hiOf is the raw offset after the last byte of the character rendered
// byte i belongs to.
func (r *rendering) hiOf(raw []byte, i int) int {
	lo := int(r.lo[i])
	if raw[lo] < utf8.RuneSelf {
		return lo + 1
	}
	_, n := utf8.DecodeRune(raw[lo:])
	return lo + n
}

// textControl reports whether a C0 control character may stand in text
// the detectors read: NUL (removed, so that UTF-16 text of ASCII
// characters is read as its characters), BEL, backspace, tab, line feed,
// vertical tab, form feed, carriage return and ESC. Any other C0 control
// marks the bytes as binary.
func textControl(c byte) bool {
	switch c {
	case 0x00, 0x07, 0x08, '\t', '\n', 0x0b, 0x0c, '\r', 0x1b:
		return true
	}
	return false
}

// render renders raw as a terminal shows it. Unless final, an escape
// sequence or a UTF-8 character cut off at the end is left unrendered
// (done < len(raw)); when final, it makes the bytes binary.
func render(raw []byte, final bool) rendering { return renderInto(rendering{}, raw, final) }

// renderInto is render reusing the buffers of scratch (an earlier
// rendering no longer used): a stream renders every chunk it flushes,
// and fresh buffers, five bytes for every byte rendered, cost more than
// the rendering of most chunks.
func renderInto(scratch rendering, raw []byte, final bool) rendering {
	r := rendering{b: scratch.b[:0], lo: scratch.lo[:0], text: true}
	if cap(r.b) < len(raw) {
		r.b = make([]byte, 0, len(raw))
	}
	if cap(r.lo) < len(raw) {
		r.lo = make([]int32, 0, len(raw))
	}
	i := 0
	for i < len(raw) {
		c := raw[i]
		// Runs of printable ASCII and of NUL (shown as nothing) first,
		// in tight loops: most of a chunk is one or the other.
		if c >= 0x20 && c < 0x7f {
			j := i + 1
			for j < len(raw) && raw[j] >= 0x20 && raw[j] < 0x7f {
				j++
			}
			r.addRun(raw[i:j], i)
			i = j
			continue
		}
		if c == 0 {
			for i < len(raw) && raw[i] == 0 {
				i++
			}
			continue
		}
		switch {
		case c == 0x1b:
			n, complete := escapeLen(raw[i:])
			if !complete {
				if final {
					r.text = false
					r.done = len(raw)
					return r
				}
				r.done = i
				return r
			}
			if n > 2 && raw[i+1] != '[' || digitCount(raw[i:i+n]) > 6 {
				r.hidden = true
			}
			i += n
			continue
		case c == 0x08 || c == 0x7f:
			r.erase()
			i++
			continue
		case c < 0x20:
			if !textControl(c) {
				r.text = false
				r.done = len(raw)
				return r
			}
			if c == '\t' || c == '\n' || c == '\r' {
				r.add(c, i)
			}
			i++
			continue
		case c < utf8.RuneSelf:
			r.add(c, i)
			i++
			continue
		}
		if !utf8.FullRune(raw[i:]) {
			if final {
				r.text = false
				r.done = len(raw)
				return r
			}
			r.done = i
			return r
		}
		ru, n := utf8.DecodeRune(raw[i:])
		if ru == utf8.RuneError {
			r.text = false
			r.done = len(raw)
			return r
		}
		if ru >= 0x80 && ru <= 0x9f { // a C1 control: shown as nothing
			i += n
			continue
		}
		for k := range n {
			r.add(raw[i+k], i)
		}
		i += n
	}
	r.done = len(raw)
	return r
}

func (r *rendering) add(c byte, lo int) {
	r.b = append(r.b, c)
	r.lo = append(r.lo, int32(lo))
}

// addRun adds characters of one byte each, the first at raw offset lo.
func (r *rendering) addRun(run []byte, lo int) {
	r.b = append(r.b, run...)
	n := len(r.lo)
	r.lo = slices.Grow(r.lo, len(run))[:n+len(run)]
	for k := range run {
		r.lo[n+k] = int32(lo + k)
	}
}

func digitCount(b []byte) int {
	n := 0
	for _, c := range b {
		if c >= '0' && c <= '9' {
			n++
		}
	}
	return n
}

// erase removes the last character shown, unless it ends a line.
func (r *rendering) erase() {
	n := len(r.b)
	if n == 0 || r.b[n-1] == '\n' || r.b[n-1] == '\r' {
		return
	}
	start := r.lo[n-1]
	for n > 0 && r.lo[n-1] == start {
		n--
	}
	r.b, r.lo = r.b[:n], r.lo[:n]
	r.hidden = true
}

// escapeLen is the length of the escape sequence b starts with (b[0] is
// ESC), and whether it is complete: CSI (ESC [ parameters intermediates
// final), OSC, DCS, SOS, PM and APC (ended by BEL or ESC \), and the
// other forms (ESC, intermediates, a final character).
func escapeLen(b []byte) (int, bool) {
	if len(b) < 2 {
		return 0, false
	}
	switch b[1] {
	case '[':
		for i := 2; i < len(b); i++ {
			if b[i] >= 0x40 && b[i] <= 0x7e {
				return i + 1, true
			}
			if b[i] < 0x20 || b[i] > 0x7e {
				return i, true // malformed: the sequence ends before it
			}
		}
		return 0, false
	case ']', 'P', 'X', '^', '_':
		for i := 2; i < len(b); i++ {
			if b[i] == 0x07 {
				return i + 1, true
			}
			if b[i] == 0x1b {
				if i+1 >= len(b) {
					return 0, false
				}
				if b[i+1] == '\\' {
					return i + 2, true
				}
			}
		}
		return 0, false
	}
	i := 1
	for i < len(b) && b[i] >= 0x20 && b[i] <= 0x2f {
		i++
	}
	if i >= len(b) {
		return 0, false
	}
	return i + 1, true
}
