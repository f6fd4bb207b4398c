package sshproxy

import (
	"errors"
	"fmt"
	"path"
	"regexp"
	"slices"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/auditledger/auditledger/internal/yamlstrict"
	"github.com/auditledger/auditledger/services/gateway"
	"github.com/auditledger/auditledger/services/internal/policyfile"
)

// Policy is what the SSH gateway enforces; the file format is documented
// in docs/POLICY.md. Deny rules are checked before approve rules; a
// forwarding, agent, X11 or subsystem request runs only when an allow
// rule names it.
type Policy struct {
	policyfile.Loaded
	Version int
	Deny    []Rule
	Approve []Rule
	Allow   []AllowRule
	Limits  []LimitRule
}

// LimitRule bounds the sessions of those it applies to on its targets.
// Where several apply, the smallest bound of each kind holds.
type LimitRule struct {
	policyfile.Scope `yaml:",inline"`
	ID               string        `yaml:"id"`
	Targets          []string      `yaml:"targets"`
	MaxDuration      time.Duration `yaml:"max_duration"` // a connection is closed this long after it began; zero: no bound
	IdleTimeout      time.Duration `yaml:"idle_timeout"` // a connection with no bytes either way this long is closed; zero: no bound
	MaxSessions      int           `yaml:"max_sessions"` // connections one user may have open at once, on any target; zero: no bound
}

// Rule matches what a session runs: the simple commands of an exec
// request, as the shell parser finds them, and interactive shells.
type Rule struct {
	policyfile.Rule `yaml:",inline"`
	Targets         []string `yaml:"targets"`  // target names, globs; empty: every target
	Commands        []string `yaml:"commands"` // program names (the last element of the path), globs
	Pattern         string   `yaml:"pattern"`  // regular expression on a simple command's words joined by spaces
	// Shell matches an interactive shell and every command the parser
	// cannot resolve (eval, $CMD, python -c, xargs, …), which could run
	// anything.
	Shell bool `yaml:"shell"`

	re *regexp.Regexp
}

// AllowRule lets what a session may not do by default: forward ports,
// the agent or X11, open a subsystem, or be used as a jump host.
type AllowRule struct {
	policyfile.Scope `yaml:",inline"`
	ID               string   `yaml:"id"`
	Targets          []string `yaml:"targets"`
	Subsystems       []string `yaml:"subsystems"` // sftp
	Forwarding       []string `yaml:"forwarding"` // local, remote, agent, x11
}

// Forwarding kinds an allow rule names.
const (
	ForwardLocal  = "local"  // ssh -L, and ssh -J through the gateway
	ForwardRemote = "remote" // ssh -R
	ForwardAgent  = "agent"  // ssh -A
	ForwardX11    = "x11"    // ssh -X
)

// DefaultPolicy is the policy of a gateway without a policy file: every
// command and shell runs, sftp (which scp uses by default) is open, and
// every forwarding is refused.
func DefaultPolicy() *Policy {
	return &Policy{Version: policyfile.V2, Allow: []AllowRule{{ID: "default-sftp", Subsystems: []string{"sftp"}}}}
}

// LoadPolicy reads and checks a policy file (the gateway core's
// LoadPolicy with this gateway's parser).
func LoadPolicy(file string) (*Policy, error) { return gateway.LoadPolicy(file, ParsePolicy) }

