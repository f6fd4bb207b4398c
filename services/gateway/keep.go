package gateway

import (
	"cmp"
	"slices"
)

// The terminal model renders each chunk with the held tail before it,
// from the cursor the bytes recorded before left (cursor.go), but not
// with what those bytes left on the screen: text recorded in an earlier
// chunk, out of the held tail, may still be shown, and characters a
// later chunk writes beside it (a curses repaint of part of a row, a
// move back to an old row) would be judged without it. A stream keeps,
// for the main screen and the alternate one, which rows hold such text
// and in which columns (keptRow): bounded, a row or an interval of rows
// each, never a grid of cells. A chunk whose rendering leaves a
// character it writes beside such text (within MaxHeld columns, the
// most a value spans) is not judged as text (lost: recorded digest-only,
// as a move the model cannot place): the rendering does not hold what
// the terminal shows beside it. A row erased (EL, ED, ECH over it), its
// text overwritten whole, or scrolled off the screen holds none again.

// keptRow is text recorded before the rendering, on screen rows [lo,
// hi] (an interval where the row is not known) in columns [a, b).
// written is text of the rendering itself (kept for the next one);
// touched is set once a character of the rendering's own bytes (fresh)
// is written within MaxHeld columns of it: from is the first raw offset
// of those, right the rightmost column.
type keptRow struct {
	lo, hi  int
	a, b    int
	written bool
	touched bool
	from    int32
	right   int
}

// keptScreens is the rows kept of the main screen and the alternate one.
type keptScreens [2][]keptRow

// maxKept bounds the rows a screen keeps apart; past it they are merged
// into one interval of rows (any character written on it then makes
// the rendering lost until the rows are erased or scrolled off).
const maxKept = 512

// keepWindow is how far from text kept a character written may join it
// in a value: more than any value the detectors find spans.
const keepWindow = MaxHeld

// wideCol is a column past any screen's: the row's text reaches its end.
const wideCol = 1 << 22

func (k *keptScreens) clone() *keptScreens {
	c := new(keptScreens)
	for i := range k {
		c[i] = slices.Clone(k[i])
	}
	return c
}

// widen is the rows kept after bytes the model did not follow (a resize,
// a bulk run, a rendering lost or binary): whatever was on a screen may
// be on any row, in any column.
func (k *keptScreens) widen() {
	for i := range k {
		if len(k[i]) > 0 {
			k[i] = append(k[i][:0], keptRow{lo: 1, hi: noBottom, a: 0, b: wideCol})
		}
	}
}

// settle makes the rows the rendering wrote kept rows for the next, one
// entry a row interval.
func (k *keptScreens) settle() {
	for s := range k {
		rows := k[s]
		for i := range rows {
			rows[i].written, rows[i].touched, rows[i].from, rows[i].right = false, false, 0, 0
		}
		slices.SortFunc(rows, func(x, y keptRow) int { return cmp.Or(cmp.Compare(x.lo, y.lo), cmp.Compare(x.hi, y.hi)) })
		out := rows[:0]
		for _, r := range rows {
			if n := len(out); n > 0 && out[n-1].lo == r.lo && out[n-1].hi == r.hi {
				out[n-1].a, out[n-1].b = min(out[n-1].a, r.a), max(out[n-1].b, r.b)
				continue
			}
			out = append(out, r)
		}
		k[s] = out
	}
}

// keepScreen is the index of the screen shown (1: the alternate one).
func (e *lineEditor) keepScreen() int {
	if e.main != nil {
		return 1
	}
	return 0
}

