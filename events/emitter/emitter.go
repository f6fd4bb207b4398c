// Package emitter is the library proxies use to publish audit events onto
// NATS JetStream. An event counts as stored only once JetStream has
// acknowledged it; publishing is asynchronous with a bound on the events in
// flight, and failed publishes are retried with backoff. The event id is
// sent as Nats-Msg-Id, so a retry after a lost acknowledgement is stored
// once.
//
// Group commit: events emitted from every goroutine (every proxied
// session) queue together. No event waits on a timer: a group is whatever
// queued while the previous ones were being stored (at most Groups in
// flight), so a lone event goes at once and groups grow with the load. A
// group of MinGroup events or more is published as one JetStream atomic
// batch — one acknowledgement, and with sync_interval always one fsync,
// for up to MaxBatch events, each still its own message with its own
// subject and Nats-Msg-Id; smaller groups go as pipelined single
// publishes, which cost JetStream less (an atomic batch is staged in a
// store of its own before it is committed). A group the bus refuses, or
// whose acknowledgement is lost, is published again event by event (the
// bus drops what it already stored, by event id), so a group is never
// half-reported.
//
// With a spool directory, an event that cannot be stored (the bus is
// unreachable) is appended to an fsynced local spool instead and reported
// as spooled; while the spool holds anything, new events queue behind it,
// and a background drainer delivers them in order when the bus returns.
package emitter

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/synadia-io/orbit.go/jetstreamext"

	"github.com/auditledger/auditledger/events"
)

// Config configures an Emitter.
type Config struct {
	JetStream jetstream.JetStream // required
	// MaxInFlight bounds publishes awaiting acknowledgement; zero means 4096.
	MaxInFlight int
	// Retries per event before Emit gives up (or spools); zero means 5.
	// Between tries the wait doubles from 50ms.
	Retries int
	// Timeout bounds the wait for one acknowledgement; zero means 5s.
	Timeout time.Duration
	// SpoolDir, if set, is where events wait while the bus is unreachable.
	SpoolDir string
	// DrainTimeout bounds how long Close waits for accepted asynchronous
	// publishes; zero means 10s. What is still unpublished then is spooled
	// (with a SpoolDir) or reported failed to its callback — never
	// dropped without a word.
	DrainTimeout time.Duration
	// Logger reports damage found in the spool; nil means slog.Default().
	Logger *slog.Logger
	// Attester, if set, signs the digests of this producer's events in
	// batches: a producer.attested event after every AttestEvery events
	// (zero: 256) or AttestInterval (zero: 250ms), whichever comes first,
	// and at Close.
	Attester       Attester
	AttestEvery    int
	AttestInterval time.Duration
	// Sign, if set, signs each encoded event as its producer; what it
	// returns is sent in the SignatureHeader (the ledger's
	// ledger.SignEvent with this producer's key).
	Sign func(event []byte) string
	// MaxBatch caps the events in one group; zero means 1000, JetStream's
	// default limit on an atomic batch. One means no group commit: every
	// event is published and acknowledged on its own.
	MaxBatch int
	// MinGroup is the smallest group published as an atomic batch; zero
	// means 64. See docs/FORMAT.md and the README's figures for why.
	MinGroup int
	// Groups bounds the groups being stored at once; zero means 4.
	Groups int
}

// SignatureHeader carries a producer's signature of the event to the
// ledger writer (see docs/FORMAT.md, "Producer signatures").
const SignatureHeader = "Auditledger-Producer-Sig"

// ErrClosed: the Emitter is closed and takes no new events.
var ErrClosed = errors.New("emitter: closed")

// Emitter publishes events. It is safe for concurrent use.
type Emitter struct {
	cfg  Config
	slot chan struct{}
	// life bounds asynchronous publishes: they run under the emitter's
	// lifetime, not their callers', so a caller that goes away (a session
	// ended by shutdown) cannot drop an accepted event. Close ends it.
	life    context.Context
	endLife context.CancelFunc
	attest  *attestation
	mu      sync.Mutex // guards closed against wg.Add
	closed  bool
	failed  atomic.Uint64
	wg      sync.WaitGroup
	// While the spool holds anything, new events go behind it. Events
	// emitted concurrently have no order between them anyway; each
	// session's events carry session_seq, so their order is always
	// visible.
	spool   *spool
	wake    chan struct{}
	stop    context.CancelFunc
	drained sync.WaitGroup
	// The group-commit queue: events accepted and not yet handed to a
	// group, and the groups being stored.
	qmu       sync.Mutex
	queue     []*pending
	kick      chan struct{}
	groups    chan struct{}
	committed chan struct{} // closed when the committer has stopped
	noBatch   atomic.Int64  // unix nanos until which atomic batches are not tried
	Stats     Stats
}

