package ledger

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"github.com/auditledger/auditledger/events"
)

// Config configures a Log.
type Config struct {
	// Store holds the segments and checkpoints. Required.
	Store SegmentStore
	// Signer signs checkpoints; its key name is the log's origin. Required.
	Signer *NoteSigner
	// Retention is how long each sealed object must stay undeletable,
	// counted from its seal time. Zero sets no retain-until date (the
	// local store cannot enforce one anyway). With TenantRetention it is
	// the default, for tenants not listed there.
	Retention time.Duration
	// TenantRetention overrides Retention per tenant: a segment's objects
	// are locked for the longest retention among the tenants whose records
	// it holds. Nil: Retention for every tenant.
	TenantRetention map[string]time.Duration
	// Now is the clock. Nil means time.Now.
	Now func() time.Time
}

// Entry is one event to append.
type Entry struct {
	Event []byte
	// Source is the JetStream stream sequence the event came from, or 0
	// for a direct append. Non-zero sources must be contiguous: each the
	// one after the last, or the same for the next event of one batch
	// message, unless the entry is a gap record (GapEntry) covering the
	// sequences in between.
	Source uint64
	// Producer, if set, is the producer's signature of Event; the record
	// keeps it so anyone can check it offline.
	Producer *ProducerSig
	// Tenant is the event's tenant, which its record is bound to (§2.4);
	// when empty, Append reads it from the event.
	Tenant string
	// Bulk are the bulk pieces the event names (docs/FORMAT.md §1.7):
	// Append copies each to the store, locked as the segment is, before
	// it stores the segment.
	Bulk []BulkPiece
}

// Log appends sealed segments to a store: one writer per store. It keeps
// the whole Merkle tree in memory, so proofs are cheap and a restart costs
// one pass over the store.
//
// Append and Tree must be called from one goroutine; Size, LastSource and
// Checkpoint are safe to call concurrently with them (metrics, health).
type Log struct {
	cfg    Config
	st     logState
	latest *Checkpoint
	// Published copies of the state for concurrent readers.
	size       atomic.Uint64
	lastSource atomic.Uint64
	checkpoint atomic.Pointer[Checkpoint]
	// dirty is set when a write failed in an unknown state: the next
	// Append first finds out what reached the store.
	dirty error
	// uncheckedSources lets a test seal records that break the source
	// rule (export_test.go), to prove that verify refuses them.
	uncheckedSources bool
}