// keepPut follows a character written at the cursor, from raw offset lo.
func (e *lineEditor) keepPut(lo int32) {
	if e.kept == nil {
		return
	}
	s := e.keepScreen()
	rows := e.kept[s]
	p, x := e.pos, e.cur
	exact := p.exact()
	// Past maxColumn, or after a move the line could not follow, the
	// column is not the terminal's: the whole row counts.
	col := !e.colLost && x < maxColumn
	// The entries on the cursor's rows: those of the character before
	// when nothing changed since (most characters follow one another on
	// a row), else found again.
	c := &e.keepAt
	if !c.ok || c.ver != e.keepVer || c.s != s || c.lo != p.lo || c.hi != p.hi {
		c.idx = c.idx[:0]
		for i := range rows {
			if rows[i].hi >= p.lo && rows[i].lo <= p.hi {
				c.idx = append(c.idx, i)
			}
		}
		c.ok, c.ver, c.s, c.lo, c.hi = true, e.keepVer, s, p.lo, p.hi
	}
	found, changed := false, false
	for k := len(c.idx) - 1; k >= 0; k-- { // backwards: a row deleted moves none still to come
		i := c.idx[k]
		r := &rows[i]
		if r.written {
			if r.lo == p.lo && r.hi == p.hi {
				r.a, r.b = min(r.a, x), max(r.b, x+1)
				if !col {
					r.a, r.b = 0, wideCol
				}
				if e.insert && x < r.b {
					r.b = min(r.b+1, wideCol)
				}
				found = true
			} else if e.insert {
				r.b = wideCol // moved right on a row that may be its
			}
			continue
		}
		sameRow := exact && r.lo == r.hi && r.lo == p.lo
		if lo >= e.fresh && (!sameRow || !col || x > r.a-keepWindow && x < r.b+keepWindow) {
			if !sameRow {
				e.keepHit = true // on a row that may hold text kept
			}
			if !r.touched {
				r.touched, r.from, r.right = true, lo, x
			}
			r.from, r.right = min(r.from, lo), max(r.right, x)
		}
		switch {
		case !sameRow || !col:
			if e.insert {
				r.b = wideCol
			}
		case e.insert:
			if x < r.b {
				r.b = min(r.b+1, wideCol)
			}
			if x <= r.a {
				r.a++
			}
		case x == r.a:
			r.a++ // overwritten from its start
		case x == r.b-1:
			r.b--
		}
		if r.a >= r.b {
			rows = slices.Delete(rows, i, i+1)
			changed = true
		}
	}
	if !found {
		w := keptRow{lo: p.lo, hi: p.hi, a: x, b: x + 1, written: true}
		if !col {
			w.a, w.b = 0, wideCol
		}
		rows = append(rows, w)
		if len(rows) > maxKept {
			rows = mergeKept(rows)
		}
		changed = true
	}
	e.kept[s] = rows
	if changed {
		e.keepVer++
	}
}

// keepCache is where the entries on the cursor's rows were (keepPut).
type keepCache struct {
	ok        bool
	ver       int
	s, lo, hi int
	idx       []int
}

// mergeKept is rows merged into one interval, kept (a character written
// on it counts as written beside it) and written.
func mergeKept(rows []keptRow) []keptRow {
	m := keptRow{lo: noBottom, hi: 0, a: wideCol, b: 0}
	touched := false
	for _, r := range rows {
		m.lo, m.hi, m.a, m.b = min(m.lo, r.lo), max(m.hi, r.hi), min(m.a, r.a), max(m.b, r.b)
		touched = touched || r.touched
	}
	w := m
	w.written = true
	m.touched = touched
	return append(rows[:0], m, w)
}

// keepShift follows the rows of the screen shown scrolling up n (down
// when n < 0) between rows top and bot: by n when sure, else by 0 to n.
// Rows that leave [top, bot] leave the screen.
func (e *lineEditor) keepShift(n int, sure bool, top, bot int) {
	if e.kept == nil || n == 0 {
		return
	}
	e.keepVer++
	s := e.keepScreen()
	rows := e.kept[s]
	for i := 0; i < len(rows); i++ {
		r := &rows[i]
		if r.hi < top || r.lo > bot {
			continue
		}
		if r.lo < top || r.hi > bot {
			// Across the region's edge: within it the rows may be anywhere.
			r.lo, r.hi = min(r.lo, top), max(r.hi, bot)
			continue
		}
		switch {
		case sure:
			r.lo, r.hi = r.lo-n, r.hi-n
		case n > 0:
			r.lo -= n
		default:
			r.hi -= n
		}
		r.lo, r.hi = max(r.lo, top), min(r.hi, bot)
		if r.hi < r.lo {
			rows = slices.Delete(rows, i, i+1)
			i--
		}
	}
	e.kept[s] = rows
}

