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
