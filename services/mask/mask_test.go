package mask

import (
	"testing"

	"github.com/auditledger/auditledger/events/detect"
)

func TestApply(t *testing.T) {
	for _, c := range []struct{ method, in, want string }{
		{Redact, "alice@example.com", "[REDACTED]"},
		{Partial, "alice@example.com", "a***@example.com"},
		{Partial, "4111111111111111", "************1111"},
		{Partial, "abc", "****"},
		{Partial, "４１１１ １１１１ １１１１ １１１１", "***************１１１１"},
		{Partial, "ｊａｎｅ＠ｅｘａｍｐｌｅ．ｃｏｍ", "ｊ***＠ｅｘａｍｐｌｅ．ｃｏｍ"},
		{Partial, "jürgen@müller.de", "j***@müller.de"},
		{Partial, "ébé@x.fr", "é***@x.fr"},
		{Hash, "alice@example.com", "hmac:"},
	} {
		got := string(Apply(c.method, []byte("k"), []byte(c.in)))
		if c.method == Hash {
			if len(got) != 21 || got[:5] != "hmac:" || got == string(Apply(Hash, []byte("other key"), []byte(c.in))) {
				t.Errorf("hash(%q) = %q: want hmac:<16 hex>, depending on the key", c.in, got)
			}
			continue
		}
		if got != c.want {
			t.Errorf("%s(%q) = %q, want %q", c.method, c.in, got, c.want)
		}
	}
}

// Scrub masks a whole value a rule detects, else the values inside it
// that events/detect finds and a rule detects, each with its rule's
// method, and names the first rule.
func TestScrub(t *testing.T) {
	rule := func(v []byte) (string, string, bool) {
		switch {
		case detect.Detect("credit_card", v):
			return "cards", Partial, true
		case detect.Detect("email", v):
			return "mail", Redact, true
		}
		return "", "", false
	}
	for _, c := range []struct {
		in, want, first string
		ok              bool
	}{
		{"4111 1111 1111 1111", "***************1111", "cards", true},
		{"pay ４１１１ １１１１ １１１１ １１１１ or mail jane@example.com", "pay ***************１１１１ or mail [REDACTED]", "mail", true}, // tokens are offered before runs of digits
		{"mail jane@example.com, card 4111-1111-1111-1111", "mail [REDACTED], card ***************1111", "mail", true},
		{"iban DE89 3704 0044 0532 0130 00", "iban DE89 3704 0044 0532 0130 00", "", false},
	} {
		got, first, ok := Scrub([]byte(c.in), []byte("k"), rule)
		if string(got) != c.want || first != c.first || ok != c.ok {
			t.Errorf("Scrub(%q) = %q, %q, %v; want %q, %q, %v", c.in, got, first, ok, c.want, c.first, c.ok)
		}
	}
}
