package gateway

import (
	"bytes"
	"unicode/utf8"

	"github.com/auditledger/auditledger/events/detect"
)

// BulkText is the bytes of a bulk piece (docs/FORMAT.md §1.7), opened,
// as session.output chunks' data would have recorded them: judged as
// the Stream judges a chunk (judgeRendered: as the bytes are and as a
// terminal renders them), DefaultMaxChunk bytes at a time, each with up
// to MaxHeld bytes before and after it (from before and after at the
// piece's edges: the stream's bytes around it), so that a value across
// two of them is found whole; what the detectors find is replaced by its
// placeholder over the raw span it came from, and never cut: a value
// reaching past a chunk's end is replaced whole with it. stdin: the
// stream is what a person types. rows and cols: the terminal's size (0:
// not known). A run of bytes that are not text the detectors read
// (binary bytes, or a rendering the terminal model cannot follow) is
// replaced by binary once: a chunk of such bytes records its digest only.
func BulkText(before, piece, after []byte, stdin bool, rows, cols int, insert bool, binary []byte) []byte {
	before = before[len(before)-min(len(before), MaxHeld):]
	for len(before) > 0 && !utf8.RuneStart(before[0]) {
		before = before[1:] // a character cut at the context's start
	}
	after = after[:min(len(after), MaxHeld)]
	after = after[:validEnd(after)]
	// The stream around and through the piece, its bytes from lo to hi.
	all := append(append(append(make([]byte, 0, len(before)+len(piece)+len(after)), before...), piece...), after...)
	lo, hi := len(before), len(before)+len(piece)
	out := make([]byte, 0, len(piece))
	wasBinary := false
	for at := lo; at < hi; {
		end := min(at+DefaultMaxChunk, hi)
		for end < hi && !utf8.RuneStart(all[end]) {
			end++ // never inside a character
		}
		from, to := max(at-MaxHeld, 0), min(end+MaxHeld, len(all))
		for from < at && !utf8.RuneStart(all[from]) {
			from++
		}
		to = max(end, from+validEnd(all[from:to]))
		// With the context on both sides, else on the side that is text
		// too (the model may not follow the other), else alone.
		var spans []detect.Span
		ok := false
		for _, w := range [][2]int{{from, to}, {from, end}, {at, to}, {at, end}} {
			if spans, ok = judgeWhole(all[w[0]:w[1]], stdin, rows, cols, insert); ok {
				from = w[0]
				break
			}
		}
		if !ok {
			if !wasBinary {
				out = append(out, binary...)
			}
			wasBinary = true
			at = end
			continue
		}
		wasBinary = false
		last := at
		for _, sp := range spans {
			slo, shi := sp.Lo+from, sp.Hi+from
			if shi <= at || slo >= end {
				continue
			}
			out = append(out, all[last:max(slo, at)]...)
			out = append(out, detect.Placeholder(sp.Detector)...)
			last = min(shi, hi)
		}
		if last > end {
			end = last // the value found reaches past the chunk: replaced whole
		}
		out = append(out, all[last:end]...)
		at = end
	}
	return out
}

// judgeWhole is the values found in raw, rendered whole, as the Stream
// judges a chunk; ok is false when raw is not text the detectors read.
func judgeWhole(raw []byte, stdin bool, rows, cols int, insert bool) ([]detect.Span, bool) {
	sz := termSize{}
	if rows > 0 && cols > 0 {
		sz = termSize{rows: clampSize(rows), cols: clampSize(cols)}
	}
	// Where the piece begins in insert mode (its event says so), or the
	// bytes may switch it (CSI 4 h), the window is judged in both modes:
	// where in it the mode holds is not followed here.
	modes := []bool{false}
	if insert || bytes.Contains(raw, []byte("4h")) {
		modes = append(modes, true)
	}
	var spans []detect.Span
	for _, m := range modes {
		r := renderSized(raw, true, stdin, m, sz)
		if !r.text {
			return nil, false
		}
		spans = append(spans, judgeRendered(raw[:r.done], r)...)
	}
	if len(modes) > 1 {
		spans = mergeSpans(spans)
	}
	return spans, true
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
