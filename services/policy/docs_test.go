package policy_test

import (
	"os"
	"strings"
	"testing"

	"github.com/auditledger/auditledger/services/kubegateway"
	"github.com/auditledger/auditledger/services/policy"
	"github.com/auditledger/auditledger/services/sshproxy"
)

// TestDocumentedPoliciesLoad reads every policy file docs/POLICY.md and
// deploy/ show with the gateways' parsers (the PostgreSQL and HTTP
// gateways' shared one, the SSH and Kubernetes gateways' own), so the
// documented format is the one they read.
func TestDocumentedPoliciesLoad(t *testing.T) {
	t.Setenv("MASK_KEY", "documented")
	doc, err := os.ReadFile("../../docs/POLICY.md")
	if err != nil {
		t.Fatal(err)
	}
	var files []string
	for _, block := range strings.Split(string(doc), "```yaml\n")[1:] {
		block, _, _ = strings.Cut(block, "```")
		if strings.HasPrefix(block, "version:") {
			files = append(files, block)
		}
	}
	if len(files) != 4 {
		t.Fatalf("%d policy files in docs/POLICY.md, want the PostgreSQL, the HTTP, the SSH and the Kubernetes one", len(files))
	}
	deploy, err := os.ReadFile("../../deploy/policy.yaml")
	if err != nil {
		t.Fatal(err)
	}
	// The SSH gateway's file, the last one shown, has its own sections
	// (allow, limits) and parser.
	if _, err := sshproxy.ParsePolicy("documented", []byte(files[2])); err != nil {
		t.Errorf("the SSH policy: %v", err)
	}
	if _, err := kubegateway.ParsePolicy("documented", []byte(files[3])); err != nil {
		t.Errorf("the Kubernetes policy: %v", err)
	}
	for i, text := range append(files[:2:2], string(deploy)) {
		p, err := policy.Read("documented", []byte(text))
		if err != nil {
			t.Errorf("policy %d: %v", i, err)
			continue
		}
		if p.Source.Version != 2 || len(p.Omissions) != 0 {
			t.Errorf("policy %d: version %d, omissions %v: document version 2", i, p.Source.Version, p.Omissions)
		}
	}
}