// keepRegion follows rows top to bot scrolled up n (down when n < 0):
// exactly when the cursor's row is known, else the rows between them may
// be anywhere between them.
func (e *lineEditor) keepRegion(n, top, bot int) {
	if e.kept == nil {
		return
	}
	e.keepVer++
	if e.pos.exact() {
		e.keepShift(n, true, top, bot)
		return
	}
	s := e.keepScreen()
	for i := range e.kept[s] {
		if r := &e.kept[s][i]; r.hi >= top && r.lo <= bot {
			r.lo, r.hi = min(r.lo, top), max(r.hi, bot)
		}
	}
}

// keepErase follows columns [a, b) of the cursor's row erased (or, with
// b wideCol and a 0, the whole row); rows below it too when below, above
// it when above.
func (e *lineEditor) keepErase(a, b int, above, below bool) {
	if e.kept == nil || !e.pos.exact() {
		return
	}
	e.keepVer++
	s := e.keepScreen()
	rows := e.kept[s]
	y := e.pos.lo
	for i := 0; i < len(rows); i++ {
		r := &rows[i]
		switch {
		case below && r.lo > y, above && r.hi < y:
			r.a, r.b = 0, 0
		case r.lo == y && r.hi == y:
			switch {
			case a <= r.a && b >= r.b:
				r.a, r.b = 0, 0
			case a <= r.a && b > r.a:
				r.a = b
			case a < r.b && b >= r.b:
				r.b = a
			}
		}
		if r.a >= r.b {
			rows = slices.Delete(rows, i, i+1)
			i--
		}
	}
	e.kept[s] = rows
}

// keepClear follows the screen shown erased whole (ED 2, 3); all when
// all (RIS).
func (e *lineEditor) keepClear(all bool) {
	if e.kept == nil {
		return
	}
	e.keepVer++
	if all {
		e.kept[0], e.kept[1] = e.kept[0][:0], e.kept[1][:0]
		return
	}
	e.kept[e.keepScreen()] = e.kept[e.keepScreen()][:0]
}

// keepShiftCols follows the characters from the cursor's column on
// moved right n (left when n < 0: DCH), as ICH and DCH move them.
func (e *lineEditor) keepShiftCols(n int) {
	if e.kept == nil {
		return
	}
	e.keepVer++
	s := e.keepScreen()
	rows := e.kept[s]
	x, p := e.cur, e.pos
	for i := 0; i < len(rows); i++ {
		r := &rows[i]
		if r.hi < p.lo || r.lo > p.hi {
			continue
		}
		if !p.exact() || r.lo != r.hi {
			r.a, r.b = 0, wideCol // where on its row is not known
			continue
		}
		if x >= r.b {
			continue
		}
		if n > 0 {
			r.b = min(r.b+n, wideCol)
			if x <= r.a {
				r.a = min(r.a+n, wideCol)
			}
		} else {
			r.b = max(r.b+n, x)
			if x < r.a {
				r.a = max(r.a+n, x)
			}
		}
		if r.a >= r.b {
			rows = slices.Delete(rows, i, i+1)
			i--
		}
	}
	e.kept[s] = rows
}

// keepEnd ends the rendering's following of the rows kept: it is lost
// when a character of its own bytes was written where a row kept may
// be, or beside text kept that is still there (not all overwritten or
// erased). When the rendering was lost or binary for another reason,
// its columns and rows may not be the terminal's: the rows kept may then
// be anywhere.
func (e *lineEditor) keepEnd() {
	if e.kept == nil {
		return
	}
	if e.lost {
		e.kept.widen()
		return
	}
	hit := e.keepHit
	hold := int32(len(e.raw))
	for s, rows := range e.kept {
		for _, r := range rows {
			if !r.touched {
				continue
			}
			if e.overwriting(s, r) {
				hold = min(hold, r.from)
				continue
			}
			hit = true
		}
	}
	switch {
	case hit:
		e.lost = true
		e.r.keepLost = true
	case hold < int32(len(e.raw)):
		e.r.hold, e.r.holdAt = true, int(hold)
	}
}

