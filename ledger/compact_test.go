package ledger

import (
	"fmt"
	"testing"

	"github.com/transparency-dev/merkle/compact"
	"github.com/transparency-dev/merkle/rfc6962"
)

// The compact range reaches the same roots as the tree, from any starting
// size, and holds the same hashes as transparency-dev/merkle's compact
// ranges.
func TestCompactRange(t *testing.T) {
	const n = 300
	tree := NewTree()
	var leaves []Hash
	for i := range n {
		leaves = append(leaves, LeafHash(fmt.Appendf(nil, "leaf %d", i)))
		tree.Append(leaves[i])
	}
	rf := &compact.RangeFactory{Hash: rfc6962.DefaultHasher.HashChildren}
	for _, start := range []uint64{0, 1, 2, 3, 7, 8, 100, 255, 256, 257} {
		var prefix []Hash
		for _, c := range CompactRangeIndexes(start) {
			prefix = append(prefix, tree.subtree(c[1]<<c[0], (c[1]+1)<<c[0]))
		}
		cr, err := NewCompactRange(start, prefix)
		if err != nil {
			t.Fatal(err)
		}
		if want, _ := tree.Root(start); cr.Root() != want {
			t.Fatalf("root at %d from its compact range", start)
		}
		ref := rf.NewEmptyRange(0)
		for i := uint64(0); i < start; i++ {
			ref.Append(leaves[i][:], nil)
		}
		for i := start; i < n; i++ {
			cr.Append(leaves[i])
			ref.Append(leaves[i][:], nil)
			if want, _ := tree.Root(i + 1); cr.Root() != want {
				t.Fatalf("from %d: root at %d differs from the tree's", start, i+1)
			}
		}
		got := cr.Hashes()
		if len(got) != len(ref.Hashes()) {
			t.Fatalf("from %d: %d hashes, transparency-dev/merkle %d", start, len(got), len(ref.Hashes()))
		}
		for i, h := range ref.Hashes() {
			if string(got[i][:]) != string(h) {
				t.Fatalf("from %d: hash %d differs from transparency-dev/merkle's compact range", start, i)
			}
		}
	}
	if _, err := NewCompactRange(5, []Hash{{}}); err == nil {
		t.Error("a compact range of size 5 with one hash was accepted")
	}
}
