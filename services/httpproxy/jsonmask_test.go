package httpproxy

import (
	"strings"
	"testing"
)

// JSON responses are masked where detectors find values inside longer
// strings, member names and numbers, in full-width digits or split by
// Unicode spaces, as recorded text is; a rule masks only what its own
// detectors find.
func TestJSONMaskFindsValuesInsideStrings(t *testing.T) {
	p, err := ParsePolicy("p.yaml", []byte("version: 2\nmask:\n  - id: cards\n    detect: [credit_card]\n    method: partial\n  - id: mail\n    detect: [email]\n    method: redact\n"))
	if err != nil {
		t.Fatal(err)
	}
	in := `{"note":"pay with 4111 1111 1111 1111 now","fw":"card ４１１１ １１１１ １１１１ １１１１ ok",` +
		`"thin":"a 5555` + "\u2009" + `5555` + "\u202f" + `5555` + "\u2007" + `4444 b","to":"mail jane@example.com please",` +
		`"n":41111111111111111234,"iban":"DE89 3704 0044 0532 0130 00","by jane@example.com":1}`
	out, counts, err := p.maskJSON([]byte(in))
	if err != nil {
		t.Fatal(err)
	}
	got := string(out)
	for _, leak := range []string{"4111 1111", "４１１１ １１１１ １１１１", "5555\u20095555", "jane@example.com", "41111111111111111234"} {
		if strings.Contains(got, leak) {
			t.Errorf("%q left in %s", leak, got)
		}
	}
	for _, want := range []string{`"pay with ***************1111 now"`, `"card ***************１１１１ ok"`, `"mail [REDACTED] please"`,
		`"DE89 3704 0044 0532 0130 00"`, `"by [REDACTED]":1`} {
		if !strings.Contains(got, want) {
			t.Errorf("want %s in %s", want, got)
		}
	}
	n := 0
	for _, c := range counts {
		n += c
	}
	if n != 6 {
		t.Errorf("%d values masked (%v), want 6", n, counts)
	}
}
