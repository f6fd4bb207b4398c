// Package s3 is the segment store on S3 with Object Lock: objects are
// created with a conditional PUT (If-None-Match: *), so nothing is ever
// overwritten, in COMPLIANCE mode with a retain-until date, and the lock is
// read back after each write. A legal hold (SetLegalHold) keeps an object
// past its retain-until date until it is released.
//
// Reads take the original (oldest) version of each key, so a later version
// or a delete marker, which anyone with ordinary write rights can add on a
// versioned bucket, can neither replace nor hide a sealed object; Inspect
// reports both as tampering.
package s3

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"

	"github.com/auditledger/auditledger/ledger"
)

var (
	_ ledger.SegmentStore = (*Store)(nil)
	_ ledger.Inspector    = (*Store)(nil)
	_ ledger.LegalHolder  = (*Store)(nil)
	_ ledger.Deleter      = (*Store)(nil)
)

// Config configures a Store.
type Config struct {
	Endpoint string // host:port; required
	Region   string // empty: the server's default
	Bucket   string // required; must have Object Lock enabled
	Prefix   string // prepended to every object name; empty or ending in "/"
	Insecure bool   // plain HTTP (local test servers only)
	// AccessKey, SecretKey and SessionToken are the credentials. Empty
	// keys make New read AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY and
	// AWS_SESSION_TOKEN.
	AccessKey, SecretKey, SessionToken string
}

// Store is a segment store in an S3 bucket with Object Lock.
type Store struct {
	cfg    Config
	client *minio.Client

	mu       sync.Mutex
	versions map[string][]version // object name → versions, oldest first
}

type version struct {
	id           string
	deleteMarker bool
	modified     time.Time
}

// New connects to the bucket and checks that Object Lock is enabled on it.
func New(ctx context.Context, cfg Config) (*Store, error) {
	s, err := connect(cfg)
	if err != nil {
		return nil, err
	}
	return s, s.checkLock(ctx)
}

// CreateBucket makes the bucket with Object Lock (and so versioning)
// enabled, or checks that an existing one has it: what an operator runs
// once before the first writer. It reports whether it made the bucket.
func CreateBucket(ctx context.Context, cfg Config) (created bool, err error) {
	s, err := connect(cfg)
	if err != nil {
		return false, err
	}
	exists, err := s.client.BucketExists(ctx, cfg.Bucket)
	if err != nil {
		return false, fmt.Errorf("s3 store: %s: %w", s, err)
	}
	if !exists {
		err := s.client.MakeBucket(ctx, cfg.Bucket, minio.MakeBucketOptions{Region: cfg.Region, ObjectLocking: true})
		if code := minio.ToErrorResponse(err).Code; err != nil && code != "BucketAlreadyOwnedByYou" && code != "BucketAlreadyExists" {
			return false, fmt.Errorf("s3 store: %s: creating the bucket with Object Lock: %w", s, err)
		}
		created = err == nil
	}
	return created, s.checkLock(ctx)
}

func connect(cfg Config) (*Store, error) {
	if cfg.Endpoint == "" || cfg.Bucket == "" {
		return nil, errors.New("s3 store: endpoint and bucket are required")
	}
	if cfg.Prefix != "" && !strings.HasSuffix(cfg.Prefix, "/") {
		cfg.Prefix += "/"
	}
	var creds *credentials.Credentials
	if cfg.AccessKey != "" || cfg.SecretKey != "" {
		creds = credentials.NewStaticV4(cfg.AccessKey, cfg.SecretKey, cfg.SessionToken)
	} else {
		creds = credentials.NewEnvAWS()
	}
	client, err := minio.New(cfg.Endpoint, &minio.Options{Creds: creds, Secure: !cfg.Insecure, Region: cfg.Region})
	if err != nil {
		return nil, fmt.Errorf("s3 store: %w", err)
	}
	return &Store{cfg: cfg, client: client, versions: map[string][]version{}}, nil
}

func (s *Store) checkLock(ctx context.Context) error {
	lock, _, _, _, err := s.client.GetObjectLockConfig(ctx, s.cfg.Bucket)
	if err != nil {
		return fmt.Errorf("s3 store: %s: reading the bucket's Object Lock configuration: %w", s, err)
	}
	if lock != "Enabled" {
		return fmt.Errorf("s3 store: %s: Object Lock is not enabled on the bucket (create it with object locking: auditledger store init)", s)
	}
	return nil
}

