package gateway

import (
	"slices"
	"strings"
	"unicode/utf8"

	"golang.org/x/text/width"
)

// rendering is a stream's bytes as a terminal shows them: the text the
// detectors judge, with where each of its bytes came from.
type rendering struct {
	// b is the rendered text, line by line as the line ends up: escape
	// sequences and control characters other than tab, line feed and
	// carriage return removed, and the line edits they make applied
	// (lineEditor): cursor movement, insertion, deletion, erasure,
	// overwriting. A value typed in two parts with the cursor moved
	// back between them reads whole.
	b []byte
	// lo[i] is the raw offset of the first byte of the character
	// rendered byte i belongs to (hiOf gives the byte after its last).
	// Edits put characters out of raw order: spanOf takes the smallest
	// and largest.
	lo []int32
	// done is how many raw bytes were rendered; the rest (an escape
	// sequence or a UTF-8 character not yet complete) waits for more.
	done int
	// text is false when the bytes are not text the detectors read
	// (see textControl).
	text bool
	// hidden is true when the rendering dropped what may hold a value
	// by itself: an erased or overwritten character, the text of an
	// OSC, DCS, SOS, PM or APC string, or a control sequence with more
	// than 6 digits in its parameters. Only then do the raw bytes need
	// judging as well.
	hidden bool
	// same is true when the rendering is the bytes themselves (plainText):
	// b is raw, and lo is nil, each rendered byte i coming from raw byte i.
	same bool
	// end is where the rendered bytes (done) leave the cursor, for an
	// output stream rendered by the line editor (not same): followed to
	// the end even when the bytes are not text the detectors judge
	// (lost), so that the next rendering starts there (cursorState).
	end cursorState
	// kept is the rows kept (keep.go) after the rendered bytes, when
	// followed; keepLost is true when the rendering is lost because a
	// character it writes joins text kept on the screen.
	kept     *keptScreens
	keepLost bool
	// hold is true when the characters from raw offset holdAt on must
	// be held back and judged again with the next bytes (overwriting).
	hold   bool
	holdAt int
}

// plainText reports whether raw renders as itself: printable ASCII, tab
// and line feed only, which a terminal shows in place, one cell each,
// whether a program writes them or a person types them. Bulk output is
// mostly such text; it needs no line editing.
func plainText(raw []byte) bool {
	for _, c := range raw {
		if c >= 0x20 && c < 0x7f || c == '\n' || c == '\t' {
			continue
		}
		return false
	}
	return true
}

// hiOf is the raw offset after the last byte of the character rendered
// byte i belongs to.
func (r *rendering) hiOf(raw []byte, i int) int {
	lo := int(r.lo[i])
	if raw[lo] < utf8.RuneSelf {
		return lo + 1
	}
	_, n := utf8.DecodeRune(raw[lo:])
	return lo + n
}

// spanOf is the raw span the rendered bytes [lo, hi) come from: from the
// first raw byte of any of their characters to the last.
func (r *rendering) spanOf(raw []byte, lo, hi int) (int, int) {
	a, b := int(r.lo[lo]), r.hiOf(raw, hi-1)
	for i := lo; i < hi; i++ {
		a = min(a, int(r.lo[i]))
		b = max(b, r.hiOf(raw, i))
	}
	return a, b
}

// textControl reports whether a C0 control character may stand in text
// the detectors read: NUL (removed, so that UTF-16 text of ASCII
// characters is read as its characters), BEL, backspace, tab, line feed,
// vertical tab, form feed, carriage return and ESC; in what a person
// types, also the line-editing keys (editKey). Any other C0 control
// marks the bytes as binary.
func textControl(c byte, keys bool) bool {
	switch c {
	case 0x00, 0x07, 0x08, '\t', '\n', 0x0b, 0x0c, '\r', 0x1b:
		return true
	}
	return keys && editKey(c)
}

// metaKey reports whether ESC then c is a meta key the line editor
// applies (lineEditor.escape): a word back or forward, a word killed.
func metaKey(c byte) bool {
	switch c {
	case 'b', 'B', 'f', 'F', 'd', 'D', 0x7f, 0x08:
		return true
	}
	return false
}

// editKey reports whether c is a line-editing key of readline's default
// (emacs) bindings: ^A ^B ^D ^E ^F ^K ^U ^W.
func editKey(c byte) bool {
	switch c {
	case 0x01, 0x02, 0x04, 0x05, 0x06, 0x0b, 0x15, 0x17:
		return true
	}
	return false
}

// render renders raw as a terminal shows it: keys false for what a
// program writes (a terminal's output, where a character overwrites the
// one under the cursor and backspace moves the cursor), true for what a
// person types (a line editor's input, where a character is inserted at
// the cursor and backspace deletes the one before it). Unless final, an
// escape sequence or a UTF-8 character cut off at the end is left
// unrendered (done < len(raw)); when final, it makes the bytes binary.
func render(raw []byte, final, keys bool) rendering { return renderIn(raw, final, keys, false) }

// renderIn is render for bytes a terminal receives in insert mode (IRM)
// when insert is true: the mode an earlier part of the stream set.
func renderIn(raw []byte, final, keys, insert bool) rendering {
	return renderSized(raw, final, keys, insert, termSize{})
}

// termSize is the size of the terminal a stream is shown on, in rows
// and columns, as the client last gave it (an SSH pty-req or
// window-change); 0 when not known.
type termSize struct{ rows, cols int }

// renderSized is renderIn on a terminal of size sz: the bottom row stops
// moves down and scrolls the rows under line feeds, the last column
// stops moves right and wraps what is written past it. Moves whose end
// depends on a size not known make the bytes binary (lineEditor.lost).
func renderSized(raw []byte, final, keys, insert bool, sz termSize) rendering {
	return renderAt(raw, final, keys, insert, sz, cursorState{})
}

// renderAt is renderSized for bytes shown from where the stream's earlier
// bytes left the cursor (at; its zero value: a stream's start).
func renderAt(raw []byte, final, keys, insert bool, sz termSize, at cursorState) rendering {
	if plainText(raw) { // the cursor stays at each line's end: the mode changes nothing
		return rendering{b: raw, done: len(raw), text: true, same: true}
	}
	return renderEditedAt(raw, final, keys, insert, sz, at)
}

// insertAfter is a terminal's insert mode (IRM) after raw, insert before
// it: the last CSI 4 h or CSI 4 l in raw sets it.
func insertAfter(raw []byte, insert bool) bool {
	for i := 0; i < len(raw); i++ {
		if raw[i] != 0x1b {
			continue
		}
		n, complete := escapeLen(raw[i:])
		if !complete {
			break
		}
		if seq := raw[i : i+n]; n > 3 && seq[1] == '[' && (seq[n-1] == 'h' || seq[n-1] == 'l') && seq[2] != '?' &&
			slices.Contains(strings.Split(string(seq[2:n-1]), ";"), "4") {
			insert = seq[n-1] == 'h'
		}
		i += n - 1
	}
	return insert
}

// renderEdited is render by the line editor, for any bytes.
func renderEdited(raw []byte, final, keys, insert bool) rendering {
	return renderEditedSized(raw, final, keys, insert, termSize{})
}

// renderEditedSized is renderEdited on a terminal of size sz.
func renderEditedSized(raw []byte, final, keys, insert bool, sz termSize) rendering {
	return renderEditedAt(raw, final, keys, insert, sz, cursorState{})
}

// renderEditedAt is renderEditedSized from the cursor state at.
func renderEditedAt(raw []byte, final, keys, insert bool, sz termSize, at cursorState) rendering {
	return renderKept(raw, final, keys, insert, sz, at, nil, 0)
}

