package ingest_test

import (
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"math/big"
	"os"
	"path/filepath"
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

// card is a Luhn-valid Visa number unique to one test.
func card(t *testing.T) string {
	d := make([]byte, 16)
	d[0] = 4
	for i := 1; i < 15; i++ {
		n, err := rand.Int(rand.Reader, big.NewInt(10))
		if err != nil {
			t.Fatal(err)
		}
		d[i] = byte(n.Int64())
	}
	sum := 0
	for i := 0; i < 15; i++ { // from the right of the 15, every other one doubles, starting with the rightmost
		v := int(d[14-i])
		if i%2 == 0 {
			if v *= 2; v > 9 {
				v -= 9
			}
		}
		sum += v
	}
	d[15] = byte((10 - sum%10) % 10)
	for i := range d {
		d[i] += '0'
	}
	return string(d)
}

// detectedFixture publishes, between clean events, events holding values
// a detector finds — in a payload string, in a member name, in bytes that
// are not an event at all — and waits until the writer accounted for
// them all.
type detectedFixture struct {
	h       *harness
	l       *ledger.Log
	secrets []string // the values, as written in the events
	raws    [][]byte // the events holding them, as published
	seqs    []uint64 // their stream sequences
	clean   string   // a value of a clean event, to show the store search finds what is there
}

func publishDetected(t *testing.T, h *harness) *detectedFixture {
	_, l, stop := h.start(50)
	t.Cleanup(stop)
	f := &detectedFixture{h: h, l: l}
	var b [6]byte
	rand.Read(b[:])
	email := fmt.Sprintf("jane.%x@example.org", b)
	c1, c2 := card(t), card(t)
	f.secrets = []string{c1, email, c2}
	f.clean = fmt.Sprintf("SELECT clean_%x", b)
	h.emit(0, 2)
	if _, err := h.em.Emit(t.Context(), eventWithStatement("clean-1", f.clean)); err != nil {
		t.Fatal(err)
	}
	withCard := eventWithStatement("pii-1", "SELECT * FROM t WHERE card = '"+c1+"'")
	withKey := eventWithStatement("pii-2", "")
	withKey.Payload = []byte(`{"headers":{"` + email + `":"v"}}`)
	for _, ev := range []*events.Event{withCard, withKey} {
		raw := mustMarshal(t, ev)
		r, err := h.em.Emit(t.Context(), ev)
		if err != nil {
			t.Fatal(err)
		}
		f.raws, f.seqs = append(f.raws, raw), append(f.seqs, r.Seq)
	}
	m := nats.NewMsg(bus.Subject("acme", events.CommandExecuted, "t1"))
	m.Data = []byte("not an event: card " + c2)
	m.Header.Set(nats.MsgIdHdr, "garbage-1")
	ack, err := h.js.PublishMsg(t.Context(), m)
	if err != nil {
		t.Fatal(err)
	}
	f.raws, f.seqs = append(f.raws, m.Data), append(f.seqs, ack.Sequence)
	h.emit(2, 2)
	natstest.CheckFor(t, 20*time.Second, 20*time.Millisecond, func() error {
		if l.Size() != 8 || h.streamMsgs(bus.RejectStream) != 3 {
			return fmt.Errorf("sealed %d, rejected %d", l.Size(), h.streamMsgs(bus.RejectStream))
		}
		return nil
	})
	return f
}

func eventWithStatement(id, statement string) *events.Event {
	ev := event(0)
	ev.ID = id
	if statement != "" {
		ev.Payload, _ = json.Marshal(map[string]string{"statement": statement})
	}
	return ev
}

// check asserts what is kept of the events holding values: a rejection
// record each with their digest and size, AUDIT_REJECTED with the reason
// alone, naming the event and the detector, never the value.
func (f *detectedFixture) check(t *testing.T) {
	h := f.h
	rep, err := ledger.Verify(t.Context(), h.store, ledger.VerifyOptions{Verifier: h.signer.Verifier()})
	if err != nil || rep.Rejected != 3 || len(rep.Gaps) != 0 {
		t.Fatalf("verify: %v; %+v", err, rep)
	}
	var rejections []ledger.Rejection
	var sealed bytes.Buffer
	ledger.ReadRecords(t.Context(), h.store, 0, func(idx uint64, rec []byte) error {
		sealed.Write(rec)
		r, _ := ledger.ParseRecord(rec)
		ev, err := events.Parse(r.Event)
		if err != nil {
			t.Fatalf("record %d: %v", idx, err)
		}
		if ev.Type == events.LedgerRejected {
			var rj ledger.Rejection
			json.Unmarshal(ev.Payload, &rj)
			rejections = append(rejections, rj)
		}
		return nil
	})
	wantReason := []string{`event "pii-1" holds a value the credit_card detector finds at payload.statement`,
		`event "pii-2" holds a value the email detector finds at payload.headers["[REDACTED:email]"]`,
		`the event holds a value the credit_card detector finds`}
	if len(rejections) != 3 {
		t.Fatalf("rejections %+v", rejections)
	}
	rs, _ := h.js.Stream(t.Context(), bus.RejectStream)
	for i, rj := range rejections {
		// No digest: of bytes kept nowhere, it would only confirm guesses
		// at the value they hold.
		if rj.Seq != f.seqs[i] || rj.SHA256 != "" || rj.Bytes != len(f.raws[i]) || !strings.HasPrefix(rj.Reason, wantReason[i]) {
			t.Errorf("rejection %d: %+v; want sequence %d, the size of its bytes and no digest, reason %q", i, rj, f.seqs[i], wantReason[i])
		}
		if sum := sha256.Sum256(f.raws[i]); bytes.Contains(sealed.Bytes(), []byte(hex.EncodeToString(sum[:]))) {
			t.Errorf("the log holds the unkeyed digest of rejected event %d", i)
		}
		m, err := rs.GetMsg(t.Context(), uint64(i+1))
		if err != nil {
			t.Fatal(err)
		}
		if len(m.Data) != 0 || m.Header.Get(bus.HeaderReason) != rj.Reason {
			t.Errorf("AUDIT_REJECTED %d keeps %d bytes, reason %q", i+1, len(m.Data), m.Header.Get(bus.HeaderReason))
		}
	}
	for _, v := range f.secrets {
		if bytes.Contains(sealed.Bytes(), []byte(v)) {
			t.Errorf("the log holds %q", v)
		}
		for _, r := range rejections {
			if strings.Contains(r.Reason, v) {
				t.Errorf("a reason holds %q", v)
			}
		}
	}
}

// storeHolds reports whether any file under dir holds v.
func storeHolds(t *testing.T, dir, v string) bool {
	found := false
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		found = found || bytes.Contains(b, []byte(v))
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return found
}

// TestDetectedEventsErased: an event holding a value a detector finds,
// from whoever published it, is sealed as a rejection with only its
// digest and size, AUDIT_REJECTED keeps the reason alone, and the message
// is erased from AUDIT_EVENTS: its bytes are found nowhere in the NATS
// store directory, where those of a clean event are.
func TestDetectedEventsErased(t *testing.T) {
	h := newHarness(t) // the streams as EnsureStreams makes them
	f := publishDetected(t, h)
	f.check(t)
	es, _ := h.js.Stream(t.Context(), bus.EventsStream)
	natstest.CheckFor(t, 20*time.Second, 20*time.Millisecond, func() error {
		for _, seq := range f.seqs {
			if _, err := es.GetMsg(t.Context(), seq); !errors.Is(err, jetstream.ErrMsgNotFound) {
				return fmt.Errorf("AUDIT_EVENTS still holds sequence %d: %v", seq, err)
			}
		}
		return nil
	})
	if !storeHolds(t, h.srv.StoreDir, f.clean) {
		t.Fatalf("the store search does not find %q, which a clean event holds", f.clean)
	}
	for _, v := range f.secrets {
		if storeHolds(t, h.srv.StoreDir, v) {
			t.Errorf("the NATS store directory still holds %q", v)
		}
	}
}

// TestDetectedEventsOnAStreamThatDeniesDeletes: where AUDIT_EVENTS denies
// deletes (as bus.EnsureStreams creates it) the event is still rejected
// without its bytes anywhere the writer writes; the refused erasure is
// counted and logged, and the writer goes on.
func TestDetectedEventsOnAStreamThatDeniesDeletes(t *testing.T) {
	// AUDIT_EVENTS as releases before the erasure rule made it: denying
	// deletes, which no update lifts.
	h := newHarnessOn(t, bus.StreamOptions{}, func(js jetstream.JetStream) {
		if _, err := js.CreateStream(t.Context(), jetstream.StreamConfig{Name: bus.EventsStream, Subjects: []string{bus.EventsSubjects, bus.BatchSubjects},
			MaxMsgSize: bus.MaxBatchBytes + 16<<10, DenyDelete: true, DenyPurge: true, Discard: jetstream.DiscardNew}); err != nil {
			t.Fatal(err)
		}
	})
	f := publishDetected(t, h)
	f.check(t)
	es, _ := h.js.Stream(t.Context(), bus.EventsStream)
	if _, err := es.GetMsg(t.Context(), f.seqs[0]); err != nil {
		t.Errorf("the message was erased from a stream that denies deletes: %v", err)
	}
}
