package gateway_test

import (
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/auditledger/auditledger/events"
	"github.com/auditledger/auditledger/services/gateway"
)

// A card number's halves written apart that a terminal of the screen's
// size shows side by side are judged as the terminal shows them: the
// bottom row stops moves down and scrolls the rows under line feeds, the
// last column stops moves right and wraps what is written past it.
// Each input puts 4802851889592158 on one row of the screen given (rows
// x cols), its parts apart in the bytes and out of order.
func TestStreamFollowsScreenSize(t *testing.T) {
	cases := []struct {
		name       string
		rows, cols int
		in         string
	}{
		// LF at the bottom row scrolls: row 9 is then the one the
		// digits are on.
		{"CUP after a scroll at the bottom", 10, 80, "\x1b[10;1HXXXX851889592158\r\n\x1b[9;1H4802\r\n"},
		{"VPA after a scroll at the bottom", 10, 80, "\x1b[10;1HXXXX851889592158\r\n\x1b[9d\r4802\r\n"},
		{"CUP after IND at the bottom", 10, 80, "\x1b[10;1HXXXX851889592158\x1bD\x1b[9;1H4802\r\n"},
		{"CUP after NEL at the bottom", 10, 80, "\x1b[10;1HXXXX851889592158\x1bE\x1b[9;1H4802\r\n"},
		{"CUP after a scroll of 5 rows", 5, 80, "\x1b[3;1HXXXX851889592158\r\n\r\n\r\n\x1b[2;1H4802\r\n"},
		// CUD and CNL stop at the bottom row: up one is then the row
		// the digits are on; so does a row named past it.
		{"CUD stops at the bottom", 10, 80, "\x1b[9;1HXXXX851889592158\x1b[3B\x1b[A\r4802\r\n"},
		{"CNL stops at the bottom", 10, 80, "\x1b[9;1HXXXX851889592158\x1b[5E\x1b[F4802\r\n"},
		{"CUP past the bottom stops there", 10, 80, "\x1b[10;1HXXXX851889592158\x1b[A\x1b[99;1H4802\r\n"},
		// DECRC restores the screen row, whatever scrolled since.
		{"row restored after a scroll", 10, 80, "\x1b[10;1H\x1b7\r\nXXXX851889592158\x1b84802\r\n"},
		// The last column stops moves right and wraps characters past it.
		{"CUP past the last column", 24, 20, "\x1b[1;5H480285188959215X\x1b[1;99H8\r\n"},
		{"CUF past the last column", 24, 20, "\x1b[1;5H480285188959215X\r\x1b[99C8\r\n"},
		{"wrapped to the next row", 24, 20, "\x1b[1;13HxxxxxxxxXXXX851889592158\x1b[2;1H4802\r\n"},
		{"wrapped, then CR", 24, 20, "\x1b[1;13HxxxxxxxxXXXX851889592158\r4802\r\n"},
		{"wrapped after tabs", 24, 20, "\x1b[1;1H\t\tyyyyXXXX851889592158\r4802\r\n"},
		{"backspace from a pending wrap", 24, 20, "\x1b[1;4H480285188959215yz\b8\r\n"},
		// Autowrap reset: a character past the last column overwrites it.
		{"autowrap off", 24, 20, "\x1b[?7l\x1b[1;1Hx4802 8518 8959 215yz8\r\n"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			b := startBus(t, true)
			g := newGateway(t, b.em, nil)
			s := g.Session(events.Target{Kind: "ssh"})
			st := s.Stream("stdout", gateway.StreamConfig{FlushAfter: time.Hour, Screen: gateway.NewScreen(c.cols, c.rows)})
			st.Write([]byte(c.in))
			st.Close()
			got, ps := recorded(t, b, 1)
			if ps[0]["binary"] == true {
				t.Fatalf("recorded as binary: %v", ps[0])
			}
			if strings.Contains(string(got), "851889592158") || strings.Contains(digitsOnly(got), "4802851889592158") || ps[0]["redacted"] == nil {
				t.Fatalf("recorded %q (%v)", got, ps[0])
			}
		})
	}
}

