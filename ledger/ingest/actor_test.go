package ingest_test

import (
	"bytes"
	"crypto/rand"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/auditledger/auditledger/events"
	"github.com/auditledger/auditledger/ledger"
	"github.com/auditledger/auditledger/ledger/bus"
	"github.com/auditledger/auditledger/test/natstest"
)

// TestPersonalActorRefusedAndDuplicatesKeepNoBytes: the writer judges
// the whole event, the actor too. A card number as actor.subject (also
// behind "pseudonym:"), an address in actor.groups or actor.issuer, a
// card number in a digest's shape outside a digest member, or as an
// array of digits: each is rejected with its bytes kept nowhere (not in
// the log, not in AUDIT_REJECTED, erased from AUDIT_EVENTS). Such an
// event sent twice is refused twice for what it holds, never sealed and
// then kept whole as a duplicate.
func TestPersonalActorRefusedAndDuplicatesKeepNoBytes(t *testing.T) {
	h := newHarness(t)
	_, l, stop := h.start(50)
	t.Cleanup(stop)
	var b [6]byte
	rand.Read(b[:])
	email := fmt.Sprintf("jane.%x@example.org", b)
	c1, c2, c3, c4, c5 := card(t), card(t), card(t), card(t), card(t)
	secrets := []string{c1, c2, email, c3, c4, c5}
	var bad []*events.Event
	for i, mod := range []func(*events.Event){
		func(ev *events.Event) { ev.Actor.Subject = c1 },
		func(ev *events.Event) { ev.Actor.Subject = "pseudonym:" + c2 },
		func(ev *events.Event) { ev.Actor.Groups = []string{"admins", email} },
		func(ev *events.Event) { ev.Actor.Issuer = "https://idp.example/" + email },
		func(ev *events.Event) {
			ev.Payload = []byte(`{"note":"ab` + c3 + strings.Repeat("c", 46) + `"}`)
		},
		func(ev *events.Event) {
			ev.Payload = []byte(`{"d":[` + strings.Join(strings.Split(c4, ""), ",") + `]}`)
		},
	} {
		ev := event(100 + i)
		ev.ID = fmt.Sprintf("actor-%d", i)
		mod(ev)
		bad = append(bad, ev)
	}
	h.emit(0, 2)
	for _, ev := range bad {
		if _, err := h.em.Emit(t.Context(), ev); err != nil {
			t.Fatal(err)
		}
	}
	// An event with a personal actor twice in one batch: the second copy
	// is no duplicate of a sealed event (the first is refused too), and
	// neither keeps its bytes in AUDIT_REJECTED.
	twice := event(200)
	twice.ID, twice.Actor.Subject = "actor-twice", c5
	line, err := twice.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	m := nats.NewMsg(bus.BatchSubject(twice.Source.Instance))
	m.Data = bus.AppendBatch(bus.AppendBatch(nil, line), line)
	m.Header.Set(nats.MsgIdHdr, "batch/twice")
	if _, err := h.js.PublishMsg(t.Context(), m); err != nil {
		t.Fatal(err)
	}
	want := uint64(len(bad) + 2)
	natstest.CheckFor(t, 20*time.Second, 20*time.Millisecond, func() error {
		if l.Size() != 2+want || h.streamMsgs(bus.RejectStream) != want {
			return fmt.Errorf("sealed %d, rejected %d", l.Size(), h.streamMsgs(bus.RejectStream))
		}
		return nil
	})
	var sealed bytes.Buffer
	var reasons []string
	ledger.ReadRecords(t.Context(), h.store, 0, func(idx uint64, rec []byte) error {
		sealed.Write(rec)
		r, _ := ledger.ParseRecord(rec)
		if ev, err := events.Parse(r.Event); err == nil && ev.Type == events.LedgerRejected {
			reasons = append(reasons, string(ev.Payload))
		}
		return nil
	})
	if len(reasons) != int(want) {
		t.Fatalf("%d rejections, want %d", len(reasons), want)
	}
	for i, path := range []string{"actor.subject", "actor.subject", "actor.groups[1]", "actor.issuer", "payload.note", "payload.d"} {
		if !strings.Contains(reasons[i], path) {
			t.Errorf("rejection %d does not name %s: %s", i, path, reasons[i])
		}
	}
	for _, r := range reasons[len(bad):] {
		if !strings.Contains(r, `"actor-twice\" holds a value the credit_card detector finds at actor.subject`) {
			t.Errorf("a copy of the batched event is not refused as holding a value: %s", r)
		}
	}
	rs, _ := h.js.Stream(t.Context(), bus.RejectStream)
	for seq := uint64(1); seq <= want; seq++ {
		m, err := rs.GetMsg(t.Context(), seq)
		if err != nil {
			t.Fatal(err)
		}
		if len(m.Data) != 0 {
			t.Errorf("AUDIT_REJECTED %d keeps %d bytes (%s)", seq, len(m.Data), m.Header.Get(bus.HeaderReason))
		}
	}
	for _, v := range secrets {
		if bytes.Contains(sealed.Bytes(), []byte(v)) {
			t.Errorf("the log holds %q", v)
		}
	}
	es, _ := h.js.Stream(t.Context(), bus.EventsStream)
	natstest.CheckFor(t, 20*time.Second, 20*time.Millisecond, func() error {
		for seq := uint64(3); seq <= 3+uint64(len(bad)); seq++ {
			if _, err := es.GetMsg(t.Context(), seq); !errors.Is(err, jetstream.ErrMsgNotFound) {
				return fmt.Errorf("AUDIT_EVENTS still holds sequence %d: %v", seq, err)
			}
		}
		return nil
	})
	for _, v := range secrets {
		if storeHolds(t, h.srv.StoreDir, v) {
			t.Errorf("the NATS store directory still holds %q", v)
		}
	}
}