// Stats are running totals, safe to read concurrently.
type Stats struct {
	// Groups stored as one atomic batch, and the events in them.
	Groups, GroupedEvents atomic.Uint64
	// Single publishes: lone events and the events of refused groups.
	Singles atomic.Uint64
	// GroupsRefused counts groups the bus did not take whole.
	GroupsRefused atomic.Uint64
}

// pending is one accepted event waiting for its group.
type pending struct {
	ev   *events.Event
	raw  []byte
	done func(Result)
}

// New returns an Emitter.
func New(cfg Config) (*Emitter, error) {
	if cfg.JetStream == nil {
		return nil, errors.New("emitter: Config.JetStream is required")
	}
	if cfg.MaxInFlight <= 0 {
		cfg.MaxInFlight = 4096
	}
	if cfg.Retries <= 0 {
		cfg.Retries = 5
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = 5 * time.Second
	}
	if cfg.DrainTimeout <= 0 {
		cfg.DrainTimeout = 10 * time.Second
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.MaxBatch <= 0 {
		cfg.MaxBatch = 1000
	}
	if cfg.Groups <= 0 {
		cfg.Groups = 4
	}
	if cfg.MinGroup <= 0 {
		cfg.MinGroup = 64
	}
	e := &Emitter{cfg: cfg, slot: make(chan struct{}, cfg.MaxInFlight), wake: make(chan struct{}, 1),
		kick: make(chan struct{}, 1), groups: make(chan struct{}, cfg.Groups), committed: make(chan struct{})}
	e.life, e.endLife = context.WithCancel(context.Background())
	go e.commit()
	if cfg.Attester != nil {
		if cfg.AttestEvery <= 0 {
			cfg.AttestEvery = 256
		}
		if cfg.AttestInterval <= 0 {
			cfg.AttestInterval = 250 * time.Millisecond
		}
		e.attest = newAttestation(e, cfg.Attester, cfg.AttestEvery, cfg.AttestInterval)
	}
	if cfg.SpoolDir != "" {
		sp, err := openSpool(cfg.SpoolDir)
		if err != nil {
			return nil, fmt.Errorf("emitter: spool %s: %w", cfg.SpoolDir, err)
		}
		for _, d := range sp.damage {
			if d.Offset < 0 {
				cfg.Logger.Error("spool position unreadable or not on an entry: delivering the whole spool again (the bus drops what it already stored, by event id)", "spool", cfg.SpoolDir)
				continue
			}
			cfg.Logger.Error("spool damaged: intact entries kept, unreadable bytes quarantined", "spool", cfg.SpoolDir, "damage", d.String())
		}
		e.spool = sp
		ctx, cancel := context.WithCancel(context.Background())
		e.stop = cancel
		e.drained.Go(func() { e.drain(ctx) })
	}
	return e, nil
}

// SpoolDamage lists what opening the spool could not read: each region
// is quarantined in a file beside the spool, and entries after it were
// kept. A non-empty list means events may be lost; callers must say so
// (auditledger emit exits non-zero).
func (e *Emitter) SpoolDamage() []SpoolDamage {
	if e.spool == nil {
		return nil
	}
	return e.spool.damage
}

// Spooled reports whether events are waiting in the spool.
func (e *Emitter) Spooled() bool { return e.spool != nil && !e.spool.empty() }

// Close shuts the emitter down: it takes no new events (ErrClosed), waits
// up to DrainTimeout for the asynchronous publishes it accepted, then ends
// their wait — each is spooled if there is a spool, or reported failed to
// its callback — and stops the drainer. Spooled events stay on disk for
// the next start.
func (e *Emitter) Close() error {
	if e.attest != nil {
		e.attest.close() // the last batch's attestation, while still open
	}
	e.mu.Lock()
	if e.closed {
		e.mu.Unlock()
		return nil
	}
	e.closed = true
	e.mu.Unlock()
	drained := make(chan struct{})
	go func() { e.wg.Wait(); close(drained) }()
	select {
	case <-drained:
	case <-time.After(e.cfg.DrainTimeout):
		e.endLife()
		<-drained
	}
	e.endLife()
	e.kickCommitter()
	<-e.committed
	if e.spool == nil {
		return nil
	}
	e.stop()
	e.drained.Wait()
	return e.spool.close()
}

// accept registers one publish unless the emitter is closed.
func (e *Emitter) accept() error {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.closed {
		return ErrClosed
	}
	e.wg.Add(1)
	return nil
}

// drain delivers spooled events in order whenever there are any.
func (e *Emitter) drain(ctx context.Context) {
	backoff := 100 * time.Millisecond
	for {
		select {
		case <-ctx.Done():
			return
		case <-e.wake:
		case <-time.After(backoff):
		}
		for !e.spool.empty() && ctx.Err() == nil {
			batch, next, err := e.spool.peek(256)
			if err == nil {
				err = e.publishBatch(ctx, batch)
			}
			if err == nil {
				err = e.spool.advance(next)
			}
			if err != nil {
				backoff = min(2*backoff, 5*time.Second)
				break
			}
			backoff = 100 * time.Millisecond
		}
	}
}

// publishBatch stores spooled events: one group if the bus takes it,
// else one by one.
func (e *Emitter) publishBatch(ctx context.Context, batch [][]byte) error {
	msgs := make([]*nats.Msg, 0, len(batch))
	for _, raw := range batch {
		ev, err := events.Parse(raw)
		if err != nil {
			return err // cannot happen: only valid events are spooled
		}
		msgs = append(msgs, e.message(ev, raw))
	}
	if _, err := e.publishGroup(ctx, msgs); err == nil {
		return nil
	}
	futures := make([]jetstream.PubAckFuture, 0, len(batch))
	for i, raw := range batch {
		ev, _ := events.Parse(raw)
		msgs[i] = e.message(ev, raw) // fresh: the group's headers must go
		f, err := e.cfg.JetStream.PublishMsgAsync(msgs[i])
		if err != nil {
			return err
		}
		futures = append(futures, f)
	}
	timeout := time.NewTimer(e.cfg.Timeout)
	defer timeout.Stop()
	for _, f := range futures {
		select {
		case <-f.Ok():
		case err := <-f.Err():
			return err
		case <-timeout.C:
			return errors.New("emitter: acknowledgement timed out")
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return nil
}

func (e *Emitter) message(ev *events.Event, raw []byte) *nats.Msg {
	msg := nats.NewMsg(events.Subject(ev.Tenant, ev.Type, ev.Source.Instance))
	msg.Data = raw
	msg.Header.Set(nats.MsgIdHdr, ev.ID)
	if e.cfg.Sign != nil {
		msg.Header.Set(SignatureHeader, e.cfg.Sign(raw))
	}
	return msg
}

// Result is the outcome of one asynchronous publish.
type Result struct {
	ID      string
	Seq     uint64 // stream sequence, when stored
	Spooled bool   // not stored yet, but fsynced to the spool for later delivery
	Err     error
}

// ErrOnlySpooled: the event is fsynced to this host's spool, and not yet
// stored by the bus.
var ErrOnlySpooled = errors.New("event spooled on this host, not stored by the bus")

// Stored is the outcome for a caller that needs the bus to hold the event
// (to fail closed): Err, or ErrOnlySpooled for a spooled event unless
// spoolOK (fail open).
func (r Result) Stored(spoolOK bool) error {
	if r.Err == nil && r.Spooled && !spoolOK {
		return ErrOnlySpooled
	}
	return r.Err
}

// EmitRaw publishes an encoded event after validating it, and calls done
// (from another goroutine) once JetStream has stored it, it was spooled,
// or every retry failed. It blocks while MaxInFlight publishes are
// pending, until ctx ends; once it returns nil, done is called exactly
// once whatever happens to ctx (the publish runs under the emitter's own
// lifetime, which Close ends). After Close it returns ErrClosed.
func (e *Emitter) EmitRaw(ctx context.Context, raw []byte, done func(Result)) error {
	ev, err := events.Parse(raw)
	if err != nil {
		return err
	}
	return e.emitAsync(ctx, ev, raw, done)
}

// EmitAsync is EmitRaw for an event built in Go: it is validated once, as
// it is encoded, not parsed back.
func (e *Emitter) EmitAsync(ctx context.Context, ev *events.Event, done func(Result)) error {
	raw, err := ev.Marshal()
	if err != nil {
		return err
	}
	return e.emitAsync(ctx, ev, raw, done)
}

// emitAsync queues the event for the next group; ctx bounds only the
// wait for a free slot, so once it returns nil the event is stored,
// spooled or reported failed to done, under the emitter's lifetime,
// whatever happens to ctx.
func (e *Emitter) emitAsync(ctx context.Context, ev *events.Event, raw []byte, done func(Result)) error {
	if err := e.accept(); err != nil {
		return err
	}
	select {
	case e.slot <- struct{}{}:
	default:
		select {
		case e.slot <- struct{}{}:
		case <-ctx.Done():
			e.wg.Done()
			return ctx.Err()
		}
	}
	if e.attest != nil {
		e.attest.add(ev, raw)
	}
	e.qmu.Lock()
	e.queue = append(e.queue, &pending{ev: ev, raw: raw, done: done})
	e.qmu.Unlock()
	e.kickCommitter()
	return nil
}

// Emit publishes ev and waits until JetStream has stored it or, with a
// spool, until it is spooled (Result.Spooled). If ctx ends first, Emit
// returns ctx's error, and the event is still stored, spooled or counted
// failed under the emitter's lifetime.
func (e *Emitter) Emit(ctx context.Context, ev *events.Event) (Result, error) {
	raw, err := ev.Marshal()
	if err != nil {
		return Result{ID: ev.ID, Err: err}, err
	}
	ch := make(chan Result, 1)
	if err := e.emitAsync(ctx, ev, raw, func(r Result) { ch <- r }); err != nil {
		return Result{ID: ev.ID, Err: err}, err
	}
	select {
	case r := <-ch:
		return r, r.Err
	case <-ctx.Done():
		return Result{ID: ev.ID, Err: ctx.Err()}, ctx.Err()
	}
}

func (e *Emitter) kickCommitter() {
	select {
	case e.kick <- struct{}{}:
	default:
	}
}

// commit hands queued events to groups: whenever a group may start, it
// takes what queued meanwhile, up to MaxBatch. It stops once the emitter
// is closed and every accepted event has been handled.
func (e *Emitter) commit() {
	defer close(e.committed)
	for {
		e.qmu.Lock()
		empty := len(e.queue) == 0
		e.qmu.Unlock()
		if empty {
			e.mu.Lock()
			closed := e.closed
			e.mu.Unlock()
			if closed && e.life.Err() != nil {
				return
			}
			<-e.kick
			continue
		}
		e.groups <- struct{}{}
		e.qmu.Lock()
		n := min(len(e.queue), e.cfg.MaxBatch)
		group := make([]*pending, n)
		copy(group, e.queue)
		e.queue = append(e.queue[:0], e.queue[n:]...)
		e.qmu.Unlock()
		go func() {
			defer func() { <-e.groups }()
			e.store(group)
		}()
	}
}

// store publishes one group and reports each event's result.
func (e *Emitter) store(group []*pending) {
	finish := func(p *pending, r Result) {
		if r.Err != nil {
			e.failed.Add(1)
		}
		<-e.slot
		p.done(r)
		e.wg.Done()
	}
	if len(group) >= max(2, e.cfg.MinGroup) && (e.spool == nil || e.spool.empty()) && time.Now().UnixNano() >= e.noBatch.Load() {
		msgs := make([]*nats.Msg, len(group))
		for i, p := range group {
			msgs[i] = e.message(p.ev, p.raw)
		}
		ctx, cancel := context.WithTimeout(e.life, e.cfg.Timeout)
		last, err := e.publishGroup(ctx, msgs)
		cancel()
		if err == nil {
			e.Stats.Groups.Add(1)
			e.Stats.GroupedEvents.Add(uint64(len(group)))
			for i, p := range group {
				finish(p, Result{ID: p.ev.ID, Seq: last - uint64(len(group)-1-i)})
			}
			return
		}
		e.Stats.GroupsRefused.Add(1)
		if errors.Is(err, jetstreamext.ErrBatchPublishNotEnabled) {
			// A stream set up before group commit: single publishes
			// for a while, then try again (the ledger updates it).
			e.noBatch.Store(time.Now().Add(time.Minute).UnixNano())
			e.cfg.Logger.Warn("the events stream does not take atomic batches: publishing events one by one for a minute", "err", err)
		}
	}
	// One by one, each with its own retries (or spool): a small group,
	// or one that was refused or whose acknowledgement was lost (it may
	// be partly or wholly stored already, and the bus drops those by
	// event id).
	e.Stats.Singles.Add(uint64(len(group)))
	if len(group) == 1 {
		finish(group[0], e.emitOnce(e.life, group[0].ev, group[0].raw))
		return
	}
	var wg sync.WaitGroup
	for _, p := range group {
		wg.Go(func() { finish(p, e.emitOnce(e.life, p.ev, p.raw)) })
	}
	wg.Wait()
}

// publishGroup stores msgs as one atomic batch and returns the stream
// sequence of the last. The batch is committed whole or not at all.
func (e *Emitter) publishGroup(ctx context.Context, msgs []*nats.Msg) (uint64, error) {
	if len(msgs) > 1000 {
		return 0, jetstreamext.ErrBatchPublishExceedsLimit
	}
	ack, err := jetstreamext.PublishMsgBatch(ctx, e.cfg.JetStream, msgs,
		jetstreamext.BatchFlowControl{AckTimeout: e.cfg.Timeout}) // no ack before the commit: one round trip
	if err != nil {
		return 0, err
	}
	return ack.Sequence, nil
}

// Failed counts the events this emitter could neither store nor spool.
// Every one was reported to its caller; the count is for metrics and alerts.
func (e *Emitter) Failed() uint64 { return e.failed.Load() }

func (e *Emitter) emitOnce(ctx context.Context, ev *events.Event, raw []byte) Result {
	if e.spool == nil {
		seq, err := e.publish(ctx, ev, raw, e.cfg.Retries)
		return Result{ID: ev.ID, Seq: seq, Err: err}
	}
	if !e.spool.empty() {
		return e.toSpool(ev, raw)
	}
	// One try: the drainer does the retrying, without holding the caller.
	// Whatever the reason the try failed — the bus, or a shutdown that
	// ended the wait — the event goes to the spool: a publish whose answer
	// was lost may be stored twice, and the event id makes that one event.
	seq, err := e.publish(ctx, ev, raw, 0)
	if err == nil {
		return Result{ID: ev.ID, Seq: seq}
	}
	return e.toSpool(ev, raw)
}

func (e *Emitter) toSpool(ev *events.Event, raw []byte) Result {
	if err := e.spool.append(raw); err != nil {
		return Result{ID: ev.ID, Err: fmt.Errorf("emitter: event %s neither stored nor spooled: %w", ev.ID, err)}
	}
	select {
	case e.wake <- struct{}{}:
	default:
	}
	return Result{ID: ev.ID, Spooled: true}
}

func (e *Emitter) publish(ctx context.Context, ev *events.Event, raw []byte, retries int) (uint64, error) {
	msg := e.message(ev, raw)
	wait := 50 * time.Millisecond
	var last error
	for try := 0; try <= retries; try++ {
		if try > 0 {
			t := time.NewTimer(wait)
			select {
			case <-t.C:
			case <-ctx.Done():
				t.Stop()
				return 0, ctx.Err()
			}
			wait *= 2
		}
		f, err := e.cfg.JetStream.PublishMsgAsync(msg)
		if err != nil {
			last = err
			continue
		}
		t := time.NewTimer(e.cfg.Timeout)
		select {
		case ack := <-f.Ok():
			t.Stop()
			return ack.Sequence, nil
		case err := <-f.Err():
			last = err
		case <-t.C:
			last = errors.New("acknowledgement timed out")
		case <-ctx.Done():
			t.Stop()
			return 0, ctx.Err()
		}
		t.Stop()
	}
	return 0, fmt.Errorf("emitter: event %s not stored after %d tries: %w", ev.ID, retries+1, last)
}

// Wait blocks until every publish accepted so far has finished.
func (e *Emitter) Wait() { e.wg.Wait() }

// Session numbers the events of one session from 1, so a gap in a
// session's sequence is visible in the ledger.
type Session struct {
	ID   string
	mu   sync.Mutex
	next uint64
}

// Next stamps ev with the session id and its next sequence number.
func (s *Session) Next(ev *events.Event) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.next++
	ev.SessionID, ev.SessionSeq = s.ID, s.next
}
