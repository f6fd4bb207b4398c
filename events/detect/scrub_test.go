package detect

import (
	"strings"
	"testing"
)

var scrubCases = []struct{ in, want string }{
	{"4111 1111 1111 1111", "[REDACTED:credit_card]"},
	{"card 4111-1111-1111-1111, thanks", "card [REDACTED:credit_card], thanks"},
	{"/users?e=jane@example.com&card=4111111111111111&x=1", "/users?e=[REDACTED:email]&card=[REDACTED:credit_card]&x=1"},
	{"mailto:jane@example.com", "mailto:[REDACTED:email]"},
	{"ssn 123-45-6789 and iban DE89 3704 0044 0532 0130 00", "ssn [REDACTED:us_ssn] and iban [REDACTED:iban]"},
	{"nothing here, order 12345", "nothing here, order 12345"},
	{"call +1 (415) 555-0132 or +44 20 7946 0958.", "call [REDACTED:phone] or [REDACTED:phone]."},
	{"/cb?token=eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJhbGljZSJ9.c2lnbmF0dXJlLWJ5dGVz&k=AKIAIOSFODNN7EXAMPLE", "/cb?token=[REDACTED:secret]&k=[REDACTED:secret]"},
	{"key:\n-----BEGIN RSA PRIVATE KEY-----\nMIIEabc\n-----END RSA PRIVATE KEY-----\nok", "key:\n[REDACTED:secret]\nok"},
}

func TestScrub(t *testing.T) {
	for _, c := range scrubCases {
		got, counts := Scrub(c.in)
		if got != c.want {
			t.Errorf("Scrub(%q) = %q, want %q", c.in, got, c.want)
		}
		if n := strings.Count(c.want, "[REDACTED:"); sum(counts) != n {
			t.Errorf("Scrub(%q) counts %v, want %d in all", c.in, counts, n)
		}
	}
}

// IsDigest is the shape of what the ledger and the gateways write, and
// nothing wider: a value a client chose that only looks like a digest
// (a prefix and decimal digits, four card numbers in a row) is judged.
func TestIsDigest(t *testing.T) {
	sha := "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
	for s, want := range map[string]bool{
		sha:           true,
		"hmac:" + sha: true,
		sha[:32]:      true, // a sealed field's pseudonym
		"ab4111111111111111" + strings.Repeat("cd", 23): true,
		"hmac:4111111111111111":                         false,
		"sha256:4111111111111111":                       false,
		"hmac:0123456789abcdef":                         false,
		"sha256:" + sha:                                 false,
		strings.Repeat("4111111111111111", 4):           false,
		"hmac:" + strings.Repeat("4111111111111111", 4): false,
		"a" + strings.Repeat("4111111111111111", 4)[1:]: false, // one letter
		strings.Repeat("4111111111111111", 2):           false,
		sha[:40]:                                        false,
		strings.ToUpper(sha):                            false,
		"4111111111111111":                              false,
	} {
		if IsDigest(s) != want {
			t.Errorf("IsDigest(%q) = %v, want %v", s, !want, want)
		}
	}
}

func sum(m map[string]int) int {
	n := 0
	for _, v := range m {
		n += v
	}
	return n
}

// MayHold's false must be certain: every value a detector matches passes
// it, alone and inside text.
func TestMayHoldKeepsEveryMatch(t *testing.T) {
	for _, v := range []string{"a@b.cc", "4111 1111 1111 1111", "+1 (415) 555-0132", "123-45-6789", "NL91ABNA0417164300",
		"NO9386011117947", "GB82WEST12345698765432", "AKIAIOSFODNN7EXAMPLE", "xoxb-0123456789-abcdefgh", "-----BEGIN RSA PRIVATE KEY-----\nMIIE"} {
		if Find([]byte(v)) == "" {
			t.Errorf("%q: no detector matches it", v)
		}
		if !MayHold(v) || !MayHold("x="+v+"&y") {
			t.Errorf("MayHold(%q) = false", v)
		}
	}
	if MayHold("UPDATE pgbench_accounts SET abalance = abalance + -4273 WHERE aid = 81234;") {
		t.Error("a pgbench statement is a candidate")
	}
}

// ScrubEach hands back each value it replaces, as written, with its
// detector, in the order they stand; the text and counts are Scrub's.
func TestScrubEach(t *testing.T) {
	for _, c := range []struct {
		in   string
		want []string // detector=value
	}{
		{"4111 1111 1111 1111", []string{"credit_card=4111 1111 1111 1111"}},
		{"card 4111-1111-1111-1111, mail 'jane@example.com'", []string{"credit_card=4111-1111-1111-1111", "email=jane@example.com"}},
		{"iban DE89 3704 0044 0532 0130 00 and +44 20 7946 0958", []string{"iban=DE89 3704 0044 0532 0130 00", "phone=+44 20 7946 0958"}},
		{"/cb?k=AKIAIOSFODNN7EXAMPLE&to=jane@example.com", []string{"secret=AKIAIOSFODNN7EXAMPLE", "email=jane@example.com"}},
		{"nothing here, order 12345", nil},
	} {
		var got []string
		out, counts := ScrubEach(c.in, func(d, v string) { got = append(got, d+"="+v) })
		wantOut, wantCounts := Scrub(c.in)
		if out != wantOut || sum(counts) != sum(wantCounts) || sum(counts) != len(got) {
			t.Errorf("ScrubEach(%q) = %q, %v; Scrub gives %q, %v", c.in, out, counts, wantOut, wantCounts)
		}
		if strings.Join(got, "|") != strings.Join(c.want, "|") {
			t.Errorf("ScrubEach(%q) found %q, want %q", c.in, got, c.want)
		}
	}
}
