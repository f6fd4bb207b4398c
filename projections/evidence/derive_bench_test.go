package evidence

import (
	"fmt"
	"testing"
	"time"

	"github.com/auditledger/auditledger/compliance"
)

// benchSealedEmail stands for an actor's e-mail as gateways record it.
const benchSealedEmail = "pii1.0123456789abcdef0123456789abcdef.AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8gISIjJCUmJygpKissLS4vMDEyMzQ1Njc4OTo7PD0-P0BBQkNERUZHSA"

// benchEvent is the i-th event of `auditledger bench evidence`: a
// statement, then its result.
func benchEvent(i int) []byte {
	t := time.Date(2026, 11, 27, 10, 0, 0, 0, time.UTC).Add(time.Duration(i) * time.Millisecond).Format(time.RFC3339Nano)
	if i%2 == 1 {
		return fmt.Appendf(nil, `{"version":1,"id":"ev-%d","type":"response.digest","time":"%s","tenant":"acme","source":{"kind":"postgres-proxy","instance":"p1"},"actor":{"issuer":"https://idp.example","subject":"u%d","kind":"human"},"session_id":"s%d","session_seq":%d,"target":{"kind":"postgres","name":"orders"},"payload":{"command_id":"ev-%d","rows":1,"bytes":120,"hmac":"hmac:%064x"}}`,
			i, t, i%50, i/100, i%100+1, i-1, i)
	}
	return fmt.Appendf(nil, `{"version":1,"id":"ev-%d","type":"command.executed","time":"%s","tenant":"acme","source":{"kind":"postgres-proxy","instance":"p1"},"actor":{"issuer":"https://idp.example","subject":"u%d","email":"`+benchSealedEmail+`","kind":"human"},"session_id":"s%d","session_seq":%d,"target":{"kind":"postgres","name":"orders"},"payload":{"statement":"SELECT * FROM orders WHERE id = %d","statement_sha256":"%064x","kind":"SELECT","protocol":"simple"}}`,
		i, t, i%50, i/100, i%100+1, i, i)
}

// BenchmarkDerive is the per-event work of a bundle's derivations (check
// 11's census, assertions, derived tables and context) over the events
// of `auditledger bench evidence`, then the tables and assertions
// written: one op is one event.
func BenchmarkDerive(b *testing.B) {
	fw, err := compliance.Load("iso27001-2022")
	if err != nil {
		b.Fatal(err)
	}
	x, _, err := expectationsFor(fw, nil)
	if err != nil {
		b.Fatal(err)
	}
	const pool = 4096
	evs := make([][]byte, pool)
	for i := range evs {
		evs[i] = benchEvent(i)
	}
	at := time.Date(2026, 11, 27, 10, 0, 0, 0, time.UTC)
	b.ReportAllocs()
	b.ResetTimer()
	d := &derivation{census: newCensus(), asserter: compliance.NewAsserter(x, nil)}
	if d.tables, err = newTables(derivedOf(fw)); err != nil {
		b.Fatal(err)
	}
	ctx := newContext("acme")
	for i := 0; i < b.N; i++ {
		ev := evs[i%pool]
		sealedIn(uint64(i), ev)
		if err := ctx.note(uint64(i), at, ev); err != nil {
			b.Fatal(err)
		}
		d.note(uint64(i), at, ev, false)
	}
	if d.err != nil || d.tables.err != nil {
		b.Fatal(d.err, d.tables.err)
	}
	for _, k := range d.tables.order {
		d.tables.csv(k, &tableIn{})
	}
	d.asserter.Assertions(compliance.Period{From: time.Unix(0, 0), To: time.Unix(1, 0)})
}
