package httpproxy

import (
	"strings"
	"testing"
)

func TestExemptByRuleKind(t *testing.T) {
	p, err := ParsePolicy("p.yaml", []byte(`version: 2
mask:
  - id: email
    fields: [email]
    method: redact
    exempt: {groups: [support]}
deny:
  - id: no-admin
    paths: ["/admin/**"]
    reason: no
    exempt: {users: [ops-bot]}
approve:
  - id: deploys
    methods: [POST]
    paths: ["/deploy"]
    exempt: {outside_groups: [developers]}
`))
	if err != nil {
		t.Fatal(err)
	}
	dev := p.For("ann", []string{"developers"})
	bot := p.For("ops-bot", []string{"developers", "support"})
	other := p.For("bob", nil)
	checks := []struct {
		what string
		got  bool
	}{
		{"ann is refused /admin", dev.Denied("GET", "/admin/x") != nil},
		{"ops-bot is not refused /admin", bot.Denied("GET", "/admin/x") == nil},
		{"a developer's deploy is held", dev.NeedsApproval("POST", "/deploy") != nil},
		{"bob, outside developers, is exempt from the hold", other.NeedsApproval("POST", "/deploy") == nil},
		{"ann's responses are masked", len(dev.Mask) == 1},
		{"support's are not", len(bot.Mask) == 0},
		{"the whole policy holds every deploy", p.NeedsApproval("POST", "/deploy") != nil},
		{"a policy without exemptions is its own view", func() bool { q, _ := ParsePolicy("q", []byte("version: 2\n")); return q.For("x", nil) == q }()},
	}
	for _, c := range checks {
		if !c.got {
			t.Error(c.what)
		}
	}
}

func TestGroupsPerVersion(t *testing.T) {
	const v1 = "version: 1\napprove:\n  - id: deploys\n    paths: [/deploy]\n    groups: [developers]\n"
	p, err := ParsePolicy("v1.yaml", []byte(v1))
	if err != nil {
		t.Fatal(err)
	}
	if len(p.Omissions) != 1 || p.Omissions[0].Rule != "deploys" || p.Omissions[0].Groups[0] != "developers" {
		t.Errorf("omissions %+v", p.Omissions)
	}
	if p.For("bob", nil).NeedsApproval("POST", "/deploy") != nil || p.For("ann", []string{"developers"}).NeedsApproval("POST", "/deploy") == nil {
		t.Error("version 1 no longer holds members only")
	}
	_, err = ParsePolicy("v2.yaml", []byte(strings.Replace(v1, "version: 1", "version: 2", 1)))
	if err == nil || !strings.Contains(err.Error(), "policy v2.yaml: line 3: approval rule deploys: groups: is not read in version 2") {
		t.Errorf("groups: in version 2: %v", err)
	}
}
