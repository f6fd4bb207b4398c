package gateway

import (
	"bytes"
	"context"
	"slices"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/auditledger/auditledger/events"
	"github.com/auditledger/auditledger/ledger/bus"
	"github.com/auditledger/auditledger/ledger/piikeys"
)

// Bulk thresholds (docs/FORMAT.md §1.7): a stream turns bulk once more
// than BulkAfter bytes are written to it with no pause of BulkPause (or
// of its flush interval, if longer) between two writes, and turns back to
// judged text after such a pause, or once a piece sealed by its flush
// interval holds at most BulkUntil bytes (a trickle is not bulk: kept
// bulk, it would hide what is typed or shown from the detectors, in tiny
// pieces). The pause is longer than the SSH gateway's flush interval so
// that a busy machine's stalls do not toggle it (each turn to bulk judges
// up to BulkAfter bytes as text first).
const (
	BulkAfter = 256 << 10
	BulkPause = time.Second
	BulkUntil = 16 << 10
)

// bulkQueue is how many pieces a bulk stream hands on before a write
// waits for the bus: queued or being sealed and published, with pieces
// of 512 KiB, 2 MiB in flight. Up to that many are published at once,
// each recorded once the bus has it, in order: a piece does not wait for
// the acknowledgement of the one before it to go out.
const bulkQueue = 4

// bulkRecords is how many records (pieces and the text chunks between
// them) a bulk stream's queue holds besides.
const bulkRecords = 4 * bulkQueue

// bulkPutTimeout bounds how long a piece waits for the bus before it is
// recorded as its digest only.
const bulkPutTimeout = 30 * time.Second

// bulk is a Stream's bulk mode: the piece being filled and the queue
// that seals pieces and records every chunk after the first piece, in
// order.
type bulk struct {
	js jetstream.JetStream // nil: the stream never turns bulk

	on    bool
	piece []byte // the stream's bytes since the last piece
	// burst is how many bytes were written since the last pause, and
	// last when the last write ended.
	burst int
	last  time.Time
	// escCarry is the unfinished escape sequence at the end of the last
	// piece, read with the next for the insert mode; tail is the bulk's
	// last MaxHeld bytes.
	escCarry []byte
	tail     []byte

	q    chan bulkItem // nil until the stream first turns bulk
	done chan struct{}
	// slots holds a token for each piece handed on and not yet on the
	// bus (or given up on): at most bulkQueue.
	slots chan struct{}
	// free holds piece buffers whose pieces are sealed, for reuse.
	free chan []byte
}

// bulkItem is a record in a bulk stream's queue: a piece to seal and
// record, or a chunk's payload to record.
type bulkItem struct {
	piece   []byte
	offset  int64
	insert  bool // the piece begins in insert mode
	payload map[string]any
}

// bulkJetStream is the bus bulk pieces go to: the Emitter's (an
// emitter.Emitter, or a Recorder that names its bus), with a key store (without one nothing can be sealed encrypted, and streams stay
// judged text).
func (g *Gateway) bulkJetStream() jetstream.JetStream {
	if g.cfg.Keys == nil {
		return nil
	}
	if em, ok := g.cfg.Emitter.(interface{ JetStream() jetstream.JetStream }); ok {
		return em.JetStream()
	}
	return nil
}

// bulkWrite counts p into the stream's rate and, while the stream is
// bulk, takes it into the piece; it reports whether it took it. Called
// with st.mu held.
func (st *Stream) bulkWrite(p []byte) bool {
	b := &st.bulk
	if b.js == nil {
		return false
	}
	if time.Since(b.last) >= max(st.wait, BulkPause) {
		b.burst = 0 // a pause: what comes is not the same burst
		if b.on {
			st.leaveBulk()
		}
	}
	b.burst += len(p)
	if !b.on && b.burst > BulkAfter {
		st.enterBulk()
	}
	if !b.on {
		return false
	}
	if st.timer == nil {
		st.timer = time.AfterFunc(st.wait, st.Flush)
	}
	for len(p) > 0 {
		k := min(len(p), piikeys.MaxBulkPiece-len(b.piece))
		b.piece = append(b.piece, p[:k]...)
		p = p[k:]
		if len(b.piece) == piikeys.MaxBulkPiece {
			st.sealPiece()
		}
	}
	return true
}

