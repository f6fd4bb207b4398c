package s3_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"

	"github.com/auditledger/auditledger/ledger"
	"github.com/auditledger/auditledger/ledger/s3"
	"github.com/auditledger/auditledger/ledger/storetest"
	"github.com/auditledger/auditledger/test/versitygw"
)

const retention = time.Hour

func newStore(t *testing.T, srv *versitygw.Server) *s3.Store {
	t.Helper()
	st, err := s3.New(context.Background(), s3.Config{
		Endpoint: srv.Endpoint, Bucket: srv.Bucket(t), Prefix: "log1", Insecure: true,
		AccessKey: versitygw.AccessKey, SecretKey: versitygw.SecretKey,
	})
	if err != nil {
		t.Fatal(err)
	}
	return st
}

func TestContract(t *testing.T) {
	srv := versitygw.Start(t)
	storetest.Run(t, func(t *testing.T) ledger.SegmentStore { return newStore(t, srv) }, retention)
}

func TestRefusesBucketWithoutObjectLock(t *testing.T) {
	srv := versitygw.Start(t)
	_, err := s3.New(context.Background(), s3.Config{
		Endpoint: srv.Endpoint, Bucket: srv.PlainBucket(t), Insecure: true,
		AccessKey: versitygw.AccessKey, SecretKey: versitygw.SecretKey,
	})
	if err == nil || !strings.Contains(err.Error(), "Object Lock") {
		t.Fatalf("bucket without Object Lock: %v", err)
	}
}

// TestAttacker plays someone with ordinary write rights to the bucket: they
// cannot delete a sealed version, and what they can do — add a delete
// marker, add a newer version — neither changes what is read nor goes
// unreported.
func TestAttacker(t *testing.T) {
	ctx := context.Background()
	srv := versitygw.Start(t)
	st := newStore(t, srv)
	bucket := strings.SplitN(strings.TrimPrefix(st.String(), "s3://"), "/", 2)[0]
	original := []byte("sealed")
	if err := st.Create(ctx, "segments/a", original, time.Now().Add(retention)); err != nil {
		t.Fatal(err)
	}
	p, err := st.Inspect(ctx, "segments/a")
	if err != nil {
		t.Fatal(err)
	}
	if !p.Locked || p.Mode != "COMPLIANCE" || p.RetainUntil.Before(time.Now().Add(retention-time.Minute)) || p.Version == "" {
		t.Fatalf("lock after Create: %+v", p)
	}
	c := srv.Client
	key := st.Key("segments/a")

	// Deleting the locked version is refused.
	err = c.RemoveObject(ctx, bucket, key, minio.RemoveObjectOptions{VersionID: p.Version, GovernanceBypass: true})
	if err == nil {
		t.Fatal("deleting a locked version succeeded")
	}

	// Shortening the retention is refused.
	short := time.Now().Add(time.Minute)
	mode := minio.Compliance
	if err := c.PutObjectRetention(ctx, bucket, key, minio.PutObjectRetentionOptions{Mode: &mode, RetainUntilDate: &short, VersionID: p.Version}); err == nil {
		t.Fatal("shortening a COMPLIANCE retention succeeded")
	}

	// An unconditional overwrite makes a new version; reads still get the
	// original, and Inspect names the shadowing version.
	if _, err := c.PutObject(ctx, bucket, key, bytes.NewReader([]byte("forged")), 6, minio.PutObjectOptions{}); err != nil {
		t.Fatalf("plain overwrite: %v", err)
	}
	fresh := newStoreOn(t, srv, bucket)
	got, err := fresh.Get(ctx, "segments/a")
	if err != nil || !bytes.Equal(got, original) {
		t.Fatalf("after overwrite Get = %q, %v; want the original", got, err)
	}
	p, _ = fresh.Inspect(ctx, "segments/a")
	if len(p.Problems) != 1 || !strings.Contains(p.Problems[0], "shadows") {
		t.Fatalf("overwrite not reported: %+v", p)
	}

	// A delete marker hides the key from plain GETs; we still list and read
	// the original, and report the marker.
	if err := c.RemoveObject(ctx, bucket, key, minio.RemoveObjectOptions{}); err != nil {
		t.Fatalf("adding a delete marker: %v", err)
	}
	fresh = newStoreOn(t, srv, bucket)
	names, _ := fresh.List(ctx, "segments/")
	if len(names) != 1 {
		t.Fatalf("List after delete marker = %q", names)
	}
	got, err = fresh.Get(ctx, "segments/a")
	if err != nil || !bytes.Equal(got, original) {
		t.Fatalf("after delete marker Get = %q, %v", got, err)
	}
	p, _ = fresh.Inspect(ctx, "segments/a")
	if !strings.Contains(strings.Join(p.Problems, "\n"), "delete marker") {
		t.Fatalf("delete marker not reported: %+v", p.Problems)
	}
	// A create over the hidden key is refused (versitygw) or, where a
	// server allows it, still cannot change what is read.
	err = fresh.Create(ctx, "segments/a", []byte("again"), time.Now().Add(retention))
	if err != nil && !errors.Is(err, ledger.ErrExist) {
		t.Fatalf("Create over a delete-marked key: %v", err)
	}
	if got, _ := newStoreOn(t, srv, bucket).Get(ctx, "segments/a"); !bytes.Equal(got, original) {
		t.Fatalf("after Create over a delete marker Get = %q, want the original", got)
	}
}