// renderKept is renderEditedAt following the rows kept (keep.go): kept
// is changed as the bytes change the screen, and a character from raw
// offset fresh on is judged against it.
func renderKept(raw []byte, final, keys, insert bool, sz termSize, at cursorState, kept *keptScreens, fresh int) rendering {
	r := rendering{b: make([]byte, 0, len(raw)), lo: make([]int32, 0, len(raw)), text: true}
	e := lineEditor{r: &r, raw: raw, keys: keys, pad: padPerByte*len(raw) + padSlack, insert: insert && !keys}
	if !keys {
		e.height, e.width = max(sz.rows, 0), max(sz.cols, 0)
		e.kept, e.fresh, e.final, r.kept = kept, int32(fresh), final, kept
		e.begin(at.start(sz))
	}
	binary := func() rendering {
		// Not text: where the rest leaves the cursor is not known.
		e.pos.lo, e.pos.hi = 1, e.bottom()
		r.end = e.state()
		if e.kept != nil {
			e.kept.widen()
			e.keepVer++
		}
		r.text = false
		r.done = len(raw)
		return r
	}
	lost := func() rendering {
		// The cursor was followed to the end, but not what the
		// terminal shows.
		r.text = false
		r.done = len(raw)
		return r
	}
	i := 0
	for i < len(raw) {
		c := raw[i]
		switch {
		case c == 0x1b:
			n, complete := escapeLen(raw[i:])
			if !complete {
				if final {
					return binary()
				}
				r.end = e.state()
				e.keepEnd()
				if e.lost {
					return lost()
				}
				e.flush()
				r.done = i
				return r
			}
			seq := raw[i : i+n]
			if keys && n == 2 && !metaKey(seq[1]) {
				// A meta key readline gives an edit the line editor
				// does not make (transpose or yank words, a numeric
				// argument, vi's command mode): the line as it ends up
				// is unknown, so the bytes are not judged as text.
				return binary()
			}
			if n > 2 && seq[1] != '[' && !(seq[1] == 'O' && n == 3) || digitCount(seq) > 6 {
				r.hidden = true
			}
			// A move the line editor cannot place (lost: tab stops
			// set, a row above those kept, text written on a row the
			// rows rendered before a rebase may be on) leaves what
			// a terminal shows unknown: the bytes are not judged as
			// text, but the cursor is followed to their end.
			e.escape(seq, i)
			i += n
			continue
		case c == 0x08:
			if keys {
				e.deleteBack()
			} else {
				e.alongWrapped(e.cur - 1)
				e.left(1)
			}
			i++
			continue
		case c == 0x7f:
			if keys {
				e.deleteBack()
			}
			i++
			continue
		case c < 0x20:
			if !textControl(c, keys) {
				return binary()
			}
			if c == '\t' && !keys {
				e.crEnd(false) // a move along the row
			}
			switch {
			case (c == '\n' || c == 0x0b || c == 0x0c) && !keys:
				// LF, and VT and FF, which a terminal takes as LF.
				e.lineFeed(i)
			case c == '\n' || c == '\r' && keys:
				e.flush()
				r.add(c, i)
			case c == '\r':
				e.home() // the next characters overwrite the line
			case c == '\t' && !keys && e.cur < len(e.line):
				// A terminal's tab moves the cursor to the next tab stop
				// (every 8 columns) over what the line holds, and past
				// its end when the stop is there (blanks, as below):
				// stopped at the line's end, a move back from it would
				// land columns left of the terminal's.
				e.at = int32(i)
				e.r.hidden = true
				e.to((e.cur/8 + 1) * 8)
			case c == '\t' && !keys && e.width > 0:
				// At the line's end on a screen of known width: blanks
				// to the next tab stop, so that columns count as the
				// terminal's (where the row wraps).
				e.at = int32(i)
				e.to((e.cur/8 + 1) * 8)
			case c == '\t':
				e.put(cell{lo: int32(i), n: 1})
			case keys && editKey(c):
				e.key(c)
			}
			i++
			continue
		case c < utf8.RuneSelf:
			e.put(cell{lo: int32(i), n: 1})
			i++
			continue
		}
		if !utf8.FullRune(raw[i:]) {
			if final {
				return binary()
			}
			r.end = e.state()
			e.keepEnd()
			if e.lost {
				return lost()
			}
			e.flush()
			r.done = i
			return r
		}
		ru, n := utf8.DecodeRune(raw[i:])
		if ru == utf8.RuneError {
			return binary()
		}
		if ru >= 0x80 && ru <= 0x9f { // a C1 control: shown as nothing
			i += n
			continue
		}
		if !keys && wideRune(ru) {
			e.putWide(cell{lo: int32(i), n: int8(n)})
		} else {
			e.put(cell{lo: int32(i), n: int8(n)})
		}
		i += n
	}
	r.end = e.state()
	e.keepEnd()
	if e.lost {
		return lost()
	}
	e.flush()
	r.done = len(raw)
	return r
}

func (r *rendering) add(c byte, lo int) {
	r.b = append(r.b, c)
	r.lo = append(r.lo, int32(lo))
}

func digitCount(b []byte) int {
	n := 0
	for _, c := range b {
		if c >= '0' && c <= '9' {
			n++
		}
	}
	return n
}

// cell is a character of the line being edited: n raw bytes from lo, or
// with n 0 a blank an insertion made (lo: the sequence that made it), or
// with n -1 the second column of the wide character before it (lo: its
// own), which shows nothing of its own (putWide).
type cell struct {
	lo int32
	n  int8
}

// maxLine bounds the cells of a line an insertion of blanks grows it to.
const maxLine = 64 << 10

// maxColumn is the furthest column a cursor move past a line's end pads
// the line to; a rendering pads lines with at most padPerByte blanks a
// raw byte (and padSlack more) in all, so that moves repeated on every
// line cannot grow the rendering without bound.
const (
	maxColumn  = 1024
	padPerByte = 4
	padSlack   = 4096
)

// lineEditor applies the edits of the current line: the line as cells and
// the cursor; flush appends the line as it ends up to the rendering.
type lineEditor struct {
	r    *rendering
	raw  []byte
	line []cell
	cur  int
	keys bool
	// at is the raw offset of the sequence being applied (blanks a
	// cursor move past the line's end makes come from it).
	at int32
	// saved and savedRow are the column and row (origin+rowi) DECSC or
	// CSI s saved in this rendering (hasSaved; in what a person types,
	// saved only), savedMark the count of scrolls then; carried is the
	// cursor saved however long before (its screen row and column: what
	// the stream's bytes saved last, ok false when none did).
	saved     int
	savedRow  int
	savedMark int
	hasSaved  bool
	carried   savedCursor
	// altCarried is the alternate screen's, while the main one is shown.
	altCarried savedCursor
	// pad is how many blanks cursor moves may still add (to).
	pad int
	// insert is a terminal's insert mode (IRM): characters written move
	// the rest of the line right rather than overwrite it.
	insert bool
	// rows are a terminal's rows since the rendering's first line feed
	// (nil before it), the current one rowi; feeds[i] is the raw offset
	// of the line feed that ended row i.
	rows  [][]cell
	feeds []int32
	rowi  int
	// dropped is true once rows were rendered before the end (maxRows):
	// a move up to them cannot be placed. lost is true once a move
	// could not be placed, or text was written where what a terminal
	// shows is not known: the rendering is unknown (binary). The
	// cursor is still followed to the end of the bytes.
	dropped bool
	lost    bool
	// origin is the number of rows[0] among the rows since the
	// rendering's start (rows made above the first lower it, rows
	// rendered before the end raise it): origin+rowi names the cursor's
	// row however rows are made and rendered.
	origin int
	// main is the main screen's rows while the alternate one is shown;
	// entryLo and entryHi the screen row it was left from.
	main             *screen
	entryLo, entryHi int
	// height and width are the screen's rows and columns (0: not
	// known): a move down stops at the bottom row and a line feed there
	// scrolls the rows, the row staying the bottom one; a move right
	// stops at the last column, and a character written past it wraps
	// to the next row (or, autowrap reset, overwrites the last column).
	height, width int
	// pos is the cursor's screen row (an interval where it is not
	// known: cursorState), the scroll margins, origin and autowrap
	// modes; its col and saved are kept in cur and carried.
	pos cursorState
	// scrolls counts the moves that may have scrolled the rows under
	// the cursor since the rendering's start: a row saved by its place
	// among the rows (savedRow) is then not the screen row saved.
	scrolls int
	// slo and shi bound the screen rows the text rendered before a
	// rebase may be on (0: none): text written on one of them may join
	// it where the rendering keeps them apart (lost).
	slo, shi int
	// crLine is true once a CR moved the cursor to the start of a line
	// of crLen cells, longer than narrowest, on a screen whose width is
	// not known (the line may have wrapped: which of its rows the CR
	// went to is not known); crPut counts the characters written since.
	crLine       bool
	crLen, crPut int
	// kept is the rows of text recorded before the rendering (keep.go),
	// nil when not followed; fresh is the raw offset of the first byte no
	// rendering judged before; keepHit is set once a fresh character is
	// written on a row that may hold such text; colLost once the cursor's
	// column is not the terminal's (a move past maxColumn).
	kept    *keptScreens
	final   bool
	fresh   int32
	keepHit bool
	colLost bool
	keepVer int
	keepAt  keepCache
}

