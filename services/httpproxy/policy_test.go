package httpproxy

import (
	"strings"
	"testing"
)

func TestPolicyErrorsNameTheLine(t *testing.T) {
	for text, want := range map[string]string{
		"version: 3\n": "version: 3",
		"version: 1\nmask:\n  - id: m\n    fields: [a..b]\n    method: redact\n":          `line 3: mask rule m: field path "a..b"`,
		"version: 1\nmask:\n  - id: m\n    detect: [dna]\n    method: redact\n":           `unknown detector "dna"`,
		"version: 1\ndeny:\n  - id: d\n    methods: [DELETE]\n":                           "line 3: deny rule d needs a reason",
		"version: 1\ndeny:\n  - id: d\n    paths: [admin]\n    reason: r\n":               `path "admin" must start with /`,
		"version: 1\ndeny:\n  - id: d\n    paths: [/a]\n    reason: r\n    groups: [x]\n": "deny rule d: groups: only approve rules take groups in version 1",
		"version: 1\napprove:\n  - id: a\n":                                               "line 3: approval rule a needs methods or paths",
		"version: 1\napprove:\n  - id: a\n    paths: [/a]\n    timout: 1m\n":              "timout",
	} {
		if _, err := ParsePolicy("p.yaml", []byte(text)); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("policy %q: %v, want %q", text, err, want)
		}
	}
}

func TestPathAndFieldPatterns(t *testing.T) {
	r := Rule{Methods: []string{"POST"}, Paths: []string{"/apis/apps/v1/namespaces/prod/**", "/api/v*/deploy"}}
	for _, c := range []struct {
		method, path string
		want         bool
	}{
		{"POST", "/apis/apps/v1/namespaces/prod/deployments/web", true},
		{"POST", "/apis/apps/v1/namespaces/prod", true},
		{"POST", "/apis/apps/v1/namespaces/staging/deployments/web", false},
		{"GET", "/apis/apps/v1/namespaces/prod/deployments/web", false},
		{"POST", "/api/v2/deploy", true},
		{"POST", "/api/v2/deploy/now", false},
	} {
		if got := r.matches(c.method, c.path); got != c.want {
			t.Errorf("%s %s: %v, want %v", c.method, c.path, got, c.want)
		}
	}
	for _, c := range []struct {
		pat, path string
		want      bool
	}{
		{"email", "email", true},
		{"email", "user.email", false},
		{"**.email", "user.email", true},
		{"**.email", "email", true},
		{"items.*.card", "items.*.card", true},
		{"items.*.card", "items.*.x.card", false},
		{"items.**", "items.*.x.card", true},
		{"Email", "email", true},
	} {
		if got := fieldMatch(strings.Split(c.pat, "."), strings.Split(c.path, ".")); got != c.want {
			t.Errorf("field %s ~ %s: %v, want %v", c.pat, c.path, got, c.want)
		}
	}
}
