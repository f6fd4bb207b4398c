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
// group is published as one batch message (events.BatchSubject: the
// events as JSON lines) — one acknowledgement, and with sync_interval
// always one fsync, for up to MaxBatch events; the ledger writer splits
// it, and seals each event id once whatever arrives twice. A batch the bus
// does not acknowledge is published again event by event (with a spool,
// spooled): if the batch was stored after all, the writer records the
// copies as rejected duplicates, never seals them twice. A bus that takes
// no batches (a stream set up before them, credentials from before them)
// gets single publishes for a minute at a time.
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

	"github.com/auditledger/auditledger/events"
	"github.com/auditledger/auditledger/ledger/bus"
)

// Config configures an Emitter.
type Config struct {
	// JetStream is required. Its connection should not buffer while
	// reconnecting (nats.ReconnectBufSize(-1)): a publish that timed out
	// and was spooled could otherwise still reach the bus from the buffer,
	// and again from the spool in a batch, which the ledger then records
	// as a rejected duplicate.
	JetStream jetstream.JetStream
	// MaxInFlight bounds publishes awaiting acknowledgement; zero means 4096.
	MaxInFlight int
	// Retries per event before Emit gives up (or spools); zero means 5.
	// Between tries the wait doubles from 50ms.
	Retries int
	// Timeout bounds the wait for one acknowledgement; zero means 5s.
	Timeout time.Duration
	// SpoolDir, if set, is where events wait while the bus is unreachable.
	SpoolDir string
	// Journal makes the spool a local journal that every event goes
	// through (needs SpoolDir): each group is appended to it with one
	// write and one fsync and reported spooled (Result.Spooled), and the
	// drainer delivers it to the bus in order. The bus is then out of the
	// path a caller waits on; what is acknowledged survives a crash of
	// the process and an outage of the bus, but until drained lives on
	// this host's disk alone (docs/OPERATIONS.md, durability modes).
	Journal bool
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
	// and at Close. An attestation the bus does not store is sent again
	// with backoff until Close, which tries for up to DrainTimeout more.
	Attester       Attester
	AttestEvery    int
	AttestInterval time.Duration
	// Sign, if set, signs each encoded event as its producer; what it
	// returns is sent in the bus.HeaderSignature (the ledger's
	// ledger.SignEvent with this producer's key).
	Sign func(event []byte) string
	// MaxBatch caps the events in one group; zero means 1000, JetStream's
	// default limit on an atomic batch. One means no group commit: every
	// event is published and acknowledged on its own.
	MaxBatch int
	// Groups bounds the groups being stored at once; zero means 1, the
	// classic group commit: while one group is being stored the next one
	// gathers. As measured (docs/PERFORMANCE.md, "Group commit"), more
	// groups in flight only split the same events into more messages —
	// each its own fsync under sync_interval always — for no gain under
	// interval.
	Groups int
	// LaterWait bounds how long an event given to EmitLater waits for a
	// group to go with; zero means 2ms.
	LaterWait time.Duration
}

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
	qmu    sync.Mutex
	queue  []*pending
	eager  int // events in queue that start a group (not EmitLater's)
	kick   chan struct{}
	groups chan struct{} // a slot per group being stored
	// toStore hands a group to one of Config.Groups storers, which stay
	// for the emitter's life (a goroutine per group grew a new stack
	// for every statement of a session at one client).
	toStore   chan []*pending
	committed chan struct{} // closed when the committer has stopped
	noBatch   atomic.Int64  // unix nanos until which no batch is tried
	refused   refusals
	Stats     Stats
}

