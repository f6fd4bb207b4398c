package detect

import (
	"bytes"
	"compress/gzip"
	"encoding/base32"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"math/rand/v2"
	"reflect"
	"strings"
	"testing"
	"unicode/utf16"
)

// The reading of bulk base64 (base64Cannot, the run machine) against
// the reference (reference_base64_test.go): the same tokens, decoded to
// the same text, for text of every kind with values in it at every
// alignment, and for random bytes.

// embeddedValues are values of every kind the detectors find, in the
// forms they are written in.
var embeddedValues = []string{
	"4111111111111111", "4111 1111 1111 1111", "4111-1111-1111-1111", "5500 0000 0000 0004",
	"378282246310005", "3782 822463 10005", "6011111111111117",
	"jane@example.com", "j.doe+tag@mail.example.org", "o'brien@example.co.uk",
	"DE89370400440532013000", "DE89 3704 0044 0532 0130 00", "GB82WEST12345698765432", "FR1420041010050500013M02606",
	"123-45-6789", "ssn 123456789", "+44 20 7946 0958", "+1 (415) 555-2671",
	"AKIAIOSFODNN7EXAMPLE", "ghp_0123456789abcdefghijklmnopqrstuvwxyzAB", "sk_live_4eC39HqLyjWDarjtT1zdp7dc",
}

// embeddedText is filler text of r's choosing with a value (or none) at a
// random offset.
func embeddedText(r *rand.Rand) []byte {
	const words = "the quick brown fox jumps over lazy dog order id total card ref GET /api 200 OK é ü 日本 \t\n"
	var b []byte
	n := r.IntN(120)
	for len(b) < n {
		w := strings.Fields(words)
		b = append(b, w[r.IntN(len(w))]...)
		b = append(b, " ,;:=\n\t"[r.IntN(7)])
	}
	if r.IntN(8) != 0 {
		v := embeddedValues[r.IntN(len(embeddedValues))]
		at := r.IntN(len(b) + 1)
		b = append(b[:at], append([]byte(v), b[at:]...)...)
	}
	return b
}

// encodings are the forms a text is written in for the detectors to
// decode: base64 of both alphabets, padded or not, of the text, its
// UTF-16LE, its gzip; hex; base32; and random bytes in base64.
func encodings(r *rand.Rand, text []byte) [][]byte {
	wide := utf16.Encode([]rune(string(text)))
	w := make([]byte, 0, 2*len(wide))
	for _, u := range wide {
		w = append(w, byte(u), byte(u>>8))
	}
	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	zw.Write(text)
	zw.Close()
	noise := make([]byte, r.IntN(200))
	for i := range noise {
		noise[i] = byte(r.Uint32())
	}
	// Text between binary framing (protobuf, Latin-1): a run in noise.
	framed := append(append(append([]byte(nil), noise[:len(noise)/2]...), text...), noise[len(noise)/2:]...)
	return [][]byte{
		[]byte(base64.StdEncoding.EncodeToString(text)),
		[]byte(base64.RawURLEncoding.EncodeToString(text)),
		[]byte(base64.StdEncoding.EncodeToString(w)),
		[]byte(base64.StdEncoding.EncodeToString(gz.Bytes())),
		[]byte(base64.StdEncoding.EncodeToString(framed)),
		[]byte(base64.RawStdEncoding.EncodeToString(noise)),
		[]byte(hex.EncodeToString(text)),
		[]byte(base32.StdEncoding.WithPadding(base32.NoPadding).EncodeToString(text)),
	}
}

// readingAgrees holds the reading of b, and of every token of it at
// every alignment, to the reference.
func readingAgrees(t *testing.T, b []byte) {
	t.Helper()
	got, want := encodedTokens(b), referenceEncodedTokens(b)
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("encodedTokens(%q) = %+v; the reference finds %+v", b, got, want)
	}
	for i := 0; i < len(b); {
		if !isBase64Char(b[i]) {
			i++
			continue
		}
		j := i
		for j < len(b) && isBase64Char(b[j]) {
			j++
		}
		for k := i; k < j && k < i+4; k++ {
			tokenAgrees(t, b, k, j)
		}
		i = j
	}
}

