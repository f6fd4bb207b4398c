package ledger

import (
	"context"
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