// Stats are running totals, safe to read concurrently.
type Stats struct {
	// Groups stored as one batch message, and the events in them.
	Groups, GroupedEvents atomic.Uint64
	// Single publishes: lone events, signed ones, and the events of
	// batches the bus did not acknowledge.
	Singles atomic.Uint64
	// GroupsRefused counts batch messages the bus did not acknowledge.
	GroupsRefused atomic.Uint64
	// SpoolDamaged counts regions of the spool that held no readable
	// event, found when it was opened or while it was drained (each is
	// in SpoolDamage and quarantined).
	SpoolDamaged atomic.Uint64
	// SpoolRetries counts tries to deliver the spool that failed (the
	// bus down or refusing); each is tried again after a backoff.
	SpoolRetries atomic.Uint64
	// AttestationsLost counts producer attestations that could not be
	// signed, or that the bus had not stored by Close's deadline: their
	// events stay unattested.
	AttestationsLost atomic.Uint64
	// Queued and Publishing add up, over the Timed events finished that
	// someone waits on (not EmitLater's), how long each waited for its
	// group to start (behind the groups in flight) and how long its
	// group then took to be stored, in nanoseconds.
	Queued, Publishing, Timed atomic.Uint64
}

// pending is one accepted event waiting for its group.
type pending struct {
	ev    *events.Event
	raw   []byte
	done  func(Result)
	alone bool      // never in a batch (EmitAlone)
	later bool      // starts no group of its own (EmitLater)
	at    time.Time // when it was accepted
}

// New returns an Emitter.
func New(cfg Config) (*Emitter, error) {
	if cfg.JetStream == nil {
		return nil, errors.New("emitter: Config.JetStream is required")
	}
	if cfg.Journal && cfg.SpoolDir == "" {
		return nil, errors.New("emitter: Config.Journal needs a SpoolDir, the journal's directory")
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
		cfg.Groups = 1
	}
	if cfg.LaterWait <= 0 {
		cfg.LaterWait = 2 * time.Millisecond
	}
	e := &Emitter{cfg: cfg, slot: make(chan struct{}, cfg.MaxInFlight), wake: make(chan struct{}, 1),
		kick: make(chan struct{}, 1), groups: make(chan struct{}, cfg.Groups),
		toStore: make(chan []*pending, cfg.Groups), committed: make(chan struct{})}
	e.life, e.endLife = context.WithCancel(context.Background())
	e.refused.watch(cfg.JetStream.Conn())
	go e.commit()
	for range cfg.Groups {
		go func() {
			for group := range e.toStore {
				e.store(group)
				<-e.groups
			}
		}()
	}
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
		if sp.resumed {
			cfg.Logger.Warn("the last rewrite of the spool was cut short (a crash): delivering it from its first entry; what it quarantined is beside it", "spool", cfg.SpoolDir)
		}
		e.Stats.SpoolDamaged.Add(uint64(len(sp.damage)))
		for _, d := range sp.damage {
			if d.Offset < 0 {
				cfg.Logger.Error("spool position unreadable or not on an entry: delivering the whole spool again (the bus drops what it already stored, by event id)", "spool", cfg.SpoolDir)
				continue
			}
			cfg.Logger.Error("spool damaged: intact entries kept, unreadable bytes quarantined", "spool", cfg.SpoolDir, "damage", d.String())
		}
		sp.journal = cfg.Journal
		e.spool = sp
		ctx, cancel := context.WithCancel(context.Background())
		e.stop = cancel
		e.drained.Go(func() { e.drain(ctx) })
	}
	return e, nil
}

// SpoolDamage lists what the spool could not read, on opening it or
// while draining it: each region is quarantined in a file beside the
// spool, and entries after it were kept. A non-empty list means events may be lost; callers must say so
// (auditledger emit exits non-zero).
func (e *Emitter) SpoolDamage() []SpoolDamage {
	if e.spool == nil {
		return nil
	}
	return e.spool.damaged()
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
		e.attest.close(e.cfg.DrainTimeout) // the last batch's attestation, and any not stored yet, while still open
	}
	e.mu.Lock()
	if e.closed {
		e.mu.Unlock()
		return nil
	}
	e.closed = true
	e.mu.Unlock()
	e.kickCommitter() // what EmitLater holds goes now
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
	var warned time.Time
	for {
		select {
		case <-ctx.Done():
			return
		case <-e.wake:
		case <-time.After(backoff):
		}
		for !e.spool.empty() && ctx.Err() == nil {
			if err := e.drainOnce(ctx); err != nil {
				e.Stats.SpoolRetries.Add(1)
				if ctx.Err() == nil && time.Since(warned) > time.Minute {
					warned = time.Now() // once a minute: the bus may be down for long
					e.cfg.Logger.Warn("spool not delivered yet: retrying", "spool", e.cfg.SpoolDir, "err", err)
				}
				backoff = min(2*backoff, 5*time.Second)
				break
			}
			backoff = 100 * time.Millisecond
		}
	}
}

