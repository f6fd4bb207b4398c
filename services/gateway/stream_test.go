package gateway_test

import (
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	mathrand "math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/auditledger/auditledger/events"
	"github.com/auditledger/auditledger/services/gateway"
	"github.com/auditledger/auditledger/test/natstest"
)

// outputs returns the session.output events stored, by offset.
func outputs(got []natstest.Stored) []natstest.Stored {
	var out []natstest.Stored
	for _, st := range got {
		if st.Event.Type == events.SessionOutput {
			out = append(out, st)
		}
	}
	slices.SortFunc(out, func(a, b natstest.Stored) int {
		return int(a.Payload["offset"].(float64) - b.Payload["offset"].(float64))
	})
	return out
}

// A stream is recorded in chunks of at most 16 KiB, each with its offset
// and digest, which together are the stream's bytes.
func TestStreamChunks(t *testing.T) {
	b := startBus(t, true)
	g := newGateway(t, b.em, nil)
	s := g.Session(events.Target{Kind: "ssh"})
	s.Authenticated(alice)
	data := make([]byte, 40000)
	for i := range data { // text: random words no detector finds anything in
		data[i] = "abcdefghijklmnopqrstuvwxyz \n"[mathrand.IntN(28)]
	}
	st := s.Stream("stdout", gateway.StreamConfig{FlushAfter: time.Hour})
	st.Write(data[:100])
	st.Write(data[100:])
	st.Close()
	if _, err := st.Write([]byte("x")); !errors.Is(err, gateway.ErrStreamClosed) {
		t.Errorf("write after Close: %v, want ErrStreamClosed", err)
	}
	chunks := outputs(b.stored(t, 3))
	var joined []byte
	for i, c := range chunks {
		raw, err := base64.StdEncoding.DecodeString(c.Payload["data"].(string))
		if err != nil {
			t.Fatal(err)
		}
		sum := sha256.Sum256(raw)
		if c.Payload["stream"] != "stdout" || int(c.Payload["offset"].(float64)) != len(joined) || int(c.Payload["bytes"].(float64)) != len(raw) ||
			c.Payload["sha256"] != hex.EncodeToString(sum[:]) || len(raw) > gateway.DefaultMaxChunk {
			t.Errorf("chunk %d: %v", i, c.Payload)
		}
		joined = append(joined, raw...)
	}
	if len(chunks) != 3 || !bytes.Equal(joined, data) {
		t.Fatalf("%d chunks holding %d bytes, want 3 holding the 40,000 written", len(chunks), len(joined))
	}
}

// A chunk that does not fill up is recorded after FlushAfter, without
// waiting for more bytes or for Close, but for the last MaxHeld bytes of
// its text, which wait for more bytes or Close whatever the time.
func TestStreamFlushAfter(t *testing.T) {
	b := startBus(t, true)
	g := newGateway(t, b.em, nil)
	s := g.Session(events.Target{Kind: "ssh"})
	st := s.Stream("stdout", gateway.StreamConfig{FlushAfter: 20 * time.Millisecond})
	text := bytes.Repeat([]byte("hello "), gateway.MaxHeld/6+10)
	st.Write(text)
	first := outputs(b.stored(t, 1))
	want := text[:len(text)-gateway.MaxHeld]
	if first[0].Payload["data"] != base64.StdEncoding.EncodeToString(want) {
		t.Fatalf("first chunk %v, want the %d bytes before the held tail", first[0].Payload, len(want))
	}
	st.Write([]byte("!"))
	st.Close()
	all := outputs(b.stored(t, 2))
	if all[1].Payload["offset"] != float64(len(want)) || all[1].Payload["data"] != base64.StdEncoding.EncodeToString(append(text[len(want):], '!')) {
		t.Fatalf("second chunk %v", all[1].Payload)
	}
}

