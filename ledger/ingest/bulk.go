package ingest

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/auditledger/auditledger/events"
	"github.com/auditledger/auditledger/ledger"
	"github.com/auditledger/auditledger/ledger/bus"
	"github.com/auditledger/auditledger/ledger/piikeys"
)

// Bulk pieces (docs/FORMAT.md §1.7): a session.output event may name an
// encrypted object its gateway published to AUDIT_BULK under its own
// producer token. The writer accepts the event only if the stream holds
// that object, of the size the event names and whose SHA-256 is its name;
// copies it to the store before the segment naming it (ledger.Log.Append,
// with the segment's retain-until date); and deletes it from the stream
// once the segment is stored. A writer killed between the copy and the
// segment copies it again (the same bytes: accepted); one killed between
// the segment and the deletion deletes it when the event is delivered
// again, or the stream's age limit does.

// bulkStream is AUDIT_BULK, looked up on first use.
type bulkStream struct {
	js     jetstream.JetStream
	mu     sync.Mutex
	stream jetstream.Stream
	keys   *piikeys.Store // the key store, opened on first use
	// kept is how many bytes of checked pieces are held for their copy
	// to the store (bulkKept at most).
	kept atomic.Int64
}

// bulkKept bounds the bytes of the pieces the writer keeps from its
// check to their copy to the store, so that the copy reads them neither
// from the bus nor hashes them again; a piece past it is read again
// when its segment is sealed (a batch's pieces are never all in memory
// at once).
const bulkKept = 64 << 20

// storedMsg is a message of AUDIT_BULK as its leader answers.
type storedMsg struct {
	Subject string `json:"subject"`
	Seq     uint64 `json:"seq"`
	Data    []byte `json:"data"`
}

// errNoMsg: AUDIT_BULK holds no such message (or no such stream).
var errNoMsg = errors.New("no such message")

// read reads one message of AUDIT_BULK: by a direct get, whose answer is
// the message's bytes as they are, and, when that finds nothing (a
// follower that has not stored it yet may answer a direct get, or the
// stream allows none), from the leader (leaderGet), whose answer is
// JSON with the bytes in base64 — for a piece of 512 KiB, decoding that
// took most of the writer's time.
func (b *bulkStream) read(ctx context.Context, req map[string]any) (*storedMsg, error) {
	if m, ok := b.directGet(ctx, req); ok {
		return m, nil
	}
	return b.leaderGet(ctx, req)
}

// directGet is a direct get of req ($JS.API.DIRECT.GET); ok is false
// when it found nothing, failed, or its answer does not say what it is.
func (b *bulkStream) directGet(ctx context.Context, req map[string]any) (*storedMsg, bool) {
	body, err := json.Marshal(req)
	if err != nil {
		return nil, false
	}
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	m, err := b.js.Conn().RequestWithContext(ctx, "$JS.API.DIRECT.GET."+bus.BulkStream, body)
	if err != nil || m.Header == nil || m.Header.Get("Status") != "" {
		return nil, false // 404, 408: not here, or not yet
	}
	seq, err := strconv.ParseUint(m.Header.Get(jetstream.SequenceHeader), 10, 64)
	if err != nil || m.Header.Get(jetstream.StreamHeader) != bus.BulkStream {
		return nil, false
	}
	return &storedMsg{Subject: m.Header.Get(jetstream.SubjectHeader), Seq: seq, Data: m.Data}, true
}

