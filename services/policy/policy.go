// Package policy reads a gateway's policy file as a list of rules and who
// each applies to, for the commands that show and rewrite policies:
// Migrate turns a version-1 file into version 2, and Explain says what a
// group or user may run unheld, what is held and what is refused. The
// gateways themselves enforce their policies (pgproxy.Policy,
// httpproxy.Policy); this package reads the same files through the same
// parsers, so what it says is what they enforce.
package policy

import (
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"

	"go.yaml.in/yaml/v3"

	"github.com/auditledger/auditledger/services/httpproxy"
	"github.com/auditledger/auditledger/services/internal/policyfile"
	"github.com/auditledger/auditledger/services/kubegateway"
	"github.com/auditledger/auditledger/services/pgproxy"
)

// Gateways a policy file is for.
const (
	Postgres   = "postgres"
	HTTP       = "http"
	Kubernetes = "kubernetes"
)

// KindAllow is the kind of the Kubernetes gateway's allow rules, which
// let requesters read secrets.
const KindAllow = "allow"

// Rule is one rule of a policy, whichever gateway it is for.
type Rule struct {
	Kind   string // deny, approve, mask, or allow (Kubernetes)
	ID     string
	Match  string // what it selects, as the file says it: "kinds: ALTER, CREATE, DROP"
	Detail string // reason, timeout or masking method
	// Exempt is who the rule does not apply to (a version-1 groups: list
	// as the exemption it makes by omission); nil: everyone is judged.
	Exempt *policyfile.Exempt
}

// Name is how messages name the rule: "approval rule ddl".
func (r Rule) Name() string { return policyfile.Noun(r.Kind) + " rule " + r.ID }

// Policy is a parsed policy file.
type Policy struct {
	Gateway string // Postgres, HTTP or Kubernetes
	policyfile.Loaded
	Rules []Rule // deny, then approve, then mask rules, in file order
	// For returns the rules that apply to user, a member of groups, as
	// the gateway computes them (built-in rules included).
	For func(user string, groups []string) []Rule
}

// Load reads a policy file.
func Load(file string) (*Policy, error) {
	b, err := os.ReadFile(file)
	if err != nil {
		return nil, err
	}
	return Read(file, b)
}

// Read parses policy text for any of these gateways; name is used in
// errors. A file with rules on methods, paths or fields is an HTTP
// gateway's; one with rules on verbs, API groups, resources, namespaces,
// names or non-resource URLs a Kubernetes gateway's; any other, a
// PostgreSQL gateway's.
func Read(name string, b []byte) (*Policy, error) {
	if hasRuleKey(b, "verbs", "api_groups", "resources", "namespaces", "names", "non_resource_urls") {
		p, err := kubegateway.ParsePolicy(name, b)
		if err != nil {
			return nil, err
		}
		return &Policy{Gateway: Kubernetes, Loaded: p.Loaded, Rules: kubeRules(p, "", nil, false),
			For: func(u string, g []string) []Rule { return kubeRules(p, u, g, true) }}, nil
	}
	if isHTTP(b) {
		p, err := httpproxy.ParsePolicy(name, b)
		if err != nil {
			return nil, err
		}
		return &Policy{Gateway: HTTP, Loaded: p.Loaded, Rules: httpRules(p),
			For: func(u string, g []string) []Rule { return httpRules(p.For(u, g)) }}, nil
	}
	p, err := pgproxy.ParsePolicy(name, b)
	if err != nil {
		return nil, err
	}
	return &Policy{Gateway: Postgres, Loaded: p.Loaded, Rules: pgRules(p),
		For: func(u string, g []string) []Rule { return pgRules(p.For(u, g)) }}, nil
}

// isHTTP reports whether any rule selects by an HTTP gateway's keys.
func isHTTP(b []byte) bool { return hasRuleKey(b, "methods", "paths", "fields") }

// hasRuleKey reports whether any rule of any section has one of keys.
func hasRuleKey(b []byte, keys ...string) bool {
	var doc map[string]any
	yaml.Unmarshal(b, &doc) // a broken file is the parser's to report
	for _, section := range doc {
		rules, _ := section.([]any)
		for _, r := range rules {
			r, _ := r.(map[string]any)
			for _, k := range keys {
				if _, ok := r[k]; ok {
					return true
				}
			}
		}
	}
	return false
}

