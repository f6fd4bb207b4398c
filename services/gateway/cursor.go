package gateway

// cursorState is where the bytes of a stream recorded so far left a
// terminal's cursor: the state the rendering of the next bytes starts
// from (Stream.cursor), so that a chunk is rendered where the one before
// it left the cursor, not as if it started a screen of its own.
//
// The row is an interval [lo, hi]: exact once a row was named (CUP, VPA,
// a move that stops at the top or bottom row from every row it may have
// been on), wider where it cannot be known (a stream's start, a resize,
// a scroll region the rows cannot follow). A move whose place among the
// rendering's rows depends on where in the interval the cursor is moves
// the rows rendered so far out of reach (lineEditor.rebase): text then
// written on a row they may be on makes the chunk binary.
type cursorState struct {
	// set is false at a stream's start: the row is not known, the column
	// is the first (a client starts a session on a fresh line).
	set bool
	// lo and hi bound the cursor's row (1 is the top; hi noBottom: no
	// bound known).
	lo, hi int
	// col is the cursor's column (0 the first; the screen's width: a
	// character written next wraps).
	col int
	// alt is true while the alternate screen is shown.
	alt bool
	// saved is what DECSC (ESC 7, CSI s) saved on the main screen and on
	// the alternate one.
	saved [2]savedCursor
	// top and bot are the scroll margins DECSTBM set (0: the whole
	// screen); origin is DECOM (rows named from the top margin).
	top, bot int
	origin   bool
	// nowrap is DECAWM reset (CSI ? 7 l): characters past the last
	// column overwrite it.
	nowrap bool
}

// savedCursor is a cursor DECSC saved: its row interval and column, and
// origin mode (DECOM), which DECRC restores with them.
type savedCursor struct {
	lo, hi, col int
	ok          bool
	origin      bool
}

// noBottom is the bottom row of a screen whose height is not known: a
// row past any screen's (sizes are clamped to 1<<20).
const noBottom = 1 << 22

// exact reports whether the row is known.
func (c *cursorState) exact() bool { return c.lo == c.hi }

// start is the state a rendering on a screen of size sz starts from:
// the state carried, its bounds kept within the screen.
func (c cursorState) start(sz termSize) cursorState {
	bottom := noBottom
	if sz.rows > 0 {
		bottom = sz.rows
	}
	if !c.set {
		c = cursorState{set: true, lo: 1, hi: bottom}
	}
	c.lo, c.hi = min(max(c.lo, 1), bottom), min(max(c.hi, 1), bottom)
	if sz.cols > 0 {
		c.col = min(c.col, sz.cols)
	}
	if c.bot > bottom || c.top >= c.bot {
		c.top, c.bot = 0, 0
	}
	for i := range c.saved {
		s := &c.saved[i]
		s.lo, s.hi = min(max(s.lo, 1), bottom), min(max(s.hi, 1), bottom)
	}
	return c
}

// resized is the state after the screen's size changed: the row is no
// longer known (a terminal keeps the cursor's row, or scrolls, or
// reflows the lines, as it does), nor the margins, which a resize
// resets.
func (c *cursorState) resized() {
	if c.set {
		c.lo, c.hi = 1, noBottom
		c.top, c.bot = 0, 0
		for i := range c.saved {
			c.saved[i].lo, c.saved[i].hi = 1, noBottom
		}
	}
}

// feedRows is the row after a line feed (LF, IND, NEL, a character
// wrapped) from [lo, hi] on a screen of height rows (0: not known): the
// next row, or at the bottom row (or the bottom margin) the same, the
// rows scrolled.
func (c *cursorState) feedRows(height int) {
	switch {
	case c.top > 0 && !c.exact():
		c.hi = min(c.hi+1, max(height, c.bot))
	case c.top > 0:
		if c.lo != c.bot && c.lo != height {
			c.lo++
			c.hi++
		}
	case height == 0:
		c.hi = min(c.hi+1, noBottom) // at the bottom not known, it stays
	default:
		c.lo, c.hi = min(c.lo+1, height), min(c.hi+1, height)
	}
}

// plainAfter is the state after plain text (plainText) from c on a
// screen of size sz, as the line editor would leave it: LF ends a row
// (the column back to the first), HT moves to the next tab stop, a
// character past the last column wraps.
func (c cursorState) plainAfter(raw []byte, sz termSize) cursorState {
	c = c.start(sz)
	for _, b := range raw {
		switch {
		case b == '\n':
			c.feedRows(sz.rows)
			c.col = 0
		case b == '\t':
			c.col = min((c.col/8+1)*8, maxColumn+1)
			if sz.cols > 0 {
				c.col = min(c.col, sz.cols-1)
			}
		default:
			if sz.cols > 0 && c.col >= sz.cols {
				if c.nowrap {
					c.col = sz.cols - 1
				} else {
					c.feedRows(sz.rows)
					c.col = 0
				}
			}
			c.col = min(c.col+1, maxColumn+1)
		}
	}
	return c
}

// advanceCursor moves the stream's cursor past buf[:cut], which r
// rendered from it on a screen of size sz: at the end of the rendering,
// the state r ends in; before it, that of buf[:cut] rendered again.
// Called with st.mu held, before the buffer drops buf[:cut], which was
// recorded as text (written) or digest-only.
func (st *Stream) advanceCursor(r rendering, cut int, sz termSize, written bool) {
	if st.name == "stdin" || cut == 0 {
		return // what a person types moves no terminal's cursor
	}
	raw := st.buf[:cut]
	switch {
	case r.same || plainText(raw):
		st.keepPlain(raw, sz, st.insert)
		st.cursor = st.cursor.plainAfter(raw, sz)
	case cut >= r.done:
		st.cursor = r.end
		st.adoptKept(r.kept, written)
	default:
		var kept *keptScreens
		if st.screen != nil {
			kept = st.kept.clone()
		}
		re := renderKept(raw, false, false, st.insert, sz, st.cursor, kept, len(raw))
		st.cursor = re.end
		st.adoptKept(re.kept, written)
	}
}

// forget is the state after bytes the model did not follow (a bulk run,
// recorded in pieces): the row and the rows saved not known, as after a
// resize, the column taken as the first.
func (c *cursorState) forget() {
	c.resized()
	c.col = 0
}
