package detect

import (
	"regexp"
	"strings"
)

// Builtin lists every built-in detector, in the order they are tried.
// Recorded text always passes all of them: nothing a detector finds is
// sealed in clear, whatever a policy says.
var Builtin = []string{"email", "credit_card", "iban", "phone", "us_ssn", "secret"}

// Placeholder is what a value found by detector is replaced with in
// recorded text. It contains no quote or backslash, so it can stand
// inside any SQL or JSON string literal, and no detector matches it.
func Placeholder(detector string) string { return "[REDACTED:" + detector + "]" }

// Find returns the first built-in detector that matches v as a whole, or
// "" when none does.
func Find(v []byte) string {
	for _, d := range Builtin {
		if detectors[d](v) {
			return d
		}
	}
	return ""
}

// emailIn finds e-mail addresses inside longer text, where separators
// the token pass does not know (&, /, :) join them to their neighbours.
var emailIn = regexp.MustCompile(`[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}`)

// Scrub replaces every value a built-in detector finds in text, the whole
// of it or inside it (see ScrubText), with Placeholder(detector). counts
// has, per detector, how many values were replaced; nil when none were.
// Text with nothing found is returned as it is.
func Scrub(text string) (out string, counts map[string]int) { return ScrubEach(text, nil) }

// ScrubEach is Scrub, and calls found (when not nil) with each value it
// replaces, as it was in text, and the detector that found it, in the
// order they are replaced: so that a gateway records the value's keyed
// search digest (docs/FORMAT.md §1.5). found MUST NOT keep the value
// longer than it takes to digest it.
func ScrubEach(text string, found func(detector, value string)) (out string, counts map[string]int) {
	if !mayHold(text) {
		return text, nil
	}
	note := func(d, v string) {
		if counts == nil {
			counts = map[string]int{}
		}
		counts[d]++
		if found != nil {
			found(d, v)
		}
	}
	if d := Find([]byte(text)); d != "" {
		note(d, text)
		return Placeholder(d), counts
	}
	out, _ = ScrubText(text, func(v []byte) ([]byte, bool) {
		if d := Find(v); d != "" {
			note(d, string(v))
			return []byte(Placeholder(d)), true
		}
		return nil, false
	})
	out = scrubIBANs(out, note)
	out = secretIn.ReplaceAllStringFunc(out, func(v string) string {
		note("secret", v)
		return Placeholder("secret")
	})
	if strings.IndexByte(out, '+') >= 0 {
		out = phoneIn.ReplaceAllStringFunc(out, func(v string) string {
			if !isPhone([]byte(v)) {
				return v
			}
			note("phone", v)
			return Placeholder("phone")
		})
	}
	if strings.IndexByte(out, '@') >= 0 {
		out = emailIn.ReplaceAllStringFunc(out, func(v string) string {
			if !isEmail([]byte(v)) {
				return v
			}
			note("email", v)
			return Placeholder("email")
		})
	}
	return out, counts
}

// secretIn finds the shapes isSecret knows inside longer text (a token
// in a query string, a key in a config file), a PEM private key through
// its END line, so the key's body goes with its header.
var secretIn = regexp.MustCompile(`eyJ[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}|(?:AKIA|ASIA)[A-Z0-9]{16}|gh[pousr]_[A-Za-z0-9]{36,}|xox[abprs]-[A-Za-z0-9-]{10,}|(?:sk|rk)_(?:live|test)_[A-Za-z0-9]{16,}|-----BEGIN [A-Z ]*PRIVATE KEY-----(?s:.*?)(?:-----END [A-Z ]*PRIVATE KEY-----|$)`)

// phoneIn finds what may be an international phone number inside longer
// text, where the token pass splits it at its parentheses and the digit
// pass leaves out its +.
var phoneIn = regexp.MustCompile(`\+[0-9][0-9 ().-]{6,21}[0-9]`)

// ibanIn finds what may be an IBAN written in groups inside longer text
// (the token pass sees only its groups).
var ibanIn = regexp.MustCompile(`[A-Z]{2}[0-9]{2}[A-Z0-9 ]{11,40}`)

// scrubIBANs replaces the longest valid IBAN starting at each candidate.
func scrubIBANs(text string, note func(detector, value string)) string {
	return ibanIn.ReplaceAllStringFunc(text, func(v string) string {
		for end := len(v); end >= 15; end-- {
			if v[end-1] != ' ' && isIBAN([]byte(v[:end])) {
				note("iban", v[:end])
				return Placeholder("iban") + v[end:]
			}
		}
		return v
	})
}

// secretPrefixes start every shape isSecret knows.
var secretPrefixes = []string{"eyJ", "AKIA", "ASIA", "gh", "xox", "sk_", "rk_", "-----BEGIN"}

// mayHold is a cheap test that text cannot hold anything a built-in
// detector finds, so that most recorded strings skip the full scan: an
// e-mail address has an @, every numeric detector needs a run of at
// least 8 digits broken only by spaces, dashes, dots or parentheses
// (phone 8, SSN 9, card 13, and every IBAN's account number), and a
// secret has one of secretPrefixes. A new detector MUST be reflected
// here.
func mayHold(text string) bool { return MayHold(text) }

// MayHold reports whether text may hold a value a built-in detector
// finds (a cheap test; false is certain).
func MayHold(text string) bool {
	if len(text) < 6 { // a@b.cc
		return false
	}
	run := 0
	for i := 0; i < len(text); i++ {
		switch c := text[i]; {
		case c == '@':
			return true
		case isDigit(c):
			if run++; run >= 8 {
				return true
			}
		case c == ' ' || c == '-' || c == '.' || c == '(' || c == ')':
		default:
			run = 0
		}
	}
	for _, p := range secretPrefixes {
		if strings.Contains(text, p) {
			return true
		}
	}
	return false
}

// IsDigest reports whether s is a digest the ledger itself writes:
// lower-case hex of 32 characters or more, or of 16 or more after
// "sha256:" or "hmac:" (Apply's Hash). Such values are not personal data,
// and a run of decimal digits inside one may pass a card-number check by
// chance.
func IsDigest(s string) bool {
	min := 32
	for _, p := range []string{"sha256:", "hmac:"} {
		if t, ok := strings.CutPrefix(s, p); ok {
			s, min = t, 16
		}
	}
	if len(s) < min {
		return false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; !isDigit(c) && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}
