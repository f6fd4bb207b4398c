package ingest_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/auditledger/auditledger/events"
	"github.com/auditledger/auditledger/ledger"
	"github.com/auditledger/auditledger/ledger/ingest"
	"github.com/auditledger/auditledger/test/natstest"
)

// TestVerificationSealed: with Verify set, the writer verifies the whole
// log beside the loop (ledger.VerifyWhole over its own store, for real)
// and seals each result as a ledger.verification system record between
// batches; a later one covers the events sealed before it, and the log
// holding them verifies.
func TestVerificationSealed(t *testing.T) {
	h := newHarness(t)
	_, l, stop := h.startWith(ingest.Config{BatchSize: 50,
		Verify: func(ctx context.Context, known uint64) (ledger.Verification, bool) {
			return ledger.VerifyWhole(ctx, h.store, h.signer.Verifier(), known)
		}, VerifyEvery: 100 * time.Millisecond})
	defer stop()
	h.emit(0, 5)
	type seen struct {
		idx uint64
		v   ledger.Verification
	}
	verifs := func() (out []seen) {
		vs, idx := sealedOf[ledger.Verification](h, events.LedgerVerification, "ledger/verification/")
		for i, v := range vs {
			out = append(out, seen{idx[i], v})
		}
		return out
	}
	// Every event emitted is sealed, and a verification after them
	// covers them all.
	natstest.CheckFor(t, 60*time.Second, 50*time.Millisecond, func() error {
		for _, s := range verifs() {
			if s.v.OK && s.v.Size >= 5 && s.idx >= 5 {
				return nil
			}
		}
		return fmt.Errorf("no verification covering the 5 events yet: %+v (log size %d)", verifs(), l.Size())
	})
	for _, s := range verifs() {
		if !s.v.OK || s.v.Size > s.idx || s.v.Root == "" || s.v.Failure != nil || len(s.v.Gaps) != 0 || s.v.Finished.Before(s.v.Started) {
			t.Errorf("verification record %d: %+v, want ok, of at most the records before it", s.idx, s.v)
		}
	}
	// The writer is still sealing (its verifications): the store is
	// verified up to its newest checkpoint, not into a seal under way.
	upTo, err := ledger.NewestCheckpointSize(t.Context(), h.store)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ledger.Verify(t.Context(), h.store, ledger.VerifyOptions{Verifier: h.signer.Verifier(), UpTo: upTo}); err != nil {
		t.Fatalf("verify up to size %d: %v", upTo, err)
	}
}
