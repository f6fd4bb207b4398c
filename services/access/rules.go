package access

import (
	"errors"
	"fmt"
	"os"
	"path"
	"slices"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/auditledger/auditledger/internal/yamlstrict"
	"github.com/auditledger/auditledger/services/internal/policyfile"
)

// Rule is one access rule of a policy file (its "access:" section): the
// targets that need a grant, who may approve one, how long a grant may
// last, and who may take a break-glass grant.
type Rule struct {
	ID string `yaml:"id"`
	// Targets are target names (events' target.name), path.Match
	// patterns: "orders", "prod-*".
	Targets []string `yaml:"targets"`
	// Approvers: Count approvals from members of any of Groups, or, with
	// EachGroup, one from a member of each group.
	Approvers struct {
		Groups    []string `yaml:"groups"`
		Count     int      `yaml:"count"`      // default 1
		EachGroup bool     `yaml:"each_group"` // one approval from each group
	} `yaml:"approvers"`
	MaxDuration string `yaml:"max_duration"` // required: the longest grant
	// PendingTimeout: how long a request waits for its approvals when it
	// asks for no start (default 1h); a request with a start waits at
	// most until then.
	PendingTimeout string `yaml:"pending_timeout"`
	BreakGlass     *struct {
		Groups   []string `yaml:"groups"`
		Duration string   `yaml:"duration"` // the fixed length of a break-glass grant
	} `yaml:"break_glass"`
	// Exempt names who needs no grant (service accounts).
	Exempt *policyfile.Exempt `yaml:"exempt"`
	Reason string             `yaml:"reason"`

	maxDuration, pendingTimeout, breakGlass time.Duration
}

// Max is the longest grant the rule allows.
func (r *Rule) Max() time.Duration { return r.maxDuration }

// Pending is how long a request without a start waits for approvals.
func (r *Rule) Pending() time.Duration { return r.pendingTimeout }

// BreakGlassDuration is the fixed length of a break-glass grant; zero
// when the rule allows none.
func (r *Rule) BreakGlassDuration() time.Duration { return r.breakGlass }

// Covers reports whether target is one of the rule's.
func (r *Rule) Covers(target string) bool {
	return slices.ContainsFunc(r.Targets, func(p string) bool { ok, _ := path.Match(p, target); return ok })
}

// Applies reports whether the rule asks user, a member of groups, for a
// grant (false when exempt).
func (r *Rule) Applies(user string, groups []string) bool { return !r.Exempt.Exempts(user, groups) }

// MayApprove reports whether a member of groups may approve under r.
func (r *Rule) MayApprove(groups []string) bool {
	return slices.ContainsFunc(groups, func(g string) bool { return slices.Contains(r.Approvers.Groups, g) })
}

// MayBreakGlass reports whether a member of groups may take a
// break-glass grant under r.
func (r *Rule) MayBreakGlass(groups []string) bool {
	return r.BreakGlass != nil && slices.ContainsFunc(groups, func(g string) bool { return slices.Contains(r.BreakGlass.Groups, g) })
}

// Rules are the access rules of one policy file, in file order.
type Rules []*Rule

// For returns the first rule covering target, or nil: the target needs
// no grant.
func (rs Rules) For(target string) *Rule {
	for _, r := range rs {
		if r.Covers(target) {
			return r
		}
	}
	return nil
}

// ErrRules: the access section of a policy file is not valid.
var ErrRules = errors.New("access rules")

// LoadRules reads the access section of a policy file.
func LoadRules(file string) (Rules, error) {
	b, err := os.ReadFile(file)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrRules, err)
	}
	return ParseRules(file, b)
}

// ParseRules reads the "access:" section of policy text (the rest is
// the gateway's parser's); name is used in errors. No section: no rules.
func ParseRules(name string, b []byte) (Rules, error) {
	var doc struct {
		Access []yaml.Node `yaml:"access"`
	}
	if err := yaml.Unmarshal(b, &doc); err != nil {
		return nil, fmt.Errorf("%w: policy %s: %w", ErrRules, name, err)
	}
	var out Rules
	seen := map[string]bool{}
	for i := range doc.Access {
		n := &doc.Access[i]
		r := &Rule{}
		if err := yamlstrict.DecodeNode(n, r, "an access rule"); err != nil {
			return nil, fmt.Errorf("%w: policy %s: %w", ErrRules, name, err)
		}
		bad := func(format string, args ...any) error {
			return fmt.Errorf("%w: policy %s: line %d: access rule %q: %s", ErrRules, name, n.Line, r.ID, fmt.Sprintf(format, args...))
		}
		switch {
		case r.ID == "":
			return nil, bad("id is required")
		case seen[r.ID]:
			return nil, bad("two access rules share this id")
		case len(r.Targets) == 0:
			return nil, bad("targets: name at least one target (a target name or a pattern such as prod-*)")
		case len(r.Approvers.Groups) == 0:
			return nil, bad("approvers.groups: name the groups whose members may approve")
		case r.Approvers.Count < 0:
			return nil, bad("approvers.count: %d is negative", r.Approvers.Count)
		case r.Approvers.EachGroup && r.Approvers.Count > 0:
			return nil, bad("approvers: count and each_group exclude each other (each_group asks one approval from each group)")
		}
		seen[r.ID] = true
		for _, p := range r.Targets {
			if _, err := path.Match(p, ""); err != nil {
				return nil, bad("targets: %q is not a valid pattern: %v", p, err)
			}
		}
		if r.Approvers.Count == 0 {
			r.Approvers.Count = 1
		}
		var err error
		if r.maxDuration, err = duration(r.MaxDuration, 0); err != nil || r.maxDuration <= 0 {
			return nil, bad("max_duration: %q: give the longest grant, e.g. 4h", r.MaxDuration)
		}
		if r.pendingTimeout, err = duration(r.PendingTimeout, time.Hour); err != nil || r.pendingTimeout <= 0 {
			return nil, bad("pending_timeout: %q is not a positive duration", r.PendingTimeout)
		}
		if bg := r.BreakGlass; bg != nil {
			if len(bg.Groups) == 0 {
				return nil, bad("break_glass.groups: name the groups that may take a break-glass grant")
			}
			if r.breakGlass, err = duration(bg.Duration, 0); err != nil || r.breakGlass <= 0 || r.breakGlass > r.maxDuration {
				return nil, bad("break_glass.duration: %q: give a fixed, short duration no longer than max_duration, e.g. 30m", bg.Duration)
			}
		}
		if r.Exempt != nil && len(r.Exempt.Groups)+len(r.Exempt.Users)+len(r.Exempt.OutsideGroups) == 0 {
			return nil, bad("exempt: names no one")
		}
		out = append(out, r)
	}
	return out, nil
}

func duration(s string, def time.Duration) (time.Duration, error) {
	if s == "" {
		return def, nil
	}
	return time.ParseDuration(s)
}
