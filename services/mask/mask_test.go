package mask

import "testing"

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
