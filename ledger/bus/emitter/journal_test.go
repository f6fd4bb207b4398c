package emitter_test

import (
	"context"
	"fmt"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/auditledger/auditledger/ledger/bus"
	"github.com/auditledger/auditledger/ledger/bus/emitter"
	"github.com/auditledger/auditledger/test/natstest"
)

// TestJournal: in journal mode every event is acknowledged once it is in
// the local journal (Spooled), whether or not the bus is up, many in one
// append when they come together; the drainer delivers every one to the
// bus, in order, once each — across a restart of the emitter with the
// bus down, and its return.
func TestJournal(t *testing.T) {
	natsDir, spoolDir := t.TempDir(), t.TempDir()
	srv := natstest.StartIn(t, natsDir, -1)
	port := srv.Addr().(*net.TCPAddr).Port
	_, js := srv.Connect(t, nats.MaxReconnects(-1), nats.ReconnectWait(50*time.Millisecond), nats.ReconnectBufSize(-1))
	if _, err := js.CreateStream(t.Context(), jetstream.StreamConfig{Name: "AUDIT_EVENTS", Subjects: []string{"audit.events.>", bus.BatchSubjects}}); err != nil {
		t.Fatal(err)
	}
	if _, err := emitter.New(emitter.Config{JetStream: js, Journal: true}); err == nil {
		t.Fatal("journal mode without a spool directory was accepted")
	}
	newEmitter := func() *emitter.Emitter {
		em, err := emitter.New(emitter.Config{JetStream: js, SpoolDir: spoolDir, Journal: true, Timeout: 300 * time.Millisecond, Logger: quiet()})
		if err != nil {
			t.Fatal(err)
		}
		return em
	}
	em := newEmitter()
	// One at a time, in order.
	for i := range 10 {
		if r, err := em.Emit(t.Context(), event(i)); err != nil || !r.Spooled || r.Seq != 0 {
			t.Fatalf("event %d: %+v, %v; want journaled", i, r, err)
		}
	}
	waitDrained(t, em)
	// Together: acknowledged as journaled, delivered once each.
	var wg sync.WaitGroup
	errs := make(chan error, 100)
	for i := 10; i < 110; i++ {
		wg.Go(func() {
			if r, err := em.Emit(context.Background(), event(i)); err != nil || !r.Spooled {
				errs <- fmt.Errorf("event %d: %+v, %v", i, r, err)
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	waitDrained(t, em)

	// The bus down: still acknowledged, kept through a restart.
	srv.Shutdown()
	srv.WaitForShutdown()
	for i := 110; i < 120; i++ {
		if r, err := em.Emit(t.Context(), event(i)); err != nil || !r.Spooled {
			t.Fatalf("event %d with the bus down: %+v, %v", i, r, err)
		}
	}
	em.Close()
	em = newEmitter()
	defer em.Close()
	for i := 120; i < 125; i++ {
		if r, err := em.Emit(t.Context(), event(i)); err != nil || !r.Spooled {
			t.Fatalf("event %d after a restart, the bus down: %+v, %v", i, r, err)
		}
	}
	natstest.StartIn(t, natsDir, port)
	waitDrained(t, em)
	ids := storedIDs(t, js)
	for i := range 125 {
		if n := ids[event(i).ID]; n != 1 {
			t.Errorf("event %d stored %d times, want once", i, n)
		}
	}
	stored := natstest.Events(t, js, "AUDIT_EVENTS")
	for i := range 10 {
		if want := event(i).ID; stored[i].Event.ID != want {
			t.Fatalf("stored event %d is %s, want %s (out of order)", i, stored[i].Event.ID, want)
		}
	}
	for i := 110; i < 125; i++ {
		if want := event(i).ID; stored[i].Event.ID != want {
			t.Fatalf("stored event %d is %s, want %s (out of order)", i, stored[i].Event.ID, want)
		}
	}
}
