package gateway

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"slices"
	"sync"
	"time"

	"github.com/auditledger/auditledger/events/detect"
)

// Stream bounds, the defaults of StreamConfig.
const (
	DefaultMaxChunk   = 16 << 10
	DefaultFlushAfter = time.Second
)

// StreamConfig bounds the chunks of a recorded byte stream.
type StreamConfig struct {
	// MaxChunk is the most bytes one session.output event holds; zero
	// means DefaultMaxChunk. At most 32 KiB, so that a chunk, in base64,
	// fits an event.
	MaxChunk int
	// FlushAfter is how long a byte waits before it is recorded: a chunk
	// is recorded once full, or this long after the first byte written
	// since the last flush, whichever comes first. The last MaxHeld bytes
	// of the text as a terminal renders it (and a value found reaching
	// into them) are held back for the next chunk whatever the time, so a
	// value is never split where no detector would see it whole: they are
	// recorded once more bytes push them out, the buffer is full, or the
	// stream closes. Zero means DefaultFlushAfter.
	FlushAfter time.Duration
	// Screen is the size of the terminal the stream is shown on (nil:
	// not known), which the terminal model follows (screen.go).
	Screen *Screen
}

// ErrStreamClosed: a write to a closed Stream.
var ErrStreamClosed = errors.New("stream closed")

// Stream records one byte stream of a session (a terminal's output, an
// exec's stdin) as session.output events, each a bounded chunk with its
// offset in the stream. It is an io.WriteCloser, safe for concurrent use;
// Close records what is left. Chunks are recorded without waiting (the
// bytes have already passed); a chunk that cannot be recorded is logged
// and counted, and its offset leaves a visible hole.
type Stream struct {
	s    *Session
	name string
	max  int
	wait time.Duration

	mu     sync.Mutex
	buf    []byte
	offset int64 // bytes of the stream recorded before buf
	insert bool  // the terminal's insert mode (IRM) after the bytes recorded
	// cursor.go: where the bytes recorded left the terminal's cursor.
	cursor cursorState
	// keep.go: the rows of the screen that hold text the bytes recorded
	// before buf wrote, out of the rendering; fresh is how many bytes at
	// the start of buf a rendering judged with that text (the tail held
	// when it was recorded), the rest judged against the rows kept.
	kept  keptScreens
	fresh int
	// holding is true when buf starts with characters written beside
	// text kept (rendering.hold): judged against it even as plain text.
	holding bool
	timer   *time.Timer
	closed  bool

	// screen.go: the screen's size, and from which offset the buffer's
	// bytes were all written since its last change.
	screen        *Screen
	sizeChanges   uint64
	sizeKnownFrom int64

	// bulk.go: the bulk mode. recorded is how many bytes at the start of
	// buf are already recorded (the end of the bulk before it, judged
	// with the text after it); afterBulk says the insert mode at buf's
	// start is not known.
	bulk      bulk
	recorded  int
	afterBulk bool
	// bulkBefore is how many of those bytes a value found in the text
	// after them began with: the first text chunk says so (bulk_before),
	// and a reader drops them from the piece.
	bulkBefore int
}

// Stream starts recording the session's byte stream name ("stdout",
// "stdin", …).
func (s *Session) Stream(name string, cfg StreamConfig) *Stream {
	if cfg.MaxChunk <= 0 || cfg.MaxChunk > 32<<10 {
		cfg.MaxChunk = DefaultMaxChunk
	}
	if cfg.FlushAfter <= 0 {
		cfg.FlushAfter = DefaultFlushAfter
	}
	return &Stream{s: s, name: name, max: cfg.MaxChunk, wait: cfg.FlushAfter, screen: cfg.Screen,
		bulk: bulk{js: s.g.bulkJetStream()}}
}

