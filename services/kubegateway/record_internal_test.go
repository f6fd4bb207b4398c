package kubegateway

import (
	"encoding/json"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/util/sets"
	"k8s.io/apiserver/pkg/endpoints/request"

	"github.com/auditledger/auditledger/events/detect"
	"github.com/auditledger/auditledger/ledger/piikeys"
	"github.com/auditledger/auditledger/services/gateway"
)

// What the gateway records of a request's path, query and exec command,
// and the target an approval is held on, hold no value a detector
// finds, nor part of one: a cut at a field's
// bound never falls inside a value (15 digits of a card number, whose
// 16th the Luhn check gives back), and the values of a query parameter
// given more than once are judged joined, as the API server reads them
// (an exec's command=4111&command=1111&…). Each payload is encoded by the
// recording rule, as a session records it.
func TestRecordedRequestHoldsNoValue(t *testing.T) {
	const card = "4111111111111111"
	pad := func(n int) string { return strings.Repeat("a", n) }
	cases := []struct {
		name   string
		target func(n int) string // n: the padding before the value
	}{
		{"statement cut inside a card", func(n int) string {
			return "/api/v1/namespaces/default/pods/web/exec?command=echo&command=" + pad(n) + "+" + card + "&stdout=true"
		}},
		{"query cut inside a card", func(n int) string {
			return "/api/v1/namespaces/default/configmaps?labelSelector=" + pad(n) + "+" + card
		}},
		{"path cut inside a card", func(n int) string { return "/api/v1/namespaces/default/configmaps/" + pad(n) + "-" + card }},
		{"command argument cut inside a card", func(n int) string {
			return "/api/v1/namespaces/default/pods/web/exec?command=" + pad(n) + "+" + card + "&stdout=true"
		}},
		{"command split over long arguments", func(int) string {
			return "/api/v1/namespaces/default/pods/web/exec?command=echo&command=4111+1111&command=1111+1111&stdout=true"
		}},
		{"command split unevenly, joined by the program", func(int) string {
			return "/api/v1/namespaces/default/pods/web/exec?command=sh&command=-c&command=echo+%240%241&command=4111111&command=111111111&stdout=true"
		}},
		{"command split over arguments", func(int) string {
			return "/api/v1/namespaces/default/pods/web/exec?command=echo&command=4111&command=1111&command=1111&command=1111&stdout=true"
		}},
	}
	resolver := &request.RequestInfoFactory{APIPrefixes: sets.NewString("api", "apis"), GrouplessAPIPrefixes: sets.NewString("api")}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			for n := 1960; n <= 2048; n++ { // the field bound (2,048) falls at each place of the value
				recordedHoldsNoValue(t, resolver, c.target(n), card)
			}
		})
	}
}

func recordedHoldsNoValue(t *testing.T, resolver *request.RequestInfoFactory, target, card string) {
	t.Helper()
	r := httptest.NewRequest("POST", target, nil)
	info, err := resolver.NewRequestInfo(r)
	if err != nil {
		t.Fatal(err)
	}
	q := Request{IsResource: info.IsResourceRequest, Verb: info.Verb, APIGroup: info.APIGroup, Resource: info.Resource,
		Subresource: info.Subresource, Namespace: info.Namespace, Name: info.Name, Path: info.Path}
	command := describe(r, info, q)
	if kind := relayedStream(q); kind != "" {
		describeExec(r, command, kind)
	}
	body, err := gateway.EncodePayload(command, []byte("tenant search key"))
	if err != nil {
		t.Fatal(err)
	}
	var v any
	if err := json.Unmarshal(body, &v); err != nil {
		t.Fatal(err)
	}
	// The target an approval is held on, scrubbed as a hold scrubs it
	// (the approvals bucket keeps it).
	held, _ := detect.Scrub(recordedTarget(r.URL))
	for _, str := range append(stringsIn(v), held) {
		text, _ := url.QueryUnescape(str)
		digits := strings.Map(func(r rune) rune {
			if r >= '0' && r <= '9' {
				return r
			}
			return -1
		}, text)
		if strings.Contains(digits, card[:15]) || strings.Contains(digits, "41111111") || strings.Contains(text, "jane.roe") {
			t.Fatalf("recorded %q in %s", str, body)
		}
	}
}