// drainOnce delivers the next spooled events. Bytes that hold no event
// (unreadable, or an intact entry that does not parse as one) are damage:
// quarantined, reported and skipped past, as when the spool is opened, so
// one bad entry never stops the ones after it.
func (e *Emitter) drainOnce(ctx context.Context) error {
	entries, next, bad, err := e.spool.peek(256)
	if err != nil {
		return err
	}
	var badLen int64
	group := make([]*pending, 0, len(entries))
	for _, en := range entries {
		ev, err := events.Parse(en.data)
		if err != nil {
			next, bad, badLen = en.off, en.off, 8+int64(len(en.data))
			break
		}
		group = append(group, &pending{ev: ev, raw: en.data})
	}
	if len(group) > 0 {
		if err := e.publishBatch(ctx, group); err != nil {
			return err
		}
		if err := e.spool.advance(next); err != nil {
			return err
		}
	}
	if bad < 0 {
		return nil
	}
	d, err := e.spool.skip(bad, badLen)
	if err != nil {
		return err
	}
	e.Stats.SpoolDamaged.Add(1)
	e.cfg.Logger.Error("spool damaged while draining: unreadable bytes quarantined and skipped, the intact entries after them delivered",
		"spool", e.cfg.SpoolDir, "offset", d.Offset, "bytes", d.Length, "damage", d.String())
	return nil
}

