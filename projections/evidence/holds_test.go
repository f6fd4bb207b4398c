package evidence_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/auditledger/auditledger/events"
	"github.com/auditledger/auditledger/ledger"
	"github.com/auditledger/auditledger/projections"
	"github.com/auditledger/auditledger/projections/evidence"
)

// Legal holds on versitygw: a hold set after the period on segments of
// the range is in a bundle built later, proven in its newest checkpoint;
// the verifier names the held segment, and checks that the store holds it
// and the checkpoint at its end, locked. A hold lifted in the store
// without its record, or a segments.json that says otherwise than the
// records, fails; a recorded release verifies with nothing held.
func TestBundleLegalHolds(t *testing.T) {
	ctx := t.Context()
	store := lockedStore(t)
	t0 := time.Now().Add(-5 * time.Hour).Truncate(time.Second)
	r := newRunOn(t, store, t0, 24*time.Hour)
	spans, err := ledger.Spans(ctx, store, 0, ledger.ToEnd)
	if err != nil || len(spans) != 4 {
		t.Fatalf("spans %v, %v", spans, err)
	}
	// Segments 0 to 2 held (the period's is 2), recorded in a segment
	// sealed after the period, then applied to the store.
	hold := ledger.LegalHold{From: spans[0].First, To: spans[2].End - 1, Reason: "case 7", Store: store.String()}
	for _, s := range spans[:3] {
		hold.Objects = append(hold.Objects, s.Segment, s.Checkpoint)
	}
	setAt := r.seal(t, t0.Add(4*time.Hour), events.LegalHoldSet, hold)
	apply := func(on bool, names ...string) {
		t.Helper()
		for _, n := range names {
			if err := store.SetLegalHold(ctx, n, on); err != nil {
				t.Fatal(err)
			}
		}
	}
	apply(true, hold.Objects...)
	from, to := t0.Add(90*time.Minute), t0.Add(150*time.Minute)
	opts := evidence.VerifyOptions{LogVerifier: r.verifer, AllowedSigners: []ssh.PublicKey{r.signer.PublicKey()}, Retention: 24 * time.Hour}

	r.buildStore = store
	r.build(t, "acme", from, to)
	rep, err := evidence.Verify(bytes.NewReader(r.bundle), int64(len(r.bundle)), opts)
	if err != nil {
		t.Fatal(err)
	}
	lh := r.m.LegalHolds
	if lh == nil || lh.Records != 1 || lh.AsOf <= r.m.Range.End || lh.Store == "" || !slices.Equal(rep.Held, []string{spans[2].Segment}) {
		t.Fatalf("legal holds %+v, held %v; want the one record, as of after the range, segment %s held", lh, rep.Held, spans[2].Segment)
	}
	seg := rep.Segments[0]
	if !seg.LegalHold || seg.LegalHoldBy == nil || *seg.LegalHoldBy != setAt || seg.StoreLegalHold == nil || !*seg.StoreLegalHold ||
		seg.Checkpoint == nil || seg.Checkpoint.Name != spans[2].Checkpoint || !seg.Checkpoint.LegalHold || seg.Checkpoint.LockMode != "COMPLIANCE" {
		t.Fatalf("segment %+v, checkpoint %+v", seg, seg.Checkpoint)
	}
	if len(rep.Warnings) != 0 {
		t.Errorf("warnings %q", rep.Warnings)
	}

	// segments.json that says the segment is not held: caught, though
	// re-signed with the evidence key.
	f := zipFiles(t, r.bundle)
	var segs []map[string]any
	json.Unmarshal(f[evidence.SegmentsFile], &segs)
	segs[0]["legal_hold"] = false
	f[evidence.SegmentsFile], _ = json.MarshalIndent(segs, "", "  ")
	resign(t, f, r.signer)
	bad := rezip(t, f)
	if _, err := evidence.Verify(bytes.NewReader(bad), int64(len(bad)), opts); err == nil || !strings.Contains(err.Error(), fmt.Sprintf("record %d leaves legal_hold true", setAt)) {
		t.Errorf("segments.json denying the hold: %v", err)
	}
	// The hold's record left out of legal-holds.jsonl: segments.json no
	// longer agrees.
	f = zipFiles(t, r.bundle)
	f[evidence.LegalHoldsFile] = nil
	resign(t, f, r.signer)
	bad = rezip(t, f)
	if _, err := evidence.Verify(bytes.NewReader(bad), int64(len(bad)), opts); err == nil {
		t.Error("a bundle without its legal-hold record verifies")
	}

	// Lifted in the store without a record.
	apply(false, spans[2].Segment)
	r.build(t, "acme", from, to)
	if _, err := evidence.Verify(bytes.NewReader(r.bundle), int64(len(r.bundle)), opts); err == nil || !strings.Contains(err.Error(), "the store reported it not under legal hold") {
		t.Errorf("a hold lifted without its record: %v", err)
	}
	// Built without the store: the records alone, and a warning.
	r.buildStore = nil
	r.build(t, "acme", from, to)
	rep, err = evidence.Verify(bytes.NewReader(r.bundle), int64(len(r.bundle)), opts)
	if err != nil || len(rep.Held) != 1 || len(rep.Warnings) != 1 || !strings.Contains(rep.Warnings[0], "without the store") {
		t.Errorf("built without the store: %v, held %v, warnings %q", err, rep.Held, rep.Warnings)
	}

	// Released, recorded first: nothing held.
	releasedAt := r.seal(t, t0.Add(5*time.Hour), events.LegalHoldReleased, hold)
	apply(false, hold.Objects...)
	r.buildStore = store
	r.build(t, "acme", from, to)
	rep, err = evidence.Verify(bytes.NewReader(r.bundle), int64(len(r.bundle)), opts)
	if err != nil || len(rep.Held) != 0 || r.m.LegalHolds.Records != 2 || *rep.Segments[0].LegalHoldBy != releasedAt {
		t.Errorf("after the release: %v, held %v, %+v", err, rep.Held, r.m.LegalHolds)
	}
}

// seal seals one legal-hold event of the log's own tenant in a segment of
// its own at time at, projects it, and returns its index.
func (r *run) seal(t *testing.T, at time.Time, typ events.Type, hold ledger.LegalHold) uint64 {
	t.Helper()
	payload, _ := json.Marshal(hold)
	ev, err := json.Marshal(&events.Event{Version: events.Version, ID: fmt.Sprintf("legal-hold/%d-%d/%s", hold.From, hold.To, typ), Type: typ, Time: at,
		Tenant: ledger.SystemTenant, Source: events.Source{Kind: "cli", Instance: "auditledger-legal-hold"},
		Actor: events.Actor{Issuer: "local", Subject: "ops", Kind: events.Human}, Payload: payload})
	if err != nil {
		t.Fatal(err)
	}
	*r.now = at
	idx := r.log.Size()
	if _, err := r.log.Append(t.Context(), []ledger.Entry{{Event: ev}}); err != nil {
		t.Fatal(err)
	}
	for {
		applied, err := projections.Step(t.Context(), r.pcfg)
		if err != nil {
			t.Fatal(err)
		}
		if !applied {
			return idx
		}
	}
}