// stringsIn returns the strings of a decoded JSON value; the elements of
// an array also joined, as a reader joins them.
func stringsIn(v any) []string {
	switch x := v.(type) {
	case string:
		return []string{x}
	case []any:
		var out, joined []string
		for _, e := range x {
			out = append(out, stringsIn(e)...)
			if s, ok := e.(string); ok {
				joined = append(joined, s)
			}
		}
		return append(out, strings.Join(joined, ""))
	case map[string]any:
		var out []string
		for k, e := range x {
			out = append(append(out, k), stringsIn(e)...)
		}
		return out
	}
	return nil
}

// A value written in parts over a body's members or elements — a
// ConfigMap's data, two env values, the ops of a JSON patch, an address
// over three annotations — is judged as the parts joined, as a program
// reading them joins them: none of it is recorded, and the value is
// listed for its search digest. A body of ordinary objects is recorded
// as it is.
func TestRecordedBodyJoined(t *testing.T) {
	const card = "4111111111111111"
	key := []byte("tenant search key")
	keyed := func(label string, b []byte) string { return gateway.KeyedDigest(key, label, b) }
	for _, c := range []struct{ name, ctype, body string }{
		{"configmap data", "application/json", `{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"x"},"data":{"a":"4111 1111","b":"1111 1111"}}`},
		{"env values", "application/json", `{"apiVersion":"v1","kind":"Pod","metadata":{"name":"p"},"spec":{"containers":[{"name":"c","image":"busybox","env":[{"name":"A","value":"41111111"},{"name":"B","value":"11111111"}]}]}}`},
		{"json patch", "application/json-patch+json", `[{"op":"add","path":"/data/a","value":"4111 1111"},{"op":"add","path":"/data/b","value":"1111 1111"}]`},
		{"yaml annotations", "application/yaml", "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: x\n  annotations:\n    a: jane.roe\n    b: \"@\"\n    c: example.com\n"},
	} {
		cmd := map[string]any{}
		recordBody(cmd, c.ctype, []byte(c.body), false, keyed)
		body, err := gateway.EncodePayload(cmd, key)
		if err != nil {
			t.Fatal(err)
		}
		var v any
		if err := json.Unmarshal(body, &v); err != nil {
			t.Fatal(err)
		}
		var digits strings.Builder
		for _, str := range stringsIn(v) {
			for _, r := range str {
				if r >= '0' && r <= '9' {
					digits.WriteRune(r)
				}
			}
			if strings.Contains(str, "jane.roe") || strings.Contains(str, "example.com") {
				t.Errorf("%s: recorded %q in %s", c.name, str, body)
			}
		}
		if strings.Contains(digits.String(), "41111111") {
			t.Errorf("%s: recorded %s", c.name, body)
		}
		if want := piikeys.MatchDigest(key, card); c.name != "yaml annotations" && !strings.Contains(string(body), want) {
			t.Errorf("%s: the card's search digest is not listed: %s", c.name, body)
		}
	}
	ordinary := `{"apiVersion":"apps/v1","kind":"Deployment","metadata":{"name":"web","namespace":"prod","uid":"6f1c2a4e-8d3b-4b7e-9a51-0c2d3e4f5a6b","resourceVersion":"4417263","generation":12,"creationTimestamp":"2026-11-03T09:14:27Z","labels":{"app":"web","version":"1.24.3"},"annotations":{"deployment.kubernetes.io/revision":"17"}},"spec":{"replicas":3,"revisionHistoryLimit":10,"selector":{"matchLabels":{"app":"web"}},"template":{"metadata":{"labels":{"app":"web"}},"spec":{"containers":[{"name":"web","image":"registry.example.com/web:1.24.3","ports":[{"containerPort":8080,"name":"http"},{"containerPort":9090,"name":"metrics"}],"env":[{"name":"PORT","value":"8080"},{"name":"WORKERS","value":"16"},{"name":"TIMEOUT_MS","value":"30000"},{"name":"CACHE_SIZE","value":"1048576"}],"resources":{"limits":{"cpu":"2","memory":"1024Mi"},"requests":{"cpu":"500m","memory":"512Mi"}}}]}}}}`
	cmd := map[string]any{}
	recordBody(cmd, "application/json", []byte(ordinary), false, keyed)
	if cmd["redacted"] != nil {
		t.Errorf("an ordinary Deployment recorded with %v", cmd["redacted"])
	}
}
