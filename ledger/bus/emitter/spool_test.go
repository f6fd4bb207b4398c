package emitter_test

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/auditledger/auditledger/events"
	"github.com/auditledger/auditledger/ledger/bus"
	"github.com/auditledger/auditledger/ledger/bus/emitter"
	"github.com/auditledger/auditledger/test/natstest"
)

// quiet is a logger for emitters whose damage reports the test checks
// through SpoolDamage instead.
func quiet() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// storedIDs counts the events on AUDIT_EVENTS by id.
func storedIDs(t *testing.T, js jetstream.JetStream) map[string]int {
	t.Helper()
	ids := map[string]int{}
	for _, s := range natstest.Events(t, js, "AUDIT_EVENTS") {
		ids[s.Event.ID]++
	}
	return ids
}

func waitDrained(t *testing.T, em *emitter.Emitter) {
	t.Helper()
	natstest.CheckFor(t, 60*time.Second, 20*time.Millisecond, func() error {
		if em.Spooled() {
			return errors.New("spool not drained")
		}
		return nil
	})
}

// flip damages one byte of the file at off, in place (the same file an
// open spool reads).
func flip(t *testing.T, path string, off int64) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var b [1]byte
	if _, err := f.ReadAt(b[:], off); err != nil {
		t.Fatal(err)
	}
	b[0] ^= 0x40
	if _, err := f.WriteAt(b[:], off); err != nil {
		t.Fatal(err)
	}
}

// TestSpoolRecoveryCrash: opening a damaged spool rewrites it; a crash at
// any step of that rewrite, then a restart, still delivers every intact
// undelivered event (the bus drops by id what it had already), and skips
// none. The entries are all the same size, so a stale position would fall
// on an entry boundary of the rewritten file and look valid.
func TestSpoolRecoveryCrash(t *testing.T) {
	for _, step := range []string{"quarantined", "log-renamed", "pos-reset"} {
		t.Run(step, func(t *testing.T) {
			js, natsDir, port, spoolDir := spoolWhileDown(t, 40)
			natstest.StartIn(t, natsDir, port)
			// The first 10 were delivered before: on the bus, and past the
			// spool's position.
			natstest.CheckFor(t, 60*time.Second, 50*time.Millisecond, func() error {
				for i := range 10 {
					raw, _ := event(i).Marshal()
					msg := nats.NewMsg(bus.Subject("acme", events.CommandExecuted, "t1"))
					msg.Data = raw
					msg.Header.Set(nats.MsgIdHdr, event(i).ID)
					if _, err := js.PublishMsg(t.Context(), msg); err != nil {
						return err
					}
				}
				return nil
			})
			if err := emitter.SpoolDelivered(spoolDir, 10); err != nil {
				t.Fatal(err)
			}
			offs, logPath, err := emitter.SpoolEntries(spoolDir)
			if err != nil || len(offs) != 30 {
				t.Fatalf("%d undelivered entries (%v), want 30", len(offs), err)
			}
			flip(t, logPath, offs[20]+20) // event 30

			emitter.CrashAt(step)
			stopped := make(chan struct{})
			go func() { // stopped at the step, never returns
				defer close(stopped)
				if em, err := emitter.New(emitter.Config{JetStream: js, SpoolDir: spoolDir, Timeout: time.Second, Logger: quiet()}); err == nil {
					em.Close()
				}
			}()
			<-stopped
			emitter.CrashAt("")
			if c := emitter.Crashed(); c != step {
				t.Fatalf("recovery did not stop at step %q", step)
			}

			em, err := emitter.New(emitter.Config{JetStream: js, SpoolDir: spoolDir, Timeout: time.Second, Logger: quiet()})
			if err != nil {
				t.Fatal(err)
			}
			defer em.Close()
			waitDrained(t, em)
			ids := storedIDs(t, js)
			for i := range 40 {
				if want := i != 30; (ids[event(i).ID] > 0) != want {
					t.Errorf("event %d stored %d times after a crash at %q", i, ids[event(i).ID], step)
				}
			}
		})
	}
}

