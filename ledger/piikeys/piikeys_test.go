package piikeys_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/auditledger/auditledger/ledger/bus"
	"github.com/auditledger/auditledger/ledger/piikeys"
	"github.com/auditledger/auditledger/test/natstest"
)

// openStore opens the key store on a JetStream server of its own, with a
// context that ends with the test or two minutes.
func openStore(t *testing.T) (context.Context, jetstream.JetStream, *piikeys.Store) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	_, js := natstest.Start(t).Connect(t)
	st, err := piikeys.Open(ctx, js, 1)
	if err != nil {
		t.Fatal(err)
	}
	return ctx, js, st
}

func TestSealUnsealErase(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	srv := natstest.Start(t)
	_, js := srv.Connect(t)
	st, err := piikeys.Open(ctx, js, 1)
	if err != nil {
		t.Fatal(err)
	}
	tok, err := st.Seal(ctx, "acme", "https://idp", "u-1", "actor.email", "jane@example.com")
	if err != nil {
		t.Fatal(err)
	}
	p, _, ok := piikeys.ParseToken(tok)
	if !ok {
		t.Fatalf("Seal returned %q, not a token", tok)
	}
	// A second store (another gateway) agrees on the subject's key.
	st2, err := piikeys.Open(ctx, js, 1)
	if err != nil {
		t.Fatal(err)
	}
	if p2, err := st2.Pseudonym(ctx, "acme", "https://idp", "u-1"); err != nil || p2 != p {
		t.Fatalf("second store: pseudonym %q, %v; want %q", p2, err, p)
	}
	if v, err := st2.Unseal(ctx, "acme", "actor.email", tok); err != nil || v != "jane@example.com" {
		t.Fatalf("Unseal = %q, %v", v, err)
	}
	// Bound to tenant and field.
	if _, err := st2.Unseal(ctx, "other", "actor.email", tok); err == nil {
		t.Fatal("a field opened under another tenant")
	}
	if _, err := st2.Unseal(ctx, "acme", "actor.name", tok); err == nil {
		t.Fatal("a field opened as another field")
	}

	// Legal hold refuses erasure; release allows it.
	if err := st.Hold(ctx, "acme", "https://idp", "u-1", "case 7", "auditor"); err != nil {
		t.Fatal(err)
	}
	if _, err := st.Erase(ctx, "acme", "https://idp", "u-1"); !errors.Is(err, piikeys.ErrHeld) {
		t.Fatalf("Erase under hold = %v, want ErrHeld", err)
	}
	if err := st.Release(ctx, "acme", "https://idp", "u-1"); err != nil {
		t.Fatal(err)
	}
	// The key's bytes are in the bucket's store before erasure ...
	key := keyBytes(t, ctx, js, p)
	if !storeHolds(t, srv.StoreDir, key) {
		t.Fatal("the subject's key is not in the store before erasure (the check would prove nothing)")
	}
	erased, err := st.Erase(ctx, "acme", "https://idp", "u-1")
	if err != nil || erased != p {
		t.Fatalf("Erase = %q, %v; want %q", erased, err, p)
	}
	// ... and gone after: no byte of the sealed field decrypts.
	if storeHolds(t, srv.StoreDir, key) {
		t.Fatal("the erased key's bytes are still in the bus's store")
	}
	if _, err := st2.Unseal(ctx, "acme", "actor.email", tok); !errors.Is(err, piikeys.ErrErased) {
		t.Fatalf("Unseal after erasure = %v, want ErrErased", err)
	}
	if _, err := st.Erase(ctx, "acme", "https://idp", "u-1"); !errors.Is(err, piikeys.ErrNoSubject) {
		t.Fatalf("second Erase = %v, want ErrNoSubject", err)
	}
	// The subject returning gets a new key and pseudonym.
	st3, _ := piikeys.Open(ctx, js, 1)
	if p3, err := st3.Pseudonym(ctx, "acme", "https://idp", "u-1"); err != nil || p3 == p {
		t.Fatalf("after erasure: pseudonym %q, %v; want a new one", p3, err)
	}
}

