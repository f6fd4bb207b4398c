package gateway

import "sync"

// Screen is the size of the terminal a session's output is shown on, as
// the client gives it (an SSH pty-req, then each window-change): the
// terminal model of the streams that share it (StreamConfig.Screen)
// stops cursor moves at its edges and scrolls its rows as a terminal of
// that size does. Safe for concurrent use.
type Screen struct {
	mu      sync.Mutex
	sz      termSize
	changes uint64
}

// NewScreen is a screen of cols columns and rows rows (0: not known).
func NewScreen(cols, rows int) *Screen {
	return &Screen{sz: termSize{rows: clampSize(rows), cols: clampSize(cols)}}
}

// Resize sets the screen's size: the bytes a stream buffered before are
// then rendered with no size known (the terminal showed them at the old
// one, or the new: which is not known), until they are recorded.
func (sc *Screen) Resize(cols, rows int) {
	sc.mu.Lock()
	defer sc.mu.Unlock()
	sc.sz = termSize{rows: clampSize(rows), cols: clampSize(cols)}
	sc.changes++
}

func (sc *Screen) size() (termSize, uint64) {
	sc.mu.Lock()
	defer sc.mu.Unlock()
	return sc.sz, sc.changes
}

// clampSize keeps a size within what the model counts (an SSH size is a
// uint32): larger sizes are larger than any move the model follows.
func clampSize(n int) int { return min(max(n, 0), 1<<20) }

// screenSize is the size the stream's buffer is rendered at: the
// screen's, unless it changed while the buffer held bytes written
// before (or none is known): then no size, and moves that depend on it
// make the buffer binary. Called with st.mu held, before bytes are
// added and before the buffer is rendered.
func (st *Stream) screenSize() termSize {
	if st.screen == nil {
		return termSize{}
	}
	sz, changes := st.screen.size()
	if changes != st.sizeChanges {
		st.sizeChanges = changes
		// Bytes already buffered were shown at the old size or the
		// new one: until they are recorded, no size is known.
		st.sizeKnownFrom = st.offset + int64(len(st.buf))
	}
	if st.offset < st.sizeKnownFrom {
		return termSize{}
	}
	return sz
}
