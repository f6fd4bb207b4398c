package detect

import (
	"encoding/base64"
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"
)

// phoneMatches, secretMatches and ibanCandidates find what phoneIn,
// secretIn and ibanIn find over the whole text, match for match: in
// random text dense in what they start with, with secrets of each form
// (whole and cut) inside it, in random base64, and in every detector
// vector.
func TestMatchesAtIsFindAll(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 11))
	const alphabet = "+0123456789+0123456789 0123456789-()./DEGBFRdegbfr\t\nxyz:;_~"
	var texts []string
	for range 3000 {
		b := make([]byte, rng.IntN(300))
		for i := range b {
			b[i] = alphabet[rng.IntN(len(alphabet))]
		}
		texts = append(texts, string(b))
	}
	for range 50 {
		raw := make([]byte, 3000)
		for i := range raw {
			raw[i] = byte(rng.Uint32())
		}
		texts = append(texts, base64.StdEncoding.EncodeToString(raw))
	}
	texts = append(texts, detectorVectors()...)
	for _, sec := range []string{"eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0In0.c2lnbmF0dXJlMTIz", "AKIAIOSFODNN7EXAMPLE", "ghp_" + strings.Repeat("a1", 20), "xoxb-1234567890-abc",
		"sk_live_0123456789abcdefXY", "-----BEGIN RSA PRIVATE KEY-----\nMIIB\n-----END RSA PRIVATE KEY-----", "-----BEGIN PRIVATE KEY-----\nMIIB"} {
		for range 20 {
			a, b := texts[rng.IntN(len(texts))], texts[rng.IntN(len(texts))]
			texts = append(texts, a+sec+b, a+sec[:len(sec)/2]+b+sec+a+sec)
		}
	}
	texts = append(texts, "+44 20 7946 0958+1 212 555 0100", "GB82 WEST 1234 5698 7654 32DE89370400440532013000", "+1234567+12345678")
	phones, ibans, secrets := 0, 0, 0
	for _, text := range texts {
		b := []byte(text)
		if len(phoneIn.FindAllIndex(b, -1)) > 0 {
			phones++
		}
		if got, want := fmt.Sprint(phoneMatches(b)), fmt.Sprint(phoneIn.FindAllIndex(b, -1)); got != want {
			t.Fatalf("%q: phone %s, want %s", text, got, want)
		}
		if got, want := fmt.Sprint(secretMatches(b)), fmt.Sprint(secretIn.FindAllIndex(b, -1)); got != want {
			t.Fatalf("%q: secret %s, want %s", text, got, want)
		}
		if len(secretIn.FindAllIndex(b, -1)) > 0 {
			secrets++
		}
		want := "[]"
		for i := 0; i+4 <= len(b); i++ {
			if isLetter(b[i]) && isLetter(b[i+1]) && isDigit(b[i+2]) && isDigit(b[i+3]) {
				ms := ibanIn.FindAllIndex(b[i:], -1)
				for _, m := range ms {
					m[0], m[1] = m[0]+i, m[1]+i
				}
				want = fmt.Sprint(ms)
				ibans += len(ms)
				break
			}
		}
		if got := fmt.Sprint(ibanCandidates(b)); got != want && !(got == "[]" && want == "[]") {
			t.Fatalf("%q: iban %s, want %s", text, got, want)
		}
	}
	if phones < 100 || ibans < 100 || secrets < 100 {
		t.Fatalf("texts with phone matches %d, IBAN matches %d, secret matches %d: too few to compare", phones, ibans, secrets)
	}
}
