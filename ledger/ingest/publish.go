package ingest

import (
	"context"
	"encoding/base64"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/auditledger/auditledger/events"
	"github.com/auditledger/auditledger/ledger"
	"github.com/auditledger/auditledger/ledger/bus"
)

// The writer's publisher puts sealed records on the bus, in log order,
// while the sealer goes on with the next batch (docs/FORMAT.md §9):
//
//   - on AUDIT_LEDGER, durably, in chunks: one message per up to
//     maxChunk records (a segment of 5,000 is five messages), so the
//     bus stores — and with sync_interval always fsyncs — a message per
//     chunk, not per record;
//   - on audit.live.<tenant>.<type>, one plain NATS message per record,
//     stored nowhere unless an operator captures the subjects in a stream
//     of their own: what `nats sub` and other plain NATS clients follow.
//
// AUDIT_LEDGER is derived from the store: records a crash left
// unpublished are published again from the store at the next start.

// publication is a sealed batch for the publisher: records [first, end),
// with the records and where each goes live when the sealer has them
// (nil: read them back from the store).
type publication struct {
	first, end uint64
	recs       [][]byte
	leaves     []ledger.Hash // the records' leaf hashes, computed by the seal
	live       []sealing
}

// maxChunk and maxChunkBytes bound one AUDIT_LEDGER message.
const (
	maxChunk      = 1000
	maxChunkBytes = 900 << 10
)

// queueSeal hands a sealed batch's records to the publisher.
func (in *Ingester) queueSeal(ctx context.Context, seal *ledger.Seal, ok []sealing) {
	in.queue(ctx, publication{first: seal.First, end: seal.First + uint64(len(seal.Records)), recs: seal.Records, leaves: seal.Leaves,
		live: ok[len(ok)-len(seal.Records):]})
}

// queue waits for room in the publisher's queue (or for ctx to end: the
// records are published from the store at the next start).
func (in *Ingester) queue(ctx context.Context, p publication) {
	select {
	case in.toPublish <- p:
	case <-ctx.Done():
	}
}

// publish puts sealed records on the bus in log order until ctx ends,
// retrying from the store for as long as it takes: the sealer does not
// wait for it (beyond the queue's capacity), and nothing sealed is ever
// skipped.
func (in *Ingester) publish(ctx context.Context) {
	for {
		var p publication
		select {
		case p = <-in.toPublish:
		case <-ctx.Done():
			return
		}
		backoff := 100 * time.Millisecond
		for {
			var err error
			if in.published == p.first && p.recs != nil {
				err = in.publishRecords(ctx, p.first, p.recs, p.leaves, p.live)
			} else {
				err = in.publishFromStore(ctx, p.end)
			}
			if err == nil || ctx.Err() != nil {
				break
			}
			in.cfg.Logger.Warn("publishing sealed records on "+bus.LedgerStream+" failed; retrying from the store", "first", in.published, "end", p.end, "err", err)
			if !sleep(ctx, backoff) {
				return
			}
			backoff = min(2*backoff, 10*time.Second)
		}
	}
}

// publishRecords publishes records first.. in chunks, each stored by
// JetStream before the next is sent — so the last message on AUDIT_LEDGER
// always tells where to go on — and each record live after its chunk.
func (in *Ingester) publishRecords(ctx context.Context, first uint64, recs [][]byte, leaves []ledger.Hash, live []sealing) error {
	origin := in.cfg.Log.Origin()
	for lo := 0; lo < len(recs); {
		hi, size := lo, 0
		for hi < len(recs) && hi-lo < maxChunk && (hi == lo || size+4+len(recs[hi]) <= maxChunkBytes) {
			size += 4 + len(recs[hi])
			hi++
		}
		idx := first + uint64(lo)
		if idx < in.published { // published before a failure
			lo = hi
			continue
		}
		pctx, cancel := context.WithTimeout(ctx, publishTimeout)
		_, err := in.cfg.JetStream.PublishMsg(pctx, chunkMsg(origin, idx, recs[lo:hi]))
		cancel()
		if err != nil {
			return fmt.Errorf("ingest: publish records %d..%d on %s: %w", idx, first+uint64(hi)-1, bus.LedgerStream, err)
		}
		in.published = first + uint64(hi)
		nc := in.cfg.JetStream.Conn()
		for i := lo; i < hi; i++ {
			// Fire and forget: nothing stores these unless an operator
			// asked for it, and a reader can tell a gap by the index.
			nc.PublishMsg(in.live.msg(first+uint64(i), recs[i], leaves[i], live[i].tenant, live[i].typ))
		}
		lo = hi
	}
	return nil
}

