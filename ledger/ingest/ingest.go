// Package ingest is the ledger's writer on NATS JetStream: a durable pull
// consumer on AUDIT_EVENTS whose batches are validated, sealed into the
// log, and then acknowledged; a second goroutine publishes the sealed
// records on AUDIT_LEDGER, in log order, while the next batch is sealed.
// AUDIT_LEDGER is derived from the store: records a crash left unpublished
// are published again from the store at the next start.
//
// Exactly once: every record carries the JetStream stream sequence of its
// event, and sequences in the log strictly increase. A redelivered message
// whose sequence is at or below the last sealed one was sealed before the
// crash that kept it from being acknowledged: it is acknowledged and skipped.
// Events that fail validation go to AUDIT_REJECTED with the reason, and are
// acknowledged only once that stream has stored them.
//
// An event that holds a value a built-in detector finds (events/detect:
// an e-mail address, a card number, a credential…) is rejected too, from
// whoever published it, but its bytes are kept nowhere: the rejection
// record holds their digest and size, AUDIT_REJECTED the reason alone,
// and once the record is sealed the message is erased from AUDIT_EVENTS
// (docs/FORMAT.md §2.1).
package ingest

import (
	"bytes"
	"cmp"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"runtime"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/auditledger/auditledger/events"
	"github.com/auditledger/auditledger/events/detect"
	"github.com/auditledger/auditledger/ledger"
	"github.com/auditledger/auditledger/ledger/bus"
)

// Config configures an Ingester.
type Config struct {
	JetStream jetstream.JetStream // required
	Log       *ledger.Log         // required; this ingester is its only writer
	Store     ledger.SegmentStore // required: the Log's store, to republish records after a crash
	// Consumer is the durable consumer name; empty means "ledger".
	Consumer string
	// BatchSize closes a batch (one segment) at this many events; zero
	// means 5000.
	BatchSize int
	// MaxWait closes a batch this long after it was asked for, full or not;
	// zero means 250ms. It bounds the latency added by group commit.
	MaxWait time.Duration
	// Logger receives structured logs; nil means slog.Default().
	Logger *slog.Logger
	// Producers, if set, is the registry of producer keys: a signed event
	// is sealed with its signature (a version-2 record) only if a
	// registered key named after its source instance signed it, and is
	// rejected otherwise. Without a registry signatures are not kept.
	Producers *ledger.Producers
	// RequireSigned rejects events that carry no producer signature.
	RequireSigned bool
	// NewLog lets a log start although the bus shows that events were
	// sealed before — by another log, into a store this one does not
	// see. Without it New refuses (ErrStoreBehind): pointing the writer at
	// an empty or restored store by mistake must not start a second log.
	// With it, the new log begins with a gap record for the sequences the
	// earlier log holds.
	NewLog bool
	// IndexDir keeps the index of sealed event ids (see seenIndex); empty
	// keeps it in memory, built from the store at every start.
	IndexDir string
	// OnSeal, if set, is told of every sealed batch: how long the seal
	// took, and for each event how long after its own time it was sealed.
	OnSeal func(took time.Duration, ages []time.Duration)
	// Lease, if set, is asked before every write to the store; nil means
	// this ingester is surely the only writer.
	Lease Lease
	// Clock, if set, is read when the ingester starts and every
	// ClockEvery (zero means an hour) after, each reading sealed as a
	// ledger.clock.status record (docs/FORMAT.md §2.1).
	Clock      func() ledger.ClockStatus
	ClockEvery time.Duration
	// Verify, if set, verifies the whole log when the ingester starts on
	// a log that holds records (a new log: first one VerifyEvery after
	// the start) and every VerifyEvery (zero means a day) after, beside
	// the loop, given the log's size as it begins (known: the size a
	// verification that cannot list the checkpoints fails at);
	// each result (ok true) is sealed between batches as a
	// ledger.verification record (docs/FORMAT.md §2.1; verify.go).
	Verify      func(ctx context.Context, known uint64) (ledger.Verification, bool)
	VerifyEvery time.Duration
}

// Lease is the writer's hold on its log.
type Lease interface {
	// Wait MUST return nil at once while the lease surely holds; while it
	// is in doubt (not renewed in time) it MUST block until it surely holds
	// again, and it MUST return an error once the lease is lost or ctx
	// ends.
	Wait(ctx context.Context) error
}

// ErrStoreBehind: the store holds less than the bus says was sealed.
var ErrStoreBehind = errors.New("ingest: the store holds less than was sealed and acknowledged")

// Stats are running totals, safe to read concurrently.
type Stats struct {
	Ingested, Sealed, Rejected, Skipped, Batches, Retries, Resets atomic.Uint64
	Gaps                                                          atomic.Uint64 // stream sequences recorded as missing
	Duplicates                                                    atomic.Uint64 // events whose id was sealed before
	// BulkCopied counts the bulk pieces (docs/FORMAT.md §1.7) copied to
	// the store with their segments, BulkDeleted those then deleted from
	// AUDIT_BULK, and BulkDeleteFailures the deletions that failed (each
	// logged; the piece expires from the stream by age).
	BulkCopied, BulkDeleted, BulkDeleteFailures atomic.Uint64
	// Detected counts events rejected because a detector matched in
	// them; Erased the AUDIT_EVENTS messages erased for them, and
	// EraseFailures the erasures the stream refused or that failed (each
	// logged as an error): the bytes are then still in AUDIT_EVENTS.
	Detected, Erased, EraseFailures atomic.Uint64
	// SealFailure holds the error of the last seal attempt while seals
	// fail (the store unwritable, full or unreachable), nil once one
	// succeeds: readiness reports it.
	SealFailure   atomic.Pointer[error]
	LastBatch     atomic.Int64 // records in the last sealed batch
	LastSealNanos atomic.Int64 // duration of the last seal
}