func (s *Store) String() string {
	scheme := "https"
	if s.cfg.Insecure {
		scheme = "http"
	}
	return fmt.Sprintf("s3://%s/%s (%s://%s)", s.cfg.Bucket, s.cfg.Prefix, scheme, s.cfg.Endpoint)
}

// Client is the underlying S3 client, for tests that play the attacker.
func (s *Store) Client() *minio.Client { return s.client }

// Key is the S3 key of an object name.
func (s *Store) Key(name string) string { return s.cfg.Prefix + name }

// Create puts data under name only if the key does not exist, locked in
// COMPLIANCE mode until retainUntil, then reads the lock back.
func (s *Store) Create(ctx context.Context, name string, data []byte, retainUntil time.Time) error {
	if retainUntil.IsZero() {
		return fmt.Errorf("s3 store: %s: a retention is required (WORM is the point of this store)", name)
	}
	opts := minio.PutObjectOptions{
		ContentType:      "application/octet-stream",
		Mode:             minio.Compliance,
		RetainUntilDate:  retainUntil.UTC(),
		SendContentMd5:   true, // Object Lock PUTs need an integrity header
		DisableMultipart: true, // a conditional create must be one request
	}
	opts.SetMatchETagExcept("*")
	key := s.Key(name)
	info, err := s.client.PutObject(ctx, s.cfg.Bucket, key, bytes.NewReader(data), int64(len(data)), opts)
	if err != nil {
		resp := minio.ToErrorResponse(err)
		if resp.Code == "PreconditionFailed" || resp.StatusCode == http.StatusPreconditionFailed {
			return fmt.Errorf("s3 store: %s: %w", name, ledger.ErrExist)
		}
		return fmt.Errorf("s3 store: put %s: %w", name, err)
	}
	st, err := s.client.StatObject(ctx, s.cfg.Bucket, key, minio.StatObjectOptions{VersionID: info.VersionID})
	if err != nil {
		return fmt.Errorf("s3 store: %s written, reading its lock back: %w", name, err)
	}
	mode, until := lockOf(st)
	if mode != string(minio.Compliance) || until.Before(retainUntil.Truncate(time.Second)) {
		return fmt.Errorf("s3 store: %s written but not locked as asked: mode %q until %s, wanted COMPLIANCE until %s",
			name, mode, until.Format(time.RFC3339), retainUntil.UTC().Format(time.RFC3339))
	}
	s.mu.Lock()
	s.versions[name] = []version{{id: info.VersionID}}
	s.mu.Unlock()
	return nil
}

// lockOf reads the lock from a HEAD response's headers; GetObjectRetention
// is not implemented the same way everywhere, the headers are.
func lockOf(info minio.ObjectInfo) (mode string, until time.Time) {
	mode = info.Metadata.Get("X-Amz-Object-Lock-Mode")
	if v := info.Metadata.Get("X-Amz-Object-Lock-Retain-Until-Date"); v != "" {
		until, _ = time.Parse(time.RFC3339, v)
	}
	return mode, until
}

// legalHoldOf reads the legal hold from a HEAD response's headers, for the
// same reason.
func legalHoldOf(info minio.ObjectInfo) bool {
	return strings.EqualFold(info.Metadata.Get("X-Amz-Object-Lock-Legal-Hold"), "ON")
}

// SetLegalHold puts the original version of name under S3 Object Lock
// legal hold (PutObjectLegalHold ON), or releases it (OFF), and reads the
// hold back.
func (s *Store) SetLegalHold(ctx context.Context, name string, on bool) error {
	orig, err := s.original(ctx, name)
	if err != nil {
		return err
	}
	status := minio.LegalHoldDisabled
	if on {
		status = minio.LegalHoldEnabled
	}
	key := s.Key(name)
	if err := s.client.PutObjectLegalHold(ctx, s.cfg.Bucket, key, minio.PutObjectLegalHoldOptions{VersionID: orig.id, Status: &status}); err != nil {
		return fmt.Errorf("s3 store: legal hold %s on %s version %s: %w", status, name, orig.id, err)
	}
	st, err := s.client.StatObject(ctx, s.cfg.Bucket, key, minio.StatObjectOptions{VersionID: orig.id})
	if err != nil {
		return fmt.Errorf("s3 store: legal hold %s set on %s, reading it back: %w", status, name, err)
	}
	if legalHoldOf(st) != on {
		return fmt.Errorf("s3 store: legal hold %s set on %s version %s, but the store reports %q", status, name, orig.id,
			st.Metadata.Get("X-Amz-Object-Lock-Legal-Hold"))
	}
	return nil
}