// Write records p, in chunks of at most MaxChunk bytes.
func (st *Stream) Write(p []byte) (int, error) {
	st.mu.Lock()
	defer st.mu.Unlock()
	if st.closed {
		return 0, ErrStreamClosed
	}
	n := len(p)
	st.screenSize() // bytes buffered before a resize are marked as such
	defer st.wrote()
	if st.bulkWrite(p) {
		return n, nil
	}
	for len(p) > 0 {
		if st.timer == nil { // new bytes: a flush after FlushAfter
			st.timer = time.AfterFunc(st.wait, st.Flush)
		}
		// Up to the next multiple of MaxChunk: past the first, the
		// buffer grows only while its rendered tail cannot be cut off
		// (flushLocked), at most to heldRaw().
		k := min(len(p), st.max-(len(st.buf)-st.recorded)%st.max)
		st.buf = append(st.buf, p[:k]...)
		p = p[k:]
		if (len(st.buf)-st.recorded)%st.max == 0 {
			st.flushLocked(false)
		}
	}
	return n, nil
}

// Flush records what is buffered now, but for the tail it holds back
// (see flushLocked).
func (st *Stream) Flush() {
	st.mu.Lock()
	defer st.mu.Unlock()
	st.flushLocked(false)
}

// MaxHeld is how many rendered bytes at the end of a stream's text a
// flush holds back (fewer when MaxChunk is small: at most half of it):
// more than the longest value a detector finds, with its separators, and
// the longest encoded token it decodes (4,096 characters), so that a
// value split between two writes, however long apart, is judged whole.
const MaxHeld = 4096

// StreamChunkLabel is the label of the keyed digest of a chunk that is
// not text the detectors read (docs/FORMAT.md §1.5).
const StreamChunkLabel = "auditledger stream chunk v1\n"

// held is how many rendered bytes a flush holds back.
func (st *Stream) held() int { return min(MaxHeld, st.max/2) }

// MaxHeldRaw is how many raw bytes, in MaxChunks, a stream's buffer may
// grow to while the rendered tail it holds back cannot be cut off: text
// whose escape sequences outweigh what they show (colours around every
// character, an OSC string not yet ended). Past it the buffer is not
// text the detectors can judge within bounds, and is recorded as binary
// (recordBinary): never cut inside the tail, where a value's first part
// would be recorded apart from its rest.
const MaxHeldRaw = 8

// heldRaw is the most raw bytes the buffer grows to.
func (st *Stream) heldRaw() int { return MaxHeldRaw * st.max }

