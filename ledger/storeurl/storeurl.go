// Package storeurl opens a segment store from the URL forms the command line
// and configuration files accept:
//
//	/var/lib/auditledger/log            a local directory
//	file:///var/lib/auditledger/log     the same
//	s3://bucket/prefix?endpoint=host:port&region=r&insecure=1&retention=7y
//
// S3 credentials come from AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY and
// AWS_SESSION_TOKEN. retention (default 365d) is how long each sealed
// object stays locked; it accepts Go durations and the units d and y
// (365 days).
package storeurl

import (
	"context"
	"fmt"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/auditledger/auditledger/ledger"
	"github.com/auditledger/auditledger/ledger/file"
	"github.com/auditledger/auditledger/ledger/s3"
)

// DefaultS3Retention applies when an s3:// URL names no retention.
const DefaultS3Retention = 365 * 24 * time.Hour

// Store is an opened store and the retention its URL asks for (zero for a
// local directory, which cannot enforce one). Store is not embedded, so
// optional interfaces (ledger.Inspector) stay visible on it.
type Store struct {
	Store     ledger.SegmentStore
	Retention time.Duration
}

// Open opens the store named by raw, creating a local directory if
// needed: for the writer.
func Open(ctx context.Context, raw string) (*Store, error) { return open(ctx, raw, file.New) }

// OpenExisting opens the store named by raw for reading: a local
// directory must exist already.
func OpenExisting(ctx context.Context, raw string) (*Store, error) { return open(ctx, raw, file.Open) }

// Init prepares the store named by raw for a first writer: a local
// directory is created; an S3 bucket is created with Object Lock, or an
// existing one is checked to have it. It describes what it did.
func Init(ctx context.Context, raw string) (string, error) {
	var did string
	_, err := parse(ctx, raw, func(dir string) (*file.Store, error) {
		st, err := file.New(dir)
		did = "local directory " + dir + " ready"
		return st, err
	}, func(ctx context.Context, cfg s3.Config) (*s3.Store, error) {
		created, err := s3.CreateBucket(ctx, cfg)
		did = fmt.Sprintf("bucket %s has Object Lock enabled", cfg.Bucket)
		if created {
			did = fmt.Sprintf("bucket %s created with Object Lock", cfg.Bucket)
		}
		return nil, err
	})
	return did, err
}

func open(ctx context.Context, raw string, local func(string) (*file.Store, error)) (*Store, error) {
	return parse(ctx, raw, local, s3.New)
}

func parse(ctx context.Context, raw string, local func(string) (*file.Store, error), remote func(context.Context, s3.Config) (*s3.Store, error)) (*Store, error) {
	if raw == "" {
		return nil, fmt.Errorf("store URL is empty: give a directory, file:///path or s3://bucket/prefix?endpoint=host:port")
	}
	if !strings.Contains(raw, "://") {
		fs, err := local(raw)
		if err != nil {
			return nil, err
		}
		return &Store{Store: fs}, nil
	}
	u, err := url.Parse(raw)
	if err != nil {
		return nil, fmt.Errorf("store URL %q: %w", raw, err)
	}
	switch u.Scheme {
	case "file":
		if u.Host != "" && u.Host != "localhost" {
			return nil, fmt.Errorf("store URL %q: file URLs name a local path (file:///path)", raw)
		}
		fs, err := local(u.Path)
		if err != nil {
			return nil, err
		}
		return &Store{Store: fs}, nil
	case "s3":
		q := u.Query()
		for k := range q {
			switch k {
			case "endpoint", "region", "insecure", "retention":
			default:
				return nil, fmt.Errorf("store URL: unknown parameter %q (known: endpoint, region, insecure, retention)", k)
			}
		}
		if u.Host == "" {
			return nil, fmt.Errorf("store URL %q: no bucket (s3://bucket/prefix)", raw)
		}
		endpoint := q.Get("endpoint")
		if endpoint == "" {
			endpoint = "s3.amazonaws.com"
			if r := q.Get("region"); r != "" {
				endpoint = "s3." + r + ".amazonaws.com"
			}
		}
		retention := DefaultS3Retention
		if r := q.Get("retention"); r != "" {
			if retention, err = ParseRetention(r); err != nil {
				return nil, fmt.Errorf("store URL: retention: %w", err)
			}
		}
		insecure := false
		if v := q.Get("insecure"); v != "" {
			if insecure, err = strconv.ParseBool(v); err != nil {
				return nil, fmt.Errorf("store URL: insecure=%q: want 1 or 0", v)
			}
		}
		st, err := remote(ctx, s3.Config{
			Endpoint: endpoint,
			Region:   q.Get("region"),
			Bucket:   u.Host,
			Prefix:   strings.TrimPrefix(u.Path, "/"),
			Insecure: insecure,
		})
		if err != nil {
			return nil, err
		}
		return &Store{Store: st, Retention: retention}, nil
	}
	return nil, fmt.Errorf("store URL %q: unknown scheme %q (use a path, file:// or s3://)", raw, u.Scheme)
}

// ParseRetention parses a retention such as "7y", "30d", "36h" or "90m".
func ParseRetention(s string) (time.Duration, error) {
	var unit time.Duration
	switch {
	case strings.HasSuffix(s, "y"):
		unit = 365 * 24 * time.Hour
	case strings.HasSuffix(s, "d"):
		unit = 24 * time.Hour
	}
	if unit != 0 {
		n, err := strconv.ParseUint(s[:len(s)-1], 10, 32)
		if err != nil || n == 0 {
			return 0, fmt.Errorf("%q: want a positive whole number before %q", s, s[len(s)-1:])
		}
		return time.Duration(n) * unit, nil
	}
	d, err := time.ParseDuration(s)
	if err != nil || d <= 0 {
		return 0, fmt.Errorf("%q: want a positive duration such as 7y, 30d or 36h", s)
	}
	return d, nil
}
