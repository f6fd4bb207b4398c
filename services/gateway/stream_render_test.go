package gateway_test

import (
	"bytes"
	"compress/gzip"
	"encoding/base64"
	"fmt"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/auditledger/auditledger/events"
	"github.com/auditledger/auditledger/services/gateway"
	"github.com/auditledger/auditledger/test/natstest"
)

// recorded returns the bytes recorded of a stream's chunks, joined, and
// each chunk's payload.
func recorded(t *testing.T, b *testBus, n int) ([]byte, []map[string]any) {
	t.Helper()
	var joined []byte
	var ps []map[string]any
	for _, c := range outputs(b.stored(t, n)) {
		d, _ := c.Payload["data"].(string)
		raw, err := base64.StdEncoding.DecodeString(d)
		if err != nil {
			t.Fatal(err)
		}
		joined = append(joined, raw...)
		ps = append(ps, c.Payload)
	}
	return joined, ps
}

// digitsOnly keeps the decimal digits of b, for a search that ignores
// whatever separates them.
func digitsOnly(b []byte) string {
	var s strings.Builder
	for _, c := range b {
		if c >= '0' && c <= '9' {
			s.WriteByte(c)
		}
	}
	return s.String()
}

// Values a terminal shows whole are judged as it renders them: escape
// sequences and erased characters between their characters (grep
// --color, a typo fixed with DEL or backspace, cursor moves, NUL, UTF-16)
// hide nothing, and the whole raw span is replaced.
func TestStreamJudgesRenderedText(t *testing.T) {
	cases := map[string]string{
		"grep color":    "4111\x1b[01;31m\x1b[K \x1b[m\x1b[K1111 1111 1111\n",
		"DEL edit":      "4111 11119\x7f 1111 1111\n",
		"backspace":     "4111 1111 19\b \b111 1111\n",
		"cursor moves":  "4111 1111\x1b[D\x1b[C 1111\x1b[K 1111\n",
		"NUL":           "4111\x001111\x001111\x001111\n",
		"OSC title":     "\x1b]0;4111 1111 1111 1111\x07$ \n",
		"UTF-16LE":      "4\x001\x001\x001\x001\x001\x001\x001\x001\x001\x001\x001\x001\x001\x001\x001\x00",
		"email colored": "jane\x1b[01;31m@\x1b[mexample.com\n",
		// A value whose halves a terminal shows on one row, the cursor
		// moved back up to it between them.
		"CUP to a row a line feed left": "\x1b[5;1H4111 1111\r\nok\x1b[5;11H1111 1111\x1b[7;1H\r\n",
		"reverse index":                 "4111 1111\r\nok\x1bM\x1b[11G1111 1111\r\n",
		"cursor previous line":          "4111 1111\r\nok\x1b[F\x1b[11G1111 1111\r\n",
	}
	for name, in := range cases {
		t.Run(name, func(t *testing.T) {
			b := startBus(t, true)
			g := newGateway(t, b.em, nil)
			s := g.Session(events.Target{Kind: "ssh"})
			// A terminal of 24 rows and 80 columns, as a pty-req gives.
			st := s.Stream("stdout", gateway.StreamConfig{FlushAfter: time.Hour, Screen: gateway.NewScreen(80, 24)})
			st.Write([]byte(in))
			st.Close()
			got, ps := recorded(t, b, 1)
			if strings.Contains(digitsOnly(got), "4111111111111111") || bytes.Contains(got, []byte("jane")) || bytes.Contains(got, []byte("example")) {
				t.Fatalf("recorded %q", got)
			}
			if ps[0]["redacted"] == nil {
				t.Fatalf("nothing listed as redacted: %v", ps[0])
			}
		})
	}
}