// flushLocked records the buffer, judged. Unless final, it holds back
// the last held() bytes of its text as a terminal renders it (render),
// and any value found that reaches into them, so that what the next
// bytes complete is judged whole: a held tail is recorded once more
// bytes push it out, when the stream closes, or when the buffer is full;
// never by a timer alone. Bytes that are not text the detectors read
// (invalid UTF-8, control characters of binary data) are recorded as
// their keyed digest and size only (recordBinary).
func (st *Stream) flushLocked(final bool) {
	if st.bulk.on {
		n := len(st.bulk.piece)
		st.sealPiece()
		if !final && n <= BulkUntil {
			st.leaveBulk() // a flush interval that brought little: not bulk any more
		}
		return
	}
	if st.timer != nil {
		st.timer.Stop()
		st.timer = nil
	}
	if len(st.buf) == st.recorded {
		if final {
			st.buf, st.recorded = st.buf[:0], 0
		}
		return
	}
	full := len(st.buf)-st.recorded >= st.max
	sz := st.screenSize()
	if st.afterBulk {
		st.cursor.forget() // the bulk's bytes were not rendered: where they left the cursor is not known
		st.kept.widen()    // nor where they left text on the screen
		st.fresh = 0
	}
	r := st.render(final, st.insert, sz)
	var other []detect.Span
	if r.text && st.afterBulk {
		// The insert mode where the bulk's end begins is not known:
		// judged both ways, a value found either way replaced.
		if r2 := st.render(final, !st.insert, sz); !r2.text {
			r = r2
		} else {
			other = judgeRendered(st.buf[:r2.done], r2)
		}
	}
	if !r.text {
		st.advanceCursor(r, len(st.buf), sz, false)
		st.recordBinary(st.buf[st.recorded:])
		st.offset += int64(len(st.buf) - st.recorded)
		st.buf, st.recorded, st.afterBulk, st.fresh, st.holding = st.buf[:0], 0, false, 0, false
		return
	}
	if !final && !full && len(r.b) <= st.held() {
		return // all of it held: judged once more bytes push some out (a typed word, echoed)
	}
	spans := judgeRendered(st.buf[:r.done], r)
	if other != nil {
		spans = mergeSpans(append(spans, other...))
	}
	cut := len(st.buf)
	if !final {
		cut = r.done
		if k := st.held(); len(r.b) > k && r.same {
			cut = len(r.b) - k
		} else if len(r.b) > k {
			for _, lo := range r.lo[len(r.b)-k:] {
				cut = min(cut, int(lo)) // edits put characters out of raw order
			}
		} else {
			cut = 0
		}
		if r.hold {
			cut = min(cut, r.holdAt) // characters written beside text kept wait for the rest of the row
		}
		for _, sp := range spans {
			if sp.Lo < cut && cut < sp.Hi {
				cut = sp.Lo // a value reaching into the held tail waits with it
			}
		}
		if cut <= st.recorded && full {
			// The rendered tail is the whole buffer (escape sequences
			// outweigh the text, or one not yet ended holds the rest):
			// what renders as nothing before its first character (NULs,
			// escapes) is recorded, but cutting the rest anywhere could
			// record a value's first part apart from its rest. It grows
			// while it may; past that it is not text judged within
			// bounds.
			cut = r.done
			if len(r.b) > 0 {
				cut = int(slices.Min(r.lo))
				if r.same {
					cut = 0
				}
			}
			if r.hold {
				cut = min(cut, r.holdAt)
			}
			for _, sp := range spans {
				if sp.Lo < cut && cut < sp.Hi {
					cut = sp.Lo
				}
			}
		}
		if cut <= st.recorded && full {
			if len(st.buf)-st.recorded < st.heldRaw() {
				return
			}
			st.advanceCursor(r, len(st.buf), sz, false)
			for b := st.buf[st.recorded:]; len(b) > 0; b = b[min(len(b), st.max):] {
				st.recordBinary(b[:min(len(b), st.max)])
				st.offset += int64(min(len(b), st.max))
			}
			st.buf, st.recorded, st.afterBulk, st.fresh, st.holding = st.buf[:0], 0, false, 0, false
			return
		}
	}
	if cut <= st.recorded {
		return // held until more bytes arrive or the stream closes
	}
	for _, sp := range spans {
		if sp.Lo < st.recorded && st.recorded < sp.Hi {
			st.bulkBefore = st.recorded - sp.Lo // begun in the bulk
		}
	}
	// At most MaxChunk bytes an event, never cut inside a value found (a
	// piece then holds the value's whole raw span, recorded as its
	// placeholder).
	for start := st.recorded; start < cut; {
		end := min(start+st.max, cut)
		for _, sp := range spans {
			if sp.Lo < end && end < sp.Hi {
				if sp.Lo > start {
					end = sp.Lo
				} else {
					end = min(sp.Hi, cut)
				}
				break
			}
		}
		st.recordText(st.buf[start:end], spans, start)
		start = end
	}
	st.advanceCursor(r, cut, sz, true)
	if !r.same { // plain text holds no escape sequence
		st.insert = insertAfter(st.buf[:cut], st.insert)
	}
	fresh := len(st.buf) - cut
	if r.hold {
		fresh = max(r.holdAt-cut, 0) // judged again against the rows kept
	}
	st.buf = append(st.buf[:0], st.buf[cut:]...)
	st.recorded, st.afterBulk, st.fresh, st.holding = 0, false, fresh, r.hold
}

// render renders the buffer from the stream's cursor, in insert mode or
// not, a terminal's output judged against the rows kept (keep.go).
func (st *Stream) render(final, insert bool, sz termSize) rendering {
	keys := st.name == "stdin"
	if keys || !st.screen.sized() || plainText(st.buf) && !st.holding {
		// Plain text writes on from the cursor only: the row it
		// continues holds the held tail before it. A screen whose size
		// the client never gave (ssh -tt from a pipe: a pty of 0x0) has
		// no rows to keep: without a height nothing is known to scroll
		// off, and every chunk would be lost; there a move back to an
		// earlier row or along a row is not judged as text (render.go),
		// so text is written beside the held tail only.
		return renderAt(st.buf, final, keys, insert, sz, st.cursor)
	}
	return renderKept(st.buf, final, keys, insert, sz, st.cursor, st.kept.clone(), st.fresh)
}