// publishBatch stores spooled events: in batch messages if it can, else
// one by one.
func (e *Emitter) publishBatch(ctx context.Context, group []*pending) error {
	rest := group
	if e.batching() {
		rest = nil
		for _, b := range e.batches(group) {
			if len(b) < 2 || !e.batching() {
				rest = append(rest, b...)
			} else if _, _, err := e.publishMsg(ctx, batchMsg(b), 0, "batch"); err != nil {
				e.batchFailed(err)
				rest = append(rest, b...)
			}
		}
	}
	futures := make([]jetstream.PubAckFuture, 0, len(rest))
	for _, p := range rest {
		f, err := e.cfg.JetStream.PublishMsgAsync(e.message(p.ev, p.raw))
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
	msg := nats.NewMsg(bus.Subject(ev.Tenant, ev.Type, ev.Source.Instance))
	msg.Data = raw
	msg.Header.Set(nats.MsgIdHdr, ev.ID)
	if e.cfg.Sign != nil {
		msg.Header.Set(bus.HeaderSignature, e.cfg.Sign(raw))
	}
	return msg
}

// Result is the outcome of one asynchronous publish.
type Result struct {
	ID  string
	Seq uint64 // stream sequence, when stored
	// Duplicate: the bus had the event (or its batch) already, by id,
	// within its duplicate window; it is stored once.
	Duplicate bool
	Spooled   bool // not stored yet, but fsynced to the spool for later delivery
	Err       error
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
//
// raw is published as it is, later: it MUST NOT change until done is
// called (the decoded event views it rather than a copy).
func (e *Emitter) EmitRaw(ctx context.Context, raw []byte, done func(Result)) error {
	ev, err := events.ParseShared(raw)
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
	return e.enqueue(ctx, &pending{ev: ev, raw: raw, done: done})
}

// enqueue accepts p for the next group.
func (e *Emitter) enqueue(ctx context.Context, p *pending) error {
	ev, raw := p.ev, p.raw
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
	p.at = time.Now()
	e.qmu.Lock()
	e.queue = append(e.queue, p)
	if !p.later {
		e.eager++
	}
	// An event that starts no group still wakes an idle committer, to
	// start its wait.
	kick := !p.later || len(e.queue) == 1
	e.qmu.Unlock()
	if kick {
		e.kickCommitter()
	}
	return nil
}

// EmitLater is EmitAsync for an event owed for what already happened,
// that nothing waits on (a result's digest): it starts no group of its
// own, but goes with the next group that starts — in a gateway, most
// often the one holding the same session's next command — or, if none
// starts, LaterWait after it was given. So a command and the digest of
// the one before it share one message and one acknowledgement, each
// still an event of its own. Until its group is published it is held in
// this process only, as an asynchronous event always is until stored.
func (e *Emitter) EmitLater(ctx context.Context, ev *events.Event, done func(Result)) error {
	raw, err := ev.Marshal()
	if err != nil {
		return err
	}
	return e.enqueue(ctx, &pending{ev: ev, raw: raw, done: done, later: true})
}

// Emit publishes ev and waits until JetStream has stored it or, with a
// spool, until it is spooled (Result.Spooled). If ctx ends first, Emit
// returns ctx's error, and the event is still stored, spooled or counted
// failed under the emitter's lifetime.
func (e *Emitter) Emit(ctx context.Context, ev *events.Event) (Result, error) {
	return e.emitWait(ctx, ev, false)
}

// EmitAlone is Emit for an event that other producers may publish too,
// under the same id (an approval decision, recorded by the API and again
// by the proxy that acts on it): it goes in a message of its own, with
// its id as Nats-Msg-Id, never in a batch, so JetStream keeps the first
// copy and drops the others within its duplicate window — rather than
// the ledger recording each later copy as a rejected duplicate.
func (e *Emitter) EmitAlone(ctx context.Context, ev *events.Event) (Result, error) {
	return e.emitWait(ctx, ev, true)
}

func (e *Emitter) emitWait(ctx context.Context, ev *events.Event, alone bool) (Result, error) {
	raw, err := ev.Marshal()
	if err != nil {
		return Result{ID: ev.ID, Err: err}, err
	}
	ch := make(chan Result, 1)
	if err := e.enqueue(ctx, &pending{ev: ev, raw: raw, done: func(r Result) { ch <- r }, alone: alone}); err != nil {
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
	defer close(e.toStore)
	var timer *time.Timer
	for {
		e.qmu.Lock()
		empty, eager := len(e.queue) == 0, e.eager > 0
		var oldest time.Time
		if !empty {
			oldest = e.queue[0].at
		}
		e.qmu.Unlock()
		e.mu.Lock()
		closed := e.closed
		e.mu.Unlock()
		if empty {
			if closed && e.life.Err() != nil {
				return
			}
			<-e.kick
			continue
		}
		// Only events that start no group: wait for one that does, up
		// to LaterWait after the oldest (the queue is in order).
		if wait := e.cfg.LaterWait - time.Since(oldest); !eager && !closed && wait > 0 {
			if timer == nil {
				timer = time.NewTimer(wait)
			} else {
				timer.Reset(wait)
			}
			select {
			case <-e.kick:
				timer.Stop()
			case <-timer.C:
			}
			continue
		}
		// A slot first, then what queued until then: while the groups
		// in flight are stored, the next one grows.
		e.groups <- struct{}{}
		e.qmu.Lock()
		n := min(len(e.queue), e.cfg.MaxBatch)
		group := make([]*pending, n)
		copy(group, e.queue)
		for _, p := range group {
			if !p.later {
				e.eager--
			}
		}
		e.queue = append(e.queue[:0], e.queue[n:]...)
		e.qmu.Unlock()
		e.toStore <- group // a storer is free: the slot says so
	}
}

// store publishes one group and reports each event's result.
func (e *Emitter) store(group []*pending) {
	start := time.Now()
	finish := func(p *pending, r Result) {
		if r.Err != nil {
			e.failed.Add(1)
		}
		if !p.at.IsZero() && !p.later {
			e.Stats.Queued.Add(uint64(start.Sub(p.at)))
			e.Stats.Publishing.Add(uint64(time.Since(start)))
			e.Stats.Timed.Add(1)
		}
		<-e.slot
		p.done(r)
		e.wg.Done()
	}
	if e.cfg.Journal {
		// The journal: the whole group on disk with one fsync, then
		// delivered by the drainer.
		raws := make([][]byte, len(group))
		for i, p := range group {
			raws[i] = p.raw
		}
		err := e.spool.appendAll(raws)
		if err == nil {
			select {
			case e.wake <- struct{}{}:
			default:
			}
		}
		for _, p := range group {
			if err != nil {
				finish(p, Result{ID: p.ev.ID, Err: fmt.Errorf("emitter: event %s not journaled: %w", p.ev.ID, err)})
				continue
			}
			finish(p, Result{ID: p.ev.ID, Spooled: true})
		}
		return
	}
	var singles []*pending
	if len(group) > 1 && e.batching() && (e.spool == nil || e.spool.empty()) {
		var batchable []*pending
		for _, p := range group {
			if p.alone {
				singles = append(singles, p)
			} else {
				batchable = append(batchable, p)
			}
		}
		for _, b := range e.batches(batchable) {
			if len(b) < 2 || !e.batching() {
				singles = append(singles, b...)
				continue
			}
			// One try: the single publishes that follow a failure retry
			// (or spool) each event.
			seq, dup, err := e.publishMsg(e.life, batchMsg(b), 0, fmt.Sprintf("batch of %d events", len(b)))
			if err != nil {
				e.batchFailed(err)
				singles = append(singles, b...)
				continue
			}
			e.Stats.Groups.Add(1)
			e.Stats.GroupedEvents.Add(uint64(len(b)))
			for _, p := range b {
				finish(p, Result{ID: p.ev.ID, Seq: seq, Duplicate: dup})
			}
		}
	} else {
		singles = group
	}
	// One by one, each with its own retries (or spool).
	e.Stats.Singles.Add(uint64(len(singles)))
	if len(singles) == 1 {
		finish(singles[0], e.emitOnce(e.life, singles[0].ev, singles[0].raw))
		return
	}
	var wg sync.WaitGroup
	for _, p := range singles {
		wg.Go(func() { finish(p, e.emitOnce(e.life, p.ev, p.raw)) })
	}
	wg.Wait()
}

// batching reports whether groups go in batch messages.
func (e *Emitter) batching() bool {
	return e.cfg.Sign == nil && e.cfg.MaxBatch > 1 && time.Now().UnixNano() >= e.noBatch.Load()
}

// batchFailed notes a batch the bus did not acknowledge. No stream for
// batch subjects, or no answer at all (credentials without the batch
// subject: the server drops the message), stops batching for a minute.
func (e *Emitter) batchFailed(err error) {
	e.Stats.GroupsRefused.Add(1)
	var refused *RefusedError
	if errors.Is(err, jetstream.ErrNoStreamResponse) || errors.Is(err, nats.ErrNoResponders) || errors.Is(err, errAckTimeout) || errors.As(err, &refused) {
		if e.noBatch.Swap(time.Now().Add(time.Minute).UnixNano()) < time.Now().UnixNano() {
			e.cfg.Logger.Warn("the bus did not take a batch of events: publishing them one by one for a minute "+
				"(is AUDIT_EVENTS set up by this version, and do this producer's credentials allow audit.batch.<producer>?)", "err", err)
		}
	}
}

// batches splits a group into batches by producer (each producer has its
// own batch subject) and size; an event that cannot be batched is a
// batch of its own.
func (e *Emitter) batches(group []*pending) [][]*pending {
	var out [][]*pending
	// Each producer's open batch: a process has one producer or a few,
	// so a list, looked up by the source instance the token is made of.
	type batch struct {
		instance string
		i, size  int // index in out, bytes
	}
	var open []batch
	for _, p := range group {
		if !bus.Batchable(p.raw) {
			out = append(out, []*pending{p})
			continue
		}
		inst := p.ev.Source.Instance
		o := -1
		for k := range open {
			if open[k].instance == inst {
				o = k
				break
			}
		}
		if o < 0 {
			open = append(open, batch{instance: inst, i: -1})
			o = len(open) - 1
		}
		b := &open[o]
		if b.i < 0 || len(out[b.i]) >= e.cfg.MaxBatch || b.size+len(p.raw)+1 > bus.MaxBatchBytes {
			out = append(out, make([]*pending, 0, min(len(group), e.cfg.MaxBatch)))
			b.i, b.size = len(out)-1, 0
		}
		out[b.i] = append(out[b.i], p)
		b.size += len(p.raw) + 1
	}
	return out
}

// batchMsg is the batch message of b: its events as JSON lines, with a
// Nats-Msg-Id derived from their ids.
func batchMsg(b []*pending) *nats.Msg {
	ids := make([]string, len(b))
	n := 0
	for i, p := range b {
		ids[i] = p.ev.ID
		n += len(p.raw) + 1
	}
	body := make([]byte, 0, n)
	for _, p := range b {
		body = bus.AppendBatch(body, p.raw)
	}
	m := nats.NewMsg(bus.BatchSubject(b[0].ev.Source.Instance))
	m.Data = body
	m.Header.Set(nats.MsgIdHdr, bus.BatchID(ids))
	return m
}

// Failed counts the events this emitter could neither store nor spool.
// Every one was reported to its caller; the count is for metrics and alerts.
func (e *Emitter) Failed() uint64 { return e.failed.Load() }

func (e *Emitter) emitOnce(ctx context.Context, ev *events.Event, raw []byte) Result {
	if e.spool == nil {
		seq, dup, err := e.publishMsg(ctx, e.message(ev, raw), e.cfg.Retries, "event "+ev.ID)
		return Result{ID: ev.ID, Seq: seq, Duplicate: dup, Err: err}
	}
	if !e.spool.empty() {
		return e.toSpool(ev, raw)
	}
	// One try: the drainer does the retrying, without holding the caller.
	// Whatever the reason the try failed — the bus, or a shutdown that
	// ended the wait — the event goes to the spool: a publish whose answer
	// was lost may be stored twice, and the event id makes that one event.
	// A refusal is not spooled: the bus would refuse it again from the
	// spool while the credentials stay what they are.
	seq, dup, err := e.publishMsg(ctx, e.message(ev, raw), 0, "event "+ev.ID)
	var refused *RefusedError
	if err == nil {
		return Result{ID: ev.ID, Seq: seq, Duplicate: dup}
	} else if errors.As(err, &refused) {
		return Result{ID: ev.ID, Err: err}
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

// publishMsg publishes msg until JetStream acknowledges it, trying
// retries times more with doubling waits; what names it in errors.
// It reports whether JetStream had the message already (by its
// Nats-Msg-Id, within the duplicate window). A refusal by the bus's
// permissions (RefusedError) ends it at once: no retry can pass.
func (e *Emitter) publishMsg(ctx context.Context, msg *nats.Msg, retries int, what string) (seq uint64, dup bool, err error) {
	wait := 50 * time.Millisecond
	var last error
	for try := 0; try <= retries; try++ {
		refused, changed := e.refused.of(msg.Subject)
		if refused != nil {
			return 0, false, fmt.Errorf("emitter: %s not stored: %w", what, refused)
		}
		if try > 0 {
			t := time.NewTimer(wait)
			select {
			case <-t.C:
			case <-ctx.Done():
				t.Stop()
				return 0, false, ctx.Err()
			}
			wait *= 2
		}
		f, err := e.cfg.JetStream.PublishMsgAsync(msg)
		if err != nil {
			last = err
			continue
		}
		t := time.NewTimer(e.cfg.Timeout)
	acked:
		for {
			select {
			case ack := <-f.Ok():
				t.Stop()
				return ack.Sequence, ack.Duplicate, nil
			case err := <-f.Err():
				last = err
			case <-t.C:
				last = errAckTimeout
			case <-changed:
				if refused, changed = e.refused.of(msg.Subject); refused != nil {
					t.Stop()
					return 0, false, fmt.Errorf("emitter: %s not stored: %w", what, refused)
				}
				continue
			case <-ctx.Done():
				t.Stop()
				return 0, false, ctx.Err()
			}
			break acked
		}
		t.Stop()
	}
	return 0, false, fmt.Errorf("emitter: %s not stored after %d tries: %w", what, retries+1, last)
}

var errAckTimeout = errors.New("acknowledgement timed out")

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
