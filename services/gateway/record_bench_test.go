package gateway_test

import (
	"context"
	"runtime"
	"testing"

	"github.com/auditledger/auditledger/events"
	"github.com/auditledger/auditledger/events/detect"
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

// judgeRecorder is encodeRecorder, each event then judged as the writer
// judges what it is handed (detect.CheckEvent): the core and the
// writer's judge, both of which the detectors' share of the path
// counts.
type judgeRecorder struct{}

func (judgeRecorder) Emit(_ context.Context, ev *events.Event) (emitter.Result, error) {
	b, err := ev.Marshal()
	if err == nil {
		err = detect.CheckEvent(b)
	}
	return emitter.Result{ID: ev.ID, Err: err}, err
}

func (r judgeRecorder) EmitAsync(ctx context.Context, ev *events.Event, done func(emitter.Result)) error {
	res, _ := r.Emit(ctx, ev)
	done(res)
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
// acknowledgement awaited (the server's CPU included); "proxy+writer":
// as the PostgreSQL gateway hands them (its upstream's address as the
// target's host, the statement judged by JudgeText), not published,
// each event judged as the writer judges it (detect.CheckEvent).
func BenchmarkRecordStatement(b *testing.B) {
	orders := events.Target{Kind: "postgres", Name: "orders", Database: "orders"}
	for _, c := range []struct {
		name   string
		rec    func(b *testing.B) gateway.Recorder
		target events.Target
		judged bool
	}{
		{"core", func(*testing.B) gateway.Recorder { return encodeRecorder{} }, orders, false},
		{"bus", func(b *testing.B) gateway.Recorder { return startBus(b, true).em }, orders, false},
		{"proxy+writer", func(*testing.B) gateway.Recorder { return judgeRecorder{} },
			events.Target{Kind: "postgres", Name: "bench", Host: "127.0.0.1:5497", Database: "bench"}, true},
	} {
		b.Run(c.name, func(b *testing.B) {
			g := newGateway(b, c.rec(b), func(cfg *gateway.Config) { cfg.Durability = gateway.BeforeResponse })
			if err := g.Start(b.Context()); err != nil {
				b.Fatal(err)
			}
			s := g.Session(c.target)
			s.Authenticated(alice)
			if err := s.Start(b.Context(), map[string]any{}); err != nil {
				b.Fatal(err)
			}
			const sql = "SELECT abalance FROM pgbench_accounts WHERE aid = 48213;"
			var ms0, ms1 runtime.MemStats
			runtime.ReadMemStats(&ms0)
			cpu0 := cpuTime()
			for b.Loop() {
				var stmt any = sql
				if c.judged {
					var found []gateway.Finding
					stmt, _ = gateway.JudgeText(sql, &found)
				}
				id, stored, err := s.Command(b.Context(), map[string]any{"statement": stmt,
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
