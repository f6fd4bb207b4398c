package siem_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/auditledger/auditledger/ledger/bus"
	"github.com/auditledger/auditledger/services/siem"
	"github.com/auditledger/auditledger/test/natstest"
	"github.com/auditledger/auditledger/test/siemtest"
)

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

// run runs f until the test ends.
func run(t *testing.T, f *siem.Forwarder) {
	t.Helper()
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- f.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
}

// delivered waits until the receiver holds every event ev-0 … ev-(n-1).
func delivered(t *testing.T, rcv *siemtest.Webhook, n int, within time.Duration) {
	t.Helper()
	natstest.CheckFor(t, within, 100*time.Millisecond, func() error {
		got := rcv.Got()
		missing := 0
		for i := range n {
			if got[fmt.Sprintf("ev-%d", i)] == 0 {
				missing++
			}
		}
		if missing > 0 || len(got) != n {
			return fmt.Errorf("the receiver has %d distinct events, %d of ev-0…ev-%d missing", len(got), missing, n-1)
		}
		return nil
	})
}

// Records sealed at a steady rate, in small segments, to a receiver that
// takes 150 ms per request: one request per segment, one at a time, would
// carry a fraction of them and fall behind without bound. Batches fill
// across segments and several are in flight, so the forwarder keeps up:
// every record arrives soon after the producer stops, in fewer requests
// than there are segments.
func TestForwarderKeepsUpWithASlowReceiver(t *testing.T) {
	_, js, emit := writerOn(t)
	rcv := siemtest.NewWebhook([]byte("k"))
	rcv.Slow(150 * time.Millisecond)
	srv := httptest.NewServer(rcv)
	defer srv.Close()
	f, err := siem.New(siem.Config{Name: "slow", JetStream: js, Destination: &siem.Webhook{URL: srv.URL, Secret: rcv.Secret}, Batch: 100,
		// Two requests out: fewer request slots per second (2 / 150 ms)
		// than segments sealed, so batches must take several segments.
		Inflight: 2, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	run(t, f)
	// 4,000 events at about 400 a second, each emitted alone: the writer
	// seals them in segments of a few records.
	const n, perTick = 4000, 4
	tick := time.NewTicker(10 * time.Millisecond)
	for i := 0; i < n; i += perTick {
		<-tick.C
		emit(i, perTick)
	}
	tick.Stop()
	// Generous: the fixed forwarder needs a few seconds; one request per
	// segment at 150 ms needs minutes.
	delivered(t, rcv, n, 60*time.Second)
	info, err := js.Stream(t.Context(), bus.LedgerStream)
	if err != nil {
		t.Fatal(err)
	}
	segments := info.CachedInfo().State.Msgs
	// Where each AUDIT_LEDGER message begins: a request whose records
	// straddle one of these took records of two messages. How many
	// segments the writer makes depends on how busy the cores are, so
	// the test asks for one such request, not for a ratio.
	starts := map[uint64]bool{}
	stream, err := js.Stream(t.Context(), bus.LedgerStream)
	if err != nil {
		t.Fatal(err)
	}
	for seq := uint64(1); seq <= info.CachedInfo().State.LastSeq; seq++ {
		m, err := stream.GetMsg(t.Context(), seq)
		if err != nil {
			t.Fatal(err)
		}
		first, err := strconv.ParseUint(m.Header.Get(bus.HeaderIndex), 10, 64)
		if err != nil {
			t.Fatal(err)
		}
		starts[first] = true
	}
	across := 0
	for _, b := range rcv.Batches() {
		for _, idx := range b[min(1, len(b)):] {
			if starts[idx] {
				across++
				break
			}
		}
	}
	if across == 0 {
		t.Errorf("none of %d requests carried records of two AUDIT_LEDGER messages (%d of them): batches do not fill across segments", rcv.RequestCount(), segments)
	}
	t.Logf("%d events in %d AUDIT_LEDGER messages, delivered in %d requests, %d of them across messages", n, segments, rcv.RequestCount(), across)
}

// hangOnce answers its first request never (until released), and passes
// the others on.
type hangOnce struct {
	next    http.Handler
	hung    atomic.Bool
	release chan struct{}
}

func (h *hangOnce) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if h.hung.CompareAndSwap(false, true) {
		<-h.release // not even the client going away ends it
		return
	}
	h.next.ServeHTTP(w, r)
}

// A receiver that never answers one request (its client has no timeout of
// its own) does not wedge the forwarder: the request is abandoned at its
// deadline, the batch sent again, and delivery goes on.
func TestForwarderSurvivesARequestThatNeverEnds(t *testing.T) {
	_, js, emit := writerOn(t)
	rcv := siemtest.NewWebhook([]byte("k"))
	h := &hangOnce{next: rcv, release: make(chan struct{})}
	srv := httptest.NewServer(h)
	defer srv.Close()
	defer close(h.release)
	// A client without a timeout of its own; the exchange's deadline
	// still ends the hung request.
	dest := &siem.Webhook{URL: srv.URL, Secret: rcv.Secret, Client: &http.Client{}, Timeout: 2 * time.Second}
	f, err := siem.New(siem.Config{Name: "hang", JetStream: js, Destination: dest, Batch: 10, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	run(t, f)
	emit(0, 100)
	delivered(t, rcv, 100, 60*time.Second)
	if !h.hung.Load() {
		t.Fatal("no request hung: the test proves nothing")
	}
}

// A forwarder killed with batches in flight (its connection gone, nothing
// acknowledged) is replaced by another: the newcomer takes back at once
// what the dead one held — not after JetStream's ack wait — and every
// record reaches the receiver, each index at least once.
func TestForwarderKilledMidBatch(t *testing.T) {
	t.Cleanup(siem.SetAckWait(10 * time.Minute))
	ns, js, emit := writerOn(t)
	rcv := siemtest.NewWebhook([]byte("k"))
	rcv.Slow(300 * time.Millisecond)
	srv := httptest.NewServer(rcv)
	defer srv.Close()
	dest := &siem.Webhook{URL: srv.URL, Secret: rcv.Secret}
	emit(0, 500)

	nc1, js1 := ns.Connect(t)
	f1, err := siem.New(siem.Config{Name: "killed", JetStream: js1, Destination: dest, Batch: 20, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	ctx1, kill := context.WithCancel(t.Context())
	var wg sync.WaitGroup
	wg.Go(func() { f1.Run(ctx1) })
	natstest.CheckFor(t, 60*time.Second, 10*time.Millisecond, func() error {
		if n := len(rcv.Got()); n == 0 {
			return fmt.Errorf("nothing delivered yet")
		}
		return nil
	})
	// The kill: the connection goes first, so no acknowledgement leaves.
	nc1.Close()
	kill()
	wg.Wait()
	if n := len(rcv.Got()); n >= 500 {
		t.Fatalf("all 500 delivered before the kill")
	}
	rcv.Slow(0)
	f2, err := siem.New(siem.Config{Name: "killed", JetStream: js, Destination: dest, Batch: 20, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	run(t, f2)
	// Well within the test's ack wait (10 minutes, below).
	delivered(t, rcv, 500, 60*time.Second)
}
