package detect

import (
	"math/rand/v2"
	"testing"
	"unicode"
	"unicode/utf8"
)

// hasRunByRune is hasRun as first written, every byte beyond ASCII
// decoded: hasRun's shortcut for bytes no rune starts with must agree.
func hasRunByRune(d []byte) bool {
	run := 0
	for k := 0; k < len(d); {
		c := d[k]
		if c >= utf8.RuneSelf {
			r, n := utf8.DecodeRune(d[k:])
			if r == utf8.RuneError && n <= 1 || unicode.IsControl(r) {
				run, k = 0, k+1
				continue
			}
			k += n
		} else {
			k++
			if c < 0x20 && c != '\t' && c != '\n' && c != '\r' || c == 0x7f {
				run = 0
				continue
			}
		}
		if run++; run >= minRun {
			return true
		}
	}
	return false
}

func TestHasRunAgrees(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	pick := []byte{'a', ' ', '\n', 0x01, 0x7f, 0x80, 0xbf, 0xc0, 0xc1, 0xc2, 0xc3, 0xa9, 0xe2, 0x82, 0xac, 0xf0, 0x9f, 0xf4, 0xf5, 0xff}
	d := make([]byte, 40)
	for i := range 200000 {
		for k := range d {
			if i%2 == 0 {
				d[k] = byte(r.UintN(256))
			} else {
				d[k] = pick[r.IntN(len(pick))]
			}
		}
		n := r.IntN(len(d) + 1)
		if got, want := hasRun(d[:n]), hasRunByRune(d[:n]); got != want {
			t.Fatalf("hasRun(%q) = %v, want %v", d[:n], got, want)
		}
	}
}
