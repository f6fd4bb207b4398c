package ingest_test

import (
	"bytes"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/auditledger/auditledger/events"
	"github.com/auditledger/auditledger/ledger"
	"github.com/auditledger/auditledger/ledger/bus"
	"github.com/auditledger/auditledger/ledger/ingest"
	"github.com/auditledger/auditledger/test/natstest"
)

// TestClockStatusSealed: with a clock to read, the writer seals its
// status (the kernel's adjtimex, read for real) as ledger.clock.status
// when it starts and again every ClockEvery, between batches; the log
// verifies, and each record says what the kernel said.
func TestClockStatusSealed(t *testing.T) {
	h := newHarness(t)
	_, l, stop := h.startWith(ingest.Config{BatchSize: 50,
		Clock: func() ledger.ClockStatus { return ledger.ReadClockStatus("chrony: time.test") }, ClockEvery: 200 * time.Millisecond})
	defer stop()
	h.emit(0, 5)
	clocks := func() ([]ledger.ClockStatus, []uint64) {
		return sealedOf[ledger.ClockStatus](h, events.LedgerClockStatus, "ledger/clock/")
	}
	natstest.CheckFor(t, 30*time.Second, 50*time.Millisecond, func() error {
		if st, _ := clocks(); len(st) < 3 || l.Size() < 8 {
			return fmt.Errorf("%d clock records, log size %d", len(st), l.Size())
		}
		return nil
	})
	st, idx := clocks()
	if idx[0] != 0 {
		t.Errorf("the first clock record is at index %d, want 0 (sealed when the writer starts)", idx[0])
	}
	for i, s := range st {
		if s.Source != "chrony: time.test" || s.Host == "" {
			t.Errorf("clock record %d: %+v, want the named source and the host", idx[i], s)
		}
		if s.ReadError == "" && (s.MaxErrorMicros < 0 || s.EstErrorMicros < 0) {
			t.Errorf("clock record %d: %+v: negative errors", idx[i], s)
		}
		if s.ReadError != "" && s.Synchronised {
			t.Errorf("clock record %d: unread (%s) but synchronised", idx[i], s.ReadError)
		}
	}
	// What the kernel says now, the way adjtimex reports it.
	now := ledger.ReadClockStatus("")
	t.Logf("kernel clock: synchronised %v, maxerror %d µs, esterror %d µs, status %#x, read error %q", now.Synchronised, now.MaxErrorMicros, now.EstErrorMicros, now.Status, now.ReadError)
	if st[len(st)-1].ReadError != now.ReadError || st[len(st)-1].Synchronised != now.Synchronised {
		t.Errorf("sealed %+v, the kernel says %+v", st[len(st)-1], now)
	}
	rep, err := ledger.Verify(t.Context(), h.store, ledger.VerifyOptions{Verifier: h.signer.Verifier()})
	if err != nil {
		t.Fatalf("verify: %v", err)
	}
	if rep.Size != l.Size() {
		t.Errorf("verified %d records, log holds %d", rep.Size, l.Size())
	}
}

// TestLegacySessionSeqZeroRefused: the writer refuses an event in the
// legacy form ("session_seq":0 without session_id), which verify accepts
// only in records sealed before; what events.Encode writes outside a
// session holds neither member.
func TestLegacySessionSeqZeroRefused(t *testing.T) {
	h := newHarness(t)
	_, l, stop := h.start(50)
	defer stop()
	ev := event(1)
	b, err := ev.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(b, []byte("session_seq")) || events.Legacy(b) != "" {
		t.Fatalf("an event outside a session encodes as %s", b)
	}
	legacy := bytes.Replace(b, []byte(`,"payload"`), []byte(`,"session_seq":0,"payload"`), 1)
	if events.Legacy(legacy) == "" {
		t.Fatalf("not seen as legacy: %s", legacy)
	}
	if _, err := events.Parse(legacy); err != nil {
		t.Fatalf("readers accept the legacy form in sealed records: %v", err)
	}
	m := nats.NewMsg(bus.Subject(ev.Tenant, ev.Type, ev.Source.Instance))
	m.Data, m.Header = legacy, nats.Header{nats.MsgIdHdr: []string{ev.ID}}
	if _, err := h.js.PublishMsg(t.Context(), m); err != nil {
		t.Fatal(err)
	}
	h.emit(2, 1)
	natstest.CheckFor(t, 20*time.Second, 20*time.Millisecond, func() error {
		if l.Size() != 2 {
			return fmt.Errorf("sealed %d", l.Size())
		}
		return nil
	})
	s, _ := h.js.Stream(t.Context(), bus.RejectStream)
	rm, err := s.GetMsg(t.Context(), 1)
	if err != nil {
		t.Fatal(err)
	}
	if reason := rm.Header.Get(bus.HeaderReason); !strings.Contains(reason, "session_seq") {
		t.Errorf("rejected for %q, want the legacy form named", reason)
	}
}
