package ingest_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/auditledger/auditledger/events"
	"github.com/auditledger/auditledger/events/eventstest"
	"github.com/auditledger/auditledger/ledger"
	"github.com/auditledger/auditledger/ledger/bus"
	"github.com/auditledger/auditledger/ledger/bus/emitter"
	"github.com/auditledger/auditledger/ledger/file"
	"github.com/auditledger/auditledger/ledger/ingest"
	"github.com/auditledger/auditledger/test/natstest"
)

func event(i int) *events.Event {
	return eventstest.Command(fmt.Sprintf("ev-%d", i), fmt.Sprintf("SELECT %d", i))
}

type harness struct {
	t      *testing.T
	srv    *natstest.Server
	js     jetstream.JetStream
	store  *file.Store
	signer *ledger.NoteSigner
	em     *emitter.Emitter
}

func newHarness(t *testing.T) *harness {
	return newHarnessWith(t, bus.StreamOptions{})
}

func newHarnessWith(t *testing.T, o bus.StreamOptions) *harness {
	return newHarnessOn(t, o, nil)
}

// newHarnessOn is newHarnessWith with before run on the bus first (to
// make a stream as an earlier release did).
func newHarnessOn(t *testing.T, o bus.StreamOptions, before func(jetstream.JetStream)) *harness {
	srv := natstest.Start(t)
	_, js := srv.Connect(t)
	if before != nil {
		before(js)
	}
	if err := bus.EnsureStreams(t.Context(), js, o); err != nil {
		t.Fatal(err)
	}
	// Twice: creating the streams again must be harmless.
	if err := bus.EnsureStreams(t.Context(), js, o); err != nil {
		t.Fatal(err)
	}
	store, _ := file.New(t.TempDir())
	skey, _, _ := ledger.GenerateKey(nil, "ingest.test/log")
	signer, _ := ledger.NewNoteSigner(skey)
	em, err := emitter.New(emitter.Config{JetStream: js})
	if err != nil {
		t.Fatal(err)
	}
	return &harness{t: t, srv: srv, js: js, store: store, signer: signer, em: em}
}

// start runs an ingester until the returned stop is called.
func (h *harness) start(batch int) (*ingest.Ingester, *ledger.Log, func()) {
	h.t.Helper()
	return h.startWith(ingest.Config{BatchSize: batch})
}

// startWith is start with cfg: its bus, log and store the harness's, its
// MaxWait 20 ms and its logger the test's unless cfg sets them.
func (h *harness) startWith(cfg ingest.Config) (*ingest.Ingester, *ledger.Log, func()) {
	h.t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	l, err := ledger.Open(ctx, ledger.Config{Store: h.store, Signer: h.signer})
	if err != nil {
		h.t.Fatal(err)
	}
	cfg.JetStream, cfg.Log, cfg.Store = h.js, l, h.store
	if cfg.MaxWait == 0 {
		cfg.MaxWait = 20 * time.Millisecond
	}
	if cfg.Logger == nil {
		cfg.Logger = testLogger(h.t)
	}
	in, err := ingest.New(ctx, cfg)
	if err != nil {
		h.t.Fatal(err)
	}
	var wg sync.WaitGroup
	var runErr error
	wg.Go(func() { runErr = in.Run(ctx) })
	return in, l, func() {
		cancel()
		wg.Wait()
		if runErr != nil {
			h.t.Errorf("ingester: %v", runErr)
		}
	}
}

// sealedOf returns the records of type typ the store holds, in index
// order, each with its payload decoded into a T; each must be the
// writer's own system record (source 0, tenant _ledger, actor ledger, id
// idPrefix and its index).
func sealedOf[T any](h *harness, typ events.Type, idPrefix string) (out []T, idx []uint64) {
	t := h.t
	t.Helper()
	ledger.ReadRecords(t.Context(), h.store, 0, func(i uint64, rec []byte) error {
		r, err := ledger.ParseRecord(rec)
		if err != nil {
			t.Fatal(err)
		}
		ev, err := events.Parse(r.Event)
		if err != nil {
			t.Fatalf("record %d: %v", i, err)
		}
		if ev.Type != typ {
			return nil
		}
		if r.Source != 0 || ev.Tenant != ledger.SystemTenant || ev.ID != idPrefix+strconv.FormatUint(i, 10) || ev.Actor.Subject != "ledger" || !bytes.HasPrefix(r.Event, []byte(ledger.SystemPrefix)) {
			t.Errorf("record %d: source %d, tenant %q, id %q, actor %q: want the writer's system record (source 0, tenant _ledger, id %s%d)", i, r.Source, ev.Tenant, ev.ID, ev.Actor.Subject, idPrefix, i)
		}
		var v T
		if err := json.Unmarshal(ev.Payload, &v); err != nil {
			t.Fatal(err)
		}
		out, idx = append(out, v), append(idx, i)
		return nil
	})
	return out, idx
}

