package gateway_test

import (
	"bytes"
	"crypto/rand"
	"encoding/base64"
	"fmt"
	mathrand "math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/auditledger/auditledger/events"
	"github.com/auditledger/auditledger/services/gateway"
	"github.com/auditledger/auditledger/test/natstest"
)

// A piece is read as chunks are: text without a value plays as it is,
// byte for byte, however long its tokens (random base64 of 600 KiB on
// one line is not one token past the detectors' bounds); a card number
// anywhere, across the edge of the chunks it is judged in or of the
// piece, is replaced once, whole; escapes inside it, as a terminal
// renders them, too; and binary bytes play as the marker, once a run.
func TestBulkText(t *testing.T) {
	// Bytes of a fixed seed: random base64 now and then decodes, at one
	// of its alignments, to text the detectors find an address in (about
	// one run in thirty), which a chunk would record replaced too.
	raw := make([]byte, 450<<10)
	mathrand.NewChaCha8([32]byte{'b', 'u', 'l', 'k'}).Read(raw)
	text := []byte(base64.StdEncoding.EncodeToString(raw))
	if got := gateway.BulkText(nil, text, nil, false, 24, 80, false, []byte("[BINARY]")); !bytes.Equal(got, text) {
		t.Fatalf("random base64 plays as %d bytes, want %d the same", len(got), len(text))
	}
	filler := strings.Repeat("build step ok\n", 3000) // 42,000 bytes: chunks end inside it
	for _, at := range []int{0, 16384 - 30, 16384 - 8, 16384, 16384 + 3, 32768 - 12, len(filler) - 10} {
		for _, card := range []string{"4111 1111 1111 1111", "4111\x1b[1m1111\x1b[0m1111\x1b[K1111"} {
			piece := filler[:at] + card + filler[at:]
			got := string(gateway.BulkText(nil, []byte(piece), nil, false, 24, 80, false, []byte("[BINARY]")))
			want := filler[:at] + "[REDACTED:credit_card]" + filler[at:]
			if got != want {
				t.Errorf("card %q at %d: plays %d bytes, want %d; holds 4111: %v, placeholders: %d", card, at, len(got), len(want),
					strings.Contains(got, "4111"), strings.Count(got, "[REDACTED"))
			}
		}
	}
	// Across the piece's edges: the neighbours are read, only this
	// piece's part replaced.
	if got := string(gateway.BulkText([]byte("card 4111 11"), []byte("11 1111 1111 end"), nil, false, 0, 0, false, nil)); got != "[REDACTED:credit_card] end" {
		t.Errorf("a value begun in the piece before plays as %q", got)
	}
	if got := string(gateway.BulkText(nil, []byte("card 4111 11"), []byte("11 1111 1111 end"), false, 0, 0, false, nil)); got != "card [REDACTED:credit_card]" {
		t.Errorf("a value ended in the piece after plays as %q", got)
	}
	bin := append([]byte(filler), 0xff, 0xfe, 0, 1, 2)
	bin = append(bin, bytes.Repeat([]byte{0, 0xc3, 0x28}, 20000)...)
	bin = append(bin, "tail\n"...)
	got := string(gateway.BulkText(nil, bin, nil, false, 24, 80, false, []byte("[BINARY]")))
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
				gateway.BulkText(nil, []byte(piece), nil, false, 24, 80, false, nil)
			}
		})
	}
}

// A piece plays as the Stream records the same bytes: the same terminal
// model and detectors, the same replacements, whether the values stand
// alone or among 40 KiB of other output, across the chunks either cuts.
func TestBulkTextAsTheStreamRecords(t *testing.T) {
	values := []string{
		"4111\x1b[01;31m\x1b[K \x1b[m\x1b[K1111 1111 1111\n",
		"4111 11119\x7f 1111 1111\n",
		"4111 1111 19\b \b111 1111\n",
		"4111 1111\x1b[D\x1b[C 1111\x1b[K 1111\n",
		"\x1b]0;4111 1111 1111 1111\x07$ \n",
		"jane\x1b[01;31m@\x1b[mexample.com\n",
		"reverse 4111 1111\r\nok\x1bM\x1b[19G1111 1111\r\n",
		"IBAN DE89 3704 0044 0532 0130 00 paid\n",
	}
	var long strings.Builder
	for i := 0; long.Len() < 40<<10; i++ {
		long.WriteString(fmt.Sprintf("\x1b[32mline %d\x1b[0m %s\r\n", i, strings.Repeat("ok ", i%40)))
		if i%97 == 0 {
			long.WriteString(values[i%len(values)])
		}
	}
	for i, in := range append(values, long.String()) {
		b := startBus(t, true)
		g := newGateway(t, b.em, nil)
		s := g.Session(events.Target{Kind: "ssh"})
		st := s.Stream("stdout", gateway.StreamConfig{FlushAfter: time.Hour, Screen: gateway.NewScreen(80, 24)})
		st.Write([]byte(in))
		st.Close()
		n := (len(in) + gateway.DefaultMaxChunk - 1) / gateway.DefaultMaxChunk
		var want []byte
		natstest.CheckFor(t, 30*time.Second, 20*time.Millisecond, func() error {
			var ps []map[string]any
			want, ps = nil, nil
			for _, c := range outputs(natstest.Events(t, b.js, "")) {
				ps = append(ps, c.Payload)
				raw, _ := base64.StdEncoding.DecodeString(c.Payload["data"].(string))
				want = append(want, raw...)
			}
			if got := int64(0); len(ps) > 0 {
				last := ps[len(ps)-1]
				got = int64(last["offset"].(float64) + last["bytes"].(float64))
				if got == int64(len(in)) {
					return nil
				}
			}
			return fmt.Errorf("%d chunks recorded, at least %d wanted", len(ps), n)
		})
		if !bytes.Contains(want, []byte("[REDACTED:")) {
			t.Errorf("case %d: the Stream records no value found: %q", i, want[:min(len(want), 200)])
		}
		if got := gateway.BulkText(nil, []byte(in), nil, false, 24, 80, false, []byte("[BINARY]")); !bytes.Equal(got, want) {
			t.Errorf("case %d: plays %d bytes, the Stream records %d:\n%q\n%q", i, len(got), len(want), got[:min(len(got), 200)], want[:min(len(want), 200)])
		}
	}
}

