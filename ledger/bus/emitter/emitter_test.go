package emitter_test

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/auditledger/auditledger/events"
	"github.com/auditledger/auditledger/events/eventstest"
	"github.com/auditledger/auditledger/ledger/bus"
	"github.com/auditledger/auditledger/ledger/bus/emitter"
	"github.com/auditledger/auditledger/test/natstest"
)

func event(i int) *events.Event { return eventstest.Command(fmt.Sprintf("ev-%03d", i), "") }

// TestSpoolWhileBusDown: with NATS stopped, events are spooled to disk
// (and survive a restart of the emitter); when NATS returns they are all
// delivered, in order, once each.
func TestSpoolWhileBusDown(t *testing.T) {
	natsDir, spoolDir := t.TempDir(), t.TempDir()
	srv := natstest.StartIn(t, natsDir, -1)
	port := srv.Addr().(*net.TCPAddr).Port
	_, js := srv.Connect(t, nats.MaxReconnects(-1), nats.ReconnectWait(50*time.Millisecond), nats.ReconnectBufSize(-1))
	if _, err := js.CreateStream(t.Context(), jetstream.StreamConfig{Name: "AUDIT_EVENTS", Subjects: []string{"audit.events.>", bus.BatchSubjects}}); err != nil {
		t.Fatal(err)
	}
	newEmitter := func() *emitter.Emitter {
		em, err := emitter.New(emitter.Config{JetStream: js, SpoolDir: spoolDir, Timeout: 300 * time.Millisecond})
		if err != nil {
			t.Fatal(err)
		}
		return em
	}
	em := newEmitter()
	for i := range 10 {
		r, err := em.Emit(t.Context(), event(i))
		if err != nil || r.Spooled || r.Seq != uint64(i+1) {
			t.Fatalf("event %d with the bus up: %+v, %v", i, r, err)
		}
	}

	srv.Shutdown()
	srv.WaitForShutdown()
	for i := 10; i < 20; i++ {
		r, err := em.Emit(t.Context(), event(i))
		if err != nil || !r.Spooled {
			t.Fatalf("event %d with the bus down: %+v, %v; want spooled", i, r, err)
		}
	}
	// The process restarts: the spool is on disk.
	if err := em.Close(); err != nil {
		t.Fatal(err)
	}
	em = newEmitter()
	defer em.Close()
	for i := 20; i < 30; i++ {
		if r, err := em.Emit(t.Context(), event(i)); err != nil || !r.Spooled {
			t.Fatalf("event %d after restart, bus down: %+v, %v; want spooled", i, r, err)
		}
	}

	natstest.StartIn(t, natsDir, port)
	natstest.CheckFor(t, 30*time.Second, 50*time.Millisecond, func() error {
		if em.Spooled() {
			return fmt.Errorf("spool not drained")
		}
		return nil
	})
	stored := natstest.Events(t, js, "AUDIT_EVENTS")
	if len(stored) != 30 {
		t.Fatalf("stream holds %d events, want 30", len(stored))
	}
	for i, st := range stored {
		if want := fmt.Sprintf("ev-%03d", i); st.Event.ID != want {
			t.Fatalf("stored event %d is %s, want %s (out of order)", i, st.Event.ID, want)
		}
	}
	// Once drained, events go straight to the bus again.
	if r, err := em.Emit(t.Context(), event(30)); err != nil || r.Spooled {
		t.Fatalf("after draining: %+v, %v", r, err)
	}
}

