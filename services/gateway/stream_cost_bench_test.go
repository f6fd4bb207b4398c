package gateway_test

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"testing"
	"time"

	"github.com/auditledger/auditledger/events"
	"github.com/auditledger/auditledger/ledger/bus/emitter"
	"github.com/auditledger/auditledger/services/gateway"
)

// discard builds and encodes every event, then drops it: the recording
// path's own cost, without the bus (a benchmark floor, never a gateway).
type discard struct{}

func (discard) Emit(_ context.Context, ev *events.Event) (emitter.Result, error) {
	return emitter.Result{ID: ev.ID}, nil
}

func (discard) EmitAsync(_ context.Context, ev *events.Event, done func(emitter.Result)) error {
	done(emitter.Result{ID: ev.ID})
	return nil
}

// base64Lines is what `auditledger bench ssh` cats: random base64 in
// lines of 76.
func base64Lines(n int) []byte {
	raw := make([]byte, 57)
	b := make([]byte, 0, n+78)
	for len(b) < n {
		rand.Read(raw)
		b = base64.StdEncoding.AppendEncode(b, raw)
		b = append(b, '\n')
	}
	return b[:n]
}

// The recording path of bulk output: a stream written 32 KiB at a time
// (an SSH channel's reads), every chunk judged, encoded and handed on.
// cpu-µs/MiB is the process's user+system time (rusage), which a loaded
// machine stretches less than the wall clock.
func BenchmarkStreamBulk(b *testing.B) {
	g, err := gateway.New(gateway.Config{Name: "benchgw", Kind: "test-gateway", Tenant: "acme", Emitter: discard{}})
	if err != nil {
		b.Fatal(err)
	}
	defer g.Close()
	s := g.Session(events.Target{Kind: "ssh"})
	s.Authenticated(alice)
	text := base64Lines(4 << 20)
	st := s.Stream("stdout", gateway.StreamConfig{FlushAfter: time.Hour})
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

// A terminal typed in: each key recorded on the input stream and its echo
// on the output stream, and both flushed as their timers would
// (FlushAfter after the key), a shell prompt after each line. cpu-µs/key
// is the process's user+system time per keystroke (rusage).
func BenchmarkStreamKeystroke(b *testing.B) {
	g, err := gateway.New(gateway.Config{Name: "benchgw", Kind: "test-gateway", Tenant: "acme", Emitter: discard{}})
	if err != nil {
		b.Fatal(err)
	}
	defer g.Close()
	s := g.Session(events.Target{Kind: "ssh"})
	s.Authenticated(alice)
	in := s.Stream("stdin", gateway.StreamConfig{FlushAfter: time.Hour})
	out := s.Stream("stdout", gateway.StreamConfig{FlushAfter: time.Hour})
	line := []byte("grep -r needle /var/log/app | sort | uniq -c | head -20\r")
	t0, n := cpuTime(), 0
	for b.Loop() {
		k := line[n%len(line) : n%len(line)+1]
		in.Write(k)
		if k[0] == '\r' {
			out.Write([]byte("\r\n3 needle found\r\nalice@host:~$ "))
		} else {
			out.Write(k)
		}
		in.Flush()
		out.Flush()
		n++
	}
	in.Close()
	out.Close()
	b.ReportMetric(float64((cpuTime()-t0).Microseconds())/float64(n), "cpu-µs/key")
}
