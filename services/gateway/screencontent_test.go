package gateway_test

import (
	"fmt"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/auditledger/auditledger/events"
	"github.com/auditledger/auditledger/services/gateway"
	"github.com/auditledger/auditledger/test/natstest"
)

var sgr = regexp.MustCompile("\x1b\\[[0-9;]*m")

// paintRows writes rows from..to, each named (CUP) and filled with ch.
func paintRows(from, to, cols int, ch string) string {
	var b strings.Builder
	for r := from; r <= to; r++ {
		fmt.Fprintf(&b, "\x1b[%d;1H%s", r, strings.Repeat(ch, cols))
	}
	return b.String()
}

// Finding: the model carries the cursor across chunks, not what the
// screen shows. Text recorded in an earlier chunk (pushed out of the
// 4,096-byte held tail) that is still on the screen is absent from the
// next chunk's rendering, so the next chunk's digits written next to it
// (a curses partial repaint, a cursor move back) are judged alone.
func TestStreamScreenContentAcrossChunks(t *testing.T) {
	cases := []struct {
		name       string
		cols, rows int
		writes     []string
	}{
		{"curses partial repaint 120x40", 120, 40, []string{"\x1b[H\x1b[2J" + paintRows(1, 4, 120, "a") + "\x1b[5;1H4802 1111 2222 3333" + paintRows(6, 40, 120, "b"), "\x1b[5;6H8518 8959 2158"}},
		{"curses partial repaint 200x60", 200, 60, []string{"\x1b[H\x1b[2J" + paintRows(1, 4, 200, "a") + "\x1b[5;1H4802 1111 2222 3333" + paintRows(6, 60, 200, "b"), "\x1b[5;6H8518 8959 2158"}},
		{"wide row", 10000, 24, []string{"\x1b[1;1H4802\x1b[2;1H" + strings.Repeat("x", 6000), "\x1b[1;5H851889592158\r\n"}},
		{"alternate screen 47 kept", 80, 24, []string{"\x1b[?47h\x1b[1;1H4802\x1b[?47l\x1b[24;1H" + lines(400), "\x1b[?47h\x1b[1;5H851889592158\x1b[?47l"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			chunks := streamed(t, c.cols, c.rows, c.writes...)
			got := string(textOf(t, chunks))
			if strings.Contains(got, "4802") && strings.Contains(got, "8518") && chunks[len(chunks)-1]["binary"] != true {
				t.Errorf("the halves a terminal shows side by side recorded in clear, in %d chunks", len(chunks))
			}
		})
	}
}

// Text kept on the screen stops counting once erased: a row erased
// (EL 2), the screen erased (ED 2), shows nothing the next chunk's
// characters could join, which are recorded as text.
func TestStreamScreenContentErased(t *testing.T) {
	paint := "\x1b[H\x1b[2J" + paintRows(1, 4, 120, "a") + "\x1b[5;1H4802 1111 2222 3333" + paintRows(6, 40, 120, "b")
	for _, erase := range []string{"\x1b[2J", "\x1b[5;1H\x1b[2K", "\x1b[5;1H\x1b[K", "\x1b[4;1H\x1b[J"} {
		chunks := streamed(t, 120, 40, paint, erase+"\x1b[5;6H8518 8959 2158")
		if last := chunks[len(chunks)-1]; last["binary"] == true {
			t.Errorf("%q: written on a row erased, recorded as binary", erase)
		}
	}
}

// A row rewritten in two writes, the first ending within the text it
// overwrites (a pty read ending mid-row), is held back until the rest
// of the row is written, and recorded as text; a rewrite left there,
// beside what it did not overwrite, is recorded digest-only.
func TestStreamScreenContentRowRewrittenInTwo(t *testing.T) {
	paint := "\x1b[H\x1b[2J" + paintRows(1, 4, 120, "a") + "\x1b[5;1H" + strings.Repeat(" ", 17) + "58 zzzz" + paintRows(6, 40, 120, "b")
	done := streamed(t, 120, 40, paint, "\x1b[5;1H4802 8518 8959 21", "xx\x1b[K\x1b[20;1Hdone")
	for _, c := range done {
		if c["binary"] == true {
			t.Fatalf("a row rewritten whole recorded as binary: %v", c)
		}
	}
	left := streamed(t, 120, 40, paint, "\x1b[5;1H4802 8518 8959 21", "\x1b[20;1Hdone")
	if got := string(textOf(t, left)); strings.Contains(got, "8959 21") {
		t.Errorf("the first half of a value a terminal shows beside text recorded before, in clear: %q", got)
	}
}