// A value split between two writes, however long apart, and whatever
// separates its groups, is judged whole: the tail of the text is held
// back, not released by the timer.
func TestStreamHoldsSplitValue(t *testing.T) {
	for _, sep := range []string{" ", "/", "-", ""} {
		b := startBus(t, true)
		g := newGateway(t, b.em, nil)
		s := g.Session(events.Target{Kind: "ssh"})
		st := s.Stream("stdin", gateway.StreamConfig{FlushAfter: time.Hour})
		st.Write([]byte("echo 4111" + sep + "1111" + sep))
		st.Flush()
		st.Flush() // a pause of any length: flushes with nothing new
		st.Write([]byte("1111" + sep + "1111 done\n"))
		st.Close()
		got, _ := recorded(t, b, 1)
		if strings.Contains(digitsOnly(got), "4111111111111111") {
			t.Fatalf("separator %q: recorded %q", sep, got)
		}
	}
}

// Bytes that are not text the detectors read (compressed, binary) are
// recorded as their keyed digest and size, never as bytes.
func TestStreamBinaryDigestOnly(t *testing.T) {
	b := startBus(t, true)
	g := newGateway(t, b.em, nil)
	s := g.Session(events.Target{Kind: "ssh"})
	st := s.Stream("stdin", gateway.StreamConfig{FlushAfter: time.Hour})
	var z bytes.Buffer
	zw := gzip.NewWriter(&z)
	zw.Write([]byte("id,card,email\n1,4111 1111 1111 1111,jane@example.com\n"))
	zw.Close()
	st.Write(z.Bytes())
	st.Close()
	got, ps := recorded(t, b, 1)
	if len(got) != 0 || ps[0]["binary"] != true || ps[0]["bytes"] != float64(z.Len()) {
		t.Fatalf("binary chunk recorded as %v", ps[0])
	}
}

