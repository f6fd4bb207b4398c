package s3_test

import (
	"bytes"
	"context"
	"errors"
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