// TestSpoolDamagedWhileDraining: damage found while the drainer delivers
// a running emitter's spool is reported (SpoolDamage, a counter, a log
// line with its offset), its bytes kept in a quarantine file, and skipped
// past to the next intact entry, as when the spool is opened: every
// intact event is delivered, and the spool empties. Both an unreadable
// entry and a readable one that is no event are damage.
func TestSpoolDamagedWhileDraining(t *testing.T) {
	cases := map[string]func(t *testing.T, path string, off, size int64){
		"flipped byte": func(t *testing.T, path string, off, size int64) { flip(t, path, off+20) },
		"entry that is no event": func(t *testing.T, path string, off, size int64) {
			data := []byte(`{"not":"` + strings.Repeat("x", int(size)-8-10) + `"}`)
			b := binary.BigEndian.AppendUint32(nil, uint32(len(data)))
			b = binary.BigEndian.AppendUint32(b, crc32.Checksum(data, crc32.MakeTable(crc32.Castagnoli)))
			f, err := os.OpenFile(path, os.O_RDWR, 0)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			if _, err := f.WriteAt(append(b, data...), off); err != nil {
				t.Fatal(err)
			}
		},
	}
	for name, damage := range cases {
		t.Run(name, func(t *testing.T) {
			natsDir, spoolDir := t.TempDir(), t.TempDir()
			srv := natstest.StartIn(t, natsDir, -1)
			port := srv.Addr().(*net.TCPAddr).Port
			_, js := srv.Connect(t, nats.MaxReconnects(-1), nats.ReconnectWait(50*time.Millisecond), nats.ReconnectBufSize(-1))
			if _, err := js.CreateStream(t.Context(), jetstream.StreamConfig{Name: "AUDIT_EVENTS", Subjects: []string{"audit.events.>", bus.BatchSubjects}}); err != nil {
				t.Fatal(err)
			}
			srv.Shutdown()
			srv.WaitForShutdown()
			var logs lockedBuffer
			em, err := emitter.New(emitter.Config{JetStream: js, SpoolDir: spoolDir, Timeout: 5 * time.Second,
				Logger: slog.New(slog.NewTextHandler(&logs, nil))})
			if err != nil {
				t.Fatal(err)
			}
			defer em.Close()
			for i := range 40 {
				if r, err := em.Emit(t.Context(), event(i)); err != nil || !r.Spooled {
					t.Fatalf("event %d with the bus down: %+v, %v", i, r, err)
				}
			}
			// Damaged while the emitter waits for the bus.
			offs, logPath, err := emitter.SpoolEntries(spoolDir)
			if err != nil || len(offs) != 40 {
				t.Fatalf("%d entries (%v), want 40", len(offs), err)
			}
			size := offs[11] - offs[10]
			tried := em.Stats.SpoolRetries.Load()
			damage(t, logPath, offs[10], size)
			// The drainer may have read the entry intact just before: a
			// try that began after the damage fails before the bus
			// comes back (the one under way may count once).
			natstest.CheckFor(t, time.Minute, 10*time.Millisecond, func() error {
				if n := em.Stats.SpoolRetries.Load(); n < tried+2 {
					return fmt.Errorf("%d tries failed since the damage", n-tried)
				}
				return nil
			})

			natstest.StartIn(t, natsDir, port)
			waitDrained(t, em)
			ids := storedIDs(t, js)
			for i := range 40 {
				if want := i != 10; (ids[event(i).ID] == 1) != want {
					t.Errorf("event %d stored %d times", i, ids[event(i).ID])
				}
			}
			d := em.SpoolDamage()
			if len(d) != 1 || d[0].Offset != offs[10] || d[0].Length != size {
				t.Fatalf("damage reported: %v, want one region at offset %d of %d bytes", d, offs[10], size)
			}
			if b, err := os.ReadFile(d[0].Quarantine); err != nil || int64(len(b)) != size {
				t.Fatalf("quarantine %s: %v, %d bytes, want %d", d[0].Quarantine, err, len(b), size)
			}
			if n := em.Stats.SpoolDamaged.Load(); n != 1 {
				t.Errorf("damage counter %d, want 1", n)
			}
			if l := logs.String(); !strings.Contains(l, "level=ERROR") || !strings.Contains(l, fmt.Sprintf("offset %d", offs[10])) {
				t.Errorf("log does not report the damage at offset %d:\n%s", offs[10], l)
			}
			// The drained spool takes new events straight to the bus.
			if r, err := em.Emit(t.Context(), event(40)); err != nil || r.Spooled {
				t.Fatalf("after draining: %+v, %v", r, err)
			}
		})
	}
}