// ParsePolicy parses policy text; name is used in errors.
func ParsePolicy(name string, b []byte) (*Policy, error) {
	var doc struct {
		policyfile.Header   `yaml:",inline"`
		policyfile.Sections `yaml:",inline"`
		Allow               []yaml.Node `yaml:"allow"`
		Limits              []yaml.Node `yaml:"limits"`
	}
	if err := policyfile.Decode(name, b, &doc); err != nil {
		return nil, err
	}
	bad := func(line int, format string, args ...any) error {
		return policyfile.LineError(name, line, format, args...)
	}
	if len(doc.Mask) > 0 {
		return nil, bad(doc.Mask[0].Line, "the SSH gateway has no mask rules: the detectors replace what they find in every recorded chunk")
	}
	p := &Policy{Version: doc.Version}
	p.Source = policyfile.NewSource(name, b, doc.Version)
	check := func(r *Rule) error {
		if len(r.Commands) == 0 && r.Pattern == "" && !r.Shell {
			return errors.New("needs commands, pattern or shell")
		}
		if err := checkGlobs(r.Targets, r.Commands); err != nil {
			return err
		}
		if r.Pattern != "" {
			re, err := regexp.Compile(r.Pattern)
			if err != nil {
				return fmt.Errorf("pattern: %v", err)
			}
			r.re = re
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
	for _, n := range doc.Allow {
		var r AllowRule
		if err := yamlstrict.DecodeNode(&n, &r, "an allow rule"); err != nil {
			return nil, bad(n.Line, "%v", err)
		}
		if r.ID == "" {
			return nil, bad(n.Line, "allow rule needs an id")
		}
		if len(r.Subsystems) == 0 && len(r.Forwarding) == 0 {
			return nil, bad(n.Line, "allow rule %s needs subsystems or forwarding", r.ID)
		}
		for _, f := range r.Forwarding {
			if !slices.Contains([]string{ForwardLocal, ForwardRemote, ForwardAgent, ForwardX11}, f) {
				return nil, bad(n.Line, "allow rule %s: forwarding %q, want local, remote, agent or x11", r.ID, f)
			}
		}
		if err := checkGlobs(r.Targets); err != nil {
			return nil, bad(n.Line, "allow rule %s: %v", r.ID, err)
		}
		if err := doc.Scope(&p.Loaded, "allow", r.ID, &r.Scope); err != nil {
			return nil, bad(n.Line, "%v", err)
		}
		p.Allow = append(p.Allow, r)
	}
	for _, n := range doc.Limits {
		var r LimitRule
		if err := yamlstrict.DecodeNode(&n, &r, "a limit rule"); err != nil {
			return nil, bad(n.Line, "%v", err)
		}
		switch {
		case r.ID == "":
			return nil, bad(n.Line, "limit rule needs an id")
		case r.MaxDuration < 0 || r.IdleTimeout < 0 || r.MaxSessions < 0:
			return nil, bad(n.Line, "limit rule %s: a negative bound", r.ID)
		case r.MaxDuration == 0 && r.IdleTimeout == 0 && r.MaxSessions == 0:
			return nil, bad(n.Line, "limit rule %s needs max_duration, idle_timeout or max_sessions", r.ID)
		}
		if err := checkGlobs(r.Targets); err != nil {
			return nil, bad(n.Line, "limit rule %s: %v", r.ID, err)
		}
		if err := doc.Scope(&p.Loaded, "limit", r.ID, &r.Scope); err != nil {
			return nil, bad(n.Line, "%v", err)
		}
		p.Limits = append(p.Limits, r)
	}
	return p, nil
}

func checkGlobs(lists ...[]string) error {
	for _, l := range lists {
		for _, g := range l {
			if _, err := path.Match(g, ""); err != nil || g == "" {
				return fmt.Errorf("glob %q: %v", g, err)
			}
		}
	}
	return nil
}

func anyGlob(globs []string, s string) bool {
	return slices.ContainsFunc(globs, func(g string) bool { ok, _ := path.Match(g, s); return ok })
}

// onTarget reports whether a rule limited to targets applies to target.
func onTarget(targets []string, target string) bool {
	return len(targets) == 0 || anyGlob(targets, target)
}

// matches reports whether the rule matches the call.
func (r *Rule) matches(c call) bool {
	if c.opaque {
		return r.Shell || len(r.Commands) > 0 && anyGlob(r.Commands, c.name) || r.re != nil && r.re.MatchString(c.text)
	}
	if len(r.Commands) > 0 && !anyGlob(r.Commands, c.name) {
		return false
	}
	if r.re != nil && !r.re.MatchString(c.text) {
		return false
	}
	return len(r.Commands) > 0 || r.re != nil
}

// view is the policy as it applies to one requester on one target.
type view struct {
	deny, approve []Rule
	allow         []AllowRule
	limits        limits
}

// limits are the bounds that hold for one requester on one target; zero:
// none.
type limits struct {
	maxDuration, idle time.Duration
	maxSessions       int
	// the ids of the rules that set each bound, for messages
	durationRule, idleRule, sessionsRule string
}

// For returns the rules that apply to user, a member of groups, on
// target.
func (p *Policy) For(user string, groups []string, target string) view {
	var v view
	for _, r := range p.Deny {
		if r.Applies(user, groups) && onTarget(r.Targets, target) {
			v.deny = append(v.deny, r)
		}
	}
	for _, r := range p.Approve {
		if r.Applies(user, groups) && onTarget(r.Targets, target) {
			v.approve = append(v.approve, r)
		}
	}
	for _, r := range p.Allow {
		if r.Applies(user, groups) && onTarget(r.Targets, target) {
			v.allow = append(v.allow, r)
		}
	}
	least := func(cur *time.Duration, rule *string, b time.Duration, id string) {
		if b > 0 && (*cur == 0 || b < *cur) {
			*cur, *rule = b, id
		}
	}
	l := &v.limits
	for _, r := range p.Limits {
		if r.Applies(user, groups) && onTarget(r.Targets, target) {
			least(&l.maxDuration, &l.durationRule, r.MaxDuration, r.ID)
			least(&l.idle, &l.idleRule, r.IdleTimeout, r.ID)
			if r.MaxSessions > 0 && (l.maxSessions == 0 || r.MaxSessions < l.maxSessions) {
				l.maxSessions, l.sessionsRule = r.MaxSessions, r.ID
			}
		}
	}
	return v
}

// verdict is what the policy says of a command line or a shell.
type verdict struct {
	rule   *Rule  // the deny or approve rule, nil when it runs unheld
	deny   bool   // refused
	reason string // the rule's reason, or why it cannot be judged
	calls  []call // the simple commands found, for the record
}

// judge decides an exec command line (shell false) or an interactive
// shell (shell true). A command line the parser cannot read is refused
// while any deny or approve rule applies (fail closed).
func (v view) judge(line string, shell bool) verdict {
	var calls []call
	if shell {
		calls = []call{{name: "shell", text: "(interactive shell)", opaque: true}}
	} else {
		var err error
		calls, err = parseCommand(line)
		if err != nil {
			if len(v.deny) > 0 || len(v.approve) > 0 {
				return verdict{deny: true, reason: "the command cannot be parsed, and rules apply to it: " + err.Error()}
			}
			return verdict{}
		}
	}
	for i := range v.deny {
		for _, c := range calls {
			if v.deny[i].matches(c) {
				return verdict{rule: &v.deny[i], deny: true, reason: v.deny[i].Reason, calls: calls}
			}
		}
	}
	for i := range v.approve {
		for _, c := range calls {
			if v.approve[i].matches(c) {
				return verdict{rule: &v.approve[i], reason: v.approve[i].Reason, calls: calls}
			}
		}
	}
	return verdict{calls: calls}
}

// allows reports whether a forwarding kind or a subsystem is allowed.
func (v view) allows(forwarding, subsystem string) bool {
	for _, r := range v.allow {
		if forwarding != "" && slices.Contains(r.Forwarding, forwarding) || subsystem != "" && slices.Contains(r.Subsystems, subsystem) {
			return true
		}
	}
	return false
}
