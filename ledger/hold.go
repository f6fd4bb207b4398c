package ledger

import (
	"context"
	"fmt"
	"math"

	"github.com/auditledger/auditledger/events"
)

// LegalHold is the payload of legal_hold.set and legal_hold.released
// events (docs/FORMAT.md §1.1): an operator put the segments holding
// records From..To under legal hold, or released them. Who did it is the
// event's actor.
type LegalHold struct {
	From   uint64 `json:"from"`
	To     uint64 `json:"to"`
	Reason string `json:"reason"`
	// Store is the store the hold was applied to (as String describes it).
	Store string `json:"store"`
	// Objects are every segment holding a record of the range and the
	// checkpoint signed at its end.
	Objects []string `json:"objects"`
	// BulkPieces is how many bulk pieces the segments' records name
	// (docs/FORMAT.md §1.7), which the hold covers too: named by the
	// segments, not listed, so that no number of pieces makes the event
	// too large to record.
	BulkPieces int `json:"bulk_pieces,omitempty"`
}

// Span is one sealed segment and the checkpoint signed at its end: the
// objects a legal hold keeps together.
type Span struct {
	Segment    string
	Checkpoint string
	First, End uint64 // records First..End-1
}

// ToEnd, as Spans' to, means through the log's last record.
const ToEnd = math.MaxUint64

// Spans lists the segments holding records from..to (inclusive), each
// with its checkpoint, from the object names alone: a segment ends where
// the next begins, and the last where the latest checkpoint is. It fails
// when the range is empty or goes beyond the log.
func Spans(ctx context.Context, store SegmentStore, from, to uint64) ([]Span, error) {
	segs, err := store.List(ctx, SegmentPrefix)
	if err != nil {
		return nil, fmt.Errorf("ledger: list segments: %w", err)
	}
	cps, err := store.List(ctx, CheckpointPrefix)
	if err != nil {
		return nil, fmt.Errorf("ledger: list checkpoints: %w", err)
	}
	var size uint64
	for _, n := range cps {
		if s, ok := parseObjectNumber(n, CheckpointPrefix, ""); ok {
			size = max(size, s)
		}
	}
	if size == 0 {
		return nil, fmt.Errorf("ledger: %w: %s has no checkpoint covering a record: not a log, or an empty one", ErrNotExist, store)
	}
	if to == ToEnd {
		to = size - 1
	}
	if to < from {
		return nil, fmt.Errorf("ledger: range %d..%d is empty (--to before --from)", from, to)
	}
	if to >= size {
		return nil, fmt.Errorf("ledger: %w: record %d is beyond the log, whose latest checkpoint in %s covers records 0..%d", ErrOutOfRange, to, store, int64(size)-1)
	}
	firsts := make([]uint64, 0, len(segs))
	for _, n := range segs {
		f, ok := parseObjectNumber(n, SegmentPrefix, segmentSuffix)
		if !ok {
			return nil, fmt.Errorf("ledger: unexpected object %s among segments", n)
		}
		firsts = append(firsts, f)
	}
	var out []Span
	for i, f := range firsts {
		end := size
		if i+1 < len(firsts) {
			end = firsts[i+1]
		}
		if end <= from || f > to {
			continue
		}
		out = append(out, Span{Segment: segs[i], Checkpoint: CheckpointName(end), First: f, End: end})
	}
	if len(out) == 0 || out[0].First > from {
		return nil, fmt.Errorf("ledger: %w: no segment in %s holds record %d", ErrNotExist, store, from)
	}
	return out, nil
}

// holdNote is a legal hold event found in the log.
type holdNote struct {
	index uint64
	set   bool
	hold  LegalHold
}

// HeldSegment is a segment the store reports under legal hold, and the
// record of the legal_hold.set event that covers it, if any.
type HeldSegment struct {
	Name       string
	First, End uint64
	// SetAt is the index of the last legal_hold.set event naming the
	// segment; -1 when no event records the hold.
	SetAt int64
	// Reason is that event's reason.
	Reason string
}

// checkHolds compares the holds the store reports with those the log
// records, as warnings: a hold applied without a record, or a recorded
// hold that the store does not report (released without a record, or
// never applied).
func checkHolds(rep *Report, notes []holdNote) {
	last := map[string]holdNote{}
	for _, n := range notes {
		for _, o := range n.hold.Objects {
			last[o] = n
		}
	}
	for _, s := range rep.Segments {
		held := s.Protection != nil && s.Protection.LegalHold
		n, recorded := last[s.Name]
		switch {
		case held && (!recorded || !n.set):
			rep.Holds = append(rep.Holds, HeldSegment{Name: s.Name, First: s.First, End: s.End, SetAt: -1})
			rep.Warnings = append(rep.Warnings, fmt.Sprintf("%s: under legal hold, but no %s event in the log records it", s.Name, events.LegalHoldSet))
		case held:
			rep.Holds = append(rep.Holds, HeldSegment{Name: s.Name, First: s.First, End: s.End, SetAt: int64(n.index), Reason: n.hold.Reason})
		case recorded && n.set && s.Protection != nil:
			rep.Warnings = append(rep.Warnings, fmt.Sprintf("%s: the %s event at record %d names it, but the store reports no legal hold (released without a record, or never applied)",
				s.Name, events.LegalHoldSet, n.index))
		}
	}
}
