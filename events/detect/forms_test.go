package detect

import (
	"encoding/base64"
	"encoding/hex"
	"math/rand/v2"
	"strings"
	"testing"
)

// markedCard is a card number with a combining mark on each digit.
var markedCard = strings.Join(strings.Split("4539578763621486", ""), "\u0301") + "\u0301"

// separatorForms are texts and what Scrub makes of them: values written
// with separators, marks and encodings, and texts that hold none.
var separatorForms = []struct{ in, want string }{
	{"4539:5787:6362:1486", "[REDACTED:credit_card]"},
	{"4539,5787,6362,1486", "[REDACTED:credit_card]"},
	{"'{4539,5787,6362,1486}'::int[]", "'{[REDACTED:credit_card]}'::int[]"},
	{"/c/4539+5787+6362+1486", "/c/[REDACTED:credit_card]"},
	{"x " + markedCard + " y", "x [REDACTED:credit_card] y"},
	{"4\u20e35\u20e33\u20e39\u20e35787 6362 1486", "[REDACTED:credit_card]"},
	{"ab!@example.com", "[REDACTED:email]"},
	{"to a#b$c*d^e`f{g|h}i~j@example.com.", "to [REDACTED:email]."},
	{"x o'brien@example.com y", "x [REDACTED:email] y"},
	{"SELECT 'o''brien@example.com'", "SELECT '[REDACTED:email]'"},
	{"said 'jane@example.com' then", "said '[REDACTED:email]' then"},
	{"/c/ab!@example.com", "/c/[REDACTED:email]"},
	{"jane%40example.com", "[REDACTED:email]"},
	{"note: jane%2540example.com ok", "note: [REDACTED:email] ok"},
	{"c?x=4539%2C5787%2C6362%2C1486&y=1", "c?x=[REDACTED:credit_card]&y=1"},
	{"4539%205787%206362%201486", "[REDACTED:credit_card]"},
	{`mail jane\u0040example.com ok`, "mail [REDACTED:email] ok"},
	{`card \x34539578763621486.`, "card [REDACTED:credit_card]."},
	{`note: \u0034\u0035\u0033\u00395787 6362 1486`, "note: [REDACTED:credit_card]"},
	{"de89370400440532013000", "[REDACTED:iban]"},
	{"iban de89 3704 0044 0532 0130 00.", "iban [REDACTED:iban]."},
	{"DE89-3704-0044-0532-0130-00", "[REDACTED:iban]"},
	{"troy 9792131886430293", "troy [REDACTED:credit_card]"},
	{"rupay 8171701159969673", "rupay [REDACTED:credit_card]"},
	{"elo 6363505767135938", "elo [REDACTED:credit_card]"},
	{"elo 5066991234567899", "elo [REDACTED:credit_card]"},
	{"verve 5061839696365870004", "verve [REDACTED:credit_card]"},
	{"uatp 135412345678911", "uatp [REDACTED:credit_card]"},
	// Digit groups joined by any short run of punctuation or symbols,
	// of any script.
	{"4539|5787|6362|1486", "[REDACTED:credit_card]"},
	{"x 4539;5787;6362;1486 y", "x [REDACTED:credit_card] y"},
	{"4539*5787*6362*1486", "[REDACTED:credit_card]"},
	{"c=4539=5787=6362=1486", "c=[REDACTED:credit_card]"},
	{"4539\t5787\t6362\t1486", "[REDACTED:credit_card]"},
	{"4539·5787·6362·1486", "[REDACTED:credit_card]"},
	{"4539・5787・6362・1486", "[REDACTED:credit_card]"},
	{"4539 ★ 5787 ★ 6362 ★ 1486", "[REDACTED:credit_card]"},
	{"4539 | 5787 | 6362 | 1486", "[REDACTED:credit_card]"},
	{"4539|;5787|;6362|;1486", "[REDACTED:credit_card]"},
	{"4539)(5787)(6362)(1486", "[REDACTED:credit_card]"},
	{"iban DE89.3704.0044.0532.0130.00 ok", "iban [REDACTED:iban] ok"},
	{"DE89;3704;0044;0532;0130;00", "[REDACTED:iban]"},
	{"DE89·3704·0044·0532·0130·00", "[REDACTED:iban]"},
	{"call +44;20;7946;0958", "call [REDACTED:phone]"},
	{"call +44*20*7946*0958", "call [REDACTED:phone]"},
	{"call +44\t20\t7946\t0958", "call [REDACTED:phone]"},
	{"call +44·20·7946·0958", "call [REDACTED:phone]"},
	// HTML character references and quoted-pairs.
	{"jane&#64;example.com", "[REDACTED:email]"},
	{"q=jane&#x40;example.com&x=1", "q=[REDACTED:email]&x=1"},
	{"jane&commat;example&period;com", "[REDACTED:email]"},
	{"to: jane&#64example.com", "to: [REDACTED:email]"},
	{`text/plain; owner="jane\@example.com"`, `text/plain; owner="[REDACTED:email]"`},
	// UTF-16, with and without a byte order mark.
	{"4\x005\x003\x009\x00 \x005\x007\x008\x007\x00 \x006\x003\x006\x002\x00 \x001\x004\x008\x006\x00", "[REDACTED:credit_card]"},
	{"\xff\xfej\x00a\x00n\x00e\x00@\x00e\x00x\x00a\x00m\x00p\x00l\x00e\x00.\x00c\x00o\x00m\x00", "\xff\xfe[REDACTED:email]"},
	// Still not values.
	{"a&b=1&c=2&amp;d", "a&b=1&c=2&amp;d"},
	{"4539|||5787|||6362|||1486", "[REDACTED:credit_card]"},                   // a digit chain (chains.go)
	{"VALUES (4539),(5787),(6362),(1486)", "VALUES ([REDACTED:credit_card])"}, // a digit chain
	{"a|b|1|2|3|45|678", "a|b|1|2|3|45|678"},
	{"12;345;6789;1;2 · 3", "12;345;6789;1;2 · 3"},
	{"at 19:41:13, 2026-12-06", "at 19:41:13, 2026-12-06"},
	{"IN (12, 345, 6789, 1, 2)", "IN (12, 345, 6789, 1, 2)"},
	{"100%25 done, 50%", "100%25 done, 50%"},
	{"v1.2.3+44440713", "v1.2.3+44440713"},
	{"/users?e=jane@example.com&x=1", "/users?e=[REDACTED:email]&x=1"},
}

