package ledger_test

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	"github.com/auditledger/auditledger/ledger"
	"github.com/auditledger/auditledger/ledger/file"
)

// TestVerifyReportsLegalHolds: verify lists the segments a store holds,
// with the legal_hold.set event recording each, and warns of a hold no
// event records and of a recorded hold the store does not show.
func TestVerifyReportsLegalHolds(t *testing.T) {
	ctx := context.Background()
	st, err := file.New(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	skey, _, _ := ledger.GenerateKey(nil, "hold.test/log")
	signer, _ := ledger.NewNoteSigner(skey)
	l, err := ledger.Open(ctx, ledger.Config{Store: st, Signer: signer})
	if err != nil {
		t.Fatal(err)
	}
	ev := func(id, typ, tenant, payload string) ledger.Entry {
		return ledger.Entry{Event: fmt.Appendf(nil, `{"version":1,"id":%q,"type":%q,"time":"2026-11-26T12:00:00Z","tenant":%q,"source":{"kind":"k","instance":"i"},"actor":{"issuer":"x","subject":"alice","kind":"human"},"payload":%s}`, id, typ, tenant, payload)}
	}
	for i := range 3 { // segments 0, 2 and 4, two records each
		if _, err := l.Append(ctx, []ledger.Entry{ev(fmt.Sprint(2*i), "session.started", "acme", "{}"), ev(fmt.Sprint(2*i+1), "session.started", "beta", "{}")}); err != nil {
			t.Fatal(err)
		}
	}
	spans, err := ledger.Spans(ctx, st, 0, 3)
	if err != nil || len(spans) != 2 || spans[1].Checkpoint != ledger.CheckpointName(4) {
		t.Fatalf("Spans(0, 3) = %+v, %v", spans, err)
	}
	hold, _ := json.Marshal(ledger.LegalHold{From: 0, To: 3, Reason: "matter 17", Store: st.String(),
		Objects: []string{spans[0].Segment, spans[0].Checkpoint, spans[1].Segment, spans[1].Checkpoint}})
	if _, err := l.Append(ctx, []ledger.Entry{ev("h1", "legal_hold.set", "_ledger", string(hold)), ev("h2", "legal_hold.released", "_ledger", `{"from":"zero"}`)}); err != nil {
		t.Fatal(err)
	}
	// Segment 0 held as recorded; segment 2's recorded hold not applied;
	// segment 4 held without a record.
	for _, name := range []string{spans[0].Segment, spans[0].Checkpoint, ledger.SegmentName(4)} {
		if err := st.SetLegalHold(ctx, name, true); err != nil {
			t.Fatal(err)
		}
	}
	rep, err := ledger.Verify(ctx, st, ledger.VerifyOptions{Verifier: signer.Verifier()})
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Holds) != 2 || rep.Holds[0].Name != spans[0].Segment || rep.Holds[0].SetAt != 6 || rep.Holds[0].Reason != "matter 17" ||
		rep.Holds[1].Name != ledger.SegmentName(4) || rep.Holds[1].SetAt != -1 {
		t.Fatalf("holds: %+v", rep.Holds)
	}
	warnings := strings.Join(rep.Warnings, "\n")
	for _, want := range []string{
		spans[1].Segment + ": the legal_hold.set event at record 6 names it, but the store reports no legal hold",
		ledger.SegmentName(4) + ": under legal hold, but no legal_hold.set event in the log records it",
		"record 7: legal_hold.released payload does not parse",
	} {
		if !strings.Contains(warnings, want) {
			t.Errorf("warnings lack %q:\n%s", want, warnings)
		}
	}
	if _, err := ledger.Spans(ctx, st, 0, 8); err == nil || !strings.Contains(err.Error(), "beyond the log") {
		t.Errorf("Spans beyond the log: %v", err)
	}
}
