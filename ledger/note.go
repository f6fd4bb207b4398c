package ledger

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"fmt"
	"io"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"
)

// This file implements C2SP signed-note with Ed25519 keys (algorithm 0x01),
// the format of Go's checksum database and transparency-log witnesses. Key
// strings follow the same encoding:
//
//	verifier key: <name>+<hex key hash>+<base64(0x01 ‖ public key)>
//	signer key:   PRIVATE+KEY+<name>+<hex key hash>+<base64(0x01 ‖ seed)>
//
// key hash = first 4 bytes (big-endian) of SHA-256(name ‖ "\n" ‖ 0x01 ‖ public key).

const algEd25519 = 0x01

func base64Std(b []byte) string { return base64.StdEncoding.EncodeToString(b) }

func decodeBase64(s string) ([]byte, error) { return base64.StdEncoding.Strict().DecodeString(s) }

func keyHash(name string, key []byte) uint32 {
	h := sha256.New()
	h.Write([]byte(name))
	h.Write([]byte("\n"))
	h.Write(key)
	var sum [sha256.Size]byte
	return binary.BigEndian.Uint32(h.Sum(sum[:0]))
}

func validKeyName(name string) bool {
	if name == "" || !utf8.ValidString(name) {
		return false
	}
	for _, r := range name {
		if r == '+' || unicode.IsSpace(r) || !unicode.IsPrint(r) {
			return false
		}
	}
	return true
}

// NoteSigner signs notes with an Ed25519 key.
type NoteSigner struct {
	name string
	hash uint32
	key  ed25519.PrivateKey
}

// NoteVerifier checks notes signed by one Ed25519 key.
type NoteVerifier struct {
	name string
	hash uint32
	key  ed25519.PublicKey
}

// GenerateKey makes a new signing key named name, returning the encoded
// signer (secret) and verifier (public) keys.
func GenerateKey(rnd io.Reader, name string) (skey, vkey string, err error) {
	if !validKeyName(name) {
		return "", "", fmt.Errorf("%w: key name %q must be non-empty printable text without spaces or '+'", ErrBadKey, name)
	}
	if rnd == nil {
		rnd = rand.Reader
	}
	pub, priv, err := ed25519.GenerateKey(rnd)
	if err != nil {
		return "", "", err
	}
	pk := append([]byte{algEd25519}, pub...)
	h := keyHash(name, pk)
	skey = fmt.Sprintf("PRIVATE+KEY+%s+%08x+%s", name, h, base64Std(append([]byte{algEd25519}, priv.Seed()...)))
	vkey = fmt.Sprintf("%s+%08x+%s", name, h, base64Std(pk))
	return skey, vkey, nil
}

// NewNoteSigner decodes a signer key.
func NewNoteSigner(skey string) (*NoteSigner, error) {
	skey = strings.TrimSpace(skey)
	rest, ok := strings.CutPrefix(skey, "PRIVATE+KEY+")
	if !ok {
		return nil, fmt.Errorf("%w: signer key must start with PRIVATE+KEY+", ErrBadKey)
	}
	name, h, key, err := splitKey(rest)
	if err != nil {
		return nil, err
	}
	if len(key) != 1+ed25519.SeedSize {
		return nil, fmt.Errorf("%w: signer key %q: want an Ed25519 seed", ErrBadKey, name)
	}
	priv := ed25519.NewKeyFromSeed(key[1:])
	pk := append([]byte{algEd25519}, priv.Public().(ed25519.PublicKey)...)
	if keyHash(name, pk) != h {
		return nil, fmt.Errorf("%w: signer key %q: key hash does not match the key", ErrBadKey, name)
	}
	return &NoteSigner{name: name, hash: h, key: priv}, nil
}

// NewNoteVerifier decodes a verifier key.
func NewNoteVerifier(vkey string) (*NoteVerifier, error) {
	name, h, key, err := splitKey(strings.TrimSpace(vkey))
	if err != nil {
		return nil, err
	}
	if len(key) != 1+ed25519.PublicKeySize {
		return nil, fmt.Errorf("%w: verifier key %q: want an Ed25519 public key", ErrBadKey, name)
	}
	if keyHash(name, key) != h {
		return nil, fmt.Errorf("%w: verifier key %q: key hash does not match the key", ErrBadKey, name)
	}
	return &NoteVerifier{name: name, hash: h, key: ed25519.PublicKey(key[1:])}, nil
}

func splitKey(s string) (name string, hash uint32, key []byte, err error) {
	name, rest, ok1 := strings.Cut(s, "+")
	hexHash, b64, ok2 := strings.Cut(rest, "+")
	if !ok1 || !ok2 || !validKeyName(name) || len(hexHash) != 8 {
		return "", 0, nil, fmt.Errorf("%w: want name+hash+key", ErrBadKey)
	}
	h, err := strconv.ParseUint(hexHash, 16, 32)
	if err != nil {
		return "", 0, nil, fmt.Errorf("%w: key hash %q: %v", ErrBadKey, hexHash, err)
	}
	key, err = decodeBase64(b64)
	if err != nil || len(key) == 0 {
		return "", 0, nil, fmt.Errorf("%w: key %q: bad base64", ErrBadKey, name)
	}
	if key[0] != algEd25519 {
		return "", 0, nil, fmt.Errorf("%w: key %q: algorithm %#x, only Ed25519 (0x01) is supported", ErrBadKey, name, key[0])
	}
	return name, uint32(h), key, nil
}