// Open reads the store, checks every segment's chain and trailer, and
// returns a Log positioned after the last sealed record. If the writer
// died between sealing a segment and signing its checkpoint, Open signs it.
func Open(ctx context.Context, cfg Config) (*Log, error) {
	if cfg.Store == nil {
		return nil, errors.New("ledger: Config.Store is required")
	}
	if cfg.Signer == nil {
		return nil, errors.New("ledger: Config.Signer is required")
	}
	if cfg.Retention < 0 {
		return nil, fmt.Errorf("ledger: negative retention %v", cfg.Retention)
	}
	for t, d := range cfg.TenantRetention {
		if d <= 0 {
			return nil, fmt.Errorf("ledger: retention %v for tenant %q: must be positive", d, t)
		}
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	l := &Log{cfg: cfg, st: logState{tree: NewTree()}}
	if err := l.recover(ctx); err != nil {
		return nil, err
	}
	return l, nil
}

// Size is the number of sealed records.
func (l *Log) Size() uint64 { return l.size.Load() }

// Tree is the log's Merkle tree. Callers must not modify it.
func (l *Log) Tree() *Tree { return l.st.tree }

// Checkpoint is the latest signed checkpoint, nil for an empty log.
func (l *Log) Checkpoint() *Checkpoint { return l.checkpoint.Load() }

// Origin is the log's origin line: the signing key's name.
func (l *Log) Origin() string { return l.cfg.Signer.Name() }

// LastSource is the highest source stream sequence sealed so far.
func (l *Log) LastSource() uint64 { return l.lastSource.Load() }

// publish makes the state visible to concurrent readers.
func (l *Log) publish() {
	l.size.Store(l.st.size)
	l.lastSource.Store(l.st.lastSource)
	l.checkpoint.Store(l.latest)
}

// Seal is the result of an Append.
type Seal struct {
	Checkpoint *Checkpoint
	Segment    string   // object name of the new segment
	First      uint64   // index of Records[0]
	Records    [][]byte // the sealed records, exactly as stored
	Leaves     []Hash   // their leaf hashes
}

// Append seals entries as one new segment and signs a checkpoint for it.
// When Append returns nil, both are durable in the store. On an error
// wrapping ErrFenced another writer has extended the store and this Log
// must be discarded. On other errors nothing is assumed: the next Append
// first recovers whatever reached the store, so a retry never appends
// twice what was sealed once — but the caller must then check LastSource
// (or Size) before retrying the same entries, and call Sync before it
// treats entries at or below LastSource as durable.
func (l *Log) Append(ctx context.Context, entries []Entry) (*Seal, error) {
	if len(entries) == 0 {
		return &Seal{Checkpoint: l.latest, First: l.st.size}, nil
	}
	if len(entries) > MaxSegmentRecords {
		return nil, fmt.Errorf("ledger: %d entries exceed the %d-record segment limit", len(entries), MaxSegmentRecords)
	}
	if l.dirty != nil {
		if err := l.recover(ctx); err != nil {
			return nil, err
		}
	}
	now := l.cfg.Now().UnixNano()
	if now < l.st.lastTime {
		now = l.st.lastTime // record times never go backwards, whatever the clock does
	}
	first := l.st.size
	recs := make([]Record, len(entries))
	retention := l.retention()
	var keep time.Duration // the longest retention of the segment's tenants
	lastSource, lastSourceSeg := l.st.lastSource, ""
	name := SegmentName(first)
	// A batch is mostly a few tenants: each one's hash and retention
	// worked out once, not once per record.
	var lastTenant string
	var lastHash Hash
	haveLast := false
	for i, e := range entries {
		if len(e.Event) > events.MaxSize {
			return nil, fmt.Errorf("ledger: entry %d: event is %d bytes, the limit is %d", i, len(e.Event), events.MaxSize)
		}
		tenant := e.Tenant
		if tenant == "" {
			tenant, _ = events.PeekTenant(e.Event) // none: bound to "", and verify names the event invalid
		}
		if !haveLast || tenant != lastTenant {
			keep = max(keep, retention.For(tenant))
			lastTenant, lastHash, haveLast = tenant, TenantHash(tenant), true
		}
		recs[i] = Record{Index: first + uint64(i), Time: time.Unix(0, now), Source: e.Source, Producer: e.Producer, Event: e.Event,
			Bound: true, Tenant: lastHash}
		if e.Source != 0 && !l.uncheckedSources {
			// The verifier's rule, applied before sealing: every source is
			// the next stream sequence, a rejection of it, or a gap record
			// covering the run from it.
			scratch := logState{lastSource: lastSource, lastSourceSeg: lastSourceSeg}
			if err := scratch.checkSource(name, recs[i].Index, recs[i]); err != nil {
				return nil, fmt.Errorf("ledger: entry %d (source %d after %d): %w", i, e.Source, lastSource, err)
			}
			lastSource, lastSourceSeg = e.Source, name
		}
	}
	seg, buf := encodeRecords(first, l.st.chain, recs)
	leaves := leafHashes(seg)
	chain := l.st.chain
	for _, leaf := range leaves {
		chain = ChainHash(chain, leaf)
		l.st.tree.Append(leaf) // taken back below if the seal fails
	}
	seg.Chain = chain
	seg.Root, _ = l.st.tree.Root(first + uint64(len(entries)))
	retain := time.Time{}
	if keep > 0 {
		retain = RetainUntil(time.Unix(0, now), keep)
	}
	// The pieces the records name first: a segment is never stored
	// naming a piece the store lacks. A crash between the two leaves
	// copies the next attempt finds with the same bytes.
	if err := storeBulkOf(ctx, l.cfg.Store, entries, retain); err != nil {
		l.st.tree.truncate(first)
		return nil, fmt.Errorf("ledger: seal %s: %w", name, err)
	}
	data := seg.appendTrailer(buf)
	if err := l.cfg.Store.Create(ctx, name, data, retain); err != nil && !l.ownWrite(ctx, name, data, err) {
		l.st.tree.truncate(first)
		l.dirty = err
		if errors.Is(err, ErrExist) {
			return nil, fmt.Errorf("ledger: seal %s: %w (%w)", name, ErrFenced, err)
		}
		return nil, fmt.Errorf("ledger: seal %s: %w", name, err)
	}
	// The segment is sealed: adopt it, whatever happens to the checkpoint.
	for _, leaf := range leaves {
		l.st.cr.append(leaf)
	}
	l.st.size += uint64(len(entries))
	l.st.chain = chain
	l.st.lastTime = now
	l.st.lastSource = lastSource
	defer l.publish()
	if err := l.signCheckpoint(ctx, retain); err != nil {
		l.dirty = err
		return nil, err
	}
	return &Seal{Checkpoint: l.latest, Segment: name, First: first, Records: seg.Records, Leaves: leaves}, nil
}

// retention is the configured retention per tenant.
func (l *Log) retention() Retention {
	return Retention{Default: l.cfg.Retention, Tenants: l.cfg.TenantRetention}
}

// ownWrite reports whether a refused conditional create of name found
// exactly data there: this writer's own earlier attempt, which landed
// although its answer was lost (a client that resends a request that timed
// out gets a refusal for the resend once the original lands). Only
// different bytes mean another writer.
func (l *Log) ownWrite(ctx context.Context, name string, data []byte, err error) bool {
	if !errors.Is(err, ErrExist) {
		return false
	}
	b, gerr := l.cfg.Store.Get(ctx, name)
	return gerr == nil && bytes.Equal(b, data)
}

// Sync makes sure the store holds a signed checkpoint for every sealed
// record. After an Append that failed once its segment was sealed (the
// checkpoint write failed: disk full, S3 unavailable), the records are in
// the log — LastSource says so — but not yet covered by a checkpoint; a
// caller MUST call Sync, and see it succeed, before it acknowledges them.
// It has nothing to do after a successful Append.
func (l *Log) Sync(ctx context.Context) error {
	if l.dirty == nil {
		return nil
	}
	return l.recover(ctx)
}

func (l *Log) signCheckpoint(ctx context.Context, retain time.Time) error {
	cp, err := SignCheckpoint(l.cfg.Signer, l.st.size, l.st.root())
	if err != nil {
		return err
	}
	name := CheckpointName(cp.Size)
	err = l.cfg.Store.Create(ctx, name, cp.Signed, retain)
	if errors.Is(err, ErrExist) {
		// A previous attempt may have written it: accept it only if it
		// says the same thing under our key.
		b, gerr := l.cfg.Store.Get(ctx, name)
		if gerr != nil {
			return fmt.Errorf("ledger: read %s: %w", name, gerr)
		}
		old, oerr := OpenCheckpoint(b, l.cfg.Signer.Verifier())
		var other *OtherSignersError
		if errors.As(oerr, &other) {
			return fmt.Errorf("ledger: %s is signed by %s, and this writer's key is %s: is it the key of this log, and the store the right one? %w",
				name, strings.Join(other.Signers, ", "), other.Want, ErrWrongKey)
		}
		if oerr != nil || old.Root != cp.Root || old.Size != cp.Size {
			return fmt.Errorf("ledger: %s exists with other content: %w", name, ErrFenced)
		}
		l.latest = old
		return nil
	}
	if err != nil {
		return fmt.Errorf("ledger: sign %s: %w", name, err)
	}
	l.latest = cp
	return nil
}

// recover brings the in-memory state up to what the store holds: it adopts
// (after checking) segments written after the known size, and signs the
// checkpoint for the end of the log if it is missing.
func (l *Log) recover(ctx context.Context) error {
	names, err := l.cfg.Store.List(ctx, SegmentPrefix)
	if err != nil {
		return fmt.Errorf("ledger: list segments: %w", err)
	}
	start := SegmentName(l.st.size)
	i, _ := slices.BinarySearch(names, start)
	names = names[i:]
	fetcher := fetchSegments(ctx, l.cfg.Store, names, 0)
	defer l.publish() // what was adopted counts even if a later segment fails
	for _, name := range names {
		r, err := fetcher.Next(ctx)
		if err != nil {
			return err
		}
		if r.err != nil {
			return fmt.Errorf("ledger: open %s: %w", name, r.err)
		}
		if err := l.st.apply(name, r.seg, r.leaves); err != nil {
			return fmt.Errorf("ledger: open: %w", err)
		}
	}
	if l.st.size > 0 && (l.latest == nil || l.latest.Size != l.st.size) {
		// Which tenants the last segment holds is not kept: its
		// checkpoint gets the longest retention of all.
		retain := time.Time{}
		if keep := l.retention().Max(); keep > 0 {
			retain = RetainUntil(time.Unix(0, l.st.lastTime), keep)
		}
		if err := l.signCheckpoint(ctx, retain); err != nil {
			return err
		}
	}
	l.dirty = nil
	l.publish()
	return nil
}
