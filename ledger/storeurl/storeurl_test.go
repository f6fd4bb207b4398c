package storeurl

import (
	"context"
	"strings"
	"testing"
	"time"
)

func TestParseRetention(t *testing.T) {
	for in, want := range map[string]time.Duration{"7y": 7 * 365 * 24 * time.Hour, "30d": 30 * 24 * time.Hour, "36h": 36 * time.Hour, "90m": 90 * time.Minute} {
		if got, err := ParseRetention(in); err != nil || got != want {
			t.Errorf("ParseRetention(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	for _, bad := range []string{"", "0d", "-1h", "y", "1.5y", "forever"} {
		if _, err := ParseRetention(bad); err == nil {
			t.Errorf("ParseRetention(%q) accepted", bad)
		}
	}
}

func TestOpenErrors(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	for _, u := range []string{dir, "file://" + dir} {
		s, err := Open(ctx, u)
		if err != nil || s.Retention != 0 || !strings.HasPrefix(s.Store.String(), "file://") {
			t.Errorf("Open(%q) = %+v, %v", u, s, err)
		}
	}
	cases := map[string]string{
		"":                                   "store URL is empty",
		"gs://bucket/x":                      `unknown scheme "gs"`,
		"file://host/path":                   "local path",
		"s3:///prefix?endpoint=x:1":          "no bucket",
		"s3://b/p?endpoint=x:1&retain=1d":    `unknown parameter "retain"`,
		"s3://b/p?endpoint=x:1&retention=1w": "retention",
		"s3://b/p?endpoint=x:1&insecure=yes": "insecure",
	}
	for u, want := range cases {
		if _, err := Open(ctx, u); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Open(%q): %v, want an error containing %q", u, err, want)
		}
	}
}