// A value typed in two parts, the cursor moved back between them, is
// judged as the line ends up: in what the person types (arrow keys,
// readline's ^A ^B ^F, characters inserted at the cursor) and in what
// the terminal echoes (backspaces moving the cursor, CSI @ inserting
// blanks, characters overwriting them). The attacker's case: 851889592158,
// twelve times left, then 4802.
func TestStreamJudgesLineEdits(t *testing.T) {
	const card = "4802851889592158"
	left12 := strings.Repeat("\x1b[D", 12)
	// The screen cleared first, as clear(1) does: the cursor's row is
	// known from there (at a stream's start it is not, and text written
	// before a move whose end depends on it is recorded as binary:
	// TestStreamCursorUnknownFailsClosed).
	const clear = "\x1b[H\x1b[2J"
	cases := []struct{ name, stream, in string }{
		{"arrow keys", "stdin", "echo 851889592158" + left12 + "4802\r"},
		{"application-mode arrows", "stdin", "echo 851889592158" + strings.Repeat("\x1bOD", 12) + "4802\r"},
		{"^B", "stdin", "echo 851889592158" + strings.Repeat("\x02", 12) + "4802\r"},
		{"^A then right", "stdin", "echo 851889592158\x01" + strings.Repeat("\x06", 5) + "4802\r"},
		{"home key", "stdin", "851889592158\x1b[H4802\r"},
		{"meta-b: a word back", "stdin", "echo 851889592158\x1bb4802\r"},
		{"meta-b: three words back", "stdin", "echo 8518 8959 2158" + strings.Repeat("\x1bb", 3) + "4802 \r"},
		{"ctrl-left: a word back", "stdin", "echo 851889592158\x1b[1;5D4802\r"},
		{"alt-left: a word back", "stdin", "echo 851889592158\x1b[1;3D4802\r"},
		{"meta-f: a word forward", "stdin", "echo x 851889592158\x01\x1bf\x1bf\x1bf\x1bb4802\r"},
		{"meta-d kills the word between", "stdin", "echo 4802 zz 851889592158\x1bb\x1bb\x1bd\x1b[3~\x7f\r"},
		{"meta-DEL kills the word before", "stdin", "echo 4802 zz\x1b\x7f\x7f851889592158\r"},
		{"echo: backspaces and insert", "stdout", "echo 851889592158" + strings.Repeat("\b", 12) + "\x1b[4@4802\r\n"},
		{"echo: cursor left and insert", "stdout", "echo 851889592158\x1b[12D\x1b[4@4802\r\n"},
		{"echo: padded to the raw length", "stdout", "echo 851889592158\x1b[12D\x1b[40@4802\r\n"},
		{"cursor to row and column", "stdout", "\x1b[3;10H851889592158\x1b[3;6H4802\r\n"},
		{"cursor to a column past the end", "stdout", "\x1b[10G851889592158\x1b[6G4802\r\n"},
		{"cursor right past the end", "stdout", "echo\x1b[5C851889592158\x1b[6G4802\r\n"},
		{"characters repeated (REP)", "stdout", "echo 48028518\x1b[1b9592158\r\n"},
		{"tab over written text", "stdout", "echo XXXX851889592158\r\t\x1b[3D4802\r\n"},
		{"cursor up to an earlier row", "stdout", "XXXX851889592158\r\nnext row\r\n\x1b[2A4802\r\n\n"},
		{"cursor to an earlier row and back", "stdout", "\x1b[5;1HXXXX851889592158\x1b[6;1Hrow six\x1b[5;1H4802\x1b[7;1H\r\n"},
		{"insert mode", "stdout", "echo 851889592158\x1b[12D\x1b[4h4802\x1b[4l\r\n"},
		{"insert mode after a CR", "stdout", "851889592158\r\x1b[4h4802\x1b[4l\r\n"},
		{"cursor saved and restored", "stdout", "echo \x1b7    851889592158\x1b84802\r\n"},
		{"cursor saved and restored (CSI)", "stdout", "echo \x1b[s    851889592158\x1b[u4802\r\n"},
		// Every vertical move is followed: the row a line feed left is
		// the one a later CUP to it returns to.
		{"CUP back to a row left by a line feed", "stdout", "\x1b[5;5H851889592158\r\nok\x1b[5;1H4802\x1b[7;1H\r\n"},
		{"reverse index (ESC M)", "stdout", "XXXX851889592158\r\nok\x1bM\r4802\r\n"},
		{"cursor previous line (CSI F)", "stdout", "XXXX851889592158\r\nok\x1b[F4802\r\n"},
		{"cursor next line (CSI E)", "stdout", clear + "ok\x1b[2;1H\x1b[EXXXX851889592158\x1b[3;1H4802\r\n"},
		{"index (ESC D) then CPL", "stdout", "XXXX851889592158\x1bD\x1bD\x1b[2F4802\r\n"},
		{"vertical tab and form feed", "stdout", "a\r\nb\r\nXXXX851889592158\x0b\x0cok\x1b[2A\r4802\r\n"},
		{"cursor down (VPR)", "stdout", clear + "a\r\nb\r\nXXXX851889592158\r\n\x1b[2e\x1b[3A\r4802\r\n"},
		{"row named after rows moved (VPA)", "stdout", "\x1b[3;1HXXXX851889592158\r\n\x1b[2e\x1b[3d\r4802\r\n"},
		{"cursor up stops at the first row", "stdout", "\x1b[2;1HXXXX851889592158\x1b[9A\x1b[B\r4802\r\n"},
		{"tab forward (CSI I)", "stdout", "\x1b[9G89592158\r4802\x1b[I\x1b[4D8518\r\n"},
		{"tab back (CSI Z)", "stdout", "\x1b[5G851889592158\x1b[2Z4802\r\n"},
		{"characters erased (CSI X)", "stdout", "4802X8518 8959 2158\x1b[15D\x1b[X\r\n"},
		{"row inserted above (CSI L)", "stdout", clear + "x\r\nXXXX851889592158\x1b[A\x1b[L\x1b[2B\r4802\r\n"},
		{"row deleted above (CSI M)", "stdout", "x\r\ny\r\nXXXX851889592158\x1b[2A\x1b[M\x1b[B\r4802\r\n"},
		{"row saved and restored", "stdout", clear + "XXXX851889592158\x1b7\r\n\r\nok\x1b8\r4802\r\n"},
		{"row saved and restored (CSI)", "stdout", clear + "a\r\nXXXX851889592158\x1b[s\x1b[3Bok\x1b[u\r4802\r\n"},
		{"alternate screen and back (1049)", "stdout", "XXXX851889592158\x1b[?1049h\x1b[1;1HYYYY\r\nline2\x1b[?1049l\r4802\r\n"},
		{"alternate screen and back (47)", "stdout", clear + "XXXX851889592158\x1b[?47h\r\nalt\x1b[A\x1b[?47l\r4802\r\n"},
		{"scrolled up (CSI S)", "stdout", clear + "a\r\nb\r\n\x1b[3;1HXXXX851889592158\x1b[S\x1b[2;1H4802\r\n"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			b := startBus(t, true)
			g := newGateway(t, b.em, nil)
			s := g.Session(events.Target{Kind: "ssh"})
			st := s.Stream(c.stream, gateway.StreamConfig{FlushAfter: time.Hour, Screen: gateway.NewScreen(80, 24)})
			st.Write([]byte(c.in))
			st.Close()
			got, ps := recorded(t, b, 1)
			if strings.Contains(string(got), "851889592158") || strings.Contains(digitsOnly(got), card) {
				t.Fatalf("recorded %q", got)
			}
			if ps[0]["redacted"] == nil {
				t.Fatalf("nothing listed as redacted: %v", ps[0])
			}
		})
	}
	// Insert mode set in a chunk recorded before still holds: the line
	// the next chunk completes is rendered in it.
	{
		b := startBus(t, true)
		g := newGateway(t, b.em, nil)
		st := g.Session(events.Target{Kind: "ssh"}).Stream("stdout", gateway.StreamConfig{FlushAfter: time.Hour})
		st.Write([]byte("\x1b[4h" + strings.Repeat("filler line\r\n", gateway.MaxHeld/6)))
		st.Flush()
		st.Write([]byte("851889592158\r4802\x1b[4l\r\n"))
		st.Close()
		got, _ := recorded(t, b, 2)
		if strings.Contains(string(got), "851889592158") {
			t.Errorf("insert mode of an earlier chunk: recorded …%q", got[len(got)-40:])
		}
	}
	// Meta keys whose edit the line editor does not make (M-t transposes
	// words: 851889592158 4802 becomes 4802 851889592158; M-y yanks; M-5
	// is a numeric argument): the line is unknown, so the input is
	// recorded by its digest only.
	// Output whose moves the rows cannot follow (a scroll region, tab
	// stops set or cleared, a row above those already rendered): what a
	// terminal shows is unknown, so it is recorded by its digest only.
	for _, in := range []string{
		"\x1b[1;5r\x1b[5;1H851889592158\r\n\x1b[4;1H4802\r\n",
		"\x1bH851889592158\r\n",
		"\x1b[3g851889592158\r\n",
		"\x1b[1;1H851889592158" + strings.Repeat("\r\n", 300) + "\x1b[1;1H4802\r\n",
	} {
		b := startBus(t, true)
		g := newGateway(t, b.em, nil)
		st := g.Session(events.Target{Kind: "ssh"}).Stream("stdout", gateway.StreamConfig{FlushAfter: time.Hour})
		st.Write([]byte(in))
		st.Close()
		if got, ps := recorded(t, b, 1); len(got) != 0 || ps[0]["binary"] != true {
			t.Errorf("%.40q recorded as %q, %v", in, got, ps[0])
		}
	}
	for _, in := range []string{"echo 851889592158 4802\x1bt\r", "echo 4802 zz\x1b\x7f851889592158\x1by\r", "echo 8518895921584802\x1b5\x02x\r"} {
		b := startBus(t, true)
		g := newGateway(t, b.em, nil)
		st := g.Session(events.Target{Kind: "ssh"}).Stream("stdin", gateway.StreamConfig{FlushAfter: time.Hour})
		st.Write([]byte(in))
		st.Close()
		if got, ps := recorded(t, b, 1); len(got) != 0 || ps[0]["binary"] != true {
			t.Errorf("%q recorded as %q, %v", in, got, ps[0])
		}
	}
	// Edits that make no value leave the text as typed.
	b := startBus(t, true)
	g := newGateway(t, b.em, nil)
	st := g.Session(events.Target{Kind: "ssh"}).Stream("stdin", gateway.StreamConfig{FlushAfter: time.Hour})
	st.Write([]byte("ls -la /tmp" + strings.Repeat("\x1b[D", 4) + "x\r"))
	st.Close()
	if got, ps := recorded(t, b, 1); ps[0]["redacted"] != nil || !strings.Contains(string(got), "ls -la") {
		t.Errorf("recorded %q, %v", got, ps[0]["redacted"])
	}
}