// begin sets the cursor where the stream's earlier bytes left it (c):
// its row, the screen shown, what was saved and the modes; the cells
// before its column hold what earlier bytes wrote there (lead cells, lo
// -1), which the rendering leaves out.
func (e *lineEditor) begin(c cursorState) {
	e.pos = c
	e.carried, e.altCarried = c.saved[0], c.saved[1]
	if c.alt {
		e.main = &screen{carried: c.saved[0]}
		e.carried = c.saved[1]
		e.entryLo, e.entryHi = 1, e.bottom()
	}
	e.colLost = c.col > maxColumn
	if n := min(c.col, maxColumn); n > 0 {
		e.line = slices.Repeat([]cell{{lo: -1}}, n)
		e.cur = n
	}
}

// state is where the bytes applied leave the cursor.
func (e *lineEditor) state() cursorState {
	c := e.pos
	c.col = e.cur
	c.alt = e.main != nil
	c.saved = [2]savedCursor{e.carried, e.altCarried}
	if c.alt {
		c.saved = [2]savedCursor{e.main.carried, e.carried}
	}
	return c
}

// bottom is the screen's bottom row (noBottom: not known).
func (e *lineEditor) bottom() int {
	if e.height > 0 {
		return e.height
	}
	return noBottom
}

// save is DECSC: the cursor's column and row saved.
func (e *lineEditor) save() {
	e.saved, e.savedRow, e.savedMark, e.hasSaved = e.cur, e.origin+e.rowi, e.scrolls, true
	e.carried = savedCursor{lo: e.pos.lo, hi: e.pos.hi, col: e.cur, ok: true, origin: e.pos.origin}
}

// restore is DECRC: the cursor back to the column and screen row saved.
func (e *lineEditor) restore() {
	if e.hasSaved && e.scrolls == e.savedMark {
		// Nothing scrolled since: the row saved is the row kept.
		e.pos.lo, e.pos.hi = e.carried.lo, e.carried.hi
		if n := e.savedRow - (e.origin + e.rowi); n != 0 {
			e.moveRows(n, e.at)
		}
		e.to(e.saved)
		e.pos.origin = e.carried.origin
		return
	}
	if !e.carried.ok {
		// Saved before the stream's bytes (or never: the terminal's
		// own): where is not known.
		e.lost = true
		e.rebase(1, e.bottom())
		return
	}
	col := e.carried.col
	e.goRow(e.carried.lo, e.carried.hi)
	e.to(col)
	e.pos.origin = e.carried.origin
}

// maxRows bounds the rows a rendering keeps for cursor moves back up to
// them (CSI A, CUP): rows above the last maxRows are not edited again.
const maxRows = 256

// lineFeed ends the row in what a terminal shows (LF, VT, FF, NEL at raw
// offset at):
// the cursor goes to the start of the next row, which a move up (CSI A,
// CUP) can leave again for an earlier one: rows are kept, and rendered
// in order when the rendering ends (flush).
func (e *lineEditor) lineFeed(at int) {
	e.down(int32(at))
	e.cur, e.colLost = 0, false
}

// down is a line feed's move (LF, IND, NEL, a character wrapped, at raw
// offset at): to the next row, or at the bottom row the rows scroll up
// and the cursor is on a new one; either way the next of the rows kept.
// Within scroll margins the rows scroll between them, which the rows
// kept do not follow (lost).
func (e *lineEditor) down(at int32) {
	p := &e.pos
	switch {
	case p.top > 0 && p.exact() && p.lo == p.bot:
		e.region(1, at) // the rows between the margins scroll
		return
	case p.top > 0 && p.exact() && p.lo == e.height:
		return // below the margins, at the bottom: the cursor stays
	case p.top > 0:
		if !p.exact() {
			e.lost = true
			e.shiftWritten(1, false)
		}
	case e.height == 0:
		e.shiftWritten(1, false)
	case p.hi == e.height:
		e.shiftWritten(1, p.lo == e.height)
	}
	p.feedRows(e.height)
	e.moveRows(1, at)
}

// up is RI (ESC M): to the row above, or at the top row the rows scroll
// down and the cursor is on a new one: the row above among those kept.
func (e *lineEditor) up() {
	p := &e.pos
	switch {
	case p.top > 0 && p.exact() && p.lo == p.top:
		e.region(-1, e.at) // the rows between the margins scroll
		return
	case p.top > 0 && p.exact() && p.lo == 1:
		return // above the margins, at the top: the cursor stays
	case p.top > 0:
		if !p.exact() {
			e.lost = true
			e.shiftWritten(-1, false)
		}
		if !p.exact() {
			p.lo = max(p.lo-1, 1)
		} else if p.lo != p.top {
			p.lo, p.hi = max(p.lo-1, 1), max(p.hi-1, 1)
		}
	default:
		if p.lo == 1 {
			e.shiftWritten(-1, p.hi == 1)
		}
		p.lo, p.hi = max(p.lo-1, 1), max(p.hi-1, 1)
	}
	col := e.cur
	e.moveRows(-1, e.at)
	e.to(col)
}

// shiftWritten follows the rows the text rendered before a rebase may
// be on (slo, shi) when the rows scroll up n (down when n < 0): by n
// when sure, else by 0 to n.
func (e *lineEditor) shiftWritten(n int, sure bool) {
	e.scrolls++
	e.keepShift(n, sure, 1, e.bottom())
	if e.shi == 0 {
		return
	}
	switch {
	case sure:
		e.slo, e.shi = e.slo-n, e.shi-n
	case n > 0:
		e.slo -= n
	default:
		e.shi -= n
	}
	e.slo, e.shi = max(e.slo, 1), min(e.shi, e.bottom())
	if e.shi < e.slo {
		e.slo, e.shi = 0, 0
	}
}

// mayMeetWritten reports whether the cursor may be on a row the text
// rendered before a rebase may be on.
func (e *lineEditor) mayMeetWritten() bool {
	return e.shi != 0 && e.pos.lo <= e.shi && e.slo <= e.pos.hi
}

// rebase moves the cursor to a screen row in [lo, hi] whose place among
// the rows kept is not known (a row named, or a move stopped at the top
// or bottom row, from a row not known; the column kept). The rows kept
// are rendered as they are, ended, and the rows they may be on noted
// (slo, shi): text written there later may join them on the screen, and
// makes the rendering lost. Rendered rows without text are no such risk:
// a stream that names a row before writing anything anchors its rows
// there.
func (e *lineEditor) rebase(lo, hi int) {
	if a, b, ok := e.written(); ok {
		if e.shi == 0 {
			e.slo, e.shi = a, b
		} else {
			e.slo, e.shi = min(e.slo, a), max(e.shi, b)
		}
	}
	e.crEnd(true)
	col := e.cur
	e.r.hidden = true
	e.flushScreen()
	if n := len(e.r.b); n > 0 && e.r.b[n-1] != '\n' {
		e.r.add('\n', int(e.at))
	}
	e.origin, e.hasSaved = 0, false
	e.pos.lo, e.pos.hi = lo, hi
	e.to(col)
}

// written is the screen rows the text of the rows kept (and of those
// rendered before, dropped) may be on, and whether there is any.
func (e *lineEditor) written() (int, int, bool) {
	text := func(l []cell) bool {
		for _, c := range l {
			if c.n > 0 {
				return true
			}
		}
		return false
	}
	first, last := -1, -1
	if e.rows == nil {
		if text(e.line) {
			first, last = e.rowi, e.rowi
		}
	} else {
		e.rows[e.rowi] = e.line
		for i, row := range e.rows {
			if text(row) {
				if first < 0 {
					first = i
				}
				last = i
			}
		}
		if e.dropped {
			first, last = -noBottom, max(last, 0)
		}
	}
	if last < 0 {
		return 0, 0, false
	}
	lo, hi := max(e.pos.lo+first-e.rowi, 1), min(e.pos.hi+last-e.rowi, e.bottom())
	if hi < 1 {
		return 0, 0, false // scrolled off the screen
	}
	return lo, max(hi, lo), true
}

