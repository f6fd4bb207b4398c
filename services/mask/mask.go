// Package mask holds the mask methods (redact, partial, keyed hash) both
// proxies apply to values in responses that a policy names. The value
// detectors that find such values live in events/detect.
package mask

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
)

// Methods.
const (
	Redact  = "redact"  // [REDACTED]
	Partial = "partial" // a***@example.com, ****1234
	Hash    = "hash"    // hmac:<16 hex>, keyed, so equal values stay joinable
)

// Apply masks v with method; key is the HMAC key of Hash. An unknown
// method redacts.
func Apply(method string, key, v []byte) []byte {
	switch method {
	case Partial:
		if at := bytes.IndexByte(v, '@'); at > 0 {
			return append(append([]byte{v[0]}, "***"...), v[at:]...)
		}
		if len(v) > 4 {
			return append(bytes.Repeat([]byte("*"), len(v)-4), v[len(v)-4:]...)
		}
		return []byte("****")
	case Hash:
		m := hmac.New(sha256.New, key)
		m.Write(v)
		return []byte("hmac:" + hex.EncodeToString(m.Sum(nil))[:16])
	}
	return []byte("[REDACTED]")
}