// describe joins the non-empty lists among key, value pairs: "kinds:
// DROP; pattern: x".
func describe(pairs ...any) string {
	var out []string
	for i := 0; i+1 < len(pairs); i += 2 {
		switch v := pairs[i+1].(type) {
		case []string:
			if len(v) > 0 {
				out = append(out, fmt.Sprintf("%s: %s", pairs[i], strings.Join(v, ", ")))
			}
		case string:
			if v != "" {
				out = append(out, fmt.Sprintf("%s: %s", pairs[i], v))
			}
		case bool:
			if v {
				out = append(out, fmt.Sprint(pairs[i]))
			}
		}
	}
	return strings.Join(out, "; ")
}

func pgRules(p *pgproxy.Policy) []Rule {
	var out []Rule
	for _, r := range p.Deny {
		out = append(out, Rule{Kind: policyfile.KindDeny, ID: r.ID, Exempt: r.Exempt, Detail: r.Reason,
			Match: describe("kinds", r.Kinds, "pattern", r.Pattern, "require_where", r.RequireWhere)})
	}
	if slices.ContainsFunc(p.Mask, func(r pgproxy.MaskRule) bool { return len(r.Columns) > 0 }) {
		// Not a rule of the list the gateway matches kinds against: it
		// judges what a statement's results read (pgproxy.Policy.Denied).
		out = append(out, Rule{Kind: policyfile.KindDeny, ID: "builtin-masked-columns-bare",
			Match:  "results that read a masked column other than bare, whole rows, query_to_xml and the like",
			Detail: "a computed value is not masked; select the column as it is"})
	}
	for _, r := range p.Approve {
		out = append(out, Rule{Kind: policyfile.KindApprove, ID: r.ID, Exempt: r.Exempt, Detail: "timeout " + r.Timeout.String(),
			Match: describe("kinds", r.Kinds, "pattern", r.Pattern, "require_where", r.RequireWhere)})
	}
	for _, r := range p.Mask {
		out = append(out, Rule{Kind: policyfile.KindMask, ID: r.ID, Exempt: r.Exempt, Detail: "method " + r.Method,
			Match: describe("columns", r.Columns, "detect", r.Detect)})
	}
	return out
}

func httpRules(p *httpproxy.Policy) []Rule {
	var out []Rule
	add := func(kind string, rs []httpproxy.Rule) {
		for _, r := range rs {
			d := r.Reason
			if kind == policyfile.KindApprove {
				d = "timeout " + r.Timeout.String()
			}
			out = append(out, Rule{Kind: kind, ID: r.ID, Exempt: r.Exempt, Detail: d, Match: describe("methods", r.Methods, "paths", r.Paths)})
		}
	}
	add(policyfile.KindDeny, p.Deny)
	add(policyfile.KindApprove, p.Approve)
	for _, r := range p.Mask {
		out = append(out, Rule{Kind: policyfile.KindMask, ID: r.ID, Exempt: r.Exempt, Detail: "method " + r.Method,
			Match: describe("fields", r.Fields, "detect", r.Detect)})
	}
	return out
}

// kubeRules lists a Kubernetes gateway's rules (only those that apply to
// user in groups, with view), and its built-in refusal of secrets.
func kubeRules(p *kubegateway.Policy, user string, groups []string, view bool) []Rule {
	var out []Rule
	add := func(kind string, rs []kubegateway.Rule) {
		for _, r := range rs {
			if view && !r.Applies(user, groups) {
				continue
			}
			d := r.Reason
			if kind == policyfile.KindApprove {
				d = "timeout " + r.Timeout.String()
			} else if kind == KindAllow {
				d = "lets the requests it matches read secrets"
			}
			out = append(out, Rule{Kind: kind, ID: r.ID, Exempt: r.Exempt, Detail: d,
				Match: describe("verbs", r.Verbs, "api_groups", r.APIGroups, "resources", r.Resources, "namespaces", r.Namespaces,
					"names", r.Names, "non_resource_urls", r.NonResourceURLs)})
		}
	}
	add(policyfile.KindDeny, p.Deny)
	out = append(out, Rule{Kind: policyfile.KindDeny, ID: "builtin-secrets", Match: "requests to secrets other than create",
		Detail: "unless an allow rule lets the request read them"})
	add(policyfile.KindApprove, p.Approve)
	add(KindAllow, p.Allow)
	return out
}

// ErrNotVersion1 is returned by Migrate for a file that is not version 1.
var ErrNotVersion1 = errors.New("not a version-1 policy")
