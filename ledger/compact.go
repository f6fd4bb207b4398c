package ledger

import (
	"fmt"
	"math/bits"
)

// CompactRange is the tree over leaves 0..size-1 kept as the hashes of its
// largest complete subtrees, left to right (one per set bit of size): the
// least a reader needs to go on appending leaves and compute every root
// after. An evidence bundle ships the compact range of the leaves before
// its period; the verifier appends the period's leaves and so reaches the
// roots the start and end checkpoints sign (docs/FORMAT.md §12).
type CompactRange struct {
	size   uint64
	hashes []Hash
}

// NewCompactRange starts from the compact range of a tree of size size:
// hashes are its complete subtrees' hashes, largest first.
func NewCompactRange(size uint64, hashes []Hash) (*CompactRange, error) {
	if len(hashes) != bits.OnesCount64(size) {
		return nil, fmt.Errorf("%w: a tree of size %d has %d complete subtrees, got %d hashes", ErrMalformed, size, bits.OnesCount64(size), len(hashes))
	}
	return &CompactRange{size: size, hashes: append([]Hash(nil), hashes...)}, nil
}

// CompactRangeIndexes are the (level, index) coordinates of the complete
// subtrees a tree of size size is made of, largest first: level k, index
// i covers the leaves i·2^k … (i+1)·2^k − 1.
func CompactRangeIndexes(size uint64) [][2]uint64 {
	var out [][2]uint64
	start := uint64(0)
	for k := 63; k >= 0; k-- {
		if size&(1<<k) != 0 {
			out = append(out, [2]uint64{uint64(k), start >> k})
			start += 1 << k
		}
	}
	return out
}

// Size is the number of leaves appended so far.
func (c *CompactRange) Size() uint64 { return c.size }

// Hashes are the complete subtrees' hashes, largest first.
func (c *CompactRange) Hashes() []Hash { return append([]Hash(nil), c.hashes...) }

// Append adds the next leaf hash.
func (c *CompactRange) Append(leaf Hash) {
	c.hashes = append(c.hashes, leaf)
	for n := c.size; n&1 == 1; n >>= 1 {
		l := len(c.hashes)
		c.hashes[l-2] = NodeHash(c.hashes[l-2], c.hashes[l-1])
		c.hashes = c.hashes[:l-1]
	}
	c.size++
}

// Root is the tree's root (RFC 6962 MTH): the subtrees folded right to
// left.
func (c *CompactRange) Root() Hash {
	if len(c.hashes) == 0 {
		return EmptyRoot
	}
	r := c.hashes[len(c.hashes)-1]
	for i := len(c.hashes) - 2; i >= 0; i-- {
		r = NodeHash(c.hashes[i], r)
	}
	return r
}
