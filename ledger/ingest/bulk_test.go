package ingest_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/auditledger/auditledger/events"
	"github.com/auditledger/auditledger/ledger"
	"github.com/auditledger/auditledger/ledger/bus"
	"github.com/auditledger/auditledger/ledger/ingest"
	"github.com/auditledger/auditledger/ledger/piikeys"
	"github.com/auditledger/auditledger/test/natstest"
)

// bulkGateway publishes bulk pieces as a gateway does (docs/FORMAT.md
// §1.7): sealed under the session actor's key with piikeys.SealBulk,
// published to AUDIT_BULK under its producer token with the name as
// Nats-Msg-Id, acknowledged; the event naming it is built after.
type bulkGateway struct {
	t        *testing.T
	js       jetstream.JetStream
	keys     *piikeys.Store
	instance string
	seq      uint64
}

func newBulkGateway(t *testing.T, js jetstream.JetStream, instance string) *bulkGateway {
	keys, err := piikeys.Open(t.Context(), js, 1)
	if err != nil {
		t.Fatal(err)
	}
	return &bulkGateway{t: t, js: js, keys: keys, instance: instance}
}

// piece seals data at offset of stdout of session ssh-1 and publishes
// it under the token of publishAs; it returns the object and the event
// that names it (not published).
func (g *bulkGateway) piece(publishAs string, offset int64, data []byte) ([]byte, *events.Event) {
	g.t.Helper()
	place := piikeys.BulkPlace{Tenant: "acme", Session: "ssh-1", Stream: "stdout", Offset: offset}
	object, pseudonym, err := g.keys.SealBulk(g.t.Context(), "https://idp.example", "alice", place, data)
	if err != nil {
		g.t.Fatal(err)
	}
	name := piikeys.BulkName(object)
	m := nats.NewMsg(bus.BulkSubject(publishAs, name))
	m.Data = object
	m.Header.Set(nats.MsgIdHdr, name)
	if _, err := g.js.PublishMsg(g.t.Context(), m); err != nil {
		g.t.Fatal(err)
	}
	return object, g.event(map[string]any{"stream": "stdout", "offset": offset, "bytes": len(data),
		"bulk": map[string]any{"object": name, "pseudonym": pseudonym, "size": len(object)}})
}

// event is a session.output of g's with payload.
func (g *bulkGateway) event(payload map[string]any) *events.Event {
	g.seq++
	p, _ := json.Marshal(payload)
	return &events.Event{
		Version: events.Version, ID: fmt.Sprintf("ssh-1.%d", g.seq), Type: events.SessionOutput,
		Time: time.Date(2026, 12, 8, 0, 0, 0, 0, time.UTC), Tenant: "acme",
		Source:    events.Source{Kind: "ssh-gateway", Instance: g.instance},
		Actor:     events.Actor{Issuer: "https://idp.example", Subject: "alice", Kind: events.Human},
		SessionID: "ssh-1", SessionSeq: g.seq, Payload: p,
	}
}

// publishBatch publishes evs as one batch of g's (bus.BatchSubject).
func (g *bulkGateway) publishBatch(evs ...*events.Event) {
	g.t.Helper()
	var body []byte
	var ids []string
	for _, ev := range evs {
		raw, err := ev.Marshal()
		if err != nil {
			g.t.Fatal(err)
		}
		body = bus.AppendBatch(body, raw)
		ids = append(ids, ev.ID)
	}
	m := nats.NewMsg(bus.BatchSubject(g.instance))
	m.Data = body
	m.Header.Set(nats.MsgIdHdr, bus.BatchID(ids))
	if _, err := g.js.PublishMsg(g.t.Context(), m); err != nil {
		g.t.Fatal(err)
	}
}