// Ingester moves events from AUDIT_EVENTS into the log.
type Ingester struct {
	cfg  Config
	cons jetstream.Consumer // nil after a reset that deleted it but failed to create it
	// consumed: the consumer was created before, so creating it again is
	// a reset.
	consumed bool
	next     uint64 // the stream sequence to seal or reject next
	// published: records below this index are on AUDIT_LEDGER. Only the
	// publisher goroutine touches it once Run has started.
	published uint64
	// toPublish hands sealed batches to the publisher, in log order; its
	// capacity bounds how far publishing may lag sealing.
	toPublish chan publication
	live      liveMessages // the publisher's
	seen      *seenIndex
	Stats     Stats
	// nextClock is when the clock is read and sealed next (Config.Clock).
	nextClock time.Time
	// verified hands finished verifications to the loop (verify.go).
	verified chan ledger.Verification
	bulk     bulkStream // AUDIT_BULK, looked up once
}

// resetConsumer (re)creates the durable consumer to deliver from in.next.
//
// The log, not the consumer, knows what was sealed: every event below
// in.next was sealed or rejected. A delivery that went astray — to a
// writer that died, or to a pull request that expired — would otherwise
// come back only after the ack wait, behind newer events, and could not be
// told from a duplicate. So the writer delivers strictly in stream order
// and, on any gap, starts the consumer again right where the log stands.
func (in *Ingester) resetConsumer(ctx context.Context) error {
	if in.consumed {
		in.Stats.Resets.Add(1)
	}
	in.consumed = true
	// A batch that failed after its seal (publishing its records, say)
	// did not advance in.next; the log did.
	in.next = max(in.next, in.cfg.Log.LastSource()+1)
	err := in.cfg.JetStream.DeleteConsumer(ctx, bus.EventsStream, in.cfg.Consumer)
	if err != nil && !errors.Is(err, jetstream.ErrConsumerNotFound) {
		return fmt.Errorf("ingest: reset consumer %s: %w", in.cfg.Consumer, err)
	}
	in.cons, err = in.cfg.JetStream.CreateConsumer(ctx, bus.EventsStream, jetstream.ConsumerConfig{
		Durable:       in.cfg.Consumer,
		Description:   "the ledger writer",
		AckPolicy:     jetstream.AckAllPolicy,
		AckWait:       2 * time.Minute,
		MaxAckPending: 4 * in.cfg.BatchSize,
		DeliverPolicy: jetstream.DeliverByStartSequencePolicy,
		OptStartSeq:   in.next,
	})
	if err != nil {
		return fmt.Errorf("ingest: consumer %s: %w", in.cfg.Consumer, err)
	}
	return nil
}

