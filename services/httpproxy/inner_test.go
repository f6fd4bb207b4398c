package httpproxy_test

import (
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os/exec"
	"strings"
	"testing"

	"github.com/auditledger/auditledger/events"
	"github.com/auditledger/auditledger/services/gateway/gatewaytest"
)

const detectPolicy = `version: 1
mask:
  - id: detected
    detect: [email, credit_card, iban]
    method: redact
    info_type: PII
`

// TestJSONResponseMaskedInsideStrings: a response's JSON strings are
// masked where a detector finds a value inside them (a sentence holding
// an address, a card number after a word, a JSON document held in a
// string), and an address written in base64 is masked as the address;
// curl receives none of the values.
func TestJSONResponseMaskedInsideStrings(t *testing.T) {
	card := strings.ReplaceAll(gatewaytest.Card(t), " ", "")
	email := gatewaytest.Email(t, "jane")
	inner, _ := json.Marshal(map[string]string{"email": email, "note": "card " + card})
	doc, _ := json.Marshal(map[string]any{
		"a": "contact " + email + " today", "b": "card " + card, "e": string(inner),
		"f": email, "g": []string{"x " + card + " y"}, "h": "nothing here",
		"i": base64.StdEncoding.EncodeToString([]byte(email)),
	})
	up := &upstream{}
	up.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Type", "application/json")
		w.Write(doc)
	}))
	t.Cleanup(up.srv.Close)
	f := startFor(t, up, detectPolicy)
	out, err := exec.Command("curl", "-sS", "--fail-with-body", "-H", "Authorization: Bearer "+f.tokens["alice"], f.proxy.URL+"/doc").Output()
	if err != nil {
		t.Fatalf("curl: %v\n%s", err, out)
	}
	for _, v := range []string{card, email} {
		if strings.Contains(string(out), v) {
			t.Errorf("the client received %q: %s", v, out)
		}
	}
	var got map[string]any
	if err := json.Unmarshal(out, &got); err != nil {
		t.Fatalf("not JSON: %s", out)
	}
	if got["a"] != "contact [REDACTED] today" || got["b"] != "card [REDACTED]" || got["f"] != "[REDACTED]" || got["h"] != "nothing here" || got["i"] != "[REDACTED]" {
		t.Errorf("masked: %s", out)
	}
	var in map[string]string
	if err := json.Unmarshal([]byte(got["e"].(string)), &in); err != nil || in["email"] != "[REDACTED]" || in["note"] != "card [REDACTED]" {
		t.Errorf("the JSON document in a string: %q (%v)", got["e"], err)
	}
}

// TestPathAndQueryJudgedInEveryForm: a card number, address or IBAN in a
// request's path or query is found however it is written — digit groups
// joined by +, : or , (percent-encoded or not), an address with any
// character RFC 5322 allows before the @, an IBAN in lower case, a
// percent-encoded %XX before the digits — and only the scrubbed text is
// recorded: no form of the values reaches the bus.
func TestPathAndQueryJudgedInEveryForm(t *testing.T) {
	f := startFor(t, startUpstream(t), detectPolicy)
	card := strings.ReplaceAll(gatewaytest.Card(t), " ", "")
	g := card[:4] + "%s" + card[4:8] + "%s" + card[8:12] + "%s" + card[12:]
	groups := func(sep string) string { return strings.ReplaceAll(g, "%s", sep) }
	email := strings.Replace(gatewaytest.Email(t, "jane"), "@", "!@", 1)
	const iban = "de89370400440532013000"
	paths := []string{
		"/c/" + groups("+"),
		"/c/" + groups(":"),
		"/c/" + groups(","),
		"/c/" + email,
		"/c?x=" + groups("%2C"),
		"/c?x=" + groups("+"),
		"/c?x=" + groups("%3A"),
		"/c?x=" + iban,
		"/c/" + iban,
		"/c?x=" + strings.Replace(email, "@", "%40", 1),
	}
	for _, p := range paths {
		req, _ := http.NewRequest("GET", f.proxy.URL+p, nil)
		req.Header.Set("Authorization", "Bearer "+f.tokens["alice"])
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
	}
	// %47… decodes to a letter: the text as sent holds the number, the
	// canonical path the proxy forwards and records does not.
	req, _ := http.NewRequest("GET", f.proxy.URL+"/c/%"+card, nil)
	req.Header.Set("Authorization", "Bearer "+f.tokens["alice"])
	if resp, err := http.DefaultClient.Do(req); err != nil {
		t.Fatal(err)
	} else {
		resp.Body.Close()
	}
	cmds := f.waitFor(t, events.CommandExecuted, len(paths)+1)[:len(paths)]
	for i, c := range cmds {
		if st, _ := c.payload["statement"].(string); !strings.Contains(st, "[REDACTED:") {
			t.Errorf("%s recorded as %q", paths[i], st)
		}
	}
	stored := gatewaytest.BusBytes(t, f.js)
	gatewaytest.CheckAbsent(t, stored, card, email, iban, strings.ToUpper(iban), "370400440532013000")
	for _, sep := range []string{"+", ":", ",", "%2C", "%3A"} {
		if strings.Contains(string(stored), groups(sep)) {
			t.Errorf("the bus stores %q", groups(sep))
		}
	}
}
