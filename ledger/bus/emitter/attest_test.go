package emitter_test

import (
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/auditledger/auditledger/events"
	"github.com/auditledger/auditledger/ledger"
	"github.com/auditledger/auditledger/ledger/bus/emitter"
	"github.com/auditledger/auditledger/ledger/ledgertest"
	"github.com/auditledger/auditledger/test/natstest"
)

// TestAttestationsRetriedUntilTheBusTakesThem: while the bus refuses a
// producer's attestations (here its stream does not take their subject
// yet), they are sent again until it takes them, so no genuine event is
// left unattested by a refusal that passed. What the bus still refuses at
// Close's deadline is counted lost.
func TestAttestationsRetriedUntilTheBusTakesThem(t *testing.T) {
	srv := natstest.StartIn(t, t.TempDir(), -1)
	_, js := srv.Connect(t)
	cfg := jetstream.StreamConfig{Name: "AUDIT_EVENTS", Subjects: []string{"audit.events.acme.>"}}
	if _, err := js.CreateStream(t.Context(), cfg); err != nil {
		t.Fatal(err)
	}
	var logs lockedBuffer
	em, err := emitter.New(emitter.Config{JetStream: js, MaxBatch: 1, Retries: 1, Timeout: 2 * time.Second, DrainTimeout: 30 * time.Second,
		Attester: ledger.NewProducerAttester(ledgertest.Signer(t, "t1")), AttestEvery: 10, AttestInterval: 50 * time.Millisecond,
		Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	if err != nil {
		t.Fatal(err)
	}
	defer em.Close()
	for i := range 30 {
		if _, err := em.Emit(t.Context(), event(i)); err != nil {
			t.Fatalf("event %d: %v", i, err)
		}
	}
	natstest.CheckFor(t, 60*time.Second, 20*time.Millisecond, func() error {
		if !strings.Contains(logs.String(), "producer attestation not") {
			return errors.New("no attestation refused yet")
		}
		return nil
	})
	// The bus takes them from now on.
	cfg.Subjects = []string{"audit.events.>"}
	if _, err := js.UpdateStream(t.Context(), cfg); err != nil {
		t.Fatal(err)
	}
	attested := func() map[string]int {
		ids := map[string]int{}
		for _, s := range natstest.Events(t, js, "AUDIT_EVENTS") {
			if s.Event.Type == events.ProducerAttested {
				ids[s.Event.ID]++
			}
		}
		return ids
	}
	natstest.CheckFor(t, 60*time.Second, 50*time.Millisecond, func() error {
		if n := len(attested()); n < 3 {
			return fmt.Errorf("%d attestations stored, want 3", n)
		}
		return nil
	})
	if err := em.Close(); err != nil {
		t.Fatal(err)
	}
	for id, n := range attested() {
		if n != 1 {
			t.Errorf("attestation %s stored %d times", id, n)
		}
	}
	if n := em.Stats.AttestationsLost.Load(); n != 0 {
		t.Errorf("%d attestations counted lost, want 0", n)
	}

	// A bus that never takes them: Close gives up at its deadline and
	// counts what it could not store.
	cfg.Subjects = []string{"audit.events.acme.>"}
	if _, err := js.UpdateStream(t.Context(), cfg); err != nil {
		t.Fatal(err)
	}
	em, err = emitter.New(emitter.Config{JetStream: js, MaxBatch: 1, Retries: 1, Timeout: 2 * time.Second, DrainTimeout: time.Second,
		Attester: ledger.NewProducerAttester(ledgertest.Signer(t, "t1")), AttestEvery: 10, Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 5 {
		if _, err := em.Emit(t.Context(), event(100+i)); err != nil {
			t.Fatalf("event %d: %v", 100+i, err)
		}
	}
	if err := em.Close(); err != nil {
		t.Fatal(err)
	}
	if n := em.Stats.AttestationsLost.Load(); n != 1 {
		t.Errorf("%d attestations counted lost at Close, want 1", n)
	}
}
