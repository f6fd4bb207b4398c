package detect

import (
	"errors"
	"strings"
	"testing"
)

func TestInEvent(t *testing.T) {
	const envelope = `{"version":1,"id":"cmd-1","type":"command.executed","tenant":"acme","source":{"kind":"http-proxy","instance":"p1"},` +
		`"actor":{"issuer":"https://idp","subject":"pseudonym:0123456789abcdef0123456789abcdef","email":"pii1.0123456789abcdef0123456789abcdef.AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8gISIjJCUm","kind":"human"},`
	for _, c := range []struct {
		payload string
		want    Match
	}{
		{`{"statement":"SELECT 1","statement_sha256":"` + strings.Repeat("4111111111111111", 4) + `","n":12345678901234}`, Match{}},
		{`{"statement":"SELECT '[REDACTED:credit_card]'","redacted":[{"path":"/statement","detector":"credit_card","count":1}]}`, Match{}},
		{`{"note":"pay 4111 1111 1111 1111 now"}`, Match{"payload.note", "credit_card"}},
		{`{"note":"\u0034\u0031\u0031\u0031111111111111"}`, Match{"payload.note", "credit_card"}},
		{`{"values":["x",{"deep":"jane@example.org"}]}`, Match{"payload.values[1].deep", "email"}},
		{`{"headers":{"jane@example.org":"v"}}`, Match{`payload.headers["[REDACTED:email]"]`, "email"}},
		{`{"amount":4111111111111111}`, Match{"payload.amount", "credit_card"}},
		{`{"who":"ｊａｎｅ＠ｅｘａｍｐｌｅ．ｃｏｍ"}`, Match{"payload.who", "email"}},
		// What emit brings is judged as the gateways judge: separators
		// of any kind, HTML references, UTF-16, base64 of UTF-16LE.
		{`{"note":"4111|1111|1111|1111"}`, Match{"payload.note", "credit_card"}},
		{`{"note":"4111·1111・1111;1111"}`, Match{"payload.note", "credit_card"}},
		{`{"who":"jane&#64;example.org"}`, Match{"payload.who", "email"}},
		{`{"who":"j\u0000a\u0000n\u0000e\u0000@\u0000e\u0000x\u0000a\u0000m\u0000p\u0000l\u0000e\u0000.\u0000o\u0000r\u0000g\u0000"}`, Match{"payload.who", "email"}},
		{`{"cmd":"powershell -enc ZQBjAGgAbwAgADQAMQAxADEAMQAxADEAMQAxADEAMQAxADEAMQAxADEA"}`, Match{"payload.cmd", "credit_card"}},
	} {
		got, ok, err := InEvent([]byte(envelope + `"payload":` + c.payload + `}`))
		if err != nil {
			t.Fatalf("%s: %v", c.payload, err)
		}
		if ok != (c.want != Match{}) || got != c.want {
			t.Errorf("InEvent(%s) = %+v, %v; want %+v", c.payload, got, ok, c.want)
		}
	}
	for ts, want := range map[string]bool{"2026-12-06T19:41:13.123456789Z": true, "2026-12-06T19:41:13+01:00": true, "2026-12-06T19:41:13Z": true,
		"2026-12-06T19:41:13.4111111111111111Z": false, "2026-12-06 19:41:13Z": false} {
		if isTimestamp(ts) != want {
			t.Errorf("isTimestamp(%q) = %v", ts, !want)
		}
	}
	if _, _, err := InEvent([]byte(`{"a":`)); err == nil {
		t.Error("no error for truncated JSON")
	}
	// The actor's e-mail in clear: it is recorded sealed or not at all.
	if m, ok, _ := InEvent([]byte(`{"id":"x","actor":{"subject":"alice","email":"jane@example.org"}}`)); !ok || m.Path != "actor.email" {
		t.Errorf("an e-mail in clear in actor.email: %+v %v", m, ok)
	}
	// The id itself.
	if m, ok, _ := InEvent([]byte(`{"id":"jane@example.org","actor":{"email":"a@b.example"}}`)); !ok || m.Path != "id" {
		t.Errorf("a match in the id: %+v %v", m, ok)
	}
}

func BenchmarkInEventClean(b *testing.B) {
	ev := []byte(`{"version":1,"id":"0193a7c2-55b1-7cc1-9e11-3f2a1e2b4c5d","type":"command.executed","time":"2026-12-06T19:41:13.123456789Z","tenant":"acme",` +
		`"source":{"kind":"postgres-proxy","instance":"pg-1"},"actor":{"issuer":"https://idp.example","subject":"u-1","email":"pii1.0123456789abcdef0123456789abcdef.AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8gISIjJCUm","kind":"human"},` +
		`"session_id":"s-0193a7c2","session_seq":17,"target":{"kind":"postgres","name":"orders","host":"db:5432","database":"orders"},` +
		`"payload":{"statement":"UPDATE pgbench_accounts SET abalance = abalance + -4273 WHERE aid = 81234;","statement_sha256":"` + strings.Repeat("ab", 32) + `","rows":1,"duration_ms":0.42}}`)
	b.SetBytes(int64(len(ev)))
	for b.Loop() {
		if _, ok, err := InEvent(ev); ok || err != nil {
			b.Fatal(ok, err)
		}
	}
}

