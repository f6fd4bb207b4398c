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
// start. The text may so run up to clipReach bytes past max characters.
func Clip(s string, max int) string {
	if max <= 0 {
		max = 256
	}
	w := events.Clean(s, max+clipAhead)
	if utf8.RuneCountInString(w) <= max {
		return w // not cut
	}
	cut, n := 0, 0
	for cut < len(w) && n < max-1 {
		_, size := utf8.DecodeRuneInString(w[cut:])
		cut += size
		n++
	}
	for _, sp := range detect.Spans(w) {
		if sp.Lo < cut && cut < sp.Hi {
			if sp.Hi-cut <= clipReach {
				cut = sp.Hi
			} else {
				cut = sp.Lo
			}
			break
		}
	}
	return w[:cut] + "…"
}