func tokenAgrees(t *testing.T, b []byte, i, j int) {
	t.Helper()
	end := j
	for end < len(b) && end-j < 6 && b[end] == '=' {
		end++
	}
	e, ok := decodeToken(b, i, j, end)
	re, rok := referenceDecodeToken(b, i, j, end)
	if ok != rok || e != re {
		t.Fatalf("decodeToken(%q) = %+v, %v; the reference %+v, %v", b[i:end], e, ok, re, rok)
	}
	tok := b[i:j]
	four := base64Cannot4(tok)
	for k := range four {
		if want := len(tok)-k < 16 || base64Cannot(tok[k:]); four[k] != want {
			t.Fatalf("base64Cannot4(%q)[%d] = %v; base64Cannot %v", tok, k, four[k], want)
		}
	}
	if base64Cannot(tok) {
		if d, ok := referenceBase64Text(tok); ok || d != "" {
			t.Fatalf("base64Cannot(%q), but the reference reads it as %q", tok, d)
		}
	}
	if got, want := fmt.Sprint(base64Text(tok)), fmt.Sprint(referenceBase64Text(tok)); got != want {
		t.Fatalf("base64Text(%q) = %v; the reference %v", tok, got, want)
	}
}

// glue puts r's choice of other text around a token: other base64
// characters glued before it (every alignment), a line break, a slash.
func glue(r *rand.Rand, tok []byte) []byte {
	const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/-_"
	var b []byte
	for range r.IntN(4) {
		b = append(b, alphabet[r.IntN(len(alphabet))])
	}
	b = append(b, tok...)
	if r.IntN(3) == 0 && len(tok) > 4 {
		b = b[:len(b)-r.IntN(4)] // cut short
	}
	return append(b, " \n/\"="[r.IntN(5)])
}

// TestBase64ReadingAgrees: text with values embedded at random offsets
// in every encoding and at every alignment, and random bytes written in
// base64, read as the reference reads them; and the values are found.
func TestBase64ReadingAgrees(t *testing.T) {
	r := rand.New(rand.NewPCG(26, 27))
	found := map[string]int{}
	for range 4000 {
		text := embeddedText(r)
		var line []byte
		for _, tok := range encodings(r, text) {
			line = append(line, glue(r, tok)...)
		}
		readingAgrees(t, line)
		for _, sp := range Spans(string(line)) {
			found[sp.Detector]++
		}
	}
	for _, d := range []string{"credit_card", "email", "iban", "us_ssn", "phone", "secret"} {
		if found[d] == 0 {
			t.Errorf("no %s found in base64 of text holding one: the test reads nothing", d)
		}
	}
	t.Logf("found %v", found)
}

// TestBase64ReadingRandomBytes: random bytes, as text and in base64 at
// every length and alignment (bulk output), read as the reference does.
func TestBase64ReadingRandomBytes(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 26))
	raw := make([]byte, 600)
	for i := range 20000 {
		n := r.IntN(len(raw))
		for k := range raw[:n] {
			raw[k] = byte(r.Uint32())
		}
		if i%2 == 0 {
			readingAgrees(t, raw[:n])
		}
		readingAgrees(t, glue(r, []byte(base64.StdEncoding.EncodeToString(raw[:n]))))
		if got, want := hasRun(raw[:n]), referenceHasRun(raw[:n]); got != want {
			t.Fatalf("hasRun(%q) = %v; the reference %v", raw[:n], got, want)
		}
	}
}

// TestRunMachineAgrees reads every sequence of up to three bytes of the
// classes that matter, between printable runs of every length, as the
// reference's rune by rune reading does.
func TestRunMachineAgrees(t *testing.T) {
	pick := []byte{'a', '\t', 0, 0x01, 0x7f, 0x80, 0x8f, 0x90, 0x9f, 0xa0, 0xbf, 0xc0, 0xc1, 0xc2, 0xc3, 0xdf, 0xe0, 0xe1, 0xec, 0xed, 0xee, 0xef, 0xf0, 0xf1, 0xf3, 0xf4, 0xf5, 0xff}
	d := make([]byte, 0, 32)
	for pre := 0; pre < minRun; pre++ {
		for post := 0; post < minRun; post++ {
			for _, a := range pick {
				for _, b := range pick {
					for _, c := range pick {
						for _, e := range pick {
							d = append(d[:0], strings.Repeat("x", pre)...)
							d = append(d, a, b, c, e)
							d = append(d, strings.Repeat("y", post)...)
							if got, want := hasRun(d), referenceHasRun(d); got != want {
								t.Fatalf("hasRun(%q) = %v; the reference %v", d, got, want)
							}
						}
					}
				}
			}
		}
	}
}

