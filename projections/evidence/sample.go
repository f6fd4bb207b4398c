package evidence

import (
	"archive/zip"
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"encoding/csv"
	"fmt"
	"io"
	"math/bits"
	"slices"
	"strconv"

	"github.com/auditledger/auditledger/ledger"
)

// SampleItem is one member of an assertion's population drawn into a
// sample: its row of assertion.csv, its record whole, and the record's
// RFC 9162 inclusion proof in the bundle's end checkpoint.
type SampleItem struct {
	Index uint64 `json:"index"`
	// Row is the item's line of assertion.csv, by column.
	Row map[string]string `json:"row"`
	// Key is the hex of the sort key that drew it (FORMAT §12.2).
	Key string `json:"key"`
	// Record is the whole record (base64), whose leaf hash the proof
	// proves at tree size TreeSize.
	Record string   `json:"record"`
	Leaf   string   `json:"leaf"`
	Proof  []string `json:"proof"`
}

// Sample is a reproducible sample of one control's population.
type Sample struct {
	Format     string `json:"format"`
	BundleID   string `json:"bundle_id"`
	Control    string `json:"control"`
	Seed       uint64 `json:"seed"`
	Size       int    `json:"size"`
	Population int    `json:"population"`
	TreeSize   uint64 `json:"tree_size"`
	// Checkpoint is the bundle's end checkpoint, which the proofs give.
	Checkpoint string       `json:"checkpoint"`
	Items      []SampleItem `json:"items"`
}

// SampleFormat names the sample's layout.
const SampleFormat = "auditledger-sample/1"

// SampleKey is the key that orders a population for a seed: SHA-256 of
// "auditledger sample v1", 0x00, the seed in decimal, 0x00, the control
// id, 0x00, the member's index in decimal (FORMAT §12.2).
func SampleKey(seed uint64, control string, index uint64) [32]byte {
	return sha256.Sum256(fmt.Appendf(nil, "auditledger sample v1\x00%d\x00%s\x00%d", seed, control, index))
}

// DrawSample verifies the bundle (all of Verify, with opts) and draws size
// members of control's assertion population: those with the smallest
// SampleKey, listed in index order, each with its record and inclusion
// proof at the end checkpoint's tree size. The same bundle, control, seed
// and size always give the same items.
func DrawSample(r io.ReaderAt, n int64, opts VerifyOptions, control string, seed uint64, size int) (*Sample, *Report, error) {
	if size <= 0 {
		return nil, nil, fmt.Errorf("evidence: a sample of %d items: want at least 1", size)
	}
	rep, err := Verify(r, n, opts)
	if err != nil {
		return nil, nil, err
	}
	m := rep.Manifest
	i := slices.IndexFunc(m.Controls, func(c Control) bool { return c.ID == control })
	if i < 0 || m.Controls[i].Assertion == nil {
		return nil, rep, fmt.Errorf("evidence: control %s has no assertion in the bundle: nothing to sample (controls with one: %s)", control, assertedControls(m))
	}
	zr, err := zip.NewReader(r, n)
	if err != nil {
		return nil, rep, err
	}
	files := map[string]*zip.File{}
	for _, f := range zr.File {
		files[f.Name] = f
	}
	b, err := readZip(files, assertionPath(control), 256<<20)
	if err != nil {
		return nil, rep, err
	}
	lines, err := csv.NewReader(bytes.NewReader(b)).ReadAll()
	if err != nil || len(lines) == 0 {
		return nil, rep, failf(assertionPath(control), "not a CSV with a header: %v", err)
	}
	type member struct {
		idx uint64
		key [32]byte
		row []string
	}
	var pop []member
	for _, l := range lines[1:] {
		idx, err := strconv.ParseUint(l[0], 10, 64)
		if err != nil {
			return nil, rep, failf(assertionPath(control), "index %q: a row of no record cannot be sampled", l[0])
		}
		if idx < m.Range.First || idx >= m.Range.End {
			// 5.33's and 8.15's rows are verification records sealed
			// after the range, proven in log/verifications.jsonl.
			return nil, rep, failf(assertionPath(control), "index %d is not a record of the range %d..%d: control %s is not sampled from the range's records", idx, m.Range.First, m.Range.End-1, control)
		}
		pop = append(pop, member{idx, SampleKey(seed, control, idx), l})
	}
	slices.SortFunc(pop, func(a, b member) int { return bytes.Compare(a.key[:], b.key[:]) })
	pop = pop[:min(size, len(pop))]
	slices.SortFunc(pop, func(a, b member) int { return int(a.idx) - int(b.idx) })

	tree, err := readTree(files, m)
	if err != nil {
		return nil, rep, err
	}
	end, err := readZip(files, EndCheckpoint, 64<<10)
	if err != nil {
		return nil, rep, err
	}
	s := &Sample{Format: SampleFormat, BundleID: m.BundleID, Control: control, Seed: seed, Size: size, Population: len(lines) - 1,
		TreeSize: m.Range.End, Checkpoint: string(end), Items: []SampleItem{}}
	for _, p := range pop {
		rec := tree.records[p.idx-m.Range.First]
		proof := tree.path(p.idx, 0, m.Range.End)
		it := SampleItem{Index: p.idx, Row: map[string]string{}, Key: fmt.Sprintf("%x", p.key), Record: base64.StdEncoding.EncodeToString(rec),
			Leaf: tree.leaves[p.idx-m.Range.First].Base64()}
		for j, col := range lines[0] {
			it.Row[col] = p.row[j]
		}
		for _, h := range proof {
			it.Proof = append(it.Proof, h.Base64())
		}
		s.Items = append(s.Items, it)
	}
	return s, rep, nil
}