// Forms a value was sealed in clear in: digit groups joined by colons,
// commas or plus signs; combining marks between digits; an address whose
// local part holds any character RFC 5322 allows (o'brien, ab!); percent-
// encoding in any text; IBANs in lower case or with dashes; card numbers
// of schemes the prefix table lacked.
func TestScrubFindsSeparatorsMarksAndEncodings(t *testing.T) {
	for _, c := range separatorForms {
		got, counts := Scrub(c.in)
		if got != c.want {
			t.Errorf("Scrub(%q) = %q, want %q", c.in, got, c.want)
		}
		n := strings.Count(c.want, "[REDACTED:")
		if sum(counts) != n {
			t.Errorf("Scrub(%q) counts %v, want %d in all", c.in, counts, n)
		}
		if n > 0 && !MayHold(c.in) {
			t.Errorf("MayHold(%q) = false", c.in)
		}
	}
	for _, v := range []string{"4539:5787:6362:1486", "ab!@example.com", "o'brien@example.com", "de89370400440532013000", "9792131886430293", markedCard} {
		if Find([]byte(v)) == "" {
			t.Errorf("Find(%q) = none", v)
		}
	}
}

// wide is s (ASCII) in UTF-16LE.
func wide(s string) string {
	b := make([]byte, 0, 2*len(s))
	for i := 0; i < len(s); i++ {
		b = append(b, s[i], 0)
	}
	return string(b)
}

// encodedForms are texts holding values written in hex or base64, and
// texts of those alphabets that hold none, with what Scrub makes of them.
func encodedForms() []struct{ in, want string } {
	const (
		card  = "4539578763621486"
		email = "jane.roe@example.com"
	)
	enc := func(f func([]byte) string, v string) string { return f([]byte(v)) }
	return []struct{ in, want string }{
		{"x " + enc(hex.EncodeToString, card) + " y", "x [REDACTED:credit_card] y"},
		{"x " + strings.ToUpper(enc(hex.EncodeToString, email)) + " y", "x [REDACTED:email] y"},
		{"v=" + enc(base64.StdEncoding.EncodeToString, card), "v=[REDACTED:credit_card]"},
		{"v=" + enc(base64.StdEncoding.EncodeToString, "card "+card+" ok"), "v=[REDACTED:credit_card]"},
		{"/u/" + enc(base64.RawURLEncoding.EncodeToString, email) + "/x", "/u/[REDACTED:email]/x"},
		{"data:text/plain;base64," + enc(base64.StdEncoding.EncodeToString, "mail "+email), "data:text/plain;base64,[REDACTED:email]"},
		{enc(base64.StdEncoding.EncodeToString, enc(hex.EncodeToString, card)), "[REDACTED:credit_card]"},
		{"powershell -EncodedCommand " + enc(base64.StdEncoding.EncodeToString, wide("echo "+card)), "powershell -EncodedCommand [REDACTED:credit_card]"},
		{"v=x" + enc(base64.StdEncoding.EncodeToString, card), "v=[REDACTED:credit_card]"},
		{"v=$_" + enc(base64.RawURLEncoding.EncodeToString, email), "v=$[REDACTED:email]"},
		// Not values: text, ids and digests.
		{"pgbench_accounts abalance_and_more", "pgbench_accounts abalance_and_more"},
		{enc(base64.StdEncoding.EncodeToString, "hello world, nothing"), enc(base64.StdEncoding.EncodeToString, "hello world, nothing")},
	}
}

