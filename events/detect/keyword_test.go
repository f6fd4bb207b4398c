package detect

import (
	"math/rand/v2"
	"testing"
)

// TestKeywordGatesKeyedSSNs: where keyword says no, ssnKeyed finds
// nothing, over random texts made of the keywords, digits, separators,
// letters and base64 characters glued in every order.
func TestKeywordGatesKeyedSSNs(t *testing.T) {
	r := rand.New(rand.NewPCG(29, 31))
	pieces := []string{"ssn", "SSN", "Ssn", "social", "Social security number", "social_security_no", "no", "is", "number",
		"123-45-6789", "123456789", "078 05 1120", "12", "3", " ", ":", "-", "_", "#", "x", "Q", "9", "+", "/", "=", "\n", "é", "\x00"}
	gated, matched := 0, 0
	for range 100000 {
		var b []byte
		for range 1 + r.IntN(10) {
			b = append(b, pieces[r.IntN(len(pieces))]...)
		}
		m := ssnKeyed.Match(b)
		if m {
			matched++
		}
		if !keyword(b) {
			gated++
			if m {
				t.Fatalf("keyword(%q) = false; ssnKeyed matches it", b)
			}
		}
	}
	if gated < 1000 || matched < 1000 {
		t.Errorf("%d texts gated, %d matched: the generator no longer tests the gate", gated, matched)
	}
}
