package bench

import (
	"bytes"
	"context"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/spf13/cobra"

	"github.com/auditledger/auditledger/test/kubetest"
)

// TestBenchKubeRuns runs the Kubernetes benchmark briefly against a real
// kube-apiserver and the test kubelet: it must complete and print each
// figure. It asserts nothing about speed. AUDITLEDGER_BENCH_KUBE_ARGS,
// if set, replaces the brief sizes (to take the figures in
// docs/PERFORMANCE.md).
func TestBenchKubeRuns(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Minute)
	defer cancel()
	c := kubetest.Start(t)
	admin := func(args ...string) string {
		t.Helper()
		out, err := c.Kubectl(ctx, c.AdminKubeconfig, args...)
		if err != nil {
			t.Fatal(err)
		}
		return strings.TrimSpace(out)
	}
	roles := filepath.Join(t.TempDir(), "roles.yaml")
	os.WriteFile(roles, []byte(`apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata: {name: auditledger-impersonator}
rules:
- {apiGroups: [""], resources: [users, groups], verbs: [impersonate]}
- {apiGroups: [authentication.k8s.io], resources: [uids], verbs: [impersonate]}
`), 0o600)
	admin("apply", "-f", roles)
	admin("create", "namespace", "auditledger")
	admin("create", "serviceaccount", "gateway", "-n", "auditledger")
	admin("create", "clusterrolebinding", "auditledger-gateway", "--clusterrole=auditledger-impersonator", "--serviceaccount=auditledger:gateway")
	dir := t.TempDir()
	tokenFile, caFile := filepath.Join(dir, "token"), filepath.Join(dir, "ca.crt")
	os.WriteFile(tokenFile, []byte(admin("create", "token", "gateway", "-n", "auditledger", "--duration=2h")), 0o600)
	os.WriteFile(caFile, c.CAPEM, 0o600)
	c.StartKubelet().CreatePod("bench", "shell")

	var out bytes.Buffer
	root, group, cmd := &cobra.Command{Use: "auditledger"}, &cobra.Command{Use: "bench"}, &cobra.Command{Use: "kube"}
	root.AddCommand(group)
	group.AddCommand(cmd)
	r := Kube(cmd)
	cmd.RunE = func(c *cobra.Command, a []string) error { return r(c.Context(), a, nil, &out, io.Discard) }
	sizes := []string{"--gets", "5", "--lists", "2", "--pods", "300", "--bytes", "2000000"}
	if s := os.Getenv("AUDITLEDGER_BENCH_KUBE_ARGS"); s != "" {
		sizes = strings.Fields(s)
	}
	root.SetArgs(append([]string{"bench", "kube", "--kube-upstream", c.URL, "--kube-ca", caFile, "--kube-token-file", tokenFile,
		"--kubeconfig", c.AdminKubeconfig, "--kubectl", c.Tools.Kubectl, "--pod", "bench/shell", "--container", "main"}, sizes...))
	root.SilenceUsage = true
	if err := root.ExecuteContext(ctx); err != nil {
		t.Fatalf("%v\n%s", err, out.String())
	}
	for _, want := range []string{"kubectl get pod, p50", "kubectl get pod, p99", "pods, median", "exec stdout", "MiB/s"} {
		if !strings.Contains(out.String(), want) {
			t.Fatalf("output lacks %q:\n%s", want, out.String())
		}
	}
	t.Log("\n" + out.String())
}
