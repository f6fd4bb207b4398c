package policyfile

import (
	"errors"
	"strings"
	"testing"
	"time"
)

type testRule struct {
	Rule  `yaml:",inline"`
	Paths []string `yaml:"paths"`
}

// ParseRules gives every gateway's rules the same checks: an id, a
// reason on deny rules, a timeout on approve rules only (bounded, with a
// default), one id per kind, the gateway's own check named by rule.
func TestParseRules(t *testing.T) {
	check := func(r *testRule) error {
		if len(r.Paths) == 0 {
			return errors.New("needs paths")
		}
		if r.Paths[0] == "x" {
			return errors.New("path x is not a path")
		}
		return nil
	}
	parse := func(kind, text string) ([]testRule, error) {
		var doc struct {
			Header   `yaml:",inline"`
			Sections `yaml:",inline"`
		}
		if err := Decode("p.yaml", []byte(text), &doc); err != nil {
			return nil, err
		}
		var l Loaded
		nodes := doc.Deny
		if kind == KindApprove {
			nodes = doc.Approve
		}
		return ParseRules(&doc.Header, &l, "p.yaml", nodes, kind, check)
	}
	got, err := parse(KindApprove, "version: 2\napprove:\n  - {id: a, paths: [/a]}\n  - {id: b, paths: [/b], timeout: 1h}\n")
	if err != nil || len(got) != 2 || got[0].Timeout != DefaultTimeout || got[1].Timeout != time.Hour || got[1].ID != "b" {
		t.Fatalf("approve rules: %+v, %v", got, err)
	}
	for text, want := range map[string]string{
		"version: 2\ndeny:\n  - {paths: [/a], reason: r}\n":                          "line 3: deny rule needs an id",
		"version: 2\ndeny:\n  - {id: d, reason: r}\n":                                "line 3: deny rule d needs paths",
		"version: 2\ndeny:\n  - {id: d, paths: [x], reason: r}\n":                    "line 3: deny rule d: path x is not a path",
		"version: 2\ndeny:\n  - {id: d, paths: [/a]}\n":                              "line 3: deny rule d needs a reason",
		"version: 2\ndeny:\n  - {id: d, paths: [/a], reason: r, timeout: 1m}\n":      "deny rule d: timeout belongs to approve rules",
		"version: 2\napprove:\n  - {id: a, paths: [/a], timeout: -1m}\n":             "approval rule a: timeout -1m0s is negative",
		"version: 2\napprove:\n  - {id: a, paths: [/a], timeout: 48h}\n":             "timeout 48h0m0s is longer than the 24h0m0s a request is kept",
		"version: 2\napprove:\n  - {id: a, paths: [/a]}\n  - {id: a, paths: [/b]}\n": "line 4: approval rule a: a second approval rule with this id",
		"version: 2\napprove:\n  - {id: a, paths: [/a], groups: [dba]}\n":            "groups: is not read in version 2",
		"version: 2\napprove:\n  - {id: a, paths: [/a], tiemout: 1m}\n":              "tiemout",
	} {
		kind := KindDeny
		if strings.Contains(text, "approve:") {
			kind = KindApprove
		}
		if _, err := parse(kind, text); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%q: %v, want an error with %q", text, err, want)
		}
	}
}