// leaderGet reads one message of AUDIT_BULK from the stream's leader
// ($JS.API.STREAM.MSG.GET), never a direct get: with replicas, a direct
// get may be answered by a follower that has not yet stored a piece the
// leader acknowledged to its gateway, and the event naming it would be
// rejected for nothing.
func (b *bulkStream) leaderGet(ctx context.Context, req map[string]any) (*storedMsg, error) {
	body, err := json.Marshal(req)
	if err != nil {
		return nil, err
	}
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, 5*time.Second)
		defer cancel()
	}
	m, err := b.js.Conn().RequestWithContext(ctx, "$JS.API.STREAM.MSG.GET."+bus.BulkStream, body)
	if err != nil {
		return nil, err
	}
	var resp struct {
		Message *storedMsg `json:"message"`
		Error   *struct {
			Code        int    `json:"code"`
			ErrCode     int    `json:"err_code"`
			Description string `json:"description"`
		} `json:"error"`
	}
	if err := json.Unmarshal(m.Data, &resp); err != nil {
		return nil, fmt.Errorf("%s answered %q: %w", bus.BulkStream, m.Data, err)
	}
	if e := resp.Error; e != nil {
		if e.ErrCode == int(jetstream.JSErrCodeMessageNotFound) || e.ErrCode == int(jetstream.JSErrCodeStreamNotFound) {
			return nil, fmt.Errorf("%w: %s", errNoMsg, e.Description)
		}
		return nil, fmt.Errorf("%s: %s (code %d, %d)", bus.BulkStream, e.Description, e.Code, e.ErrCode)
	}
	if resp.Message == nil {
		return nil, fmt.Errorf("%s answered no message: %q", bus.BulkStream, m.Data)
	}
	return resp.Message, nil
}

// bulkRef is a piece an event names, found on AUDIT_BULK.
type bulkRef struct {
	name    string
	size    int64
	subject string
	seq     uint64 // its AUDIT_BULK sequence
	// object is its bytes as checked, kept for the copy to the store
	// within bulkKept (nil: read again); release gives the room back.
	object []byte
	// busErr: the bus could not be asked (not the event's fault); the
	// batch is tried again.
	busErr error
}

// ErrBulk: an event names a bulk piece the bus does not hold as named.
var ErrBulk = errors.New("bulk piece")

func (b *bulkStream) get(ctx context.Context) (jetstream.Stream, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.stream != nil {
		return b.stream, nil
	}
	s, err := b.js.Stream(ctx, bus.BulkStream)
	if err != nil {
		return nil, err
	}
	b.stream = s
	return s, nil
}

// check returns the piece ev names, published by producer token, or the
// reason the event is refused: a bulk member not in §1.7's form, or a
// piece AUDIT_BULK does not hold under audit.bulk.<token>.<name> with
// exactly its size and SHA-256. A piece that could not be looked up (the
// bus unreachable) comes back with busErr set.
func (b *bulkStream) check(ctx context.Context, ev *events.Event, token string) (*bulkRef, error) {
	bk, err := events.BulkOf(ev)
	if err != nil || bk == nil {
		return nil, err
	}
	ref := &bulkRef{name: bk.Object, size: bk.Size, subject: bus.BulkTokenSubject(token, bk.Object)}
	m, err := b.read(ctx, map[string]any{"last_by_subj": ref.subject})
	if errors.Is(err, errNoMsg) {
		return nil, fmt.Errorf("%w %s: %s holds no message %s (not published by this event's producer, or deleted, or expired after %s)",
			ErrBulk, bk.Object, bus.BulkStream, ref.subject, bus.BulkMaxAge)
	}
	if err != nil {
		ref.busErr = fmt.Errorf("ingest: looking up bulk piece %s: %w", ref.subject, err)
		return ref, nil
	}
	if int64(len(m.Data)) != bk.Size {
		return nil, fmt.Errorf("%w %s: %s is %d bytes, the event names %d", ErrBulk, bk.Object, ref.subject, len(m.Data), bk.Size)
	}
	if sum := sha256.Sum256(m.Data); hex.EncodeToString(sum[:]) != bk.Object {
		return nil, fmt.Errorf("%w %s: %s has SHA-256 %s, not its name", ErrBulk, bk.Object, ref.subject, hex.EncodeToString(sum[:]))
	}
	if err := b.opens(ctx, ev, bk, m.Data); err != nil {
		if errors.Is(err, errKeysUnreachable) {
			ref.busErr = err
			return ref, nil
		}
		return nil, err
	}
	ref.seq = m.Seq
	if b.kept.Add(bk.Size) <= bulkKept {
		ref.object = m.Data
	} else {
		b.kept.Add(-bk.Size)
	}
	return ref, nil
}

