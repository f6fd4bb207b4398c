package oidcdev

import (
	"os"
	"path/filepath"
	"testing"
)

// TestKeyFileKeepsTheKey: with a key file, a restarted provider signs
// with the same key under the same key id, so tokens issued before the
// restart still verify; the file is private to its owner.
func TestKeyFileKeepsTheKey(t *testing.T) {
	path := filepath.Join(t.TempDir(), "oidc-dev.pem")
	cfg := Config{Issuer: "http://127.0.0.1:1", Audience: "a", KeyFile: path}
	a, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(path)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("key file: %v, mode %v", err, fi.Mode())
	}
	b, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if !a.st.key.Equal(b.st.key) || a.st.kid != b.st.kid {
		t.Fatal("a restarted provider has another key")
	}
	c, err := New(Config{Issuer: cfg.Issuer, Audience: "a"})
	if err != nil {
		t.Fatal(err)
	}
	if c.st.key.Equal(a.st.key) || c.st.kid == a.st.kid {
		t.Fatal("a provider without a key file reused the kept key")
	}
	os.WriteFile(path, []byte("not a key"), 0o600)
	if _, err := New(cfg); err == nil {
		t.Fatal("a damaged key file was accepted")
	}
}
