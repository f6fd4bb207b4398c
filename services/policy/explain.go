package policy

import (
	"fmt"
	"io"
	"slices"
	"strings"

	"github.com/auditledger/auditledger/services/internal/policyfile"
)

// Who is a requester to explain a policy for.
type Who struct {
	User   string   // "" for any user
	Groups []string // the groups they are a member of
	// Label names them in the output: "group dba", "user ann", "anyone
	// in none of dba, ops".
	Label string
}

// Explanation is what a policy does to one requester.
type Explanation struct {
	Who     Who
	Refused []Rule // deny rules that apply: what they match is refused
	Held    []Rule // approval rules that apply: what they match waits for an approver
	Masked  []Rule // mask rules that apply to results
	Allowed []Rule // allow rules that apply (Kubernetes: reading secrets)
	Exempt  []Rule // rules the requester is exempt from: what they match runs unheld
}

// Explain says what p does to who.
func Explain(p *Policy, who Who) Explanation {
	e := Explanation{Who: who}
	applying := p.For(who.User, who.Groups)
	for _, r := range applying {
		switch r.Kind {
		case policyfile.KindDeny:
			e.Refused = append(e.Refused, r)
		case policyfile.KindApprove:
			e.Held = append(e.Held, r)
		case policyfile.KindMask:
			e.Masked = append(e.Masked, r)
		case KindAllow:
			e.Allowed = append(e.Allowed, r)
		}
	}
	for _, r := range p.Rules {
		if !slices.ContainsFunc(applying, func(a Rule) bool { return a.Kind == r.Kind && a.ID == r.ID }) {
			e.Exempt = append(e.Exempt, r)
		}
	}
	return e
}

// Everyone returns the requesters worth explaining a policy for when none
// is named: a member of each group an exemption names, each user one
// names, and anyone in none of those groups.
func Everyone(p *Policy) []Who {
	var groups, users []string
	for _, r := range p.Rules {
		if r.Exempt == nil {
			continue
		}
		groups = append(append(groups, r.Exempt.Groups...), r.Exempt.OutsideGroups...)
		users = append(users, r.Exempt.Users...)
	}
	slices.Sort(groups)
	slices.Sort(users)
	groups, users = slices.Compact(groups), slices.Compact(users)
	var out []Who
	for _, g := range groups {
		out = append(out, Who{Groups: []string{g}, Label: "group " + g})
	}
	for _, u := range users {
		out = append(out, Who{User: u, Label: "user " + u + " (in none of the groups above)"})
	}
	label := "anyone"
	if len(groups) > 0 {
		label = "anyone in none of " + strings.Join(groups, ", ")
	}
	return append(out, Who{Label: label})
}

// Print writes a readable account of p for each of whos: the file, the
// exemptions a version-1 file makes by omission, then per requester what
// is refused, held and masked, and what runs unheld.
func Print(w io.Writer, p *Policy, whos []Who) error {
	pw := &printer{w: w}
	pw.f("policy %s: %s gateway, version %d, sha256 %s\n", p.Source.File, p.Gateway, p.Source.Version, p.Source.SHA256)
	if p.Source.Version == policyfile.V1 {
		pw.f("version 1: a rule limited to groups exempts everyone outside them; version 2 says who is exempt (auditledger policy migrate)\n")
		if len(p.Omissions) == 0 {
			pw.f("  no exemption by omission in this file\n")
		}
		for _, o := range p.Omissions {
			pw.f("  exemption by omission: %s rule %s applies only to members of %s; everyone else is exempt\n",
				policyfile.Noun(o.Kind), o.Rule, strings.Join(o.Groups, ", "))
		}
	}
	for _, who := range whos {
		e := Explain(p, who)
		pw.f("\n%s:\n", who.Label)
		for _, r := range e.Refused {
			pw.f("  refused  %s: %s (%s)\n", r.Name(), r.Match, r.Detail)
		}
		for _, r := range e.Held {
			pw.f("  held     %s: %s (%s)\n", r.Name(), r.Match, r.Detail)
		}
		for _, r := range e.Masked {
			pw.f("  masked   %s: %s (%s)\n", r.Name(), r.Match, r.Detail)
		}
		for _, r := range e.Allowed {
			pw.f("  allowed  %s: %s (%s)\n", r.Name(), r.Match, r.Detail)
		}
		for _, r := range e.Exempt {
			what := map[string]string{policyfile.KindDeny: "allowed ", policyfile.KindApprove: "unheld  ", policyfile.KindMask: "unmasked", KindAllow: "no allow"}[r.Kind]
			why := builtinWhen[r.ID]
			if r.Exempt != nil {
				why = "exempt: " + r.Exempt.String() + byOmission(p, r)
			}
			pw.f("  %s %s: %s (%s)\n", what, r.Name(), r.Match, why)
		}
		pw.f("  unheld   everything else\n")
	}
	return pw.err
}

// builtinWhen says when each built-in rule of the PostgreSQL gateway
// applies, for a requester it does not apply to. The gateway adds and
// drops these rules in each requester's view (pgproxy.Policy.For);
// Explain lists them from that view like any other rule.
var builtinWhen = map[string]string{
	"builtin-copy-out-unmasked":   "built in: applies only while results are masked",
	"builtin-unjudgeable":         "built in: applies only while a deny, approval or mask rule applies",
	"builtin-masked-columns-bare": "built in: applies only while a mask rule with columns applies",
}

// byOmission notes an exemption a version-1 file made without saying so.
func byOmission(p *Policy, r Rule) string {
	if slices.ContainsFunc(p.Omissions, func(o policyfile.Omission) bool { return o.Rule == r.ID && o.Kind == r.Kind }) {
		return ", by omission in version 1"
	}
	return ""
}

// printer keeps the first write error.
type printer struct {
	w   io.Writer
	err error
}

func (p *printer) f(format string, args ...any) {
	if p.err == nil {
		_, p.err = fmt.Fprintf(p.w, format, args...)
	}
}