// Name is the key name, which is also the log origin.
func (s *NoteSigner) Name() string { return s.name }

// Verifier returns the matching verifier.
func (s *NoteSigner) Verifier() *NoteVerifier {
	return &NoteVerifier{name: s.name, hash: s.hash, key: s.key.Public().(ed25519.PublicKey)}
}

// Name is the key name.
func (v *NoteVerifier) Name() string { return v.name }

// String is the encoded verifier key.
func (v *NoteVerifier) String() string {
	return fmt.Sprintf("%s+%08x+%s", v.name, v.hash, base64Std(append([]byte{algEd25519}, v.key...)))
}

// SignNote signs text (which must end in a newline and have no empty lines
// for a checkpoint) and returns the signed note.
func (s *NoteSigner) SignNote(text []byte) ([]byte, error) {
	if len(text) == 0 || text[len(text)-1] != '\n' {
		return nil, fmt.Errorf("%w: note text must end in a newline", ErrMalformed)
	}
	if !utf8.Valid(text) {
		return nil, fmt.Errorf("%w: note text must be UTF-8", ErrMalformed)
	}
	sig := ed25519.Sign(s.key, text)
	var hs [4]byte
	binary.BigEndian.PutUint32(hs[:], s.hash)
	var b bytes.Buffer
	b.Write(text)
	b.WriteString("\n— " + s.name + " " + base64Std(append(hs[:], sig...)) + "\n")
	return b.Bytes(), nil
}

// OpenNote splits a signed note into its text and checks that it carries a
// valid signature by v. Signatures by other keys are ignored, as the
// signed-note spec requires; a signature that claims v's name and hash but
// does not verify is an error.
func (v *NoteVerifier) OpenNote(msg []byte) (text []byte, err error) {
	i := bytes.LastIndex(msg, []byte("\n\n"))
	if i < 0 {
		return nil, fmt.Errorf("%w: signed note has no empty line before the signatures", ErrMalformed)
	}
	text, sigs := msg[:i+1], msg[i+2:]
	if len(sigs) == 0 || sigs[len(sigs)-1] != '\n' {
		return nil, fmt.Errorf("%w: signed note must end with a signature line and newline", ErrMalformed)
	}
	found := false
	var others []string
	for _, line := range strings.Split(string(sigs[:len(sigs)-1]), "\n") {
		rest, ok := strings.CutPrefix(line, "— ")
		if !ok {
			return nil, fmt.Errorf("%w: signature line %q does not start with \"— \"", ErrMalformed, line)
		}
		name, b64, ok := strings.Cut(rest, " ")
		if !ok || !validKeyName(name) {
			return nil, fmt.Errorf("%w: signature line %q", ErrMalformed, line)
		}
		sig, err := decodeBase64(b64)
		if err != nil || len(sig) < 5 {
			return nil, fmt.Errorf("%w: signature by %q: bad base64", ErrMalformed, name)
		}
		if name != v.name || binary.BigEndian.Uint32(sig) != v.hash {
			others = append(others, fmt.Sprintf("%s+%08x", name, binary.BigEndian.Uint32(sig)))
			continue // another key's signature: not ours to judge
		}
		if found {
			// One signature per key: a second line by the same key would
			// be checked here but skipped by golang.org/x/mod/sumdb/note,
			// so two verifiers could disagree on one note.
			return nil, fmt.Errorf("%w: more than one signature line by %s+%08x", ErrMalformed, v.name, v.hash)
		}
		if !ed25519.Verify(v.key, text, sig[4:]) {
			return nil, fmt.Errorf("%w: signature by %s+%08x does not verify", ErrBadSignature, v.name, v.hash)
		}
		found = true
	}
	if !found {
		return nil, &OtherSignersError{Want: fmt.Sprintf("%s+%08x", v.name, v.hash), Signers: others}
	}
	return text, nil
}

// OtherSignersError: a note carries no signature by the key asked for,
// only signatures by other keys — most often the wrong verifier key was
// given, not a forgery (a forger without the key cannot sign with its
// name and hash either, and would be caught the same way).
type OtherSignersError struct {
	Want    string   // name+hash of the key asked for
	Signers []string // name+hash of the keys that did sign
}

func (e *OtherSignersError) Error() string {
	return fmt.Sprintf("%v: no signature by %s (signed by %s)", ErrBadSignature, e.Want, strings.Join(e.Signers, ", "))
}

func (e *OtherSignersError) Unwrap() error { return ErrBadSignature }