// moveRows moves the cursor n rows down (up when n < 0) among the rows
// kept, keeping its column: rows above the first kept are not reached
// (the cursor stays on the first), rows below the last are made, each
// ended by a line feed from raw offset at. The screen row (pos) is the
// caller's.
func (e *lineEditor) moveRows(n int, at int32) {
	if e.rows == nil {
		e.rows = [][]cell{nil}
	}
	e.rows[e.rowi] = e.line
	e.crEnd(true)
	to := e.rowi + n
	if n < 0 || to < len(e.rows) {
		e.r.hidden = true // what a row shows may be out of write order
	}
	for i := e.rowi; i < to && i < len(e.feeds); i++ {
		// The row ends where this move left it last: the line feed a
		// row rendered ends with comes from it, not from the move that
		// made the row (a CUP up to rows made above, long before), so
		// that a held tail of rows rewritten does not hold the bytes
		// before their rewriting.
		e.feeds[i] = at
	}
	if to < 0 {
		// Above the first row kept: rows the rendering has not seen
		// yet, made above it; rows already rendered (dropped) cannot
		// be written again.
		if e.dropped || len(e.rows)-to > maxRows {
			e.lost = true
			return
		}
		e.rows = append(make([][]cell, -to), e.rows...)
		e.feeds = append(slices.Repeat([]int32{at}, -to), e.feeds...)
		e.rowi -= to
		e.origin += to
		to = 0
	}
	for to >= len(e.rows) {
		if len(e.rows) >= maxRows { // the oldest row is rendered now
			e.emit(e.rows[0], e.feeds[0])
			e.rows, e.feeds = e.rows[1:], e.feeds[1:]
			e.dropped = true
			e.origin++
			to--
			e.rowi--
			continue
		}
		e.rows = append(e.rows, nil)
		e.feeds = append(e.feeds, at)
	}
	e.rowi = to
	e.line = e.rows[to]
	e.cur = min(e.cur, len(e.line))
	if e.cur < 0 {
		e.cur = 0
	}
}

// emit appends a row's cells to the rendering, then its line feed (lo
// the raw offset of the LF that ended it; -1: none). Lead cells (what
// earlier bytes wrote) are left out before the row's first character,
// blanks after it.
func (e *lineEditor) emit(line []cell, feed int32) {
	last := int32(-1)
	for _, c := range line {
		if c.n == 0 {
			switch {
			case c.lo >= 0:
				e.r.add(' ', int(c.lo))
			case last >= 0:
				e.r.add(' ', int(last))
			}
			continue
		}
		last = c.lo
		for k := range int32(c.n) {
			e.r.add(e.raw[c.lo+k], int(c.lo))
		}
	}
	if feed >= 0 {
		e.r.add('\n', int(feed))
	}
}

func (e *lineEditor) flush() {
	e.flushScreen()
	if e.main != nil {
		// The alternate screen ends the rendering: the main one's rows
		// follow it, on a line of their own.
		if len(e.r.b) > 0 {
			e.r.add('\n', int(e.at))
		}
		e.swap(e.main)
		e.main = nil
		e.flushScreen()
	}
}

// screen is the rows of a terminal's screen the alternate one replaces
// for a while (CSI ? 1049 h), and its cursor.
type screen struct {
	rows        [][]cell
	feeds       []int32
	line        []cell
	rowi, cur   int
	origin      int
	dropped     bool
	saved, srow int
	savedMark   int
	hasSaved    bool
	carried     savedCursor
	scrolls     int
	slo, shi    int
}

// swap makes s the screen edited, the one edited until then returned.
func (e *lineEditor) swap(s *screen) *screen {
	if e.rows != nil {
		e.rows[e.rowi] = e.line
	}
	old := &screen{e.rows, e.feeds, e.line, e.rowi, e.cur, e.origin, e.dropped, e.saved, e.savedRow, e.savedMark, e.hasSaved, e.carried, e.scrolls, e.slo, e.shi}
	e.rows, e.feeds, e.line, e.rowi, e.cur, e.origin, e.dropped, e.saved, e.savedRow, e.savedMark, e.hasSaved, e.carried, e.scrolls, e.slo, e.shi = s.rows, s.feeds, s.line, s.rowi, s.cur, s.origin, s.dropped, s.saved, s.srow, s.savedMark, s.hasSaved, s.carried, s.scrolls, s.slo, s.shi
	e.crEnd(true)
	return old
}

// alternate switches to the alternate screen (on) or back (CSI ? 47,
// 1047, 1049 h and l): its rows are apart from the main screen's, which
// it leaves as they were. The cursor keeps its place on the screen;
// 1049 saves it (DECSC) on the way there and restores it on the way
// back.
func (e *lineEditor) alternate(on, save bool) {
	if on == (e.main != nil) {
		return
	}
	col := e.cur
	e.r.hidden = true // rows rendered out of write order
	if on {
		if save {
			e.save()
		}
		e.entryLo, e.entryHi = e.pos.lo, e.pos.hi
		e.main = e.swap(&screen{carried: e.altCarried})
		e.to(col)
		return
	}
	e.flushScreen()
	e.r.add('\n', int(e.at))
	alt := e.swap(e.main)
	e.altCarried = alt.carried
	e.main = nil
	if save {
		e.restore()
		return
	}
	// The cursor keeps its place on the screen: from the row the main
	// screen was left at.
	lo, hi := e.pos.lo, e.pos.hi
	e.pos.lo, e.pos.hi = e.entryLo, e.entryHi
	e.goRow(lo, hi)
	e.to(col)
}

func (e *lineEditor) flushScreen() {
	if e.rows != nil {
		// A terminal's rows: each rendered in order, the current one
		// last but for those below it.
		e.rows[e.rowi] = e.line
		for i, row := range e.rows {
			feed := int32(-1)
			if i < len(e.feeds) {
				feed = e.feeds[i]
			}
			e.emit(row, feed)
		}
		e.rows, e.feeds, e.rowi, e.dropped = nil, nil, 0, false
		e.line, e.cur = e.line[:0:0], 0
		return
	}
	e.emit(e.line, -1)
	e.line, e.cur = e.line[:0], 0
}

// put writes a character at the cursor: inserted in what a person types,
// over the one under the cursor in what a terminal shows.
func (e *lineEditor) put(c cell) {
	if e.width > 0 && e.cur >= e.width {
		if e.pos.nowrap {
			e.cur = e.width - 1 // autowrap reset: over the last column
		} else {
			// Past the last column: the character goes to the start
			// of the next row (at the bottom the rows scroll), apart
			// from the raw bytes next to it, which are judged too.
			e.r.hidden = true
			e.down(c.lo)
			e.cur = 0
		}
	}
	if !e.keys && e.mayMeetWritten() {
		e.lost = true // on a row whose place among those kept is not known
	}
	if !e.keys {
		e.keepPut(c.lo)
	}
	if e.crLine {
		if e.insert {
			e.lost = true // what it moves right is not known
		}
		e.crPut++
	}
	switch {
	case e.cur == len(e.line):
		e.line = append(e.line, c)
	case e.keys || e.insert:
		// Inserted between characters that were side by side: the raw
		// bytes hold them unbroken, and are judged too. A terminal
		// inserts too in its insert mode (IRM, CSI 4 h).
		e.r.hidden = true
		e.line = slices.Insert(e.line, e.cur, c)
		if len(e.line) > maxLine {
			e.line = e.line[:maxLine]
		}
	default:
		if e.line[e.cur].lo >= 0 {
			e.r.hidden = true // the character or blank overwritten
		}
		e.splitWide(e.cur)
		e.line[e.cur] = c
	}
	e.cur++
}

