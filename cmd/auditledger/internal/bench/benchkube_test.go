package bench

import (
	"bytes"
	"context"
	"io"
	"os"
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
	// The gateway may only impersonate; the bench binds its user's group
	// itself, with --kubeconfig.
	gw := c.Gateway(ctx, kubetest.GatewayOptions{})
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
	root.SetArgs(append([]string{"bench", "kube", "--kube-upstream", c.URL, "--kube-ca", gw.CAFile, "--kube-token-file", gw.TokenFile,
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