// publish publishes ev as its producer does, on its subject with its id
// as Nats-Msg-Id.
func (g *bulkGateway) publish(ev *events.Event) {
	g.t.Helper()
	raw, err := ev.Marshal()
	if err != nil {
		g.t.Fatal(err)
	}
	m := nats.NewMsg(bus.Subject(ev.Tenant, ev.Type, ev.Source.Instance))
	m.Data = raw
	m.Header.Set(nats.MsgIdHdr, ev.ID)
	if _, err := g.js.PublishMsg(g.t.Context(), m); err != nil {
		g.t.Fatal(err)
	}
}

func randomBytes(n int) []byte {
	b := make([]byte, n)
	rand.Read(b)
	return b
}

// TestBulkPieceCopiedAndDeleted: a piece a gateway published, named by
// its session.output, is copied to the store as bulk/<name> with its
// segment, opens there under the subject's key at its place, is deleted
// from AUDIT_BULK once the segment is stored, and verify checks it.
func TestBulkPieceCopiedAndDeleted(t *testing.T) {
	h := newHarness(t)
	in, l, stop := h.start(50)
	defer stop()
	g := newBulkGateway(t, h.js, "t1")
	full := randomBytes(piikeys.MaxBulkPiece)
	small := []byte("hello, bulk\n")
	fullObj, ev1 := g.piece("t1", 0, full)
	smallObj, ev2 := g.piece("t1", int64(len(full)), small)
	g.publish(ev1)
	h.emit(0, 1)
	g.publishBatch(ev2) // the batch's token is the producer's
	waitSize(t, l, 3)
	natstest.CheckFor(t, 20*time.Second, 20*time.Millisecond, func() error {
		if n := h.streamMsgs(bus.BulkStream); n != 0 {
			return fmt.Errorf("%s holds %d pieces after their segments were stored", bus.BulkStream, n)
		}
		return nil
	})
	for i, c := range []struct {
		object []byte
		offset int64
		data   []byte
	}{{fullObj, 0, full}, {smallObj, int64(len(full)), small}} {
		name := piikeys.BulkName(c.object)
		stored, err := h.store.Get(t.Context(), ledger.BulkObjectName(name))
		if err != nil || !bytes.Equal(stored, c.object) {
			t.Fatalf("piece %d: bulk/%s in the store: %d bytes, %v; want its object", i, name, len(stored), err)
		}
		b, err := events.BulkOf([]*events.Event{ev1, ev2}[i])
		if err != nil || b == nil || b.Object != name {
			t.Fatalf("piece %d: the event names %+v, %v", i, b, err)
		}
		got, err := g.keys.OpenBulk(t.Context(), b.Pseudonym, piikeys.BulkPlace{Tenant: "acme", Session: "ssh-1", Stream: "stdout", Offset: c.offset}, stored)
		if err != nil || !bytes.Equal(got, c.data) {
			t.Fatalf("piece %d opened from the store: %d bytes, %v", i, len(got), err)
		}
	}
	if in.Stats.BulkCopied.Load() != 2 || in.Stats.BulkDeleted.Load() != 2 || in.Stats.BulkDeleteFailures.Load() != 0 {
		t.Fatalf("copied %d, deleted %d, failed %d; want 2, 2, 0", in.Stats.BulkCopied.Load(), in.Stats.BulkDeleted.Load(), in.Stats.BulkDeleteFailures.Load())
	}
	rep := h.verifyOnce(3)
	if rep.Bulk != 2 || rep.BulkBytes != int64(len(fullObj)+len(smallObj)) {
		t.Fatalf("verify counted %d bulk pieces of %d bytes, want 2 of %d", rep.Bulk, rep.BulkBytes, len(fullObj)+len(smallObj))
	}
}

