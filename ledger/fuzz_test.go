package ledger

import (
	"bytes"
	"testing"
)

// Every parser is fuzzed: it must never panic, and what it accepts must
// re-encode to the same bytes, so there is one encoding per value and a
// verifier hashing stored bytes sees what the parser saw.

func FuzzParseSegment(f *testing.F) {
	f.Add([]byte("AUDLSEG1"))
	f.Fuzz(func(t *testing.T, b []byte) {
		s, err := ParseSegment(b)
		if err != nil {
			return
		}
		if !bytes.Equal(s.Encode(), b) {
			t.Fatalf("segment re-encodes differently")
		}
	})
}

func FuzzParseRecord(f *testing.F) {
	f.Add([]byte{1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, '{', '}'})
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := ParseRecord(b)
		if err != nil {
			return
		}
		if !bytes.Equal(r.AppendBinary(nil), b) {
			t.Fatalf("record re-encodes differently")
		}
	})
}

func FuzzParseCheckpoint(f *testing.F) {
	f.Add([]byte("example.com/log\n0\n47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=\n"))
	v := mustVerifier(f)
	f.Fuzz(func(t *testing.T, b []byte) {
		OpenCheckpoint(b, v) // must not panic
		c, err := ParseCheckpointBody(b)
		if err != nil {
			return
		}
		body := b
		if i := bytes.Index(b, []byte("\n\n")); i >= 0 {
			body = b[:i+1]
		}
		if !bytes.Equal(c.Body(), body) {
			t.Fatalf("checkpoint body re-encodes differently: %q vs %q", c.Body(), body)
		}
	})
}

func FuzzParseInclusionProof(f *testing.F) {
	f.Add([]byte("c2sp.org/tlog-proof@v1\nindex 0\n\nexample.com/log\n1\n47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		p, err := ParseInclusionProof(b)
		if err != nil {
			return
		}
		if !bytes.Equal(p.Marshal(), b) {
			t.Fatalf("tlog-proof re-encodes differently")
		}
	})
}

func FuzzParseConsistencyProof(f *testing.F) {
	f.Add([]byte(ConsistencyProofHeader + "\nold 1\nnew 2\n47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		p, err := ParseConsistencyProof(b)
		if err != nil {
			return
		}
		if !bytes.Equal(p.Marshal(), b) {
			t.Fatalf("consistency proof re-encodes differently")
		}
	})
}

func mustVerifier(f *testing.F) *NoteVerifier {
	skey, _, err := GenerateKey(nil, "example.com/log")
	if err != nil {
		f.Fatal(err)
	}
	s, _ := NewNoteSigner(skey)
	return s.Verifier()
}