// An edit that breaks a value the bytes hold whole (a character or blanks
// inserted into it) leaves the bytes to be judged as they are: the value
// is still replaced.
func TestStreamJudgesBytesAnEditBreaks(t *testing.T) {
	for _, c := range []struct{ name, stream, in string }{
		{"typed into it", "stdin", "echo 4111111111111111" + strings.Repeat("\x1b[D", 8) + "x\r"},
		{"blank inserted into it", "stdout", "4111111111111111\x1b[8D\x1b[1@x\r\n"},
		{"overwritten after a CR", "stdout", "4111111111111111\rab\r\n"},
	} {
		t.Run(c.name, func(t *testing.T) {
			b := startBus(t, true)
			g := newGateway(t, b.em, nil)
			st := g.Session(events.Target{Kind: "ssh"}).Stream(c.stream, gateway.StreamConfig{FlushAfter: time.Hour})
			st.Write([]byte(c.in))
			st.Close()
			got, _ := recorded(t, b, 1)
			if strings.Contains(string(got), "41111111") {
				t.Fatalf("recorded %q", got)
			}
		})
	}
}

// Bytes that render as nothing (head -c 4M /dev/zero) hold no tail: a
// full buffer of them is recorded as text at once, never held and never
// turned binary.
func TestStreamNothingRenderedIsNotHeld(t *testing.T) {
	b := startBus(t, true)
	g := newGateway(t, b.em, nil)
	st := g.Session(events.Target{Kind: "ssh"}).Stream("stdout", gateway.StreamConfig{FlushAfter: time.Hour})
	zeros := make([]byte, gateway.MaxHeldRaw*gateway.DefaultMaxChunk*2)
	st.Write(zeros)
	st.Close()
	got, ps := recorded(t, b, len(zeros)/gateway.DefaultMaxChunk)
	if len(got) != len(zeros) {
		t.Fatalf("recorded %d bytes of text of %d", len(got), len(zeros))
	}
	for i, p := range ps {
		if p["binary"] != nil {
			t.Fatalf("chunk %d recorded as binary: %v", i, p)
		}
	}
}