func newStoreOn(t *testing.T, srv *versitygw.Server, bucket string) *s3.Store {
	st, err := s3.New(context.Background(), s3.Config{
		Endpoint: srv.Endpoint, Bucket: bucket, Prefix: "log1", Insecure: true,
		AccessKey: versitygw.AccessKey, SecretKey: versitygw.SecretKey,
	})
	if err != nil {
		t.Fatal(err)
	}
	return st
}

// waitUnlocked polls the object's retention until its retain-until date
// has passed.
func waitUnlocked(t *testing.T, st *s3.Store, name string) {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for {
		p, err := st.Inspect(t.Context(), name)
		if err != nil {
			t.Fatal(err)
		}
		if !p.Locked || time.Now().After(p.RetainUntil) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s still locked until %s", name, p.RetainUntil)
		}
		time.Sleep(100 * time.Millisecond) // polling the lock, not timing it
	}
}

// TestLegalHoldOutlivesRetention: a segment under legal hold cannot be
// deleted after its retention ends; once released, it can.
func TestLegalHoldOutlivesRetention(t *testing.T) {
	ctx := t.Context()
	srv := versitygw.Start(t)
	st := newStore(t, srv)
	bucket := strings.SplitN(strings.TrimPrefix(st.String(), "s3://"), "/", 2)[0]
	// A retention a few seconds long, waited out below: one second was
	// already past when a busy machine's request reached the store.
	until := time.Now().Add(4 * time.Second)
	if err := st.Create(ctx, "segments/held", []byte("sealed"), until); err != nil {
		t.Fatal(err)
	}
	if err := st.Create(ctx, "segments/free", []byte("sealed"), until); err != nil {
		t.Fatal(err)
	}
	if err := st.SetLegalHold(ctx, "segments/held", true); err != nil {
		t.Fatal(err)
	}
	waitUnlocked(t, st, "segments/held")
	waitUnlocked(t, st, "segments/free")

	// Retention over: the one without a hold goes, the held one stays,
	// by the store's Delete and by a plain versioned delete alike.
	if err := st.Delete(ctx, "segments/free"); err != nil {
		t.Fatalf("deleting an object whose retention ended: %v", err)
	}
	if err := st.Delete(ctx, "segments/held"); !errors.Is(err, ledger.ErrProtected) {
		t.Fatalf("deleting a held object after its retention: %v, want ErrProtected", err)
	}
	p, err := st.Inspect(ctx, "segments/held")
	if err != nil || !p.LegalHold {
		t.Fatalf("Inspect of the held object: %+v, %v", p, err)
	}
	// (A versioned DELETE sent straight to versitygw v1.8.0 would succeed
	// here: it skips the legal hold check once the retention has ended,
	// which AWS S3 does not. The store's Delete checks the hold itself.)
	if got, err := newStoreOn(t, srv, bucket).Get(ctx, "segments/held"); err != nil || string(got) != "sealed" {
		t.Fatalf("held object after refused deletes: %q, %v", got, err)
	}

	if err := st.SetLegalHold(ctx, "segments/held", false); err != nil {
		t.Fatal(err)
	}
	if err := st.Delete(ctx, "segments/held"); err != nil {
		t.Fatalf("deleting after release: %v", err)
	}
	if _, err := newStoreOn(t, srv, bucket).Get(ctx, "segments/held"); !errors.Is(err, ledger.ErrNotExist) {
		t.Fatalf("Get after delete: %v, want ErrNotExist", err)
	}
}

