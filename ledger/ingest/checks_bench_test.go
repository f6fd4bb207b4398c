package ingest

import (
	"context"
	"crypto/sha256"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/auditledger/auditledger/ledger/bus"
)

// batchMsg is a batch message as the writer reads it from AUDIT_EVENTS:
// its subject and bytes (checkMsg reads nothing else of a batch).
type batchMsg struct {
	jetstream.Msg
	subject string
	data    []byte
}

func (m batchMsg) Subject() string { return m.subject }
func (m batchMsg) Data() []byte    { return m.data }

// BenchmarkWriterChecks measures the writer's checks of one batch
// message of 100 events of about 512 bytes, as bench ingest makes them
// (an actor with a sealed e-mail, a statement): splitting the batch,
// events.Parse, the subject's and every event's detector judgement
// (detect.CheckEvent) and the id keys the index is looked up by; per
// event, divide by 100. Nothing of NATS, the index or the seal.
func BenchmarkWriterChecks(b *testing.B) {
	const n = 100
	var body []byte
	at := time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC)
	for i := range n {
		sum := sha256.Sum256([]byte{byte(i % 97)})
		s := fmt.Sprintf(`{"version":1,"id":"bench-%012d","type":"command.executed","time":"%s","tenant":"bench","source":{"kind":"postgres-proxy","instance":"bench-1","version":"0"},"actor":{"issuer":"https://idp.example","subject":"user-%d","email":"pii1.%x.%s","groups":["dba"],"kind":"human"},"session_id":"s-%d","session_seq":%d,"target":{"kind":"postgres","name":"orders","database":"orders"},"payload":{"statement":"SELECT * FROM orders WHERE id = $1","pad":"`,
			i, at.Add(time.Duration(i)*time.Microsecond).Format(time.RFC3339Nano), i%97, sum[:16], strings.Repeat("q8Zt-", 8), i/100, i%100+1)
		body = bus.AppendBatch(body, []byte(s+strings.Repeat("x", max(0, 512-len(s)-4))+`"}}`))
	}
	b.Run("bench-ingest", func(b *testing.B) { benchChecks(b, batchMsg{subject: bus.BatchSubject("bench-1"), data: body}, n) })
	// The gateways' events (MixEvent), a batch message of each in turn.
	var mix []batchMsg
	for p, name := range MixProducers {
		var body []byte
		for i := range n {
			body = bus.AppendBatch(body, MixEvent(p, i))
		}
		mix = append(mix, batchMsg{subject: bus.BatchSubject(name), data: body})
	}
	b.Run("mix", func(b *testing.B) {
		in := &Ingester{}
		for _, m := range mix {
			checkAll(b, in, m)
		}
		for b.Loop() {
			for _, m := range mix {
				in.checkMsg(context.Background(), m)
			}
		}
		b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*n*len(mix)), "ns/event")
	})
}

// benchChecks runs BenchmarkWriterChecks on one batch message of n events.
func benchChecks(b *testing.B, m batchMsg, n int) {
	in := &Ingester{}
	checkAll(b, in, m)
	for b.Loop() {
		in.checkMsg(context.Background(), m)
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*n), "ns/event")
}

// checkAll fails b unless every event of m passes the checks.
func checkAll(b *testing.B, in *Ingester, m batchMsg) {
	for _, c := range in.checkMsg(context.Background(), m) {
		if c.err != nil || c.key == nil {
			b.Fatalf("%s event %d: %v", m.subject, c.part, c.err)
		}
	}
}
