package kubegateway

import (
	"errors"
	"fmt"
	"path"
	"slices"

	"go.yaml.in/yaml/v3"

	"github.com/auditledger/auditledger/services/gateway"
	"github.com/auditledger/auditledger/services/internal/policyfile"
)

// Policy is what the Kubernetes gateway enforces; the file format is
// documented in docs/POLICY.md. Deny rules are checked before approve
// rules; requests to secrets other than create run only when an allow
// rule lets the requester read them.
type Policy struct {
	policyfile.Loaded
	Version int
	Deny    []Rule
	Approve []Rule
	Allow   []Rule
}

// Rule matches requests as the API server parses them. Every list is
// optional (empty: any), and a request matches when it matches each list
// given. Lists hold globs (path.Match; "*" alone matches anything,
// subresources included).
type Rule struct {
	policyfile.Rule `yaml:",inline"`
	Verbs           []string `yaml:"verbs"`      // get, list, watch, create, update, patch, delete, deletecollection
	APIGroups       []string `yaml:"api_groups"` // "" is the core group
	// Resources are resource names, or resource/subresource as RBAC
	// writes them (pods/exec, deployments/scale, "pods/*").
	Resources []string `yaml:"resources"`
	// Namespaces: a rule that names namespaces matches namespaced
	// requests only.
	Namespaces []string `yaml:"namespaces"`
	Names      []string `yaml:"names"`
	// NonResourceURLs matches requests outside the resource API (/version,
	// /apis discovery, /healthz) by path; a rule with them matches those
	// requests only.
	NonResourceURLs []string `yaml:"non_resource_urls"`
}

// DefaultPolicy is the policy of a gateway without a policy file: every
// request runs, except requests to secrets other than create (no one may
// read them).
func DefaultPolicy() *Policy { return &Policy{Version: policyfile.V2} }

// LoadPolicy reads and checks a policy file (the gateway core's
// LoadPolicy with this gateway's parser).
func LoadPolicy(file string) (*Policy, error) { return gateway.LoadPolicy(file, ParsePolicy) }

// ParsePolicy parses policy text; name is used in errors.
func ParsePolicy(name string, b []byte) (*Policy, error) {
	var doc struct {
		policyfile.Header   `yaml:",inline"`
		policyfile.Sections `yaml:",inline"`
		Allow               []yaml.Node `yaml:"allow"`
	}
	if err := policyfile.Decode(name, b, &doc); err != nil {
		return nil, err
	}
	bad := func(line int, format string, args ...any) error {
		return policyfile.LineError(name, line, format, args...)
	}
	if len(doc.Mask) > 0 {
		return nil, bad(doc.Mask[0].Line, "the Kubernetes gateway has no mask rules: responses are recorded as digests, and secret values never")
	}
	p := &Policy{Version: doc.Version}
	p.Source = policyfile.NewSource(name, b, doc.Version)
	check := func(allow bool) func(r *Rule) error {
		return func(r *Rule) error {
			switch {
			case len(r.Verbs)+len(r.APIGroups)+len(r.Resources)+len(r.Namespaces)+len(r.Names)+len(r.NonResourceURLs) == 0:
				return errors.New("needs verbs, api_groups, resources, namespaces, names or non_resource_urls")
			case len(r.NonResourceURLs) > 0 && len(r.APIGroups)+len(r.Resources)+len(r.Namespaces)+len(r.Names) > 0:
				return errors.New("non_resource_urls cannot be combined with api_groups, resources, namespaces or names")
			case allow && (len(r.Resources) == 0 || slices.ContainsFunc(r.Resources, func(s string) bool { return s != "secrets" }) ||
				len(r.APIGroups) > 0 && !slices.Equal(r.APIGroups, []string{""}) || len(r.NonResourceURLs) > 0):
				return errors.New("allow rules let requesters read secrets: resources: [secrets] (everything else runs unless a deny or approve rule says otherwise)")
			}
			if err := checkGlobs(r.Verbs, r.Resources, r.Namespaces, r.Names, r.NonResourceURLs); err != nil {
				return err
			}
			return checkGlobs(slices.DeleteFunc(slices.Clone(r.APIGroups), func(s string) bool { return s == "" }))
		}
	}
	var err error
	if p.Deny, err = policyfile.ParseRules(&doc.Header, &p.Loaded, name, doc.Deny, policyfile.KindDeny, check(false)); err != nil {
		return nil, err
	}
	if p.Approve, err = policyfile.ParseRules(&doc.Header, &p.Loaded, name, doc.Approve, policyfile.KindApprove, check(false)); err != nil {
		return nil, err
	}
	if p.Allow, err = policyfile.ParseRules(&doc.Header, &p.Loaded, name, doc.Allow, "allow", check(true)); err != nil {
		return nil, err
	}
	return p, nil
}

