package ledger

import (
	"fmt"
	"math/bits"
)

// Tree is an in-memory RFC 6962 Merkle tree that keeps every complete
// subtree hash, so the root, inclusion proofs and consistency proofs for any
// past size cost O(log n) hashes, never a rehash of the log. It holds about
// 2n hashes (64 MiB per million leaves).
//
// Tree is not safe for concurrent mutation; readers may run concurrently
// with each other.
type Tree struct {
	// levels[k][i] is the hash of the complete subtree over leaves
	// [i·2^k, (i+1)·2^k).
	levels [][]Hash
}

// NewTree returns an empty tree.
func NewTree() *Tree { return &Tree{levels: [][]Hash{nil}} }

// Size is the number of leaves.
func (t *Tree) Size() uint64 { return uint64(len(t.levels[0])) }

// Append adds one leaf hash.
func (t *Tree) Append(leaf Hash) {
	t.levels[0] = append(t.levels[0], leaf)
	for k, i := 0, len(t.levels[0])-1; i&1 == 1; k, i = k+1, i>>1 {
		if k+1 == len(t.levels) {
			t.levels = append(t.levels, nil)
		}
		t.levels[k+1] = append(t.levels[k+1], NodeHash(t.levels[k][i-1], t.levels[k][i]))
	}
}

// truncate shrinks the tree back to size leaves.
func (t *Tree) truncate(size uint64) {
	for k := range t.levels {
		t.levels[k] = t.levels[k][:size>>k]
	}
}

// LeafHash returns the leaf hash at index i.
func (t *Tree) LeafHash(i uint64) (Hash, error) {
	if i >= t.Size() {
		return Hash{}, fmt.Errorf("%w: leaf %d, tree size %d", ErrOutOfRange, i, t.Size())
	}
	return t.levels[0][i], nil
}

// Root returns the root hash at a past or current size.
func (t *Tree) Root(size uint64) (Hash, error) {
	if size > t.Size() {
		return Hash{}, fmt.Errorf("%w: size %d, tree size %d", ErrOutOfRange, size, t.Size())
	}
	if size == 0 {
		return EmptyRoot, nil
	}
	return t.subtree(0, size), nil
}

// subtree is MTH(D[lo:hi]) for lo < hi ≤ Size.
func (t *Tree) subtree(lo, hi uint64) Hash {
	n := hi - lo
	if n&(n-1) == 0 && lo%n == 0 {
		k := bits.TrailingZeros64(n)
		return t.levels[k][lo>>k]
	}
	k := split(n)
	return NodeHash(t.subtree(lo, lo+k), t.subtree(lo+k, hi))
}

// split is the largest power of two strictly less than n (n ≥ 2).
func split(n uint64) uint64 { return 1 << (bits.Len64(n-1) - 1) }

// InclusionProof is PATH(index, D[0:size]) of RFC 6962 §2.1.1, leaf sibling first.
func (t *Tree) InclusionProof(index, size uint64) ([]Hash, error) {
	if size > t.Size() || index >= size {
		return nil, fmt.Errorf("%w: inclusion of %d in size %d, tree size %d", ErrOutOfRange, index, size, t.Size())
	}
	var proof []Hash
	t.path(index, 0, size, &proof)
	return proof, nil
}

func (t *Tree) path(m, lo, hi uint64, out *[]Hash) {
	if hi-lo == 1 {
		return
	}
	k := split(hi - lo)
	if m < lo+k {
		t.path(m, lo, lo+k, out)
		*out = append(*out, t.subtree(lo+k, hi))
	} else {
		t.path(m, lo+k, hi, out)
		*out = append(*out, t.subtree(lo, lo+k))
	}
}

// ConsistencyProof is PROOF(m, D[0:n]) of RFC 6962 §2.1.2.
func (t *Tree) ConsistencyProof(m, n uint64) ([]Hash, error) {
	if n > t.Size() || m > n {
		return nil, fmt.Errorf("%w: consistency %d→%d, tree size %d", ErrOutOfRange, m, n, t.Size())
	}
	if m == 0 || m == n {
		return nil, nil
	}
	var proof []Hash
	t.subproof(m, 0, n, true, &proof)
	return proof, nil
}

func (t *Tree) subproof(m, lo, hi uint64, complete bool, out *[]Hash) {
	if m == hi-lo {
		if !complete {
			*out = append(*out, t.subtree(lo, hi))
		}
		return
	}
	k := split(hi - lo)
	if m <= k {
		t.subproof(m, lo, lo+k, complete, out)
		*out = append(*out, t.subtree(lo+k, hi))
	} else {
		t.subproof(m-k, lo+k, hi, false, out)
		*out = append(*out, t.subtree(lo, lo+k))
	}
}

// compactRange holds the roots of the perfect subtrees covering [0, size),
// largest first: enough to extend the tree and compute its root in
// O(log n) memory, which is what a streaming verifier needs.
type compactRange struct {
	size  uint64
	nodes []Hash
}

func (c *compactRange) append(leaf Hash) {
	h := leaf
	for s := c.size; s&1 == 1; s >>= 1 {
		n := len(c.nodes) - 1
		h = NodeHash(c.nodes[n], h)
		c.nodes = c.nodes[:n]
	}
	c.nodes = append(c.nodes, h)
	c.size++
}

func (c *compactRange) root() Hash {
	if c.size == 0 {
		return EmptyRoot
	}
	h := c.nodes[len(c.nodes)-1]
	for i := len(c.nodes) - 2; i >= 0; i-- {
		h = NodeHash(c.nodes[i], h)
	}
	return h
}