// overwriting reports whether the rendering ends as it overwrites kept
// text r from its left, the cursor at the first of its characters left
// (a row rewritten in two writes, the first ending within it): the
// characters written beside it are then held back (rendering.hold), and
// judged again, with the next bytes, against what is left of it. The
// last flush holds nothing back: it is lost.
func (e *lineEditor) overwriting(s int, r keptRow) bool {
	return !e.final && s == e.keepScreen() && e.pos.exact() && r.lo == r.hi && r.lo == e.pos.lo &&
		!e.colLost && !e.insert && e.cur == r.a && r.right < r.a
}

// keepPlain follows the rows kept past plain text (plainText) written
// from the stream's cursor on a screen of size sz, as plainAfter follows
// the cursor: each run of characters on a row overwrites what was kept
// there (in insert mode, moves it right) and is kept itself. Called with
// st.mu held, before the cursor moves.
func (st *Stream) keepPlain(raw []byte, sz termSize, insert bool) {
	if st.name == "stdin" || st.screen == nil {
		return
	}
	c := st.cursor.start(sz)
	e := lineEditor{kept: &st.kept, height: sz.rows, width: sz.cols, pos: c, insert: insert}
	if c.alt {
		e.main = &screen{}
	}
	col := c.col
	x0 := col
	seg := func() {
		if col <= x0 {
			return
		}
		e.cur = x0
		if insert {
			e.keepShiftCols(col - x0)
		} else {
			e.keepErase(x0, col, false, false)
		}
		s := e.keepScreen()
		w := keptRow{lo: e.pos.lo, hi: e.pos.hi, a: x0, b: col, written: true}
		if x0 >= maxColumn || c.col > maxColumn {
			w.a, w.b = 0, wideCol
		}
		st.kept[s] = append(st.kept[s], w)
		if len(st.kept[s]) > maxKept {
			st.kept[s] = mergeKept(st.kept[s])
		}
	}
	feed := func() {
		seg()
		e.keepFeed()
		col, x0 = 0, 0
	}
	for _, b := range raw {
		switch {
		case b == '\n':
			feed()
		case b == '\t':
			seg()
			col = min((col/8+1)*8, maxColumn+1)
			if sz.cols > 0 {
				col = min(col, sz.cols-1)
			}
			x0 = col
		default:
			if sz.cols > 0 && col >= sz.cols {
				if e.pos.nowrap {
					seg()
					col = sz.cols - 1
					x0 = col
				} else {
					feed()
				}
			}
			col = min(col+1, wideCol)
		}
	}
	seg()
	st.kept.settle()
}

// keepFeed follows the rows kept past a line feed from the cursor's row
// (down, as the cursor's rows and the rows kept follow it), the
// cursor's row then moved as feedRows does.
func (e *lineEditor) keepFeed() {
	p := &e.pos
	switch {
	case p.top > 0 && p.exact() && p.lo == p.bot:
		e.keepRegion(1, p.top, p.bot)
	case p.top > 0 && p.exact() && p.lo == e.height:
	case p.top > 0:
		if !p.exact() {
			e.keepShift(1, false, 1, e.bottom())
		}
	case e.height == 0:
		e.keepShift(1, false, 1, e.bottom())
	case p.hi == e.height:
		e.keepShift(1, p.lo == e.height, 1, e.bottom())
	}
	p.feedRows(e.height)
}

// adoptKept takes the rows kept a rendering of the bytes recorded left
// (nil: not followed) as the stream's.
//
// Text recorded digest-only (written false) is not kept: a value it
// joins is not in clear.
func (st *Stream) adoptKept(k *keptScreens, written bool) {
	if k == nil || st.screen == nil {
		return
	}
	st.kept = *k
	if !written {
		for s := range st.kept {
			st.kept[s] = slices.DeleteFunc(st.kept[s], func(r keptRow) bool { return r.written })
		}
	}
	st.kept.settle()
}
