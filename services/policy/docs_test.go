package policy_test

import (
	"os"
	"strings"
	"testing"

	"github.com/auditledger/auditledger/services/policy"
)

// TestDocumentedPoliciesLoad reads every policy file docs/POLICY.md and
// deploy/ show with the gateways' parsers, so the documented format is
// the one they read.
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
	if len(files) != 2 {
		t.Fatalf("%d policy files in docs/POLICY.md, want the PostgreSQL and the HTTP one", len(files))
	}
	deploy, err := os.ReadFile("../../deploy/policy.yaml")
	if err != nil {
		t.Fatal(err)
	}
	for i, text := range append(files, string(deploy)) {
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