func (h *harness) emit(from, n int) {
	h.t.Helper()
	for i := from; i < from+n; i++ {
		if _, err := h.em.Emit(h.t.Context(), event(i)); err != nil {
			h.t.Fatal(err)
		}
	}
}

func (h *harness) streamMsgs(name string) uint64 {
	s, err := h.js.Stream(h.t.Context(), name)
	if err != nil {
		h.t.Fatal(err)
	}
	info, err := s.Info(h.t.Context())
	if err != nil {
		h.t.Fatal(err)
	}
	return info.State.Msgs
}

// verifyOnce checks the store and that it holds each event id exactly once.
func (h *harness) verifyOnce(want int) *ledger.Report {
	h.t.Helper()
	rep, err := ledger.Verify(h.t.Context(), h.store, ledger.VerifyOptions{Verifier: h.signer.Verifier()})
	if err != nil {
		h.t.Fatal(err)
	}
	seen := map[string]bool{}
	err = ledger.ReadRecords(h.t.Context(), h.store, 0, func(idx uint64, rec []byte) error {
		r, _ := ledger.ParseRecord(rec)
		ev, err := events.Parse(r.Event)
		if err != nil {
			return err
		}
		if seen[ev.ID] {
			return fmt.Errorf("event %s sealed twice (index %d)", ev.ID, idx)
		}
		seen[ev.ID] = true
		return nil
	})
	if err != nil {
		h.t.Fatal(err)
	}
	if len(seen) != want {
		h.t.Fatalf("log holds %d distinct events, want %d", len(seen), want)
	}
	return rep
}