func assertedControls(m *Manifest) string {
	var ids []string
	for _, c := range m.Controls {
		if c.Assertion != nil {
			ids = append(ids, c.ID)
		}
	}
	if ids == nil {
		return "none"
	}
	return fmt.Sprint(ids)
}

// tree is the log up to the range's end as a bundle holds it: the compact
// range before it (whole subtrees) and every leaf of the range.
type tree struct {
	first   uint64
	prefix  map[[2]uint64]ledger.Hash // [lo, hi) → hash of a whole subtree before first
	leaves  []ledger.Hash
	records [][]byte
}

func readTree(files map[string]*zip.File, m *Manifest) (*tree, error) {
	pb, err := readZip(files, PrefixFile, 64<<10)
	if err != nil {
		return nil, err
	}
	cr, err := parsePrefix(pb)
	if err != nil {
		return nil, failf(PrefixFile, "%v", err)
	}
	t := &tree{first: m.Range.First, prefix: map[[2]uint64]ledger.Hash{}}
	// One hash per set bit of first, largest (leftmost) first.
	lo := uint64(0)
	hashes := cr.Hashes()
	for bit := 63; bit >= 0 && len(hashes) > 0; bit-- {
		if m.Range.First&(1<<bit) != 0 {
			t.prefix[[2]uint64{lo, lo + 1<<bit}] = hashes[0]
			hashes = hashes[1:]
			lo += 1 << bit
		}
	}
	f := files[RecordsFile]
	if f == nil {
		return nil, failf(RecordsFile, "missing from the bundle")
	}
	rc, err := f.Open()
	if err != nil {
		return nil, failf(RecordsFile, "%v", err)
	}
	defer rc.Close()
	br := bufio.NewReader(rc)
	var frame [4]byte
	for range m.Range.End - m.Range.First {
		if _, err := io.ReadFull(br, frame[:]); err != nil {
			return nil, failf(RecordsFile, "%v", err)
		}
		rec := make([]byte, binary.BigEndian.Uint32(frame[:]))
		if _, err := io.ReadFull(br, rec); err != nil {
			return nil, failf(RecordsFile, "%v", err)
		}
		t.records = append(t.records, rec)
		t.leaves = append(t.leaves, ledger.LeafHash(rec))
	}
	return t, nil
}

// hash is the RFC 9162 hash of leaves [lo, hi). A whole subtree before
// first is one of the compact range's (any subtree a proof of a leaf at
// or after first needs is, FORMAT §12.2).
func (t *tree) hash(lo, hi uint64) ledger.Hash {
	if h, ok := t.prefix[[2]uint64{lo, hi}]; ok {
		return h
	}
	if hi-lo == 1 {
		return t.leaves[lo-t.first]
	}
	k := splitPoint(hi - lo)
	return ledger.NodeHash(t.hash(lo, lo+k), t.hash(lo+k, hi))
}

// path is the RFC 9162 inclusion proof of leaf m in the tree of leaves
// [lo, hi).
func (t *tree) path(m, lo, hi uint64) []ledger.Hash {
	if hi-lo <= 1 {
		return nil
	}
	k := splitPoint(hi - lo)
	if m < lo+k {
		return append(t.path(m, lo, lo+k), t.hash(lo+k, hi))
	}
	return append(t.path(m, lo+k, hi), t.hash(lo, lo+k))
}

// splitPoint is the largest power of two below n (n > 1).
func splitPoint(n uint64) uint64 { return 1 << (bits.Len64(n-1) - 1) }
