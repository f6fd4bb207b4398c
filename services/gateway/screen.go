package gateway

import (
	"slices"
	"strconv"
	"sync"

	"github.com/auditledger/auditledger/events/detect"
)

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

// Size is the screen's columns and rows (0: not known).
func (sc *Screen) Size() (cols, rows int) {
	sz, _ := sc.size()
	return sz.cols, sz.rows
}

// sized reports whether the screen's size is known, both its columns and
// its rows (false for a nil screen).
func (sc *Screen) sized() bool {
	if sc == nil {
		return false
	}
	sz, _ := sc.size()
	return sz.rows > 0 && sz.cols > 0
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
		st.cursor.resized() // nor where the cursor then is
		st.kept.widen()     // nor which rows hold what was recorded
	}
	if st.offset < st.sizeKnownFrom {
		return termSize{}
	}
	return sz
}

// WindowSizes judges the window sizes a session records (an SSH
// pty-req's, then each window-change's), in order: a client chooses
// them freely, so their numbers are a channel that could carry a value
// in parts (46x62, 42x48, 46x48, 18x62: 4662424846481862). The numbers
// of the sizes recorded as they are (columns, then rows, of each size),
// read in order, must hold no run of numbers whose digits joined make a
// value the detectors find: a size that would complete one is withheld
// (Record false), and its numbers are not read with the next. Safe for
// concurrent use.
type WindowSizes struct {
	mu      sync.Mutex
	numbers []string // of the sizes recorded, the last maxSizeNumbers
}

// maxSizeDigits is the most digits a run of numbers judged holds: as
// many as the longest value a detector finds in a run of digits (a card
// number holds at most 19).
const maxSizeDigits = 19

// Record reports whether the size cols x rows may be recorded as it is:
// no run of the numbers recorded before it, ending with its columns or
// its rows, makes joined a value the detectors find (the whole run).
// When it may, its numbers are kept for the next.
func (w *WindowSizes) Record(cols, rows uint32) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	numbers := append(slices.Clip(w.numbers), strconv.FormatUint(uint64(cols), 10), strconv.FormatUint(uint64(rows), 10))
	for end := len(numbers) - 2; end < len(numbers); end++ {
		run := ""
		for start := end; start >= 0; start-- {
			run = numbers[start] + run
			if len(run) > maxSizeDigits {
				break
			}
			for _, sp := range detect.Spans(run) {
				if sp.Lo == 0 && sp.Hi == len(run) {
					return false
				}
			}
		}
	}
	w.numbers = numbers[max(len(numbers)-maxSizeDigits, 0):] // each at least a digit
	return true
}
