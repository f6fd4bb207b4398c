package ledger_test

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/auditledger/auditledger/events"
	"github.com/auditledger/auditledger/ledger"
	"github.com/auditledger/auditledger/ledger/file"
)

// A full verification of a sound log is ok, names the size and root it
// verified, and its record seals as a system record that verify accepts
// (source 0, FORMAT §2.1). A damaged segment makes it fail, naming the
// segment; an empty store gives nothing to seal.
func TestVerifyWholeSealed(t *testing.T) {
	ctx := context.Background()
	skey, _, _ := ledger.GenerateKey(nil, "verification.test/log")
	s, _ := ledger.NewNoteSigner(skey)
	dir := t.TempDir()
	empty, err := file.New(dir)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := ledger.VerifyWhole(ctx, empty, s.Verifier(), 0); ok {
		t.Fatal("an empty store: want nothing to seal")
	}
	l, st := newLog(t, dir, s)
	if _, err := l.Append(ctx, entries(0, 3)); err != nil {
		t.Fatal(err)
	}
	v, ok := ledger.VerifyWhole(ctx, st, s.Verifier(), l.Size())
	root, _ := l.Tree().Root(3)
	if !ok || !v.OK || v.Size != 3 || v.Root != root.Base64() || v.Failure != nil || len(v.Gaps) != 0 || v.Finished.Before(v.Started) {
		t.Fatalf("verification %+v, want ok at size 3, root %s", v, root.Base64())
	}
	e, err := ledger.VerificationEntry(l.Origin(), l.Size(), v, time.Date(2026, 11, 26, 13, 0, 0, 0, time.UTC))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(string(e.Event), `{"type":"ledger.verification","version":1,"id":"ledger/verification/3",`) || e.Source != 0 {
		t.Fatalf("record %s (source %d)", e.Event, e.Source)
	}
	ev, err := events.Parse(e.Event)
	if err != nil || ev.Tenant != ledger.SystemTenant {
		t.Fatalf("%v %+v", err, ev)
	}
	var back ledger.Verification
	if err := json.Unmarshal(ev.Payload, &back); err != nil || back.Size != 3 || !back.OK || back.Gaps == nil {
		t.Fatalf("payload %s: %v", ev.Payload, err)
	}
	if _, err := l.Append(ctx, []ledger.Entry{e}); err != nil {
		t.Fatal(err)
	}
	if _, err := ledger.Verify(ctx, st, ledger.VerifyOptions{Verifier: s.Verifier()}); err != nil {
		t.Fatalf("a log holding a verification record: %v", err)
	}

	// A damaged segment: the verification fails and says where.
	segs, _ := filepath.Glob(filepath.Join(dir, "segments", "*"))
	b, _ := os.ReadFile(segs[0])
	b[len(b)-3] ^= 1
	os.Chmod(segs[0], 0o644)
	if err := os.WriteFile(segs[0], b, 0o644); err != nil {
		t.Fatal(err)
	}
	v, ok = ledger.VerifyWhole(ctx, st, s.Verifier(), l.Size())
	if !ok || v.OK || v.Failure == nil || v.Failure.Error == "" || v.Size != 4 || v.Root != "" {
		t.Fatalf("a damaged segment: %+v (failure %+v), want a failure at size 4", v, v.Failure)
	}
	if _, err := ledger.VerificationEntry(l.Origin(), 4, v, time.Now()); err != nil {
		t.Fatal(err)
	}
}

// A verification racing the writer's appends (a segment listed before
// its checkpoint is written, or a checkpoint before its segment) is run
// again rather than sealed as a failure of the log.
func TestVerifyWholeWhileAppending(t *testing.T) {
	ctx := context.Background()
	skey, _, _ := ledger.GenerateKey(nil, "verification.test/log")
	s, _ := ledger.NewNoteSigner(skey)
	l, st := newLog(t, t.TempDir(), s)
	if _, err := l.Append(ctx, entries(0, 2)); err != nil {
		t.Fatal(err)
	}
	stop := make(chan struct{})
	done := make(chan error, 1)
	go func() {
		for i := 2; ; i++ {
			select {
			case <-stop:
				done <- nil
				return
			default:
			}
			if _, err := l.Append(ctx, entries(i, 1)); err != nil {
				done <- err
				return
			}
		}
	}()
	for i := range 30 {
		v, ok := ledger.VerifyWhole(ctx, st, s.Verifier(), l.Size())
		if !ok || !v.OK {
			t.Errorf("verification %d while appending: %+v (failure %+v)", i, v, v.Failure)
		}
	}
	close(stop)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

// A verification that cannot list the checkpoints fails at the size the
// writer knows (its log's when it began), not 0: so it counts for the
// periods it would have covered, and its failure shows there (FORMAT
// §2.1, §12.1 log-verified).
func TestVerifyWholeListFails(t *testing.T) {
	skey, _, _ := ledger.GenerateKey(nil, "verification.test/log")
	s, _ := ledger.NewNoteSigner(skey)
	dir := filepath.Join(t.TempDir(), "store")
	st, err := file.New(dir)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.RemoveAll(dir); err != nil {
		t.Fatal(err)
	}
	v, ok := ledger.VerifyWhole(t.Context(), st, s.Verifier(), 7)
	if !ok || v.OK || v.Size != 7 || v.Root != "" || v.Failure == nil || !strings.HasPrefix(v.Failure.Error, "list checkpoints: ") || v.Gaps == nil {
		t.Fatalf("verification %+v (failure %+v), want a failure at size 7 naming the listing", v, v.Failure)
	}
}