// TestSpoolDrainCrash: a crash while draining — after damage is
// quarantined and before the position moves past it, or after the drained
// log is emptied and before the position is reset — loses nothing: after
// a restart every intact event is delivered, and events spooled after the
// restart too.
func TestSpoolDrainCrash(t *testing.T) {
	for _, step := range []string{"damage-quarantined", "emptied"} {
		t.Run(step, func(t *testing.T) {
			natsDir, spoolDir := t.TempDir(), t.TempDir()
			srv := natstest.StartIn(t, natsDir, -1)
			port := srv.Addr().(*net.TCPAddr).Port
			nc, js := srv.Connect(t, nats.MaxReconnects(-1), nats.ReconnectWait(50*time.Millisecond), nats.ReconnectBufSize(-1))
			if _, err := js.CreateStream(t.Context(), jetstream.StreamConfig{Name: "AUDIT_EVENTS", Subjects: []string{"audit.events.>", bus.BatchSubjects}}); err != nil {
				t.Fatal(err)
			}
			var logs lockedBuffer // what the drainer says of its failed tries, for a failure's message
			down := func() {
				srv.Shutdown()
				srv.WaitForShutdown()
			}
			down()
			newEmitter := func() *emitter.Emitter {
				// A publish while the bus is down fails at once (the event
				// is spooled). The timeout is the drainer's wait for its
				// acknowledgements after the restart: the first batch there
				// may find JetStream not yet answering, which stops batching
				// for a minute, and one by one a race-detector build on busy
				// cores can take longer than 200 ms for ten acknowledgements,
				// try after try, past this test's minute.
				em, err := emitter.New(emitter.Config{JetStream: js, SpoolDir: spoolDir, Timeout: 2 * time.Second,
					Logger: slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelWarn}))})
				if err != nil {
					t.Fatal(err)
				}
				return em
			}
			em := newEmitter()
			for i := range 40 {
				if r, err := em.Emit(t.Context(), event(i)); err != nil || !r.Spooled {
					t.Fatalf("event %d with the bus down: %+v, %v", i, r, err)
				}
			}
			offs, logPath, err := emitter.SpoolEntries(spoolDir)
			if err != nil || len(offs) != 40 {
				t.Fatalf("%d entries (%v), want 40", len(offs), err)
			}
			flip(t, logPath, offs[10]+20)

			emitter.CrashAt(step)
			srv = natstest.StartIn(t, natsDir, port)
			natstest.CheckFor(t, 60*time.Second, 20*time.Millisecond, func() error {
				if emitter.Crashed() != step {
					return fmt.Errorf("the drainer has not reached %q: %d failed tries, the connection %s, its log:\n%s",
						step, em.Stats.SpoolRetries.Load(), nc.Status(), logs.String())
				}
				return nil
			})
			emitter.CrashAt("")
			em.Close() // the drainer is gone: as after a kill, nothing more happens

			// Restart with the bus down, spool more, then let the bus back.
			down()
			em = newEmitter()
			defer em.Close()
			for i := 40; i < 45; i++ {
				if r, err := em.Emit(t.Context(), event(i)); err != nil || !r.Spooled {
					t.Fatalf("event %d with the bus down: %+v, %v", i, r, err)
				}
			}
			natstest.StartIn(t, natsDir, port)
			waitDrained(t, em)
			ids := storedIDs(t, js)
			for i := range 45 {
				if want := i != 10; (ids[event(i).ID] > 0) != want {
					t.Errorf("event %d stored %d times after a crash at %q", i, ids[event(i).ID], step)
				}
			}
		})
	}
}

type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// TestSpoolDamageBeforeThePosition: bytes that held entries already
// delivered are not damage worth reporting (nothing can be lost); the
// entries after the position are delivered as usual.
func TestSpoolDamageBeforeThePosition(t *testing.T) {
	js, natsDir, port, spoolDir := spoolWhileDown(t, 40)
	offs, logPath, err := emitter.SpoolEntries(spoolDir)
	if err != nil || len(offs) != 40 {
		t.Fatalf("%d entries (%v), want 40", len(offs), err)
	}
	if err := emitter.SpoolDelivered(spoolDir, 20); err != nil {
		t.Fatal(err)
	}
	flip(t, logPath, offs[5]+20)
	em, err := emitter.New(emitter.Config{JetStream: js, SpoolDir: spoolDir, Timeout: 5 * time.Second, Logger: quiet()})
	if err != nil {
		t.Fatal(err)
	}
	defer em.Close()
	if d := em.SpoolDamage(); len(d) != 0 {
		t.Fatalf("damage reported in delivered entries: %v", d)
	}
	natstest.StartIn(t, natsDir, port)
	waitDrained(t, em)
	ids := storedIDs(t, js)
	for i := 20; i < 40; i++ {
		if ids[event(i).ID] != 1 {
			t.Errorf("event %d stored %d times", i, ids[event(i).ID])
		}
	}
}

// TestSpoolFromBeforeGenerations: a spool written by a version without
// the log header (entries from offset 0, an 8-byte position) is read as
// it stands: delivery resumes at its position, nothing reported damaged.
func TestSpoolFromBeforeGenerations(t *testing.T) {
	js, natsDir, port, _ := spoolWhileDown(t, 0)
	spoolDir := t.TempDir()
	var log []byte
	var pos uint64
	for i := range 40 {
		if i == 15 {
			pos = uint64(len(log))
		}
		raw, _ := event(i).Marshal()
		log = binary.BigEndian.AppendUint32(log, uint32(len(raw)))
		log = binary.BigEndian.AppendUint32(log, crc32.Checksum(raw, crc32.MakeTable(crc32.Castagnoli)))
		log = append(log, raw...)
	}
	if err := os.WriteFile(filepath.Join(spoolDir, "spool.log"), log, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(spoolDir, "spool.pos"), binary.BigEndian.AppendUint64(nil, pos), 0o600); err != nil {
		t.Fatal(err)
	}
	em, err := emitter.New(emitter.Config{JetStream: js, SpoolDir: spoolDir, Timeout: 5 * time.Second, Logger: quiet()})
	if err != nil {
		t.Fatal(err)
	}
	defer em.Close()
	if d := em.SpoolDamage(); len(d) != 0 {
		t.Fatalf("damage reported in a spool from before generations: %v", d)
	}
	natstest.StartIn(t, natsDir, port)
	waitDrained(t, em)
	ids := storedIDs(t, js)
	for i := range 40 {
		if want := i >= 15; (ids[event(i).ID] == 1) != want || ids[event(i).ID] > 1 {
			t.Errorf("event %d stored %d times (position at event 15)", i, ids[event(i).ID])
		}
	}
}