// A piece that begins in insert mode (its event says so: the escape
// that set it is in an earlier piece, out of reach) is read in insert
// mode too: a card's first group typed back at the line's start shows
// before the rest, and is replaced.
func TestBulkTextInsertMode(t *testing.T) {
	// 4216 3206 7553 6316 on the terminal; its bytes in their order make
	// no card number.
	piece := []byte("3206 7553 6316\r4216 \n")
	if got := string(gateway.BulkText(nil, piece, nil, false, 24, 80, true, nil)); strings.Contains(got, "3206") || !strings.Contains(got, "[REDACTED:credit_card]") {
		t.Errorf("in insert mode the piece plays %q", got)
	}
	// Read as overwriting, the terminal would not show the card: nothing
	// is replaced (the flag is what tells the two apart).
	if got := string(gateway.BulkText(nil, piece, nil, false, 24, 80, false, nil)); got != string(piece) {
		t.Errorf("overwriting, the piece plays %q", got)
	}
}

// A piece's chunks are read with as much context as holds MaxHeld bytes
// of text as a terminal renders it, as a Stream holds back its tail: a
// card number whose parts are apart by more than MaxHeld bytes that
// render as nothing (NULs, colours, a character overwritten again and
// again), across the edge of the chunks it is judged in or of the
// piece, shows on a terminal whole and is replaced; past BulkContext
// bytes of such a run the chunk plays as binary, as the Stream records
// it.
func TestBulkTextRenderedContext(t *testing.T) {
	filler := strings.Repeat("build step ok\n", 3000)
	gaps := map[string]string{
		"NULs":        strings.Repeat("\x00", 10000),
		"colours":     strings.Repeat("\x1b[0m", 2500),
		"overwritten": strings.Repeat("x\b", 5000),
	}
	clear := func(got string) bool { return strings.Contains(got, "4802") && strings.Contains(got, "851889592158") }
	for name, gap := range gaps {
		for _, at := range []int{16384 - 5000, 16384 - 4, 16384 + 10} {
			piece := filler[:at] + "4802" + gap + "851889592158\n" + filler[at:]
			for _, sz := range [][2]int{{24, 80}, {0, 0}} {
				got := string(gateway.BulkText(nil, []byte(piece), nil, false, sz[0], sz[1], false, []byte("[BINARY]")))
				// Replaced once, or (no width known, the cursor moved
				// back along a line that may have wrapped) not shown.
				if clear(got) || strings.Count(got, "[REDACTED:credit_card]") != 1 && !strings.Contains(got, "[BINARY]") {
					t.Errorf("%s at %d, %v: both parts play in clear: %v; placeholders %d", name, at, sz, clear(got), strings.Count(got, "[REDACTED"))
				}
			}
		}
		// Across the piece's edges: the part in the neighbour is read.
		before := filler[:5000] + "4802" + gap
		if got := string(gateway.BulkText([]byte(before), []byte("851889592158\n"+filler[:5000]), nil, false, 24, 80, false, nil)); strings.Contains(got, "851889592158") {
			t.Errorf("%s: a value begun in the piece before plays its end in clear", name)
		}
		after := gap + "851889592158\n" + filler[:5000]
		if got := string(gateway.BulkText(nil, []byte(filler[:5000]+"4802"), []byte(after), false, 24, 80, false, nil)); strings.Contains(got, "4802") {
			t.Errorf("%s: a value ended in the piece after plays its start in clear", name)
		}
	}
	// More than BulkContext bytes that render as nothing between the
	// parts: not judged within bounds, so not shown.
	piece := filler[:20000] + "4802" + strings.Repeat("\x00", gateway.BulkContext+100) + "851889592158\n" + filler[:20000]
	got := string(gateway.BulkText(nil, []byte(piece), nil, false, 24, 80, false, []byte("[BINARY]")))
	if clear(got) || !strings.Contains(got, "[BINARY]") {
		t.Errorf("a run of %d NULs between the parts: both in clear %v, binary %d", gateway.BulkContext+100, clear(got), strings.Count(got, "[BINARY]"))
	}
}
