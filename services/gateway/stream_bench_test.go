package gateway_test

import (
	"bytes"
	"syscall"
	"testing"
	"time"

	"github.com/auditledger/auditledger/events"
	"github.com/auditledger/auditledger/services/gateway"
)

// The cost of recording a byte stream (an exec's stdout) through the bus,
// per byte written, for binary output (head -c N /dev/zero) and text.
func BenchmarkStreamRecord(b *testing.B) {
	for _, c := range []struct {
		name string
		data []byte
	}{
		{"binary", make([]byte, 32<<10)},
		{"text", bytes.Repeat([]byte("-rw-r--r-- 1 alice staff  40213 Dec  7 03:31 report-2026-12.csv\r\n"), 32<<10/66)},
	} {
		b.Run(c.name, func(b *testing.B) {
			bus := startBus(b, true)
			b.SetBytes(int64(len(c.data)))
			g := newGateway(b, bus.em, nil)
			if err := g.Start(b.Context()); err != nil {
				b.Fatal(err)
			}
			s := g.Session(events.Target{Kind: "kubernetes"})
			s.Authenticated(alice)
			if err := s.Start(b.Context(), map[string]any{}); err != nil {
				b.Fatal(err)
			}
			st := s.Stream("stdout", gateway.StreamConfig{})
			// On a shared machine the wall time says little: the process's
			// CPU time (the bus's server included) per byte is the figure.
			cpu0 := cpuTime()
			for b.Loop() {
				st.Write(c.data)
			}
			st.Close()
			b.ReportMetric(float64(b.N)*float64(len(c.data))/(1<<20)/(cpuTime()-cpu0).Seconds(), "MiB/cpu-s")
		})
	}
}

// cpuTime is the CPU time the process has used, user and system.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
