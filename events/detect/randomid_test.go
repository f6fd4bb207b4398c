package detect

import (
	"crypto/rand"
	"encoding/hex"
	"strconv"
	"strings"
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
		for _, seq := range []int{1, 7, 42, 500, 65536, i + 1} {
			if MayHold(id + "." + strconv.Itoa(seq)) {
				t.Fatalf("RandomHex(8) = %q: MayHold(%q) — events naming it would be read the slow way", id, id+"."+strconv.Itoa(seq))
			}
		}
	}
}

// TestCleanedControlsAreSeparators: a card number split by tabs, as
// events.Clean writes them (\x09), is found, and replaced over the text
// as written.
func TestCleanedControlsAreSeparators(t *testing.T) {
	for _, in := range []string{`4111\x091111\x091111\x091111`, `db 4111\x0a1111\x0a1111\x0a1111 x`, `4111\x001111\x7f1111\xff1111`} {
		out, c := Scrub(in)
		if c["credit_card"] != 1 || strings.Contains(out, "1111") {
			t.Errorf("Scrub(%q) = %q, %v; want the card replaced", in, out, c)
		}
	}
	if out, c := Scrub(`C:\x41\x42`); c != nil {
		t.Errorf("Scrub of escapes of letters = %q, %v", out, c)
	}
}
