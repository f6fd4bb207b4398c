package httpproxy

import (
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/auditledger/auditledger/services/gateway"
	"github.com/auditledger/auditledger/services/internal/policyfile"
)

// Policy is what the HTTP proxy enforces. The file format is documented in
// docs/POLICY.md.
//
// Every rule of a Policy applies to every requester; For returns the view
// for one requester, without the rules they are exempt from. Using a
// Policy without For therefore errs on the side of enforcing.
type Policy struct {
	policyfile.Loaded
	policyfile.Rules[MaskRule, Rule, Rule]

	Version int
	hashKey []byte
}

// MaskRule masks string values in JSON responses by field path or by what
// a value looks like.
type MaskRule struct {
	policyfile.Mask `yaml:",inline"`
	Fields          []string `yaml:"fields"` // dotted paths: name, *, ** (any depth)
	fields          [][]string
}

// Rule matches requests by method and path, for deny and approve.
type Rule struct {
	policyfile.Rule `yaml:",inline"`
	Methods         []string `yaml:"methods"` // empty: any
	Paths           []string `yaml:"paths"`   // /-separated globs; ** spans segments; empty: any
}

// LoadPolicy reads and checks a policy file (the gateway core's
// LoadPolicy with this proxy's parser), errors naming the line. The
// policy it returns names its file, version and digest, so the proxy
// records it (policy.loaded) before serving and names it on every event.
func LoadPolicy(file string) (*Policy, error) { return gateway.LoadPolicy(file, ParsePolicy) }

// ParsePolicy parses policy text; name is used in errors.
func ParsePolicy(name string, b []byte) (*Policy, error) {
	var doc struct {
		policyfile.Header   `yaml:",inline"`
		policyfile.Sections `yaml:",inline"`
	}
	if err := policyfile.Decode(name, b, &doc); err != nil {
		return nil, err
	}
	bad := func(line int, format string, args ...any) error {
		return policyfile.LineError(name, line, format, args...)
	}
	p := &Policy{Version: doc.Version}
	p.Source = policyfile.NewSource(name, b, doc.Version)
	for _, n := range doc.Mask {
		var r MaskRule
		if err := doc.DecodeMask(&p.Loaded, &p.hashKey, &n, &r, &r.Mask, func() int { return len(r.Fields) }, "fields"); err != nil {
			return nil, bad(n.Line, "%v", err)
		}
		for _, f := range r.Fields {
			if f == "" || strings.Contains(f, "..") {
				return nil, bad(n.Line, "mask rule %s: field path %q: want names, * and ** joined by dots", r.ID, f)
			}
			r.fields = append(r.fields, strings.Split(f, "."))
		}
		p.Mask = append(p.Mask, r)
	}
	check := func(r *Rule) error {
		if len(r.Methods) == 0 && len(r.Paths) == 0 {
			return errors.New("needs methods or paths")
		}
		for i, m := range r.Methods {
			r.Methods[i] = strings.ToUpper(m)
		}
		for _, pat := range r.Paths {
			if !strings.HasPrefix(pat, "/") {
				return fmt.Errorf("path %q must start with /", pat)
			}
		}
		return nil
	}
	var err error
	if p.Deny, err = policyfile.ParseRules(&doc.Header, &p.Loaded, name, doc.Deny, policyfile.KindDeny, check); err != nil {
		return nil, err
	}
	if p.Approve, err = policyfile.ParseRules(&doc.Header, &p.Loaded, name, doc.Approve, policyfile.KindApprove, check); err != nil {
		return nil, err
	}
	return p, nil
}

func (r *Rule) matches(method, urlPath string) bool {
	if len(r.Methods) > 0 && !slices.Contains(r.Methods, method) {
		return false
	}
	if len(r.Paths) == 0 {
		return true
	}
	segs := strings.Split(strings.Trim(urlPath, "/"), "/")
	for _, p := range r.Paths {
		if globMatch(strings.Split(strings.Trim(p, "/"), "/"), segs) {
			return true
		}
	}
	return false
}

// For returns the policy as it applies to user, a member of groups:
// without the rules they are exempt from. It returns p itself when no rule
// exempts anyone.
func (p *Policy) For(user string, groups []string) *Policy {
	if p == nil {
		return nil
	}
	if rules, narrowed := p.Rules.For(user, groups); narrowed {
		v := *p
		v.Rules = rules
		return &v
	}
	return p
}

// Denied returns the first deny rule matching the request, or nil.
func (p *Policy) Denied(method, urlPath string) *Rule {
	if p == nil {
		return nil
	}
	for i := range p.Deny {
		if p.Deny[i].matches(method, urlPath) {
			return &p.Deny[i]
		}
	}
	return nil
}

// NeedsApproval returns the first approval rule matching the request, or
// nil. Call it on the requester's view (For).
func (p *Policy) NeedsApproval(method, urlPath string) *Rule {
	if p == nil {
		return nil
	}
	for i := range p.Approve {
		r := &p.Approve[i]
		if r.matches(method, urlPath) {
			return r
		}
	}
	return nil
}

// globMatch matches segments against a pattern whose segments are
// literal, *, a glob with * inside (per path.Match), or ** (zero or more
// segments).
func globMatch(pat, segs []string) bool {
	for len(pat) > 0 {
		if pat[0] == "**" {
			for i := 0; i <= len(segs); i++ {
				if globMatch(pat[1:], segs[i:]) {
					return true
				}
			}
			return false
		}
		if len(segs) == 0 || !segMatch(pat[0], segs[0]) {
			return false
		}
		pat, segs = pat[1:], segs[1:]
	}
	return len(segs) == 0
}

func segMatch(pat, seg string) bool {
	if pat == "*" {
		return true
	}
	if !strings.Contains(pat, "*") {
		return pat == seg
	}
	pre, suf, _ := strings.Cut(pat, "*")
	return len(seg) >= len(pre)+len(suf) && strings.HasPrefix(seg, pre) && strings.HasSuffix(seg, suf)
}
