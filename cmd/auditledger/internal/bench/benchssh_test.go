package bench

import (
	"bytes"
	"context"
	"io"
	"strings"
	"testing"

	"github.com/spf13/cobra"
)

// TestBenchSSHRuns runs the SSH benchmark briefly against a real sshd: it
// must complete and print each figure. It asserts nothing about speed.
func TestBenchSSHRuns(t *testing.T) {
	var out bytes.Buffer
	root, group, c := &cobra.Command{Use: "auditledger"}, &cobra.Command{Use: "bench"}, &cobra.Command{Use: "ssh"}
	root.AddCommand(group)
	group.AddCommand(c)
	r := SSH(c)
	c.RunE = func(c *cobra.Command, a []string) error { return r(c.Context(), a, nil, &out, io.Discard) }
	root.SetArgs([]string{"bench", "ssh", "--bytes", "1000000", "--sessions", "3", "--keystrokes", "5", "--pace", "10ms"})
	root.SilenceUsage = true
	err := root.ExecuteContext(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"cat of 1 MiB", "% of direct", "CPU per MiB, ms: direct: ssh", "through the gateway: ssh", "added by the gateway", "per session-minute"} {
		if !strings.Contains(out.String(), want) {
			t.Fatalf("output lacks %q:\n%s", want, out.String())
		}
	}
	t.Log(out.String())
}
