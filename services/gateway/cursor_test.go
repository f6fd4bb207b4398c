package gateway_test

import (
	"encoding/base64"
	"encoding/binary"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/auditledger/auditledger/events"
	"github.com/auditledger/auditledger/services/gateway"
	"github.com/auditledger/auditledger/test/natstest"
)

// lines is n rows of plain text ended by CR LF, which scroll a screen
// once the cursor is on its bottom row: more than a flush holds back.
func lines(n int) string {
	var b strings.Builder
	for i := range n {
		fmt.Fprintf(&b, "line %04d of the output\r\n", i)
	}
	return b.String()
}

// streamed writes each of writes to a stream of the screen given (cols
// x rows; 0: none), flushing after each as the timer would, closes it,
// and returns the chunks recorded, once all bytes are.
func streamed(t *testing.T, cols, rows int, writes ...string) []map[string]any {
	t.Helper()
	return streamedIn(t, 0, cols, rows, writes...)
}

// streamedIn is streamed in chunks of at most maxChunk bytes (0: the
// default).
func streamedIn(t *testing.T, maxChunk, cols, rows int, writes ...string) []map[string]any {
	t.Helper()
	var sc *gateway.Screen
	if cols > 0 || rows > 0 {
		sc = gateway.NewScreen(cols, rows)
	}
	return streamedOn(t, maxChunk, sc, writes...)
}

// streamedOn is streamedIn on the screen sc (nil: none).
func streamedOn(t *testing.T, maxChunk int, sc *gateway.Screen, writes ...string) []map[string]any {
	t.Helper()
	b := startBus(t, true)
	g := newGateway(t, b.em, nil)
	st := g.Session(events.Target{Kind: "ssh"}).Stream("stdout", gateway.StreamConfig{MaxChunk: maxChunk, FlushAfter: time.Hour, Screen: sc})
	total := 0
	for _, w := range writes {
		st.Write([]byte(w))
		st.Flush()
		total += len(w)
	}
	st.Close()
	var chunks []map[string]any
	natstest.CheckFor(t, 20*time.Second, 20*time.Millisecond, func() error {
		chunks = nil
		sum := 0
		for _, c := range outputs(natstest.Events(t, b.js, "")) {
			chunks = append(chunks, c.Payload)
			sum += int(c.Payload["bytes"].(float64))
		}
		if sum != total {
			return fmt.Errorf("%d of %d bytes recorded", sum, total)
		}
		return nil
	})
	return chunks
}

// textOf is the recorded bytes of the chunks, joined.
func textOf(t *testing.T, chunks []map[string]any) []byte {
	var got []byte
	for _, c := range chunks {
		d, _ := c["data"].(string)
		raw, err := base64.StdEncoding.DecodeString(d)
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, raw...)
	}
	return got
}

// A chunk is rendered from where the chunks before it left the cursor:
// its row (named long before, followed through line feeds that scrolled
// the screen), its column, the screen shown, the cursor saved, autowrap.
// Each case puts 4802851889592158 on one row of the screen, the moves
// that place its parts in a chunk recorded before the one holding them
// (the first write, then a flush; text past the held tail, or binary:
// tab stops cleared, which the model does not follow).
func TestStreamCursorCarried(t *testing.T) {
	cases := []struct {
		name       string
		cols, rows int
		writes     []string
	}{
		// The case: the cursor was on row 5 (here the bottom
		// row of a 5-row screen, reached by line feeds long before).
		{"row named in an earlier chunk", 80, 5, []string{"\x1b[5;1H" + lines(300), "XXXX851889592158\r\n\x1b[4;1H4802\r\n"}},
		{"row named in a binary chunk", 80, 24, []string{"\x1b[5;1H\x1b[3g", "XXXX851889592158\r\n\x1b[5;1H4802\r\n"}},
		// CUU and CUD stop at the top and bottom rows.
		{"cursor up stops at the top", 80, 2, []string{"\x1b[2;1H" + lines(300), "XXXX851889592158\x1b[5A\x1b[B\r4802\r\n"}},
		{"cursor down stops at the bottom", 80, 10, []string{"\x1b[10;1H" + lines(300), "\x1b[AXXXX851889592158\x1b[5B\x1b[A\r4802\r\n"}},
		// The column: text written from it, then a column named.
		{"column", 80, 24, []string{"\x1b[5;31H\x1b[3g", "851889592158\x1b[27G4802\r\n"}},
		{"column, wrapped", 20, 24, []string{"\x1b[5;13H\x1b[3g", "xxxxxxxxXXXX851889592158\r4802\r\n"}},
		// The cursor saved by DECSC, restored in a later chunk.
		{"cursor saved", 80, 24, []string{"\x1b[5;1H\x1b7" + lines(300), "\x1b8XXXX851889592158\r\n\x1b8\r4802\r\n"}},
		// The alternate screen left: 1049 restores the cursor saved
		// on the main screen.
		{"alternate screen", 80, 24, []string{"\x1b[5;1H\x1b[?1049h\x1b[3g", "\x1b[2;1Hmenu\x1b[?1049lXXXX851889592158\r\x1b[5;1H4802\r\n"}},
		// Autowrap reset in an earlier chunk: past the last column a
		// character overwrites it.
		{"autowrap reset", 20, 24, []string{"\x1b[?7l\x1b[3g", "\x1b[1;1Hx4802 8518 8959 215yz8\r\n"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			chunks := streamed(t, c.cols, c.rows, c.writes...)
			last := chunks[len(chunks)-1]
			if last["binary"] == true {
				t.Fatalf("the card's chunk recorded as binary: %v", last)
			}
			got := textOf(t, chunks)
			if strings.Contains(string(got), "851889592158") || strings.Contains(digitsOnly(got), "4802851889592158") || last["redacted"] == nil {
				t.Fatalf("recorded …%q (%v)", got[max(0, len(got)-80):], last)
			}
		})
	}
}