// TestIngestSealsPublishesAndAcks: events are sealed, acknowledged, and
// published — on AUDIT_LEDGER in chunks (every record once, in order,
// exactly as sealed), and live, one plain NATS message per record with
// its index and leaf hash.
func TestIngestSealsPublishesAndAcks(t *testing.T) {
	h := newHarness(t)
	var live []*nats.Msg
	var liveMu sync.Mutex
	sub, err := h.js.Conn().Subscribe(bus.LiveSubjects, func(m *nats.Msg) {
		liveMu.Lock()
		live = append(live, m)
		liveMu.Unlock()
	})
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Unsubscribe()
	_, l, stop := h.start(100)
	h.emit(0, 250)
	waitSize(t, l, 250)
	// Everything gets acknowledged (acks are asynchronous: poll).
	c, _ := h.js.Consumer(t.Context(), bus.EventsStream, "ledger")
	natstest.CheckFor(t, 10*time.Second, 20*time.Millisecond, func() error {
		ci, err := c.Info(t.Context())
		if err != nil {
			return err
		}
		if ci.NumAckPending != 0 || ci.NumPending != 0 {
			return fmt.Errorf("consumer: %d unacknowledged, %d pending", ci.NumAckPending, ci.NumPending)
		}
		return nil
	})
	// Records are published after the seal, by the writer's publisher:
	// wait for them.
	natstest.CheckFor(t, 10*time.Second, 20*time.Millisecond, func() error {
		liveMu.Lock()
		defer liveMu.Unlock()
		if got := len(natstest.LedgerRecords(t, h.js)); got != 250 || len(live) != 250 {
			return fmt.Errorf("AUDIT_LEDGER holds %d records, %d went live; want 250", got, len(live))
		}
		return nil
	})
	stop()
	rep := h.verifyOnce(250)
	sealed := map[uint64][]byte{}
	err = ledger.ReadRecords(t.Context(), h.store, 0, func(idx uint64, rec []byte) error {
		sealed[idx] = rec
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range natstest.LedgerRecords(t, h.js) {
		if !bytes.Equal(r.Record, sealed[r.Index]) {
			t.Fatalf("AUDIT_LEDGER record %d differs from the sealed one", r.Index)
		}
	}
	if msgs := h.streamMsgs(bus.LedgerStream); msgs != uint64(len(rep.Segments)) {
		t.Fatalf("AUDIT_LEDGER holds %d messages for %d segments of at most 100 records, want one each", msgs, len(rep.Segments))
	}
	for i, m := range live {
		idx, _ := strconv.ParseUint(m.Header.Get(bus.HeaderIndex), 10, 64)
		if idx != uint64(i) || m.Header.Get(bus.HeaderLeaf) != ledger.LeafHash(m.Data).Base64() || !bytes.Equal(m.Data, sealed[idx]) {
			t.Fatalf("live record %d: index %d, leaf %s", i, idx, m.Header.Get(bus.HeaderLeaf))
		}
		if m.Subject != "audit.live.acme.command.executed" {
			t.Fatalf("live record subject %q", m.Subject)
		}
	}
}

func TestRejectedEventsKeptWithReason(t *testing.T) {
	h := newHarness(t)
	_, l, stop := h.start(50)
	defer stop()
	h.emit(0, 3)
	forged := event(98)
	forged.Type, forged.Tenant = events.LedgerGap, "_ledger"
	// An erasure recorded by a gateway's credential, not the admin's
	// command: verify would report the fields erased.
	erasure := event(96)
	erasure.Type = events.ErasurePerformed
	bad := []struct{ subject, data, reason string }{
		{bus.Subject("acme", events.ErasurePerformed, erasure.Source.Instance), string(mustMarshal(t, erasure)), "recorded only by the admin's own command"},
		{"audit.events.acme.command.executed", `{"version":1,"id":"x"}`, "type: required"},
		{"audit.events.acme.command.executed", `not json`, "invalid character"},
		{"audit.events.other.command.executed", string(mustMarshal(t, event(99))), "published on"},
		{"audit.events._ledger.ledger.gap", string(mustMarshal(t, forged)), "recorded by the ledger itself"},
		{bus.Subject("acme", events.CommandExecuted, "t1"), string(mustMarshal(t, event(97))), "without a Nats-Msg-Id"},
	}
	for _, b := range bad {
		if _, err := h.js.Publish(t.Context(), b.subject, []byte(b.data)); err != nil {
			t.Fatal(err)
		}
	}
	h.emit(3, 2)
	natstest.CheckFor(t, 20*time.Second, 20*time.Millisecond, func() error {
		// Each rejection is a record too, so its sequence is accounted for.
		if l.Size() != 11 || h.streamMsgs(bus.RejectStream) != 6 {
			return fmt.Errorf("sealed %d, rejected %d", l.Size(), h.streamMsgs(bus.RejectStream))
		}
		return nil
	})
	s, _ := h.js.Stream(t.Context(), bus.RejectStream)
	for i, b := range bad {
		m, err := s.GetMsg(t.Context(), uint64(i+1))
		if err != nil {
			t.Fatal(err)
		}
		if string(m.Data) != b.data || !strings.Contains(m.Header.Get(bus.HeaderReason), b.reason) || m.Header.Get(bus.HeaderSourceSubject) != b.subject {
			t.Errorf("rejected %d: data %q reason %q subject %q", i, m.Data, m.Header.Get(bus.HeaderReason), m.Header.Get(bus.HeaderSourceSubject))
		}
	}
	rep, err := ledger.Verify(t.Context(), h.store, ledger.VerifyOptions{Verifier: h.signer.Verifier()})
	if err != nil || rep.Rejected != 6 || len(rep.Gaps) != 0 {
		t.Fatalf("verify: %v; rejected %v", err, rep)
	}
	var rejected []ledger.Rejection
	ledger.ReadRecords(t.Context(), h.store, 0, func(idx uint64, rec []byte) error {
		r, _ := ledger.ParseRecord(rec)
		ev, err := events.Parse(r.Event)
		if err != nil {
			t.Fatalf("record %d: %v", idx, err)
		}
		if ev.Type == events.LedgerRejected {
			var rj ledger.Rejection
			json.Unmarshal(ev.Payload, &rj)
			if rj.Seq != r.Source {
				t.Errorf("record %d: rejection of sequence %d in a record of source %d", idx, rj.Seq, r.Source)
			}
			rejected = append(rejected, rj)
		}
		return nil
	})
	for i, b := range bad {
		sum := sha256.Sum256([]byte(b.data))
		if i >= len(rejected) || rejected[i].SHA256 != hex.EncodeToString(sum[:]) || !strings.Contains(rejected[i].Reason, b.reason) {
			t.Errorf("rejection record %d: %+v, want the digest of %q and %q", i, rejected, b.data, b.reason)
		}
	}
}

// TestGapRecorded: events deleted from AUDIT_EVENTS before the writer
// reached them (possible only on a stream that allows deletes, or by
// limits) become a gap record naming the sequences; verify then fails
// with the gap unless gaps are allowed, and lists it.
func TestGapRecorded(t *testing.T) {
	h := newHarnessWith(t, bus.StreamOptions{AllowDelete: true})
	h.emit(0, 10)
	s, _ := h.js.Stream(t.Context(), bus.EventsStream)
	for _, seq := range []uint64{4, 5, 6, 9} {
		if err := s.DeleteMsg(t.Context(), seq); err != nil {
			t.Fatal(err)
		}
	}
	_, l, stop := h.start(50)
	waitSize(t, l, 8) // 6 events and 2 gap records
	h.emit(10, 2)
	waitSize(t, l, 10)
	stop()
	v := h.signer.Verifier()
	_, err := ledger.Verify(t.Context(), h.store, ledger.VerifyOptions{Verifier: v})
	var ge *ledger.GapsError
	if !errors.As(err, &ge) || !errors.Is(err, ledger.ErrGaps) {
		t.Fatalf("verify without AllowGaps: %v, want a GapsError", err)
	}
	rep, err := ledger.Verify(t.Context(), h.store, ledger.VerifyOptions{Verifier: v, AllowGaps: true})
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Gaps) != 2 || rep.Gaps[0].FirstSeq != 4 || rep.Gaps[0].LastSeq != 6 || rep.Gaps[1].FirstSeq != 9 || rep.Gaps[1].LastSeq != 9 {
		t.Fatalf("gaps %+v, want 4..6 and 9..9", rep.Gaps)
	}
	if g := rep.Gaps[0]; g.Index != 3 || g.Stream.LastSeq < 10 || g.NoticedAt.IsZero() || g.Reason == "" {
		t.Fatalf("first gap %+v: want record 3, the stream's state and when it was noticed", g)
	}
}

func mustMarshal(t *testing.T, ev *events.Event) []byte {
	b, err := ev.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestRestartExactlyOnce: events sealed but not acknowledged (the writer
// died between the two) are not sealed again after a restart, and events
// published while no writer ran are sealed once.
func TestRestartExactlyOnce(t *testing.T) {
	h := newHarness(t)
	h.emit(0, 40)
	// Simulate a writer that sealed everything and died before acking:
	// seal directly from the stream, then never ack.
	l, _ := ledger.Open(t.Context(), ledger.Config{Store: h.store, Signer: h.signer})
	s, _ := h.js.Stream(t.Context(), bus.EventsStream)
	var entries []ledger.Entry
	for seq := uint64(1); seq <= 30; seq++ {
		m, err := s.GetMsg(t.Context(), seq)
		if err != nil {
			t.Fatal(err)
		}
		entries = append(entries, ledger.Entry{Event: m.Data, Source: seq})
	}
	if _, err := l.Append(t.Context(), entries); err != nil {
		t.Fatal(err)
	}
	in, l2, stop := h.start(16)
	h.emit(40, 10)
	waitSize(t, l2, 50)
	stop()
	if got := in.Stats.Sealed.Load(); got > 20 {
		t.Errorf("the new writer sealed %d events; only the 20 the dead one had not were left", got)
	}
	h.verifyOnce(50)
	// The 30 records sealed by the dead writer were published on start.
	natstest.CheckFor(t, 10*time.Second, 20*time.Millisecond, func() error {
		if got := len(natstest.LedgerRecords(t, h.js)); got != 50 {
			return fmt.Errorf("AUDIT_LEDGER holds %d records, want 50", got)
		}
		return nil
	})
	// Re-emitting the same ids inside the duplicate window stores nothing new.
	h.emit(0, 50)
	if got := h.streamMsgs(bus.EventsStream); got != 50 {
		t.Fatalf("AUDIT_EVENTS holds %d events after re-emitting, want 50", got)
	}
}

// TestFencedWriterStops: a second ingester on the same store and consumer
// cannot fork the log.
func TestFencedWriterStops(t *testing.T) {
	h := newHarness(t)
	ctx := t.Context()
	la, _ := ledger.Open(ctx, ledger.Config{Store: h.store, Signer: h.signer})
	lb, _ := ledger.Open(ctx, ledger.Config{Store: h.store, Signer: h.signer})
	h.emit(0, 5)
	// Writer A seals the first events behind B's back.
	if _, err := la.Append(ctx, []ledger.Entry{{Event: mustMarshal(t, event(100)), Source: 1}}); err != nil {
		t.Fatal(err)
	}
	in, err := ingest.New(ctx, ingest.Config{JetStream: h.js, Log: lb, Store: h.store, MaxWait: 20 * time.Millisecond, Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	err = in.Run(ctx)
	if !errors.Is(err, ledger.ErrFenced) {
		t.Fatalf("stale writer: %v, want ErrFenced", err)
	}
	if _, err := ledger.Verify(ctx, h.store, ledger.VerifyOptions{Verifier: h.signer.Verifier()}); err != nil {
		t.Fatal(err)
	}
}

// testLogger sends the ingester's logs to the test log, shown on failure.
func testLogger(t *testing.T) *slog.Logger {
	return slog.New(slog.NewTextHandler(tWriter{t}, nil))
}

type tWriter struct{ t *testing.T }

func (w tWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSpace(string(p)))
	return len(p), nil
}

// fullDisk is a real store whose checkpoint writes fail while full is set,
// as a full disk or an S3 outage between the segment and its checkpoint
// would make them.
type fullDisk struct {
	ledger.SegmentStore
	full     atomic.Bool
	refusals atomic.Int64
}

func (s *fullDisk) Create(ctx context.Context, name string, data []byte, retain time.Time) error {
	if s.full.Load() && strings.HasPrefix(name, ledger.CheckpointPrefix) {
		s.refusals.Add(1)
		return fmt.Errorf("write %s: no space left on device", name)
	}
	return s.SegmentStore.Create(ctx, name, data, retain)
}

// TestNoAckBeforeCheckpoint: when the checkpoint cannot be written after
// its segment was sealed, nothing is acknowledged; once the store
// recovers the checkpoint is signed without any new event, the events are
// acknowledged, and the log verifies.
func TestNoAckBeforeCheckpoint(t *testing.T) {
	h := newHarness(t)
	fd := &fullDisk{SegmentStore: h.store}
	h.emit(0, 5)
	l, err := ledger.Open(t.Context(), ledger.Config{Store: fd, Signer: h.signer})
	if err != nil {
		t.Fatal(err)
	}
	fd.full.Store(true)
	in, err := ingest.New(t.Context(), ingest.Config{JetStream: h.js, Log: l, Store: fd, BatchSize: 50, MaxWait: 10 * time.Millisecond, Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Go(func() { in.Run(ctx) })
	defer func() { cancel(); wg.Wait() }()
	ackFloor := func() uint64 {
		c, err := h.js.Consumer(t.Context(), bus.EventsStream, "ledger")
		if err != nil {
			t.Fatal(err)
		}
		info, err := c.Info(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		return info.AckFloor.Stream
	}
	natstest.CheckFor(t, 20*time.Second, 10*time.Millisecond, func() error {
		if fd.refusals.Load() < 3 || l.LastSource() != 5 {
			return fmt.Errorf("%d checkpoint writes refused, last source %d", fd.refusals.Load(), l.LastSource())
		}
		return nil
	})
	if f := ackFloor(); f != 0 {
		t.Fatalf("events acknowledged up to %d while no checkpoint covers them", f)
	}
	if _, err := ledger.Verify(t.Context(), h.store, ledger.VerifyOptions{Verifier: h.signer.Verifier()}); err == nil {
		t.Fatal("the store verified without a checkpoint for its segment")
	}
	fd.full.Store(false)
	natstest.CheckFor(t, 30*time.Second, 20*time.Millisecond, func() error {
		if f := ackFloor(); f != 5 {
			return fmt.Errorf("acknowledged up to %d", f)
		}
		return nil
	})
	rep, err := ledger.Verify(t.Context(), h.store, ledger.VerifyOptions{Verifier: h.signer.Verifier()})
	if err != nil || rep.Size != 5 {
		t.Fatalf("after the store recovered: %v", err)
	}
}

// TestEmptyStoreIsNotANewLog: a writer pointed at an empty store while
// the bus shows that events were sealed refuses to start; with NewLog it
// starts a new log that begins with a gap record for them, and seals only
// what came after.
func TestEmptyStoreIsNotANewLog(t *testing.T) {
	h := newHarness(t)
	_, l, stop := h.start(50)
	h.emit(0, 5)
	waitSize(t, l, 5)
	// The writer acknowledges after sealing: wait until the bus knows the
	// five are sealed (busy cores can delay the acknowledgement past stop).
	natstest.CheckFor(t, 30*time.Second, 20*time.Millisecond, func() error {
		c, err := h.js.Consumer(t.Context(), bus.EventsStream, "ledger")
		if err != nil {
			return err
		}
		info, err := c.Info(t.Context())
		if err != nil {
			return err
		}
		if info.AckFloor.Stream < 5 {
			return fmt.Errorf("ack floor %d, want 5", info.AckFloor.Stream)
		}
		return nil
	})
	stop()
	h.emit(5, 2)

	empty, _ := file.New(t.TempDir())
	skey, _, _ := ledger.GenerateKey(nil, "second.test/log")
	signer, _ := ledger.NewNoteSigner(skey)
	l2, err := ledger.Open(t.Context(), ledger.Config{Store: empty, Signer: signer})
	if err != nil {
		t.Fatal(err)
	}
	_, err = ingest.New(t.Context(), ingest.Config{JetStream: h.js, Log: l2, Store: empty, Logger: testLogger(t)})
	if !errors.Is(err, ingest.ErrStoreBehind) || !strings.Contains(err.Error(), "--new-log") {
		t.Fatalf("writer on an empty store: %v, want ErrStoreBehind naming --new-log", err)
	}
	if l2.Size() != 0 {
		t.Fatal("the refused writer wrote to the store")
	}
	in, err := ingest.New(t.Context(), ingest.Config{JetStream: h.js, Log: l2, Store: empty, Logger: testLogger(t), NewLog: true, MaxWait: 10 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Go(func() { in.Run(ctx) })
	waitSize(t, l2, 3) // the gap record, then events 6 and 7
	cancel()
	wg.Wait()
	rep, err := ledger.Verify(t.Context(), empty, ledger.VerifyOptions{Verifier: signer.Verifier(), AllowGaps: true})
	if err != nil || len(rep.Gaps) != 1 || rep.Gaps[0].FirstSeq != 1 || rep.Gaps[0].LastSeq != 5 || !strings.Contains(rep.Gaps[0].Reason, "--new-log") {
		t.Fatalf("new log: %v %+v", err, rep)
	}
}

// TestProducerSignatures: with a registry of producer keys, an event
// signed by the producer it names is sealed with its signature and checks
// offline; one signed by another registered producer that claims to be
// this one, one with a broken signature, and (when signatures are
// required) an unsigned one are rejected, never sealed.
func TestProducerSignatures(t *testing.T) {
	h := newHarness(t)
	key := func(name string) (*ledger.NoteSigner, string) {
		skey, vkey, _ := ledger.GenerateKey(nil, name)
		s, _ := ledger.NewNoteSigner(skey)
		return s, vkey
	}
	t1, t1v := key("t1") // eventstest events claim source instance t1
	mallory, malloryv := key("mallory")
	producers, err := ledger.ParseProducers("# producers\n" + t1v + "\n" + malloryv + "\n")
	if err != nil {
		t.Fatal(err)
	}
	l, _ := ledger.Open(t.Context(), ledger.Config{Store: h.store, Signer: h.signer})
	in, err := ingest.New(t.Context(), ingest.Config{JetStream: h.js, Log: l, Store: h.store, MaxWait: 10 * time.Millisecond,
		Logger: testLogger(t), Producers: producers, RequireSigned: true})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Go(func() { in.Run(ctx) })
	defer func() { cancel(); wg.Wait() }()

	emitAs := func(sign func([]byte) string, i int) {
		em, _ := emitter.New(emitter.Config{JetStream: h.js, Sign: sign})
		defer em.Close()
		if _, err := em.Emit(t.Context(), event(i)); err != nil {
			t.Fatal(err)
		}
	}
	emitAs(func(b []byte) string { return ledger.SignEvent(t1, b) }, 0)
	emitAs(func(b []byte) string { return ledger.SignEvent(mallory, b) }, 1)                    // claims t1
	emitAs(func(b []byte) string { return ledger.SignEvent(t1, append([]byte(" "), b...)) }, 2) // signs other bytes
	emitAs(nil, 3)                                                                              // unsigned
	emitAs(func(b []byte) string { return ledger.SignEvent(t1, b) }, 4)
	waitSize(t, l, 5)
	rep, err := ledger.Verify(t.Context(), h.store, ledger.VerifyOptions{Verifier: h.signer.Verifier(), Producers: producers})
	if err != nil || rep.Signed != 2 || rep.Rejected != 3 {
		t.Fatalf("verify with the registry: %v; %+v", err, rep)
	}
	s, _ := h.js.Stream(t.Context(), bus.RejectStream)
	for seq, want := range map[uint64]string{1: "producer mallory signed an event that claims source instance \"t1\"", 2: "does not verify", 3: "requires every event to be signed"} {
		m, err := s.GetMsg(t.Context(), seq)
		if err != nil || !strings.Contains(m.Header.Get(bus.HeaderReason), want) {
			t.Errorf("rejection %d: %v %q, want %q", seq, err, m.Header.Get(bus.HeaderReason), want)
		}
	}
	// Offline, a registry without t1's key does not vouch for its events.
	other, _ := ledger.ParseProducers(malloryv)
	if _, err := ledger.Verify(t.Context(), h.store, ledger.VerifyOptions{Verifier: h.signer.Verifier(), Producers: other}); !errors.Is(err, ledger.ErrTampered) {
		t.Fatalf("verify with a registry that lacks the producer: %v", err)
	}
}

// TestProducerAttestations: a producer attests its events in batches (one
// signature per batch); verify with the registry checks every attestation
// and finds the one event that claims the producer but was published by
// someone else, which no attestation covers.
func TestProducerAttestations(t *testing.T) {
	h := newHarness(t)
	skey, vkey, _ := ledger.GenerateKey(nil, "t1") // eventstest events claim source instance t1
	signer, _ := ledger.NewNoteSigner(skey)
	producers, _ := ledger.ParseProducers(vkey)
	_, l, stop := h.start(50)
	em, _ := emitter.New(emitter.Config{JetStream: h.js, Attester: ledger.NewProducerAttester(signer), AttestEvery: 16, AttestInterval: time.Hour})
	for i := range 40 {
		if _, err := em.Emit(t.Context(), event(i)); err != nil {
			t.Fatal(err)
		}
	}
	h.emit(40, 1)      // claims t1, published without t1's key
	em.Close()         // attests the last 8
	waitSize(t, l, 44) // 41 events, 3 attestations
	stop()
	v := h.signer.Verifier()
	_, err := ledger.Verify(t.Context(), h.store, ledger.VerifyOptions{Verifier: v, Producers: producers})
	var ue *ledger.UnattestedError
	if !errors.As(err, &ue) || len(ue.Events) != 1 || ue.Events[0].Instance != "t1" {
		t.Fatalf("verify: %v, want the one unattested event", err)
	}
	rep, err := ledger.Verify(t.Context(), h.store, ledger.VerifyOptions{Verifier: v, Producers: producers, AllowUnattested: true})
	if err != nil || rep.Attested != 40 || len(rep.Unattested) != 1 {
		t.Fatalf("verify --allow-unattested: %v %+v", err, rep)
	}
	// A registry with another key of the same name does not vouch for them.
	_, other, _ := ledger.GenerateKey(nil, "t1")
	wrong, _ := ledger.ParseProducers(other)
	if _, err := ledger.Verify(t.Context(), h.store, ledger.VerifyOptions{Verifier: v, Producers: wrong, AllowUnattested: true}); !errors.Is(err, ledger.ErrTampered) {
		t.Fatalf("verify with another t1 key: %v, want the attestation refused", err)
	}
}

// waitSize waits until the log holds n records.
func waitSize(t *testing.T, l *ledger.Log, n uint64) {
	t.Helper()
	natstest.CheckFor(t, 20*time.Second, 20*time.Millisecond, func() error {
		if got := l.Size(); got != n {
			return fmt.Errorf("log size %d, want %d", got, n)
		}
		return nil
	})
}

// TestDuplicateEventIDsNeverSealedTwice: an event id is sealed once,
// whatever JetStream's duplicate window. An event published again after
// the window — against a running writer, in the same batch as its first
// copy, and after a restart whose index is rebuilt from the store — is
// rejected naming where its id was sealed or published first, and its
// bytes are kept in AUDIT_REJECTED.
func TestDuplicateEventIDsNeverSealedTwice(t *testing.T) {
	const window = 200 * time.Millisecond
	h := newHarnessWith(t, bus.StreamOptions{Duplicates: window})
	pastWindow := func() { time.Sleep(2 * window) }
	_, l, stop := h.start(100)
	h.emit(1, 3) // ev-1..ev-3 at indexes 0..2
	waitSize(t, l, 3)
	pastWindow()
	h.emit(2, 1) // ev-2 again: JetStream stores it, the writer must not seal it
	waitSize(t, l, 4)
	stop()

	// ev-5 twice in one batch: the writer is stopped while both arrive.
	h.emit(5, 1)
	pastWindow()
	h.emit(5, 1)
	_, l, stop = h.start(100) // a fresh in-memory index, built from the store
	waitSize(t, l, 6)
	pastWindow()
	h.emit(1, 1) // ev-1 again, known only from the rebuilt index
	waitSize(t, l, 7)
	stop()

	if got := h.streamMsgs(bus.EventsStream); got != 7 {
		t.Fatalf("AUDIT_EVENTS holds %d messages, want 7 (the duplicate window let the copies in)", got)
	}
	rep := h.verifyOnce(4 + 3) // ev-1, ev-2, ev-3, ev-5 and three rejection records
	if rep.Rejected != 3 {
		t.Fatalf("verify: %d rejections, want 3", rep.Rejected)
	}
	s, _ := h.js.Stream(t.Context(), bus.RejectStream)
	for i, want := range []string{`"ev-2" was sealed before, at ledger index 1`, `"ev-5" was published before, at stream sequence 5`, `"ev-1" was sealed before, at ledger index 0`} {
		m, err := s.GetMsg(t.Context(), uint64(i+1))
		if err != nil {
			t.Fatal(err)
		}
		if reason := m.Header.Get(bus.HeaderReason); !strings.Contains(reason, want) {
			t.Errorf("rejection %d: reason %q, want it to say %q", i+1, reason, want)
		}
		if ev, err := events.Parse(m.Data); err != nil || !strings.HasPrefix(ev.ID, "ev-") {
			t.Errorf("rejection %d: the duplicate's bytes are not kept: %q", i+1, m.Data)
		}
	}
}

// TestBatchMessages: a batch message (events as JSON lines on
// audit.batch.<producer>) is sealed as one record per event, all with the
// message's stream sequence as source; an invalid event, one naming
// another producer, and a repeated id are each rejected on their own with
// their line number, the rest of the batch sealed; a body that is not
// JSON lines is rejected whole. The log verifies.
func TestBatchMessages(t *testing.T) {
	h := newHarness(t)
	_, l, stop := h.start(100)
	defer stop()
	line := func(ev *events.Event) []byte {
		b, err := ev.Marshal()
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	other := event(3)
	other.Source.Instance = "someone-else"
	var body []byte
	for _, raw := range [][]byte{line(event(1)), line(event(2)), []byte(`{"not":"an event"}`), line(other), line(event(1)), line(event(4))} {
		body = bus.AppendBatch(body, raw)
	}
	publish := func(data []byte, id string) uint64 {
		m := nats.NewMsg(bus.BatchSubject(event(1).Source.Instance))
		m.Data = data
		m.Header.Set(nats.MsgIdHdr, id)
		ack, err := h.js.PublishMsg(t.Context(), m)
		if err != nil {
			t.Fatal(err)
		}
		return ack.Sequence
	}
	seq := publish(body, "batch/a")
	waitSize(t, l, 6)
	bad := publish([]byte("no newline at the end"), "batch/b")
	waitSize(t, l, 7)

	want := []struct {
		id     string
		reason string
		source uint64
	}{
		{"ev-1", "", seq}, {"ev-2", "", seq},
		{fmt.Sprintf("ledger/rejected/%d.3", seq), "", seq},
		{fmt.Sprintf("ledger/rejected/%d.4", seq), `its source instance "someone-else"`, seq},
		{fmt.Sprintf("ledger/rejected/%d.5", seq), `"ev-1" was published before, at stream sequence`, seq},
		{"ev-4", "", seq},
		{fmt.Sprintf("ledger/rejected/%d", bad), "not events as JSON lines", bad},
	}
	i := 0
	err := ledger.ReadRecords(t.Context(), h.store, 0, func(idx uint64, rec []byte) error {
		r, err := ledger.ParseRecord(rec)
		if err != nil {
			return err
		}
		ev, err := events.Parse(r.Event)
		if err != nil {
			return err
		}
		w := want[i]
		var rj ledger.Rejection
		json.Unmarshal(ev.Payload, &rj)
		if ev.ID != w.id || r.Source != w.source || w.reason != "" && !strings.Contains(rj.Reason, w.reason) {
			t.Errorf("record %d: %s from source %d, payload %s; want %s from %d, saying %q", idx, ev.ID, r.Source, ev.Payload, w.id, w.source, w.reason)
		}
		i++
		return nil
	})
	if err != nil || i != len(want) {
		t.Fatalf("read %d records: %v", i, err)
	}
	rep := h.verifyOnce(len(want))
	if rep.Rejected != 4 || rep.LastSource != bad {
		t.Fatalf("verify: %d rejected, last source %d", rep.Rejected, rep.LastSource)
	}
	// AUDIT_REJECTED keeps each rejected event's own bytes and its line.
	s, _ := h.js.Stream(t.Context(), bus.RejectStream)
	m, err := s.GetMsg(t.Context(), 2)
	if err != nil {
		t.Fatal(err)
	}
	if m.Header.Get(bus.HeaderSourcePart) != "4" || !strings.Contains(string(m.Data), "someone-else") {
		t.Fatalf("rejected 2: part %q, data %s", m.Header.Get(bus.HeaderSourcePart), m.Data)
	}
}

// TestSeenIndexOnDisk: the index of sealed ids kept in a directory is
// used again at the next start, and an index ahead of its log — the store
// was replaced by an empty one of the same name — is rebuilt, so it
// neither forgets a sealed id nor remembers one the log does not hold.
func TestSeenIndexOnDisk(t *testing.T) {
	const window = 200 * time.Millisecond
	h := newHarnessWith(t, bus.StreamOptions{Duplicates: window})
	indexDir := t.TempDir()
	run := func(store *file.Store, newLog bool) (*ledger.Log, func()) {
		t.Helper()
		l, err := ledger.Open(t.Context(), ledger.Config{Store: store, Signer: h.signer})
		if err != nil {
			t.Fatal(err)
		}
		in, err := ingest.New(t.Context(), ingest.Config{JetStream: h.js, Log: l, Store: store, IndexDir: indexDir, NewLog: newLog,
			MaxWait: 10 * time.Millisecond, Logger: testLogger(t)})
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		var wg sync.WaitGroup
		wg.Go(func() { in.Run(ctx) })
		return l, func() { cancel(); wg.Wait() }
	}
	l, stop := run(h.store, false)
	h.emit(0, 10)
	waitSize(t, l, 10)
	stop()

	time.Sleep(2 * window)
	h.emit(3, 1) // known from the index on disk
	l, stop = run(h.store, false)
	waitSize(t, l, 11)
	stop()
	rep := h.verifyOnce(11)
	if rep.Rejected != 1 {
		t.Fatalf("ev-3 again: %d rejections, want 1", rep.Rejected)
	}

	// Same log name, empty store: the index is ahead, and rebuilt.
	empty, _ := file.New(t.TempDir())
	time.Sleep(2 * window)
	h.emit(3, 1)
	l, stop = run(empty, true)
	waitSize(t, l, 2) // the gap record, then ev-3, sealed in this log
	stop()
	rep, err := ledger.Verify(t.Context(), empty, ledger.VerifyOptions{Verifier: h.signer.Verifier(), AllowGaps: true})
	if err != nil || rep.Rejected != 0 || rep.Size != 2 {
		t.Fatalf("new log: %v, %d rejected of %d records; want ev-3 sealed", err, rep.Rejected, rep.Size)
	}
}
