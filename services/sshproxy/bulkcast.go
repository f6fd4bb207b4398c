package sshproxy

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"sync"

	"github.com/auditledger/auditledger/ledger/bulk"
	"github.com/auditledger/auditledger/services/gateway"
)

// What a bulk piece (docs/FORMAT.md §1.7) plays as when its bytes are
// not shown.
const (
	// ErasedPiece: its subject was erased (the key destroyed).
	ErasedPiece = "[ERASED]"
	// SealedPiece: the reader opened no piece (no key store, or a
	// cast rebuilt without one).
	SealedPiece = "[SEALED]"
	// BinaryPiece: bytes of it are not text the detectors read, so, as
	// for a binary chunk, nothing of them is shown: each run of them
	// plays as this.
	BinaryPiece = "[BINARY]"
)

// Piece is a bulk piece a cast plays, with the size of the terminal it
// was shown on when recorded (0: not known), which reading it as a
// terminal renders it follows.
type Piece struct {
	bulk.Piece
	Rows int `json:"rows,omitempty"`
	Cols int `json:"cols,omitempty"`
	// Cut is how many of its last bytes a value found in the text chunk
	// after it began with (that chunk's bulk_before): they play as part
	// of that chunk's placeholder, not as themselves.
	Cut int `json:"cut,omitempty"`
	// Insert: the stream is in insert mode where the piece begins (its
	// event's insert).
	Insert bool `json:"insert,omitempty"`
}

// An Opener returns what each of a session's pieces, in stream order,
// plays as: its bytes as a chunk's data would have recorded them, or one
// of the placeholders above. Pieces it cannot read (missing, damaged)
// fail it, naming them: a cast never plays them as nothing.
type Opener func(ctx context.Context, pieces []Piece) ([][]byte, error)

// PlayPieces is what an Opener returns, given open, which returns piece
// i's bytes as the stream carried them (bulk.Reader Open): each
// piece read as its stream's chunks are (gateway.BulkText), together
// with the pieces next to it in its stream, so that a value across two
// pieces is found whole and replaced in both.
func PlayPieces(ctx context.Context, pieces []Piece, open func(ctx context.Context, i int, p Piece) ([]byte, error)) ([][]byte, error) {
	return PlaySome(ctx, pieces, nil, open)
}

// PlaySome is PlayPieces judging only the pieces want marks (nil: all),
// the others opened only to be read beside them; what it returns for
// those is nil.
func PlaySome(ctx context.Context, pieces []Piece, want []bool, open func(ctx context.Context, i int, p Piece) ([]byte, error)) ([][]byte, error) {
	raw := make([][]byte, len(pieces))
	out := make([][]byte, len(pieces))
	for i, p := range pieces {
		b, err := open(ctx, i, p)
		switch {
		case errors.Is(err, bulk.ErrErased) && (want == nil || want[i]):
			out[i] = []byte(ErasedPiece)
		case errors.Is(err, bulk.ErrNoKeys) && (want == nil || want[i]):
			out[i] = []byte(SealedPiece)
		case errors.Is(err, bulk.ErrErased), errors.Is(err, bulk.ErrNoKeys):
		case err != nil:
			return nil, err
		default:
			raw[i] = b[:len(b)-min(max(p.Cut, 0), len(b))]
		}
	}
	// The piece before and after each in its stream, when they join.
	last := map[string]int{}
	prev := make([]int, len(pieces))
	next := make([]int, len(pieces))
	for i, p := range pieces {
		prev[i], next[i] = -1, -1
		if j, ok := last[p.Stream]; ok && pieces[j].Offset+int64(pieces[j].Bytes) == p.Offset {
			prev[i], next[j] = j, i
		}
		last[p.Stream] = i
	}
	// Each piece judged apart (its neighbours only read), on every CPU.
	var wg sync.WaitGroup
	work := make(chan int)
	for range runtime.GOMAXPROCS(0) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range work {
				var before, after []byte
				if prev[i] >= 0 {
					before = raw[prev[i]]
				}
				if next[i] >= 0 {
					after = raw[next[i]]
				}
				p := pieces[i]
				out[i] = gateway.BulkText(before, raw[i], after, p.Stream == "stdin", p.Rows, p.Cols, p.Insert, []byte(BinaryPiece))
			}
		}()
	}
	for i := range pieces {
		if raw[i] != nil && (want == nil || want[i]) {
			work <- i
		}
	}
	close(work)
	wg.Wait()
	return out, nil
}

// openAll calls open with the pieces, and checks its answer.
func openAll(ctx context.Context, open Opener, pieces []Piece) ([][]byte, error) {
	if len(pieces) == 0 {
		return nil, nil
	}
	if open == nil {
		out := make([][]byte, len(pieces))
		for i := range out {
			out[i] = []byte(SealedPiece)
		}
		return out, nil
	}
	out, err := open(ctx, pieces)
	if err != nil {
		return nil, err
	}
	if len(out) != len(pieces) {
		return nil, fmt.Errorf("bulk pieces: %d asked for, %d answered", len(pieces), len(out))
	}
	return out, nil
}