// Where the model cannot know where a move lands — no screen size, or
// the size changed while the bytes before the move were buffered — the
// chunk is recorded as its digest only, never as text a terminal might
// show differently.
func TestStreamScreenUnknownFailsClosed(t *testing.T) {
	const split = "\x1b[10;1H4111 1111\r\n\x1b[9;11H1111 1111\r\n"
	cases := []struct {
		name   string
		screen func() *gateway.Screen
		in     []string // written in turn, the screen resized to 80x10 between
	}{
		{"no size: CUP after a line feed", func() *gateway.Screen { return nil }, []string{split}},
		{"no size: size 0", func() *gateway.Screen { return gateway.NewScreen(0, 0) }, []string{split}},
		{"no size: CUD then CUU", func() *gateway.Screen { return nil }, []string{"\x1b[9;1H4111 1111\x1b[3B\x1b[A\x1b[11G1111 1111\r\n"}},
		{"no size: row restored", func() *gateway.Screen { return nil }, []string{"\x1b[10;1H\x1b7\r\n4111 1111\x1b8\x1b[11G1111 1111\r\n"}},
		{"resized mid-line", func() *gateway.Screen { return gateway.NewScreen(80, 40) }, []string{"\x1b[10;1H4111 1111\r\n", "\x1b[9;11H1111 1111\r\n"}},
		{"cursor restored, saved before", func() *gateway.Screen { return gateway.NewScreen(80, 24) }, []string{"\r\nXXXX851889592158\r\n\x1b84802\r\n"}},
		{"cursor restored (CSI u), saved before", func() *gateway.Screen { return gateway.NewScreen(80, 24) }, []string{"\r\nXXXX851889592158\r\n\x1b[u4802\r\n"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			b := startBus(t, true)
			g := newGateway(t, b.em, nil)
			s := g.Session(events.Target{Kind: "ssh"})
			sc := c.screen()
			st := s.Stream("stdout", gateway.StreamConfig{FlushAfter: time.Hour, Screen: sc})
			for i, in := range c.in {
				if i > 0 {
					sc.Resize(80, 10)
				}
				st.Write([]byte(in))
			}
			st.Close()
			got, ps := recorded(t, b, 1)
			if len(got) != 0 || ps[0]["binary"] != true {
				t.Fatalf("recorded %q (%v), want binary", got, ps[0])
			}
		})
	}
}

// Once a resize's bytes are recorded, the new size is followed again.
func TestStreamScreenResizedThenFollowed(t *testing.T) {
	b := startBus(t, true)
	g := newGateway(t, b.em, nil)
	s := g.Session(events.Target{Kind: "ssh"})
	sc := gateway.NewScreen(80, 40)
	st := s.Stream("stdout", gateway.StreamConfig{FlushAfter: time.Hour, Screen: sc})
	sc.Resize(80, 10)
	st.Write([]byte("\x1b[10;1H4111 1111\r\n\x1b[9;11H1111 1111\r\n"))
	st.Close()
	got, ps := recorded(t, b, 1)
	if ps[0]["binary"] == true || ps[0]["redacted"] == nil || strings.Contains(digitsOnly(got), "4111111111111111") {
		t.Fatalf("recorded %q (%v)", got, ps[0])
	}
}

// Window sizes whose numbers, read in order and joined, make a card
// number are not all recorded: the one that would complete it is
// withheld, and its numbers are not read with the next; sizes that make
// none are recorded.
func TestWindowSizesWithholdAValue(t *testing.T) {
	type size struct {
		cols, rows uint32
		want       bool
	}
	for name, sizes := range map[string][]size{
		// 46 62 42 48 46 48 18 62: 4662424846481862
		"one number a part": {{80, 24, true}, {46, 62, true}, {42, 48, true}, {46, 48, true}, {18, 62, false}, {100, 30, true}},
		"two sizes":         {{4662, 4248, true}, {4648, 1862, false}},
		"one size":          {{46624248, 46481862, false}},
	} {
		var w gateway.WindowSizes
		for i, c := range sizes {
			if got := w.Record(c.cols, c.rows); got != c.want {
				t.Errorf("%s: size %d, %dx%d: recorded %v, want %v", name, i, c.cols, c.rows, got, c.want)
			}
		}
	}
}

// What the rule costs: of the sizes a window dragged at random sends
// (an edge moved by up to 3 columns or 2 rows each time), few are
// withheld (11.8 % of these; a size's numbers end a run that makes a
// card number by chance).
func TestWindowSizesDragCost(t *testing.T) {
	var w gateway.WindowSizes
	r := rand.New(rand.NewPCG(1, 2))
	cols, rows := uint32(80), uint32(24)
	w.Record(cols, rows)
	const n = 20000
	withheld := 0
	for range n {
		cols = min(max(cols+uint32(r.IntN(7))-3, 20), 300)
		rows = min(max(rows+uint32(r.IntN(5))-2, 5), 100)
		if !w.Record(cols, rows) {
			withheld++
		}
	}
	t.Logf("%d of %d sizes withheld (%.1f %%)", withheld, n, 100*float64(withheld)/n)
	if withheld > n/5 {
		t.Errorf("%d of %d sizes withheld", withheld, n)
	}
}

