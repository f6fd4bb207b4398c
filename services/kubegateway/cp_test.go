package kubegateway_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/auditledger/auditledger/events"
	"github.com/auditledger/auditledger/ledger/piikeys"
	"github.com/auditledger/auditledger/services/gateway"
	"github.com/auditledger/auditledger/services/gateway/gatewaytest"
	"github.com/auditledger/auditledger/test/kubetest"
	"github.com/auditledger/auditledger/test/natstest"
)

// cpFile is a file kubectl cp moved, as the test made it.
type cpFile struct {
	rel  string // its path below the copied directory
	data []byte
}

// cpBytes is the size of the large file TestKubectlCpAndDebugThroughGateway
// copies each way: AUDITLEDGER_KUBE_CP_BYTES, or 3 MiB and 123 bytes
// (CI's size, beside every other test on two shared cores).
// AUDITLEDGER_KUBE_CP_BYTES=104857600 is the 100 MiB.
func cpBytes(t *testing.T) int {
	v := os.Getenv("AUDITLEDGER_KUBE_CP_BYTES")
	if v == "" {
		return 3<<20 + 123
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 1 {
		t.Fatalf("AUDITLEDGER_KUBE_CP_BYTES=%q: want a number of bytes, at least 1", v)
	}
	return n
}

const debugPolicy = `version: 2
deny:
  - id: no-debug-in-locked
    verbs: [patch]
    resources: [pods/ephemeralcontainers]
    namespaces: ["locked-*"]
    reason: no debug containers in locked namespaces
`

// kubectl cp both ways through the gateway, over WebSocket and SPDY:
// the files arrive unchanged, and each is recorded in the exec's session
// as a file operation with its name (a card number in a name replaced),
// its size and the keyed digest of its bytes; the session's end counts
// them. And kubectl debug, which adds an ephemeral container (a patch of
// pods/ephemeralcontainers): judged by policy and recorded.
func TestKubectlCpAndDebugThroughGateway(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Minute)
	defer cancel()
	c, up := clusterForGateway(t, ctx)
	f := start(t, up, debugPolicy)
	k := c.StartKubelet()
	pod := k.CreatePod("team-x", "shell")
	alice := f.kubeconfig(t, "alice", "a")
	card := gatewaytest.Card(t)
	pii, err := piikeys.Open(ctx, f.js, 1)
	if err != nil {
		t.Fatal(err)
	}

	big := make([]byte, cpBytes(t))
	rand.Read(big)
	files := func(mark string) []cpFile {
		return []cpFile{
			{"plain.txt", []byte("hello from " + mark + "\n")},
			{"big.bin", big},
			{"sub/card-" + card + ".txt", []byte("a file named by a card number\n")},
		}
	}
	write := func(t *testing.T, dir string, fs []cpFile) {
		for _, fl := range fs {
			p := filepath.Join(dir, filepath.FromSlash(fl.rel))
			if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(p, fl.data, 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
	same := func(t *testing.T, where, dir string, fs []cpFile) {
		for _, fl := range fs {
			got, err := os.ReadFile(filepath.Join(dir, filepath.FromSlash(fl.rel)))
			if err != nil || !bytes.Equal(got, fl.data) {
				t.Fatalf("%s: %s: %d bytes (want %d), %v", where, fl.rel, len(got), len(fl.data), err)
			}
		}
	}
	// recorded checks the file operations recorded for the files below
	// top (a directory name only this copy uses) and its session's end.
	recorded := func(t *testing.T, op, top string, fs []cpFile) {
		t.Helper()
		key, err := pii.TenantKey(ctx, "acme")
		if err != nil {
			t.Fatal(err)
		}
		var ops map[string]natstest.Stored
		var end natstest.Stored
		natstest.CheckFor(t, 2*time.Minute, 50*time.Millisecond, func() error {
			all := f.events(t)
			ops, end = map[string]natstest.Stored{}, natstest.Stored{}
			sid := ""
			for _, e := range all {
				if p, _ := e.Payload["path"].(string); e.Event.Type == events.CommandExecuted && e.Payload["kind"] == "cp-"+op && strings.HasPrefix(p, top+"/") {
					ops[strings.TrimPrefix(p, top+"/")], sid = e, e.Event.SessionID
				}
			}
			for _, e := range all {
				if e.Event.SessionID == sid && e.Event.Type == events.SessionEnded {
					end = e
				}
			}
			if len(ops) < len(fs) || end.Event == nil {
				return fmt.Errorf("%d cp-%s records below %s, session ended: %v", len(ops), op, top, end.Event != nil)
			}
			return nil
		})
		for _, fl := range fs {
			var e natstest.Stored
			for p, r := range ops {
				if p == fl.rel || strings.Contains(fl.rel, card) && strings.HasPrefix(p, "sub/card-") {
					e = r
				}
			}
			if e.Event == nil {
				t.Fatalf("no cp-%s record of %s among %v", op, fl.rel, keys(ops))
			}
			p := e.Payload
			if strings.Contains(fmt.Sprint(p), card) {
				t.Errorf("a card number recorded: %v", p)
			}
			if strings.Contains(fl.rel, card) && !strings.Contains(p["path"].(string), "card-[") {
				t.Errorf("path %q: want the card number replaced", p["path"])
			}
			if p["bytes"] != float64(len(fl.data)) || p["hmac"] != gateway.KeyedDigest(key, gateway.FileLabel, fl.data) {
				t.Errorf("%s recorded with %v bytes, hmac %v; want %d, %s", fl.rel, p["bytes"], p["hmac"], len(fl.data), gateway.KeyedDigest(key, gateway.FileLabel, fl.data))
			}
			if p["protocol"] != "kubernetes" || p["operation"] != op || p["statement"] != "cp-"+op+" "+p["path"].(string) || p["command_id"] == nil || p["incomplete"] != nil {
				t.Errorf("record %v", p)
			}
		}
		if n, _ := end.Payload["files"].(float64); int(n) < len(fs) || end.Payload["archive_error"] != nil || end.Payload["exit_status"] != float64(0) {
			t.Errorf("session.ended %v: want files ≥ %d, exit_status 0", end.Payload, len(fs))
		}
	}

	t.Run("debug", func(t *testing.T) { debugThroughGateway(t, ctx, c, f, alice) })

	for _, family := range []struct {
		name string
		env  []string
	}{
		{"websocket", nil},
		{"spdy", []string{"KUBECTL_REMOTE_COMMAND_WEBSOCKETS=false"}},
	} {
		kubectl := func(t *testing.T, args ...string) {
			t.Helper()
			cmd := c.KubectlCmd(ctx, alice, args...)
			cmd.Env = append(cmd.Env, family.env...)
			var o, e strings.Builder
			cmd.Stdout, cmd.Stderr = &o, &e
			if err := cmd.Run(); err != nil {
				var exitErr *exec.ExitError
				errors.As(err, &exitErr)
				t.Fatalf("kubectl %s: %v\nstdout: %s\nstderr: %s", strings.Join(args, " "), err, o.String(), e.String())
			}
		}
		t.Run(family.name+"/to-pod", func(t *testing.T) {
			src := filepath.Join(t.TempDir(), "src")
			fs := files(family.name)
			write(t, src, fs)
			top := "up-" + family.name
			kubectl(t, "cp", src, "team-x/shell:"+top, "-c", "main")
			same(t, "in the pod", pod.Path(top), fs)
			recorded(t, "write", top, fs)
		})
		t.Run(family.name+"/from-pod", func(t *testing.T) {
			top := "down-" + family.name
			fs := files(family.name)
			write(t, pod.Path(top), fs)
			dst := filepath.Join(t.TempDir(), "dst")
			kubectl(t, "cp", "team-x/shell:"+top, dst, "-c", "main")
			same(t, "copied out", dst, fs)
			recorded(t, "read", top, fs)
		})
	}
}

// kubectl debug adds an ephemeral container to a pod; the test kubelet
// does not run ephemeral containers, so the debug is not attached to: what
// is checked is the patch, judged and recorded.
func debugThroughGateway(t *testing.T, ctx context.Context, c *kubetest.Cluster, f *fixture, alice string) {
	admin := func(args ...string) string {
		t.Helper()
		out, err := c.Kubectl(ctx, c.AdminKubeconfig, args...)
		if err != nil {
			t.Fatal(err)
		}
		return strings.TrimSpace(out)
	}
	admin("create", "namespace", "locked-dbg")
	admin("create", "serviceaccount", "default", "-n", "locked-dbg") // no controller manager makes it
	for _, ns := range []string{"team-x", "locked-dbg"} {
		admin("run", "target", "-n", ns, "--image=registry.invalid/auditledger-target:1")
	}
	ephemeral := func(ns string) string {
		return admin("get", "pod", "target", "-n", ns, "-o", "jsonpath={.spec.ephemeralContainers[*].name}")
	}
	if out, err := c.Kubectl(ctx, alice, "debug", "-n", "team-x", "target", "--image=registry.invalid/debugger:1", "-c", "dbg", "--", "sh"); err != nil {
		t.Fatalf("kubectl debug: %v\n%s", err, out)
	}
	if got := ephemeral("team-x"); got != "dbg" {
		t.Fatalf("ephemeral containers %q, want dbg", got)
	}
	e := f.waitFor(t, 1, request(events.CommandExecuted, map[string]string{"verb": "patch", "resource": "pods", "subresource": "ephemeralcontainers",
		"namespace": "team-x", "name": "target", "statement": "patch pods/ephemeralcontainers target -n team-x"}))
	if b := fmt.Sprint(e[0].Payload["body"]); !strings.Contains(b, "dbg") || !strings.Contains(b, "registry.invalid/debugger:1") {
		t.Errorf("recorded body %s: want the debug container", b)
	}

	out, err := c.Kubectl(ctx, alice, "debug", "-n", "locked-dbg", "target", "--image=registry.invalid/debugger:1", "-c", "dbg", "--", "sh")
	if err == nil || !strings.Contains(err.Error(), "no debug containers in locked namespaces") {
		t.Fatalf("kubectl debug in a locked namespace: %v\n%s", err, out)
	}
	if got := ephemeral("locked-dbg"); got != "" {
		t.Fatalf("a denied debug reached the API server: ephemeral containers %q", got)
	}
	f.waitFor(t, 1, request(events.CommandBlocked, map[string]string{"verb": "patch", "subresource": "ephemeralcontainers", "namespace": "locked-dbg",
		"rule": "no-debug-in-locked"}))
}

func keys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	return out
}