// ExtendRetention locks the original version of name in COMPLIANCE mode
// until at least until, and reads the lock back. S3 lets a COMPLIANCE
// date move later, never earlier; a lock already long enough is left.
func (s *Store) ExtendRetention(ctx context.Context, name string, until time.Time) error {
	p, err := s.Inspect(ctx, name)
	if err != nil {
		return err
	}
	until = until.UTC()
	if r := until.Truncate(time.Second); !r.Equal(until) {
		until = r.Add(time.Second)
	}
	if p.Locked && p.Mode == string(minio.Compliance) && !p.RetainUntil.Before(until) {
		return nil
	}
	mode := minio.Compliance
	key := s.Key(name)
	if err := s.client.PutObjectRetention(ctx, s.cfg.Bucket, key, minio.PutObjectRetentionOptions{VersionID: p.Version, Mode: &mode, RetainUntilDate: &until}); err != nil {
		return fmt.Errorf("s3 store: extend the lock of %s version %s to %s: %w", name, p.Version, until.Format(time.RFC3339), err)
	}
	st, err := s.client.StatObject(ctx, s.cfg.Bucket, key, minio.StatObjectOptions{VersionID: p.Version})
	if err != nil {
		return fmt.Errorf("s3 store: lock of %s extended, reading it back: %w", name, err)
	}
	if m, u := lockOf(st); m != string(minio.Compliance) || u.Before(until) {
		return fmt.Errorf("s3 store: lock of %s extended to %s, but the store reports mode %q until %s", name, until.Format(time.RFC3339), m, u.Format(time.RFC3339))
	}
	return nil
}

// Delete removes the original version of name for good. It refuses, with
// an error wrapping ledger.ErrProtected, while the version is under legal
// hold or before its retain-until date. S3 refuses those deletes itself;
// the store checks first as well, because not every server does: versitygw
// v1.8.0 lets a held version go once its retention has ended.
func (s *Store) Delete(ctx context.Context, name string) error {
	p, err := s.Inspect(ctx, name)
	if err != nil {
		return err
	}
	switch {
	case p.LegalHold:
		return fmt.Errorf("s3 store: delete %s version %s: %w: under legal hold", name, p.Version, ledger.ErrProtected)
	case p.Locked && time.Now().Before(p.RetainUntil):
		return fmt.Errorf("s3 store: delete %s version %s: %w: locked %s until %s", name, p.Version, ledger.ErrProtected, p.Mode, p.RetainUntil.Format(time.RFC3339))
	}
	orig := version{id: p.Version}
	err = s.client.RemoveObject(ctx, s.cfg.Bucket, s.Key(name), minio.RemoveObjectOptions{VersionID: orig.id})
	s.mu.Lock()
	delete(s.versions, name) // listed again at the next read
	s.mu.Unlock()
	if err != nil {
		if resp := minio.ToErrorResponse(err); resp.Code == "AccessDenied" || resp.StatusCode == http.StatusForbidden {
			return fmt.Errorf("s3 store: delete %s version %s: %w: %w", name, orig.id, ledger.ErrProtected, err)
		}
		return fmt.Errorf("s3 store: delete %s version %s: %w", name, orig.id, err)
	}
	return nil
}

// Get reads the original version of name.
func (s *Store) Get(ctx context.Context, name string) ([]byte, error) {
	v, err := s.original(ctx, name)
	if err != nil {
		return nil, err
	}
	obj, err := s.client.GetObject(ctx, s.cfg.Bucket, s.Key(name), minio.GetObjectOptions{VersionID: v.id})
	if err != nil {
		return nil, fmt.Errorf("s3 store: get %s: %w", name, err)
	}
	defer obj.Close()
	b, err := io.ReadAll(obj)
	if err != nil {
		return nil, fmt.Errorf("s3 store: get %s version %s: %w", name, v.id, err)
	}
	return b, nil
}

