package ledger

import (
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"fmt"
)

// HashSize is the size of every hash in the log (SHA-256).
const HashSize = sha256.Size

// Hash is a SHA-256 value: a leaf hash, an interior node, a root or a chain value.
type Hash [HashSize]byte

func (h Hash) String() string { return hex.EncodeToString(h[:]) }

// Base64 is the encoding used in checkpoints and proofs.
func (h Hash) Base64() string { return base64.StdEncoding.EncodeToString(h[:]) }

func parseBase64Hash(s string) (Hash, error) {
	var h Hash
	b, err := base64.StdEncoding.Strict().DecodeString(s)
	if err != nil {
		return h, fmt.Errorf("hash %q: %w", s, err)
	}
	if len(b) != HashSize {
		return h, fmt.Errorf("hash %q: %d bytes, want %d", s, len(b), HashSize)
	}
	copy(h[:], b)
	return h, nil
}

// EmptyRoot is the root of the empty tree, SHA-256 of the empty string (RFC 6962 §2.1).
var EmptyRoot = Hash(sha256.Sum256(nil))

// LeafHash is SHA-256(0x00 ‖ record), RFC 6962 §2.1 — over the record's
// LeafInput, which for a bound record stops before the event.
func LeafHash(record []byte) Hash {
	h := sha256.New()
	h.Write([]byte{0})
	h.Write(LeafInput(record))
	var out Hash
	h.Sum(out[:0])
	return out
}

// NodeHash is SHA-256(0x01 ‖ left ‖ right), RFC 6962 §2.1.
func NodeHash(left, right Hash) Hash {
	var buf [1 + 2*HashSize]byte
	buf[0] = 1
	copy(buf[1:], left[:])
	copy(buf[1+HashSize:], right[:])
	return sha256.Sum256(buf[:])
}

// ChainHash is chain(i) = SHA-256(chain(i−1) ‖ leaf(i)); chain(−1) is 32 zero bytes.
func ChainHash(prev, leaf Hash) Hash {
	var buf [2 * HashSize]byte
	copy(buf[:], prev[:])
	copy(buf[HashSize:], leaf[:])
	return sha256.Sum256(buf[:])
}
