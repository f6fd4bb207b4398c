package detect

// Span is a value the built-in detectors find in a text: its bytes
// [Lo, Hi), the detector, and the value as a reader decodes it (Value,
// for its search digest; the text's own bytes when found as written).
type Span struct {
	Lo, Hi   int
	Detector string
	Value    string
	// Also are the other values found over these bytes (overlapping
	// readings joined into one span: digits of escapes read as a card
	// number, the e-mail address the escapes spell), each with its
	// detector and Value, Lo and Hi unset: a caller records each one's
	// search digest, as ScrubEach reports them.
	Also []Span
}

// Spans returns the values ScrubEach would replace in text, in order and
// apart, as offsets: for a caller that judges one reading of a text (a
// terminal's rendering, a shell word resolved) and replaces what is
// found over another (the bytes as they passed, the word as typed).
func Spans(text string) []Span {
	if !MayHold(text) {
		return nil
	}
	ms, _ := scan(text, 0, chainsAll)
	out := make([]Span, 0, len(ms))
	for _, m := range ms {
		v := m.value
		if v == "" {
			v = text[m.lo:m.hi]
		}
		out = append(out, Span{Lo: m.lo, Hi: m.hi, Detector: m.detector, Value: v, Also: m.also})
	}
	return out
}
