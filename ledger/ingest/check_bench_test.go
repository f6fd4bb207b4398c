package ingest_test

import (
	"crypto/sha256"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/auditledger/auditledger/events"
	"github.com/auditledger/auditledger/events/detect"
)

// BenchmarkEventChecks measures what the writer spends per event on
// checks before sealing: parsing and validation (events.Parse), and the
// detector judgement (detect.CheckEvent) that refuses events holding a
// value, on events shaped as bench ingest makes them (512 bytes, an actor
// with an e-mail address, a statement).
func BenchmarkEventChecks(b *testing.B) {
	base := time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC)
	evs := make([][]byte, 1024)
	for i := range evs {
		s := fmt.Sprintf(`{"version":1,"id":"bench-%012d","type":"command.executed","time":"%s","tenant":"bench","source":{"kind":"postgres-proxy","instance":"bench-1","version":"0"},"actor":{"issuer":"https://idp.example","subject":"user-%d","email":"pii1.%x.%s","groups":["dba"],"kind":"human"},"session_id":"s-%d","session_seq":%d,"target":{"kind":"postgres","name":"orders","database":"orders"},"payload":{"statement":"SELECT * FROM orders WHERE id = $1","pad":"`,
			i, base.Add(time.Duration(i)*time.Microsecond).Format(time.RFC3339Nano), i%97, pseudonym(i%97), strings.Repeat("q8Zt-", 8), i/100, i%100+1)
		evs[i] = []byte(s + strings.Repeat("x", max(0, 512-len(s)-4)) + `"}}`)
	}
	b.Run("parse", func(b *testing.B) {
		i := 0
		for b.Loop() {
			if _, err := events.Parse(evs[i%len(evs)]); err != nil {
				b.Fatal(err)
			}
			i++
		}
	})
	b.Run("detect", func(b *testing.B) {
		i := 0
		for b.Loop() {
			if err := detect.CheckEvent(evs[i%len(evs)]); err != nil {
				b.Fatal(err)
			}
			i++
		}
	})
}

// pseudonym is a sealed field's pseudonym: 32 lower-case hex digits.
func pseudonym(i int) []byte {
	sum := sha256.Sum256([]byte{byte(i)})
	return sum[:16]
}