// topFrames is n refreshes of a top-like process list on a screen of
// cols x rows: the cursor home, each row rewritten whole where it
// changed (skipped where not, as procps top does), attributes around
// the numbers, padded to the last column but one, the rest of each row
// erased (EL).
func topFrames(n, cols, rows int) string {
	var b strings.Builder
	for f := range n {
		b.WriteString("\x1b[H")
		for r := 1; r <= rows; r++ {
			if r > 1 {
				b.WriteString("\r\n")
			}
			if r == 4 && f > 0 || r == 6 { // unchanged: skipped
				continue
			}
			var line string
			switch r {
			case 1:
				line = fmt.Sprintf("top - 03:%02d:%02d up 1:10,  0 users,  load average: %d.%02d, 11.70, 11.93", f/60, f%60, 12, f%100)
			case 2:
				line = fmt.Sprintf("Tasks:\x1b[1m %3d \x1b[m total,\x1b[1m %3d \x1b[m running", 100+f%7, 2+f%3)
			case 3:
				line = fmt.Sprintf("%%Cpu(s):\x1b[1m %4.1f \x1b[m us,\x1b[1m %4.1f \x1b[m sy", float64(f%997)/10, float64(f%331)/10)
			case 4:
				line = "MiB Mem :  64213.1 total,  12034.5 free,  22931.0 used,  29247.6 buff/cache"
			case 5:
				line = fmt.Sprintf("MiB Swap:      0.0 total,      0.0 free,      0.0 used.  %d.1 avail Mem", 41000+f)
			case 7:
				line = "\x1b[7m    PID USER      PR  NI    VIRT    RES    SHR S  %CPU  %MEM     TIME+ COMMAND"
			default:
				pid := 1000 + (r*7919+f*31)%30000
				line = fmt.Sprintf("\x1b[m%7d root      20   0 %7d %6d %6d S %5.1f %5.1f %3d:%02d.%02d worker-%d", pid, 1200000+r*f, 40000+r, 15000+f, float64((r*f)%1000)/10, float64(r%50)/10, f/60, f%60, r, r)
			}
			line += strings.Repeat(" ", max(0, cols-1-len(sgr.ReplaceAllString(line, ""))))
			b.WriteString(line + "\x1b[m\x1b[K")
		}
	}
	return b.String()
}

// cursesFrames is n updates of a curses program that repaints only
// what changed (htop, a dashboard): each a few cells of a few rows,
// after one full paint.
func cursesFrames(n, cols, rows int) string {
	var b strings.Builder
	b.WriteString("\x1b[H\x1b[2J")
	for r := 1; r <= rows; r++ {
		fmt.Fprintf(&b, "\x1b[%d;1H%s", r, strings.Repeat(fmt.Sprintf("%-10s", fmt.Sprintf("row%d", r)), cols/10))
	}
	for f := range n {
		for k := range 6 {
			r := 2 + (f*7+k*5)%(rows-1)
			fmt.Fprintf(&b, "\x1b[%d;%dH\x1b[1m%5.1f\x1b[m", r, 30+10*(k%4), float64((f*13+k)%1000)/10)
		}
	}
	return b.String()
}

// reads splits s as a pty's reads do: at most n bytes each.
func reads(s string, n int) []string {
	var out []string
	for len(s) > n {
		out = append(out, s[:n])
		s = s[n:]
	}
	return append(out, s)
}

// What ordinary full-screen output costs: a top-like refresh (rows
// rewritten whole) stays text; a curses program repainting a few cells
// of rows painted long before (out of the held tail) is recorded
// digest-only, the model not knowing what those rows show.
func TestStreamScreenContentFullScreenCost(t *testing.T) {
	binaryShare := func(chunks []map[string]any) (float64, int, int) {
		bin, all, nb := 0, 0, 0
		for _, c := range chunks {
			n := int(c["bytes"].(float64))
			all += n
			if c["binary"] == true {
				bin += n
				nb++
			}
		}
		return 100 * float64(bin) / float64(all), nb, len(chunks)
	}
	for _, sz := range [][2]int{{80, 24}, {120, 40}, {200, 60}} {
		top := streamed(t, sz[0], sz[1], reads(topFrames(40, sz[0], sz[1]), 4095)...)
		share, nb, n := binaryShare(top)
		t.Logf("top-like %dx%d: %d of %d chunks binary, %.1f %% of the bytes", sz[0], sz[1], nb, n, share)
		if share > 2 {
			t.Errorf("top-like %dx%d: %.1f %% of the bytes binary", sz[0], sz[1], share)
		}
		curses := streamed(t, sz[0], sz[1], reads(cursesFrames(400, sz[0], sz[1]), 1024)...)
		share, nb, n = binaryShare(curses)
		t.Logf("curses partial repaints %dx%d: %d of %d chunks binary, %.1f %% of the bytes", sz[0], sz[1], nb, n, share)
	}
}

