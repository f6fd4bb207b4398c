package kubetest

import (
	"context"
	"fmt"
	"os"
	"strings"
)

// GatewayRole is the ClusterRole a gateway's credential holds at the
// cluster (docs/COMMANDS.md, the Kubernetes gateway): the right to
// impersonate users, groups and uids, and nothing else.
const GatewayRole = `apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata: {name: auditledger-impersonator}
rules:
- {apiGroups: [""], resources: [users, groups], verbs: [impersonate]}
- {apiGroups: [authentication.k8s.io], resources: [uids], verbs: [impersonate]}
`

// GatewayOptions are the rights a test gives, besides the gateway's own,
// to the people the gateway acts for.
type GatewayOptions struct {
	// AllowAll names a group as the API server sees it through the
	// gateway (with the gateway's prefix, "oidc:developers") that a
	// ClusterRole allowing every verb on every resource is bound to, so
	// that only the gateway's policy stands between its members and the
	// cluster. Empty: no such binding; the people have the rights the
	// test binds them to (Apply), or none.
	AllowAll string
}

// GatewayAccount is the gateway's credential at the cluster: the token of
// the service account auditledger/gateway, whose only rights are
// GatewayRole's.
type GatewayAccount struct {
	Namespace, Name string // auditledger, gateway
	Token           string // not to be logged
	TokenFile       string // a file holding Token (the gateway's token_file, --kube-token-file)
	CAFile          string // the API server's CA, CAPEM (upstream_ca, --kube-ca)
	Kubeconfig      string // a kubeconfig that presents Token to the API server
}

// Gateway gives the cluster the gateway's service account, bound to
// GatewayRole, and the rights o names for the people it acts for, and
// returns the account's credential (a token valid for 2 hours, longer
// than any test runs). Once per cluster: a second call fails the test.
func (c *Cluster) Gateway(ctx context.Context, o GatewayOptions) *GatewayAccount {
	c.t.Helper()
	a := &GatewayAccount{Namespace: "auditledger", Name: "gateway", CAFile: c.path("ca.crt")}
	objects := GatewayRole + fmt.Sprintf(`---
apiVersion: v1
kind: Namespace
metadata: {name: %[1]s}
---
apiVersion: v1
kind: ServiceAccount
metadata: {name: %[2]s, namespace: %[1]s}
`, a.Namespace, a.Name) + bindClusterRole("auditledger-gateway", "auditledger-impersonator",
		fmt.Sprintf("{kind: ServiceAccount, name: %s, namespace: %s}", a.Name, a.Namespace))
	if o.AllowAll != "" {
		objects += `---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata: {name: allow-all}
rules:
- {apiGroups: ["*"], resources: ["*"], verbs: ["*"]}
` + bindClusterRole("allow-all", "allow-all",
			fmt.Sprintf("{apiGroup: rbac.authorization.k8s.io, kind: Group, name: %q}", o.AllowAll))
	}
	// create, not apply: a second call (objects already there, perhaps
	// with other rights) fails instead of passing unnoticed.
	c.Create(ctx, objects)
	a.Token = c.Admin(ctx, "create", "token", a.Name, "-n", a.Namespace, "--duration=2h")
	if a.Token == "" {
		c.t.Fatalf("kubetest: kubectl create token %s -n %s printed no token", a.Name, a.Namespace)
	}
	f, err := os.CreateTemp(c.dir, "gateway-token-*")
	if err != nil {
		c.t.Fatalf("kubetest: the gateway's token file: %v", err)
	}
	a.TokenFile = f.Name()
	_, err = f.WriteString(a.Token)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		c.t.Fatalf("kubetest: writing the gateway's token file %s: %v", a.TokenFile, err)
	}
	a.Kubeconfig = c.TokenKubeconfig(a.Name, a.Token)
	return a
}

// bindClusterRole is a ClusterRoleBinding of role to one subject (its
// YAML flow mapping), a document to append to a manifest.
func bindClusterRole(name, role, subject string) string {
	return fmt.Sprintf(`---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata: {name: %s}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: %s}
subjects:
- %s
`, name, role, subject)
}

// Admin runs kubectl with the admin kubeconfig and returns its standard
// output without surrounding white space; a failure fails the test with
// kubectl's standard error. Like the cluster's other helpers it fails the
// test that started the cluster, so it is for that test's goroutine (a
// subtest runs kubectl itself).
func (c *Cluster) Admin(ctx context.Context, args ...string) string {
	c.t.Helper()
	out, err := c.Kubectl(ctx, c.AdminKubeconfig, args...)
	if err != nil {
		c.t.Fatalf("kubetest: as admin: %v", err)
	}
	return strings.TrimSpace(out)
}

// Create creates the objects of a YAML manifest as admin (kubectl create
// -f); one that exists already fails the test.
func (c *Cluster) Create(ctx context.Context, manifest string) {
	c.t.Helper()
	f, err := os.CreateTemp(c.dir, "manifest-*.yaml")
	if err != nil {
		c.t.Fatalf("kubetest: manifest file: %v", err)
	}
	_, err = f.WriteString(manifest)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		c.t.Fatalf("kubetest: writing manifest %s: %v", f.Name(), err)
	}
	c.Admin(ctx, "create", "-f", f.Name())
}
