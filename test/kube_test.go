package test

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/auditledger/auditledger/events"
	"github.com/auditledger/auditledger/test/kubetest"
	"github.com/auditledger/auditledger/test/testnet"
)

// TestDevKubeUpstream runs dev in front of a real kube-apiserver (the
// test brings it, with the gateway's service account allowed to
// impersonate): `auditledger kubeconfig` writes the kubeconfig a user
// gets, and the stock kubectl, through the exec plugin `auditledger
// kube-credential`, creates and reads a config map as the dev user, whose
// requests are sealed with their verb and resource.
func TestDevKubeUpstream(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), 6*time.Minute)
	defer cancel()
	c := kubetest.Start(t)
	gw := c.Gateway(ctx, kubetest.GatewayOptions{})
	// The dev user's rights: config maps in team-a, through the group dba.
	c.Create(ctx, `apiVersion: v1
kind: Namespace
metadata: {name: team-a}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata: {name: config-editor, namespace: team-a}
rules:
- {apiGroups: [""], resources: [configmaps], verbs: [get, list, watch, create, update, patch, delete]}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: {name: dba-edits, namespace: team-a}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: Role, name: config-editor}
subjects:
- {apiGroup: rbac.authorization.k8s.io, kind: Group, name: "oidc:dba"}
`)

	ddir := t.TempDir()
	os.Chmod(ddir, 0o711)
	data := filepath.Join(ddir, "data")
	addr := testnet.Addr(t)
	d := startDevAt(t, data, nil, "--kube-upstream", c.URL, "--kube-ca", gw.CAFile, "--kube-token-file", gw.TokenFile, "--proxy-kube", addr)
	waitListening(t, addr)

	kubeconfig := filepath.Join(t.TempDir(), "kubeconfig")
	mustRun(t, nil, nil, "kubeconfig", "--cluster", "dev-kube", "--server", "https://"+addr, "--ca-file", filepath.Join(data, "kube-keys", "ca.crt"),
		"--issuer", d.issuer, "--client-id", "alice", "-o", kubeconfig)
	kc, _ := os.ReadFile(kubeconfig)
	if !bytes.Contains(kc, []byte("certificate-authority-data:")) || bytes.Contains(kc, []byte("insecure-skip-tls-verify")) ||
		!bytes.Contains(kc, []byte("kube-credential")) || bytes.Contains(kc, []byte("alice-dev-secret")) {
		t.Fatalf("kubeconfig:\n%s", kc)
	}
	kubectl := func(args ...string) string {
		t.Helper()
		cmd := c.KubectlCmd(ctx, kubeconfig, args...)
		cmd.Env = append(cmd.Env, "AUDITLEDGER_CLIENT_SECRET=alice-dev-secret")
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("kubectl %v: %v\n%s\n%s", args, err, stderr.String(), d.stderr.String())
		}
		return strings.TrimSpace(string(out))
	}
	kubectl("create", "configmap", "through-dev", "-n", "team-a", "--from-literal=mode=audited")
	if got := kubectl("get", "configmap", "through-dev", "-n", "team-a", "-o", "jsonpath={.data.mode}"); got != "audited" {
		t.Fatalf("get: %q", got)
	}
	if got := c.Admin(ctx, "get", "configmap", "through-dev", "-n", "team-a", "-o", "jsonpath={.data.mode}"); got != "audited" {
		t.Fatalf("the API server holds %q", got)
	}

	evs := d.drainStopAndRead(t)
	found := map[string]bool{}
	for _, e := range evs {
		if e.Event.Type == events.CommandExecuted && e.Event.Source.Kind == "kube-gateway" && e.Event.Actor.Subject == "alice" &&
			e.Payload["resource"] == "configmaps" && e.Payload["namespace"] == "team-a" {
			found[e.Payload["verb"].(string)] = true
		}
	}
	if !found["create"] || !found["get"] {
		t.Errorf("sealed config map requests by verb: %v, want create and get", found)
	}
}