// The recording path of full-screen output on a screen of known size,
// the rows kept followed: a top-like refresh and curses partial repaints
// at 120x40 and coloured ls output at 80x24, written in a pty's reads
// (4 KiB; 1 KiB for the repaints) and flushed after each as the timer
// would. cpu-µs/MiB is the process's user+system time (rusage).
func BenchmarkStreamScreen(b *testing.B) {
	cases := []struct {
		name       string
		cols, rows int
		text       string
		read       int
	}{
		{"top-120x40", 120, 40, topFrames(100, 120, 40), 4096},
		{"curses-120x40", 120, 40, cursesFrames(2000, 120, 40), 1024},
		{"ls-80x24", 80, 24, strings.Repeat("-rw-r--r-- 1 alice staff  40213 Dec  7 03:31 \x1b[01;34mreport-2026-12.csv\x1b[0m\r\n", 4000), 4096},
	}
	for _, c := range cases {
		b.Run(c.name, func(b *testing.B) {
			g, err := gateway.New(gateway.Config{Name: "benchgw", Kind: "test-gateway", Tenant: "acme", Emitter: discard{}})
			if err != nil {
				b.Fatal(err)
			}
			defer g.Close()
			s := g.Session(events.Target{Kind: "ssh"})
			s.Authenticated(alice)
			st := s.Stream("stdout", gateway.StreamConfig{FlushAfter: time.Hour, Screen: gateway.NewScreen(c.cols, c.rows)})
			b.SetBytes(int64(c.read))
			t0, n := cpuTime(), 0
			for b.Loop() {
				off := n % (len(c.text) - c.read)
				st.Write([]byte(c.text[off : off+c.read]))
				st.Flush()
				n += c.read
			}
			st.Close()
			b.ReportMetric(float64((cpuTime()-t0).Microseconds())/(float64(n)/(1<<20)), "cpu-µs/MiB")
		})
	}
}

// The rows kept follow what moves them: rows scrolled up by line feeds
// at the bottom row, rows inserted above them (IL), characters deleted
// before them (DCH) moving them left, scroll margins: digits written
// where the text kept went still join it, and are recorded digest-only.
func TestStreamScreenContentMoved(t *testing.T) {
	paint := "\x1b[H\x1b[2J" + paintRows(1, 4, 120, "a") + "\x1b[5;1H4802 1111 2222 3333" + paintRows(6, 40, 120, "b")
	cases := []struct{ name, then string }{
		{"scrolled up 2", "\x1b[40;1H\n\n\x1b[3;6H8518 8959 2158"},
		{"row inserted above", "\x1b[2;1H\x1b[L\x1b[6;6H8518 8959 2158"},
		{"margins scrolled", "\x1b[3;20r\x1b[20;1H\n\x1b[r\x1b[4;6H8518 8959 2158"},
		{"moved left by DCH", "\x1b[5;1H\x1b[10P\x1b[5;6H8518 8959 2158"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			paint := paint
			if strings.Contains(c.name, "DCH") {
				paint = strings.Replace(paint, "4802 1111", "zzzzzzzzzz4802 1111", 1)
			}
			chunks := streamed(t, 120, 40, paint, c.then)
			if last := chunks[len(chunks)-1]; last["binary"] != true && strings.Contains(string(textOf(t, chunks)), "8959 2158") {
				t.Errorf("digits written beside text kept recorded in clear")
			}
		})
	}
	// A window change: what was kept may be on any row.
	b := startBus(t, true)
	g := newGateway(t, b.em, nil)
	sc := gateway.NewScreen(120, 40)
	st := g.Session(events.Target{Kind: "ssh"}).Stream("stdout", gateway.StreamConfig{FlushAfter: time.Hour, Screen: sc})
	st.Write([]byte(paint))
	st.Flush()
	sc.Resize(100, 40)
	st.Write([]byte("\x1b[7;6H8518 8959 2158"))
	st.Close()
	natstest.CheckFor(t, 20*time.Second, 20*time.Millisecond, func() error {
		var chunks []map[string]any
		for _, c := range outputs(natstest.Events(t, b.js, "")) {
			chunks = append(chunks, c.Payload)
		}
		if len(chunks) == 0 || chunks[len(chunks)-1]["binary"] != true {
			return fmt.Errorf("after a window change, digits written on a row that may hold text kept: %v", chunks)
		}
		return nil
	})
}