func (s *Store) original(ctx context.Context, name string) (version, error) {
	vs, err := s.versionsOf(ctx, name)
	if err != nil {
		return version{}, err
	}
	for _, v := range vs {
		if !v.deleteMarker {
			return v, nil
		}
	}
	return version{}, fmt.Errorf("s3 store: %s: %w", name, ledger.ErrNotExist)
}

func (s *Store) versionsOf(ctx context.Context, name string) ([]version, error) {
	s.mu.Lock()
	vs, ok := s.versions[name]
	s.mu.Unlock()
	if ok {
		return vs, nil
	}
	if err := s.listVersions(ctx, name, true); err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.versions[name], nil
}

// listVersions lists every version under prefix (one exact key if exact)
// and caches them, oldest first.
func (s *Store) listVersions(ctx context.Context, prefix string, exact bool) error {
	found := map[string][]version{}
	var order []string
	for obj := range s.client.ListObjects(ctx, s.cfg.Bucket, minio.ListObjectsOptions{
		Prefix: s.Key(prefix), Recursive: true, WithVersions: true,
	}) {
		if obj.Err != nil {
			return fmt.Errorf("s3 store: list %q: %w", prefix, obj.Err)
		}
		name := strings.TrimPrefix(obj.Key, s.cfg.Prefix)
		if exact && name != prefix {
			continue
		}
		if _, ok := found[name]; !ok {
			order = append(order, name)
		}
		found[name] = append(found[name], version{id: obj.VersionID, deleteMarker: obj.IsDeleteMarker, modified: obj.LastModified})
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, name := range order {
		vs := found[name]
		// S3 lists versions newest first; sort by time to be sure, keeping
		// the listing order among equal times.
		slices.Reverse(vs)
		slices.SortStableFunc(vs, func(a, b version) int { return a.modified.Compare(b.modified) })
		s.versions[name] = vs
	}
	if exact {
		if _, ok := found[prefix]; !ok {
			delete(s.versions, prefix)
		}
	}
	return nil
}

// List returns every name under prefix that has a version, including names
// hidden behind a delete marker.
func (s *Store) List(ctx context.Context, prefix string) ([]string, error) {
	if err := s.listVersions(ctx, prefix, false); err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	var names []string
	for name, vs := range s.versions {
		if !strings.HasPrefix(name, prefix) {
			continue
		}
		if slices.ContainsFunc(vs, func(v version) bool { return !v.deleteMarker }) {
			names = append(names, name)
		}
	}
	slices.Sort(names)
	return names, nil
}

// Inspect reports the lock of the original version and any later version
// or delete marker on the key.
func (s *Store) Inspect(ctx context.Context, name string) (ledger.Protection, error) {
	if err := s.listVersions(ctx, name, true); err != nil {
		return ledger.Protection{}, err
	}
	orig, err := s.original(ctx, name)
	if err != nil {
		return ledger.Protection{}, err
	}
	st, err := s.client.StatObject(ctx, s.cfg.Bucket, s.Key(name), minio.StatObjectOptions{VersionID: orig.id})
	if err != nil {
		return ledger.Protection{}, fmt.Errorf("s3 store: stat %s version %s: %w", name, orig.id, err)
	}
	mode, until := lockOf(st)
	p := ledger.Protection{Locked: mode != "", Mode: mode, RetainUntil: until, Version: orig.id, LegalHold: legalHoldOf(st)}
	if mode == "" {
		p.Mode = "none"
	}
	vs, _ := s.versionsOf(ctx, name)
	seen := false
	for _, v := range vs {
		switch {
		case v.id == orig.id:
			seen = true
		case !seen:
		case v.deleteMarker:
			p.Problems = append(p.Problems, fmt.Sprintf("a delete marker (version %s) hides the sealed version %s, which is intact", v.id, orig.id))
		default:
			p.Problems = append(p.Problems, fmt.Sprintf("a later version %s shadows the sealed version %s, which is intact and is what was verified", v.id, orig.id))
		}
	}
	return p, nil
}