// putWide writes a character a terminal shows in two columns (East
// Asian wide and fullwidth: CJK, most emoji) as two cells, so that the
// columns of what follows count as the terminal's: a column moved to
// after it is the one the terminal shows text at. One that does not fit
// before the last column wraps first (autowrap reset: it takes the last
// two).
func (e *lineEditor) putWide(c cell) {
	if e.width > 1 && e.cur >= e.width-1 {
		if e.pos.nowrap {
			e.cur = e.width - 2
		} else {
			e.cur = e.width // put wraps it
		}
	}
	e.put(c)
	second := cell{lo: c.lo, n: -1}
	switch {
	case e.cur >= len(e.line):
		e.line = append(e.line, second)
	case e.insert: // IRM: it moves the rest of the line right by two
		e.line = slices.Insert(e.line, e.cur, second)
		if len(e.line) > maxLine {
			e.line = e.line[:maxLine]
		}
	default:
		if e.line[e.cur].lo >= 0 {
			e.r.hidden = true
		}
		e.splitWide(e.cur)
		e.line[e.cur] = second
	}
	e.cur++
}

// splitWide makes the other column of a wide character at cell k blank
// before cell k alone is overwritten, erased or cut from it: a terminal
// shows no half of a wide character, so what was either side of it is
// not read joined through it.
func (e *lineEditor) splitWide(k int) {
	if k < 0 || k >= len(e.line) {
		return
	}
	switch c := e.line[k]; {
	case c.n == -1 && k > 0 && e.line[k-1].lo == c.lo && e.line[k-1].n > 0:
		e.line[k-1] = cell{lo: c.lo}
		e.r.hidden = true
	case c.n > 0 && k+1 < len(e.line) && e.line[k+1].n == -1 && e.line[k+1].lo == c.lo:
		e.line[k+1] = cell{lo: c.lo}
		e.r.hidden = true
	}
}

// wideRune reports whether a terminal shows r in two columns: East Asian
// wide or fullwidth (width.LookupRune), as wcwidth counts them.
func wideRune(r rune) bool {
	switch width.LookupRune(r).Kind() {
	case width.EastAsianWide, width.EastAsianFullwidth:
		return true
	}
	return false
}

func (e *lineEditor) left(n int) {
	e.crEnd(false)
	if e.width > 0 && e.cur >= e.width {
		e.cur = e.width - 1 // a wrap pending: the cursor shows on the last column
	}
	e.cur = max(e.cur-n, 0)
}
func (e *lineEditor) right(n int) { e.to(e.cur + n) }

// to moves the cursor to column col of the line. A line editor's cursor
// stays within the line; a terminal's moves past its end, over blanks
// (cells with n 0), which characters written later fill: what is
// written at column 11 and then at column 1 reads as the row shows it.
func (e *lineEditor) to(col int) {
	col = max(col, 0)
	if e.width > 0 {
		col = min(col, e.width-1) // a terminal stops at its last column
	}
	if e.keys || col <= len(e.line) {
		e.cur = min(col, len(e.line))
		return
	}
	if col > maxColumn || col-len(e.line) > e.pad {
		// Past any terminal's width, or more blanks than the bytes
		// rendered warrant: the cursor stays at the line's end (the
		// raw bytes are judged too).
		e.r.hidden = true
		e.cur = len(e.line)
		e.colLost = true
		return
	}
	e.pad -= col - len(e.line)
	for len(e.line) < col {
		e.line = append(e.line, cell{lo: e.at})
	}
	e.cur = col
}

// param is the i-th parameter of a control sequence's parameters (1 when
// absent or 0).
func param(params []byte, i int) int {
	fields := strings.Split(string(params), ";")
	if i >= len(fields) {
		return 1
	}
	n := 0
	for _, c := range []byte(fields[i]) {
		if c < '0' || c > '9' {
			return 1
		}
		n = min(n*10+int(c-'0'), 1<<16)
	}
	return max(n, 1)
}

// toRow moves the cursor to row r (a terminal's CUP or VPA; with origin
// mode, counted from the top margin), the column kept. On a screen whose
// height is not known a row past its bottom stops there: the row is
// somewhere from the first to r.
func (e *lineEditor) toRow(r int) {
	p := &e.pos
	if p.origin && p.top > 0 {
		r = min(p.top+r-1, p.bot)
	}
	if e.height > 0 {
		r = min(r, e.height)
		e.goRow(r, r)
		return
	}
	e.goRow(1, min(r, noBottom))
}

// goRow moves the cursor to a screen row in [lo, hi], the column kept:
// among the rows kept when both that row and the cursor's are known,
// else to rows of its own (rebase).
func (e *lineEditor) goRow(lo, hi int) {
	p := &e.pos
	if !p.exact() || lo != hi || lo-p.lo > maxRows || p.lo-lo > maxRows {
		e.rebase(lo, hi)
		return
	}
	if n := lo - p.lo; n != 0 {
		col := e.cur
		e.moveRows(n, e.at)
		e.to(col)
	}
	p.lo, p.hi = lo, hi
}

// vertical moves the cursor n rows down (up when n < 0), the column
// kept (a terminal's CUU, CUD, VPR, CNL, CPL): not past the top or
// bottom row, nor, from within them, the scroll margins. Where the row
// it stops at depends on which row in pos it started from, the rows it
// may stop at are a row of their own (rebase).
func (e *lineEditor) vertical(n int) {
	if n == 0 {
		return
	}
	p := &e.pos
	bottom := e.bottom()
	stop := func(r int) int {
		if n < 0 {
			if p.top > 0 && r >= p.top {
				return max(r+n, p.top)
			}
			return max(r+n, 1)
		}
		if p.top > 0 && r <= p.bot {
			return min(r+n, p.bot)
		}
		return min(r+n, bottom)
	}
	lo, hi := stop(p.lo), stop(p.hi)
	var d int
	switch {
	case n > 0 && e.height == 0:
		// Where the bottom row stops it is not known.
		e.rebase(p.lo, min(p.hi+n, noBottom))
		return
	case p.exact():
		d = lo - p.lo
	case p.top == 0 && (n < 0 && p.lo+n >= 1 || n > 0 && p.hi+n <= bottom):
		d = n // from every row it may be on, n rows
	default:
		e.rebase(lo, hi)
		return
	}
	if d > maxRows || d < -maxRows {
		e.rebase(lo, hi)
		return
	}
	p.lo, p.hi = lo, hi
	if d == 0 {
		return
	}
	col := e.cur
	e.moveRows(d, e.at)
	e.to(col)
}

// lines inserts n blank rows at the cursor's (insert), or deletes the
// cursor's row and the n-1 after it, blank rows made at the end; the
// cursor goes to the start of its row (IL, DL).
func (e *lineEditor) lines(insert bool, n int) {
	if e.rows == nil {
		e.rows = [][]cell{nil}
	}
	e.rows[e.rowi] = e.line
	e.r.hidden = true
	e.scrolls++ // rows below the cursor moved: rows saved no longer hold
	if insert {
		e.keepRegion(-n, e.pos.lo, e.bottom())
	} else {
		e.keepRegion(n, e.pos.lo, e.bottom())
	}
	if e.shi != 0 && e.pos.lo <= e.shi {
		e.slo, e.shi = min(e.slo, e.pos.lo), e.bottom()
	}
	blank := make([][]cell, n)
	feeds := slices.Repeat([]int32{e.at}, n)
	if insert {
		if len(e.rows)+n > maxRows {
			e.lost = true
			return
		}
		e.rows = slices.Insert(e.rows, e.rowi, blank...)
		e.feeds = slices.Insert(e.feeds, min(e.rowi, len(e.feeds)), feeds...)
	} else {
		k := min(n, len(e.rows)-e.rowi)
		e.rows = append(slices.Delete(e.rows, e.rowi, e.rowi+k), blank[:k]...)
	}
	e.line, e.cur = e.rows[e.rowi], 0
}

// alongWrapped makes the rendering lost when, on a screen whose width
// is not known, a move or edit along the row (or up from it) from the
// cursor reaches column to, and the cursor or to is past narrowest: the
// line may have wrapped, and the terminal moves on the row of it the
// cursor is on (a move left stops at that row's first column, a column
// named is that row's, a move up goes to the row above within the
// line), which the model, editing the whole line as one row, does not
// follow. CR and a move to the first column are followed apart (home).
func (e *lineEditor) alongWrapped(to int) {
	if !e.keys && e.width == 0 && (e.cur > narrowest || to > narrowest) {
		e.lost = true
	}
}

