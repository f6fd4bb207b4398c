package detect

import (
	"crypto/rand"
	"encoding/hex"
	"strconv"
	"testing"
)

// TestRandomHexNeverMatches: ids made by RandomHex, with a sequence
// number after them as event ids have, hold nothing a detector finds; and
// plain random hex of the same length does, now and then (the check can
// fail).
func TestRandomHexNeverMatches(t *testing.T) {
	// Plain random hex of that length does hold a card number now and
	// then (about 1 in 5,000 with a sequence number after it): without
	// that, the test would prove nothing.
	found := false
	for i := 0; i < 1_000_000 && !found; i++ {
		var b [8]byte
		rand.Read(b[:])
		if _, c := Scrub(hex.EncodeToString(b[:]) + ".3"); c != nil {
			found = true
		}
	}
	if !found {
		t.Fatal("no random 16-hex id holds anything a detector finds: the test proves nothing")
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
