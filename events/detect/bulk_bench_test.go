package detect

import (
	"encoding/base64"
	"math/rand/v2"
	"syscall"
	"testing"
	"time"
)

// bulkLines is what `auditledger bench ssh` cats: random base64 in lines
// of 76, n bytes.
func bulkLines(n int) string {
	r := rand.New(rand.NewPCG(26, 27))
	raw := make([]byte, 57)
	b := make([]byte, 0, n+78)
	for len(b) < n {
		for i := range raw {
			raw[i] = byte(r.Uint32())
		}
		b = base64.StdEncoding.AppendEncode(b, raw)
		b = append(b, '\n')
	}
	return string(b[:n])
}

// processCPU is the process's user and system time (rusage): what a
// benchmark costs on a machine others load, less stretched than the
// wall clock.
func processCPU() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// benchBulk runs read on a 32 KiB chunk of bulk base64 (an SSH channel's
// read) and reports the CPU it takes per MiB.
func benchBulk(b *testing.B, read func(string)) {
	text := bulkLines(32 << 10)
	b.SetBytes(int64(len(text)))
	t0, n := processCPU(), 0
	for b.Loop() {
		read(text)
		n += len(text)
	}
	b.ReportMetric(float64((processCPU()-t0).Microseconds())/(float64(n)/(1<<20)), "cpu-µs/MiB")
}

// What a gateway asks of each chunk of bulk output: may it hold a value
// (MayHold), where are they (Spans, the rendering judged), replace them
// (ScrubEach, the recorded data).
func BenchmarkBulkMayHold(b *testing.B) { benchBulk(b, func(s string) { MayHold(s) }) }
func BenchmarkBulkSpans(b *testing.B)   { benchBulk(b, func(s string) { Spans(s) }) }
func BenchmarkBulkScrubEach(b *testing.B) {
	benchBulk(b, func(s string) { ScrubEach(s, func(string, string) {}) })
}

// One line's token, all its alignments read (decodeToken), one token
// after the other.
func BenchmarkBulkDecodeToken(b *testing.B) {
	text := []byte(bulkLines(77 * 1000))
	i := 0
	t0 := processCPU()
	for b.Loop() {
		k := i % 1000 * 77
		decodeToken(text, k, k+76, k+76)
		i++
	}
	b.ReportMetric(float64((processCPU()-t0).Nanoseconds())/float64(i), "cpu-ns/op")
}