// Blanks inserted without end (CSI 65536 @ over and over, 9 bytes each)
// grow a line no further than maxLine cells.
func TestStreamInsertBounded(t *testing.T) {
	b := startBus(t, true)
	g := newGateway(t, b.em, nil)
	st := g.Session(events.Target{Kind: "ssh"}).Stream("stdout", gateway.StreamConfig{FlushAfter: time.Hour})
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	before := m.TotalAlloc
	st.Write([]byte("ab\x1b[D" + strings.Repeat("\x1b[65536@", 1300)))
	st.Close()
	runtime.ReadMemStats(&m)
	if n := m.TotalAlloc - before; n > 256<<20 {
		t.Errorf("12 KB of insertions allocated %d MiB", n>>20)
	}
	// Cursor moves past the line's end on every line pad no more than
	// the bytes rendered warrant.
	st = g.Session(events.Target{Kind: "ssh"}).Stream("stdout", gateway.StreamConfig{FlushAfter: time.Hour})
	runtime.ReadMemStats(&m)
	before = m.TotalAlloc
	st.Write([]byte(strings.Repeat("\n\x1b[1024Gx", 1300)))
	st.Close()
	runtime.ReadMemStats(&m)
	if n := m.TotalAlloc - before; n > 256<<20 {
		t.Errorf("13 KB of cursor moves allocated %d MiB", n>>20)
	}
}