// A character a terminal shows in two columns (CJK, most emoji) takes
// two columns in the terminal model too: a column named after such
// characters is the one the terminal writes at, so a card number whose
// first part is written over the wide characters, at a column named or
// moved to, next to its second part, reads whole; a half of one erased
// or overwritten blanks the other, as a terminal shows no half of it.
func TestStreamWideCharacters(t *testing.T) {
	cases := map[string]string{
		"column named":         "\x1b[H\x1b[2J中中中中851889592158\x1b[5G4802\r\n",
		"moved right":          "\x1b[H\x1b[2J中中中中851889592158\r\x1b[4C4802\r\n",
		"row and column named": "\x1b[H\x1b[2J中中中中851889592158\x1b[1;5H4802\r\n",
		"moved left":           "\x1b[H\x1b[2J中中中中851889592158\x1b[16D4802\r\n",
		"emoji":                "\x1b[H\x1b[2J😀😀😀😀851889592158\x1b[5G4802\r\n",
		"half overwritten":     "\x1b[H\x1b[2J4802中851889592158\x1b[6G \r\n",
		"half erased":          "\x1b[H\x1b[2J4802中8518 8959 2158\x1b[6G\x1b[X\r\n",
		"inserted":             "\x1b[H\x1b[2J4802中851889592158\x1b[5G\x1b[4h中\x1b[4l\x1b[5G\x1b[4P\r\n",
	}
	for name, in := range cases {
		for _, sz := range [][2]int{{80, 24}, {0, 0}} {
			t.Run(fmt.Sprintf("%s %dx%d", name, sz[0], sz[1]), func(t *testing.T) {
				chunks := streamed(t, sz[0], sz[1], in)
				got := textOf(t, chunks)
				if chunks[len(chunks)-1]["binary"] == true {
					return // not judged as text: nothing recorded
				}
				if strings.Contains(digitsOnly(got), "4802851889592158") || strings.Contains(string(got), "4802") && strings.Contains(string(got), "8518") {
					t.Fatalf("recorded %q (%v)", got, chunks[len(chunks)-1])
				}
			})
		}
	}
}

// With no width known, a line longer than a terminal wraps, and a move
// along a row (a column named, a move left or right, BS, tab stops) or
// an edit of it acts on the row of the line the cursor is on, which the
// model, editing the line as one row, does not follow: from a column
// past the 6th, or to one, the chunk is not judged as text. On a
// terminal 20 columns wide each case shows 4802851889592158 on the
// line's second row.
func TestStreamNoWidthMovesAlongWrappedLine(t *testing.T) {
	for name, in := range map[string]string{
		"column named":  strings.Repeat("y", 20) + "XXXXXXXX851889592158\x1b[5G4802\r\n",
		"moved left":    strings.Repeat("y", 20) + "XXXX851889592158\x1b[20D4802\r\n",
		"backspaces":    strings.Repeat("y", 20) + "XXXX851889592158" + strings.Repeat("\b", 20) + "4802\r\n",
		"SS3 left":      strings.Repeat("y", 20) + "XXXX851889592158" + strings.Repeat("\x1bOD", 20) + "4802\r\n",
		"moved up":      strings.Repeat("y", 20) + "XXXX851889592158\x1b[A\r\x1b[B4802\r\n",
		"chars deleted": strings.Repeat("y", 20) + "4802ZZZZ851889592158\x1b[5G\x1b[4P\r\n",
	} {
		t.Run(name, func(t *testing.T) {
			chunks := streamed(t, 0, 0, in)
			got := string(textOf(t, chunks))
			if strings.Contains(got, "4802") && strings.Contains(got, "8518") {
				t.Fatalf("recorded %q (%v)", got, chunks[len(chunks)-1])
			}
		})
	}
	// Short lines, and a line rewritten whole after CR, stay text.
	for _, in := range []string{"ok\b\bOK\x1b[3Gdone\r\n", "50%\r60%\r" + strings.Repeat("=", 20) + "\r" + strings.Repeat("#", 20) + "\r\n"} {
		if chunks := streamed(t, 0, 0, in); chunks[len(chunks)-1]["binary"] == true {
			t.Errorf("%q recorded as binary", in)
		}
	}
}
