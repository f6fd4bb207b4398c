package gateway_test

import (
	"context"
	"runtime"
	"testing"

	"github.com/auditledger/auditledger/events"
	"github.com/auditledger/auditledger/ledger/bus/emitter"
	"github.com/auditledger/auditledger/services/gateway"
)

// encodeRecorder encodes each event as the emitter does and reports it
// stored at once: the gateway core's own cost of a record, without the
// bus.
type encodeRecorder struct{}

func (encodeRecorder) Emit(_ context.Context, ev *events.Event) (emitter.Result, error) {
	_, err := ev.Marshal()
	return emitter.Result{ID: ev.ID, Err: err}, err
}

func (encodeRecorder) EmitAsync(_ context.Context, ev *events.Event, done func(emitter.Result)) error {
	_, err := ev.Marshal()
	done(emitter.Result{ID: ev.ID, Err: err})
	return nil
}

// BenchmarkRecordStatement: what one statement of a PostgreSQL session
// costs the recording path at one client, before-response — its
// command.executed (waited for) and the response.digest of its result
// (recorded asynchronously, going with the next command) — as CPU of
// this process per statement (cpu-µs/stmt, getrusage: on a shared
// machine the wall time says little) and heap allocations per
// statement. "core": events built, checked and encoded, not published;
// "bus": published by the emitter to an in-process NATS server, its
// acknowledgement awaited (the server's CPU included).
func BenchmarkRecordStatement(b *testing.B) {
	for _, c := range []struct {
		name string
		rec  func(b *testing.B) gateway.Recorder
	}{
		{"core", func(*testing.B) gateway.Recorder { return encodeRecorder{} }},
		{"bus", func(b *testing.B) gateway.Recorder { return startBus(b, true).em }},
	} {
		b.Run(c.name, func(b *testing.B) {
			g := newGateway(b, c.rec(b), func(cfg *gateway.Config) { cfg.Durability = gateway.BeforeResponse })
			if err := g.Start(b.Context()); err != nil {
				b.Fatal(err)
			}
			s := g.Session(events.Target{Kind: "postgres", Name: "orders", Database: "orders"})
			s.Authenticated(alice)
			if err := s.Start(b.Context(), map[string]any{}); err != nil {
				b.Fatal(err)
			}
			const sql = "SELECT abalance FROM pgbench_accounts WHERE aid = 48213;"
			var ms0, ms1 runtime.MemStats
			runtime.ReadMemStats(&ms0)
			cpu0 := cpuTime()
			for b.Loop() {
				id, stored, err := s.Command(b.Context(), map[string]any{"statement": sql,
					"statement_sha256": "5b1f0d2cbd5c4c0a9a1f0a8c3d2e1f00112233445566778899aabbccddeeff00", "kind": "select", "protocol": "simple"})
				if err != nil {
					b.Fatal(err)
				}
				if err := <-stored; err != nil {
					b.Fatal(err)
				}
				s.RecordAsync(b.Context(), events.ResponseDigest, map[string]any{"command_id": id, "rows": 1, "bytes": 36,
					"tag": "SELECT 1", "sha256": "00ff00ff00ff00ff00ff00ff00ff00ff00ff00ff00ff00ff00ff00ff00ff00ff"})
			}
			cpu := cpuTime() - cpu0
			runtime.ReadMemStats(&ms1)
			b.ReportMetric(float64(cpu.Nanoseconds())/1e3/float64(b.N), "cpu-µs/stmt")
			b.ReportMetric(float64(ms1.Mallocs-ms0.Mallocs)/float64(b.N), "allocs/stmt")
		})
	}
}