// release gives back the room of the pieces parts kept (bulkKept), once
// their batch is sealed or given up.
func (b *bulkStream) release(parts [][]checkedMsg) {
	for _, p := range parts {
		for i := range p {
			if r := p[i].bulk; r != nil && r.object != nil {
				b.kept.Add(-int64(len(r.object)))
				r.object = nil
			}
		}
	}
}

// errKeysUnreachable: the key store could not be asked (the bus's
// trouble, not the event's).
var errKeysUnreachable = errors.New("the key store could not be read")

// opens checks that object is what §1.7 says a piece is: sealed under the
// key of the event's actor, at the event's place. The writer cannot
// judge a piece's bytes, so it takes none it cannot open: without this,
// any producer credential could have cleartext stored as a "piece",
// locked for years and beyond erasure. AES-GCM's tag is checked at
// memory speed; the bytes opened are not kept.
func (b *bulkStream) opens(ctx context.Context, ev *events.Event, bk *events.Bulk, object []byte) error {
	keys, err := b.keyStore(ctx)
	if errors.Is(err, piikeys.ErrNoStore) {
		return fmt.Errorf("%w %s: no key store to check it against (%v)", ErrBulk, bk.Object, err)
	}
	if err != nil {
		return fmt.Errorf("%w: %w", errKeysUnreachable, err)
	}
	p, err := keys.ActorPseudonym(ctx, ev.Tenant, ev.Actor.Issuer, ev.Actor.Subject)
	if errors.Is(err, piikeys.ErrNoSubject) {
		return fmt.Errorf("%w %s: the event's actor has no key (none made, or erased), so the piece cannot be theirs", ErrBulk, bk.Object)
	}
	if err != nil {
		return fmt.Errorf("%w: %w", errKeysUnreachable, err)
	}
	if p != bk.Pseudonym {
		return fmt.Errorf("%w %s: sealed under pseudonym %s, but the event's actor's is another", ErrBulk, bk.Object, bk.Pseudonym)
	}
	var place struct {
		Stream string `json:"stream"`
		Offset int64  `json:"offset"`
	}
	if err := json.Unmarshal(ev.Payload, &place); err != nil {
		return fmt.Errorf("%w %s: %v", ErrBulk, bk.Object, err)
	}
	err = keys.CheckBulk(ctx, bk.Pseudonym, piikeys.BulkPlace{Tenant: ev.Tenant, Session: ev.SessionID, Stream: place.Stream, Offset: place.Offset}, object)
	switch {
	case errors.Is(err, piikeys.ErrErased):
		return fmt.Errorf("%w %s: its subject's key was erased before it was sealed", ErrBulk, bk.Object)
	case errors.Is(err, piikeys.ErrBulkDamaged):
		return fmt.Errorf("%w %s: does not open under its subject's key at %s offset %d of session %s: not a piece sealed there", ErrBulk, bk.Object, place.Stream, place.Offset, ev.SessionID)
	case err != nil:
		return fmt.Errorf("%w: %w", errKeysUnreachable, err)
	}
	return nil
}

// keyStore opens the key store on first use.
func (b *bulkStream) keyStore(ctx context.Context) (*piikeys.Store, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.keys != nil {
		return b.keys, nil
	}
	k, err := piikeys.OpenExisting(ctx, b.js)
	if err != nil {
		return nil, err
	}
	b.keys = k
	return k, nil
}