// FuzzBase64Reading: any bytes, as text, in base64 glued to others, and
// with a value's text spliced in, read as the reference does.
func FuzzBase64Reading(f *testing.F) {
	f.Add([]byte("4111 1111 1111 1111"), uint64(1))
	f.Add([]byte("mail jane@example.com now"), uint64(2))
	f.Add([]byte("IBAN DE89 3704 0044 0532 0130 00"), uint64(3))
	f.Add([]byte{0x1f, 0x8b, 8, 0, 0xff, 0xc2, 0x80, 'a'}, uint64(4))
	f.Fuzz(func(t *testing.T, b []byte, seed uint64) {
		r := rand.New(rand.NewPCG(seed, 27))
		readingAgrees(t, b)
		var line []byte
		for _, tok := range encodings(r, b) {
			line = append(line, glue(r, tok)...)
		}
		readingAgrees(t, line)
		if got, want := hasRun(b), referenceHasRun(b); got != want {
			t.Fatalf("hasRun(%q) = %v; the reference %v", b, got, want)
		}
		for _, s := range []string{string(b), string(line)} {
			if got, want := hasSecretPrefix(s), referenceHasSecretPrefix(s); got != want {
				t.Fatalf("hasSecretPrefix(%q) = %v; the reference %v", s, got, want)
			}
			ibanAgrees(t, []byte(s))
		}
	})
}

// TestSecretPrefixAgrees: every prefix secretAt knows, cut and whole, at
// every offset of base64 and of random bytes, as the reference finds it.
func TestSecretPrefixAgrees(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 27))
	prefixes := []string{"eyJ", "AKIA", "ASIA", "ghp_", "gho_", "ghu_", "ghs_", "ghr_", "xoxa-", "xoxb-", "xoxp-", "xoxr-", "xoxs-", "sk_", "rk_", "-----BEGIN", "--", "ey", "AK", "gh", "xo", "sk"}
	raw := make([]byte, 40)
	for range 100000 {
		for k := range raw {
			raw[k] = byte(r.Uint32())
		}
		var b []byte
		if r.IntN(2) == 0 {
			b = []byte(base64.StdEncoding.EncodeToString(raw))
		} else {
			b = append([]byte(nil), raw...)
		}
		if r.IntN(2) == 0 {
			p := prefixes[r.IntN(len(prefixes))]
			at := r.IntN(len(b) + 1)
			b = append(b[:at], append([]byte(p), b[at:]...)...)
		}
		b = b[:r.IntN(len(b)+1)]
		if got, want := hasSecretPrefix(string(b)), referenceHasSecretPrefix(string(b)); got != want {
			t.Fatalf("hasSecretPrefix(%q) = %v; the reference %v", b, got, want)
		}
	}
}

func ibanAgrees(t *testing.T, b []byte) {
	t.Helper()
	if got, want := ibanCandidates(b), referenceIbanCandidates(b); !reflect.DeepEqual(got, want) {
		t.Fatalf("ibanCandidates(%q) = %v; the reference %v", b, got, want)
	}
}

// TestIbanCandidatesAgrees: IBANs written whole, in groups, cut short,
// glued to others and to text of every character, in base64 and random
// bytes, found where the reference's regular expression finds them.
func TestIbanCandidatesAgrees(t *testing.T) {
	r := rand.New(rand.NewPCG(4, 27))
	ibans := []string{"DE89370400440532013000", "DE89 3704 0044 0532 0130 00", "GB82WEST12345698765432", "FR1420041010050500013M02606", "de89-3704-0044-0532-0130-00"}
	raw := make([]byte, 90)
	for i := range 60000 {
		for k := range raw {
			raw[k] = byte(r.Uint32())
			if i%3 == 0 {
				raw[k] = " \t\n@-/.:AZaz09\x80é"[r.IntN(17)]
			}
		}
		var b []byte
		switch i % 4 {
		case 0:
			b = []byte(base64.StdEncoding.EncodeToString(raw))
		case 1:
			b = append([]byte(nil), raw...)
		default:
			b = embeddedText(r)
		}
		for range r.IntN(3) {
			v := ibans[r.IntN(len(ibans))]
			v = v[:r.IntN(len(v)+1)]
			at := r.IntN(len(b) + 1)
			b = append(b[:at], append([]byte(v), b[at:]...)...)
		}
		ibanAgrees(t, b)
	}
}

// TestCharClassAgrees: the table answers as the comparisons did.
func TestCharClassAgrees(t *testing.T) {
	for c := range 256 {
		b := byte(c)
		letter := b >= 'a' && b <= 'z' || b >= 'A' && b <= 'Z'
		digit := b >= '0' && b <= '9'
		if isLetter(b) != letter || isAlnum(b) != (letter || digit) || isBase64Char(b) != (letter || digit || b == '+' || b == '/' || b == '-' || b == '_') {
			t.Fatalf("byte %#x: isLetter %v, isAlnum %v, isBase64Char %v", b, isLetter(b), isAlnum(b), isBase64Char(b))
		}
	}
}