// TestBulkPieceRejected: an event whose piece AUDIT_BULK does not hold as
// it names it — never published, of another size, whose bytes are not its
// name's, published under another producer's token — or whose bulk
// member breaks §1.7's form is rejected naming what is wrong, and no
// piece reaches the store; the log verifies.
func TestBulkPieceRejected(t *testing.T) {
	h := newHarness(t)
	_, l, stop := h.start(50)
	defer stop()
	g := newBulkGateway(t, h.js, "t1")
	data := []byte("some bulk output\n")
	var cases []struct {
		ev     *events.Event
		reason string
	}
	add := func(ev *events.Event, reason string) {
		cases = append(cases, struct {
			ev     *events.Event
			reason string
		}{ev, reason})
	}
	bulkOf := func(ev *events.Event) (map[string]any, map[string]any) {
		var p map[string]any
		json.Unmarshal(ev.Payload, &p)
		return p, p["bulk"].(map[string]any)
	}
	setPayload := func(ev *events.Event, p map[string]any) *events.Event {
		ev.Payload, _ = json.Marshal(p)
		return ev
	}

	// Never published: the name of an object nobody sent.
	_, ev := g.piece("t1", 0, data)
	p, b := bulkOf(ev)
	b["object"] = strings.Repeat("ab", 32)
	add(setPayload(ev, p), "holds no message audit.bulk.t1."+strings.Repeat("ab", 32))
	// Published under another producer's token.
	_, ev = g.piece("pg-2", 100, data)
	add(ev, "holds no message audit.bulk.t1.")
	// Its bytes are not its name's: another object of the same size
	// published under the name.
	obj, ev := g.piece("t1", 200, data)
	other := bytes.Clone(obj)
	other[0] ^= 1
	fake := piikeys.BulkName(other)
	m := nats.NewMsg(bus.BulkSubject("t1", fake))
	m.Data = obj // the real object under the other's name
	if _, err := h.js.PublishMsg(t.Context(), m); err != nil {
		t.Fatal(err)
	}
	p, b = bulkOf(ev)
	b["object"] = fake
	add(setPayload(ev, p), "not its name")
	// Another size: the event says one byte more than the piece holds.
	_, ev = g.piece("t1", 300, data)
	p, b = bulkOf(ev)
	p["bytes"] = len(data) + 1
	b["size"] = len(data) + 1 + 28
	add(setPayload(ev, p), fmt.Sprintf("is %d bytes, the event names %d", len(data)+28, len(data)+29))
	// Malformed bulk members.
	malformed := []struct {
		edit   func(p, b map[string]any)
		reason string
	}{
		{func(p, b map[string]any) { p["data"] = "aGVsbG8=" }, "payload.data: not allowed beside bulk"},
		{func(p, b map[string]any) { p["sha256"] = strings.Repeat("0", 64) }, "payload.sha256: not allowed beside bulk"},
		{func(p, b map[string]any) { p["binary"] = true }, "payload.binary: not allowed beside bulk"},
		{func(p, b map[string]any) { p["hmac"] = "hmac:" + strings.Repeat("0", 64) }, "payload.hmac: not allowed beside bulk"},
		{func(p, b map[string]any) { b["object"] = strings.ToUpper(b["object"].(string)) }, "payload.bulk.object: must be 64 lower-case hex digits"},
		{func(p, b map[string]any) { b["object"] = b["object"].(string)[:63] }, "payload.bulk.object: must be 64 lower-case hex digits"},
		{func(p, b map[string]any) { b["pseudonym"] = "alice" }, "payload.bulk.pseudonym: must be 32 lower-case hex digits"},
		{func(p, b map[string]any) { b["size"] = len(data) }, "payload.bulk.size"},
		{func(p, b map[string]any) { p["bytes"], b["size"] = 0, 28 }, "payload.bytes: a bulk piece holds 1 to 524288 bytes"},
		{func(p, b map[string]any) { p["bytes"], b["size"] = piikeys.MaxBulkPiece+1, piikeys.MaxBulkPiece+29 }, "payload.bytes: a bulk piece holds 1 to 524288 bytes"},
		{func(p, b map[string]any) { b["extra"] = 1 }, "payload.bulk: want {object, pseudonym, size}"},
	}
	for i, mf := range malformed {
		_, ev := g.piece("t1", int64(1000+i), data)
		p, b := bulkOf(ev)
		mf.edit(p, b)
		add(setPayload(ev, p), mf.reason)
	}
	// Bytes a producer chose, published as a "piece" in clear: the
	// writer cannot judge them, and does not take what does not open.
	clear := []byte("Jane Doe, card 4111 1111 1111 1111, in clear as a piece\n")
	name := piikeys.BulkName(clear)
	m = nats.NewMsg(bus.BulkSubject("t1", name))
	m.Data = clear
	if _, err := h.js.PublishMsg(t.Context(), m); err != nil {
		t.Fatal(err)
	}
	_, ev = g.piece("t1", 600, data)
	p, b = bulkOf(ev)
	p["bytes"], b["object"], b["size"] = len(clear)-28, name, len(clear)
	add(setPayload(ev, p), "does not open under its subject's key")
	// Sealed under another subject's key (bob's), named as alice's event.
	bobs, bobP, err := g.keys.SealBulk(t.Context(), "https://idp.example", "bob",
		piikeys.BulkPlace{Tenant: "acme", Session: "ssh-1", Stream: "stdout", Offset: 700}, data)
	if err != nil {
		t.Fatal(err)
	}
	m = nats.NewMsg(bus.BulkSubject("t1", piikeys.BulkName(bobs)))
	m.Data = bobs
	if _, err := h.js.PublishMsg(t.Context(), m); err != nil {
		t.Fatal(err)
	}
	ev = g.event(map[string]any{"stream": "stdout", "offset": 700, "bytes": len(data),
		"bulk": map[string]any{"object": piikeys.BulkName(bobs), "pseudonym": bobP, "size": len(bobs)}})
	add(ev, "but the event's actor's is another")
	// Sealed at another place: offset 800's piece named at 801.
	_, ev = g.piece("t1", 800, data)
	p, _ = bulkOf(ev)
	p["offset"] = 801
	add(setPayload(ev, p), "does not open under its subject's key at stdout offset 801")
	// In a batch of t1's, a piece published under pg-2's token.
	_, ev = g.piece("pg-2", 500, data)
	add(ev, "holds no message audit.bulk.t1.")
	for i, c := range cases {
		if i == len(cases)-1 {
			g.publishBatch(c.ev)
			continue
		}
		g.publish(c.ev)
	}
	h.emit(0, 1)
	waitSize(t, l, uint64(len(cases)+1))
	rs, _ := h.js.Stream(t.Context(), bus.RejectStream)
	for i, c := range cases {
		m, err := rs.GetMsg(t.Context(), uint64(i+1))
		if err != nil {
			t.Fatal(err)
		}
		if why := m.Header.Get(bus.HeaderReason); !strings.Contains(why, c.reason) {
			t.Errorf("case %d (%s): rejected for %q, want %q", i, c.ev.ID, why, c.reason)
		}
	}
	if names, err := h.store.List(t.Context(), ledger.BulkPrefix); err != nil || len(names) != 0 {
		t.Fatalf("pieces of rejected events in the store: %v, %v", names, err)
	}
	rep, err := ledger.Verify(t.Context(), h.store, ledger.VerifyOptions{Verifier: h.signer.Verifier()})
	if err != nil || rep.Rejected != len(cases) || rep.Bulk != 0 {
		t.Fatalf("verify: %v, %+v", err, rep)
	}
}

