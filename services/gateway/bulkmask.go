package gateway

import (
	"unicode/utf8"

	"github.com/auditledger/auditledger/events/detect"
)

// BulkText is the bytes of a bulk piece (docs/FORMAT.md §1.7), opened,
// as a session.output chunk's data would have recorded them: what the
// detectors find in them, read as the Stream reads a chunk (as the
// bytes are and as a terminal renders them, judgeRendered), replaced by
// its placeholder over the raw span it came from. before and after are
// the stream's bytes around the piece (its neighbours; up to MaxHeld of
// each is read), judged with it so that a value across the piece's edge
// is found; only what lies inside the piece is replaced, the part of a
// value inside it by the value's placeholder. stdin: the stream is what
// a person types. rows and cols: the terminal's size (0: not known).
//
// text is false when the piece is not text the detectors read (binary
// bytes, or a rendering the terminal model cannot follow): a chunk of
// such bytes records its digest only, and nothing of them may be shown.
func BulkText(before, piece, after []byte, stdin bool, rows, cols int) (data []byte, text bool) {
	before = before[len(before)-min(len(before), MaxHeld):]
	for len(before) > 0 && !utf8.RuneStart(before[0]) {
		before = before[1:] // a character cut at the window's start
	}
	after = after[:min(len(after), MaxHeld)]
	after = after[:validEnd(after)]
	// With both neighbours, else with the one that is text too (a
	// neighbour may be what the model cannot follow), else alone.
	var window []byte
	var spans []detect.Span
	var lo int
	ok := false
	for _, n := range [][2][]byte{{before, after}, {before, nil}, {nil, after}, {nil, nil}} {
		window = append(append(append(make([]byte, 0, len(n[0])+len(piece)+len(n[1])), n[0]...), piece...), n[1]...)
		lo = len(n[0])
		if spans, ok = judgeWhole(window, stdin, rows, cols); ok {
			break
		}
	}
	if !ok {
		return nil, false
	}
	hi := lo + len(piece)
	data = make([]byte, 0, len(piece))
	last := lo
	for _, sp := range spans {
		if sp.Hi <= lo || sp.Lo >= hi {
			continue
		}
		data = append(data, window[last:max(sp.Lo, lo)]...)
		data = append(data, detect.Placeholder(sp.Detector)...)
		last = min(sp.Hi, hi)
	}
	return append(data, window[last:hi]...), true
}

// judgeWhole is the values found in raw, rendered whole, as the Stream
// judges a chunk; ok is false when raw is not text the detectors read.
func judgeWhole(raw []byte, stdin bool, rows, cols int) ([]detect.Span, bool) {
	sz := termSize{}
	if rows > 0 && cols > 0 {
		sz = termSize{rows: clampSize(rows), cols: clampSize(cols)}
	}
	r := renderSized(raw, true, stdin, false, sz)
	if !r.text {
		return nil, false
	}
	return judgeRendered(raw[:r.done], r), true
}

// validEnd is the length of b without a UTF-8 character cut at its end.
func validEnd(b []byte) int {
	for k := 1; k <= 3 && k <= len(b); k++ {
		i := len(b) - k
		if utf8.RuneStart(b[i]) {
			if !utf8.FullRune(b[i:]) {
				return i
			}
			break
		}
	}
	return len(b)
}
