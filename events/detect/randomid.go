package detect

import (
	"crypto/rand"
	"encoding/hex"
)

// RandomHex returns n random bytes in lower-case hex in which no built-in
// detector finds anything — alone, or followed by "." and a sequence
// number, as gateways name their events. Producers name events and
// sessions with it so that an id never makes the writer refuse the events
// that carry it: a few 16-digit hex strings in ten thousand read as a
// card number. It ends in a letter, so that no sequence number written
// after it joins its last digits (a digit chain, docs/FORMAT.md §1.4),
// and MayHold clears it, so that reading the events that carry it takes
// the quick way.
func RandomHex(n int) string {
	b := make([]byte, n)
	for {
		rand.Read(b)
		id := hex.EncodeToString(b)
		if id[len(id)-1] <= '9' {
			continue // a sequence number after it would extend its last digits (chains)
		}
		// Nothing found is not enough: an id the quick reading cannot
		// clear (about one in six) sends every event that names it —
		// a response.digest's command_id — the slow way, in the gateway
		// and again in the writer.
		if !MayHold(id + ".1") {
			return id
		}
	}
}
