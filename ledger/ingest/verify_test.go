package ingest_test

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"
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
	ctx, cancel := context.WithCancel(context.Background())
	l, err := ledger.Open(ctx, ledger.Config{Store: h.store, Signer: h.signer})
	if err != nil {
		t.Fatal(err)
	}
	in, err := ingest.New(ctx, ingest.Config{JetStream: h.js, Log: l, Store: h.store, BatchSize: 50, MaxWait: 20 * time.Millisecond, Logger: testLogger(t),
		Verify: func(ctx context.Context, known uint64) (ledger.Verification, bool) {
			return ledger.VerifyWhole(ctx, h.store, h.signer.Verifier(), known)
		}, VerifyEvery: 100 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	wg.Go(func() {
		if err := in.Run(ctx); err != nil {
			t.Errorf("ingester: %v", err)
		}
	})
	defer func() { cancel(); wg.Wait() }()
	h.emit(0, 5)
	type seen struct {
		idx uint64
		v   ledger.Verification
	}
	verifs := func() (out []seen) {
		ledger.ReadRecords(t.Context(), h.store, 0, func(i uint64, rec []byte) error {
			r, err := ledger.ParseRecord(rec)
			if err != nil {
				t.Fatal(err)
			}
			ev, err := events.Parse(r.Event)
			if err != nil {
				t.Fatalf("record %d: %v", i, err)
			}
			if ev.Type != events.LedgerVerification {
				return nil
			}
			if r.Source != 0 || ev.Tenant != ledger.SystemTenant || ev.ID != fmt.Sprintf("ledger/verification/%d", i) || ev.Actor.Subject != "ledger" {
				t.Errorf("record %d: source %d, tenant %q, id %q, actor %q: want the writer's system record", i, r.Source, ev.Tenant, ev.ID, ev.Actor.Subject)
			}
			var v ledger.Verification
			if err := json.Unmarshal(ev.Payload, &v); err != nil {
				t.Fatal(err)
			}
			out = append(out, seen{i, v})
			return nil
		})
		return
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
	if _, err := ledger.Verify(t.Context(), h.store, ledger.VerifyOptions{Verifier: h.signer.Verifier()}); err != nil {
		t.Fatalf("verify: %v", err)
	}
}
