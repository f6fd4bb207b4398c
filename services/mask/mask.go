// Package mask holds the mask methods (redact, partial, keyed hash) both
// proxies apply to values in responses that a policy names. The value
// detectors that find such values live in events/detect.
package mask

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"unicode/utf8"
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
		// By characters, not bytes: a value found in full-width or
		// another script's digits keeps whole characters.
		_, first := utf8.DecodeRune(v)
		if at := atSign(v); at > 0 {
			return append(append(append([]byte{}, v[:first]...), "***"...), v[at:]...)
		}
		if n := utf8.RuneCount(v); n > 4 {
			tail := len(v)
			for range 4 {
				_, k := utf8.DecodeLastRune(v[:tail])
				tail -= k
			}
			return append(bytes.Repeat([]byte("*"), n-4), v[tail:]...)
		}
		return []byte("****")
	case Hash:
		m := hmac.New(sha256.New, key)
		m.Write(v)
		return []byte("hmac:" + hex.EncodeToString(m.Sum(nil))[:16])
	}
	return []byte("[REDACTED]")
}

// atSign is the offset of the @ of an e-mail address in v, written as
// @ or full-width ＠, or -1.
func atSign(v []byte) int {
	at := bytes.IndexByte(v, '@')
	if w := bytes.Index(v, []byte("＠")); w >= 0 && (at < 0 || w < at) {
		return w
	}
	return at
}