// narrowest is the fewest columns a value the detectors find takes on a
// row (a@b.co): a line no longer than it, wrapped, shows none whole.
const narrowest = 6

// home moves the cursor to the start of the line (CR, CSI G). On a screen
// whose width is not known a line longer than narrowest may have wrapped
// (a client's terminal of any width): the cursor is then at the start of
// the line's last row, not known, and text written there makes the
// rendering lost (crLine).
func (e *lineEditor) home() {
	if e.crLine && e.cur == 0 {
		return // there already (CR CR LF)
	}
	e.crEnd(false)
	if !e.keys && e.width == 0 && len(e.line) > narrowest {
		e.crLine, e.crLen, e.crPut = true, len(e.line), 0
	}
	e.cur, e.colLost = 0, false
}

// crEnd ends what follows a CR on a line that may have wrapped
// (crLine), as the cursor leaves the row (leave) or moves along it: the
// characters written since overwrote the whole line, so whichever of its
// rows the CR went to holds nothing else, or none were written and the
// cursor leaves the row; else the rendering is lost. The rendering's
// end ends none: its bytes so far hold no such join.
func (e *lineEditor) crEnd(leave bool) {
	if e.crLine && e.crPut < e.crLen && (e.crPut > 0 || !leave) {
		e.lost = true
	}
	e.crLine = false
}

// margins is DECSTBM (CSI top ; bottom r): the scroll margins set, or,
// for the whole screen, reset; the cursor goes home. A region of no rows
// is ignored, as a terminal does.
func (e *lineEditor) margins(params []byte) {
	p := &e.pos
	bottom := e.bottom()
	t, b := param(params, 0), bottom
	if f := strings.Split(string(params), ";"); len(f) > 1 && strings.Trim(f[1], "0") != "" {
		b = min(param(params, 1), bottom)
	}
	if t >= b {
		return
	}
	if t == 1 && b == bottom {
		p.top, p.bot = 0, 0
	} else {
		p.top, p.bot = t, b
	}
	e.toRow(1)
	e.to(0)
}

// reset is RIS (ESC c): the terminal as it starts, its screens cleared,
// the cursor home.
func (e *lineEditor) reset() {
	if e.main != nil {
		e.alternate(false, false)
	}
	e.pos.top, e.pos.bot, e.pos.origin, e.pos.nowrap = 0, 0, false, false
	e.goRow(1, 1)
	e.to(0)
	e.slo, e.shi = 0, 0
	e.keepClear(true)
	home := savedCursor{lo: 1, hi: 1, ok: true}
	e.carried, e.altCarried, e.hasSaved = home, home, false
}

// rowAt is the index among the rows kept of screen row a (the cursor's
// row known), the rows kept made to reach it: false (lost) where they
// cannot be (above rows already rendered, more than maxRows).
func (e *lineEditor) rowAt(a int) (int, bool) {
	if e.rows == nil {
		e.rows = [][]cell{nil}
	}
	e.rows[e.rowi] = e.line
	i := e.rowi + a - e.pos.lo
	if i < 0 {
		if e.dropped || len(e.rows)-i > maxRows {
			e.lost = true
			return 0, false
		}
		e.rows = append(make([][]cell, -i), e.rows...)
		e.feeds = append(slices.Repeat([]int32{e.at}, -i), e.feeds...)
		e.rowi -= i
		e.origin += i
		i = 0
	}
	if i >= maxRows {
		e.lost = true
		return 0, false
	}
	for i >= len(e.rows) {
		e.rows = append(e.rows, nil)
		e.feeds = append(e.feeds, e.at)
	}
	return i, true
}

// shiftRows moves the screen rows [top, bot] up one (down when up is
// false) among the rows kept, as a terminal scrolls them between its
// margins: the row that leaves them is rendered now (it is no longer on
// the screen), a blank one enters at the other end, and the rows
// outside stay where they are.
func (e *lineEditor) shiftRows(top, bot int, up bool, at int32) {
	it, ok := e.rowAt(top)
	if !ok {
		return
	}
	ib, ok := e.rowAt(bot)
	if !ok {
		return
	}
	if len(e.feeds) == 0 { // one row kept: a blank one below it, for the line feeds' count
		e.rows = append(e.rows, nil)
		e.feeds = append(e.feeds, at)
	}
	out, in := it, ib
	if !up {
		out, in = ib, it
	}
	f := min(out, len(e.feeds)-1)
	e.emit(e.rows[out], e.feeds[f])
	e.rows = slices.Insert(slices.Delete(e.rows, out, out+1), in, nil)
	e.feeds = slices.Insert(slices.Delete(e.feeds, f, f+1), min(in, len(e.feeds)-1), at)
	e.r.hidden = true
	e.line = e.rows[e.rowi]
	e.cur = min(e.cur, len(e.line))
}

// region scrolls the rows between the margins n rows up (down when n <
// 0), the cursor kept on its screen row (a line feed at the bottom
// margin, RI at the top one, CSI S, T).
func (e *lineEditor) region(n int, at int32) {
	p := &e.pos
	e.scrolls++
	e.keepRegion(n, p.top, p.bot)
	if e.shi != 0 && e.slo <= p.bot && e.shi >= p.top {
		e.slo, e.shi = max(min(e.slo, p.top), 1), max(e.shi, p.bot) // moved within them
	}
	if !p.exact() {
		return
	}
	col := e.cur
	for range min(max(n, -n), p.bot-p.top+1) {
		if e.lost {
			break
		}
		e.shiftRows(p.top, p.bot, n > 0, at)
	}
	e.to(col)
}

// regionLines is IL and DL between scroll margins: the rows from the
// cursor's to the bottom margin move down (rows past it leave the
// screen) or up (blank rows entering at it); outside the margins
// nothing moves. The cursor goes to the start of its row.
func (e *lineEditor) regionLines(insert bool, n int) {
	p := &e.pos
	e.scrolls++
	if e.shi != 0 && e.slo <= p.bot && e.shi >= p.lo {
		e.slo, e.shi = max(min(e.slo, p.lo), 1), max(e.shi, p.bot)
	}
	if !p.exact() {
		e.lost = true
		return
	}
	if p.lo < p.top || p.lo > p.bot {
		return // outside the margins a terminal moves no row
	}
	if insert {
		e.keepRegion(-n, p.lo, p.bot)
	} else {
		e.keepRegion(n, p.lo, p.bot)
	}
	for range min(n, p.bot-p.lo+1) {
		if e.lost {
			return
		}
		e.shiftRows(p.lo, p.bot, !insert, e.at)
	}
	e.cur = 0
}

// remove deletes the cells [lo, hi) of the line.
func (e *lineEditor) remove(lo, hi int) {
	lo, hi = max(lo, 0), min(hi, len(e.line))
	if lo >= hi {
		return
	}
	if !e.keys {
		e.splitWide(lo)
		e.splitWide(hi - 1)
	}
	e.line = append(e.line[:lo], e.line[hi:]...)
	e.r.hidden = true
	if e.cur > hi {
		e.cur -= hi - lo
	} else if e.cur > lo {
		e.cur = lo
	}
}

// deleteBack deletes the character before the cursor (backspace, DEL).
func (e *lineEditor) deleteBack() {
	if e.cur > 0 {
		e.remove(e.cur-1, e.cur)
	}
}

// key applies a readline editing key.
func (e *lineEditor) key(c byte) {
	switch c {
	case 0x01: // ^A
		e.cur = 0
	case 0x05: // ^E
		e.cur = len(e.line)
	case 0x02: // ^B
		e.left(1)
	case 0x06: // ^F
		e.right(1)
	case 0x04: // ^D: the character under the cursor
		e.remove(e.cur, e.cur+1)
	case 0x0b: // ^K: to the end of the line
		e.remove(e.cur, len(e.line))
	case 0x15: // ^U: to the start of the line
		e.remove(0, e.cur)
	case 0x17: // ^W: the word before the cursor
		i := e.cur
		for i > 0 && e.blank(i-1) {
			i--
		}
		for i > 0 && !e.blank(i-1) {
			i--
		}
		e.remove(i, e.cur)
	}
}