// Where the cursor's row is not known — a stream's start, a resize —
// text written after a move whose row depends on it, on a row the text
// written before may be on, makes the chunk binary: the cases
// from a stream's start (the cursor on row 5, on row 1), and after a
// resize. On a screen whose width is not known, text written after a CR
// that ends a line that may have wrapped is binary too.
func TestStreamCursorUnknownFailsClosed(t *testing.T) {
	cases := []struct {
		name       string
		cols, rows int
		writes     []string
		resize     bool // to 80x10 after the first write
	}{
		{"row named", 80, 24, []string{"XXXX851889592158\r\n\x1b[5;1H4802\r\n"}, false},
		{"cursor up and down", 80, 24, []string{"\x1b[BXXXX851889592158\x1b[5A\x1b[B\r4802\r\n"}, false},
		{"cursor down and up", 80, 24, []string{"XXXX851889592158\x1b[30B\x1b[A\r4802\r\n"}, false},
		{"row named, no size", 0, 0, []string{"XXXX851889592158\r\n\x1b[5;1H4802\r\n"}, false},
		{"row named after a resize", 80, 24, []string{"\x1b[5;1H" + lines(300), "XXXX851889592158\r\n\x1b[9;1H4802\r\n"}, true},
		{"wrapped, no width", 0, 0, []string{"yyyyyyyyyyyyyyyyyyyyXXXX851889592158\r4802\r\n"}, false},
		{"wrapped, no width, column named", 0, 0, []string{"yyyyyyyyyyyyyyyyyyyyXXXX851889592158\x1b[G4802\r\n"}, false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			b := startBus(t, true)
			g := newGateway(t, b.em, nil)
			var sc *gateway.Screen
			if c.cols > 0 {
				sc = gateway.NewScreen(c.cols, c.rows)
			}
			st := g.Session(events.Target{Kind: "ssh"}).Stream("stdout", gateway.StreamConfig{FlushAfter: time.Hour, Screen: sc})
			total := 0
			for i, w := range c.writes {
				if i > 0 && c.resize {
					sc.Resize(80, 10)
					st.Write(nil) // the resize reaches the stream before the bytes after it
				}
				st.Write([]byte(w))
				st.Flush()
				total += len(w)
			}
			st.Close()
			var last map[string]any
			var got []byte
			natstest.CheckFor(t, 20*time.Second, 20*time.Millisecond, func() error {
				cs := outputs(natstest.Events(t, b.js, ""))
				sum := 0
				got = nil
				for _, c := range cs {
					sum += int(c.Payload["bytes"].(float64))
					last = c.Payload
					d, _ := c.Payload["data"].(string)
					raw, _ := base64.StdEncoding.DecodeString(d)
					got = append(got, raw...)
				}
				if sum != total {
					return fmt.Errorf("%d of %d bytes recorded", sum, total)
				}
				return nil
			})
			if last["binary"] != true || strings.Contains(string(got), "851889592158") {
				t.Fatalf("recorded …%q (%v), want the last chunk binary", got[max(0, len(got)-80):], last)
			}
		})
	}
	// A screen cleared after the text (clear(1): CSI H, CSI 2 J) holds
	// none of it: what is written then is judged as text.
	chunks := streamed(t, 80, 24, "user@host:~$ clear\r\n\x1b[H\x1b[2J\x1b[5;1Hok\r\n")
	if chunks[0]["binary"] == true {
		t.Fatalf("recorded as binary: %v", chunks[0])
	}
	// A line rewritten whole after a CR leaves nothing of the line on
	// whichever of its rows the CR went to (a progress bar, no pty).
	chunks = streamed(t, 0, 0, "get 4802 8518 [##  ]  45%\rget 4802 8518 [### ]  46%\x1b[K\r\x1b[Kdone\r\nLast login: Tue Dec  8 from 10.0.0.1\r\r\n")
	if chunks[0]["binary"] == true {
		t.Fatalf("recorded as binary: %v", chunks[0])
	}
}

// readRecording reads a terminal's output as a pty gave it (testdata,
// recorded at 80x24 with TERM=xterm-256color): each read a 4-byte
// big-endian length, then its bytes.
func readRecording(t *testing.T, path string) []string {
	t.Helper()
	d, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var reads []string
	for len(d) >= 4 {
		n := int(binary.BigEndian.Uint32(d))
		reads = append(reads, string(d[4:4+n]))
		d = d[4+n:]
	}
	return reads
}