// failingSegments is a real store that refuses segments (not bulk
// pieces, not checkpoints) or checkpoints while told to: the writer dies
// between the copies of a batch's pieces and its segment, or between the
// segment and its checkpoint.
type failingSegments struct {
	ledger.SegmentStore
	prefix   atomic.Pointer[string]
	refusals atomic.Int64
}

func (s *failingSegments) Create(ctx context.Context, name string, data []byte, retain time.Time) error {
	if p := s.prefix.Load(); p != nil && strings.HasPrefix(name, *p) {
		s.refusals.Add(1)
		return fmt.Errorf("write %s: input/output error", name)
	}
	return s.SegmentStore.Create(ctx, name, data, retain)
}

// runOn runs an ingester on store until the returned stop is called.
func (h *harness) runOn(store ledger.SegmentStore) (*ingest.Ingester, *ledger.Log, func()) {
	h.t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	l, err := ledger.Open(ctx, ledger.Config{Store: store, Signer: h.signer})
	if err != nil {
		h.t.Fatal(err)
	}
	in, err := ingest.New(ctx, ingest.Config{JetStream: h.js, Log: l, Store: store, BatchSize: 50, MaxWait: 10 * time.Millisecond, Logger: testLogger(h.t)})
	if err != nil {
		h.t.Fatal(err)
	}
	var wg sync.WaitGroup
	wg.Go(func() { in.Run(ctx) })
	return in, l, func() { cancel(); wg.Wait() }
}

