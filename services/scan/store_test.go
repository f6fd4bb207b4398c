package scan_test

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/auditledger/auditledger/ledger"
	"github.com/auditledger/auditledger/ledger/file"
	"github.com/auditledger/auditledger/services/scan"
)

// newStore seals n events (every 100th holding an e-mail in its
// statement) then a gap and a rejection, in a local store.
func newStore(t *testing.T, n int) ledger.SegmentStore {
	t.Helper()
	skey, _, err := ledger.GenerateKey(rand.Reader, "test.auditledger.dev/log")
	if err != nil {
		t.Fatal(err)
	}
	signer, err := ledger.NewNoteSigner(skey)
	if err != nil {
		t.Fatal(err)
	}
	st, err := file.New(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	l, err := ledger.Open(ctx, ledger.Config{Store: st, Signer: signer})
	if err != nil {
		t.Fatal(err)
	}
	var entries []ledger.Entry
	for i := range n {
		statement := fmt.Sprintf("SELECT %d", i)
		if i%100 == 0 {
			statement = fmt.Sprintf("SELECT * FROM users WHERE email = 'user%d@example.com'", i)
		}
		entries = append(entries, ledger.Entry{Source: uint64(i + 1), Event: []byte(fmt.Sprintf(`{"version":1,"id":"ev-%d","type":"command.executed","time":"2026-12-06T12:00:00Z","tenant":"acme","source":{"kind":"postgres-proxy","instance":"p1"},"actor":{"issuer":"https://idp.example","subject":"alice","kind":"human"},"payload":{"statement":%q}}`, i, statement))})
		if len(entries) == 200 {
			if _, err := l.Append(ctx, entries); err != nil {
				t.Fatal(err)
			}
			entries = nil
		}
	}
	now := time.Date(2026, 12, 6, 12, 0, 0, 0, time.UTC)
	gap, err := ledger.GapEntry(signer.Name(), ledger.Gap{FirstSeq: uint64(n + 1), LastSeq: uint64(n + 2), NoticedAt: now, Reason: "test"})
	if err != nil {
		t.Fatal(err)
	}
	rejected, err := ledger.RejectedEntry(signer.Name(), ledger.Rejection{Seq: uint64(n + 3), Subject: "audit.events.acme", Reason: `type: "x.jane@example.com" is not in the version-1 catalog`, SHA256: strings.Repeat("0", 64), Bytes: 10}, now)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := l.Append(ctx, append(entries, gap, rejected)); err != nil {
		t.Fatal(err)
	}
	return st
}

// TestStore: every record is reported once, in index order, whatever the
// number of workers; events, gaps and rejections are told apart, and
// findings carry the event's id, type and tenant.
func TestStore(t *testing.T) {
	const n = 1000
	st := newStore(t, n)
	s, _ := scan.New()
	for _, workers := range []int{1, 3} {
		var next uint64
		kinds := map[string]int{}
		var found []string
		err := s.Store(context.Background(), st, scan.StoreOptions{Workers: workers}, func(r scan.Record) error {
			if r.Index != next {
				t.Fatalf("workers %d: record %d after %d", workers, r.Index, next-1)
			}
			next++
			kinds[r.Kind]++
			for _, f := range r.Findings {
				found = append(found, fmt.Sprintf("%d %s %s %s %s %s", r.Index, r.ID, r.Type, r.Tenant, f.Path, f.Detector))
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		if next != n+2 || kinds[""] != n || kinds["gap"] != 1 || kinds["rejected"] != 1 {
			t.Errorf("workers %d: %d records, kinds %v", workers, next, kinds)
		}
		if len(found) != n/100+1 || found[1] != "100 ev-100 command.executed acme payload.statement email" ||
			found[len(found)-1] != fmt.Sprintf("%d ledger/rejected/%d ledger.rejected _ledger payload.reason email", n+1, n+3) {
			t.Errorf("workers %d: findings %q", workers, found)
		}
	}
}

// TestStoreRange and stop: From and To bound the records; an error from
// fn stops the scan and is returned.
func TestStoreRangeAndStop(t *testing.T) {
	st := newStore(t, 700)
	s, _ := scan.New("email")
	var got []uint64
	err := s.Store(context.Background(), st, scan.StoreOptions{From: 250, To: 650}, func(r scan.Record) error {
		if len(r.Findings) > 0 {
			got = append(got, r.Index)
		}
		return nil
	})
	if err != nil || fmt.Sprint(got) != "[300 400 500 600]" {
		t.Errorf("From 250 To 650: findings at %v, %v", got, err)
	}
	stop := errors.New("enough")
	seen := 0
	err = s.Store(context.Background(), st, scan.StoreOptions{Workers: 2}, func(r scan.Record) error {
		if seen++; r.Index == 300 {
			return stop
		}
		return nil
	})
	if !errors.Is(err, stop) || seen != 301 {
		t.Errorf("stop at 300: %v after %d records", err, seen)
	}
}