func TestCheckEvent(t *testing.T) {
	err := CheckEvent([]byte(`{"id":"ev-jane@example.org","payload":{"x":"card 4111111111111111"}}`))
	var fe *FoundError
	if !errors.As(err, &fe) || !errors.Is(err, ErrFound) || fe.Event != "[REDACTED:email]" || fe.Detector != "email" || fe.Path != "id" {
		t.Fatalf("CheckEvent: %v (%+v)", err, fe)
	}
	if strings.Contains(err.Error(), "jane") || strings.Contains(err.Error(), "4111") {
		t.Errorf("the error holds the value: %v", err)
	}
	if err := CheckEvent([]byte(`not json, mail jane@example.org`)); !errors.Is(err, ErrFound) {
		t.Errorf("text: %v", err)
	}
	if err := CheckEvent([]byte(`{"id":"ok","payload":{}}`)); err != nil {
		t.Errorf("clean: %v", err)
	}
}

// Member names are compared as the decoder reads them, and the actor's
// e-mail is sealed or refused however its name is written; numbers are
// judged as the integer they denote.
func TestInEventCanonical(t *testing.T) {
	const sealed = `"pii1.0123456789abcdef0123456789abcdef.AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8gISIjJCUm"`
	for _, c := range []struct {
		event string
		want  Match
	}{
		{`{"id":"x","actor":{"subject":"alice","em\u0061il":"jane.rv@example.com"}}`, Match{"actor.email", "email"}},
		{`{"id":"x","actor":{"subject":"alice","\u0065\u006d\u0061\u0069\u006c":"jane@example.com"}}`, Match{"actor.email", "email"}},
		{`{"id":"x","actor":{"subject":"alice","email":"jane@localhost"}}`, Match{"actor.email", "email"}},
		{`{"id":"x","actor":{"subject":"alice","email":"jane\u0040localhost"}}`, Match{"actor.email", "email"}},
		{`{"id":"x","actor":{"subject":"alice","email":"jane＠localhost"}}`, Match{"actor.email", "email"}},
		{`{"id":"x","actor":{"subject":"alice","email":` + sealed + `}}`, Match{}},
		{`{"id":"x","\u0061ctor":{"subject":"alice","email":` + sealed + `}}`, Match{}},
		{`{"id":"x","\u0061ctor":{"subject":"jane@example.com","email":` + sealed + `}}`, Match{"actor.subject", "email"}},
		{`{"id":"x","\u0061ctor":{"subject":"alice","em\u0061il":"jane@example.com"}}`, Match{"actor.email", "email"}},
		{`{"id":"x","payload":{"n\u0061me":"jane@example.com"}}`, Match{"payload.name", "email"}},
		{`{"id":"x","payload":{"x":4.111111111111111e15}}`, Match{"payload.x", "credit_card"}},
		{`{"id":"x","payload":{"x":411111111111111.1e0}}`, Match{"payload.x", "credit_card"}},
		{`{"id":"x","payload":{"x":-4111111111111111}}`, Match{"payload.x", "credit_card"}},
		{`{"id":"x","payload":{"x":41111111111111.11E+2}}`, Match{"payload.x", "credit_card"}},
		{`{"id":"x","payload":{"x":1.5e3,"y":12345678901234.5e-3}}`, Match{}},
		{`{"id":"x","payload":{"x":"hmac:4111111111111111"}}`, Match{"payload.x", "credit_card"}},
		{`{"id":"x","payload":{"x":"4111\t1111\t1111\t1111"}}`, Match{"payload.x", "credit_card"}},
		{`{"id":"x","payload":{"x":"\"jane\"@example.com"}}`, Match{"payload.x", "email"}},
		{`{"id":"x","payload":{"x":"4111\u2062111111111111"}}`, Match{"payload.x", "credit_card"}},
		{`{"id":"x","payload":{"body_hmac":"hmac:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"}}`, Match{}},
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

// A digest is exempt at its place only as a string in its exact form:
// the same digits written as a number there, or as an array of short
// numbers whose joined digits make one, are read as any number is, and
// a card number in them is found.
func TestEventDigestPlaceNumbers(t *testing.T) {
	digits := "4111111111111111" + strings.Repeat("0", 48)
	groups := "[41111111,11111111" + strings.Repeat(",10000000", 6) + "]" // 64 digits joined
	for _, ev := range []string{
		`{"id":"a","payload":{"sha256":` + digits + `}}`,
		`{"id":"a","payload":{"x":{"statement_sha256":` + digits + `}}}`,
		`{"id":"a","payload":{"matches":[` + digits + `]}}`,
		`{"id":"a","payload":{"sha256":` + groups + `}}`,
	} {
		if err := CheckEvent([]byte(ev)); err == nil {
			t.Errorf("%s: accepted", ev)
		}
	}
	// The string form at its place stays exempt (a SHA-256 digest).
	if err := CheckEvent([]byte(`{"id":"a","payload":{"sha256":"` + strings.Repeat("ab", 32) + `"}}`)); err != nil {
		t.Errorf("a digest at its place: %v", err)
	}
}
