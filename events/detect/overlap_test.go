package detect

import (
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"
)

// TestOverlappingValuesAllReported: an e-mail address written in escapes
// is found in the decoded reading, while the escapes' own digits
// (%43%6E…, &#67;&#110;…) can read as a card number as written; the two
// overlap and are replaced as one span, and both values are reported
// (found, Span.Also), so that the address's search digest is recorded.
// Before, only the first was: the address could not be searched for in
// about one percent-encoded address in sixteen.
func TestOverlappingValuesAllReported(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	for range 1500 {
		var b strings.Builder
		b.WriteString("Cn")
		for range 10 {
			b.WriteByte(byte('a' + r.IntN(26)))
		}
		b.WriteString("@Canary-")
		for range 5 {
			b.WriteByte(byte('a' + r.IntN(26)))
		}
		e := b.String() + ".Example.org"
		esc := func(f string) string {
			var o strings.Builder
			for i := 0; i < len(e); i++ {
				fmt.Fprintf(&o, f, e[i])
			}
			return o.String()
		}
		for _, text := range []string{"q=" + esc("%%%02X"), `{"e":"` + esc(`\u%04x`) + `"}`, esc("&#%d;"), esc("&#x%x;")} {
			var vals []string
			out, _ := ScrubEach(text, func(d, v string) { vals = append(vals, d+"="+v) })
			if strings.Contains(out, esc("%%%02X")[6:]) {
				t.Fatalf("%q: part of the address left in %q", text, out)
			}
			found := false
			for _, v := range vals {
				found = found || v == "email="+e
			}
			var spanVals []string
			for _, sp := range Spans(text) {
				spanVals = append(spanVals, sp.Detector+"="+sp.Value)
				for _, a := range sp.Also {
					spanVals = append(spanVals, a.Detector+"="+a.Value)
				}
			}
			if !found || strings.Join(vals, ",") != strings.Join(spanVals, ",") {
				t.Fatalf("%q: found %v, spans %v; want the address %s among both", text, vals, spanVals, e)
			}
		}
	}
}