// enterBulk turns the stream bulk: what it has not recorded (the tail
// it held back too) is the start of the first piece, and from now on
// every record goes through the queue, in order.
func (st *Stream) enterBulk() {
	b := &st.bulk
	if st.timer != nil {
		st.timer.Stop()
		st.timer = nil
	}
	b.on = true
	b.piece = append(b.piece[:0], st.buf[st.recorded:]...)
	st.buf, st.recorded = st.buf[:0], 0
	if b.q == nil {
		b.q = make(chan bulkItem, bulkRecords)
		b.done = make(chan struct{})
		b.slots = make(chan struct{}, bulkQueue)
		b.free = make(chan []byte, bulkQueue+1)
		go st.drainBulk()
	}
}

// leaveBulk seals what the piece holds and turns the stream back to
// judged text. The last MaxHeld bytes of the bulk stay in the buffer,
// already recorded, so that the first text chunk is judged with them: a
// value begun in a piece and ended in text is found, and its part in
// the text replaced.
func (st *Stream) leaveBulk() {
	b := &st.bulk
	st.sealPiece()
	b.on = false
	b.burst = 0
	// The tail is MaxHeld bytes as a terminal renders them, as text
	// holds back: escape sequences padding a value's halves apart cannot
	// push its first half out of reach.
	tail := b.tail
	if r := renderSized(tail, false, st.name == "stdin", st.insert, st.screenSize()); r.text && len(r.b) > MaxHeld {
		if r.same { // plain text: the rendering is the bytes
			tail = tail[len(tail)-MaxHeld:]
		} else {
			tail = tail[slices.Min(r.lo[len(r.b)-MaxHeld:]):]
		}
	}
	st.buf = append(st.buf[:0], tail...)
	st.recorded = len(tail)
	st.afterBulk = true
	b.tail = b.tail[:0]
}

// sealPiece hands the piece to the queue. Called with st.mu held; waits
// while the queue is full (the bus behind), which slows the writer
// rather than drop a record.
func (st *Stream) sealPiece() {
	b := &st.bulk
	if st.timer != nil {
		st.timer.Stop()
		st.timer = nil
	}
	if len(b.piece) == 0 {
		return
	}
	// The insert mode (IRM) follows the bytes, for the text after, and
	// the piece says when it begins in insert mode (its reader cannot
	// know); the bulk's last bytes are kept to judge the text after it
	// with: up to what text holds back raw (heldRaw), cut to MaxHeld
	// rendered when the stream turns back (leaveBulk).
	insert := st.insert
	st.insert = b.insertThrough(b.piece, st.insert)
	keep := st.heldRaw()
	if len(b.piece) >= keep {
		b.tail = append(b.tail[:0], b.piece[len(b.piece)-keep:]...)
	} else {
		b.tail = append(b.tail, b.piece...)
		b.tail = b.tail[:copy(b.tail, b.tail[max(0, len(b.tail)-keep):])]
	}
	b.slots <- struct{}{}
	b.q <- bulkItem{piece: b.piece, offset: st.offset, insert: insert}
	st.offset += int64(len(b.piece))
	select {
	case buf := <-b.free:
		b.piece = buf[:0]
	default:
		b.piece = make([]byte, 0, min(piikeys.MaxBulkPiece, 2*len(b.piece)))
	}
}

// maxEscape is the longest unfinished escape sequence carried from one
// piece to the next; a longer one is not read as one.
const maxEscape = 256

// insertThrough is the insert mode after piece, from insert before it,
// reading an escape sequence cut between two pieces whole.
func (b *bulk) insertThrough(piece []byte, insert bool) bool {
	from := 0
	if len(b.escCarry) > 0 {
		seq := append(b.escCarry, piece[:min(len(piece), maxEscape)]...)
		n, complete := escapeLen(seq)
		if !complete {
			b.escCarry = nil
			if len(seq) <= maxEscape {
				b.escCarry = seq
			}
			return insert
		}
		insert = insertAfter(seq[:max(n, 1)], insert)
		from = min(len(piece), max(0, n-len(b.escCarry)))
		b.escCarry = nil
	}
	insert, carry := insertAfterCarry(piece[from:], insert)
	if len(carry) <= maxEscape {
		b.escCarry = append(b.escCarry[:0], carry...)
	}
	return insert
}

// record records a chunk's payload: at once, or, once the stream has
// turned bulk, in order behind the pieces before it.
func (st *Stream) record(payload map[string]any) {
	if st.bulk.q != nil {
		st.bulk.q <- bulkItem{payload: payload}
		return
	}
	st.s.RecordAsync(context.Background(), events.SessionOutput, payload)
}

