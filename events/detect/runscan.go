package detect

import "bytes"

// Reading decoded bytes for a run of text, one table lookup a byte.
//
// Bulk output written in base64 (a file catted through a gateway, a
// container's stdout) is read as every token's four base64 alignments,
// and almost none of them is text: what decides it is hasRun, a run of
// minRun printable characters. Reading that rune by rune (a branch a
// byte, utf8.DecodeRune for every byte beyond ASCII, which random bytes
// are half of) was two thirds of the detectors' CPU on such output.
// runNext is the same reading as a state machine over byte classes, so
// that an alignment of random bytes is rejected (base64Cannot,
// base64Cannot4) in one pass, one table lookup a byte, before anything
// else reads it.

// Byte classes of the run machine (runClass).
const (
	rcPrint = iota // printable ASCII, tab, line feed, carriage return
	rcBreak        // any other ASCII control, DEL
	rcCont8        // 80–8f, a continuation byte
	rcCont9        // 90–9f
	rcContA        // a0–bf
	rcBad          // c0, c1, f5–ff: no rune starts or goes on with it
	rcC2           // c2: U+0080–U+00BF (U+0080–U+009F are controls)
	rcLead2        // c3–df
	rcE0           // e0: a0–bf next
	rcE1           // e1–ec, ee, ef
	rcED           // ed: 80–9f next (no surrogates)
	rcF0           // f0: 90–bf next
	rcF1           // f1–f3
	rcF4           // f4: 80–8f next
	rcCount
)

// What a state waits for after a rune's first byte (its pending part):
// the state is run*runPending + pending, run the characters read in a
// row before the rune.
const (
	pNone  = iota
	pNeed1 // one more continuation byte
	pC2    // a0–bf: a character; 80–9f: a control
	pE0    // a0–bf, then pNeed1
	pE1    // 80–bf, then pNeed1
	pED    // 80–9f, then pNeed1
	pF0    // 90–bf, then pNeed2
	pF1    // 80–bf, then pNeed2
	pF4    // 80–8f, then pNeed2
	pNeed2 // 80–bf, then pNeed1
	runPending
)

// runFound is the state once minRun characters stood in a row; it stays.
const runFound = minRun * runPending

var runClass = func() (t [256]uint8) {
	for c := range 256 {
		switch {
		case c < 0x80 && (c >= 0x20 && c != 0x7f || c == '\t' || c == '\n' || c == '\r'):
			t[c] = rcPrint
		case c < 0x80:
			t[c] = rcBreak
		case c < 0x90:
			t[c] = rcCont8
		case c < 0xa0:
			t[c] = rcCont9
		case c < 0xc0:
			t[c] = rcContA
		case c == 0xc0 || c == 0xc1 || c >= 0xf5:
			t[c] = rcBad
		case c == 0xc2:
			t[c] = rcC2
		case c < 0xe0:
			t[c] = rcLead2
		case c == 0xe0:
			t[c] = rcE0
		case c == 0xed:
			t[c] = rcED
		case c < 0xf0:
			t[c] = rcE1
		case c == 0xf0:
			t[c] = rcF0
		case c == 0xf4:
			t[c] = rcF4
		default:
			t[c] = rcF1
		}
	}
	return t
}()