// TestTenantRetention: each segment is locked until its last record's
// time plus the longest retention among the tenants it holds, and verify
// checks every segment against the retention the log records.
func TestTenantRetention(t *testing.T) {
	ctx := t.Context()
	srv := versitygw.Start(t)
	st := newStore(t, srv)
	skey, _, _ := ledger.GenerateKey(nil, "s3.test/log")
	signer, _ := ledger.NewNoteSigner(skey)
	cfg := ledger.Retention{Default: time.Hour, Tenants: map[string]time.Duration{"acme": 3 * time.Hour, "beta": 2 * time.Hour}}
	l, err := ledger.Open(ctx, ledger.Config{Store: st, Signer: signer, Retention: cfg.Default, TenantRetention: cfg.Tenants})
	if err != nil {
		t.Fatal(err)
	}
	changes := cfg.Changes(ledger.Retention{}, "test")
	recs, err := ledger.RetentionEntries(l.Origin(), 0, changes, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := l.Append(ctx, recs); err != nil {
		t.Fatal(err)
	}
	ev := func(id, tenant string) ledger.Entry {
		return ledger.Entry{Event: fmt.Appendf(nil, `{"version":1,"id":%q,"type":"session.started","time":"2026-11-26T12:00:00Z","tenant":%q,"source":{"kind":"k","instance":"i"},"actor":{"issuer":"x","subject":"s","kind":"human"},"payload":{}}`, id, tenant)}
	}
	segments := []struct {
		entries []ledger.Entry
		want    time.Duration
	}{
		{[]ledger.Entry{ev("1", "other"), ev("2", "beta")}, 2 * time.Hour},
		{[]ledger.Entry{ev("3", "beta"), ev("4", "acme"), ev("5", "other")}, 3 * time.Hour},
		{[]ledger.Entry{ev("6", "other")}, time.Hour},
	}
	for i, s := range segments {
		seal, err := l.Append(ctx, s.entries)
		if err != nil {
			t.Fatal(err)
		}
		last, _ := ledger.ParseRecord(seal.Records[len(seal.Records)-1])
		want := ledger.RetainUntil(last.Time, s.want)
		for _, name := range []string{seal.Segment, ledger.CheckpointName(seal.Checkpoint.Size)} {
			p, err := st.Inspect(ctx, name)
			if err != nil {
				t.Fatal(err)
			}
			if !p.RetainUntil.Equal(want) {
				t.Errorf("segment %d: %s locked until %s, want %s (its longest tenant's %s)", i, name, p.RetainUntil, want, s.want)
			}
		}
	}
	rep, err := ledger.Verify(ctx, st, ledger.VerifyOptions{Verifier: signer.Verifier(), Retention: 24 * time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	if rep.Retention == nil || rep.RetentionChanges != 3 || rep.Retention.For("acme") != 3*time.Hour {
		t.Fatalf("recorded retention %+v, %d changes", rep.Retention, rep.RetentionChanges)
	}
	if got := rep.Segments[2].RequiredBy; got != "acme" {
		t.Errorf("segment 2 checked for tenant %q, want acme", got)
	}

	// A writer that records a longer retention for acme than it locks
	// with: verify names the segment and the tenant.
	l, err = ledger.Open(ctx, ledger.Config{Store: st, Signer: signer, Retention: time.Hour, TenantRetention: cfg.Tenants})
	if err != nil {
		t.Fatal(err)
	}
	more := ledger.Retention{Default: time.Hour, Tenants: map[string]time.Duration{"acme": 4 * time.Hour, "beta": 2 * time.Hour}}
	recs, _ = ledger.RetentionEntries(l.Origin(), l.Size(), more.Changes(cfg, "test"), time.Now())
	// The record is acme's own, so its segment is the first that falls short.
	seal, err := l.Append(ctx, recs)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := l.Append(ctx, []ledger.Entry{ev("7", "acme")}); err != nil {
		t.Fatal(err)
	}
	_, err = ledger.Verify(ctx, st, ledger.VerifyOptions{Verifier: signer.Verifier()})
	var ve *ledger.VerifyError
	if !errors.As(err, &ve) || ve.Object != seal.Segment || !strings.Contains(ve.Check, `"acme"`) {
		t.Fatalf("verify of a segment locked shorter than its tenant's recorded retention: %v", err)
	}
}
