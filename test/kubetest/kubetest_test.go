package kubetest_test

import (
	"github.com/auditledger/auditledger/test/kubetest"

	"bufio"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// The stock kubectl against the stock API server: namespaces and config
// maps (create, get, list, watch), and impersonation as a gateway uses it —
// a service account that may only impersonate, acting for a person whose
// own RBAC bindings decide.
func TestKubectlAgainstAPIServer(t *testing.T) {
	c := kubetest.Start(t)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	admin := c.AdminKubeconfig
	kubectl := func(cfg string, args ...string) string {
		t.Helper()
		out, err := c.Kubectl(ctx, cfg, args...)
		if err != nil {
			t.Fatal(err)
		}
		return strings.TrimSpace(out)
	}
	// can-i answers "no" with exit status 1.
	canI := func(cfg string, args ...string) string {
		t.Helper()
		out, _ := c.Kubectl(ctx, cfg, append([]string{"auth", "can-i"}, args...)...)
		return strings.TrimSpace(out)
	}

	kubectl(admin, "create", "namespace", "audit-test")

	watchCtx, stopWatch := context.WithCancel(ctx)
	watch := c.KubectlCmd(watchCtx, admin, "get", "configmaps", "-n", "audit-test", "--watch", "-o", `jsonpath={.metadata.name}/{.metadata.labels.tier}{"\n"}`)
	var watchErr strings.Builder
	watch.Stderr = &watchErr
	stdout, err := watch.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := watch.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { stopWatch(); watch.Wait() }()
	lines := make(chan string, 16)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
	}()
	expect := func(want string) {
		t.Helper()
		timeout := time.After(2 * time.Minute)
		var seen []string
		for {
			select {
			case l, ok := <-lines:
				if !ok {
					t.Fatalf("watch ended before %q; it printed %q", want, seen)
				}
				if l == want {
					return
				}
				seen = append(seen, l)
			case <-timeout:
				t.Fatalf("watch: no %q; it printed %q", want, seen)
			}
		}
	}

	kubectl(admin, "create", "configmap", "settings", "-n", "audit-test", "--from-literal=mode=strict")
	// Listed or watched, depending on when the watch began; either way the
	// watch is running once it has been seen, so the change below arrives as
	// an event.
	expect("settings/")
	kubectl(admin, "label", "configmap", "settings", "-n", "audit-test", "tier=gold")
	expect("settings/gold")
	if got := kubectl(admin, "get", "configmap", "settings", "-n", "audit-test", "-o", "jsonpath={.data.mode}/{.metadata.labels.tier}"); got != "strict/gold" {
		t.Fatalf("get: %q", got)
	}
	if got := kubectl(admin, "get", "configmaps", "-n", "audit-test", "-o", "name"); got != "configmap/settings" {
		t.Fatalf("list: %q", got)
	}

	// Impersonation by a member of system:masters: alice has no rights
	// until a binding names her, then exactly those of the binding.
	if got := canI(admin, "get", "configmaps", "-n", "audit-test", "--as", "alice"); got != "no" {
		t.Fatalf("alice before binding: %q", got)
	}
	// Roles of their own: the stock view and edit roles are aggregated by
	// the controller manager, which is not running, so they are empty here.
	kubectl(admin, "create", "role", "config-reader", "-n", "audit-test", "--verb=get,list,watch", "--resource=configmaps")
	kubectl(admin, "create", "role", "config-editor", "-n", "audit-test", "--verb=get,list,watch,create,update,patch,delete", "--resource=configmaps")
	kubectl(admin, "create", "rolebinding", "alice-reads", "-n", "audit-test", "--role=config-reader", "--user=alice")
	kubectl(admin, "create", "rolebinding", "team-edits", "-n", "audit-test", "--role=config-editor", "--group=oidc:team-a")

	// The gateway's credential: a service account's token, allowed to
	// impersonate and nothing else, though a group it acts for (oidc:ops)
	// may do everything.
	gw := c.Gateway(ctx, kubetest.GatewayOptions{AllowAll: "oidc:ops"}).Kubeconfig

	if got := canI(gw, "get", "configmaps", "-n", "audit-test"); got != "no" {
		t.Fatalf("gateway itself reads config maps: %q", got)
	}
	if got := canI(gw, "delete", "namespaces", "--as", "dan", "--as-group", "oidc:ops"); got != "yes" {
		t.Fatalf("gateway as dan in oidc:ops, delete namespaces: %q", got)
	}
	if got := canI(gw, "delete", "namespaces", "--as", "alice"); got != "no" {
		t.Fatalf("gateway as alice, delete namespaces: %q", got)
	}
	if got := canI(gw, "get", "configmaps", "-n", "audit-test", "--as", "alice"); got != "yes" {
		t.Fatalf("gateway as alice, get: %q", got)
	}
	if got := canI(gw, "delete", "configmaps", "-n", "audit-test", "--as", "alice"); got != "no" {
		t.Fatalf("gateway as alice, delete: %q", got)
	}
	if got := canI(gw, "delete", "configmaps", "-n", "audit-test", "--as", "bob", "--as-group", "oidc:team-a"); got != "yes" {
		t.Fatalf("gateway as bob in oidc:team-a, delete: %q", got)
	}
	if got := kubectl(gw, "auth", "whoami", "--as", "bob", "--as-group", "oidc:team-a", "--as-uid", "u-123", "-o", "jsonpath={.status.userInfo.username} {.status.userInfo.uid} {.status.userInfo.groups}"); got != `bob u-123 ["oidc:team-a","system:authenticated"]` {
		t.Fatalf("whoami: %q", got)
	}
	if got := kubectl(gw, "get", "configmap", "settings", "-n", "audit-test", "--as", "alice", "-o", "jsonpath={.data.mode}"); got != "strict" {
		t.Fatalf("get as alice: %q", got)
	}
	_, err = c.Kubectl(ctx, gw, "delete", "configmap", "settings", "-n", "audit-test", "--as", "alice")
	if err == nil || !strings.Contains(err.Error(), `User "alice" cannot delete resource "configmaps"`) {
		t.Fatalf("delete as alice: %v", err)
	}
}

// The gateway's role in the tests is the one docs/COMMANDS.md tells an
// operator to give it, to the letter: tests that pass with more rights
// than the documented ones would prove nothing about a real cluster.
func TestGatewayRoleAsDocumented(t *testing.T) {
	doc, err := os.ReadFile(filepath.Join("..", "..", "docs", "COMMANDS.md"))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(doc), "```yaml\n"+kubetest.GatewayRole+"```\n") {
		t.Fatalf("docs/COMMANDS.md does not show the gateway's ClusterRole as kubetest.GatewayRole is:\n%s", kubetest.GatewayRole)
	}
}