// TestBulkWriterStoppedMidSeal: a writer stopped after copying a batch's
// pieces but before its segment is stored, and one stopped after the
// segment but before its checkpoint (so before deleting the pieces), are
// followed by a writer that seals each event once — copying the pieces
// again finds the same bytes — deletes the pieces from AUDIT_BULK, and
// leaves a log that verifies.
func TestBulkWriterStoppedMidSeal(t *testing.T) {
	h := newHarness(t)
	g := newBulkGateway(t, h.js, "t1")
	fs := &failingSegments{SegmentStore: h.store}
	segs := ledger.SegmentPrefix
	fs.prefix.Store(&segs)
	obj1, ev1 := g.piece("t1", 0, randomBytes(4096))
	g.publish(ev1)
	_, _, stop := h.runOn(fs)
	name1 := ledger.BulkObjectName(piikeys.BulkName(obj1))
	natstest.CheckFor(t, 20*time.Second, 10*time.Millisecond, func() error {
		if _, err := h.store.Get(t.Context(), name1); err != nil || fs.refusals.Load() < 2 {
			return fmt.Errorf("piece copied: %v; %d segments refused", err, fs.refusals.Load())
		}
		return nil
	})
	stop() // killed between the copy and the segment
	if n := h.streamMsgs(bus.BulkStream); n != 1 {
		t.Fatalf("%s holds %d pieces before the event is sealed, want 1", bus.BulkStream, n)
	}

	// Again, stopped between the segment and its checkpoint.
	cps := ledger.CheckpointPrefix
	fs.prefix.Store(&cps)
	fs.refusals.Store(0)
	obj2, ev2 := g.piece("t1", 4096, randomBytes(4096))
	g.publish(ev2)
	_, l, stop := h.runOn(fs)
	natstest.CheckFor(t, 20*time.Second, 10*time.Millisecond, func() error {
		if l.LastSource() != 2 || fs.refusals.Load() < 2 {
			return fmt.Errorf("last source %d; %d checkpoints refused", l.LastSource(), fs.refusals.Load())
		}
		return nil
	})
	stop()
	if n := h.streamMsgs(bus.BulkStream); n != 2 {
		t.Fatalf("%s holds %d pieces before their checkpoint is signed, want 2", bus.BulkStream, n)
	}

	// A writer on the store as it is.
	fs.prefix.Store(nil)
	in, l, stop := h.runOn(fs)
	defer stop()
	obj3, ev3 := g.piece("t1", 8192, randomBytes(10))
	g.publish(ev3)
	waitSize(t, l, 3)
	natstest.CheckFor(t, 20*time.Second, 10*time.Millisecond, func() error {
		if n := h.streamMsgs(bus.BulkStream); n != 0 {
			return fmt.Errorf("%s holds %d pieces", bus.BulkStream, n)
		}
		return nil
	})
	if in.Stats.BulkDeleteFailures.Load() != 0 {
		t.Fatalf("%d deletions failed", in.Stats.BulkDeleteFailures.Load())
	}
	for _, o := range [][]byte{obj1, obj2, obj3} {
		if b, err := h.store.Get(t.Context(), ledger.BulkObjectName(piikeys.BulkName(o))); err != nil || !bytes.Equal(b, o) {
			t.Fatalf("piece %s: %v", piikeys.BulkName(o), err)
		}
	}
	if rep := h.verifyOnce(3); rep.Bulk != 3 {
		t.Fatalf("verify counted %d pieces, want 3", rep.Bulk)
	}
}