// TestSpoolTornEntry: a crash in the middle of appending leaves a partial
// entry, which was never reported as spooled; reopening cuts it off and
// keeps everything before it.
func TestSpoolTornEntry(t *testing.T) {
	js, natsDir, port, spoolDir := spoolWhileDown(t, 3)
	f, _ := os.OpenFile(filepath.Join(spoolDir, "spool.log"), os.O_WRONLY|os.O_APPEND, 0)
	f.Write([]byte{0, 0, 1, 0, 9, 9}) // half a header
	f.Close()
	em, err := emitter.New(emitter.Config{JetStream: js, SpoolDir: spoolDir, Timeout: 200 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer em.Close()
	natstest.StartIn(t, natsDir, port)
	natstest.CheckFor(t, 30*time.Second, 50*time.Millisecond, func() error {
		if em.Spooled() {
			return fmt.Errorf("spool not drained")
		}
		return nil
	})
	if stored := natstest.Events(t, js, "AUDIT_EVENTS"); len(stored) != 3 {
		t.Fatalf("stream holds %d events, want 3", len(stored))
	}
}

func ExampleSession() {
	s := &emitter.Session{ID: "sess-1"}
	a, b := event(1), event(2)
	s.Next(a)
	s.Next(b)
	fmt.Println(a.SessionID, a.SessionSeq, b.SessionSeq)
	// Output: sess-1 1 2
}

// TestCloseFencesThenDrains: events accepted before Close are stored even
// though their callers' contexts have ended; Close refuses new ones; with
// the bus gone, what Close cannot deliver in time goes to the spool.
func TestCloseFencesThenDrains(t *testing.T) {
	natsDir, spoolDir := t.TempDir(), t.TempDir()
	srv := natstest.StartIn(t, natsDir, -1)
	_, js := srv.Connect(t, nats.MaxReconnects(-1), nats.ReconnectWait(50*time.Millisecond))
	if _, err := js.CreateStream(t.Context(), jetstream.StreamConfig{Name: "AUDIT_EVENTS", Subjects: []string{"audit.events.>", bus.BatchSubjects}}); err != nil {
		t.Fatal(err)
	}
	em, _ := emitter.New(emitter.Config{JetStream: js, SpoolDir: spoolDir, Timeout: 200 * time.Millisecond, DrainTimeout: time.Second})
	var mu sync.Mutex
	results := map[string]emitter.Result{}
	for i := range 50 {
		ctx, cancel := context.WithCancel(t.Context())
		if err := em.EmitAsync(ctx, event(i), func(r emitter.Result) { mu.Lock(); results[r.ID] = r; mu.Unlock() }); err != nil {
			t.Fatal(err)
		}
		cancel() // the session that emitted it is gone
	}
	if err := em.Close(); err != nil {
		t.Fatal(err)
	}
	if err := em.EmitAsync(t.Context(), event(99), func(emitter.Result) {}); !errors.Is(err, emitter.ErrClosed) {
		t.Fatalf("EmitAsync after Close: %v, want ErrClosed", err)
	}
	if _, err := em.Emit(t.Context(), event(98)); !errors.Is(err, emitter.ErrClosed) {
		t.Fatalf("Emit after Close: %v, want ErrClosed", err)
	}
	for i := range 50 {
		if r := results[event(i).ID]; r.Err != nil || r.Seq == 0 {
			t.Fatalf("event %d: %+v, want stored", i, r)
		}
	}

	// With the bus gone, Close's deadline sends the waiting events to the
	// spool instead of dropping them.
	em, _ = emitter.New(emitter.Config{JetStream: js, SpoolDir: spoolDir, Timeout: 5 * time.Second, DrainTimeout: 300 * time.Millisecond})
	srv.Shutdown()
	srv.WaitForShutdown()
	results = map[string]emitter.Result{}
	for i := 100; i < 110; i++ {
		em.EmitAsync(t.Context(), event(i), func(r emitter.Result) { mu.Lock(); results[r.ID] = r; mu.Unlock() })
	}
	if err := em.Close(); err != nil {
		t.Fatal(err)
	}
	for i := 100; i < 110; i++ {
		if r := results[event(i).ID]; r.Err != nil || !r.Spooled {
			t.Fatalf("event %d at Close with the bus down: %+v, want spooled", i, r)
		}
	}
}

// TestSpoolDamage: a damaged spool gives up only the bytes it cannot
// read. Every intact entry is delivered once, the damage is reported and
// its bytes kept in a quarantine file, and nothing intact is cut off.
func TestSpoolDamage(t *testing.T) {
	entryOffsets := func(b []byte) []int {
		var offs []int
		off := 0
		if bytes.HasPrefix(b, []byte("ALSPOOL1")) {
			off = 20 // the header
		}
		for off+8 <= len(b) {
			offs = append(offs, off)
			off += 8 + int(binary.BigEndian.Uint32(b[off:]))
		}
		return offs
	}
	cases := []struct {
		name    string
		damage  func(t *testing.T, dir string, log []byte, offs []int)
		want    int // events delivered of 40
		damaged bool
	}{
		{"flipped byte in entry 10", func(t *testing.T, dir string, log []byte, offs []int) {
			log[offs[10]+20] ^= 0x40
			os.WriteFile(filepath.Join(dir, "spool.log"), log, 0o600)
		}, 39, true},
		{"entry 10 cut short", func(t *testing.T, dir string, log []byte, offs []int) {
			cut := append(append([]byte{}, log[:offs[10]+30]...), log[offs[11]:]...)
			os.WriteFile(filepath.Join(dir, "spool.log"), cut, 0o600)
		}, 39, true},
		{"position inside an entry", func(t *testing.T, dir string, log []byte, offs []int) {
			// generation (the log's, from its header) ‖ offset ‖ CRC-32C
			p := append(append([]byte{}, log[8:16]...), binary.BigEndian.AppendUint64(nil, uint64(offs[5]+3))...)
			p = binary.BigEndian.AppendUint32(p, crc32.Checksum(p, crc32.MakeTable(crc32.Castagnoli)))
			os.WriteFile(filepath.Join(dir, "spool.pos"), p, 0o600)
		}, 40, true},
		{"garbage appended", func(t *testing.T, dir string, log []byte, offs []int) {
			os.WriteFile(filepath.Join(dir, "spool.log"), append(log, []byte("\x00\x00\x01\x00garbage that frames nothing")...), 0o600)
		}, 40, true},
		{"intact", func(*testing.T, string, []byte, []int) {}, 40, false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			js, natsDir, port, spoolDir := spoolWhileDown(t, 40)
			log, _ := os.ReadFile(filepath.Join(spoolDir, "spool.log"))
			offs := entryOffsets(log)
			if len(offs) != 40 {
				t.Fatalf("%d entries in the spool, want 40", len(offs))
			}
			c.damage(t, spoolDir, log, offs)

			em, err := emitter.New(emitter.Config{JetStream: js, SpoolDir: spoolDir, Timeout: 200 * time.Millisecond, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
			if err != nil {
				t.Fatal(err)
			}
			defer em.Close()
			if d := em.SpoolDamage(); (len(d) > 0) != c.damaged {
				t.Fatalf("damage reported: %v, want %v", d, c.damaged)
			}
			for _, d := range em.SpoolDamage() {
				if d.Offset >= 0 {
					if b, err := os.ReadFile(d.Quarantine); err != nil || int64(len(b)) != d.Length {
						t.Fatalf("quarantine %s: %v, %d bytes, want %d", d.Quarantine, err, len(b), d.Length)
					}
				}
			}
			natstest.StartIn(t, natsDir, port)
			natstest.CheckFor(t, 30*time.Second, 20*time.Millisecond, func() error {
				if em.Spooled() {
					return fmt.Errorf("spool not drained")
				}
				return nil
			})
			stored := natstest.Events(t, js, "AUDIT_EVENTS")
			ids := map[string]int{}
			for _, s := range stored {
				ids[s.Event.ID]++
			}
			if len(stored) != c.want || len(ids) != c.want {
				t.Fatalf("delivered %d events (%d distinct), want %d", len(stored), len(ids), c.want)
			}
			for i := range 40 {
				if i != 10 && ids[event(i).ID] != 1 {
					t.Fatalf("intact event %d delivered %d times", i, ids[event(i).ID])
				}
			}
		})
	}
}

// spoolWhileDown spools n events with the bus down and closes the
// emitter; the server can be started again on natsDir and port.
func spoolWhileDown(t *testing.T, n int) (js jetstream.JetStream, natsDir string, port int, spoolDir string) {
	t.Helper()
	natsDir, spoolDir = t.TempDir(), t.TempDir()
	srv := natstest.StartIn(t, natsDir, -1)
	port = srv.Addr().(*net.TCPAddr).Port
	_, js = srv.Connect(t, nats.MaxReconnects(-1), nats.ReconnectWait(50*time.Millisecond), nats.ReconnectBufSize(-1))
	js.CreateStream(t.Context(), jetstream.StreamConfig{Name: "AUDIT_EVENTS", Subjects: []string{"audit.events.>", bus.BatchSubjects}})
	srv.Shutdown()
	srv.WaitForShutdown()
	em, _ := emitter.New(emitter.Config{JetStream: js, SpoolDir: spoolDir, Timeout: 100 * time.Millisecond})
	for i := range n {
		if r, _ := em.Emit(t.Context(), event(i)); !r.Spooled {
			t.Fatalf("event %d not spooled", i)
		}
	}
	em.Close()
	return js, natsDir, port, spoolDir
}

// TestGroupCommit: events emitted from many goroutines are stored in
// groups — batch messages, one acknowledgement each — every event once,
// and each caller is told the stream sequence of the message that holds
// its event. A stream set up before batches (no batch subjects) gets
// single publishes instead, and loses nothing either.
func TestGroupCommit(t *testing.T) {
	for _, batches := range []bool{true, false} {
		t.Run(fmt.Sprintf("batch-subjects=%v", batches), func(t *testing.T) {
			srv := natstest.StartIn(t, t.TempDir(), -1)
			_, js := srv.Connect(t)
			subjects := []string{"audit.events.>"}
			if batches {
				subjects = append(subjects, bus.BatchSubjects)
			}
			s, err := js.CreateStream(t.Context(), jetstream.StreamConfig{Name: "AUDIT_EVENTS", Subjects: subjects})
			if err != nil {
				t.Fatal(err)
			}
			em, err := emitter.New(emitter.Config{JetStream: js, MaxBatch: 50, Groups: 2, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
			if err != nil {
				t.Fatal(err)
			}
			defer em.Close()
			const n = 2000
			var mu sync.Mutex
			seqOf := map[string]uint64{}
			var wg sync.WaitGroup
			for g := range 20 {
				wg.Go(func() {
					for i := g; i < n; i += 20 {
						err := em.EmitAsync(t.Context(), event(i), func(r emitter.Result) {
							mu.Lock()
							defer mu.Unlock()
							if r.Err != nil || r.Spooled || r.Seq == 0 {
								t.Errorf("event %s: %+v", r.ID, r)
							}
							seqOf[r.ID] = r.Seq
						})
						if err != nil {
							t.Error(err)
						}
					}
				})
			}
			wg.Wait()
			em.Wait()
			stored := natstest.Events(t, js, "AUDIT_EVENTS")
			count := map[string]int{}
			for _, st := range stored {
				count[st.Event.ID]++
			}
			if len(stored) != n || len(count) != n {
				t.Fatalf("stream holds %d events (%d distinct), want %d, each once", len(stored), len(count), n)
			}
			for id, seq := range seqOf {
				m, err := s.GetMsg(t.Context(), seq)
				if err != nil {
					t.Fatalf("event %s reported at sequence %d: %v", id, seq, err)
				}
				if !bytes.Contains(m.Data, []byte(`"id":"`+id+`"`)) {
					t.Fatalf("event %s reported at sequence %d, which does not hold it", id, seq)
				}
			}
			grouped := em.Stats.GroupedEvents.Load()
			if batches && grouped == 0 || !batches && grouped != 0 {
				t.Fatalf("%d events stored in batches (batch subjects: %v)", grouped, batches)
			}
			info, _ := s.Info(t.Context())
			t.Logf("%d messages for %d events: %d batches of %d events, %d single publishes, %d batches not taken",
				info.State.Msgs, n, em.Stats.Groups.Load(), grouped, em.Stats.Singles.Load(), em.Stats.GroupsRefused.Load())
		})
	}
}

// TestEmitAloneKeepsJetStreamDedup: an event emitted alone goes in a
// message of its own with its id as Nats-Msg-Id even while groups are
// being batched, so a second producer's copy of the same id is dropped by
// the stream, not stored beside it.
func TestEmitAloneKeepsJetStreamDedup(t *testing.T) {
	srv := natstest.StartIn(t, t.TempDir(), -1)
	_, js := srv.Connect(t)
	if _, err := js.CreateStream(t.Context(), jetstream.StreamConfig{Name: "AUDIT_EVENTS", Subjects: []string{"audit.events.>", bus.BatchSubjects}}); err != nil {
		t.Fatal(err)
	}
	a, _ := emitter.New(emitter.Config{JetStream: js})
	b, _ := emitter.New(emitter.Config{JetStream: js})
	defer a.Close()
	defer b.Close()
	var wg sync.WaitGroup
	for i := range 400 {
		wg.Go(func() { a.Emit(t.Context(), event(1000+i)) }) // batches form meanwhile
		if i%50 == 0 {
			wg.Go(func() {
				ra, err := a.EmitAlone(t.Context(), event(i))
				if err != nil {
					t.Error(err)
				}
				rb, err := b.EmitAlone(t.Context(), event(i))
				if err != nil {
					t.Error(err)
				}
				// The second copy is reported as one the bus held already.
				if ra.Duplicate || !rb.Duplicate || ra.Seq != rb.Seq {
					t.Errorf("event %s twice: first %+v, second %+v", ra.ID, ra, rb)
				}
			})
		}
	}
	wg.Wait()
	count := map[string]int{}
	for _, st := range natstest.Events(t, js, "AUDIT_EVENTS") {
		count[st.Event.ID]++
	}
	for i := 0; i < 400; i += 50 {
		if n := count[event(i).ID]; n != 1 {
			t.Errorf("event %s emitted alone by two producers is stored %d times", event(i).ID, n)
		}
	}
	if a.Stats.Groups.Load() == 0 {
		t.Fatal("no batch formed: the test did not run alone events beside batches")
	}
}

// TestEmitLaterRidesWithTheNext: an event given to EmitLater waits for
// the next event someone waits on and is stored in the same message; with
// none to come it is stored after LaterWait on its own; Close stores what
// is still held at once.
func TestEmitLaterRidesWithTheNext(t *testing.T) {
	srv := natstest.StartIn(t, t.TempDir(), -1)
	_, js := srv.Connect(t)
	s, err := js.CreateStream(t.Context(), jetstream.StreamConfig{Name: "AUDIT_EVENTS", Subjects: []string{"audit.events.>", bus.BatchSubjects}})
	if err != nil {
		t.Fatal(err)
	}
	em, err := emitter.New(emitter.Config{JetStream: js, LaterWait: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	later := make(chan emitter.Result, 1)
	if err := em.EmitLater(t.Context(), event(1), func(r emitter.Result) { later <- r }); err != nil {
		t.Fatal(err)
	}
	select {
	case r := <-later:
		t.Fatalf("held event stored on its own before anything else came: %+v", r)
	case <-time.After(50 * time.Millisecond):
	}
	r, err := em.Emit(t.Context(), event(2))
	if err != nil {
		t.Fatal(err)
	}
	rl := <-later
	if rl.Err != nil || rl.Seq != r.Seq || em.Stats.Groups.Load() != 1 || em.Stats.GroupedEvents.Load() != 2 {
		t.Fatalf("held event %+v, the next %+v, %d groups of %d events: want both in one message", rl, r, em.Stats.Groups.Load(), em.Stats.GroupedEvents.Load())
	}
	// Nothing follows: Close stores it without waiting out LaterWait.
	if err := em.EmitLater(t.Context(), event(3), func(r emitter.Result) { later <- r }); err != nil {
		t.Fatal(err)
	}
	closed := make(chan struct{})
	go func() { em.Close(); close(closed) }()
	select {
	case rl = <-later:
	case <-time.After(10 * time.Second):
		t.Fatal("Close did not store the held event")
	}
	<-closed
	if rl.Err != nil || rl.Seq == 0 {
		t.Fatalf("held event at Close: %+v", rl)
	}

	// With a short LaterWait, a lone held event is stored on its own.
	em2, _ := emitter.New(emitter.Config{JetStream: js, LaterWait: 5 * time.Millisecond})
	defer em2.Close()
	if err := em2.EmitLater(t.Context(), event(4), func(r emitter.Result) { later <- r }); err != nil {
		t.Fatal(err)
	}
	select {
	case rl = <-later:
	case <-time.After(10 * time.Second):
		t.Fatal("a lone held event was not stored after LaterWait")
	}
	if rl.Err != nil || rl.Seq == 0 {
		t.Fatalf("lone held event: %+v", rl)
	}
	info, _ := s.Info(t.Context())
	if info.State.Msgs != 3 {
		t.Fatalf("stream holds %d messages, want 3 (one batch of two, two singles)", info.State.Msgs)
	}
}