// wordChar reports whether cell i is part of a word as readline's word
// motions read one: a letter or digit, or a character beyond ASCII.
func (e *lineEditor) wordChar(i int) bool {
	c := e.line[i]
	if c.n == 0 {
		return false
	}
	b := e.raw[c.lo]
	return c.n > 1 || b >= '0' && b <= '9' || b|0x20 >= 'a' && b|0x20 <= 'z'
}

// wordBack is where readline's backward-word takes the cursor: over what
// is not a word, then to the start of the word before.
func (e *lineEditor) wordBack() int {
	i := e.cur
	for i > 0 && !e.wordChar(i-1) {
		i--
	}
	for i > 0 && e.wordChar(i-1) {
		i--
	}
	return i
}

// wordForward is where readline's forward-word takes the cursor: over
// what is not a word, then to the end of the word after.
func (e *lineEditor) wordForward() int {
	i := e.cur
	for i < len(e.line) && !e.wordChar(i) {
		i++
	}
	for i < len(e.line) && e.wordChar(i) {
		i++
	}
	return i
}

// blank reports whether cell i is a blank (an insertion's, or a space or
// tab, which word deletion stops at).
func (e *lineEditor) blank(i int) bool {
	c := e.line[i]
	return c.n == 0 || c.n == 1 && (e.raw[c.lo] == ' ' || e.raw[c.lo] == '\t')
}

// escape applies the line edits of a complete escape sequence: cursor
// left and right (CSI D, C, a; SS3 D, C, the arrow keys in application
// mode), to a column (CSI G), home and end (CSI H, F; CSI 1~, 4~, 7~,
// 8~), insert blanks (CSI @), delete characters (CSI P; the delete key
// CSI 3~), erase in line (CSI K) and characters (CSI X), tab stops
// forward and back (CSI I, Z). In what a terminal shows it follows every
// vertical move: rows up and down (CSI A, B, e, E, F; ESC M, D, E), to a
// row (CSI H, f, d), rows inserted, deleted, scrolled (CSI L, M, S, T),
// the scroll margins (CSI r), the screen erased (CSI J, for the rows a
// rebase noted), the terminal reset (ESC c); one it cannot place (tab
// stops changed: ESC H, CSI g) sets lost. Others change nothing the
// text holds.
func (e *lineEditor) escape(seq []byte, at int) {
	e.at = int32(at)
	if e.crLine && (len(seq) == 2 && (seq[1] == '8' || seq[1] == 'c') ||
		len(seq) > 2 && seq[1] == '[' && strings.IndexByte("@CDGHIPXZ`abfu", seq[len(seq)-1]) >= 0) {
		e.crEnd(false) // a move along the row, or an edit of it
	}
	if !e.keys && len(seq) == 2 {
		switch seq[1] {
		case '7': // DECSC: save the cursor
			e.save()
		case '8': // DECRC: restore it
			e.restore()
		case 'M': // RI: a row up (at the top the rows scroll down: the same)
			e.up()
		case 'D': // IND: a row down, as LF without the carriage return (at the bottom the rows scroll)
			col := e.cur
			e.down(e.at)
			e.to(col)
		case 'E': // NEL: the start of the next row
			e.lineFeed(at)
		case 'H': // HTS: a tab stop set; tabs are no longer every 8 columns
			e.lost = true
		case 'c': // RIS: the terminal reset, its screen cleared
			e.reset()
		}
		return
	}
	if e.keys && len(seq) == 2 {
		// Readline's meta keys (ESC, then the key): a word back and
		// forward, the word after the cursor and the one before it
		// killed.
		switch seq[1] {
		case 'b', 'B':
			e.cur = e.wordBack()
		case 'f', 'F':
			e.cur = e.wordForward()
		case 'd', 'D':
			e.remove(e.cur, e.wordForward())
		case 0x7f, 0x08:
			e.remove(e.wordBack(), e.cur)
		}
		return
	}
	if e.keys && len(seq) > 3 && seq[1] == '[' && (seq[len(seq)-1] == 'D' || seq[len(seq)-1] == 'C') {
		// An arrow key with a modifier (CSI 1;5D: ctrl-left; 1;3D:
		// alt-left): a word back or forward, as readline binds them.
		if _, mod, ok := strings.Cut(string(seq[2:len(seq)-1]), ";"); ok && mod != "" && mod != "1" && mod != "2" {
			if seq[len(seq)-1] == 'D' {
				e.cur = e.wordBack()
			} else {
				e.cur = e.wordForward()
			}
			return
		}
	}
	if len(seq) == 3 && seq[1] == 'O' {
		switch seq[2] {
		case 'D':
			e.alongWrapped(e.cur - 1)
			e.left(1)
		case 'C':
			e.alongWrapped(e.cur + 1)
			e.right(1)
		case 'H':
			e.cur = 0
		case 'F':
			e.cur = len(e.line)
		}
		return
	}
	if !e.keys && len(seq) == 3 && seq[1] == '#' && seq[2] == '8' {
		// DECALN: the screen filled with E, the scroll margins and
		// origin mode reset, the cursor home. Text kept is no longer
		// shown.
		e.pos.origin = false
		e.margins(nil)
		e.keepClear(false)
		return
	}
	if len(seq) < 3 || seq[1] != '[' {
		return
	}
	params := seq[2 : len(seq)-1]
	n := 0
	for _, c := range params {
		if c < '0' || c > '9' {
			n = -1
			break
		}
		n = min(n*10+int(c-'0'), 1<<16)
	}
	count := max(n, 1)
	switch seq[len(seq)-1] {
	case 'D':
		e.alongWrapped(e.cur - count)
	case 'C', 'a':
		e.alongWrapped(e.cur + count)
	case 'G', '`':
		if count > 1 {
			e.alongWrapped(count - 1)
		}
	case 'I', 'Z', 'A', 'F':
		e.alongWrapped(e.cur)
	case 'P', '@':
		e.alongWrapped(len(e.line))
	case 'X':
		e.alongWrapped(min(e.cur+count, len(e.line)))
	}
	switch seq[len(seq)-1] {
	case 'D':
		e.left(count)
	case 'C':
		e.right(count)
	case 'G', '`':
		if !e.keys && count == 1 {
			e.home()
			break
		}
		e.colLost = false
		e.to(count - 1)
	case 'H', 'f':
		if e.keys {
			if len(params) == 0 {
				e.cur = 0
			}
			break
		}
		// CUP: row and column. The line edited is one row: the cursor
		// moved to another row ends it.
		e.toRow(param(params, 0))
		e.colLost = false
		e.to(param(params, 1) - 1)
	case 'd':
		if !e.keys {
			e.toRow(count)
		}
	case 'A', 'B', 'e':
		// Cursor up, down (CUU, CUD, VPR): to another row, the column
		// kept.
		if !e.keys && n >= 0 {
			if seq[len(seq)-1] == 'A' {
				e.vertical(-count)
			} else {
				e.vertical(count)
			}
		}
	case 'E':
		// CNL: the start of the row count rows down.
		if !e.keys && n >= 0 {
			e.vertical(count)
			e.cur = 0
		}
	case 'a':
		// HPR: count columns right.
		if !e.keys && n >= 0 {
			e.right(count)
		}
	case 'I', 'Z':
		// CHT, CBT: count tab stops forward, back (every 8 columns;
		// HTS and TBC, which change them, are not followed).
		if !e.keys && n >= 0 {
			e.r.hidden = true
			if seq[len(seq)-1] == 'I' {
				e.to(min((e.cur/8+count)*8, maxColumn+1))
			} else if e.cur > 0 {
				e.cur = min(max(((e.cur-1)/8-(count-1))*8, 0), len(e.line))
			}
		}
	case 'X':
		// ECH: count characters from the cursor erased, the cursor
		// kept.
		if !e.keys && n >= 0 {
			e.keepErase(e.cur, e.cur+count, false, false)
			e.splitWide(e.cur)
			e.splitWide(min(e.cur+count, len(e.line)) - 1)
			for k := e.cur; k < e.cur+count && k < len(e.line); k++ {
				if e.line[k].n != 0 {
					e.r.hidden = true
				}
				e.line[k] = cell{lo: int32(at)}
			}
		}
	case 'L', 'M':
		// IL, DL: rows inserted at the cursor's, the rows below moved
		// down, or the cursor's and those after it deleted, the rows
		// below moved up: rows kept, blank ones made.
		if !e.keys && n >= 0 && e.pos.top > 0 {
			e.regionLines(seq[len(seq)-1] == 'L', min(count, maxRows))
		} else if !e.keys && n >= 0 {
			e.lines(seq[len(seq)-1] == 'L', min(count, maxRows))
		}
	case 'S', 'T':
		// SU, SD: the rows scrolled up, down, the cursor kept on the
		// screen: against the rows, the cursor moves down, up.
		if !e.keys && n >= 0 {
			col, k := e.cur, min(count, maxRows)
			if seq[len(seq)-1] == 'T' {
				k = -k
			}
			if e.pos.top > 0 {
				// The rows between the margins scroll.
				if !e.pos.exact() {
					e.lost = true
				}
				e.region(k, e.at)
				break
			}
			e.shiftWritten(k, true)
			e.moveRows(k, e.at)
			e.to(col)
		}
	case 'r':
		// DECSTBM: the scroll margins set (rows then scroll between
		// them, which the rows kept follow only away from them: down,
		// up, vertical) or, for the whole screen, reset; the cursor
		// goes home.
		if !e.keys && (len(params) == 0 || params[0] != '?') {
			e.margins(params)
		}
	case 'J':
		// ED: erased below the cursor (0), above it (1), all (2, 3):
		// text rendered before a rebase no longer there.
		if !e.keys {
			switch n {
			case 2, 3:
				e.keepClear(false)
			case 0:
				e.keepErase(e.cur, wideCol, false, true)
			case 1:
				e.keepErase(0, e.cur+1, true, false)
			}
		}
		if !e.keys && e.shi != 0 {
			switch {
			case n == 2 || n == 3:
				e.slo, e.shi = 0, 0
			case n == 0 && e.pos.exact():
				e.shi = min(e.shi, e.pos.lo)
			case n == 1 && e.pos.exact():
				e.slo = max(e.slo, e.pos.lo)
			}
			if e.shi < e.slo {
				e.slo, e.shi = 0, 0
			}
		}
	case 'g':
		// TBC: tab stops cleared; tabs are no longer every 8 columns.
		if !e.keys {
			e.lost = true
		}
	case 'b':
		// REP: the character before the cursor written count times more
		// (bounded as blanks are: to).
		if !e.keys && e.cur > 0 && e.cur <= len(e.line) && e.line[e.cur-1].n > 0 {
			c := e.line[e.cur-1]
			e.r.hidden = true
			for range min(count, e.pad, maxColumn) {
				e.put(c)
				e.pad--
			}
		}
	case 'h', 'l':
		// DECSET, DECRST 47, 1047, 1049: the alternate screen.
		if !e.keys && len(params) > 1 && params[0] == '?' {
			for _, m := range strings.Split(string(params[1:]), ";") {
				if m == "47" || m == "1047" || m == "1049" {
					e.alternate(seq[len(seq)-1] == 'h', m == "1049")
				}
				if m == "7" {
					// DECAWM: reset, characters past the last
					// column overwrite it rather than wrap.
					e.pos.nowrap = seq[len(seq)-1] == 'l'
				}
				if m == "6" {
					// DECOM: rows named from the top margin; the
					// cursor goes home.
					e.pos.origin = seq[len(seq)-1] == 'h'
					e.toRow(1)
					e.to(0)
				}
			}
			break
		}
		// SM, RM: mode 4 is insert mode (IRM), among others set at once.
		if !e.keys && len(params) > 0 && params[0] != '?' && slices.Contains(strings.Split(string(params), ";"), "4") {
			e.insert = seq[len(seq)-1] == 'h'
		}
	case 's':
		if e.keys {
			e.saved = e.cur
		} else {
			e.save()
		}
	case 'u':
		if e.keys {
			e.to(e.saved)
		} else {
			e.restore()
		}
	case 'F':
		if e.keys { // the end key
			e.cur = len(e.line)
			break
		}
		// CPL: the start of the row count rows up.
		if n >= 0 {
			e.vertical(-count)
			e.cur = 0
		}
	case '@':
		// Blanks between characters that were side by side: the raw
		// bytes are judged too. A line holds at most maxLine cells: an
		// insertion adds no more than that, and none past it (blanks
		// hold nothing; a stream of CSI 65536 @ must not grow the line
		// without bound).
		e.r.hidden = true
		if !e.keys && n >= 0 {
			e.keepShiftCols(min(count, wideCol)) // text kept past the line's end moves too
		}
		count = min(count, maxLine-len(e.line))
		if count <= 0 || e.cur == len(e.line) {
			return // past the line's end a blank changes nothing read
		}
		if !e.keys && e.line[e.cur].n == -1 {
			e.splitWide(e.cur) // blanks inserted inside a wide character
		}
		e.line = slices.Insert(e.line, e.cur, slices.Repeat([]cell{{lo: int32(at)}}, count)...)
	case 'P':
		if !e.keys && e.mayMeetWritten() {
			e.lost = true // what it moves left is not known
		}
		if !e.keys {
			e.keepShiftCols(-count)
		}
		e.remove(e.cur, e.cur+count)
	case 'K':
		if n < 0 {
			// EL with more parameters is EL of the first (a terminal
			// reads no other: CSI 1;0 K erases left of the cursor,
			// not right of it). DECSEL (CSI ? K) erases only what
			// DECSCA did not protect: what is left is not known, so
			// none of it counts as erased (it may join what follows).
			first, _, _ := strings.Cut(string(params), ";")
			n = 0
			for _, c := range []byte(first) {
				if c < '0' || c > '9' {
					n = -1
					break
				}
				n = min(n*10+int(c-'0'), 1<<16)
			}
			if n < 0 {
				e.crEnd(false)
				break
			}
		}
		if n == 2 || n <= 0 && e.cur == 0 {
			// The cursor's row erased whole: whichever row of a
			// wrapped line the CR went back to, nothing is left on it.
			e.crLine = false
		}
		e.crEnd(false)
		if !e.keys {
			switch n {
			case 0:
				e.keepErase(e.cur, wideCol, false, false)
			case 1:
				e.keepErase(0, e.cur+1, false, false)
			case 2:
				e.keepErase(0, wideCol, false, false)
			}
		}
		switch n {
		case 0, -1:
			e.remove(e.cur, len(e.line))
		case 1:
			e.splitWide(min(e.cur, len(e.line)) - 1)
			for k := 0; k < e.cur && k < len(e.line); k++ {
				if e.line[k].n != 0 {
					e.r.hidden = true
				}
				e.line[k] = cell{lo: int32(at)}
			}
		case 2:
			e.remove(0, len(e.line))
			e.cur = 0
		}
	case '~':
		switch n {
		case 1, 7:
			e.cur = 0
		case 4, 8:
			e.cur = len(e.line)
		case 3:
			e.remove(e.cur, e.cur+1)
		}
	}
}

