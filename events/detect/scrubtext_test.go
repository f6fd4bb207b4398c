package detect

import (
	"strings"
	"testing"
)

// ScrubText, which masks responses, finds every value Scrub, which
// cleans recorded text, finds: over the same tricky inputs (values inside
// longer text, full-width digits, Unicode spaces and dashes, invisible
// characters, digits of other scripts), a mask that takes whatever a
// detector matches gives Scrub's text and count.
func TestScrubTextFindsWhatScrubFinds(t *testing.T) {
	takeAll := func(v []byte) ([]byte, bool) {
		if d := Find(v); d != "" {
			return []byte(Placeholder(d)), true
		}
		return nil, false
	}
	var cases []struct{ in, want string }
	cases = append(cases, scrubCases...)
	cases = append(cases, valuesInside...)
	cases = append(cases, otherForms...)
	for _, c := range cases {
		got, n := ScrubText(c.in, takeAll)
		want, counts := Scrub(c.in)
		if got != want || n != sum(counts) {
			t.Errorf("ScrubText(%q) = %q, %d; Scrub gives %q, %d", c.in, got, n, want, sum(counts))
		}
		if got != c.want {
			t.Errorf("ScrubText(%q) = %q, want %q", c.in, got, c.want)
		}
	}
}

// A mask that takes only some detectors' values (a policy's rules)
// leaves the others as written, and still finds a value it takes inside
// one it leaves.
func TestScrubTextTakesWhatMaskTakes(t *testing.T) {
	only := func(ds ...string) func(v []byte) ([]byte, bool) {
		return func(v []byte) ([]byte, bool) {
			for _, d := range ds {
				if Detect(d, v) {
					return []byte("<" + d + ">"), true
				}
			}
			return nil, false
		}
	}
	for _, c := range []struct {
		in        string
		detectors []string
		want      string
		n         int
	}{
		{"card ４１１１ １１１１ １１１１ １１１１, mail ｊａｎｅ＠ｅｘａｍｐｌｅ．ｃｏｍ", []string{"credit_card"}, "card <credit_card>, mail ｊａｎｅ＠ｅｘａｍｐｌｅ．ｃｏｍ", 1},
		{"card ４１１１ １１１１ １１１１ １１１１, mail ｊａｎｅ＠ｅｘａｍｐｌｅ．ｃｏｍ", []string{"email"}, "card ４１１１ １１１１ １１１１ １１１１, mail <email>", 1},
		{"a 4111\u20091111\u202f1111\u20071111 b", []string{"email", "credit_card"}, "a <credit_card> b", 1},
		{"x ٤١١١١١١١١١١١١١١١ y", []string{"credit_card"}, "x <credit_card> y", 1},
		{"-----BEGIN RSA PRIVATE KEY-----\njane@example.com\n-----END RSA PRIVATE KEY-----", []string{"email"}, "-----BEGIN RSA PRIVATE KEY-----\n<email>\n-----END RSA PRIVATE KEY-----", 1},
		{"nothing here, order 12345", []string{"credit_card"}, "nothing here, order 12345", 0},
	} {
		got, n := ScrubText(c.in, only(c.detectors...))
		if got != c.want || n != c.n {
			t.Errorf("ScrubText(%q) with %v = %q, %d; want %q, %d", c.in, c.detectors, got, n, c.want, c.n)
		}
	}
	if got, _ := ScrubText("card 4111 1111 1111 1111", only("credit_card")); strings.Contains(got, "4111") {
		t.Errorf("ScrubText left the card: %q", got)
	}
}
