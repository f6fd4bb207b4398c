package gateway

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"sync"
	"time"

	"github.com/auditledger/auditledger/events"
	"github.com/auditledger/auditledger/services/mask"
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
	// FlushAfter is the longest a byte waits before it is recorded: a
	// chunk is recorded once full, or this long after its first byte,
	// whichever comes first. Zero means DefaultFlushAfter.
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
			st.flushLocked()
		}
	}
	return n, nil
}

// Flush records what is buffered now.
func (st *Stream) Flush() {
	st.mu.Lock()
	defer st.mu.Unlock()
	st.flushLocked()
}

func (st *Stream) flushLocked() {
	if st.timer != nil {
		st.timer.Stop()
		st.timer = nil
	}
	if len(st.buf) == 0 {
		return
	}
	// The chunk passes the detectors before it is encoded: in base64 the
	// payload's own scrub could not see into it. The digest is over the
	// data as recorded, so it cannot be used to guess what was replaced.
	data, counts := mask.Scrub(string(st.buf))
	sum := sha256.Sum256([]byte(data))
	payload := map[string]any{
		"stream": st.name, "offset": st.offset, "bytes": len(st.buf),
		"data": base64.StdEncoding.EncodeToString([]byte(data)), "sha256": hex.EncodeToString(sum[:]),
	}
	AddRedactions(payload, Redactions("/data", counts)...)
	st.s.RecordAsync(context.Background(), events.SessionOutput, payload)
	st.offset += int64(len(st.buf))
	st.buf = st.buf[:0]
}

// Close records what is left; later writes fail.
func (st *Stream) Close() error {
	st.mu.Lock()
	defer st.mu.Unlock()
	st.flushLocked()
	st.closed = true
	return nil
}
