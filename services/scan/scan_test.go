package scan_test

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"

	"github.com/auditledger/auditledger/services/scan"
)

const (
	card  = "4111 1111 1111 1111"
	card2 = "5555555555554444"
	email = "jane.doe@example.com"
)

func TestEvent(t *testing.T) {
	chunk := base64.StdEncoding.EncodeToString([]byte("$ echo " + card2 + "\r\n"))
	event := `{"version":1,"id":"cmd-1","type":"command.executed","tenant":"acme",
		"actor":{"issuer":"https://idp","subject":"u1","kind":"human","email":"` + email + `"},
		"payload":{"statement":"SELECT * FROM t WHERE card = '` + card + `' AND note = 'ok'",
			"parameters":{"count":2,"values":["x","` + card2 + `"]},
			"query":"a=1&mail=jane.doe%40example.com&b=2",
			"path":"/users/` + email + `/orders",
			"headers":{"` + email + `":"v","plain key":"v"},
			"amount":` + strings.ReplaceAll(card, " ", "") + `,
			"small":42,
			"data":"` + chunk + `",
			"done":"[REDACTED:credit_card]"}}`
	s, err := scan.New()
	if err != nil {
		t.Fatal(err)
	}
	got, err := s.Event([]byte(event))
	if err != nil {
		t.Fatal(err)
	}
	want := []scan.Finding{
		{Path: "actor.email", Detector: "email", Count: 1},
		{Path: "payload.statement", Detector: "credit_card", Count: 1},
		{Path: "payload.parameters.values[1]", Detector: "credit_card", Count: 1},
		// The detectors read percent-encoding and base64 tokens
		// themselves: found as sealed, as the writer refuses them.
		{Path: "payload.query", Detector: "email", Count: 1},
		{Path: "payload.path", Detector: "email", Count: 1},
		{Path: `payload.headers["[REDACTED:email]"]`, Detector: "email", Key: true, Count: 1},
		{Path: "payload.amount", Detector: "credit_card", Count: 1},
		{Path: "payload.data", Detector: "credit_card", Count: 1},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("findings:\n got %+v\nwant %+v", got, want)
	}
	// No finding carries the value, nor its digits, nor a piece of it.
	b, _ := json.Marshal(got)
	for _, secret := range []string{email, "jane", "example.com", card, "4111", "1111", card2, "5555", "4444"} {
		if strings.Contains(string(b), secret) {
			t.Errorf("findings hold %q: %s", secret, b)
		}
	}
}

func TestEventClean(t *testing.T) {
	s, _ := scan.New()
	got, err := s.Event([]byte(`{"id":"x","payload":{"statement":"SELECT 1","rows":12345678901234,"sha256":"` + strings.Repeat("ab", 32) + `","t":"2026-12-06T19:41:13Z"}}`))
	if err != nil || len(got) != 0 {
		t.Errorf("clean event: %+v, %v", got, err)
	}
}

// Digits inside a longer word (a hex word, deadbeef4111…) are read as
// the detectors read them anywhere (docs/FORMAT.md §1.4: a run of 13
// digits or more, at any offset), as are the same digits on their own.
func TestDigitsInsideAWord(t *testing.T) {
	s, _ := scan.New()
	run := "4111111111111111"
	for in, want := range map[string]int{
		"ab" + run + "cd":          1,
		"e3b0c442" + run + "98fc1": 1,
		"e3b0c4429" + "8fc1":       0,
		"id " + run + " x":         1,
		"ab" + run + "cd " + run:   1,
		"tx_" + run:                1,
	} {
		got, err := s.Event([]byte(`{"v":"` + in + `"}`))
		if err != nil || len(got) != want {
			t.Errorf("%q: %+v, %v; want %d finding(s)", in, got, err, want)
		}
	}
}

func TestChosenDetectors(t *testing.T) {
	s, err := scan.New("email", "email")
	if err != nil {
		t.Fatal(err)
	}
	if d := s.Detectors(); !reflect.DeepEqual(d, []string{"email"}) {
		t.Errorf("detectors %v", d)
	}
	got, _ := s.Event([]byte(`{"a":"` + card + `","b":"` + email + `"}`))
	if len(got) != 1 || got[0].Path != "b" || got[0].Detector != "email" {
		t.Errorf("only email: %+v", got)
	}
	if _, err := scan.New("email", "postcode"); err == nil || !strings.Contains(err.Error(), `"postcode"`) {
		t.Errorf("unknown detector: %v", err)
	}
	for _, d := range scan.All() {
		if _, err := scan.New(d); err != nil {
			t.Errorf("All lists %q: %v", d, err)
		}
	}
}