// recordText records chunk, the raw bytes of the buffer from at, with
// the values spans (raw offsets in the buffer, in order) found replaced.
func (st *Stream) recordText(chunk []byte, spans []detect.Span, at int) {
	cut := len(chunk)
	for len(spans) > 0 && spans[0].Hi <= at {
		spans = spans[1:]
	}
	var found []Finding
	// Nothing found in the chunk: its own bytes are recorded (encoded
	// below, before the buffer is reused), not a copy.
	data := chunk
	if len(spans) > 0 && spans[0].Lo-at < cut {
		data = nil
		last := 0
		for _, sp := range spans {
			lo, hi := sp.Lo-at, sp.Hi-at
			if lo >= cut {
				break
			}
			data = append(data, chunk[last:max(lo, 0)]...)
			data = append(data, detect.Placeholder(sp.Detector)...)
			found = append(found, Finding{sp.Detector, sp.Value})
			for _, a := range sp.Also {
				found = append(found, Finding{a.Detector, a.Value})
			}
			last = min(hi, cut)
		}
		data = append(data, chunk[last:]...)
	}
	sum := sha256.Sum256(data)
	payload := map[string]any{
		"stream": st.name, "offset": st.offset, "bytes": len(chunk),
		"data": base64.StdEncoding.EncodeToString(data), "sha256": hex.EncodeToString(sum[:]),
	}
	if st.bulkBefore > 0 {
		payload["bulk_before"] = st.bulkBefore
		st.bulkBefore = 0
	}
	AddRedactions(payload, Found("/data", found)...)
	st.record(payload)
	st.offset += int64(cut)
}

// recordBinary records a chunk that is not text the detectors read: its
// size and keyed digest, never its bytes (the way a file transferred over
// SFTP is recorded). Without the key, its size only.
func (st *Stream) recordBinary(chunk []byte) {
	payload := map[string]any{"stream": st.name, "offset": st.offset, "bytes": len(chunk), "binary": true}
	if keyed, err := st.s.Keyed(context.Background()); err == nil && keyed != nil {
		payload["hmac"] = keyed(StreamChunkLabel, chunk)
	}
	st.record(payload)
}

// judgeRendered returns the values the detectors find in raw, read as
// the terminal renders them (r) and, when the rendering dropped what may
// hold a value by itself (r.hidden), as the bytes are, as raw offsets,
// in order and apart: a value found in the rendering is replaced over
// the whole raw span its characters come from, the escape sequences and
// erased characters between them included.
func judgeRendered(raw []byte, r rendering) []detect.Span {
	if r.same || string(r.b) == string(raw) {
		return detect.Spans(string(raw)) // nothing removed or moved: the rendering is the bytes
	}
	var spans []detect.Span
	if r.hidden {
		spans = detect.Spans(string(raw))
	}
	for _, sp := range detect.Spans(string(r.b)) {
		lo, hi := r.spanOf(raw, sp.Lo, sp.Hi)
		spans = append(spans, detect.Span{Lo: lo, Hi: hi, Detector: sp.Detector, Value: sp.Value, Also: sp.Also})
	}
	return mergeSpans(spans)
}

// mergeSpans sorts spans and joins those that overlap, a value found
// inside another kept in its Also.
func mergeSpans(spans []detect.Span) []detect.Span {
	slices.SortFunc(spans, func(a, b detect.Span) int { return a.Lo - b.Lo })
	out := spans[:0]
	for _, sp := range spans {
		if n := len(out); n > 0 && sp.Lo < out[n-1].Hi {
			o := &out[n-1]
			o.Hi = max(o.Hi, sp.Hi)
			if sp.Value != o.Value {
				o.Also = append(o.Also, detect.Span{Detector: sp.Detector, Value: sp.Value})
			}
			o.Also = append(o.Also, sp.Also...)
			continue
		}
		out = append(out, sp)
	}
	return out
}

// Close records what is left; later writes fail.
func (st *Stream) Close() error {
	st.mu.Lock()
	defer st.mu.Unlock()
	st.flushLocked(true)
	st.closed = true
	st.closeBulk()
	return nil
}
