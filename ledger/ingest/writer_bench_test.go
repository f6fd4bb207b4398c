package ingest_test

import (
	"context"
	"flag"
	"fmt"
	"os"
	"runtime"
	"runtime/pprof"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/auditledger/auditledger/ledger"
	"github.com/auditledger/auditledger/ledger/bus"
	"github.com/auditledger/auditledger/ledger/file"
	"github.com/auditledger/auditledger/ledger/ingest"
	"github.com/auditledger/auditledger/test/natstest"
)

// Flags of BenchmarkWriter, for counting instructions under callgrind
// (fewer events; the setup alone, to subtract) and for a profile of the
// writer alone.
var (
	writerEvents    = flag.Int("writer-events", 100_000, "BenchmarkWriter: events on AUDIT_EVENTS before the writer starts")
	writerSetupOnly = flag.Bool("writer-setup-only", false, "BenchmarkWriter: publish the events, start no writer (to subtract the setup's instructions)")
	writerProfile   = flag.String("writer-cpuprofile", "", "BenchmarkWriter: write a CPU profile of the writer's run alone (not the setup) to this file")
)

// BenchmarkWriter measures what the writer costs an event, apart from
// its producers: events (100,000 unless -writer-events) are on
// AUDIT_EVENTS in batch messages of 1,000 before the writer starts; it
// then checks, deduplicates, seals (to a local store with fsync) and
// publishes them. cpu-µs/event is this process's CPU (getrusage: the
// writer and the in-process NATS server it pulls from and publishes to)
// from the writer's start to its last seal, divided by the events;
// writer-allocs/event the heap allocations of the same span (the
// benchmark's own allocs/op include its setup).
//
// bench-ingest: events of about 512 bytes as bench ingest makes them.
// mix: what the gateways record, with the detectors on (MixEvent):
// PostgreSQL statements and response digests, SSH commands and terminal
// output chunks, HTTP requests and response digests, a batch message per
// gateway in turn.
func BenchmarkWriter(b *testing.B) {
	b.Run("bench-ingest", func(b *testing.B) {
		benchWriter(b, func(int) string { return "bench-1" }, func(_, i int) []byte { return benchEvent(i) })
	})
	b.Run("mix", func(b *testing.B) {
		benchWriter(b, func(msg int) string { return ingest.MixProducers[msg%len(ingest.MixProducers)] }, func(msg, i int) []byte {
			return ingest.MixEvent(msg%len(ingest.MixProducers), i)
		})
	})
}

// benchWriter runs BenchmarkWriter on the events event(msg, i) makes,
// published in batch messages by producer(msg).
func benchWriter(b *testing.B, producer func(msg int) string, event func(msg, i int) []byte) {
	const perMsg = 1000
	n := *writerEvents
	b.StopTimer()
	for range b.N {
		srv := natstest.Start(b)
		_, js := srv.Connect(b)
		ctx := b.Context()
		if err := bus.EnsureStreams(ctx, js, bus.StreamOptions{}); err != nil {
			b.Fatal(err)
		}
		// Batch messages of perMsg events, or fewer when that many
		// would exceed bus.MaxBatchBytes (the gateways' output chunks).
		var body []byte
		msg, held := 0, 0
		send := func() {
			m := nats.NewMsg(bus.BatchSubject(producer(msg)))
			m.Data = body
			m.Header.Set(nats.MsgIdHdr, fmt.Sprintf("batch/%d", msg))
			if _, err := js.PublishMsg(ctx, m); err != nil {
				b.Fatal(err)
			}
			body, msg, held = nil, msg+1, 0
		}
		for i := range n {
			ev := event(msg, i)
			if held > 0 && len(body)+len(ev)+1 > bus.MaxBatchBytes {
				send()
				ev = event(msg, i)
			}
			body = bus.AppendBatch(body, ev)
			if held++; held == perMsg || i == n-1 {
				send()
			}
		}
		if *writerSetupOnly {
			srv.Shutdown()
			continue
		}
		store, err := file.New(b.TempDir())
		if err != nil {
			b.Fatal(err)
		}
		skey, _, _ := ledger.GenerateKey(nil, "ingest.bench/log")
		signer, _ := ledger.NewNoteSigner(skey)
		rctx, cancel := context.WithCancel(ctx)
		l, err := ledger.Open(rctx, ledger.Config{Store: store, Signer: signer})
		if err != nil {
			b.Fatal(err)
		}
		if *writerProfile != "" {
			f, err := os.Create(*writerProfile)
			if err != nil {
				b.Fatal(err)
			}
			defer f.Close()
			if err := pprof.StartCPUProfile(f); err != nil {
				b.Fatal(err)
			}
		}
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		mallocs0 := ms.Mallocs
		cpu0 := cpuTime()
		b.StartTimer()
		in, err := ingest.New(rctx, ingest.Config{JetStream: js, Log: l, Store: store, MaxWait: 20 * time.Millisecond})
		if err != nil {
			b.Fatal(err)
		}
		var wg sync.WaitGroup
		wg.Go(func() { in.Run(rctx) })
		for in.Stats.Sealed.Load() < uint64(n) {
			time.Sleep(time.Millisecond)
		}
		b.StopTimer()
		cpu := cpuTime() - cpu0
		runtime.ReadMemStats(&ms)
		if *writerProfile != "" {
			pprof.StopCPUProfile()
		}
		b.ReportMetric(float64(cpu.Microseconds())/float64(n), "cpu-µs/event")
		b.ReportMetric(float64(ms.Mallocs-mallocs0)/float64(n), "writer-allocs/event")
		if r := in.Stats.Rejected.Load(); r > 0 {
			b.Fatalf("%d events rejected", r)
		}
		cancel()
		wg.Wait()
		srv.Shutdown()
	}
	b.StartTimer()
}

// benchEvent is event i as bench ingest makes them: about 512 bytes, an
// actor with a sealed e-mail address, a statement.
func benchEvent(i int) []byte {
	at := time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC).Add(time.Duration(i) * time.Microsecond)
	s := fmt.Sprintf(`{"version":1,"id":"bench-%012d","type":"command.executed","time":"%s","tenant":"bench","source":{"kind":"postgres-proxy","instance":"bench-1","version":"0"},"actor":{"issuer":"https://idp.example","subject":"user-%d","email":"pii1.%x.%s","groups":["dba"],"kind":"human"},"session_id":"s-%d","session_seq":%d,"target":{"kind":"postgres","name":"orders","database":"orders"},"payload":{"statement":"SELECT * FROM orders WHERE id = $1","pad":"`,
		i, at.Format(time.RFC3339Nano), i%97, pseudonym(i%97), strings.Repeat("q8Zt-", 8), i/100, i%100+1)
	return []byte(s + strings.Repeat("x", max(0, 512-len(s)-4)) + `"}}`)
}

// cpuTime is the CPU this process has used: on shared cores a clock
// measures the neighbours too.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