// piece is the ledger's view of ref: its bytes as checked when they were
// kept (bulkKept), else read again from the bus when the segment is
// sealed, one piece at a time, so that a batch's pieces are never all in
// memory at once.
func (b *bulkStream) piece(ref *bulkRef) ledger.BulkPiece {
	return ledger.BulkPiece{Name: ref.name, Size: ref.size, Checked: ref.object, Read: func(ctx context.Context) ([]byte, error) {
		m, err := b.read(ctx, map[string]any{"seq": ref.seq})
		if err != nil {
			return nil, fmt.Errorf("reading %s (sequence %d of %s): %w", ref.subject, ref.seq, bus.BulkStream, err)
		}
		return m.Data, nil
	}}
}

// appendPieces adds the AUDIT_BULK sequences of the pieces parts name.
func appendPieces(seqs []uint64, parts []checkedMsg) []uint64 {
	for _, c := range parts {
		if c.bulk != nil && c.bulk.seq != 0 {
			seqs = append(seqs, c.bulk.seq)
		}
	}
	return seqs
}

// deletePieces deletes from AUDIT_BULK the pieces copied to the store
// with a stored segment. A failure is logged and counted, not fatal: the
// store holds the piece, and the stream's age limit removes it.
func (in *Ingester) deletePieces(ctx context.Context, seqs []uint64) {
	if len(seqs) == 0 {
		return
	}
	// In the stream's order: a gateway publishes several pieces at once,
	// so its events' order is not quite the stream's, and a message
	// deleted before an older one of its file block is a hole the bus
	// compacts the block around (rewriting it) once half of it is holes.
	seqs = slices.Clone(seqs)
	slices.Sort(seqs)
	s, err := in.bulk.get(ctx)
	for _, seq := range seqs {
		derr := err
		if derr == nil {
			if derr = s.DeleteMsg(ctx, seq); derr != nil {
				if _, gerr := in.bulk.leaderGet(ctx, map[string]any{"seq": seq}); errors.Is(gerr, errNoMsg) {
					continue // deleted before (named twice, or a redelivery)
				}
			}
		}
		if derr != nil {
			in.Stats.BulkDeleteFailures.Add(1)
			in.cfg.Logger.Warn("a bulk piece is stored, but deleting it from "+bus.BulkStream+" failed: it expires there by age",
				"bulk_seq", seq, "err", derr)
			continue
		}
		in.Stats.BulkDeleted.Add(1)
	}
}

// deleteLeftPieces deletes from AUDIT_BULK the pieces named by the log's
// last segment that are still there: a writer stopped after storing a
// segment but before deleting its pieces (the consumer starts after the
// sealed events, so they are not delivered again). Earlier segments'
// pieces were deleted before the next segment was sealed, or expire by
// age. Failures are logged, not fatal.
func (in *Ingester) deleteLeftPieces(ctx context.Context) {
	names, err := in.cfg.Store.List(ctx, ledger.SegmentPrefix)
	if err != nil || len(names) == 0 {
		return
	}
	last := names[len(names)-1]
	data, err := in.cfg.Store.Get(ctx, last)
	if err != nil {
		in.cfg.Logger.Warn("reading the last segment for bulk pieces left on "+bus.BulkStream, "segment", last, "err", err)
		return
	}
	seg, err := ledger.ParseSegment(data)
	if err != nil {
		return // Log.Open checked it; nothing to do here
	}
	var seqs []uint64
	for _, raw := range seg.Records {
		r, err := ledger.ParseRecord(raw)
		if err != nil || r.Source == 0 || r.Redacted() {
			continue
		}
		ev, err := events.Parse(r.Event)
		if err != nil {
			continue
		}
		bk, err := events.BulkOf(ev)
		if err != nil || bk == nil {
			continue
		}
		m, err := in.bulk.leaderGet(ctx, map[string]any{"last_by_subj": bus.BulkSubject(ev.Source.Instance, bk.Object)})
		if err == nil {
			seqs = append(seqs, m.Seq)
		}
	}
	if len(seqs) > 0 {
		in.cfg.Logger.Info("deleting bulk pieces the last segment names, left on "+bus.BulkStream+" by a writer stopped after storing it", "segment", last, "pieces", len(seqs))
		in.deletePieces(ctx, seqs)
	}
}
