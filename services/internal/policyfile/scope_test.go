package policyfile

import (
	"strings"
	"testing"
)

func TestExempts(t *testing.T) {
	for _, c := range []struct {
		name   string
		exempt *Exempt
		user   string
		groups []string
		want   bool
	}{
		{"no exemption", nil, "ann", []string{"dba"}, false},
		{"group member", &Exempt{Groups: []string{"dba"}}, "ann", []string{"dev", "dba"}, true},
		{"not a member", &Exempt{Groups: []string{"dba"}}, "ann", []string{"dev"}, false},
		{"user named", &Exempt{Users: []string{"ann"}}, "ann", nil, true},
		{"other user", &Exempt{Users: []string{"ann"}}, "bob", nil, false},
		{"outside the groups", &Exempt{OutsideGroups: []string{"dba"}}, "bob", []string{"dev"}, true},
		{"outside, in no group", &Exempt{OutsideGroups: []string{"dba"}}, "bob", nil, true},
		{"inside the groups", &Exempt{OutsideGroups: []string{"dba"}}, "ann", []string{"dba"}, false},
	} {
		if got := c.exempt.Exempts(c.user, c.groups); got != c.want {
			t.Errorf("%s: Exempts(%s, %v) = %v, want %v", c.name, c.user, c.groups, got, c.want)
		}
	}
}

func TestScopeByVersion(t *testing.T) {
	for _, c := range []struct {
		name    string
		version int
		kind    string
		scope   Scope
		err     string   // "" for none
		omitted []string // the groups of the omission reported
	}{
		{"v1 approve groups: an omission", V1, KindApprove, Scope{Groups: []string{"dba"}}, "", []string{"dba"}},
		{"v1 approve for everyone", V1, KindApprove, Scope{}, "", nil},
		{"v1 deny groups", V1, KindDeny, Scope{Groups: []string{"dba"}}, "deny rule r: groups: only approve rules take groups in version 1", nil},
		{"v1 exempt", V1, KindMask, Scope{Exempt: &Exempt{Groups: []string{"dba"}}}, "mask rule r: exempt: is read from version 2", nil},
		{"v2 groups", V2, KindApprove, Scope{Groups: []string{"dba"}}, "approval rule r: groups: is not read in version 2, where a rule applies to everyone; say who is exempt: exempt: {groups: [...]}, or exempt: {outside_groups: [dba]}", nil},
		{"v2 exempt", V2, KindDeny, Scope{Exempt: &Exempt{Users: []string{"ann"}}}, "", nil},
		{"v2 empty exempt", V2, KindMask, Scope{Exempt: &Exempt{}}, "exempt: names no one", nil},
		{"v2 empty name", V2, KindMask, Scope{Exempt: &Exempt{Groups: []string{""}}}, "an empty group or user name", nil},
	} {
		h := Header{Version: c.version}
		var l Loaded
		err := h.Scope(&l, c.kind, "r", &c.scope)
		switch {
		case c.err == "" && err != nil:
			t.Errorf("%s: %v", c.name, err)
		case c.err != "" && (err == nil || !strings.Contains(err.Error(), c.err)):
			t.Errorf("%s: %v, want %q", c.name, err, c.err)
		}
		if c.omitted == nil {
			if len(l.Omissions) != 0 {
				t.Errorf("%s: omissions %v, want none", c.name, l.Omissions)
			}
			continue
		}
		if len(l.Omissions) != 1 || l.Omissions[0].Rule != "r" || l.Omissions[0].Kind != c.kind || strings.Join(l.Omissions[0].Groups, ",") != strings.Join(c.omitted, ",") {
			t.Errorf("%s: omissions %v, want rule r's groups %v", c.name, l.Omissions, c.omitted)
		}
		// The omission is now an explicit exemption: members are judged,
		// everyone else is exempt, as version 1 did.
		if !c.scope.Applies("ann", []string{"dba"}) || c.scope.Applies("bob", []string{"dev"}) {
			t.Errorf("%s: the version-1 groups were not turned into exempt: {outside_groups}", c.name)
		}
	}
}

type rule struct {
	Scope
	id string
}

func TestApplying(t *testing.T) {
	rules := []rule{{id: "a"}, {Scope{Exempt: &Exempt{Groups: []string{"dba"}}}, "b"}, {id: "c"}}
	ids := func(rs []rule) (s string) {
		for _, r := range rs {
			s += r.id
		}
		return s
	}
	if got := ids(Applying(rules, "ann", []string{"dba"})); got != "ac" {
		t.Errorf("for a dba: %s, want ac", got)
	}
	if got := Applying(rules, "bob", nil); &got[0] != &rules[0] || len(got) != 3 {
		t.Errorf("for bob: %v, want the rules themselves", got)
	}
	if !Exempting(rules) || Exempting(rules[:1]) {
		t.Error("Exempting")
	}
	all := Rules[rule, rule, rule]{Mask: rules[:1], Deny: rules, Approve: rules[2:]}
	if v, narrowed := all.For("ann", []string{"dba"}); !narrowed || ids(v.Deny) != "ac" || ids(v.Mask) != "a" || ids(v.Approve) != "c" {
		t.Errorf("view for a dba: %v %v", v, narrowed)
	}
	if v, narrowed := (Rules[rule, rule, rule]{Deny: rules[:1]}).For("ann", []string{"dba"}); narrowed || len(v.Deny) != 1 {
		t.Errorf("a view without exemptions: %v %v", v, narrowed)
	}
}

// Two rules of one kind may not share an id: events, approvals and policy
// explain name rules by it. The same id in two kinds is two rules.
func TestDuplicateRuleIDs(t *testing.T) {
	h := Header{Version: V2}
	var l Loaded
	if err := h.Scope(&l, KindApprove, "ddl", &Scope{}); err != nil {
		t.Fatal(err)
	}
	if err := h.Scope(&l, KindDeny, "ddl", &Scope{}); err != nil {
		t.Errorf("a deny rule with an approve rule's id: %v", err)
	}
	err := h.Scope(&l, KindApprove, "ddl", &Scope{Exempt: &Exempt{Groups: []string{"dba"}}})
	if err == nil || !strings.Contains(err.Error(), "a second approval rule with this id") {
		t.Errorf("a second approve rule ddl: %v, want it refused", err)
	}
}
