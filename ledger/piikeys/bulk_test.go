package piikeys

import (
	"bytes"
	"encoding/hex"
	"testing"
)

// TestBulkPieceVector holds a piece to docs/FORMAT.md §1.7's vector,
// computed there by an independent AES-GCM (Python's cryptography).
func TestBulkPieceVector(t *testing.T) {
	key := bytes.Repeat([]byte{7}, 32)
	nonce := bytes.Repeat([]byte{1}, 12)
	place := BulkPlace{Tenant: "acme", Session: "ssh-1", Stream: "stdout", Offset: 524288}
	object, err := sealBulk(key, nonce, place, []byte("hello, bulk\n"))
	if err != nil {
		t.Fatal(err)
	}
	const want = "0101010101010101010101011e84e5dbff93cc6ca4b8b72b2c4141c4e07472ad1fad831bf822628d"
	if got := hex.EncodeToString(object); got != want {
		t.Fatalf("object %s, want %s", got, want)
	}
	if got := BulkName(object); got != "fac599f3d1ee50750652aea80fcdf49451a422881d593b4cb1a21748bfe885f0" {
		t.Fatalf("name %s", got)
	}
	b, err := OpenBulkWith(key, place, object)
	if err != nil || string(b) != "hello, bulk\n" {
		t.Fatalf("opened %q, %v", b, err)
	}
	// Another place, or one byte changed, does not open.
	for _, p := range []BulkPlace{
		{Tenant: "acme", Session: "ssh-1", Stream: "stdout", Offset: 0},
		{Tenant: "acme", Session: "ssh-1", Stream: "stderr", Offset: 524288},
		{Tenant: "acme", Session: "ssh-2", Stream: "stdout", Offset: 524288},
		{Tenant: "other", Session: "ssh-1", Stream: "stdout", Offset: 524288},
	} {
		if _, err := OpenBulkWith(key, p, object); err == nil {
			t.Errorf("opened at %+v", p)
		}
	}
	bad := bytes.Clone(object)
	bad[20] ^= 1
	if _, err := OpenBulkWith(key, place, bad); err == nil {
		t.Error("a changed byte opened")
	}
	if _, err := OpenBulkWith(key, place, object[:27]); err == nil {
		t.Error("a short object opened")
	}
}
