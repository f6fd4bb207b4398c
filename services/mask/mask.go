// Package mask holds the mask methods (redact, partial, keyed hash) both
// proxies apply to values in responses that a policy names, and Scrub,
// which applies them to what a policy's detectors find. The value
// detectors live in events/detect.
package mask

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"unicode/utf8"

	"github.com/auditledger/auditledger/events/detect"
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

// Scrub masks what a policy's detectors find in v: v as a whole, else
// each value inside it that events/detect finds (detect.ScrubText: a card
// number in a longer text, in full-width digits, split by Unicode
// spaces). rule says which of the policy's rules, if any, detects a value
// (ok false: none), and the method that rule masks with; key is the
// HMAC key of Hash. It returns v masked, the first rule applied, and
// whether any was; v itself when none was.
func Scrub[R any](v, key []byte, rule func(v []byte) (r R, method string, ok bool)) ([]byte, R, bool) {
	if r, method, ok := rule(v); ok {
		return Apply(method, key, v), r, true
	}
	var first R
	found := false
	out, n := detect.ScrubText(string(v), func(part []byte) ([]byte, bool) {
		r, method, ok := rule(part)
		if !ok {
			return nil, false
		}
		if !found {
			first, found = r, true
		}
		return Apply(method, key, part), true
	})
	if n == 0 {
		return v, first, false
	}
	return []byte(out), first, true
}
