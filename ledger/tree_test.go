package ledger

import (
	"bytes"
	"fmt"
	"testing"

	"github.com/transparency-dev/merkle/proof"
	"github.com/transparency-dev/merkle/rfc6962"
	"github.com/transparency-dev/merkle/testonly"
)

func toSlices(hs []Hash) [][]byte {
	out := make([][]byte, len(hs))
	for i := range hs {
		out[i] = hs[i][:]
	}
	return out
}

// TestTreeAgainstReference checks roots and both kinds of proof, for every
// size and index up to 130 (crossing several powers of two), against
// transparency-dev/merkle, an independent implementation.
func TestTreeAgainstReference(t *testing.T) {
	const n = 130
	ours := NewTree()
	ref := testonly.New(rfc6962.DefaultHasher)
	for i := range n {
		data := fmt.Appendf(nil, "leaf %d", i)
		ours.Append(LeafHash(data))
		ref.AppendData(data)
	}
	if got, want := LeafHash([]byte("x")), rfc6962.DefaultHasher.HashLeaf([]byte("x")); !bytes.Equal(got[:], want) {
		t.Fatalf("leaf hash %x, reference %x", got, want)
	}
	for size := uint64(0); size <= n; size++ {
		root, err := ours.Root(size)
		if err != nil {
			t.Fatal(err)
		}
		if want := ref.HashAt(size); !bytes.Equal(root[:], want) {
			t.Fatalf("root at %d: %x, reference %x", size, root, want)
		}
		for idx := uint64(0); idx < size; idx++ {
			p, err := ours.InclusionProof(idx, size)
			if err != nil {
				t.Fatal(err)
			}
			leaf, _ := ours.LeafHash(idx)
			if err := proof.VerifyInclusion(rfc6962.DefaultHasher, idx, size, leaf[:], toSlices(p), root[:]); err != nil {
				t.Fatalf("reference rejects our inclusion proof %d/%d: %v", idx, size, err)
			}
			if err := VerifyInclusion(leaf, idx, size, p, root); err != nil {
				t.Fatalf("our verifier rejects our inclusion proof %d/%d: %v", idx, size, err)
			}
			if len(p) > 0 {
				bad := append([]Hash(nil), p...)
				bad[len(bad)/2][0] ^= 1
				if VerifyInclusion(leaf, idx, size, bad, root) == nil {
					t.Fatalf("our verifier accepts a corrupted proof %d/%d", idx, size)
				}
			}
		}
		for m := uint64(0); m <= size; m++ {
			p, err := ours.ConsistencyProof(m, size)
			if err != nil {
				t.Fatal(err)
			}
			refP, _ := ref.ConsistencyProof(m, size)
			if !equalProofs(toSlices(p), refP) {
				t.Fatalf("consistency %d→%d differs from the reference", m, size)
			}
			old, _ := ours.Root(m)
			if err := proof.VerifyConsistency(rfc6962.DefaultHasher, m, size, toSlices(p), old[:], root[:]); err != nil {
				t.Fatalf("reference rejects our consistency proof %d→%d: %v", m, size, err)
			}
			if err := VerifyConsistency(m, size, p, old, root); err != nil {
				t.Fatalf("our verifier rejects consistency %d→%d: %v", m, size, err)
			}
			if m > 0 && m < size {
				wrong := old
				wrong[0] ^= 1
				if VerifyConsistency(m, size, p, wrong, root) == nil {
					t.Fatalf("our verifier accepts consistency %d→%d from a wrong old root", m, size)
				}
			}
		}
	}
}

func equalProofs(a, b [][]byte) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if !bytes.Equal(a[i], b[i]) {
			return false
		}
	}
	return true
}

func TestCompactRangeMatchesTree(t *testing.T) {
	tr := NewTree()
	var cr compactRange
	for i := range 300 {
		h := LeafHash([]byte{byte(i), byte(i >> 8)})
		tr.Append(h)
		cr.append(h)
		want, _ := tr.Root(tr.Size())
		if cr.root() != want {
			t.Fatalf("size %d: compact root %s, tree root %s", tr.Size(), cr.root(), want)
		}
	}
}

func TestTreeTruncate(t *testing.T) {
	tr := NewTree()
	for i := range 77 {
		tr.Append(LeafHash([]byte{byte(i)}))
	}
	want, _ := tr.Root(50)
	tr.truncate(50)
	if got, _ := tr.Root(50); got != want || tr.Size() != 50 {
		t.Fatalf("after truncate: size %d root %s, want 50 and %s", tr.Size(), got, want)
	}
	for i := 50; i < 77; i++ {
		tr.Append(LeafHash([]byte{byte(i)}))
	}
	if _, err := tr.Root(78); err == nil {
		t.Fatal("root beyond size accepted")
	}
}
