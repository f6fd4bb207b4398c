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

// Plain text renders as itself: the line editor gives the same text, each
// byte from its own offset, nothing hidden, whether written or typed.
func TestRenderPlainTextIsItself(t *testing.T) {
	texts := [][]byte{[]byte("ls -l\n\tfoo bar~!\n"), terminalText(3000)}
	for i := range texts[1] { // the escape sequences and carriage returns out
		if c := texts[1][i]; c == 0x1b || c == '\r' {
			texts[1][i] = '.'
		}
	}
	for _, raw := range texts {
		for _, keys := range []bool{false, true} {
			if !plainText(raw) {
				t.Fatalf("%q: not plain text", raw[:20])
			}
			fast, slow := render(raw, false, keys), renderEdited(raw, false, keys, false)
			if !fast.same || string(fast.b) != string(slow.b) || fast.done != slow.done || fast.hidden != slow.hidden || fast.text != slow.text {
				t.Fatalf("keys %v: fast path %+v differs from the line editor's %+v", keys, fast.done, slow.done)
			}
			for i, lo := range slow.lo {
				if int(lo) != i {
					t.Fatalf("keys %v: rendered byte %d from raw %d", keys, i, lo)
				}
			}
		}
	}
	for _, raw := range []string{"a\rb", "a\x1b[Db", "a\bb", "a\x7fb", "é", "a\x01"} {
		if plainText([]byte(raw)) {
			t.Errorf("%q: plain text", raw)
		}
	}
}