// escapeLen is the length of the escape sequence b starts with (b[0] is
// ESC), and whether it is complete: CSI (ESC [ parameters intermediates
// final), OSC, DCS, SOS, PM and APC (ended by BEL or ESC \), SS3 (ESC O
// and one character), and the other forms (ESC, intermediates, a final
// character).
func escapeLen(b []byte) (int, bool) {
	if len(b) < 2 {
		return 0, false
	}
	switch b[1] {
	case '[':
		for i := 2; i < len(b); i++ {
			if b[i] >= 0x40 && b[i] <= 0x7e {
				return i + 1, true
			}
			if b[i] < 0x20 || b[i] > 0x7e {
				return i, true // malformed: the sequence ends before it
			}
		}
		return 0, false
	case ']', 'P', 'X', '^', '_':
		for i := 2; i < len(b); i++ {
			if b[i] == 0x07 {
				return i + 1, true
			}
			if b[i] == 0x1b {
				if i+1 >= len(b) {
					return 0, false
				}
				if b[i+1] == '\\' {
					return i + 2, true
				}
			}
		}
		return 0, false
	case 'O': // SS3: one character follows (the arrow keys in application mode)
		if len(b) < 3 {
			return 0, false
		}
		return 3, true
	}
	i := 1
	for i < len(b) && b[i] >= 0x20 && b[i] <= 0x2f {
		i++
	}
	if i >= len(b) {
		return 0, false
	}
	return i + 1, true
}
