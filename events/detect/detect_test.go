package detect

import "testing"

// detectorCases are values each detector matches as a whole, or not.
var detectorCases = []struct {
	detector string
	value    string
	want     bool
}{
	{"email", "a.b+c@example.co.uk", true},
	{"email", "not an email", false},
	{"credit_card", "4111 1111 1111 1111", true},
	{"credit_card", "4111 1111 1111 1112", false}, // Luhn fails
	{"iban", "DE89 3704 0044 0532 0130 00", true},
	{"iban", "GB82WEST12345698765432", true},
	{"iban", "GB82WEST12345698765433", false}, // mod-97 fails
	{"iban", "DE89370400440532013000X!", false},
	{"phone", "+1 (415) 555-0132", true},
	{"phone", "+44 20 7946 0958", true},
	{"phone", "415-555-0132", false}, // no country code: too ambiguous with other numbers
	{"phone", "+12", false},
	{"us_ssn", "123-45-6789", true},
	{"us_ssn", "666-45-6789", false},
	{"us_ssn", "900-45-6789", false},
	{"us_ssn", "123-00-6789", false},
	{"us_ssn", "123456789", false},
	{"secret", "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJhbGljZSJ9.c2lnbmF0dXJlLWJ5dGVz", true},
	{"secret", "AKIAIOSFODNN7EXAMPLE", true},
	{"secret", "ghp_" + "0123456789abcdefghijklmnopqrstuvwxyz", true},
	{"secret", "sk_live_0123456789abcdefABCD", true},
	{"secret", "-----BEGIN RSA PRIVATE KEY-----\nMIIE", true},
	{"secret", "AKIA-not-a-key-at-all", false},
	{"secret", "hello world, a plain sentence", false},
}

func TestDetectors(t *testing.T) {
	for _, c := range detectorCases {
		if got := detectors[c.detector]([]byte(c.value)); got != c.want {
			t.Errorf("%s(%q) = %v, want %v", c.detector, c.value, got, c.want)
		}
	}
}

func TestScrubText(t *testing.T) {
	email := func(v []byte) ([]byte, bool) {
		for _, d := range []string{"email", "credit_card"} {
			if Detect(d, v) {
				return []byte("[REDACTED]"), true
			}
		}
		return nil, false
	}
	for in, want := range map[string]string{
		`invalid input syntax for type integer: "alice@example.com"`:   `invalid input syntax for type integer: "[REDACTED]"`,
		`Key (email)=(bob@example.org) already exists.`:                `Key (email)=([REDACTED]) already exists.`,
		`card "4111 1111 1111 1111" and mail carol@example.net, twice`: `card "[REDACTED]" and mail [REDACTED], twice`,
		`nothing here: 42, "plain"`:                                    `nothing here: 42, "plain"`,
	} {
		if got, _ := ScrubText(in, email); got != want {
			t.Errorf("ScrubText(%q) = %q, want %q", in, got, want)
		}
	}
}
