package ledger

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/auditledger/auditledger/events"
)

// Verification is a full verification of the log — every record, the
// chain, each checkpoint's signature, the contiguity of sources (Verify)
// — and what it found. The writer runs one when it takes the log and
// every day after (ingest.Config.Verify) and seals it as a
// ledger.verification record (docs/FORMAT.md §2.1): the evidence that
// the log is checked whole (ISO/IEC 27001:2022 5.33, 8.15), which an
// auditor reads in the log itself rather than in a projection's table.
type Verification struct {
	Started  time.Time `json:"started"`
	Finished time.Time `json:"finished"`
	// Size is the tree size verified (the newest checkpoint's when it
	// began) and Root its root hash, base64; for a verification that
	// failed, Size is the newest checkpoint's it set out to verify (the
	// writer's log size when it began, when the checkpoints could not be
	// listed) and Root is empty.
	Size uint64 `json:"size"`
	Root string `json:"root"`
	// OK: no gap and no failed check.
	OK bool `json:"ok"`
	// Gaps are the log's gap records the verification found, each a
	// finding (stream sequences missing when the writer reached them).
	Gaps []VerifiedGap `json:"gaps"`
	// Failure is the first check that failed (a damaged or missing
	// segment, a broken chain, a checkpoint that does not verify); nil
	// when none did. The records before Failure.Index verified.
	Failure *VerificationFailure `json:"failure,omitempty"`
}

// VerifiedGap is one gap record a verification found.
type VerifiedGap struct {
	Index    uint64 `json:"index"`
	FirstSeq uint64 `json:"first_seq"`
	LastSeq  uint64 `json:"last_seq"`
}

// VerificationFailure is the check a verification failed.
type VerificationFailure struct {
	// Object is the segment or checkpoint it failed on, when one.
	Object string `json:"object,omitempty"`
	// Index is the record it failed at, when one.
	Index *uint64 `json:"index,omitempty"`
	Error string  `json:"error"`
}

// NewestCheckpointSize is the size of the newest checkpoint the store
// holds, 0 if none: what a verification of a log its writer is still
// appending to reads up to (VerifyOptions.UpTo). The writer stores a
// segment before the checkpoint signed at its end, so a segment past the
// newest checkpoint is one being sealed; below it, a segment without its
// checkpoint is a defect of the store.
func NewestCheckpointSize(ctx context.Context, store SegmentStore) (uint64, error) {
	cps, err := store.List(ctx, CheckpointPrefix)
	if err != nil {
		return 0, fmt.Errorf("list checkpoints: %w", err)
	}
	var size uint64
	for _, n := range cps {
		if s, ok := parseObjectNumber(n, CheckpointPrefix, ""); ok {
			size = max(size, s)
		}
	}
	return size, nil
}

// VerifyWhole verifies the whole store as `auditledger verify` does,
// checkpoints with v, up to its newest checkpoint when it begins (what the
// writer appends meanwhile is left for the next), and returns the result
// to seal; ok is false when there is nothing to verify yet (no checkpoint
// of a record) or ctx ended first (a verification cut short says
// nothing). known is the log's size as the caller (the writer) knows it
// when it begins: when the checkpoints cannot be listed, the
// verification fails at that size, so that the failure counts for every
// period it would have covered (FORMAT §2.1, §12.1 log-verified).
func VerifyWhole(ctx context.Context, store SegmentStore, v *NoteVerifier, known uint64) (ver Verification, ok bool) {
	ver.Started = time.Now().UTC()
	size, err := NewestCheckpointSize(ctx, store)
	if err != nil {
		ver.Finished = time.Now().UTC()
		ver.Size = known
		ver.Failure, ver.Gaps = &VerificationFailure{Error: err.Error()}, []VerifiedGap{}
		return ver, ctx.Err() == nil
	}
	ver.Size = size
	if ver.Size == 0 {
		return ver, false
	}
	rep, err := Verify(ctx, store, VerifyOptions{Verifier: v, UpTo: ver.Size})
	ver.Finished = time.Now().UTC()
	if ctx.Err() != nil {
		return ver, false
	}
	if rep != nil {
		ver.Size, ver.Root = rep.Size, rep.Root.Base64()
		for _, g := range rep.Gaps {
			ver.Gaps = append(ver.Gaps, VerifiedGap{Index: g.Index, FirstSeq: g.FirstSeq, LastSeq: g.LastSeq})
		}
	}
	var gaps *GapsError
	if err != nil && !errors.As(err, &gaps) {
		f := &VerificationFailure{Error: err.Error()}
		var ve *VerifyError
		if errors.As(err, &ve) {
			f.Object = ve.Object
			if ve.Index >= 0 {
				i := uint64(ve.Index)
				f.Index = &i
			}
		}
		ver.Failure = f
	}
	if ver.Gaps == nil {
		ver.Gaps = []VerifiedGap{}
	}
	ver.OK = len(ver.Gaps) == 0 && ver.Failure == nil
	return ver, true
}

// VerificationEntry is the record of v, sealed at index (the log's size
// when it is appended) at time at; its source is 0, as it stands for no
// stream sequence.
func VerificationEntry(origin string, index uint64, v Verification, at time.Time) (Entry, error) {
	if v.Failure != nil {
		f := *v.Failure
		f.Error = events.Clean(f.Error, maxReason)
		f.Object = events.Clean(f.Object, 256)
		v.Failure = &f
	}
	if v.Gaps == nil {
		v.Gaps = []VerifiedGap{}
	}
	v.Started, v.Finished = v.Started.UTC(), v.Finished.UTC()
	b, err := systemRecord(origin, events.LedgerVerification, fmt.Sprintf("ledger/verification/%d", index), at, v)
	if err != nil {
		return Entry{}, err
	}
	return Entry{Event: b}, nil
}
