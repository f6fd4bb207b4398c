package gateway

import (
	"unicode/utf8"

	"github.com/auditledger/auditledger/events"
	"github.com/auditledger/auditledger/events/detect"
)

// clipAhead is how many characters past the cut Clip reads to find a
// value the cut would fall inside; clipReach, how far past the cut a
// value may end for the cut to move to its end (a card number, an
// address, an IBAN) rather than to its start.
const (
	clipAhead = 4096
	clipReach = 256
)

// Clip is events.Clean(s, max) for a text a gateway records, cut where
// no value falls across the cut: a cut inside a value the detectors find
// in the text around it would record the value's first part, which no
// detector finds by itself (15 digits of a card number, whose 16th the
// Luhn check gives back; an address's local part). The cut moves to the
// value's end when it ends within clipReach bytes, so that the recording
// rule replaces it whole and records its search digest, else to its
// start.
//
// What Clip returns fits in max characters as the recording rule leaves
// it (each value replaced by its placeholder, which may be longer than
// the value): a field the events' validation bounds to max is never
// refused for its length, which would lose the record (an authn.failed
// naming a long database). When no cut does, the text is returned with
// its values already replaced and cut to max (their digests are lost,
// never the record).
func Clip(s string, max int) string {
	if max <= 0 {
		max = 256
	}
	w := events.Clean(s, max+clipAhead)
	if utf8.RuneCountInString(w) <= max && fits(w, max) {
		return w // not cut
	}
	spans := detect.Spans(w)
	for limit, try := max-1, 0; limit > 0 && try < 8; try++ {
		cut, n := 0, 0
		for cut < len(w) && n < limit {
			_, size := utf8.DecodeRuneInString(w[cut:])
			cut += size
			n++
		}
		for _, sp := range spans {
			if sp.Lo < cut && cut < sp.Hi {
				if sp.Hi-cut <= clipReach {
					cut = sp.Hi
				} else {
					cut = sp.Lo
				}
				break
			}
		}
		out := w[:cut] + "…"
		if fits(out, max) {
			return out
		}
		// The placeholders made it longer than max: cut that much sooner.
		scrubbed, _ := detect.Scrub(out)
		limit -= utf8.RuneCountInString(scrubbed) - max
	}
	// A cut can make a value of its own (an address's domain cut to the
	// length of a top-level domain): replaced, and cut again.
	out := w
	for range 3 {
		scrubbed, _ := detect.Scrub(out)
		if out = events.Clean(scrubbed, max); fits(out, max) {
			return out
		}
	}
	if sp := detect.Spans(out); len(sp) > 0 {
		return out[:sp[0].Lo] + "…"
	}
	return "…"
}

// fits reports whether s, its values replaced by their placeholders, is
// at most max characters.
func fits(s string, max int) bool {
	if !detect.MayHold(s) {
		return utf8.RuneCountInString(s) <= max
	}
	scrubbed, _ := detect.Scrub(s)
	return utf8.RuneCountInString(scrubbed) <= max
}