// A buffer whose raw bytes fill up while its rendered text is still
// within the held tail — escape sequences outweighing what they show, or
// an OSC string not yet ended — is not cut where the next write would
// complete a value: it grows while the tail is held, each event still at
// most MaxChunk bytes, and past MaxHeldRaw chunks it is recorded as
// binary (its digest), never as a value's first part. The attacker's
// case: 16 KiB of "ESC [ m" ending in "4111 1111", then " 1111 1111".
func TestStreamHoldsTailOfEscapes(t *testing.T) {
	limit := gateway.DefaultMaxChunk
	fill := strings.Repeat("\x1b[m", (limit-9)/3)
	var coloured strings.Builder
	for coloured.Len() < limit-20 {
		coloured.WriteString("\x1b[31mx\x1b[0m")
	}
	colouredCard := coloured.String() + "4\x1b[0m1\x1b[0m1\x1b[0m1 1111"
	cases := []struct {
		name   string
		writes []string
	}{
		{"escapes fill the buffer", []string{fill + strings.Repeat("x", limit-len(fill)-9) + "4111 1111", " 1111 1111\n"}},
		{"OSC not ended", []string{"\x1b]0;" + strings.Repeat("a", limit-4-9) + "4111 1111", " 1111 1111\x07\n"}},
		{"every character coloured", []string{colouredCard[:limit], colouredCard[limit:] + " 1111 1111\n" + strings.Repeat(coloured.String(), 3) + "\n"}},
		{"OSC past the bound", []string{"\x1b]0;" + strings.Repeat("a", gateway.MaxHeldRaw*limit-4-9) + "4111 1111", " 1111 1111\x07\n"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			b := startBus(t, true)
			g := newGateway(t, b.em, nil)
			s := g.Session(events.Target{Kind: "ssh"})
			st := s.Stream("stdout", gateway.StreamConfig{FlushAfter: time.Hour})
			total := 0
			for _, w := range c.writes {
				st.Write([]byte(w))
				total += len(w)
			}
			st.Close()
			var chunks []map[string]any
			var got []byte
			natstest.CheckFor(t, 10*time.Second, 20*time.Millisecond, func() error {
				chunks, got = nil, nil
				sum := 0
				for _, c := range outputs(natstest.Events(t, b.js, "")) {
					chunks = append(chunks, c.Payload)
					sum += int(c.Payload["bytes"].(float64))
					data, _ := c.Payload["data"].(string)
					d, _ := base64.StdEncoding.DecodeString(data)
					got = append(got, d...)
				}
				if sum != total {
					return fmt.Errorf("%d of %d bytes recorded", sum, total)
				}
				return nil
			})
			if strings.Contains(digitsOnly(got), "4111111111111111") {
				t.Fatalf("recorded the card: …%q", got[max(0, len(got)-60):])
			}
			at := 0
			for i, p := range chunks {
				if int(p["offset"].(float64)) != at {
					t.Fatalf("chunk %d at %v, want %d", i, p["offset"], at)
				}
				if n := int(p["bytes"].(float64)); n > limit && p["redacted"] == nil {
					t.Fatalf("chunk %d holds %d bytes, more than %d", i, n, limit)
				}
				at += int(p["bytes"].(float64))
			}
		})
	}
}