// publishFromStore publishes sealed records [published, upTo) read back
// from the store: the ones a crash or a failed publish left unpublished.
func (in *Ingester) publishFromStore(ctx context.Context, upTo uint64) error {
	if in.published >= upTo {
		return nil
	}
	in.cfg.Logger.Info("publishing sealed records from the store", "from", in.published, "to", upTo)
	var recs [][]byte
	var leaves []ledger.Hash
	var live []sealing
	first := in.published
	flush := func() error {
		err := in.publishRecords(ctx, first, recs, leaves, live)
		first, recs, leaves, live = in.published, recs[:0], leaves[:0], live[:0]
		return err
	}
	err := ledger.ReadRange(ctx, in.cfg.Store, in.published, upTo, func(idx uint64, rec []byte, r ledger.Record) error {
		ev, err := events.Parse(r.Event)
		if err != nil {
			return fmt.Errorf("ingest: sealed record %d holds an invalid event: %w", idx, err)
		}
		recs = append(recs, rec)
		leaves = append(leaves, ledger.LeafHash(rec))
		live = append(live, sealing{tenant: ev.Tenant, typ: ev.Type})
		if len(recs) == 4*maxChunk {
			return flush()
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("ingest: republish: %w", err)
	}
	return flush()
}

// publishedUpTo finds the index after the last record on AUDIT_LEDGER.
func (in *Ingester) publishedUpTo(ctx context.Context) (uint64, error) {
	s, err := in.cfg.JetStream.Stream(ctx, bus.LedgerStream)
	if err != nil {
		return 0, fmt.Errorf("ingest: %s: %w", bus.LedgerStream, err)
	}
	info, err := s.Info(ctx)
	if err != nil {
		return 0, fmt.Errorf("ingest: %s: %w", bus.LedgerStream, err)
	}
	if info.State.Msgs == 0 {
		return 0, nil
	}
	m, err := s.GetMsg(ctx, info.State.LastSeq)
	if err != nil {
		return 0, fmt.Errorf("ingest: last message on %s: %w", bus.LedgerStream, err)
	}
	if !strings.HasPrefix(m.Header.Get(nats.MsgIdHdr), in.cfg.Log.Origin()+"/") {
		return 0, nil // another log's records: none of this log's are published
	}
	idx, err := strconv.ParseUint(m.Header.Get(bus.HeaderIndex), 10, 64)
	if err != nil {
		return 0, fmt.Errorf("ingest: last message on %s has no valid %s header", bus.LedgerStream, bus.HeaderIndex)
	}
	count := uint64(1) // a message of one record, before chunks
	if c := m.Header.Get(bus.HeaderCount); c != "" {
		if count, err = strconv.ParseUint(c, 10, 64); err != nil {
			return 0, fmt.Errorf("ingest: last message on %s has no valid %s header", bus.LedgerStream, bus.HeaderCount)
		}
	}
	return idx + count, nil
}

// chunkMsg is the AUDIT_LEDGER message of records first..: each record
// framed as in a segment (u32 length, then the record).
func chunkMsg(origin string, first uint64, recs [][]byte) *nats.Msg {
	m := nats.NewMsg(bus.LedgerRecordsSubject)
	n := 0
	for _, r := range recs {
		n += 4 + len(r)
	}
	// Sized once: grown by append, a chunk of 1,000 records was copied
	// about twenty times over.
	m.Data = bus.AppendRecords(make([]byte, 0, n), recs)
	m.Header.Set(bus.HeaderIndex, strconv.FormatUint(first, 10))
	m.Header.Set(bus.HeaderCount, strconv.Itoa(len(recs)))
	m.Header.Set(nats.MsgIdHdr, origin+"/"+strconv.FormatUint(first, 10))
	return m
}

// liveMessages makes the plain NATS message of each sealed record
// (audit.live.<tenant>.<type>, the record, its index and leaf hash in
// headers) in one nats.Msg used again for every record: nats.Conn's
// PublishMsg copies the message into its write buffer before it returns
// and keeps nothing of it. A new message, header map and subject per
// record were eight of the writer's allocations per event. Only the
// publisher goroutine uses it.
type liveMessages struct {
	m         nats.Msg
	index     []string // the message's HeaderIndex values: one
	leaf      []string // its HeaderLeaf values: one
	buf       []byte   // index and leaf, side by side
	subjects  map[liveKey]string
	lastKey   liveKey
	lastSubj  string
	hasLast   bool
	maxCached int
}

type liveKey struct {
	tenant string
	typ    events.Type
}

// msg is the live message of record idx: valid until the next call.
func (l *liveMessages) msg(idx uint64, rec []byte, leaf ledger.Hash, tenant string, typ events.Type) *nats.Msg {
	if l.m.Header == nil {
		l.index, l.leaf = make([]string, 1), make([]string, 1)
		l.m.Header = nats.Header{bus.HeaderIndex: l.index, bus.HeaderLeaf: l.leaf}
		l.subjects = map[liveKey]string{}
		l.maxCached = 4096
	}
	l.m.Subject = l.subject(tenant, typ)
	l.m.Data = rec
	// One string holds both header values.
	l.buf = strconv.AppendUint(l.buf[:0], idx, 10)
	n := len(l.buf)
	l.buf = base64.StdEncoding.AppendEncode(l.buf, leaf[:])
	both := string(l.buf)
	l.index[0], l.leaf[0] = both[:n], both[n:]
	return &l.m
}

// subject is bus.LiveSubject(tenant, typ), made once per pair (a batch
// is mostly a few tenants and types).
func (l *liveMessages) subject(tenant string, typ events.Type) string {
	k := liveKey{tenant, typ}
	if l.hasLast && k == l.lastKey {
		return l.lastSubj
	}
	s, ok := l.subjects[k]
	if !ok {
		if len(l.subjects) >= l.maxCached {
			clear(l.subjects) // tenants and types without end: keep it bounded
		}
		s = bus.LiveSubject(tenant, typ)
		// Copies: an event's strings view its batch message, which a
		// key kept here would keep in memory.
		k = liveKey{strings.Clone(tenant), events.Type(strings.Clone(string(typ)))}
		l.subjects[k] = s
	}
	l.lastKey, l.lastSubj, l.hasLast = k, s, true
	return s
}
