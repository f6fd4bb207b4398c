package gateway_test

import (
	"bytes"
	"crypto/rand"
	"encoding/base64"
	"strings"
	"testing"

	"github.com/auditledger/auditledger/services/gateway"
)

// A piece is read as chunks are: text without a value plays as it is,
// byte for byte, however long its tokens (random base64 of 600 KiB on
// one line is not one token past the detectors' bounds); a card number
// anywhere, across the edge of the chunks it is judged in or of the
// piece, is replaced once, whole; escapes inside it, as a terminal
// renders them, too; and binary bytes play as the marker, once a run.
func TestBulkText(t *testing.T) {
	raw := make([]byte, 450<<10)
	rand.Read(raw)
	text := []byte(base64.StdEncoding.EncodeToString(raw))
	if got := gateway.BulkText(nil, text, nil, false, 24, 80, []byte("[BINARY]")); !bytes.Equal(got, text) {
		t.Fatalf("random base64 plays as %d bytes, want %d the same", len(got), len(text))
	}
	filler := strings.Repeat("build step ok\n", 3000) // 42,000 bytes: chunks end inside it
	for _, at := range []int{0, 16384 - 30, 16384 - 8, 16384, 16384 + 3, 32768 - 12, len(filler) - 10} {
		for _, card := range []string{"4111 1111 1111 1111", "4111\x1b[1m1111\x1b[0m1111\x1b[K1111"} {
			piece := filler[:at] + card + filler[at:]
			got := string(gateway.BulkText(nil, []byte(piece), nil, false, 24, 80, []byte("[BINARY]")))
			want := filler[:at] + "[REDACTED:credit_card]" + filler[at:]
			if got != want {
				t.Errorf("card %q at %d: plays %d bytes, want %d; holds 4111: %v, placeholders: %d", card, at, len(got), len(want),
					strings.Contains(got, "4111"), strings.Count(got, "[REDACTED"))
			}
		}
	}
	// Across the piece's edges: the neighbours are read, only this
	// piece's part replaced.
	if got := string(gateway.BulkText([]byte("card 4111 11"), []byte("11 1111 1111 end"), nil, false, 0, 0, nil)); got != "[REDACTED:credit_card] end" {
		t.Errorf("a value begun in the piece before plays as %q", got)
	}
	if got := string(gateway.BulkText(nil, []byte("card 4111 11"), []byte("11 1111 1111 end"), false, 0, 0, nil)); got != "card [REDACTED:credit_card]" {
		t.Errorf("a value ended in the piece after plays as %q", got)
	}
	bin := append([]byte(filler), 0xff, 0xfe, 0, 1, 2)
	bin = append(bin, bytes.Repeat([]byte{0, 0xc3, 0x28}, 20000)...)
	bin = append(bin, "tail\n"...)
	got := string(gateway.BulkText(nil, bin, nil, false, 24, 80, []byte("[BINARY]")))
	if strings.Count(got, "[BINARY]") != 1 || !strings.HasPrefix(got, filler[:16384-100]) || !strings.HasSuffix(got, "[BINARY]") && !strings.HasSuffix(got, "tail\n") {
		t.Errorf("binary bytes play as %d markers; %q…%q", strings.Count(got, "[BINARY]"), got[:40], got[len(got)-40:])
	}
}

// BenchmarkBulkText measures reading a full piece: a build log with
// colours, and base64 lines (what cat of an encoded file shows).
func BenchmarkBulkText(b *testing.B) {
	raw := make([]byte, 384<<10)
	rand.Read(raw)
	enc := base64.StdEncoding.EncodeToString(raw)
	var lines strings.Builder
	for i := 0; i < len(enc); i += 76 {
		lines.WriteString(enc[i:min(i+76, len(enc))] + "\n")
	}
	var log strings.Builder
	for i := 0; log.Len() < 512<<10-200; i++ {
		log.WriteString("\x1b[32mINFO\x1b[0m 2026-12-08 step " + strings.Repeat("x", i%50) + " done in 12ms\n")
	}
	for name, piece := range map[string]string{"log": log.String(), "base64": lines.String()[:512<<10]} {
		b.Run(name, func(b *testing.B) {
			b.SetBytes(int64(len(piece)))
			for b.Loop() {
				gateway.BulkText(nil, []byte(piece), nil, false, 24, 80, nil)
			}
		})
	}
}
