package policyfile

import (
	"fmt"
	"slices"
	"strings"
)

// Exempt names who a rule does not apply to. A requester is exempt when
// any of the three says so; a rule without Exempt applies to everyone.
type Exempt struct {
	Groups []string `yaml:"groups,omitempty" json:"groups,omitempty"` // members of any of these
	Users  []string `yaml:"users,omitempty" json:"users,omitempty"`   // these subjects (events' actor.subject)
	// OutsideGroups exempts everyone who is in none of these groups: what
	// a version-1 rule's groups: meant, said out loud.
	OutsideGroups []string `yaml:"outside_groups,omitempty" json:"outside_groups,omitempty"`
}

// Exempts reports whether user, a member of groups, is exempt.
func (e *Exempt) Exempts(user string, groups []string) bool {
	if e == nil {
		return false
	}
	in := func(list []string) bool {
		return slices.ContainsFunc(groups, func(g string) bool { return slices.Contains(list, g) })
	}
	return in(e.Groups) || slices.Contains(e.Users, user) || len(e.OutsideGroups) > 0 && !in(e.OutsideGroups)
}

// String is the exemption as a file states it, in flow style:
// {groups: [a], outside_groups: [dba]}.
func (e *Exempt) String() string {
	var parts []string
	for _, f := range []struct {
		key  string
		list []string
	}{{"groups", e.Groups}, {"users", e.Users}, {"outside_groups", e.OutsideGroups}} {
		if len(f.list) > 0 {
			parts = append(parts, f.key+": ["+strings.Join(f.list, ", ")+"]")
		}
	}
	return "{" + strings.Join(parts, ", ") + "}"
}

// Scope is who a rule applies to, as its file says it; every rule of every
// gateway embeds it inline. After Header.Scope has checked it, Exempt is
// the whole answer: a version-1 groups: list is turned into the exemption
// it made by omission.
type Scope struct {
	// Groups is version 1's "only members of these" (approve rules only).
	// Version 2 refuses it: a rule applies to everyone unless exempt.
	Groups []string `yaml:"groups"`
	// Exempt (version 2) names who the rule does not apply to.
	Exempt *Exempt `yaml:"exempt"`
}

// Applies reports whether the rule applies to user, a member of groups.
func (s Scope) Applies(user string, groups []string) bool { return !s.Exempt.Exempts(user, groups) }

// Exempting reports whether the rule exempts anyone.
func (s Scope) Exempting() bool { return s.Exempt != nil }

// Scoped is a rule that embeds Scope.
type Scoped interface {
	Applies(user string, groups []string) bool
	Exempting() bool
}

// Applying returns the rules that apply to user in groups, in their order.
// It returns rules itself when all of them apply, so a view of a policy
// without exemptions costs nothing.
func Applying[R Scoped](rules []R, user string, groups []string) []R {
	var out []R
	for i := range rules {
		if !rules[i].Applies(user, groups) {
			if out == nil {
				out = append(make([]R, 0, len(rules)), rules[:i]...)
			}
			continue
		}
		if out != nil {
			out = append(out, rules[i])
		}
	}
	if out == nil {
		return rules
	}
	return out
}

// Exempting reports whether any of rules exempts anyone.
func Exempting[R Scoped](rules []R) bool { return slices.ContainsFunc(rules, R.Exempting) }

// Rules are a gateway's rules by kind, in file order; a gateway's policy
// embeds them.
type Rules[M, D, A Scoped] struct {
	Mask    []M
	Deny    []D
	Approve []A
}

// For returns the rules that apply to user, a member of groups; it
// returns r itself and false when no rule exempts anyone.
func (r Rules[M, D, A]) For(user string, groups []string) (Rules[M, D, A], bool) {
	if !Exempting(r.Mask) && !Exempting(r.Deny) && !Exempting(r.Approve) {
		return r, false
	}
	return Rules[M, D, A]{Mask: Applying(r.Mask, user, groups), Deny: Applying(r.Deny, user, groups),
		Approve: Applying(r.Approve, user, groups)}, true
}

// Rule kinds, as the sections of a policy file name them.
const (
	KindDeny    = "deny"
	KindApprove = "approve"
	KindMask    = "mask"
)

// Noun names a rule of kind in messages: "approval rule ddl".
func Noun(kind string) string {
	if kind == KindApprove {
		return "approval"
	}
	return kind
}

// Scope checks a rule's scope against the file's version and records into
// l what a version-1 file exempts by omission. kind is the rule's section
// (KindDeny, KindApprove, KindMask) and id its id; errors say what to
// write instead, and are placed at the rule's line by the caller.
func (h *Header) Scope(l *Loaded, kind, id string, s *Scope) error {
	// Events, approvals and policy explain name a rule by its id: two
	// rules of one kind with one id would make each of them ambiguous
	// (explain could show one's exemption as the other's).
	if h.ids[kind+"\x00"+id] {
		return fmt.Errorf("%s rule %s: a second %s rule with this id; give each rule an id of its own", Noun(kind), id, Noun(kind))
	}
	if h.ids == nil {
		h.ids = map[string]bool{}
	}
	h.ids[kind+"\x00"+id] = true
	for _, list := range [][]string{s.Groups, s.Exempt.lists()} {
		if slices.Contains(list, "") {
			return fmt.Errorf("%s rule %s: an empty group or user name", Noun(kind), id)
		}
	}
	switch h.Version {
	case 1:
		if s.Exempt != nil {
			return fmt.Errorf("%s rule %s: exempt: is read from version 2; set version: 2 (auditledger policy migrate rewrites a file)", Noun(kind), id)
		}
		if len(s.Groups) == 0 {
			return nil
		}
		if kind != KindApprove {
			return fmt.Errorf("%s rule %s: groups: only approve rules take groups in version 1; version 2 says who is exempt with exempt:", Noun(kind), id)
		}
		s.Exempt = &Exempt{OutsideGroups: s.Groups}
		l.Omissions = append(l.Omissions, Omission{Rule: id, Kind: kind, Groups: s.Groups})
		s.Groups = nil
	default:
		if len(s.Groups) > 0 {
			return fmt.Errorf("%s rule %s: groups: is not read in version 2, where a rule applies to everyone; say who is exempt: exempt: {groups: [...]}, or exempt: {outside_groups: [%s]} for what version 1 meant",
				Noun(kind), id, strings.Join(s.Groups, ", "))
		}
		if s.Exempt != nil && len(s.Exempt.lists()) == 0 {
			return fmt.Errorf("%s rule %s: exempt: names no one (groups, users or outside_groups); remove it", Noun(kind), id)
		}
	}
	return nil
}

// lists returns every name the exemption holds.
func (e *Exempt) lists() []string {
	if e == nil {
		return nil
	}
	return slices.Concat(e.Groups, e.Users, e.OutsideGroups)
}
