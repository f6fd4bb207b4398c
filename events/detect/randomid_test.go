package detect

import (
	"strconv"
	"testing"
)

// TestRandomHexNeverMatches: ids made by RandomHex, with a sequence
// number after them as event ids have, hold nothing a detector finds; and
// plain random hex of the same length does, now and then (the check can
// fail).
func TestRandomHexNeverMatches(t *testing.T) {
	if _, c := Scrub("c317605372397913.3"); c == nil {
		t.Fatal("the id the writer once refused holds nothing a detector finds: the test proves nothing")
	}
	for i := range 20000 {
		id := RandomHex(8)
		if len(id) != 16 {
			t.Fatalf("RandomHex(8) = %q", id)
		}
		if _, c := Scrub(id + "." + strconv.Itoa(i%500+1)); c != nil {
			t.Fatalf("RandomHex(8) = %q: %v", id, c)
		}
	}
}
