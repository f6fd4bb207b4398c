package ingest

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/auditledger/auditledger/ledger"
)

// Full verifications (Config.Verify) run beside the ingest loop, never in
// it: one when the ingester starts on a log that holds records, and one
// every VerifyEvery after (the first VerifyEvery after the start, for a
// new log: it has nothing to verify yet). Each
// result waits in verified until the loop is between batches, where
// sealVerification seals it as a ledger.verification record, as the clock
// status is sealed.

// verifyLoop runs Config.Verify until ctx ends, handing each result to
// the loop; now: at once, else after VerifyEvery.
func (in *Ingester) verifyLoop(ctx context.Context, now bool) {
	every := in.cfg.VerifyEvery
	if every <= 0 {
		every = 24 * time.Hour
	}
	if !now {
		select {
		case <-ctx.Done():
			return
		case <-time.After(every):
		}
	}
	for {
		if v, ok := in.cfg.Verify(ctx, in.cfg.Log.Size()); ok {
			select {
			case in.verified <- v:
			case <-ctx.Done():
				return
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(every):
		}
	}
}

// sealVerification seals the verification that finished, if one did.
func (in *Ingester) sealVerification(ctx context.Context) error {
	var v ledger.Verification
	select {
	case v = <-in.verified:
	default:
		return nil
	}
	if in.cfg.Lease != nil {
		if err := in.cfg.Lease.Wait(ctx); err != nil {
			return fmt.Errorf("ingest: not sealing the verification: %w", err)
		}
	}
	l := in.cfg.Log
	e, err := ledger.VerificationEntry(l.Origin(), l.Size(), v, time.Now())
	if err != nil {
		return err
	}
	if _, err := l.Append(ctx, []ledger.Entry{e}); err != nil {
		if errors.Is(err, ledger.ErrFenced) {
			return fmt.Errorf("ingest: %w", err)
		}
		// The store's trouble: kept for the next turn, and the next
		// batch's seal reports it.
		in.cfg.Logger.Warn("sealing the verification failed; retrying", "err", err)
		go func() {
			select {
			case in.verified <- v:
			case <-ctx.Done():
			}
		}()
		return nil
	}
	if v.OK {
		in.cfg.Logger.Info("the log verifies", "size", v.Size, "took", v.Finished.Sub(v.Started))
	} else {
		in.cfg.Logger.Error("the log does not verify", "size", v.Size, "gaps", len(v.Gaps), "failure", v.Failure)
	}
	in.queue(ctx, publication{end: l.Size()})
	return nil
}