func checkGlobs(lists ...[]string) error {
	for _, l := range lists {
		for _, g := range l {
			if _, err := path.Match(g, ""); err != nil || g == "" {
				return fmt.Errorf("glob %q: want a non-empty glob (path.Match)", g)
			}
		}
	}
	return nil
}

func anyGlob(globs []string, s string) bool {
	return slices.ContainsFunc(globs, func(g string) bool {
		if g == "*" {
			return true
		}
		ok, _ := path.Match(g, s)
		return ok
	})
}

// Request is what a rule judges: a request as the API server parses it.
type Request struct {
	IsResource  bool   // a resource request (else Path is judged)
	Verb        string // the API verb; for other requests the method in lower case
	APIGroup    string
	Resource    string // resource name
	Subresource string
	Namespace   string
	Name        string
	Path        string
}

func (q Request) resourceKey() string {
	if q.Subresource != "" {
		return q.Resource + "/" + q.Subresource
	}
	return q.Resource
}

// Matches reports whether the rule matches q.
func (r *Rule) Matches(q Request) bool {
	if len(r.Verbs) > 0 && !anyGlob(r.Verbs, q.Verb) {
		return false
	}
	if !q.IsResource {
		return len(r.NonResourceURLs) > 0 && anyGlob(r.NonResourceURLs, q.Path) ||
			len(r.NonResourceURLs) == 0 && len(r.APIGroups)+len(r.Resources)+len(r.Namespaces)+len(r.Names) == 0
	}
	if len(r.NonResourceURLs) > 0 {
		return false
	}
	if len(r.APIGroups) > 0 && !slices.ContainsFunc(r.APIGroups, func(g string) bool {
		return g == q.APIGroup || g != "" && anyGlob([]string{g}, q.APIGroup)
	}) {
		return false
	}
	if len(r.Resources) > 0 && !anyGlob(r.Resources, q.resourceKey()) {
		return false
	}
	if len(r.Namespaces) > 0 && (q.Namespace == "" || !anyGlob(r.Namespaces, q.Namespace)) {
		return false
	}
	if len(r.Names) > 0 && (q.Name == "" || !anyGlob(r.Names, q.Name)) {
		return false
	}
	return true
}

// Verdict is what the policy says of one request.
type Verdict struct {
	Rule *Rule // the deny, approve or (for secrets) allow rule; nil: none
	// Deny: refused. With a nil Rule, a request to secrets no allow rule
	// lets the requester make.
	Deny   bool
	Hold   bool // held for an approval (Rule is the approve rule)
	Reason string
}

// secretsVerbOpen reports whether a verb on secrets runs without an allow
// rule: create answers with what the client sent; every other verb
// answers with the secret's values (update, patch and delete return the
// object).
func secretsVerbOpen(verb string) bool { return verb == "create" }

// Judge decides q for user, a member of groups (as the identity provider
// names them, before the gateway's prefix).
func (p *Policy) Judge(user string, groups []string, q Request) Verdict {
	for i := range p.Deny {
		if r := &p.Deny[i]; r.Applies(user, groups) && r.Matches(q) {
			return Verdict{Rule: r, Deny: true, Reason: r.Reason}
		}
	}
	if q.IsResource && q.APIGroup == "" && q.Resource == "secrets" && !secretsVerbOpen(q.Verb) {
		allowed := false
		for i := range p.Allow {
			if r := &p.Allow[i]; r.Applies(user, groups) && r.Matches(q) {
				allowed = true
				break
			}
		}
		if !allowed {
			return Verdict{Deny: true, Reason: "no policy rule lets this requester read secrets (an allow rule with resources: [secrets])"}
		}
	}
	for i := range p.Approve {
		if r := &p.Approve[i]; r.Applies(user, groups) && r.Matches(q) {
			return Verdict{Rule: r, Hold: true, Reason: r.Reason}
		}
	}
	return Verdict{}
}