// What the model records as binary of ordinary terminal traffic: bash
// with readline edits, tab completion and history, ls and grep in
// colour, vim (moves, scrolling, a search, insert mode), less, top
// refreshing, a progress bar and a multi-line one (CSI A), each read as
// the pty gave it, the stream flushed after each read as the timer
// would. testdata/terminal/*.rec, 80x24.
func TestStreamOrdinaryTrafficStaysText(t *testing.T) {
	files, _ := filepath.Glob("testdata/terminal/*.rec")
	if len(files) == 0 {
		t.Fatal("no recordings in testdata/terminal")
	}
	var allBytes, allBinary, allChunks, allBinaryChunks int
	for _, f := range files {
		reads := readRecording(t, f)
		chunks := streamed(t, 80, 24, reads...)
		// In chunks of 2 KiB (1 KiB of rendered text held back): the
		// cursor carried across many more cuts.
		small := streamedIn(t, 2048, 80, 24, reads...)
		chunks = append(chunks, small...)
		bytes, bin, binChunks := 0, 0, 0
		for _, c := range chunks {
			n := int(c["bytes"].(float64))
			bytes += n
			if c["binary"] == true {
				bin += n
				binChunks++
			}
		}
		t.Logf("%-9s %3d reads, %6d bytes: %3d of %3d chunks binary, %5.1f %% of the bytes", filepath.Base(f), len(reads), bytes, binChunks, len(chunks), 100*float64(bin)/float64(bytes))
		allBytes += bytes
		allBinary += bin
		allChunks += len(chunks)
		allBinaryChunks += binChunks
	}
	t.Logf("all: %d of %d chunks binary, %.1f %% of %d bytes", allBinaryChunks, allChunks, 100*float64(allBinary)/float64(allBytes), allBytes)
	// Without a size (an exec without a pty), a line rewritten after a
	// CR that may have wrapped is binary: what that costs a progress bar.
	bin, bytes := 0, 0
	for _, c := range streamed(t, 0, 0, readRecording(t, "testdata/terminal/progress.rec")...) {
		bytes += int(c["bytes"].(float64))
		if c["binary"] == true {
			bin += int(c["bytes"].(float64))
		}
	}
	t.Logf("progress.rec without a size: %.1f %% of %d bytes binary", 100*float64(bin)/float64(bytes), bytes)
	if allBinary*50 > allBytes {
		t.Errorf("%d of %d bytes recorded as binary", allBinary, allBytes)
	}
}

// Scroll margins (DECSTBM, as vim and less set them to scroll part of
// the screen) are followed: the rows between them scroll under a line
// feed at the bottom margin, RI at the top one, CSI S, T, L, M, and the
// rows outside them stay where they are. Each case puts
// 4802851889592158 on one row of a 24x80 screen, cleared first.
func TestStreamScrollMarginsFollowed(t *testing.T) {
	const clear = "\x1b[H\x1b[2J"
	for name, in := range map[string]string{
		"line feed at the bottom margin": "\x1b[1;10r\x1b[10;1HXXXX851889592158\r\n\x1b[9;1H4802\r\n",
		"the row below stays":            "\x1b[1;23r\x1b[24;5H851889592158\x1b[23;1H\r\n\r\n\x1b[24;1H4802",
		"the row above stays":            "\x1b[3;20r\x1b[2;5H851889592158\x1b[20;1H\r\n\x1b[2;1H4802",
		"reverse index at the top":       "\x1b[5;20r\x1b[5;1HXXXX851889592158\x1b[5;1H\x1bM\x1b[6;1H4802",
		"rows inserted (CSI L)":          "\x1b[5;20r\x1b[5;1HXXXX851889592158\x1b[5;1H\x1b[L\x1b[6;1H4802",
		"below the margins, CSI L":       "\x1b[5;20r\x1b[21;5H851889592158\x1b[5;1H\x1b[2L\x1b[21;1H4802",
		"rows deleted (CSI M)":           "\x1b[5;20r\x1b[7;1HXXXX851889592158\x1b[5;1H\x1b[M\x1b[6;1H4802",
		"scrolled up (CSI S)":            "\x1b[5;20r\x1b[6;1HXXXX851889592158\x1b[S\x1b[5;1H4802",
		"scrolled down (CSI T)":          "\x1b[5;20r\x1b[6;1HXXXX851889592158\x1b[T\x1b[7;1H4802",
		"margins reset, cursor home":     "\x1b[5;20r\x1b[r\x1b[BXXXX851889592158\x1b[2;1H4802",
	} {
		t.Run(name, func(t *testing.T) {
			chunks := streamed(t, 80, 24, clear+in+"\r\n")
			if chunks[0]["binary"] == true {
				t.Fatalf("recorded as binary: %v", chunks[0])
			}
			got := textOf(t, chunks)
			if strings.Contains(string(got), "851889592158") || strings.Contains(digitsOnly(got), "4802851889592158") || chunks[0]["redacted"] == nil {
				t.Fatalf("recorded %q (%v)", got, chunks[0])
			}
		})
	}
}
