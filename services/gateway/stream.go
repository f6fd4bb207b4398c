package gateway

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"strings"
	"sync"
	"time"

	"github.com/auditledger/auditledger/events"
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
	// is recorded once full, or this long after its first byte,
	// whichever comes first. A trailing word or number of at most 64
	// bytes still growing is held back for the next chunk, so a value is
	// never split where no detector would see it whole; it waits one more
	// FlushAfter once nothing is added to it. Zero means
	// DefaultFlushAfter.
	FlushAfter time.Duration
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
	timer  *time.Timer
	held   int // bytes held back by the last flush (see flushLocked)
	closed bool
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
	return &Stream{s: s, name: name, max: cfg.MaxChunk, wait: cfg.FlushAfter}
}

// Write records p, in chunks of at most MaxChunk bytes.
func (st *Stream) Write(p []byte) (int, error) {
	st.mu.Lock()
	defer st.mu.Unlock()
	if st.closed {
		return 0, ErrStreamClosed
	}
	n := len(p)
	for len(p) > 0 {
		if len(st.buf) == 0 && st.timer == nil {
			st.timer = time.AfterFunc(st.wait, st.Flush)
		}
		k := min(len(p), st.max-len(st.buf))
		st.buf = append(st.buf, p[:k]...)
		p = p[k:]
		if len(st.buf) == st.max {
			st.flushLocked(false)
		}
	}
	return n, nil
}

// Flush records what is buffered now, but for a last word or number
// still growing (see flushLocked).
func (st *Stream) Flush() {
	st.mu.Lock()
	defer st.mu.Unlock()
	st.flushLocked(false)
}

// maxHeld bounds the tail a flush holds back.
const maxHeld = 64

// heldTail is how many bytes at the end of b may be the start of a value
// a detector would find once the rest arrives (a card number being
// typed, an address echoed key by key): the trailing run of letters,
// digits and the characters that join them in numbers and addresses.
// Zero when the run is longer than maxHeld.
func heldTail(b []byte) int {
	n := 0
	for i := len(b) - 1; i >= 0 && n <= maxHeld; i-- {
		c := b[i]
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || strings.IndexByte("._%+@- ()", c) >= 0) {
			break
		}
		n++
	}
	if n > maxHeld {
		return 0
	}
	return n
}

// flushLocked records the buffer, scrubbed. Unless final, it holds back
// a tail that may be the start of a value (heldTail) so that a value is
// never split between two chunks, where no detector would see it whole;
// a tail that has not grown since the last flush is recorded, so a byte
// waits at most one more FlushAfter once its stream falls silent.
func (st *Stream) flushLocked(final bool) {
	if st.timer != nil {
		st.timer.Stop()
		st.timer = nil
	}
	if len(st.buf) == 0 {
		return
	}
	keep := 0
	if !final {
		keep = heldTail(st.buf)
		if keep == len(st.buf) && keep <= st.held {
			keep = 0 // silent since the last flush: record it
		}
	}
	st.held = keep
	rest := st.buf[len(st.buf)-keep:]
	st.buf = st.buf[:len(st.buf)-keep]
	defer func() {
		st.buf = append(st.buf[:0], rest...)
		if len(st.buf) > 0 && !final {
			st.timer = time.AfterFunc(st.wait, st.Flush)
		}
	}()
	if len(st.buf) == 0 {
		return
	}
	// The chunk passes the detectors before it is encoded: in base64 the
	// payload's own scrub could not see into it. The digest is over the
	// data as recorded, so it cannot be used to guess what was replaced.
	var found []Finding
	data, _ := ScrubFound(string(st.buf), &found)
	sum := sha256.Sum256([]byte(data))
	payload := map[string]any{
		"stream": st.name, "offset": st.offset, "bytes": len(st.buf),
		"data": base64.StdEncoding.EncodeToString([]byte(data)), "sha256": hex.EncodeToString(sum[:]),
	}
	AddRedactions(payload, Found("/data", found)...)
	st.s.RecordAsync(context.Background(), events.SessionOutput, payload)
	st.offset += int64(len(st.buf))
}

// Close records what is left; later writes fail.
func (st *Stream) Close() error {
	st.mu.Lock()
	defer st.mu.Unlock()
	st.flushLocked(true)
	st.closed = true
	return nil
}
