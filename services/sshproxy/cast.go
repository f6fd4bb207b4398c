package sshproxy

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/auditledger/auditledger/events"
	"github.com/auditledger/auditledger/ledger/bulk"
)

// ErrNoSession: the events hold no session.started for the session.
var ErrNoSession = errors.New("no session.started for the session")

// CastFrame is one asciicast v2 event: seconds since the session
// started, the kind ("o" output, "i" input, "r" resize) and the data.
type CastFrame struct {
	Time float64
	Kind string
	Data string
}

// Cast is a recorded terminal session in asciicast v2 terms.
type Cast struct {
	Width, Height int
	Started       time.Time
	Term          string
	Frames        []CastFrame
}

// CastOf rebuilds a session's terminal from its recorded events (in any
// order): its session.output chunks, stdout and stderr as output, stdin
// as input, and its window changes. Each chunk is timed by when it was
// recorded (at most FlushAfter after its first byte); a character split
// between two chunks is held for the next, so each frame is valid
// UTF-8 and the frames together are the stream's bytes. A bulk piece
// plays as SealedPiece: CastWith opens them.
func CastOf(evs []*events.Event, session string) (*Cast, error) {
	return CastWith(context.Background(), evs, session, nil)
}

// output is a session.output event's payload, as a cast reads it.
type output struct {
	e      *events.Event
	Stream string `json:"stream"`
	Offset int64  `json:"offset"`
	Bytes  int64  `json:"bytes"`
	Data   string `json:"data"`
	// BulkBefore: the last bytes of the piece before this chunk that a
	// value found in the chunk began with (docs/FORMAT.md §1.7).
	BulkBefore int `json:"bulk_before"`
	// Insert: a piece that begins in insert mode (docs/FORMAT.md §1.7).
	Insert bool `json:"insert"`
	piece  int  // the index of its bulk piece, or -1
}

// CastWith is CastOf with the session's bulk pieces (docs/FORMAT.md
// §1.7) played as open returns them (nil: each as SealedPiece), all
// asked for at once, in the order of their events.
func CastWith(ctx context.Context, evs []*events.Event, session string, open Opener) (*Cast, error) {
	c, outs, sp, err := castParts(evs, session)
	if err != nil {
		return nil, err
	}
	pieces := sp.Pieces
	played, err := openAll(ctx, open, pieces)
	if err != nil {
		return nil, err
	}
	held := map[string][]byte{}
	for _, o := range outs {
		e := o.e
		var raw []byte
		if o.piece >= 0 {
			raw = played[o.piece]
		} else {
			var err error
			raw, err = base64.StdEncoding.DecodeString(o.Data)
			if err != nil {
				if !wholePlaceholder(o.Data) {
					return nil, fmt.Errorf("event %s: data: %w", e.ID, err)
				}
				// A chunk redacted as a whole (docs/FORMAT.md §1.1,
				// session.output): its data is the placeholder itself, and it
				// plays as that, showing where output was withheld.
				raw = []byte(o.Data)
			}
		}
		at := e.Time.Sub(c.Started).Seconds()
		if at < 0 {
			at = 0
		}
		kind := map[string]string{"stdout": "o", "stderr": "o", "stdin": "i", "resize": "r"}[o.Stream]
		if kind == "" {
			continue
		}
		if kind == "r" {
			for _, line := range strings.Fields(string(raw)) {
				// A size withheld (its digits would complete a value)
				// changes nothing in the replay.
				if cols, rows, ok := strings.Cut(line, "x"); ok && decimal(cols) && decimal(rows) {
					c.Frames = append(c.Frames, CastFrame{at, "r", line})
				}
			}
			continue
		}
		b := append(held[kind], raw...)
		cut := validPrefix(b)
		held[kind] = slices.Clone(b[cut:])
		if cut > 0 {
			c.Frames = append(c.Frames, CastFrame{at, kind, string(b[:cut])})
		}
	}
	return c, nil
}

// SessionPieces is what a session's recorded events say of its bulk
// pieces: each as its event names it, with the terminal's size when it
// was recorded (the pty-req, then the window changes before it) and its
// Cut (the bulk_before of the text chunk after it), in the order of
// their events — what a cast plays them with, never what a reader says.
type SessionPieces struct {
	Pieces []Piece
	// Ended: the events hold the session's session.ended, so no chunk
	// is still to come.
	Ended bool
	// Loose[i]: the events hold no chunk of piece i's stream before it
	// (it starts after byte 0) or none after it: what joins it is not
	// among them (not recorded yet, or not yet where they were read).
	Loose []bool
}

// PiecesOf returns the session's pieces as its events record them
// (ErrNoSession without its session.started).
func PiecesOf(evs []*events.Event, session string) (*SessionPieces, error) {
	_, _, sp, err := castParts(evs, session)
	return sp, err
}