// A pty whose size the client never gave (ssh -tt from a pipe asks for
// 0x0) keeps no rows: ordinary output longer than the held tail, then a
// prompt, is recorded as text, as it was before rows were kept (every
// chunk after the first 4 KiB was recorded digest-only, and the console's
// replay of such a session lost its end). With no size, moves back to
// earlier rows or along a row are not judged as text (render.go).
func TestStreamNoSizeOrdinaryOutputIsText(t *testing.T) {
	prompt := "\x1b[?2004hroot@vm:/root# "
	out := "Last login: Tue Dec  8 03:27:13 2026 from 127.0.0.1\r\r\n\r\n" +
		prompt + "printf 'hello from \\033[1mthe replay\\033[0m\\n'\r\n\x1b[?2004l\rhello from \x1b[1mthe replay\x1b[0m\r\n" + prompt +
		"yes 'the quick brown fox jumps' | head -300; echo done-$((6*7))\r\n\x1b[?2004l\r" + strings.Repeat("the quick brown fox jumps\r\n", 300) + "done-42\r\n" + prompt
	for _, split := range []int{2000, 4473, 6000} {
		chunks := streamedOn(t, 0, gateway.NewScreen(0, 0), out[:split], out[split:])
		for i, c := range chunks {
			if c["binary"] == true {
				t.Errorf("split at %d: chunk %d of %d recorded digest-only (%v bytes at %v)", split, i, len(chunks), c["bytes"], c["offset"])
			}
		}
		if got := string(textOf(t, chunks)); got != out {
			t.Errorf("split at %d: the text recorded is not the output (%d of %d bytes)", split, len(got), len(out))
		}
	}
}

// Moves the model placed apart from the terminal's: a tab on a row
// gone back to (the stop is past the row's text: a move back from it
// lands where the terminal's does), DECRC restoring origin mode with
// the cursor (rows then named from the top margin, or not), EL with
// more parameters than one (the terminal reads the first), DECALN
// (margins and origin mode reset, the cursor home). Each puts
// 4802851889592158 on row 5 of a 120x40 screen, in one write or with
// 4802 recorded in a chunk before, out of the held tail.
func TestStreamScreenContentPlaced(t *testing.T) {
	paint := "\x1b[H\x1b[2J\x1b[5;1H4802" + paintRows(6, 40, 120, "b")
	scrolled := "\x1b[H\x1b[2J\x1b[5;1H4802\x1b[20;40r\x1b[40;1H" + lines(400) + "\x1b[r"
	cases := []struct {
		name   string
		writes []string
	}{
		{"tab on a row gone back to", []string{"\x1b[5;1H4802\x1b[9;1Hx\x1b[5;1H\t\x1b[4D851889592158"}},
		{"tab, rows scrolled between", []string{"\x1b[5;1H4802\x1b[20;40r\x1b[40;1H" + lines(10) + "\x1b[r\x1b[5;1H\t\x1b[4D851889592158"}},
		{"tab, 4802 out of the held tail", []string{scrolled, "\x1b[5;1H\t\x1b[4D851889592158"}},
		{"DECRC restores origin mode reset", []string{paint, "\x1b[10;30r\x1b7\x1b[?6h\x1b8\x1b[5;5H851889592158\x1b[r"}},
		{"DECRC restores origin mode set", []string{paint, "\x1b[2;30r\x1b[?6h\x1b7\x1b[?6l\x1b8\x1b[4;5H851889592158\x1b[r"}},
		{"EL 1;0 is EL 1", []string{"\x1b[5;11H8959 2158\x1b[5;1H\x1b[1;0K\x1b[5;1H4802 8518 \r\n"}},
		{"DECALN resets margins and origin mode", []string{"\x1b[10;30r\x1b[?6h\x1b#8\x1b[5;1H4802\x1b[?6l\x1b[r" + paintRows(6, 40, 120, "b"), "\x1b[5;5H851889592158"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got := string(textOf(t, streamed(t, 120, 40, c.writes...)))
			if strings.Contains(got, "4802") && (strings.Contains(got, "851889592158") || strings.Contains(got, "8959 2158")) {
				t.Errorf("the halves a terminal shows side by side recorded in clear")
			}
		})
	}
}
