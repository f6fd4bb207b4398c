package ingest_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/auditledger/auditledger/events"
	"github.com/auditledger/auditledger/ledger"
	"github.com/auditledger/auditledger/ledger/bus"
	"github.com/auditledger/auditledger/ledger/ingest"
	"github.com/auditledger/auditledger/test/natstest"
)

// lockedBuffer collects the ingester's logs, to search them.
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

// TestRejectionsFailClosed: whatever way a message fails, what it holds
// is judged and kept nowhere — a batch that is not newline-framed, a
// subject holding a card number, an escaped member name hiding the
// actor's plain e-mail, a header the reason quotes. Each is sealed as a
// rejection naming the detector, AUDIT_REJECTED keeps no bytes, the
// message is erased from AUDIT_EVENTS, and neither the log, the
// rejections nor the writer's logs hold the value.
func TestRejectionsFailClosed(t *testing.T) {
	h := newHarness(t)
	var logs lockedBuffer
	_, l, stop := h.startWith(ingest.Config{BatchSize: 50, Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	defer stop()

	c1, c2, c3 := card(t), card(t), card(t)
	email := fmt.Sprintf("jane.%s@example.org", c3[10:])
	secrets := []string{c1, c2, c3, email}
	var seqs []uint64
	publish := func(subject, data, id string) {
		t.Helper()
		m := nats.NewMsg(subject)
		m.Data = []byte(data)
		m.Header.Set(nats.MsgIdHdr, id)
		ack, err := h.js.PublishMsg(t.Context(), m)
		if err != nil {
			t.Fatal(err)
		}
		seqs = append(seqs, ack.Sequence)
	}
	// A batch without its final newline: SplitBatch refuses it.
	publish(bus.BatchSubject("t1"), `{"statement":"SELECT '`+c1+`'"}`, "b-1")
	// A card number in the subject's tenant, a body that is no event.
	publish("audit.events."+c2+".command_executed."+bus.ProducerToken("t1"), "x", "s-1")
	// The actor's e-mail in clear under an escaped member name.
	ev := mustMarshal(t, eventWithStatement("e-1", "SELECT 1"))
	ev = bytes.Replace(ev, []byte(`"actor":{`), []byte(`"actor":{"em\u0061il":"`+email+`",`), 1)
	if _, err := events.Parse(ev); err != nil {
		t.Fatalf("the event is not valid: %v", err)
	}
	publish(bus.Subject("acme", events.CommandExecuted, "t1"), string(ev), "e-1")
	// A valid event whose Nats-Msg-Id, quoted by the reason, is a card.
	publish(bus.Subject("acme", events.CommandExecuted, "t1"), string(mustMarshal(t, eventWithStatement("e-2", "SELECT 2"))), c3)

	natstest.CheckFor(t, 20*time.Second, 20*time.Millisecond, func() error {
		if l.Size() != 4 {
			return fmt.Errorf("sealed %d", l.Size())
		}
		return nil
	})
	var sealed bytes.Buffer
	var rejections []ledger.Rejection
	ledger.ReadRecords(t.Context(), h.store, 0, func(idx uint64, rec []byte) error {
		sealed.Write(rec)
		r, _ := ledger.ParseRecord(rec)
		if ev, err := events.Parse(r.Event); err == nil && ev.Type == events.LedgerRejected {
			var rj ledger.Rejection
			json.Unmarshal(ev.Payload, &rj)
			rejections = append(rejections, rj)
		}
		return nil
	})
	want := []string{"credit_card", "credit_card", "email detector finds at actor.email", "credit_card"}
	if len(rejections) != len(want) || h.streamMsgs(bus.RejectStream) != uint64(len(want)) {
		t.Fatalf("%d rejections, %d in %s, want %d each: %+v", len(rejections), h.streamMsgs(bus.RejectStream), bus.RejectStream, len(want), rejections)
	}
	for i, rj := range rejections {
		if !strings.Contains(rj.Reason, want[i]) || rj.Seq != seqs[i] {
			t.Errorf("rejection %d: %+v; want sequence %d, a reason naming %q", i, rj, seqs[i], want[i])
		}
	}
	if s := rejections[1].Subject; s != "audit.events.[REDACTED:credit_card].command_executed."+bus.ProducerToken("t1") {
		t.Errorf("the rejection of the message on a subject holding a card records subject %q", s)
	}
	rs, _ := h.js.Stream(t.Context(), bus.RejectStream)
	es, _ := h.js.Stream(t.Context(), bus.EventsStream)
	for i := range rejections {
		m, err := rs.GetMsg(t.Context(), uint64(i+1))
		if err != nil {
			t.Fatal(err)
		}
		if len(m.Data) != 0 {
			t.Errorf("AUDIT_REJECTED %d keeps %d bytes: %q", i+1, len(m.Data), m.Data)
		}
		for _, v := range secrets {
			for k, hv := range m.Header {
				if strings.Contains(strings.Join(hv, " "), v) {
					t.Errorf("AUDIT_REJECTED %d header %s holds %q", i+1, k, v)
				}
			}
		}
	}
	natstest.CheckFor(t, 20*time.Second, 20*time.Millisecond, func() error {
		for _, seq := range seqs {
			if _, err := es.GetMsg(t.Context(), seq); !errors.Is(err, jetstream.ErrMsgNotFound) {
				return fmt.Errorf("AUDIT_EVENTS still holds sequence %d: %v", seq, err)
			}
		}
		return nil
	})
	for _, v := range secrets {
		if bytes.Contains(sealed.Bytes(), []byte(v)) {
			t.Errorf("the log holds %q", v)
		}
		if strings.Contains(logs.String(), v) {
			t.Errorf("the writer's logs hold %q", v)
		}
	}
}
