package ledger

import (
	"bytes"
	"strings"
	"testing"

	"golang.org/x/mod/sumdb/note"
)

// TestNoteInterop checks our signed notes against golang.org/x/mod/sumdb/note,
// the implementation behind Go's checksum database, in both directions.
func TestNoteInterop(t *testing.T) {
	skey, vkey, err := GenerateKey(nil, "example.com/log")
	if err != nil {
		t.Fatal(err)
	}
	signer, err := NewNoteSigner(skey)
	if err != nil {
		t.Fatal(err)
	}
	cp, err := SignCheckpoint(signer, 42, LeafHash([]byte("x")))
	if err != nil {
		t.Fatal(err)
	}

	// Ours → x/mod.
	xv, err := note.NewVerifier(vkey)
	if err != nil {
		t.Fatalf("x/mod rejects our verifier key: %v", err)
	}
	n, err := note.Open(cp.Signed, note.VerifierList(xv))
	if err != nil {
		t.Fatalf("x/mod rejects our checkpoint: %v", err)
	}
	if n.Text != string(cp.Body()) {
		t.Fatalf("x/mod reads text %q, want %q", n.Text, cp.Body())
	}

	// x/mod → ours, with the same key: Ed25519 is deterministic, so the
	// signed bytes must be identical.
	xs, err := note.NewSigner(skey)
	if err != nil {
		t.Fatalf("x/mod rejects our signer key: %v", err)
	}
	signed, err := note.Sign(&note.Note{Text: string(cp.Body())}, xs)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(signed, cp.Signed) {
		t.Fatalf("signed notes differ:\nx/mod: %q\nours:  %q", signed, cp.Signed)
	}

	// Keys made by x/mod work here.
	xsk, xvk, err := note.GenerateKey(nil, "witness.example/w1")
	if err != nil {
		t.Fatal(err)
	}
	ws, err := NewNoteSigner(xsk)
	if err != nil {
		t.Fatalf("x/mod signer key: %v", err)
	}
	wv, err := NewNoteVerifier(xvk)
	if err != nil {
		t.Fatalf("x/mod verifier key: %v", err)
	}
	if ws.Verifier().String() != xvk {
		t.Fatalf("verifier %q, x/mod says %q", ws.Verifier(), xvk)
	}

	// A cosigned note (our signature plus a witness's) still opens, and
	// the witness signature is ignored, as signed-note requires.
	xw, _ := note.NewSigner(xsk)
	cosigned, err := note.Sign(&note.Note{Text: string(cp.Body())}, xs, xw)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := OpenCheckpoint(cosigned, signer.Verifier()); err != nil {
		t.Fatalf("cosigned checkpoint: %v", err)
	}
	if _, err := OpenCheckpoint(cp.Signed, wv); err == nil {
		t.Fatal("checkpoint accepted under another key")
	}
}

func TestOpenNoteRejects(t *testing.T) {
	skey, _, _ := GenerateKey(nil, "example.com/log")
	s, _ := NewNoteSigner(skey)
	cp, _ := SignCheckpoint(s, 1, LeafHash([]byte("a")))
	v := s.Verifier()
	cases := map[string][]byte{
		"flipped body":      bytes.Replace(cp.Signed, []byte("\n1\n"), []byte("\n2\n"), 1),
		"no signature":      cp.Body(),
		"flipped signature": flipBase64(cp.Signed),
		"extension line":    mustSign(t, s, "example.com/log\n1\n"+LeafHash([]byte("a")).Base64()+"\nextra\n"),
		"other origin":      mustSign(t, s, "other.example/log\n1\n"+LeafHash([]byte("a")).Base64()+"\n"),
	}
	for name, msg := range cases {
		if _, err := OpenCheckpoint(msg, v); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

func mustSign(t *testing.T, s *NoteSigner, text string) []byte {
	t.Helper()
	b, err := s.SignNote([]byte(text))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func flipBase64(signed []byte) []byte {
	out := bytes.Clone(signed)
	i := bytes.LastIndex(out, []byte(" ")) + 10
	if out[i] == 'A' {
		out[i] = 'B'
	} else {
		out[i] = 'A'
	}
	return out
}

func TestKeyErrors(t *testing.T) {
	for _, name := range []string{"", "has space", "has+plus"} {
		if _, _, err := GenerateKey(nil, name); err == nil {
			t.Errorf("GenerateKey(%q) accepted", name)
		}
	}
	_, vkey, _ := GenerateKey(nil, "example.com/log")
	bad := strings.Replace(vkey, "+", "+0", 1)
	if _, err := NewNoteVerifier(bad); err == nil {
		t.Error("verifier key with a wrong hash accepted")
	}
	if _, err := NewNoteSigner(vkey); err == nil {
		t.Error("verifier key accepted as a signer key")
	}
}