func TestNotJSON(t *testing.T) {
	s, _ := scan.New()
	for _, in := range []string{``, `{"a":`, `{"a":1} x`, `not json`} {
		if _, err := s.Event([]byte(in)); !errors.Is(err, scan.ErrNotJSON) {
			t.Errorf("%q: %v", in, err)
		}
	}
}

func TestPaths(t *testing.T) {
	s, _ := scan.New("email")
	got, _ := s.Event([]byte(`{"a b":{"x.y":["", ["` + email + `"]]}}`))
	if len(got) != 1 || got[0].Path != `["a b"]["x.y"][1][0]` {
		t.Errorf("path: %+v", got)
	}
}

func ExampleScanner_Event() {
	s, _ := scan.New()
	found, _ := s.Event([]byte(`{"type":"command.executed","payload":{"statement":"SELECT * FROM users WHERE email = 'jane@example.com'"}}`))
	for _, f := range found {
		fmt.Println(f.Path, f.Detector, f.Count)
	}
	// Output: payload.statement email 1
}

func BenchmarkEvent(b *testing.B) {
	s, _ := scan.New()
	event := []byte(`{"version":1,"id":"dev-1a2b3c4d5e6f7a8b-000001","type":"command.executed","time":"2026-12-06T19:41:13.123456Z","tenant":"acme","source":{"kind":"postgres-proxy","instance":"pgproxy-1","version":"0.9.0"},"actor":{"issuer":"https://idp.example","subject":"svc-batch","kind":"machine","groups":["dba","ops"]},"session_id":"s-9f8e7d6c","session_seq":17,"target":{"kind":"postgres","name":"orders","host":"db1:5432","database":"orders"},"payload":{"protocol":"extended","statement":"UPDATE accounts SET balance = balance + $1 WHERE aid = $2","statement_sha256":"` + strings.Repeat("ab", 32) + `","kind":"UPDATE","parameters":{"count":2,"recorded":"record","values":["-4321","77812"]}}}`)
	b.SetBytes(int64(len(event)))
	for b.Loop() {
		if _, err := s.Event(event); err != nil {
			b.Fatal(err)
		}
	}
}

// FuzzEvent checks the parser against encoding/json: it accepts what is
// valid JSON and never panics on what is not.
func FuzzEvent(f *testing.F) {
	for _, seed := range []string{`{}`, `[]`, `{"a":[1,"b",{"c":null}],"d":true}`, `"x\u0040y"`, `{"a":"` + email + `"}`, `{"a":`, `[1,]`, `{"a" 1}`} {
		f.Add([]byte(seed))
	}
	s, _ := scan.New()
	f.Fuzz(func(t *testing.T, in []byte) {
		_, err := s.Event(in)
		if json.Valid(in) && err != nil {
			t.Errorf("valid JSON %q refused: %v", in, err)
		}
	})
}

func TestScrub(t *testing.T) {
	s, _ := scan.New()
	for in, want := range map[string]string{
		"ev-1":                           "ev-1",
		email:                            "[REDACTED:email]",
		"login/" + email + "/3":          "login/[REDACTED:email]/3",
		"card " + card + " and " + card2: "card [REDACTED:credit_card] and [REDACTED:credit_card]",
	} {
		if got := s.Scrub(in); got != want {
			t.Errorf("Scrub(%q) = %q, want %q", in, got, want)
		}
	}
}

// A scan is as strict as the writer: what detect.InEvent, the writer's
// judge, refuses has a finding, even where the walker reads nothing (short
// scalars of one array that make a card number together, a card number
// inside a digest's shape out of a digest's place).
func TestWriterJudge(t *testing.T) {
	s, _ := scan.New()
	for ev, path := range map[string]string{
		`{"payload":{"values":["4111","1111","1111","1111"]}}`:                    "payload.values",
		`{"payload":{"values":[4111,1111,1111,1111]}}`:                            "payload.values",
		`{"payload":{"x":"4111111111111111` + strings.Repeat("abcdef", 8) + `"}}`: "payload.x",
	} {
		got, err := s.Event([]byte(ev))
		want := []scan.Finding{{Path: path, Detector: "credit_card", Count: 1}}
		if err != nil || !reflect.DeepEqual(got, want) {
			t.Errorf("%s: %+v, %v; want %+v", ev, got, err, want)
		}
	}
	// Only the detectors the scan runs.
	s, _ = scan.New("email")
	if got, _ := s.Event([]byte(`{"payload":{"values":["4111","1111","1111","1111"]}}`)); len(got) != 0 {
		t.Errorf("email only: %+v", got)
	}
	// A match the walker reported is not reported twice.
	s, _ = scan.New()
	if got, _ := s.Event([]byte(`{"payload":{"a":"` + email + `"}}`)); len(got) != 1 {
		t.Errorf("reported twice: %+v", got)
	}
}