// castParts reads the session's events: the cast's size and start, its
// session.output chunks in order, and its pieces.
func castParts(evs []*events.Event, session string) (*Cast, []output, *SessionPieces, error) {
	var mine []*events.Event
	c := &Cast{Width: 80, Height: 24}
	found, ended := false, false
	for _, e := range evs {
		if e.SessionID != session {
			continue
		}
		mine = append(mine, e)
		ended = ended || e.Type == events.SessionEnded
		if e.Type == events.SessionStarted {
			found = true
			c.Started = e.Time
			var p struct {
				Pty *struct {
					Term       string `json:"term"`
					Cols, Rows int
				} `json:"pty"`
			}
			json.Unmarshal(e.Payload, &p)
			if p.Pty != nil {
				c.Term = p.Pty.Term
				if p.Pty.Cols > 0 && p.Pty.Rows > 0 {
					c.Width, c.Height = p.Pty.Cols, p.Pty.Rows
				}
			}
		}
	}
	if !found {
		return nil, nil, nil, fmt.Errorf("%w %s", ErrNoSession, session)
	}
	slices.SortStableFunc(mine, func(a, b *events.Event) int { return int(a.SessionSeq) - int(b.SessionSeq) })
	// The chunks, and the pieces among them with the terminal's size
	// when each was recorded (the window changes before it).
	var outs []output
	var pieces []Piece
	cols, rows := c.Width, c.Height
	for _, e := range mine {
		if e.Type != events.SessionOutput {
			continue
		}
		o := output{e: e, piece: -1}
		if err := json.Unmarshal(e.Payload, &o); err != nil {
			return nil, nil, nil, fmt.Errorf("event %s: %w", e.ID, err)
		}
		p, ok, err := bulk.Of(e)
		if err != nil {
			return nil, nil, nil, err
		}
		if ok {
			o.piece = len(pieces)
			pieces = append(pieces, Piece{Piece: p, Rows: rows, Cols: cols, Insert: o.Insert})
		} else if o.Stream == "resize" {
			if raw, err := base64.StdEncoding.DecodeString(o.Data); err == nil {
				for _, line := range strings.Fields(string(raw)) {
					if cs, rs, ok := strings.Cut(line, "x"); ok && decimal(cs) && decimal(rs) {
						cols, _ = strconv.Atoi(cs)
						rows, _ = strconv.Atoi(rs)
					}
				}
			}
		}
		outs = append(outs, o)
	}
	// A value that began in a piece and ended in the text after it is the
	// text's placeholder: its first bytes are dropped from the piece.
	ends := map[string]int{}
	for i, p := range pieces {
		ends[p.Stream+"@"+strconv.FormatInt(p.Offset+int64(p.Bytes), 10)] = i
	}
	for _, o := range outs {
		if i, ok := ends[o.Stream+"@"+strconv.FormatInt(o.Offset, 10)]; ok && o.piece < 0 && o.BulkBefore > 0 {
			pieces[i].Cut = min(o.BulkBefore, pieces[i].Bytes)
		}
	}
	// A piece is joined on a side when a chunk of its stream reaches it
	// there, or lies beyond it (the bytes between lost, §1.1).
	// (A piece's own end is past its offset, so the stream's first end
	// and last offset, the piece's included, tell.)
	firstEnd, lastOffset := map[string]int64{}, map[string]int64{}
	for _, o := range outs {
		if e, ok := firstEnd[o.Stream]; !ok || o.Offset+o.Bytes < e {
			firstEnd[o.Stream] = o.Offset + o.Bytes
		}
		lastOffset[o.Stream] = max(lastOffset[o.Stream], o.Offset)
	}
	loose := make([]bool, len(pieces))
	for i, p := range pieces {
		before := p.Offset == 0 || firstEnd[p.Stream] <= p.Offset
		after := lastOffset[p.Stream] >= p.Offset+int64(p.Bytes)
		loose[i] = !before || !after
	}
	return c, outs, &SessionPieces{Pieces: pieces, Ended: ended, Loose: loose}, nil
}

// decimal reports whether s is a run of decimal digits.
func decimal(s string) bool {
	return s != "" && strings.Trim(s, "0123456789") == ""
}

// validPrefix is the length of b without an incomplete UTF-8 sequence at
// its end (at most 3 bytes).
func validPrefix(b []byte) int {
	for k := 1; k <= 3 && k <= len(b); k++ {
		i := len(b) - k
		if utf8.RuneStart(b[i]) {
			if !utf8.FullRune(b[i:]) {
				return i
			}
			break
		}
	}
	return len(b)
}

// WriteTo writes the cast as an asciicast v2 file.
func (c *Cast) WriteTo(w io.Writer) (int64, error) {
	head := map[string]any{"version": 2, "width": c.Width, "height": c.Height, "timestamp": c.Started.Unix()}
	if c.Term != "" {
		head["env"] = map[string]string{"TERM": c.Term}
	}
	var b strings.Builder
	h, _ := json.Marshal(head)
	b.Write(h)
	b.WriteByte('\n')
	for _, f := range c.Frames {
		d, _ := json.Marshal(f.Data)
		fmt.Fprintf(&b, "[%s, %q, %s]\n", strconv.FormatFloat(f.Time, 'f', 6, 64), f.Kind, d)
	}
	n, err := io.WriteString(w, b.String())
	return int64(n), err
}

// wholePlaceholder reports whether data is one placeholder of the
// recording rule, [REDACTED:<detector>], and nothing else.
func wholePlaceholder(data string) bool {
	d, ok := strings.CutPrefix(data, "[REDACTED:")
	return ok && strings.HasSuffix(d, "]") && !strings.ContainsAny(d[:len(d)-1], "[]")
}
