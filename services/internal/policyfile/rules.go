package policyfile

import (
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/auditledger/auditledger/internal/yamlstrict"
	"github.com/auditledger/auditledger/services/approvals"
)

// DefaultTimeout is how long an approve rule holds a request for a
// decision when the rule does not say.
const DefaultTimeout = 5 * time.Minute

// Rule is what the deny, approve and allow rules of the HTTP, SSH and
// Kubernetes gateways carry beside the fields they match on; embed it
// inline in a gateway's rule type and parse a section with ParseRules.
type Rule struct {
	Scope   `yaml:",inline"`
	ID      string        `yaml:"id"`
	Timeout time.Duration `yaml:"timeout"` // approve only; default DefaultTimeout
	Reason  string        `yaml:"reason"`  // deny: required, shown to the requester
}

func (r *Rule) common() *Rule { return r }

// RuleOf is a gateway's rule type R (a struct embedding Rule) as
// ParseRules needs it.
type RuleOf[R any] interface {
	*R
	common() *Rule
}

// ParseRules decodes the rules of one section of the policy file name: each
// node strictly, then what every gateway's rules share: an id; check,
// the gateway's own requirements of its matching fields (its error
// follows "<kind> rule <id>", after a colon unless it begins "needs ");
// a reason on deny rules; a timeout on approve rules only, at most
// approvals.MaxTimeout, DefaultTimeout where none is given; and the
// rule's scope (Header.Scope). Errors name the file and the rule's line.
func ParseRules[R any, P RuleOf[R]](h *Header, l *Loaded, name string, nodes []yaml.Node, kind string, check func(r *R) error) ([]R, error) {
	what := Noun(kind)
	out := make([]R, 0, len(nodes))
	for _, n := range nodes {
		bad := func(format string, args ...any) ([]R, error) {
			return nil, LineError(name, n.Line, format, args...)
		}
		var r R
		if err := yamlstrict.DecodeNode(&n, &r, "a "+what+" rule"); err != nil {
			return bad("%v", err)
		}
		c := P(&r).common()
		if c.ID == "" {
			return bad("%s rule needs an id", what)
		}
		if err := check(&r); err != nil {
			if msg := err.Error(); strings.HasPrefix(msg, "needs ") {
				return bad("%s rule %s %s", what, c.ID, msg)
			}
			return bad("%s rule %s: %v", what, c.ID, err)
		}
		switch {
		case kind == KindDeny && c.Reason == "":
			return bad("deny rule %s needs a reason", c.ID)
		case kind != KindApprove && c.Timeout != 0:
			return bad("%s rule %s: timeout belongs to approve rules", what, c.ID)
		case c.Timeout < 0:
			return bad("%s rule %s: timeout %s is negative", what, c.ID, c.Timeout)
		case c.Timeout > approvals.MaxTimeout:
			return bad("%s rule %s: timeout %s is longer than the %s a request is kept", what, c.ID, c.Timeout, approvals.MaxTimeout)
		case kind == KindApprove && c.Timeout == 0:
			c.Timeout = DefaultTimeout
		}
		if err := h.Scope(l, kind, c.ID, &c.Scope); err != nil {
			return bad("%v", err)
		}
		out = append(out, r)
	}
	return out, nil
}
