package ledger_test

import (
	"context"
	"path/filepath"
	"strings"
	"testing"

	"github.com/auditledger/auditledger/ledger"
	"github.com/auditledger/auditledger/ledger/file"
)

// Follow reads a log a segment at a time from a saved position, checking
// each as verify does; the position survives encoding (a reader keeps it
// in its database) and ends at the signed root.
func TestFollow(t *testing.T) {
	ctx := context.Background()
	s := goldenKey(t)
	l, st := newLog(t, t.TempDir(), s)
	for _, n := range []int{3, 4, 1, 9} {
		if _, err := l.Append(ctx, entries(int(l.Size()), n)); err != nil {
			t.Fatal(err)
		}
	}
	var pos ledger.Position
	segments := 0
	for {
		f, err := ledger.Follow(ctx, st, s.Verifier(), pos)
		if err != nil {
			t.Fatal(err)
		}
		if f == nil {
			break
		}
		segments++
		b, _ := f.Next.MarshalBinary()
		var back ledger.Position
		if err := back.UnmarshalBinary(b); err != nil {
			t.Fatal(err)
		}
		if back.Root() != f.Checkpoint.Root || back.Size != f.Checkpoint.Size {
			t.Fatalf("position after %s: root %s size %d, checkpoint %s size %d", f.Name, back.Root(), back.Size, f.Checkpoint.Root, f.Checkpoint.Size)
		}
		pos = back
	}
	if segments != 4 || pos.Size != 17 {
		t.Fatalf("followed %d segments to size %d, want 4 and 17", segments, pos.Size)
	}
	// A forged record (not an event), correctly chained and signed, stops it.
	bad, err := file.Open(filepath.Join(rulesDir, "store-not-an-event"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ledger.Follow(ctx, bad, s.Verifier(), ledger.Position{}); err == nil || !strings.Contains(err.Error(), "not a valid event") {
		t.Fatalf("following a forged record: %v", err)
	}
	// A position that does not match the store (another log's) fails at the chain.
	wrong := pos
	wrong.Size = 3
	wrong.Range = wrong.Range[:2]
	if _, err := ledger.Follow(ctx, st, s.Verifier(), wrong); err == nil {
		t.Fatal("a position from elsewhere was accepted")
	}
}