// New creates the durable consumer and checks which sealed records still
// need publishing on AUDIT_LEDGER.
func New(ctx context.Context, cfg Config) (*Ingester, error) {
	if cfg.JetStream == nil || cfg.Log == nil || cfg.Store == nil {
		return nil, errors.New("ingest: JetStream, Log and Store are required")
	}
	if cfg.Consumer == "" {
		cfg.Consumer = "ledger"
	}
	if cfg.RequireSigned && cfg.Producers == nil {
		return nil, errors.New("ingest: RequireSigned needs a Producers registry")
	}
	if cfg.BatchSize <= 0 {
		cfg.BatchSize = 5000
	}
	if cfg.BatchSize > ledger.MaxSegmentRecords {
		return nil, fmt.Errorf("ingest: batch size %d above the segment limit %d", cfg.BatchSize, ledger.MaxSegmentRecords)
	}
	if cfg.MaxWait <= 0 {
		cfg.MaxWait = 250 * time.Millisecond
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	in := &Ingester{cfg: cfg, next: cfg.Log.LastSource() + 1}
	in.bulk.js = cfg.JetStream
	if err := in.checkStore(ctx); err != nil {
		return nil, err
	}
	var err error
	if in.seen, err = openSeen(ctx, cfg.IndexDir, cfg.Log, cfg.Store, cfg.Logger); err != nil {
		return nil, err
	}
	if err := in.resetConsumer(ctx); err != nil {
		in.seen.close()
		return nil, err
	}
	if in.published, err = in.publishedUpTo(ctx); err != nil {
		in.seen.close()
		return nil, err
	}
	in.deleteLeftPieces(ctx)
	return in, nil
}

// checkStore compares the log with what the bus says was sealed: the
// writer's consumer acknowledged every sequence up to its ack floor only
// after sealing it. A log behind that is another store (an empty one, a
// restored backup) and must not quietly become a second log.
func (in *Ingester) checkStore(ctx context.Context) error {
	c, err := in.cfg.JetStream.Consumer(ctx, bus.EventsStream, in.cfg.Consumer)
	if errors.Is(err, jetstream.ErrConsumerNotFound) {
		return nil // nothing was ever sealed from this stream
	}
	if err != nil {
		return fmt.Errorf("ingest: consumer %s: %w", in.cfg.Consumer, err)
	}
	info, err := c.Info(ctx)
	if err != nil {
		return fmt.Errorf("ingest: consumer %s: %w", in.cfg.Consumer, err)
	}
	sealed := info.AckFloor.Stream
	last := in.cfg.Log.LastSource()
	if last >= sealed {
		return nil
	}
	if !in.cfg.NewLog {
		return fmt.Errorf("%w: the bus acknowledged stream sequences up to %d as sealed, but this store (%s) holds them only up to %d; "+
			"is it the right store? To start a new log here anyway, run with --new-log (the log then begins with a gap record for sequences %d..%d)",
			ErrStoreBehind, sealed, in.cfg.Store, last, last+1, sealed)
	}
	state := ledger.StreamState{}
	if s, err := in.cfg.JetStream.Stream(ctx, bus.EventsStream); err == nil {
		if si, err := s.Info(ctx); err == nil {
			state = ledger.StreamState{FirstSeq: si.State.FirstSeq, LastSeq: si.State.LastSeq, Msgs: si.State.Msgs, NumDeleted: si.State.NumDeleted}
		}
	}
	g, err := ledger.GapEntry(in.cfg.Log.Origin(), ledger.Gap{FirstSeq: last + 1, LastSeq: sealed, NoticedAt: time.Now().UTC(), Stream: state,
		Reason: "sealed before this log began (the writer was started with --new-log)"})
	if err != nil {
		return err
	}
	in.cfg.Logger.Warn("starting a new log after sequences sealed elsewhere: recording them as a gap", "first_seq", last+1, "last_seq", sealed)
	if _, err := in.cfg.Log.Append(ctx, []ledger.Entry{g}); err != nil {
		return fmt.Errorf("ingest: new log: %w", err)
	}
	in.next = sealed + 1
	return nil
}

// Run ingests until ctx is cancelled or the log is fenced by another
// writer. It returns nil on cancellation.
func (in *Ingester) Run(ctx context.Context) error {
	defer in.seen.close()
	in.toPublish = make(chan publication, 8)
	pctx, stopPublisher := context.WithCancel(ctx)
	var publisher sync.WaitGroup
	publisher.Go(func() { in.publish(pctx) })
	defer publisher.Wait()
	defer stopPublisher()
	// Records a crash left unpublished go out before anything new.
	in.toPublish <- publication{first: in.published, end: in.cfg.Log.Size()}
	in.verified = make(chan ledger.Verification)
	if in.cfg.Verify != nil {
		vctx, stopVerifier := context.WithCancel(ctx)
		var verifier sync.WaitGroup
		now := in.cfg.Log.Size() > 0
		verifier.Go(func() { in.verifyLoop(vctx, now) })
		defer verifier.Wait()
		defer stopVerifier()
	}
	for ctx.Err() == nil {
		if err := in.consume(ctx); err != nil {
			if ctx.Err() != nil {
				return nil
			}
			if errors.Is(err, ledger.ErrFenced) {
				return err
			}
			if !errors.Is(err, errGap) {
				in.cfg.Logger.Warn("consuming failed; resetting the consumer", "err", err)
				sleep(ctx, time.Second)
			}
			if err := in.resetConsumer(ctx); err != nil && ctx.Err() == nil {
				in.cfg.Logger.Warn("consumer reset failed; retrying", "err", err)
				sleep(ctx, time.Second)
			}
		}
	}
	return nil
}

// errGap means a delivery skipped a stream sequence: the consumer must be
// started again where the log stands.
var errGap = errors.New("ingest: delivery out of order")

// errNoConsumer: the last reset deleted the consumer but could not create
// it again.
var errNoConsumer = errors.New("ingest: no consumer to pull from (its reset failed)")

// The pull's heartbeat, and how long consume waits for a message when it
// holds none: more than two heartbeats, so that a lost pull is noticed.
const (
	pullHeartbeat = time.Second
	idleWait      = 3 * pullHeartbeat
)

// pullBytes bounds the bytes a pull asks for: half the pending limit of
// a nats.go subscription, so that nothing pulled is dropped.
const pullBytes = nats.DefaultSubPendingBytesLimit / 2

// consume pulls messages continuously and closes a batch when it is full or
// MaxWait after its first message. It returns on error or cancellation.
func (in *Ingester) consume(ctx context.Context) error {
	if in.cons == nil {
		return errNoConsumer // a reset deleted it and failed to create it
	}
	// A pull request lost with a dead server (the consumer's leader killed
	// while this connection stays up) gets no answer and no heartbeat, and
	// the iterator, counting its messages as still to come, never asks
	// again: sealing would stop for good. nats.go notices only missing
	// heartbeats (two in a row) within a single Next call, so the idle wait
	// below must be longer than two heartbeats; Next then reports
	// ErrNoHeartbeat and the consumer is started again.
	//
	// What is pulled is bounded in bytes too (pullBytes): messages beyond
	// the subscription's pending limit (nats.go's 64 MiB) would be
	// dropped as a slow consumer's while a segment is sealed, and come
	// back only when their ack wait (minutes) ends.
	it, err := in.cons.Messages(jetstream.PullMaxMessagesWithBytesLimit(2*in.cfg.BatchSize, pullBytes), jetstream.PullExpiry(5*time.Second), jetstream.PullHeartbeat(pullHeartbeat))
	if err != nil {
		return err
	}
	defer it.Stop()
	defer context.AfterFunc(ctx, it.Stop)() // unblock Next on cancellation
	var msgs []jetstream.Msg
	var deadline time.Time
	held := 0 // events in msgs: a batch message holds many
	for ctx.Err() == nil {
		if len(msgs) == 0 {
			if err := in.sealClock(ctx); err != nil {
				return err
			}
			if err := in.sealVerification(ctx); err != nil {
				return err
			}
		}
		wait := idleWait
		if len(msgs) > 0 {
			wait = time.Until(deadline)
		} else if in.cfg.Clock != nil {
			wait = max(min(wait, time.Until(in.nextClock)), time.Millisecond)
		}
		var m jetstream.Msg
		if wait > 0 {
			m, err = it.Next(jetstream.NextMaxWait(wait))
		}
		switch {
		case err == nil && m != nil:
			if len(msgs) == 0 {
				deadline = time.Now().Add(in.cfg.MaxWait)
			}
			msgs = append(msgs, m)
			held += eventsIn(m)
			if held < in.cfg.BatchSize {
				continue
			}
		case ctx.Err() != nil:
			return nil
		case err != nil && !errors.Is(err, nats.ErrTimeout) && !errors.Is(err, context.DeadlineExceeded):
			if len(msgs) > 0 {
				// Seal what arrived in order before the error.
				if perr := in.process(ctx, msgs); perr != nil {
					return perr
				}
			}
			return err
		}
		err = nil
		if len(msgs) > 0 {
			if err := in.process(ctx, msgs); err != nil {
				return err
			}
			msgs, held = msgs[:0], 0
		}
	}
	return nil
}

// sealClock seals a ledger.clock.status record when one is due: the
// first time it is asked, then every Config.ClockEvery. Between batches
// only, so that it never splits the events of one.
func (in *Ingester) sealClock(ctx context.Context) error {
	if in.cfg.Clock == nil || time.Now().Before(in.nextClock) {
		return nil
	}
	every := in.cfg.ClockEvery
	if every <= 0 {
		every = time.Hour
	}
	st := in.cfg.Clock()
	if in.cfg.Lease != nil {
		if err := in.cfg.Lease.Wait(ctx); err != nil {
			return fmt.Errorf("ingest: not sealing the clock's status: %w", err)
		}
	}
	l := in.cfg.Log
	e, err := ledger.ClockEntry(l.Origin(), l.Size(), st, time.Now())
	if err != nil {
		return err
	}
	if _, err := l.Append(ctx, []ledger.Entry{e}); err != nil {
		if errors.Is(err, ledger.ErrFenced) {
			return fmt.Errorf("ingest: %w", err)
		}
		// The store's trouble: the next batch's seal reports and retries
		// it; the clock is read again at the next turn.
		in.cfg.Logger.Warn("sealing the clock's status failed; retrying", "err", err)
		in.nextClock = time.Now().Add(time.Second)
		return nil
	}
	in.nextClock = time.Now().Add(every)
	if !st.Synchronised {
		in.cfg.Logger.Warn("the clock is not synchronised to a time source: record times are the writer's unsynchronised clock",
			"maxerror_us", st.MaxErrorMicros, "read_error", st.ReadError)
	}
	in.queue(ctx, publication{end: l.Size()})
	return nil
}

// eventsIn is about how many events m holds.
func eventsIn(m jetstream.Msg) int {
	if _, ok := bus.BatchProducer(m.Subject()); ok {
		return max(1, bytes.Count(m.Data(), []byte{'\n'}))
	}
	return 1
}

// sealing is one entry of a batch: its message (none for a gap record)
// and where its record is published on AUDIT_LEDGER.
type sealing struct {
	msg    jetstream.Msg
	tenant string
	typ    events.Type
	at     time.Time // the event's own time; zero for system records
}

// process seals one fetched batch. Messages are acknowledged only after
// everything they led to is durable. Every stream sequence becomes a
// record: the event, a rejection, or part of a gap.
func (in *Ingester) process(ctx context.Context, msgs []jetstream.Msg) error {
	checked := in.validateAll(ctx, msgs)
	defer in.bulk.release(checked)
	for _, c := range checked {
		for _, p := range c {
			if p.indexErr != nil {
				return p.indexErr // the index's trouble, not the event's
			}
		}
	}
	total := 0 // events in the batch
	for _, c := range checked {
		total += len(c)
	}
	ok := make([]sealing, 0, total)
	entries := make([]ledger.Entry, 0, total)
	keys := make([][]byte, 0, total) // event id keys of entries, for the index
	// id key → stream sequence, this batch: keys as arrays, so that
	// adding one allocates nothing; sized for the batch at once.
	batchIDs := make(map[[idKeyLen]byte]uint64, total)
	var done []jetstream.Msg // to acknowledge at the end
	var erase []uint64       // AUDIT_EVENTS messages to erase once sealed
	var copied []uint64      // AUDIT_BULK messages to delete once sealed
	var gap error
	origin := in.cfg.Log.Origin()
	next := in.next
	for i, m := range msgs {
		meta, err := m.Metadata()
		if err != nil {
			return fmt.Errorf("ingest: message metadata: %w", err)
		}
		seq := meta.Sequence.Stream
		if seq < next {
			in.Stats.Skipped.Add(1) // a redelivery of something sealed or rejected
			done = append(done, m)
			if holdsDetected(checked[i]) {
				erase = append(erase, seq) // its erasure may not have happened
			}
			// Its pieces were copied before its segment was stored; a
			// crash may have kept them from being deleted.
			copied = appendPieces(copied, checked[i])
			continue
		}
		if seq > next {
			present, state, err := in.firstPresent(ctx, next, seq)
			if err != nil {
				return err
			}
			if present > next {
				g := ledger.Gap{FirstSeq: next, LastSeq: present - 1, NoticedAt: time.Now().UTC(), Stream: state,
					Reason: "missing from " + bus.EventsStream + " before it was sealed (deleted, expired or lost)"}
				in.Stats.Gaps.Add(present - next)
				in.cfg.Logger.Error("stream sequences missing from AUDIT_EVENTS before they were sealed: recording a gap",
					"first_seq", g.FirstSeq, "last_seq", g.LastSeq, "stream_first_seq", state.FirstSeq, "stream_last_seq", state.LastSeq)
				e, err := ledger.GapEntry(origin, g)
				if err != nil {
					return err
				}
				entries = append(entries, e)
				keys = append(keys, nil)
				ok = append(ok, sealing{tenant: ledger.SystemTenant, typ: events.LedgerGap})
				next = present
			}
			if seq != next {
				// Stop here: seal what came in order, then start the
				// consumer again at the first missing sequence.
				gap = fmt.Errorf("%w: expected stream sequence %d, got %d", errGap, next, seq)
				break
			}
		}
		next = seq + 1
		// Each event of the message (a batch holds many) becomes a
		// record with the message's stream sequence as its source.
		if holdsDetected(checked[i]) {
			erase = append(erase, seq)
		}
		for _, c := range checked[i] {
			verr := c.err
			if verr == nil {
				verr = in.duplicate(c, batchIDs)
			}
			if verr != nil {
				e, err := in.reject(ctx, m, seq, c, verr)
				if err != nil {
					return err
				}
				entries = append(entries, e)
				keys = append(keys, nil)
				ok = append(ok, sealing{msg: m, tenant: ledger.SystemTenant, typ: events.LedgerRejected})
				continue
			}
			batchIDs[[idKeyLen]byte(c.key)] = seq
			ok = append(ok, sealing{msg: m, tenant: c.event.Tenant, typ: c.event.Type, at: c.event.Time})
			entry := ledger.Entry{Event: c.raw, Source: seq, Producer: c.sig, Tenant: c.event.Tenant}
			if c.bulk != nil {
				entry.Bulk = []ledger.BulkPiece{in.bulk.piece(c.bulk)}
				copied = append(copied, c.bulk.seq)
			}
			entries = append(entries, entry)
			keys = append(keys, c.key)
		}
	}
	if len(entries) > 0 {
		seal, err := in.seal(ctx, entries)
		if err != nil {
			return err
		}
		for _, e := range entries {
			in.Stats.BulkCopied.Add(uint64(len(e.Bulk)))
		}
		if seal != nil && in.cfg.OnSeal != nil {
			now := time.Now()
			ages := make([]time.Duration, 0, len(ok))
			for _, a := range ok {
				if !a.at.IsZero() {
					ages = append(ages, now.Sub(a.at))
				}
			}
			in.cfg.OnSeal(time.Duration(in.Stats.LastSealNanos.Load()), ages)
		}
		if seal != nil {
			// The index may lag the log (a crash here): it catches up
			// from the store at the next start.
			if err := in.seen.add(ctx, keys[len(keys)-len(seal.Records):], seal.First); err != nil {
				return err
			}
			in.queueSeal(ctx, seal, ok)
		}
		for _, a := range ok {
			if a.msg != nil {
				done = append(done, a.msg)
			}
		}
		in.Stats.Ingested.Add(uint64(len(entries)))
	}
	// Only now that their rejection records are sealed: a message is
	// erased once the log accounts for its sequence.
	in.erase(ctx, erase)
	// Only now that the segments naming them are stored.
	in.deletePieces(ctx, copied)
	in.next = next
	// The consumer acknowledges cumulatively (AckAll): acknowledging the
	// highest handled delivery covers everything before it. A lost ack is
	// not fatal: the messages are redelivered and skipped.
	var last jetstream.Msg
	var lastSeq uint64
	for _, m := range done {
		if meta, err := m.Metadata(); err == nil && meta.Sequence.Consumer >= lastSeq {
			last, lastSeq = m, meta.Sequence.Consumer
		}
	}
	if last != nil {
		if err := last.Ack(); err != nil {
			subject, _ := detect.Scrub(last.Subject())
			in.cfg.Logger.Warn("ack failed", "subject", subject, "err", err)
		}
	}
	return gap
}

// checkedMsg is one event of a message, checked: a message on an
// events subject holds one, a batch message one per line.
type checkedMsg struct {
	raw   []byte // the event's bytes
	part  int    // its line in a batch, from 1; 0 for a single message
	event *events.Event
	sig   *ledger.ProducerSig
	err   error
	// detected: a built-in detector matches in raw (err says where and
	// which, never the value).
	detected bool
	// key is the event id's key in the index; sealedAt is where the id
	// was sealed before, if seen.
	key      []byte
	sealedAt uint64
	seen     bool
	indexErr error
	// bulk is the piece the event names, looked up on AUDIT_BULK
	// (bulk.go); nil when it names none.
	bulk *bulkRef
}

// duplicate reports an event whose id was sealed before, or appears
// earlier in this batch: it is rejected, never sealed twice.
func (in *Ingester) duplicate(c checkedMsg, batch map[[idKeyLen]byte]uint64) error {
	id := c.event.ID
	if c.seen {
		in.Stats.Duplicates.Add(1)
		return fmt.Errorf("%w: event id %q was sealed before, at ledger index %d", ErrDuplicate, id, c.sealedAt)
	}
	if seq, ok := batch[[idKeyLen]byte(c.key)]; ok {
		in.Stats.Duplicates.Add(1)
		return fmt.Errorf("%w: event id %q was published before, at stream sequence %d", ErrDuplicate, id, seq)
	}
	return nil
}

// ErrDuplicate: an event's id is in the log already.
var ErrDuplicate = errors.New("duplicate event id")

// validateAll parses and checks a batch on every core.
func (in *Ingester) validateAll(ctx context.Context, msgs []jetstream.Msg) [][]checkedMsg {
	out := make([][]checkedMsg, len(msgs))
	workers := runtime.GOMAXPROCS(0)
	per := max(64, (len(msgs)+workers-1)/workers)
	if len(msgs) < 64*workers {
		per = max(1, (len(msgs)+workers-1)/workers) // batches hold many events each
	}
	var wg sync.WaitGroup
	for lo := 0; lo < len(msgs); lo += per {
		hi := min(lo+per, len(msgs))
		wg.Go(func() {
			// One reader of the index per worker, rather than one per
			// lookup: the batch before this one is indexed already.
			r, err := in.seen.reader()
			if err != nil {
				for i := lo; i < hi; i++ {
					out[i] = []checkedMsg{{raw: msgs[i].Data(), indexErr: err}}
				}
				return
			}
			defer r.close()
			var look []lookup
			for i := lo; i < hi; i++ {
				out[i] = in.checkMsg(ctx, msgs[i])
				for j := range out[i] {
					if k := out[i][j].key; k != nil {
						look = append(look, lookup{binary.BigEndian.Uint64(k[1:9]), &out[i][j]})
					}
				}
			}
			// In key order: each seek then starts near the last one,
			// in memory already, which halves a lookup's cost
			// (BenchmarkSeenLookupOrder). Sorted by the bytes after the
			// key's constant first one, read as a number, without
			// reaching into each event for its key.
			slices.SortFunc(look, func(a, b lookup) int {
				if a.head != b.head {
					return cmp.Compare(a.head, b.head)
				}
				return bytes.Compare(a.c.key, b.c.key)
			})
			for _, l := range look {
				c := l.c
				c.sealedAt, c.seen, c.indexErr = r.lookup(c.key)
			}
		})
	}
	wg.Wait()
	return out
}

// lookup is an event to look up in the index: its key's bytes 1–8 as a
// big-endian number (byte 0 is the same in every key), to sort by.
type lookup struct {
	head uint64
	c    *checkedMsg
}

// checkMsg checks the event, or each event of a batch, in m.
//
// Every path ends in the detectors, so that what a message holds is
// judged however it fails: its subject, each event's bytes (a batch
// that does not split is judged as one text), and the reason it is
// refused for (a header it quotes). A part they find something in is
// detected: its bytes are kept nowhere and the message is erased.
//
// The id key of a part that passes is set, for its caller to look up.
func (in *Ingester) checkMsg(ctx context.Context, m jetstream.Msg) []checkedMsg {
	var parts []checkedMsg
	token, batch := bus.BatchProducer(m.Subject())
	if !batch {
		c := checkedMsg{raw: m.Data()}
		c.event, c.sig, c.err = in.check(m)
		parts = []checkedMsg{c}
	} else if raws, err := bus.SplitBatch(m.Data()); err != nil {
		parts = []checkedMsg{{raw: m.Data(), err: err}}
	} else {
		parts = make([]checkedMsg, len(raws))
		for j, raw := range raws {
			parts[j] = checkedMsg{raw: raw, part: j + 1}
			parts[j].event, parts[j].err = in.checkBatched(raw, token)
		}
	}
	subjectErr := subjectHolds(m.Subject())
	var keys []byte // the id keys of the parts, side by side: one allocation a message
	for j := range parts {
		c := &parts[j]
		// Judged before anything else, valid or not: the bytes of an
		// event that holds a match are kept nowhere, and a validation
		// error could quote the value.
		if subjectErr != nil {
			c.err, c.detected = subjectErr, true
			continue
		}
		if err := detect.CheckEvent(c.raw); err != nil {
			c.err, c.detected = err, true
			continue
		}
		if c.err != nil {
			if why, counts := detect.Scrub(c.err.Error()); counts != nil {
				c.err, c.detected = fmt.Errorf("%w: the reason it is refused for holds one: %s", detect.ErrFound, why), true
			}
			continue
		}
		ptoken := token
		if !batch {
			ptoken = bus.ProducerToken(c.event.Source.Instance) // check: the subject's
		}
		if c.bulk, c.err = in.bulk.check(ctx, c.event, ptoken); c.err != nil {
			continue
		}
		if c.bulk != nil && c.bulk.busErr != nil {
			c.indexErr = c.bulk.busErr // the bus's trouble, not the event's: retried
			continue
		}
		if keys == nil {
			keys = make([]byte, 0, idKeyLen*(len(parts)-j))
		}
		keys = appendIDKey(keys, c.event.ID)
		c.key = keys[len(keys)-idKeyLen : len(keys) : len(keys)]
	}
	return parts
}

// subjectHolds returns an error when a built-in detector finds a value
// in subject (its tenant or source instance), naming the detector and
// the subject with the value replaced.
func subjectHolds(subject string) error {
	if !detect.MayHold(subject) {
		return nil
	}
	scrubbed, counts := detect.Scrub(subject)
	for _, d := range detect.Builtin {
		if counts[d] > 0 {
			return fmt.Errorf("%w: the subject it was published on, %q, holds a value the %s detector finds; subjects must carry none", detect.ErrFound, scrubbed, d)
		}
	}
	return nil
}

// checkBatched validates one event of a batch published by producer token.
func (in *Ingester) checkBatched(raw []byte, token string) (*events.Event, error) {
	ev, err := events.ParseShared(raw) // raw is sealed as it is: nothing changes it
	if err != nil {
		return nil, err
	}
	if err := notLegacy(ev, raw); err != nil {
		return nil, err
	}
	if ev.Type.Ledger() {
		return nil, fmt.Errorf("type %s is recorded by the ledger itself, never by a producer", ev.Type)
	}
	if err := recordedBy(ev); err != nil {
		return nil, err
	}
	if got := bus.ProducerToken(ev.Source.Instance); got != token {
		return nil, fmt.Errorf("in a batch published on %q, but its source instance %q is producer %q", bus.BatchSubject(token), ev.Source.Instance, got)
	}
	if in.cfg.RequireSigned {
		return nil, fmt.Errorf("%w: none (events in a batch carry none), and this ledger requires every event to be signed by its producer", ledger.ErrProducer)
	}
	return ev, nil
}

// notLegacy refuses an event in a legacy form (events.Legacy): verify
// accepts it in records sealed before, the writer seals none now
// (docs/FORMAT.md §1).
func notLegacy(ev *events.Event, raw []byte) error {
	if form := events.LegacyOf(ev, raw); form != "" {
		return fmt.Errorf("%w: %s; this release's producers write neither session member outside a session (upgrade the producer)", events.ErrInvalid, form)
	}
	return nil
}

// recordedBy refuses an event of a type only the admin's commands record
// (bus.RecordedOnlyBy) from any other source instance.
func recordedBy(ev *events.Event) error {
	if inst, ok := bus.RecordedOnlyBy(ev.Type); ok && ev.Source.Instance != inst {
		return fmt.Errorf("type %s is recorded only by the admin's own command (source instance %q, published with the admin bus credential), not by %q", ev.Type, inst, ev.Source.Instance)
	}
	return nil
}

// check validates one event, that its subject and message id agree with
// its content, and its producer's signature.
func (in *Ingester) check(m jetstream.Msg) (*events.Event, *ledger.ProducerSig, error) {
	ev, err := events.ParseShared(m.Data()) // sealed as it is: nothing changes it
	if err != nil {
		return nil, nil, err
	}
	if err := notLegacy(ev, m.Data()); err != nil {
		return nil, nil, err
	}
	if ev.Type.Ledger() {
		return nil, nil, fmt.Errorf("type %s is recorded by the ledger itself, never by a producer", ev.Type)
	}
	if err := recordedBy(ev); err != nil {
		return nil, nil, err
	}
	if want := bus.Subject(ev.Tenant, ev.Type, ev.Source.Instance); m.Subject() != want {
		return nil, nil, fmt.Errorf("published on %q, but tenant, type and source instance say %q", m.Subject(), want)
	}
	// JetStream deduplicates by Nats-Msg-Id: an event published without
	// it (or under another id) could be stored, and sealed, twice.
	if hid := m.Headers().Get(nats.MsgIdHdr); hid != ev.ID {
		if hid == "" {
			return nil, nil, fmt.Errorf("published without a Nats-Msg-Id header: producers send the event id %q as Nats-Msg-Id, so a retry is stored once", ev.ID)
		}
		return nil, nil, fmt.Errorf("Nats-Msg-Id %q differs from the event id %q", hid, ev.ID)
	}
	h := m.Headers().Get(bus.HeaderSignature)
	switch {
	case h != "" && in.cfg.Producers != nil:
		sig, err := in.cfg.Producers.CheckHeader(h, m.Data(), ev.Source)
		if err != nil {
			return nil, nil, err
		}
		return ev, sig, nil
	case in.cfg.RequireSigned:
		return nil, nil, fmt.Errorf("%w: none, and this ledger requires every event to be signed by its producer", ledger.ErrProducer)
	}
	return ev, nil, nil
}

// firstPresent returns the first stream sequence in [next, upTo] that
// still exists in AUDIT_EVENTS (upTo if none before it does), and what the
// stream says about itself. Sequences below it vanished before they were
// sealed; the caller records them as a gap, never skips them quietly.
func (in *Ingester) firstPresent(ctx context.Context, next, upTo uint64) (uint64, ledger.StreamState, error) {
	s, err := in.cfg.JetStream.Stream(ctx, bus.EventsStream)
	if err != nil {
		return next, ledger.StreamState{}, fmt.Errorf("ingest: %s: %w", bus.EventsStream, err)
	}
	info, err := s.Info(ctx)
	if err != nil {
		return next, ledger.StreamState{}, fmt.Errorf("ingest: %s: %w", bus.EventsStream, err)
	}
	state := ledger.StreamState{FirstSeq: info.State.FirstSeq, LastSeq: info.State.LastSeq, Msgs: info.State.Msgs, NumDeleted: info.State.NumDeleted}
	for ; next < upTo; next++ {
		_, err := s.GetMsg(ctx, next)
		if err == nil {
			return next, state, nil
		}
		if !errors.Is(err, jetstream.ErrMsgNotFound) {
			return next, state, fmt.Errorf("ingest: looking up stream sequence %d: %w", next, err)
		}
	}
	return next, state, nil
}

// seal appends entries, retrying with backoff while the store is
// unavailable. Entries that a failed attempt did seal are not sealed again.
func (in *Ingester) seal(ctx context.Context, entries []ledger.Entry) (*ledger.Seal, error) {
	backoff := 100 * time.Millisecond
	for {
		if in.cfg.Lease != nil {
			if err := in.cfg.Lease.Wait(ctx); err != nil {
				return nil, fmt.Errorf("ingest: not sealing: %w", err)
			}
		}
		last := in.cfg.Log.LastSource()
		i := 0
		for i < len(entries) && entries[i].Source <= last {
			i++
		}
		var seal *ledger.Seal
		var err error
		start := time.Now()
		if i == len(entries) {
			// A failed attempt sealed them all, but perhaps not its
			// checkpoint: nothing is acknowledged until one covers them.
			if err = in.cfg.Log.Sync(ctx); err == nil {
				in.queue(ctx, publication{end: in.cfg.Log.Size()})
				return nil, nil
			}
		} else {
			seal, err = in.cfg.Log.Append(ctx, entries[i:])
		}
		if err == nil {
			in.Stats.SealFailure.Store(nil)
			in.Stats.Sealed.Add(uint64(len(entries) - i))
			in.Stats.Batches.Add(1)
			in.Stats.LastBatch.Store(int64(len(entries) - i))
			in.Stats.LastSealNanos.Store(int64(time.Since(start)))
			if i > 0 {
				// What the failed attempt sealed, from the store.
				in.queue(ctx, publication{end: seal.First})
			}
			return seal, nil
		}
		if errors.Is(err, ledger.ErrFenced) {
			return nil, fmt.Errorf("ingest: %w", err)
		}
		in.Stats.Retries.Add(1)
		in.Stats.SealFailure.Store(&err)
		in.cfg.Logger.Warn("seal failed; nothing acknowledged, retrying", "err", err, "backoff", backoff)
		if !sleep(ctx, backoff) {
			return nil, ctx.Err()
		}
		backoff = min(2*backoff, 10*time.Second)
	}
}

// reject stores an event that failed validation (or a batch that is not
// one) in AUDIT_REJECTED, with the reason, and returns the record that
// accounts for it in the log.
func (in *Ingester) reject(ctx context.Context, m jetstream.Msg, seq uint64, c checkedMsg, reason error) (ledger.Entry, error) {
	in.Stats.Rejected.Add(1)
	// Subject and reason scrubbed whatever the rejection: what a
	// detector finds is kept nowhere, checkMsg's judgement or not.
	subject, _ := detect.Scrub(m.Subject())
	why, _ := detect.Scrub(reason.Error())
	if !c.detected {
		in.cfg.Logger.Info("event rejected", "source_seq", seq, "part", c.part, "subject", subject, "reason", why)
	} else {
		in.cfg.Logger.Warn("event rejected: a detector matches a value in it; its bytes are not kept", "source_seq", seq, "part", c.part, "subject", subject, "reason", why)
	}
	r := nats.NewMsg(bus.RejectSubject)
	r.Data = c.raw
	if c.detected {
		// The reason alone: the bytes hold what a detector finds.
		in.Stats.Detected.Add(1)
		r.Data = nil
	}
	r.Header.Set(bus.HeaderReason, why)
	r.Header.Set(bus.HeaderSourceSeq, strconv.FormatUint(seq, 10))
	r.Header.Set(bus.HeaderSourceSubject, subject)
	id := "rejected-" + strconv.FormatUint(seq, 10)
	if c.part > 0 {
		r.Header.Set(bus.HeaderSourcePart, strconv.Itoa(c.part))
		id += "." + strconv.Itoa(c.part)
	}
	r.Header.Set(nats.MsgIdHdr, id)
	if _, err := in.cfg.JetStream.PublishMsg(ctx, r); err != nil {
		return ledger.Entry{}, fmt.Errorf("ingest: storing rejected event %d: %w", seq, err)
	}
	rec := ledger.Rejection{Seq: seq, Part: c.part, Subject: subject, Reason: why, Bytes: len(c.raw)}
	if !c.detected {
		sum := sha256.Sum256(c.raw)
		rec.SHA256 = hex.EncodeToString(sum[:])
	}
	return ledger.RejectedEntry(in.cfg.Log.Origin(), rec, time.Now())
}

// holdsDetected reports whether an event of a message holds a detector
// match: the message is then erased from AUDIT_EVENTS once sealed.
func holdsDetected(parts []checkedMsg) bool {
	for _, c := range parts {
		if c.detected {
			return true
		}
	}
	return false
}

// erase erases messages from AUDIT_EVENTS whose rejection records are
// sealed: JetStream overwrites an erased message's bytes in its store
// (SecureDeleteMsg), on every replica. A failure is logged and counted,
// not fatal: the record accounts for the sequence either way, and
// stopping the writer would stop every other event too. A stream that
// denies deletes (deny_delete) refuses every erasure.
func (in *Ingester) erase(ctx context.Context, seqs []uint64) {
	if len(seqs) == 0 {
		return
	}
	s, err := in.cfg.JetStream.Stream(ctx, bus.EventsStream)
	for i, seq := range seqs {
		if i > 0 && seq == seqs[i-1] {
			continue
		}
		derr := err
		if derr == nil {
			if derr = s.SecureDeleteMsg(ctx, seq); derr != nil {
				if _, gerr := s.GetMsg(ctx, seq); errors.Is(gerr, jetstream.ErrMsgNotFound) {
					derr = nil // erased before (a redelivery)
				}
			}
		}
		if derr != nil {
			in.Stats.EraseFailures.Add(1)
			in.cfg.Logger.Error("an event holding a value a detector finds was rejected, but erasing it from "+bus.EventsStream+" failed: its bytes are still there",
				"source_seq", seq, "err", derr)
			continue
		}
		in.Stats.Erased.Add(1)
	}
}

// publishTimeout bounds the wait for JetStream to store a chunk of
// records. An acknowledgement can be lost for good when a stream leader
// dies with the publish in flight; the chunk is then published again from
// the store (deduplicated by Nats-Msg-Id). While the publisher waits, its
// queue fills and sealing stops, so this is JetStream's own API timeout,
// not more: at 15s a node's loss stalled sealing 14.7-14.9s (cluster test).
const publishTimeout = 5 * time.Second

// sleep waits d or until ctx is done; it reports whether ctx is still live.
func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}