// runNext is the run machine: the state after a byte of class c in
// state s is runNext[s<<4|c]. It reads as hasRun did rune by rune: a
// rune that does not decode (utf8.DecodeRune's RuneError of width 1)
// breaks the run and reading goes on at its next byte, which is then a
// continuation byte at a rune's start (it breaks the run too) until the
// byte that did not fit, read afresh; a control beyond ASCII (U+0080–
// U+009F, the only ones unicode.IsControl knows there) breaks it.
var runNext = func() (t [256 * 16]uint8) {
	next := func(run int) uint8 {
		if run+1 >= minRun {
			return runFound
		}
		return uint8((run+1)*runPending + pNone)
	}
	lead := [rcCount]int{rcC2: pC2, rcLead2: pNeed1, rcE0: pE0, rcE1: pE1, rcED: pED, rcF0: pF0, rcF1: pF1, rcF4: pF4}
	fresh := func(run, c int) uint8 {
		switch {
		case c == rcPrint:
			return next(run)
		case lead[c] != pNone:
			return uint8(run*runPending + lead[c])
		}
		return pNone // a break: run 0
	}
	span := [rcCount][2]byte{rcCont8: {0x80, 0x8f}, rcCont9: {0x90, 0x9f}, rcContA: {0xa0, 0xbf}}
	in := func(c int, lo, hi byte) bool { // c, a class of continuation bytes, lies within lo–hi
		return span[c][1] != 0 && span[c][0] >= lo && span[c][1] <= hi
	}
	for s := range 256 {
		for c := range 16 {
			var to uint8
			run, p := s/runPending, s%runPending
			switch {
			case s >= runFound:
				to = runFound
			case c >= rcCount:
				to = pNone // no byte has this class
			case p == pNone:
				to = fresh(run, c)
			case p == pC2 && in(c, 0x80, 0x9f):
				to = pNone // a C1 control, then its second byte at a rune's start
			case p == pNeed1 && in(c, 0x80, 0xbf), p == pC2 && in(c, 0xa0, 0xbf):
				to = next(run)
			case p == pE0 && in(c, 0xa0, 0xbf), p == pE1 && in(c, 0x80, 0xbf), p == pED && in(c, 0x80, 0x9f), p == pNeed2 && in(c, 0x80, 0xbf):
				to = uint8(run*runPending + pNeed1)
			case p == pF0 && in(c, 0x90, 0xbf), p == pF1 && in(c, 0x80, 0xbf), p == pF4 && in(c, 0x80, 0x8f):
				to = uint8(run*runPending + pNeed2)
			default:
				to = fresh(0, c) // the rune did not decode
			}
			t[s<<4|c] = to
		}
	}
	return t
}()

// runScan reads d from state s and returns the state after it, or
// runFound as soon as minRun characters stand in a row.
func runScan(s uint8, d []byte) uint8 {
	for _, c := range d {
		s = runNext[uint(s)<<4|uint(runClass[c])]
		if s == runFound {
			break
		}
	}
	return s
}

// base64Cannot reports that base64Text(tok) is certainly ("", false),
// without decoding tok into memory nor reading it rune by rune: its
// bytes are not printable text (nor short text of fewer than minRun
// characters), do not start as gzip or as UTF-16LE text does, hold
// fewer than a quarter of NULs, and hold no run of minRun printable
// characters. false means base64Text must read it (about one
// alignment in fifty of random bytes).
func base64Cannot(tok []byte) bool {
	if len(tok) < 16 || len(tok)%4 == 1 {
		return true
	}
	var buf [96]byte // decoded a chunk of 128 characters at a time
	var s uint8
	n, nul := 0, 0
	var first []byte
	for k := 0; k < len(tok); {
		d := buf[:0]
		end := min(len(tok), k+128)
		for ; k+4 <= end; k += 4 {
			v := uint32(base64Value[tok[k]])<<18 | uint32(base64Value[tok[k+1]])<<12 | uint32(base64Value[tok[k+2]])<<6 | uint32(base64Value[tok[k+3]])
			d = append(d, byte(v>>16), byte(v>>8), byte(v))
		}
		if k < end { // the last one to three characters
			var acc uint32
			bits := 0
			for ; k < end; k++ {
				acc, bits = acc<<6|uint32(base64Value[tok[k]]), bits+6
				if bits >= 8 {
					bits -= 8
					d = append(d, byte(acc>>bits))
				}
			}
		}
		if first == nil {
			first = d
			if len(d) >= 2 && d[1] == 0 || len(d) >= 3 && d[0] == 0x1f && d[1] == 0x8b && d[2] == 8 {
				return false // UTF-16LE or gzip: read whole
			}
		}
		for _, c := range d {
			if c == 0 {
				nul++
			}
		}
		n += len(d)
		if s = runScan(s, d); s == runFound {
			return false
		}
	}
	if nul*4 >= n {
		return false // UTF-16 or UTF-32: read without its NULs
	}
	// Printable text of 32 bytes or more holds minRun characters in a
	// row (at most three bytes of a character cut at its end): a shorter
	// one may not.
	return n >= 32 || !printable(first[:n])
}