// TestBulkStoredWithOtherBytesFailsTheSeal: a store that holds another
// object under a piece's name (which verify would report) makes the seal
// fail, naming it, and nothing is sealed or acknowledged meanwhile.
func TestBulkStoredWithOtherBytesFailsTheSeal(t *testing.T) {
	h := newHarness(t)
	g := newBulkGateway(t, h.js, "t1")
	obj, ev := g.piece("t1", 0, []byte("output\n"))
	name := ledger.BulkObjectName(piikeys.BulkName(obj))
	if err := h.store.Create(t.Context(), name, []byte("planted"), time.Time{}); err != nil {
		t.Fatal(err)
	}
	g.publish(ev)
	in, l, stop := h.runOn(h.store)
	defer stop()
	natstest.CheckFor(t, 20*time.Second, 10*time.Millisecond, func() error {
		e := in.Stats.SealFailure.Load()
		if e == nil || !errors.Is(*e, ledger.ErrBulkMismatch) || !strings.Contains((*e).Error(), name) {
			return fmt.Errorf("seal failure %v", e)
		}
		return nil
	})
	if l.Size() != 0 {
		t.Fatalf("sealed %d records over a piece stored with other bytes", l.Size())
	}
}

// TestVerifyBulkPieces: verify fails, naming the record and the object,
// when a piece the log names is changed or gone from a local store, or
// when an object under bulk/ is misnamed.
func TestVerifyBulkPieces(t *testing.T) {
	h := newHarness(t)
	_, l, stop := h.start(50)
	g := newBulkGateway(t, h.js, "t1")
	h.emit(0, 2)
	waitSize(t, l, 2)
	obj, ev := g.piece("t1", 0, randomBytes(1000))
	g.publish(ev)
	waitSize(t, l, 3)
	stop()
	h.verifyOnce(3)
	name := ledger.BulkObjectName(piikeys.BulkName(obj))
	path := filepath.Join(h.store.Dir(), filepath.FromSlash(name))
	verifyFails := func(want ...string) {
		t.Helper()
		_, err := ledger.Verify(t.Context(), h.store, ledger.VerifyOptions{Verifier: h.signer.Verifier()})
		if err == nil {
			t.Fatalf("verify passed, want a failure naming %q", want)
		}
		for _, w := range want {
			if !strings.Contains(err.Error(), w) {
				t.Fatalf("verify: %v; want it to name %q", err, w)
			}
		}
	}
	// One byte changed: same size, another SHA-256.
	os.Chmod(path, 0o644)
	changed := bytes.Clone(obj)
	changed[len(changed)-1] ^= 1
	if err := os.WriteFile(path, changed, 0o444); err != nil {
		t.Fatal(err)
	}
	verifyFails("index 2", name, "bulk piece SHA-256")
	// Cut short.
	if err := os.WriteFile(path, obj[:len(obj)-1], 0o444); err != nil {
		t.Fatal(err)
	}
	verifyFails("index 2", name, "bulk piece size", fmt.Sprintf("%d bytes", len(obj)))
	// Gone.
	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
	verifyFails("index 2", name, "not in the store")
	// Put back; then an object under bulk/ that is not a piece's name.
	if err := h.store.Create(t.Context(), name, obj, time.Time{}); err != nil {
		t.Fatal(err)
	}
	h.verifyOnce(3)
	if err := h.store.Create(t.Context(), ledger.BulkPrefix+"notes.txt", []byte("x"), time.Time{}); err != nil {
		t.Fatal(err)
	}
	verifyFails("bulk/notes.txt", "unexpected object among bulk pieces")
}
