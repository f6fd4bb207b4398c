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
// as many bytes before and after it as hold MaxHeld bytes of text as a
// terminal renders it (from before and after at the piece's edges: the
// stream's bytes around it), so that a value across two of them is
// found whole, whatever renders as nothing between its parts (NULs,
// escape sequences, characters overwritten) — the tail a Stream holds
// back is counted so too; what the detectors find is replaced by its
// placeholder over the raw span it came from, and never cut: a value
// reaching past a chunk's end is replaced whole with it. stdin: the
// stream is what a person types. rows and cols: the terminal's size (0:
// not known). A run of bytes that are not text the detectors read
// (binary bytes, or a rendering the terminal model cannot follow) is
// replaced by binary once: a chunk of such bytes records its digest only,
// and so is a chunk whose context does not hold MaxHeld rendered bytes
// within BulkContext bytes where more bytes lie beyond them (a Stream's
// buffer that grew so records its bytes as binary).
func BulkText(before, piece, after []byte, stdin bool, rows, cols int, insert bool, binary []byte) []byte {
	before = before[len(before)-min(len(before), BulkContext):]
	for len(before) > 0 && !utf8.RuneStart(before[0]) {
		before = before[1:] // a character cut at the context's start
	}
	after = after[:min(len(after), BulkContext)]
	after = after[:validEnd(after)]
	sz := termSize{}
	if rows > 0 && cols > 0 {
		sz = termSize{rows: clampSize(rows), cols: clampSize(cols)}
	}
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
		from, okFrom := contextFrom(all, at, stdin, sz)
		to, okTo := contextTo(all, end, stdin, sz)
		// With the context on both sides, else on the side that is text
		// too (the model may not follow the other), else alone.
		var spans []detect.Span
		ok := false
		for _, w := range [][2]int{{from, to}, {from, end}, {at, to}, {at, end}} {
			if !okFrom || !okTo {
				break // text a Stream would have recorded as binary
			}
			if spans, ok = judgeWhole(all[w[0]:w[1]], stdin, sz, insert); ok {
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

// BulkContext is the most bytes BulkText reads on either side of a
// chunk for the MaxHeld rendered bytes of its context: as many as a
// Stream's buffer grows to while the tail it holds back is not pushed
// out (MaxHeldRaw chunks).
const BulkContext = MaxHeldRaw * DefaultMaxChunk

// contextFrom is where the context before all[at:] starts: the nearest
// character start from which the bytes up to at render as at least
// MaxHeld bytes, or all's start when they render as fewer. ok is false
// when BulkContext bytes before at render as fewer than MaxHeld bytes
// and more bytes precede them: a value's first part may be there, its
// rest after a run of bytes that render as nothing.
func contextFrom(all []byte, at int, stdin bool, sz termSize) (int, bool) {
	for n := MaxHeld; ; n += n / 4 {
		from := max(at-min(n, BulkContext), 0)
		for from < at && !utf8.RuneStart(all[from]) {
			from++
		}
		shown, known := renderedLen(all[from:at], stdin, sz)
		switch {
		case !known || shown >= MaxHeld || from == 0:
			return from, true
		case n >= BulkContext:
			return from, false
		}
	}
}

// contextTo is contextFrom after all[:end]: where the context after it
// ends.
func contextTo(all []byte, end int, stdin bool, sz termSize) (int, bool) {
	for n := MaxHeld; ; n += n / 4 {
		to := min(end+min(n, BulkContext), len(all))
		to = end + validEnd(all[end:to])
		shown, known := renderedLen(all[end:to], stdin, sz)
		switch {
		case !known || shown >= MaxHeld || to == len(all):
			return to, true
		case n >= BulkContext:
			return to, false
		}
	}
}

// renderedLen is how many bytes raw renders as (known false when it is
// not text the model follows: the window's judgement then says).
func renderedLen(raw []byte, stdin bool, sz termSize) (n int, known bool) {
	if n, ok := shownInPlace(raw); ok {
		return n, true
	}
	r := renderSized(raw, false, stdin, false, sz)
	return len(r.b), r.text
}

// judgeWhole is the values found in raw, rendered whole, as the Stream
// judges a chunk; ok is false when raw is not text the detectors read.
func judgeWhole(raw []byte, stdin bool, sz termSize, insert bool) ([]detect.Span, bool) {
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

// shownInPlace is how many bytes raw renders as when it is plain text
// (plainText) and colours (SGR, CSI … m), which show nothing and move
// no cursor — a build log's bytes — without rendering it; ok is false
// for anything else.
func shownInPlace(raw []byte) (n int, ok bool) {
	for i := 0; i < len(raw); i++ {
		c := raw[i]
		switch {
		case c >= 0x20 && c < 0x7f || c == '\n' || c == '\t':
			n++
		case c == 0x1b && i+1 < len(raw) && raw[i+1] == '[':
			j := i + 2
			for j < len(raw) && (raw[j] >= '0' && raw[j] <= '9' || raw[j] == ';') {
				j++
			}
			if j >= len(raw) || raw[j] != 'm' {
				return 0, false
			}
			i = j
		default:
			return 0, false
		}
	}
	return n, true
}
