package projections

import (
	"context"
	"errors"
	"fmt"
	"math/bits"

	"github.com/jackc/pgx/v5/pgxpool"
	"golang.org/x/mod/sumdb/tlog"

	"github.com/auditledger/auditledger/ledger"
)

// The projection keeps the log's Merkle tree as stored hashes (the
// layout of golang.org/x/mod/sumdb/tlog: every complete subtree's hash,
// in an order where the hashes a record adds follow the previous
// record's), one blob per segment in tree_hashes. A proof then reads
// O(log n) hashes, whatever the log's size.

// storedHashes computes the stored hashes a segment adds to the tree at
// pos: they occupy the stored indexes [first, first + len/32). The
// hashes it needs from before the segment are the roots of the compact
// range that pos carries.
func storedHashes(pos ledger.Position, leaves []ledger.Hash) (first int64, blob []byte, err error) {
	known := map[int64]tlog.Hash{}
	start := uint64(0)
	for _, h := range pos.Range {
		level := bits.Len64(pos.Size-start) - 1 // largest subtree first
		known[tlog.StoredHashIndex(level, int64(start>>level))] = tlog.Hash(h)
		start += 1 << level
	}
	first = tlog.StoredHashIndex(0, int64(pos.Size))
	var out []tlog.Hash
	read := tlog.HashReaderFunc(func(indexes []int64) ([]tlog.Hash, error) {
		hs := make([]tlog.Hash, len(indexes))
		for i, x := range indexes {
			switch {
			case x >= first && x-first < int64(len(out)):
				hs[i] = out[x-first]
			default:
				h, ok := known[x]
				if !ok {
					return nil, fmt.Errorf("projections: stored hash %d is neither in the segment nor in the position's range", x)
				}
				hs[i] = h
			}
		}
		return hs, nil
	})
	for i, leaf := range leaves {
		hs, err := tlog.StoredHashesForRecordHash(int64(pos.Size)+int64(i), tlog.Hash(leaf), read)
		if err != nil {
			return 0, nil, err
		}
		out = append(out, hs...)
	}
	blob = make([]byte, 0, len(out)*ledger.HashSize)
	for _, h := range out {
		blob = append(blob, h[:]...)
	}
	return first, blob, nil
}

// HashReader reads the log's stored hashes (x/mod/sumdb/tlog's layout)
// from the projection: for tiles, proofs and roots.
func HashReader(ctx context.Context, db *pgxpool.Pool) tlog.HashReader { return hashReader{ctx, db} }

// hashReader reads stored hashes from tree_hashes.
type hashReader struct {
	ctx context.Context
	db  *pgxpool.Pool
}

func (r hashReader) ReadHashes(indexes []int64) ([]tlog.Hash, error) {
	out := make([]tlog.Hash, len(indexes))
	// One query: for each index, the blob that starts at or before it.
	rows, err := r.db.Query(r.ctx, `SELECT u.o, (SELECT substring(hashes FROM ((u.i - first_stored) * 32 + 1)::int FOR 32)
		FROM tree_hashes WHERE first_stored <= u.i ORDER BY first_stored DESC LIMIT 1)
		FROM unnest($1::bigint[]) WITH ORDINALITY AS u(i, o)`, indexes)
	if err != nil {
		return nil, fmt.Errorf("projections: reading tree hashes: %w", err)
	}
	defer rows.Close()
	n := 0
	for rows.Next() {
		var o int64
		var h []byte
		if err := rows.Scan(&o, &h); err != nil {
			return nil, err
		}
		if len(h) != ledger.HashSize || o < 1 || o > int64(len(out)) {
			return nil, fmt.Errorf("projections: tree hash %d is not projected", indexes[max(0, min(int(o), len(out))-1)])
		}
		copy(out[o-1][:], h)
		n++
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	if n != len(indexes) {
		return nil, errors.New("projections: tree hashes missing")
	}
	return out, nil
}

// projected is the size the projection has applied.
func projected(ctx context.Context, db *pgxpool.Pool) (uint64, error) {
	var size int64
	err := db.QueryRow(ctx, `SELECT coalesce(max(size), 0) FROM segments`).Scan(&size)
	return uint64(size), err
}

// InclusionProof is the RFC 9162 inclusion proof of record index in the
// tree of size size, read from the projection in O(log size).
func InclusionProof(ctx context.Context, db *pgxpool.Pool, index, size uint64) ([]ledger.Hash, error) {
	if n, err := projected(ctx, db); err != nil {
		return nil, err
	} else if size > n || index >= size {
		return nil, fmt.Errorf("%w: index %d, size %d; the projection holds %d records", ErrNotProjected, index, size, n)
	}
	p, err := tlog.ProveRecord(int64(size), int64(index), hashReader{ctx, db})
	if err != nil {
		return nil, err
	}
	return toLedger(p), nil
}

// ConsistencyProof is the RFC 9162 consistency proof from size m to size
// n, read from the projection in O(log n).
func ConsistencyProof(ctx context.Context, db *pgxpool.Pool, m, n uint64) ([]ledger.Hash, error) {
	if have, err := projected(ctx, db); err != nil {
		return nil, err
	} else if n > have || m > n {
		return nil, fmt.Errorf("%w: sizes %d to %d; the projection holds %d records", ErrNotProjected, m, n, have)
	}
	if m == 0 || m == n {
		return nil, nil
	}
	p, err := tlog.ProveTree(int64(n), int64(m), hashReader{ctx, db})
	if err != nil {
		return nil, err
	}
	return toLedger(p), nil
}

// Root is the tree root at size, from the projection.
func Root(ctx context.Context, db *pgxpool.Pool, size uint64) (ledger.Hash, error) {
	if size == 0 {
		return ledger.EmptyRoot, nil
	}
	h, err := tlog.TreeHash(int64(size), hashReader{ctx, db})
	return ledger.Hash(h), err
}

func toLedger(p []tlog.Hash) []ledger.Hash {
	out := make([]ledger.Hash, len(p))
	for i, h := range p {
		out[i] = ledger.Hash(h)
	}
	return out
}

// PrefixHashes is the compact range of the projected tree's first size
// leaves (ledger.CompactRangeIndexes), read from the stored hashes.
func PrefixHashes(ctx context.Context, db *pgxpool.Pool, size uint64) ([]ledger.Hash, error) {
	coords := ledger.CompactRangeIndexes(size)
	if len(coords) == 0 {
		return nil, nil
	}
	indexes := make([]int64, len(coords))
	for i, c := range coords {
		indexes[i] = tlog.StoredHashIndex(int(c[0]), int64(c[1]))
	}
	hs, err := HashReader(ctx, db).ReadHashes(indexes)
	if err != nil {
		return nil, err
	}
	return toLedger(hs), nil
}
