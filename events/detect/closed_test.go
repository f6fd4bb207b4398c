package detect

import (
	"encoding/base64"
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"
)

// The whole event is judged, the actor included; only the values written
// in a form no detector reads are left out, at their place and in their
// exact form. A digest's shape elsewhere is no exemption, and a card
// number split over the elements of an array is read joined.
func TestInEventFailsClosed(t *testing.T) {
	const (
		pseudonym = "0123456789abcdef0123456789abcdef"
		sealed    = "pii1." + pseudonym + ".AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8gISIjJCUm"
		sha       = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
	)
	// A digest's shape (64 lower-case hex digits, two of them letters)
	// holding a card number.
	d := "ab4539578763621486" + strings.Repeat("c", 46)
	actor := func(members string) string {
		return `{"id":"x","actor":{"issuer":"https://idp","kind":"human",` + members + `},"payload":{}}`
	}
	payload := func(p string) string {
		return `{"id":"x","actor":{"issuer":"https://idp","subject":"u1","kind":"human"},"payload":` + p + `}`
	}
	for _, c := range []struct {
		event string
		want  Match
	}{
		{actor(`"subject":"4111111111111111"`), Match{"actor.subject", "credit_card"}},
		{actor(`"subject":"pseudonym:4012888888881881"`), Match{"actor.subject", "credit_card"}},
		{actor(`"subject":"pseudonym:jane@example.com"`), Match{"actor.subject", "email"}},
		{actor(`"subject":"jane.roe@example.com"`), Match{"actor.subject", "email"}},
		{actor(`"subject":"pseudonym:` + pseudonym + `"`), Match{}},
		{actor(`"subject":"u1","groups":["admins","jane.roe@example.com"]`), Match{"actor.groups[1]", "email"}},
		{actor(`"subject":"u1","groups":["4539","5787","6362","1486"]`), Match{"actor.groups", "credit_card"}},
		{actor(`"subject":"u1","issuer":"https://idp/jane@example.com"`), Match{"actor.issuer", "email"}},
		{actor(`"subject":"u1","email":"` + sealed + `"`), Match{}},
		{actor(`"subject":"u1","email":"pii1.4111111111111111"`), Match{"actor.email", "credit_card"}},
		{actor(`"subject":"u1","email":"pii1.jane@example.com"`), Match{"actor.email", "email"}},
		{actor(`"subject":"u1","email":"` + sealed + `@x"`), Match{"actor.email", "email"}},
		{actor(`"subject":"u1","email":"pii1.` + pseudonym + `.` + base64.RawURLEncoding.EncodeToString([]byte("jane.roe@example.com, of the accounts team")) + `"`), Match{"actor.email", "email"}},
		{actor(`"subject":"u1","4111111111111111":"x"`), Match{`actor["[REDACTED:credit_card]"]`, "credit_card"}},
		// Digests: exempt where they are written, in their exact form.
		{payload(`{"note":"` + d + `"}`), Match{"payload.note", "credit_card"}},
		{payload(`{"m":"hmac:` + d + `"}`), Match{"payload.m", "credit_card"}},
		{payload(`{"m":"sha256:` + d + `"}`), Match{"payload.m", "credit_card"}},
		{payload(`{"m":"` + strings.ToUpper(d) + `"}`), Match{"payload.m", "credit_card"}},
		{payload(`{"statement_sha256":"hmac:` + d + `"}`), Match{"payload.statement_sha256", "credit_card"}},
		{payload(`{"body_hmac":"` + d + `"}`), Match{"payload.body_hmac", "credit_card"}},
		{payload(`{"x":{"pseudonym":"` + d[:32] + `"}}`), Match{"payload.x.pseudonym", "credit_card"}},
		{payload(`{"statement_sha256":"` + d + `","sha256":"` + sha + `","hmac":"hmac:` + d + `","body_hmac":"hmac:` + sha + `"}`), Match{}},
		{payload(`{"copy_in":{"hmac":"hmac:` + d + `"},"redacted":[{"matches":["hmac:` + d + `"]}],"parameters":{"values":["hmac:` + d + `"]}}`), Match{}},
		{payload(`{"filters":{"match_digest":"hmac:` + d + `"},"pseudonym":"` + d[:32] + `"}`), Match{}},
		{payload(`{"parameters":{"values":["` + d + `"]}}`), Match{"payload.parameters.values[0]", "credit_card"}},
		// A card number as an array of digits or of its groups.
		{payload(`{"d":[4,5,3,9,5,7,8,7,6,3,6,2,1,4,8,6]}`), Match{"payload.d", "credit_card"}},
		{payload(`{"d":[0,0,4,5,3,9,5,7,8,7,6,3,6,2,1,4,8,6]}`), Match{"payload.d", "credit_card"}},
		{payload(`{"d":["4539","5787","6362","1486"]}`), Match{"payload.d", "credit_card"}},
		{payload(`{"d":[{"k":1},"4539",5787,"6362","1486",true]}`), Match{"payload.d", "credit_card"}},
		{payload(`{"d":["ja","ne@","exa","mple.c","om"]}`), Match{"payload.d", "email"}},
		{payload(`{"d":[[4,5,3,9],[5,7,8,7],[6,3,6,2],[1,4,8,6]]}`), Match{}}, // not adjacent: documented
		{payload(`{"d":[1,2,3],"e":["a","b"],"f":[12345678,87654321]}`), Match{}},
		// A card number in two halves, or its groups with other
		// elements between them (issue 24, L9).
		{payload(`{"d":["43982597","91907482"]}`), Match{"payload.d", "credit_card"}},
		{payload(`{"d":["4398","x","2597","x","9190","x","7482"]}`), Match{"payload.d", "credit_card"}},
		{payload(`{"d":"4,398,259,791,907,482"}`), Match{"payload.d", "credit_card"}},
		{payload(`{"d":"0xfa031a886ca9a"}`), Match{"payload.d", "credit_card"}},
		{payload(`{"d":"jane.roe7+AEA-example.com"}`), Match{"payload.d", "email"}},
		{payload(`{"d":"GQZTSOBSGU4TOOJRHEYDONBYGI======"}`), Match{"payload.d", "credit_card"}},
		{payload(`{"f":"f_47169833_40267735","s":"s-1"}`), Match{"payload.f", "credit_card"}},
		{payload(`{"47169833":{"40267735":1}}`), Match{}}, // member names are not joined: documented
	} {
		got, ok, err := InEvent([]byte(c.event))
		if err != nil {
			t.Fatalf("%s: %v", c.event, err)
		}
		if ok != (c.want != Match{}) || got != c.want {
			t.Errorf("InEvent(%s) = %+v, %v; want %+v", c.event, got, ok, c.want)
		}
	}
}

