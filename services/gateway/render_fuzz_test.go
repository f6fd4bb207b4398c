package gateway

import "testing"

// The terminal model never panics, and every rendered byte names a raw
// byte it came from, whatever moves the bytes make, on a screen of any
// size (0: not known).
func FuzzRender(f *testing.F) {
	for _, s := range []string{
		"\x1b[5;1H4111 1111\r\nok\x1b[5;11H1111 1111\x1b[7;1H\r\n",
		"4111 1111\r\nok\x1bM\x1b[11G1111 1111\r\n",
		"a\r\nb\x1b[2L\x1b[3M\x1b[2S\x1b[T\x1b[3F\x1b[2E\x1b[I\x1b[Z\x1b[4X",
		"x\x1b7\r\n\x1b[?1049h\x1b[9;9Hy\x1b[?1049l\x1b8z\x1b[?47h\r\n\x1b[?47l",
		"\x1bD\x1bE\x1bM\x0b\x0c\x1b[3e\x1b[2a\x1b[s\x1b[u",
	} {
		f.Add([]byte(s), false, uint8(0), uint8(0))
		f.Add([]byte(s), false, uint8(10), uint8(80))
	}
	for _, s := range []string{
		"\x1b[10;1HXXXX851889592158\r\n\x1b[9;1H4802\r\n",
		"\x1b[9;1HXXXX851889592158\x1b[5E\x1b[F4802\x1b7\r\n\x1b8\x1b[99;99H",
		"\x1b[1;13HxxxxxxxxXXXX851889592158\r4802\t\t\tz\b\b\x1b[99C\x1b[?7l",
		"\x1b[?1049h\x1b[3;3Hab\r\n\r\n\x1b7\x1b[?1049l\x1b8\x1b[2L\x1b[S",
	} {
		f.Add([]byte(s), false, uint8(4), uint8(10))
		f.Add([]byte(s), true, uint8(1), uint8(1))
	}
	f.Fuzz(func(t *testing.T, raw []byte, final bool, rows, cols uint8) {
		r := renderEditedSized(raw, final, false, false, termSize{rows: int(rows), cols: int(cols)})
		if !r.text {
			return
		}
		if len(r.lo) != len(r.b) {
			t.Fatalf("%d bytes, %d offsets", len(r.b), len(r.lo))
		}
		for _, lo := range r.lo {
			if lo < 0 || int(lo) >= len(raw) {
				t.Fatalf("offset %d of %d bytes", lo, len(raw))
			}
		}
	})
}

// The same from a cursor state carried from earlier bytes (its row an
// interval, a column, the alternate screen, a cursor saved, margins,
// autowrap): rendered bytes name raw bytes, and the state the bytes
// leave is one a screen of that size can hold.
func FuzzRenderCarried(f *testing.F) {
	for _, s := range []string{
		"XXXX851889592158\r\n\x1b[5;1H4802\r\n",
		"\x1b[BXXXX851889592158\x1b[5A\x1b[B\r4802",
		"851889592158\x1b[27G4802\x1b8\x1b[?1049l\x1b[2J\x1b[1;5r\r\n\x1bM\x1b[S\x1b[?6h\x1b[3;1H",
		"\x1b[?7lx4802 8518 8959 215yz8\x1b[?7h\x1bc\x1b[L\x1b[M\x1b[J\x1b[1J\x1b[P",
	} {
		f.Add([]byte(s), uint8(24), uint8(80), uint8(3), uint8(9), uint8(30), uint8(0))
		f.Add([]byte(s), uint8(0), uint8(0), uint8(1), uint8(255), uint8(5), uint8(0xff))
	}
	f.Fuzz(func(t *testing.T, raw []byte, rows, cols, lo, hi, col, flags uint8) {
		sz := termSize{rows: int(rows), cols: int(cols)}
		at := cursorState{set: true, lo: int(min(lo, hi)), hi: int(max(lo, hi)), col: int(col), alt: flags&1 != 0, nowrap: flags&2 != 0, origin: flags&4 != 0}
		at.saved[0] = savedCursor{lo: int(lo), hi: int(lo), col: int(col) / 2, ok: flags&8 != 0}
		at.saved[1] = savedCursor{lo: int(hi), hi: int(hi), ok: flags&16 != 0}
		if flags&32 != 0 {
			at.top, at.bot = 2, int(rows)-1
		}
		r := renderEditedAt(raw, false, false, flags&64 != 0, sz, at)
		if r.text {
			if len(r.lo) != len(r.b) {
				t.Fatalf("%d bytes, %d offsets", len(r.b), len(r.lo))
			}
			for _, o := range r.lo {
				if o < 0 || int(o) >= len(raw) {
					t.Fatalf("offset %d of %d bytes", o, len(raw))
				}
			}
		}
		bottom := noBottom
		if rows > 0 {
			bottom = int(rows)
		}
		e := r.end
		if e.lo < 1 || e.lo > e.hi || e.hi > bottom || e.col < 0 || cols > 0 && e.col > int(cols) {
			t.Fatalf("state %+v on %dx%d", e, cols, rows)
		}
		if next := renderEditedAt(raw, true, false, false, sz, e); next.text && len(next.lo) != len(next.b) {
			t.Fatalf("from the end state: %d bytes, %d offsets", len(next.b), len(next.lo))
		}
	})
}