func keyBytes(t *testing.T, ctx context.Context, js jetstream.JetStream, p string) []byte {
	t.Helper()
	kv, err := js.KeyValue(ctx, bus.PIIKeysBucket)
	if err != nil {
		t.Fatal(err)
	}
	e, err := kv.Get(ctx, "key."+p)
	if err != nil {
		t.Fatal(err)
	}
	var v struct{ Key []byte }
	if err := json.Unmarshal(e.Value(), &v); err != nil || len(v.Key) != 32 {
		t.Fatalf("key entry: %v", err)
	}
	// The entry is stored as JSON: the key appears base64-encoded.
	return []byte(jsonString(v.Key))
}

func storeHolds(t *testing.T, dir string, b []byte) bool {
	t.Helper()
	found := false
	filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		data, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		if bytes.Contains(data, b) {
			found = true
		}
		return nil
	})
	return found
}

func TestMatchCanonical(t *testing.T) {
	k := bytes.Repeat([]byte{7}, 32)
	same := [][]string{
		{"4111 1111 1111 1111", "4111-1111-1111-1111", "4111111111111111", "４１１１ １１１１ １１１１ １１１１"},
		{"Jane@Example.com", "jane@example.com", " jane@example.com "},
		{"DE89 3704 0044 0532 0130 00", "de89370400440532013000", "DE89370400440532013000"},
	}
	for _, g := range same {
		for _, v := range g[1:] {
			if piikeys.MatchDigest(k, v) != piikeys.MatchDigest(k, g[0]) {
				t.Errorf("%q and %q digest differently", v, g[0])
			}
		}
	}
	if piikeys.Canonical("Jane Doe") != "Jane Doe" || piikeys.Canonical("secret_ABCdef") != "secret_ABCdef" {
		t.Error("a value of no known form changed its case or spacing")
	}
	if piikeys.MatchDigest(k, "4111111111111111") == piikeys.MatchDigest(bytes.Repeat([]byte{8}, 32), "4111111111111111") {
		t.Error("the digest does not depend on the key")
	}
}

func jsonString(b []byte) string {
	s, _ := json.Marshal(b)
	return string(s[1 : len(s)-1])
}

// Sealers finds the subjects who sealed a value, by the value in any of
// its canonical forms, within one tenant; an erased subject is not found,
// and erasure leaves no entry of theirs.
func TestSealers(t *testing.T) {
	ctx, js, st := openStore(t)
	seal := func(tenant, subject, email string) string {
		tok, err := st.Seal(ctx, tenant, "https://idp", subject, "actor.email", email)
		if err != nil {
			t.Fatal(err)
		}
		p, _, _ := piikeys.ParseToken(tok)
		return p
	}
	jane := seal("acme", "u-1", "jane@example.com")
	seal("acme", "u-1", "jane@example.com") // again: one entry
	shared := seal("acme", "u-2", "Jane@Example.com")
	seal("other", "u-1", "jane@example.com")
	seal("acme", "u-3", "bob@example.com")
	// Another store (the API) finds them.
	st2, err := piikeys.Open(ctx, js, 1)
	if err != nil {
		t.Fatal(err)
	}
	got, err := st2.Sealers(ctx, "acme", "actor.email", " JANE@example.com")
	if err != nil {
		t.Fatal(err)
	}
	want := []string{jane, shared}
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Fatalf("Sealers = %v, want %v", got, want)
	}
	if got, err := st2.Sealers(ctx, "acme", "actor.name", "jane@example.com"); err != nil || len(got) != 0 {
		t.Fatalf("Sealers of another field = %v, %v", got, err)
	}
	if got, err := st2.Sealers(ctx, "acme", "actor.email", "nobody@example.com"); err != nil || len(got) != 0 {
		t.Fatalf("Sealers of a value never sealed = %v, %v", got, err)
	}
	if _, err := st.Erase(ctx, "acme", "https://idp", "u-1"); err != nil {
		t.Fatal(err)
	}
	if got, err := st2.Sealers(ctx, "acme", "actor.email", "jane@example.com"); err != nil || !slices.Equal(got, []string{shared}) {
		t.Fatalf("Sealers after erasing u-1 = %v, %v; want only %s", got, err, shared)
	}
	kv, err := js.KeyValue(ctx, piikeys.Bucket)
	if err != nil {
		t.Fatal(err)
	}
	keys, err := kv.ListKeysFiltered(ctx, "sealed.*."+jane)
	if err == nil {
		for k := range keys.Keys() {
			t.Errorf("entry %s of the erased subject remains", k)
		}
	}
}
