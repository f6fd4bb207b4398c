package kubegateway

import (
	"encoding/json"
	"strings"
	"testing"
)

func TestPolicyJudges(t *testing.T) {
	p, err := ParsePolicy("t", []byte(`version: 2
deny:
  - {id: ns, verbs: [delete], resources: [namespaces], reason: no}
  - {id: logs, resources: ["pods/log"], namespaces: ["prod-*"], reason: no logs, exempt: {groups: [sre]}}
approve:
  - {id: crb, verbs: [create], api_groups: [rbac.authorization.k8s.io], resources: [clusterrolebindings]}
  - {id: version, non_resource_urls: [/version]}
allow:
  - {id: sre, resources: [secrets], verbs: [get, list], exempt: {outside_groups: [sre]}}
`))
	if err != nil {
		t.Fatal(err)
	}
	res := func(verb, group, resource, sub, ns, name string) Request {
		return Request{IsResource: true, Verb: verb, APIGroup: group, Resource: resource, Subresource: sub, Namespace: ns, Name: name}
	}
	for _, c := range []struct {
		groups []string
		q      Request
		want   string // deny:RULE, hold:RULE, deny (no rule), or "" (runs)
	}{
		{nil, res("delete", "", "namespaces", "", "", "prod"), "deny:ns"},
		{nil, res("get", "", "namespaces", "", "", "prod"), ""},
		{nil, res("get", "", "pods", "log", "prod-eu", "web"), "deny:logs"},
		{[]string{"sre"}, res("get", "", "pods", "log", "prod-eu", "web"), ""},
		{nil, res("get", "", "pods", "", "prod-eu", "web"), ""}, // pods/log's rule is not about pods
		{nil, res("get", "", "pods", "log", "dev", "web"), ""},
		{nil, res("create", "rbac.authorization.k8s.io", "clusterrolebindings", "", "", ""), "hold:crb"},
		{nil, res("create", "", "clusterrolebindings", "", "", ""), ""}, // another group
		{nil, Request{Verb: "get", Path: "/version"}, "hold:version"},
		{nil, res("get", "", "secrets", "", "a", "db"), "deny"},
		{nil, res("create", "", "secrets", "", "a", ""), ""},
		{nil, res("patch", "", "secrets", "", "a", "db"), "deny"},
		{[]string{"sre"}, res("get", "", "secrets", "", "a", "db"), ""},
		{[]string{"sre"}, res("delete", "", "secrets", "", "a", "db"), "deny"}, // the rule allows get and list only
	} {
		v := p.Judge("u", c.groups, c.q)
		got := ""
		switch {
		case v.Deny && v.Rule != nil:
			got = "deny:" + v.Rule.ID
		case v.Deny:
			got = "deny"
		case v.Hold:
			got = "hold:" + v.Rule.ID
		}
		if got != c.want {
			t.Errorf("%v %+v: %q, want %q", c.groups, c.q, got, c.want)
		}
	}
}

func TestPolicyErrors(t *testing.T) {
	for _, c := range []struct{ text, want string }{
		{"version: 2\ndeny:\n  - {id: a, reason: r}\n", "needs verbs"},
		{"version: 2\ndeny:\n  - {id: a, verbs: [get]}\n", "needs a reason"},
		{"version: 2\nallow:\n  - {id: a, resources: [pods]}\n", "allow rules let requesters read secrets"},
		{"version: 2\napprove:\n  - {id: a, non_resource_urls: [/x], resources: [pods]}\n", "cannot be combined"},
		{"version: 2\nmask:\n  - {id: a}\n", "no mask rules"},
		{"version: 2\ndeny:\n  - {id: a, verbs: [get], reason: r, timeout: 1m}\n", "timeout belongs to approve rules"},
		{"version: 2\ndeny:\n  - {id: a, resources: [\"[\"], reason: r}\n", "glob"},
	} {
		if _, err := ParsePolicy("t", []byte(c.text)); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%q: %v, want %q", c.text, err, c.want)
		}
	}
}

// Secret values, and the copy of an object kubectl apply keeps, never
// stay in a recorded body.
func TestRecordBodyWithoutSecrets(t *testing.T) {
	keyed := func(label string, b []byte) string { return "hmac:digest-of-" + string(rune('0'+len(b)%10)) }
	list := `{"kind":"List","items":[{"kind":"Secret","metadata":{"name":"s","annotations":{"kubectl.kubernetes.io/last-applied-configuration":"{\"stringData\":{\"k\":\"TOPSECRET\"}}"}},"data":{"k":"VE9QU0VDUkVU"},"stringData":{"k":"TOPSECRET"}},{"kind":"ConfigMap","data":{"mode":"visible"}}]}`
	c := map[string]any{}
	recordBody(c, "application/json", []byte(list), false, keyed)
	b, _ := json.Marshal(c)
	if strings.Contains(string(b), "TOPSECRET") || strings.Contains(string(b), "VE9QU0VDUkVU") || !strings.Contains(string(b), "visible") {
		t.Errorf("recorded %s", b)
	}
	c = map[string]any{}
	recordBody(c, "application/apply-patch+yaml", []byte("kind: Secret\nstringData: {k: TOPSECRET}\n"), false, nil)
	if b, _ := json.Marshal(c); strings.Contains(string(b), "TOPSECRET") || !strings.Contains(string(b), "(not recorded)") {
		t.Errorf("recorded %s", b)
	}
	c = map[string]any{}
	recordBody(c, "application/merge-patch+json", []byte(`{"data":{"k":"VE9QU0VDUkVU"}}`), true, keyed)
	if c["body"] != nil || c["body_omitted"] == nil {
		t.Errorf("a patch to a secret recorded as %v", c)
	}
}