// drainBulk records the queue's items in order: a piece is sealed and
// published to the bus (bus.BulkStream) at once, up to bulkQueue at a
// time, and recorded once the bus has it — after the records before it;
// a piece the bus does not take is recorded as its size and keyed digest.
func (st *Stream) drainBulk() {
	defer close(st.bulk.done)
	// The records in order, each a payload or where its piece's payload
	// will be, for the recorder below.
	type record struct {
		payload map[string]any
		piece   chan map[string]any
	}
	order := make(chan record, bulkRecords)
	recorded := make(chan struct{})
	go func() {
		defer close(recorded)
		for r := range order {
			payload := r.payload
			if r.piece != nil {
				payload = <-r.piece
			}
			st.s.RecordAsync(context.Background(), events.SessionOutput, payload)
		}
	}()
	for it := range st.bulk.q {
		if it.piece == nil {
			order <- record{payload: it.payload}
			continue
		}
		done := make(chan map[string]any, 1)
		go func() {
			payload := st.putPiece(it.piece, it.offset)
			if it.insert && payload["bulk"] != nil {
				payload["insert"] = true
			}
			select {
			case st.bulk.free <- it.piece:
			default:
			}
			<-st.bulk.slots
			done <- payload
		}()
		order <- record{piece: done}
	}
	close(order)
	<-recorded
}

// bulkObjects are the buffers pieces are sealed into, reused once
// published.
var bulkObjects = sync.Pool{New: func() any { b := make([]byte, 0, piikeys.MaxBulkPiece+piikeys.BulkOverhead); return &b }}

// putPiece seals piece, the stream's bytes from offset, under the key of
// the session's subject, publishes it and returns the payload that
// records it.
func (st *Stream) putPiece(piece []byte, offset int64) map[string]any {
	s := st.s
	ctx, cancel := context.WithTimeout(context.Background(), bulkPutTimeout)
	defer cancel()
	place := piikeys.BulkPlace{Tenant: s.tenant, Session: s.id, Stream: st.name, Offset: offset}
	buf := bulkObjects.Get().(*[]byte)
	object, pseudonym, err := s.g.cfg.Keys.SealBulkInto(ctx, *buf, s.who.Issuer, s.who.Subject, place, piece)
	if err == nil {
		name := piikeys.BulkName(object)
		msg := &nats.Msg{Subject: bus.BulkSubject(s.g.cfg.Instance, name), Data: object, Header: nats.Header{}}
		msg.Header.Set(jetstream.MsgIDHeader, name)
		_, err = st.bulk.js.PublishMsg(ctx, msg)
		// The bus's client copied the object to send it, whatever came
		// of it: its memory seals the next piece.
		*buf = object[:0]
		bulkObjects.Put(buf)
		if err == nil {
			return map[string]any{"stream": st.name, "offset": offset, "bytes": len(piece),
				"bulk": map[string]any{"object": name, "pseudonym": pseudonym, "size": len(object)}}
		}
	}
	s.g.cfg.Logger.Error("bulk piece not stored: recorded as its digest only", "session_id", s.id, "stream", st.name, "offset", offset, "bytes", len(piece), "err", err)
	s.g.cfg.Metrics.BulkLost()
	payload := map[string]any{"stream": st.name, "offset": offset, "bytes": len(piece), "binary": true}
	if keyed, err := s.Keyed(ctx); err == nil && keyed != nil {
		payload["hmac"] = keyed(StreamChunkLabel, piece)
	}
	return payload
}

// closeBulk waits until the queue has recorded everything. Called with
// st.mu held, after the last flush.
func (st *Stream) closeBulk() {
	if st.bulk.q != nil {
		close(st.bulk.q)
		<-st.bulk.done
	}
}

// insertAfterCarry is insertAfter for bytes read in pieces: the insert
// mode after raw, and the escape sequence raw ends in the middle of (to
// be read again with the next piece's bytes).
func insertAfterCarry(raw []byte, insert bool) (bool, []byte) {
	for i := 0; i < len(raw); {
		k := bytes.IndexByte(raw[i:], 0x1b)
		if k < 0 {
			return insert, nil
		}
		i += k
		n, complete := escapeLen(raw[i:])
		if !complete {
			return insert, raw[i:]
		}
		n = max(n, 1)
		insert = insertAfter(raw[i:i+n], insert)
		i += n
	}
	return insert, nil
}

// wrote notes the end of a write, from which a pause is measured.
func (st *Stream) wrote() {
	if st.bulk.js != nil {
		st.bulk.last = time.Now()
	}
}