// A value written in hex or base64 inside text is found, the token
// replaced whole; random ids, digests and secrets of those alphabets
// are not taken for one.
func TestScrubFindsEncodedValues(t *testing.T) {
	const (
		card  = "4539578763621486"
		email = "jane.roe@example.com"
	)
	enc := func(f func([]byte) string, v string) string { return f([]byte(v)) }
	for _, c := range encodedForms() {
		got, counts := Scrub(c.in)
		if got != c.want {
			t.Errorf("Scrub(%q) = %q, want %q", c.in, got, c.want)
		}
		if n := strings.Count(c.want, "[REDACTED:"); sum(counts) != n || n > 0 && !MayHold(c.in) {
			t.Errorf("Scrub(%q) counts %v, want %d; MayHold %v", c.in, counts, n, MayHold(c.in))
		}
	}
	// As a whole value, for a mask rule's detector.
	if !Detect("email", []byte(enc(base64.StdEncoding.EncodeToString, email))) || !Detect("credit_card", []byte(enc(hex.EncodeToString, card))) ||
		Detect("credit_card", []byte(enc(base64.StdEncoding.EncodeToString, email))) || Detect("email", []byte(enc(base64.StdEncoding.EncodeToString, "hello world, nothing"))) {
		t.Error("Detect does not read a whole encoded token as its text")
	}
	// The false-positive rate on random tokens of those alphabets.
	r := rand.New(rand.NewPCG(5, 6))
	alphabets := map[string]string{"hex": "0123456789abcdef", "base64": "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"}
	for name, a := range alphabets {
		for _, n := range []int{16, 24, 32, 44, 64} {
			hit := 0
			const N = 20000
			b := make([]byte, n)
			for range N {
				for i := range b {
					b[i] = a[r.IntN(len(a))]
				}
				if _, c := Scrub("id " + string(b)); c != nil {
					hit++
				}
			}
			t.Logf("random %s tokens of %d characters: %d of %d taken for a value", name, n, hit, N)
			// Digits inside hex words are read (chains.go): a run of 13
			// or more, or groups of 4 or more joined by one letter; and a
			// hex token of 10–14 characters as the integer it denotes.
			// docs/FORMAT.md §1.4 states the rates.
			if hit > N*n/6400 {
				t.Errorf("random %s tokens of %d characters: %d of %d taken for a value", name, n, hit, N)
			}
		}
	}
}

// A value found in a decoded reading is handed to ScrubEach's callback
// decoded, so that its search digest is the one a search for the value
// computes.
func TestScrubEachHandsDecodedValues(t *testing.T) {
	for _, c := range []struct{ in, want string }{
		{"mail jane%40example.com now", "email=jane@example.com"},
		{`mail jane\u0040example.com now`, "email=jane@example.com"},
		{"v=" + base64.StdEncoding.EncodeToString([]byte("card 4539578763621486 ok")), "credit_card=4539578763621486"},
		{"x " + hex.EncodeToString([]byte("jane@example.com")), "email=jane@example.com"},
		{"plain jane@example.com", "email=jane@example.com"},
	} {
		var got []string
		ScrubEach(c.in, func(d, v string) { got = append(got, d+"="+v) })
		if strings.Join(got, "|") != c.want {
			t.Errorf("ScrubEach(%q) found %q, want %q", c.in, got, c.want)
		}
	}
}

// controlForms are values with terminal escape sequences or control
// characters between their characters — as grep --color, a typo's
// correction or a bind parameter carrying \e[0m write them — and text
// with such sequences that holds none, with what Scrub makes of them.
var controlForms = []struct{ in, want string }{
	{"x 4539\x1b[01;31m\x1b[K5787\x1b[m\x1b[K63621486 y", "x [REDACTED:credit_card] y"},
	{"4539 5787\x1b[0m 6362 1486", "[REDACTED:credit_card]"},
	{"jane\x1b]0;title\x07.roe@example.com", "[REDACTED:email]"},
	{"v=4539\x085787\x7f6362\x001486", "v=[REDACTED:credit_card]"},
	{"mail jane.roe\x1b[D@example.com!", "mail [REDACTED:email]!"},
	{"q=4539%1b%5b0m578763621486", "q=[REDACTED:credit_card]"},
	// An unterminated string sequence hides nothing after it.
	{"\x1b]0;4539 5787 6362 1486", "\x1b]0;[REDACTED:credit_card]"},
	// Not values.
	{"\x1b[01;31mhello\x1b[0m world", "\x1b[01;31mhello\x1b[0m world"},
	{"build 2026\x1b[0m-12-07 ok", "build 2026\x1b[0m-12-07 ok"},
}

// A value with escape sequences or control characters between its
// characters is found in the text as a terminal shows it and replaced
// over the characters as written.
func TestScrubReadsThroughControls(t *testing.T) {
	for _, c := range controlForms {
		got, counts := Scrub(c.in)
		if got != c.want {
			t.Errorf("Scrub(%q) = %q, want %q", c.in, got, c.want)
		}
		if n := strings.Count(c.want, "[REDACTED:"); sum(counts) != n || n > 0 && !MayHold(c.in) {
			t.Errorf("Scrub(%q) counts %v, want %d; MayHold %v", c.in, counts, n, MayHold(c.in))
		}
	}
}
