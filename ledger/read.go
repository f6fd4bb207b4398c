package ledger

import (
	"context"
	"errors"
	"fmt"
	"slices"
)

// ReadRecords calls fn with each record from index from to the end of the
// store, in order, reading only the segments that hold them. It checks
// framing and indices, not hashes: use Verify for that.
func ReadRecords(ctx context.Context, store SegmentStore, from uint64, fn func(index uint64, record []byte) error) error {
	names, err := store.List(ctx, SegmentPrefix)
	if err != nil {
		return fmt.Errorf("list segments: %w", err)
	}
	// The segment holding from is the last one starting at or before it.
	i, found := slices.BinarySearch(names, SegmentName(from))
	if !found && i > 0 {
		i--
	}
	for _, name := range names[i:] {
		b, err := store.Get(ctx, name)
		if err != nil {
			return fmt.Errorf("read %s: %w", name, err)
		}
		seg, err := ParseSegment(b)
		if err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
		for j, rec := range seg.Records {
			idx := seg.First + uint64(j)
			if idx < from {
				continue
			}
			if err := fn(idx, rec); err != nil {
				return err
			}
		}
	}
	return nil
}

// ReadRange calls fn with each record of indexes [from, to), parsed, in
// order; it stops at to without reading further segments.
func ReadRange(ctx context.Context, store SegmentStore, from, to uint64, fn func(index uint64, raw []byte, r Record) error) error {
	if from >= to {
		return nil
	}
	errStop := errors.New("stop")
	err := ReadRecords(ctx, store, from, func(idx uint64, raw []byte) error {
		if idx >= to {
			return errStop
		}
		r, err := ParseRecord(raw)
		if err != nil {
			return fmt.Errorf("record %d: %w", idx, err)
		}
		return fn(idx, raw, r)
	})
	if err == errStop {
		return nil
	}
	return err
}