// base64Cannot4 is base64Cannot of tok[k:] for each k from 0 to 3 (true
// where tok[k:] is shorter than 16). A token of a line (bulk base64
// comes in lines of 76) is read at its four alignments side by side:
// each reading waits on the table for every byte, and four of them
// interleaved wait together.
func base64Cannot4(tok []byte) (cannot [4]bool) {
	if len(tok) > 128 {
		for k := range cannot {
			cannot[k] = len(tok)-k < 16 || base64Cannot(tok[k:])
		}
		return cannot
	}
	var buf [4][96]byte
	var d [4][]byte
	m := len(buf[0])
	for k := range d {
		if cannot[k] = len(tok)-k < 16 || (len(tok)-k)%4 == 1; cannot[k] {
			continue // read below to no end, as any bytes
		}
		d[k] = buf[k][:base64DecodeShort(&buf[k], tok[k:])]
		m = min(m, len(d[k]))
	}
	var s0, s1, s2, s3 uint8
	if m > 0 {
		d0, d1, d2, d3 := buf[0][:m], buf[1][:m], buf[2][:m], buf[3][:m]
		d1, d2, d3 = d1[:len(d0)], d2[:len(d0)], d3[:len(d0)]
		for i := range d0 {
			s0 = runNext[uint(s0)<<4|uint(runClass[d0[i]])]
			s1 = runNext[uint(s1)<<4|uint(runClass[d1[i]])]
			s2 = runNext[uint(s2)<<4|uint(runClass[d2[i]])]
			s3 = runNext[uint(s3)<<4|uint(runClass[d3[i]])]
		}
	}
	for k, s := range [4]uint8{s0, s1, s2, s3} {
		if !cannot[k] && len(d[k]) >= m {
			cannot[k] = textCannot(d[k], runScan(s, d[k][m:]))
		}
	}
	return cannot
}

// base64Decode appends tok, base64 of either alphabet without its
// padding, decoded to d, as base64Text decodes it.
func base64Decode(d, tok []byte) []byte {
	k := 0
	for ; k+4 <= len(tok); k += 4 {
		v := uint32(base64Value[tok[k]])<<18 | uint32(base64Value[tok[k+1]])<<12 | uint32(base64Value[tok[k+2]])<<6 | uint32(base64Value[tok[k+3]])
		d = append(d, byte(v>>16), byte(v>>8), byte(v))
	}
	var acc uint32
	bits := 0
	for ; k < len(tok); k++ {
		acc, bits = acc<<6|uint32(base64Value[tok[k]]), bits+6
		if bits >= 8 {
			bits -= 8
			d = append(d, byte(acc>>bits))
		}
	}
	return d
}

// base64DecodeShort decodes tok, at most 128 characters of base64 of
// either alphabet without its padding, into d as base64Decode does and
// returns how many bytes it wrote.
func base64DecodeShort(d *[96]byte, tok []byte) int {
	n := 0
	k := 0
	for ; k+4 <= len(tok) && n+3 <= len(d); k += 4 {
		t := tok[k : k+4 : k+4]
		v := uint32(base64Value[t[0]])<<18 | uint32(base64Value[t[1]])<<12 | uint32(base64Value[t[2]])<<6 | uint32(base64Value[t[3]])
		o := d[n : n+3 : n+3]
		o[0], o[1], o[2] = byte(v>>16), byte(v>>8), byte(v)
		n += 3
	}
	var acc uint32
	bits := 0
	for ; k < len(tok) && n < len(d); k++ {
		acc, bits = acc<<6|uint32(base64Value[tok[k]]), bits+6
		if bits >= 8 {
			bits -= 8
			d[n] = byte(acc >> bits)
			n++
		}
	}
	return n
}

// textCannot is base64Cannot's verdict on the decoded bytes d, read by
// the run machine to state s.
func textCannot(d []byte, s uint8) bool {
	if s == runFound || len(d) >= 2 && d[1] == 0 || len(d) >= 3 && d[0] == 0x1f && d[1] == 0x8b && d[2] == 8 {
		return false
	}
	if n := bytes.Count(d, []byte{0}); n*4 >= len(d) {
		return false
	}
	return len(d) >= 32 || !printable(d)
}
