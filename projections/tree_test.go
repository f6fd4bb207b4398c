package projections_test

import (
	"testing"

	"github.com/transparency-dev/merkle/proof"
	"github.com/transparency-dev/merkle/rfc6962"

	"github.com/auditledger/auditledger/ledger"
	"github.com/auditledger/auditledger/projections"
)

// Proofs read from the projection's stored hashes check, with
// transparency-dev/merkle, against the signed checkpoints' roots, for
// segments of odd sizes across every boundary.
func TestProofsFromTheProjection(t *testing.T) {
	f := newFixture(t)
	sizes := []uint64{}
	for _, n := range []int{1, 2, 5, 3, 16, 7, 1, 31} {
		f.append(t, n)
		sizes = append(sizes, f.log.Size())
	}
	if err := projections.Rebuild(t.Context(), f.cfg, nil); err != nil {
		t.Fatal(err)
	}
	roots := map[uint64]ledger.Hash{}
	for _, size := range sizes {
		b, err := f.store.Get(t.Context(), ledger.CheckpointName(size))
		if err != nil {
			t.Fatal(err)
		}
		cp, err := ledger.OpenCheckpoint(b, f.cfg.Verifier)
		if err != nil {
			t.Fatal(err)
		}
		roots[size] = cp.Root
		if r, err := projections.Root(t.Context(), f.cfg.DB, size); err != nil || r != cp.Root {
			t.Fatalf("root at %d from the projection: %s %v, checkpoint %s", size, r, err, cp.Root)
		}
	}
	var leaves []ledger.Hash
	rows, _ := f.cfg.DB.Query(t.Context(), `SELECT leaf FROM events ORDER BY idx`)
	for rows.Next() {
		var b []byte
		rows.Scan(&b)
		leaves = append(leaves, ledger.Hash(b))
	}
	rows.Close()
	for _, size := range sizes {
		for index := uint64(0); index < size; index++ {
			p, err := projections.InclusionProof(t.Context(), f.cfg.DB, index, size)
			if err != nil {
				t.Fatalf("inclusion %d in %d: %v", index, size, err)
			}
			root := roots[size]
			if err := proof.VerifyInclusion(rfc6962.DefaultHasher, index, size, leaves[index][:], hashes(p), root[:]); err != nil {
				t.Fatalf("inclusion %d in %d does not verify with transparency-dev/merkle: %v", index, size, err)
			}
		}
		for _, m := range sizes {
			if m > size {
				continue
			}
			p, err := projections.ConsistencyProof(t.Context(), f.cfg.DB, m, size)
			if err != nil {
				t.Fatal(err)
			}
			old, new := roots[m], roots[size]
			if err := proof.VerifyConsistency(rfc6962.DefaultHasher, m, size, hashes(p), old[:], new[:]); err != nil {
				t.Fatalf("consistency %d→%d does not verify with transparency-dev/merkle: %v", m, size, err)
			}
		}
	}
	if _, err := projections.InclusionProof(t.Context(), f.cfg.DB, 0, f.log.Size()+1); err == nil {
		t.Error("a proof beyond the projection was given")
	}
}

func hashes(p []ledger.Hash) [][]byte {
	out := make([][]byte, len(p))
	for i := range p {
		out[i] = p[i][:]
	}
	return out
}
