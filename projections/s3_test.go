package projections_test

import (
	"context"
	"testing"
	"time"

	"github.com/auditledger/auditledger/ledger"
	"github.com/auditledger/auditledger/ledger/s3"
	"github.com/auditledger/auditledger/projections"
	"github.com/auditledger/auditledger/test/versitygw"
)

// On S3 with Object Lock the segments table keeps what the store reports
// of each segment: the version read, the lock mode and the retain-until
// date (at least the record time plus the retention).
func TestSegmentsKeepTheirLocks(t *testing.T) {
	srv := versitygw.Start(t)
	store, err := s3.New(context.Background(), s3.Config{Endpoint: srv.Endpoint, Bucket: srv.Bucket(t), Prefix: "log", Insecure: true,
		AccessKey: versitygw.AccessKey, SecretKey: versitygw.SecretKey})
	if err != nil {
		t.Fatal(err)
	}
	signer, _ := ledger.NewNoteSigner(mustKey(t))
	l, err := ledger.Open(t.Context(), ledger.Config{Store: store, Signer: signer, Retention: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range []int{2, 3} {
		var es []ledger.Entry
		for i := range n {
			es = append(es, ledger.Entry{Event: event(int(l.Size()) + i + 1)})
		}
		if _, err := l.Append(t.Context(), es); err != nil {
			t.Fatal(err)
		}
	}
	cfg := projections.Config{DB: pool(t), Store: store, Verifier: signer.Verifier()}
	if err := projections.Rebuild(t.Context(), cfg, nil); err != nil {
		t.Fatal(err)
	}
	rows, err := cfg.DB.Query(t.Context(), `SELECT name, coalesce(version, ''), coalesce(lock_mode, ''), retain_until FROM segments ORDER BY first`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	n := 0
	for rows.Next() {
		var name, version, mode string
		var until *time.Time
		if err := rows.Scan(&name, &version, &mode, &until); err != nil {
			t.Fatal(err)
		}
		n++
		if version == "" || mode != "COMPLIANCE" || until == nil || until.Before(time.Now().Add(50*time.Minute)) {
			t.Errorf("%s: version %q, lock %q until %v; want a version, COMPLIANCE, about an hour from now", name, version, mode, until)
		}
	}
	if n != 2 {
		t.Fatalf("%d segments projected, want 2", n)
	}
}

func mustKey(t *testing.T) string {
	skey, _, err := ledger.GenerateKey(nil, "s3.auditledger.local/log")
	if err != nil {
		t.Fatal(err)
	}
	return skey
}
