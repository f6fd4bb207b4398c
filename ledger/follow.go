package ledger

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/auditledger/auditledger/events"
)

// Position is how far a reader of the log has read and checked it: the
// size, the chain value, the roots of the perfect subtrees covering the
// records so far, and what the time and source rules need — enough to
// check the next segment without reading the earlier ones again. A reader
// keeps it with what it built from the records (the projector, in the same
// transaction as its rows), so a crash resumes exactly where the last
// commit ended.
type Position struct {
	Size      uint64
	Chain     Hash
	Range     []Hash // compact range of leaves [0, Size), largest subtree first
	Time      int64  // the last record's time, Unix nanoseconds
	Source    uint64 // the last non-zero source
	SourceSeg string // the segment that record is in
}

// Root is the tree root at the position's size.
func (p *Position) Root() Hash {
	cr := compactRange{size: p.Size, nodes: p.Range}
	return cr.root()
}

// MarshalBinary encodes the position: size, chain, time, source (8, 32,
// 8, 8 bytes), the source segment's name (2-byte length, then its bytes),
// then the range hashes.
func (p Position) MarshalBinary() ([]byte, error) {
	b := binary.BigEndian.AppendUint64(nil, p.Size)
	b = append(b, p.Chain[:]...)
	b = binary.BigEndian.AppendUint64(b, uint64(p.Time))
	b = binary.BigEndian.AppendUint64(b, p.Source)
	b = binary.BigEndian.AppendUint16(b, uint16(len(p.SourceSeg)))
	b = append(b, p.SourceSeg...)
	for _, h := range p.Range {
		b = append(b, h[:]...)
	}
	return b, nil
}

// UnmarshalBinary decodes what MarshalBinary wrote, checking that the
// range has as many hashes as the size has one bits.
func (p *Position) UnmarshalBinary(b []byte) error {
	if len(b) < 58 {
		return fmt.Errorf("%w: position of %d bytes", ErrMalformed, len(b))
	}
	var q Position
	q.Size = binary.BigEndian.Uint64(b)
	copy(q.Chain[:], b[8:40])
	q.Time = int64(binary.BigEndian.Uint64(b[40:48]))
	q.Source = binary.BigEndian.Uint64(b[48:56])
	n := int(binary.BigEndian.Uint16(b[56:58]))
	b = b[58:]
	if len(b) < n {
		return fmt.Errorf("%w: position: segment name cut short", ErrMalformed)
	}
	q.SourceSeg, b = string(b[:n]), b[n:]
	if len(b)%HashSize != 0 || len(b)/HashSize != onesIn(q.Size) {
		return fmt.Errorf("%w: position at size %d: %d bytes of range", ErrMalformed, q.Size, len(b))
	}
	for ; len(b) > 0; b = b[HashSize:] {
		q.Range = append(q.Range, Hash(b[:HashSize]))
	}
	*p = q
	return nil
}

func onesIn(n uint64) int {
	c := 0
	for ; n > 0; n &= n - 1 {
		c++
	}
	return c
}

// Followed is one segment a Follower read and checked.
type Followed struct {
	Name       string
	Segment    *Segment
	Records    []Record
	Events     []*events.Event // each record's event, parsed and checked once
	Leaves     []Hash
	SHA256     Hash        // of the segment object
	Checkpoint *Checkpoint // the signed checkpoint at the segment's end
	Next       Position    // the position after the segment
}

// Follow reads the segment that begins at pos, if the store has it, and
// checks it as verify does (docs/FORMAT.md §7): its name and first index,
// the chain, every record (index, time, source rule, a valid event), the
// trailer's chain and root, and the checkpoint at its end — signature
// under v and root. It returns nil, nil when no segment begins at pos yet.
func Follow(ctx context.Context, store SegmentStore, v *NoteVerifier, pos Position) (*Followed, error) {
	name := SegmentName(pos.Size)
	data, err := store.Get(ctx, name)
	if errors.Is(err, ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", name, err)
	}
	seg, err := ParseSegment(data)
	if err != nil {
		return nil, verr(name, -1, "segment does not parse: "+err.Error(), "", "")
	}
	st := &logState{size: pos.Size, chain: pos.Chain, lastTime: pos.Time, lastSource: pos.Source, lastSourceSeg: pos.SourceSeg,
		cr: compactRange{size: pos.Size, nodes: append([]Hash(nil), pos.Range...)}}
	leaves := leafHashes(seg)
	if err := st.apply(name, seg, leaves); err != nil {
		return nil, err
	}
	// apply parsed every record; each event is parsed, and so checked,
	// here once for the reader too.
	recs := make([]Record, len(seg.Records))
	evs := make([]*events.Event, len(seg.Records))
	for i, raw := range seg.Records {
		recs[i], _ = ParseRecord(raw)
		if evs[i], err = events.Parse(recs[i].Event); err != nil {
			return nil, verr(name, int64(seg.First)+int64(i), "record body is not a valid event", "a version-1 event (docs/FORMAT.md §1)", err.Error())
		}
	}
	cpName := CheckpointName(seg.End())
	signed, err := store.Get(ctx, cpName)
	if errors.Is(err, ErrNotExist) {
		// The writer stores the checkpoint right after the segment: it is
		// not sealed until both are there.
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", cpName, err)
	}
	cp, err := OpenCheckpoint(signed, v)
	if err != nil {
		return nil, verr(cpName, -1, "checkpoint: "+err.Error(), "", "")
	}
	if cp.Size != seg.End() || cp.Root != st.root() {
		return nil, verr(cpName, int64(seg.End())-1, fmt.Sprintf("checkpoint root at size %d", seg.End()), st.root().Base64(), cp.Root.Base64())
	}
	return &Followed{Name: name, Segment: seg, Records: recs, Events: evs, Leaves: leaves, SHA256: sha256.Sum256(data), Checkpoint: cp,
		Next: Position{Size: st.size, Chain: st.chain, Range: st.cr.nodes, Time: st.lastTime, Source: st.lastSource, SourceSeg: st.lastSourceSeg}}, nil
}
