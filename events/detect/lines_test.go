package detect

import (
	"fmt"
	"strings"
	"testing"
)

// TestNumbersOneALine: numbers of one to three digits one a line (seq,
// a column of counts) are no card number, whatever windows of their
// digits pass Luhn — `seq 1 2000` read as 199 of them, and a terminal's
// output of it was recorded as placeholders — while a card number
// written over lines, in the groups cards are written in, is still
// found. (Numbers of four digits or more one a line stay ambiguous: four
// of them in a row are written as a card number is.)
func TestNumbersOneALine(t *testing.T) {
	for _, eol := range []string{"\n", "\r\n"} {
		var b strings.Builder
		for i := 1; i <= 2000; i++ {
			fmt.Fprintf(&b, "%d%s", i, eol)
		}
		if out, counts := Scrub(b.String()); counts != nil {
			n := strings.Count(out, "[REDACTED:")
			t.Errorf("seq 1 2000 with %q line ends: %d values found (%v)", eol, n, counts)
		}
		for _, card := range []string{
			"4111" + eol + "1111" + eol + "1111" + eol + "1111",
			"3782" + eol + "822463" + eol + "10005",
			"card:" + eol + "4111 1111" + eol + "1111 1111" + eol,
		} {
			if out, _ := Scrub(card); strings.ContainsAny(out, "0123456789") {
				t.Errorf("%q: a card number over lines not found: %q", card, out)
			}
		}
	}
}
