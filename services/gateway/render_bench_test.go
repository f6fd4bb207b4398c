package gateway

import (
	"bytes"
	"testing"
)

// terminalText is shell output: ls -l style lines, some coloured.
func terminalText(n int) []byte {
	var b bytes.Buffer
	for b.Len() < n {
		b.WriteString("-rw-r--r-- 1 alice staff  40213 Dec  7 03:31 \x1b[01;34mreport-2026-12.csv\x1b[0m\r\n")
		b.WriteString("-rw-r--r-- 1 alice staff   1024 Dec  7 03:31 notes.txt\r\n")
	}
	return b.Bytes()[:n]
}

// The detectors' cost on a full chunk as recorded before rendering: the
// bytes scrubbed once.
func BenchmarkStreamChunkBytesOnly(b *testing.B) {
	text := string(terminalText(DefaultMaxChunk))
	b.SetBytes(int64(len(text)))
	for b.Loop() {
		var found []Finding
		ScrubFound(text, &found)
	}
}

// The same chunk judged as it is now: rendered, the bytes and the
// rendering judged, with the held tail (MaxHeld) judged again.
func BenchmarkStreamChunkRendered(b *testing.B) {
	raw := terminalText(DefaultMaxChunk + MaxHeld)
	b.SetBytes(DefaultMaxChunk)
	for b.Loop() {
		r := render(raw, false, false)
		judgeRendered(raw[:r.done], r)
	}
}