// TestEventFalsePositives measures how often values an event ordinarily
// carries are refused: random hex digests in a free member, random ids
// of short numbers in an array. The rates are stated in docs/FORMAT.md
// §1.4.
func TestEventFalsePositives(t *testing.T) {
	r := rand.New(rand.NewPCG(11, 12))
	const N = 20000
	hex := func(n int) string {
		const digits = "0123456789abcdef"
		b := make([]byte, n)
		for i := range b {
			b[i] = digits[r.IntN(16)]
		}
		return string(b)
	}
	ints := func(n, width int) string {
		parts := make([]string, n)
		for i := range parts {
			lo := 1
			for range width - 1 {
				lo *= 10
			}
			parts[i] = fmt.Sprint(lo + r.IntN(9*lo))
			if width == 1 {
				parts[i] = fmt.Sprint(r.IntN(10))
			}
		}
		return "[" + strings.Join(parts, ",") + "]"
	}
	for _, c := range []struct {
		name string
		gen  func() string
		max  float64 // percent
	}{
		{"64 hex digits in a digest member", func() string { return `{"sha256":"` + hex(64) + `"}` }, 0},
		{"64 hex digits in a free member", func() string { return `{"x":"` + hex(64) + `"}` }, 0.5},
		{"32 hex digits in a free member", func() string { return `{"x":"` + hex(32) + `"}` }, 0.3},
		{"16 hex digits in a free member", func() string { return `{"x":"` + hex(16) + `"}` }, 0.1},
		{"a UUID", func() string {
			return `{"x":"` + hex(8) + "-" + hex(4) + "-" + hex(4) + "-" + hex(4) + "-" + hex(12) + `"}`
		}, 0.06},
		{"an array of 3 single digits", func() string { return `{"x":` + ints(3, 1) + `}` }, 0},
		{"an array of 16 single digits", func() string { return `{"x":` + ints(16, 1) + `}` }, 10},
		// Joined, they are one run of 30 digits: every window of 13–19
		// is judged (chains.go).
		{"an array of 30 single digits", func() string { return `{"x":` + ints(30, 1) + `}` }, 75},
		{"an array of 4 four-digit numbers", func() string { return `{"x":` + ints(4, 4) + `}` }, 11},
		{"an array of 8 four-digit numbers", func() string { return `{"x":` + ints(8, 4) + `}` }, 80},
		// Elements of up to 8 characters are joined (a card in two
		// halves): two 8-digit numbers as a 16-digit one is.
		{"an array of 2 eight-digit numbers", func() string { return `{"x":` + ints(2, 8) + `}` }, 9},
		{"an array of 10 seven-digit numbers", func() string { return `{"x":` + ints(10, 7) + `}` }, 5},
	} {
		hit := 0
		for range N {
			ev := `{"id":"x","payload":` + c.gen() + `}`
			if _, ok, err := InEvent([]byte(ev)); err != nil {
				t.Fatal(err)
			} else if ok {
				hit++
			}
		}
		rate := 100 * float64(hit) / N
		t.Logf("%s: %.2f%% refused", c.name, rate)
		if rate > c.max {
			t.Errorf("%s: %.2f%% refused, more than %.2f%%", c.name, rate, c.max)
		}
	}
}