// A session the gateway never ended (it was killed) is recorded as
// ended, reason lost, when the gateway starts again on the same state
// directory: with the session's identity, the next sequence number, and
// the policy it ran under.
func TestLostSessionRecovered(t *testing.T) {
	b := startBus(t, true)
	state := t.TempDir()
	file, sum := writePolicy(t)
	pol, err := gateway.LoadPolicy(file, parseTestPolicy)
	if err != nil {
		t.Fatal(err)
	}
	withState := func(c *gateway.Config) { c.StateDir, c.Policy = state, pol.Info() }
	g := newGateway(t, b.em, withState)
	if err := g.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	done := g.Session(events.Target{Kind: "ssh", Name: "bastion"})
	done.Authenticated(alice)
	if err := done.Start(t.Context(), map[string]any{}); err != nil {
		t.Fatal(err)
	}
	done.End(t.Context(), map[string]any{}) // ended: nothing to recover
	s := g.Session(events.Target{Kind: "ssh", Name: "bastion"})
	s.Authenticated(alice)
	if err := s.Start(t.Context(), map[string]any{}); err != nil { // seq 1
		t.Fatal(err)
	}
	s.Record(t.Context(), events.CommandExecuted, map[string]any{"statement": "uptime"}) // seq 2
	out := s.Stream("stdout", gateway.StreamConfig{})
	out.Write([]byte("up 3 days\n"))
	out.Close()    // seq 3
	b.stored(t, 6) // policy.loaded, 2 of done, 3 of s
	// The process dies here: no End. Its journal stays behind.
	if files, _ := filepath.Glob(filepath.Join(state, "sessions", "*")); len(files) != 1 {
		t.Fatalf("journal holds %v, want the one open session", files)
	}

	// A second gateway cannot take the directory while the first holds it:
	// it would record the first one's live session as lost.
	if _, err := gateway.New(gateway.Config{Name: "second", Kind: "test-gateway", Tenant: "acme", Emitter: b.em, StateDir: state}); !errors.Is(err, gateway.ErrStateDirInUse) {
		t.Fatalf("a second gateway on %s: %v, want ErrStateDirInUse", state, err)
	}
	g.Close() // the process dies; the kernel drops its lock
	again := newGateway(t, b.em, withState)
	if err := again.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	got := b.stored(t, 8) // + policy.loaded, + the lost end
	var lost []natstest.Stored
	for _, st := range got {
		if st.Event.Type == events.SessionEnded && st.Payload["reason"] == "lost" {
			lost = append(lost, st)
		}
	}
	if len(lost) != 1 {
		t.Fatalf("%d lost ends recorded, want 1", len(lost))
	}
	ev, p := lost[0].Event, lost[0].Payload
	if ev.SessionID != s.ID() || ev.SessionSeq != 4 || ev.ID != s.ID()+".4" || p["last_seq"] != 3.0 {
		t.Errorf("lost end: id %s session %s seq %d last_seq %v, want %s.4", ev.ID, ev.SessionID, ev.SessionSeq, p["last_seq"], s.ID())
	}
	if ev.Actor.Subject != "alice" || ev.Target.Name != "bastion" || ev.Source.Kind != "test-gateway" || ev.Tenant != "acme" {
		t.Errorf("lost end: actor %+v target %+v source %+v tenant %s", ev.Actor, ev.Target, ev.Source, ev.Tenant)
	}
	if ref, _ := p["policy"].(map[string]any); ref["sha256"] != sum {
		t.Errorf("lost end: policy %v, want the digest %s", p["policy"], sum)
	}
	if files, _ := os.ReadDir(filepath.Join(state, "sessions")); len(files) != 0 {
		t.Errorf("journal still holds %v after recovery", files)
	}
}

// A journal entry that cannot be read stops the start: the gateway would
// otherwise lose track of a session for good.
func TestJournalDamageRefusesStart(t *testing.T) {
	b := startBus(t, true)
	state := t.TempDir()
	os.MkdirAll(filepath.Join(state, "sessions"), 0o700)
	os.WriteFile(filepath.Join(state, "sessions", "abc.session"), []byte("garbage"), 0o600)
	g := newGateway(t, b.em, func(c *gateway.Config) { c.StateDir = state })
	if err := g.Start(t.Context()); !errors.Is(err, gateway.ErrJournal) {
		t.Fatalf("Start: %v, want ErrJournal", err)
	}
}
