package gateway_test

import (
	"testing"
	"time"

	"github.com/auditledger/auditledger/events"
	"github.com/auditledger/auditledger/ledger/piikeys"
	"github.com/auditledger/auditledger/services/gateway"
)

// The gateway's side of bulk output (docs/FORMAT.md §1.7): a stream
// written 32 KiB at a time, sealed in pieces under the subject's key and
// published to an embedded bus, each piece's event recorded once the bus
// has it; the stream's Close waits for all of it. cpu-µs/MiB is this
// process's user+system time (rusage: the gateway and the bus), which a
// loaded machine stretches less than the wall clock.
//
//	go test ./services/gateway -run XXX -bench StreamBulkPieces -benchtime 4096x
func BenchmarkStreamBulkPieces(b *testing.B) {
	bs := startBus(b, true)
	keys, err := piikeys.Open(b.Context(), bs.js, 1)
	if err != nil {
		b.Fatal(err)
	}
	g := newGateway(b, bs.em, func(c *gateway.Config) { c.Keys = keys })
	s := g.Session(events.Target{Kind: "ssh"})
	s.Authenticated(alice)
	text := base64Lines(4 << 20)
	st := s.Stream("stdout", gateway.StreamConfig{FlushAfter: 50 * time.Millisecond})
	b.SetBytes(32 << 10)
	t0, n := cpuTime(), 0
	for b.Loop() {
		off := n % (len(text) - 32<<10)
		st.Write(text[off : off+32<<10])
		n += 32 << 10
	}
	st.Close()
	b.ReportMetric(float64((cpuTime()-t0).Microseconds())/(float64(n)/(1<<20)), "cpu-µs/MiB")
}
