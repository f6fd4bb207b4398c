package console_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/auditledger/auditledger/events"
	"github.com/auditledger/auditledger/internal/oidcdev"
	"github.com/auditledger/auditledger/ledger/bus"
	"github.com/auditledger/auditledger/ledger/bus/emitter"
	"github.com/auditledger/auditledger/services/identity"
	"github.com/auditledger/auditledger/services/kubegateway"
	"github.com/auditledger/auditledger/test/kubetest"
	"github.com/auditledger/auditledger/test/natstest"
)

// recordKubeExec runs a real `kubectl exec` through the Kubernetes
// gateway (the stock kube-apiserver, the test kubelet, kubectl) that
// prints a line and the card number, and returns the exec session's
// events as the gateway published them, and its id.
func recordKubeExec(t *testing.T) (evs [][]byte, id string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 8*time.Minute)
	defer cancel()
	c := kubetest.Start(t)
	gw := c.Gateway(ctx, kubetest.GatewayOptions{AllowAll: "oidc:developers"})

	idp, err := oidcdev.Listen("127.0.0.1:0", oidcdev.Config{Audience: "auditledger-kube", Users: []oidcdev.User{
		{Name: "erin", Secret: "erin-secret", Groups: []string{"developers"}}}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { idp.Close() })
	auth, err := identity.NewOIDC(t.Context(), identity.OIDCConfig{Issuer: idp.Issuer, Audience: "auditledger-kube"})
	if err != nil {
		t.Fatal(err)
	}
	ns := natstest.Start(t)
	_, js := ns.Connect(t)
	if err := bus.EnsureStreams(t.Context(), js, bus.StreamOptions{}); err != nil {
		t.Fatal(err)
	}
	em, err := emitter.New(emitter.Config{JetStream: js, Timeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { em.Close() })
	serving, err := kubegateway.OpenKeys(t.TempDir(), []string{"127.0.0.1", "localhost"})
	if err != nil {
		t.Fatal(err)
	}
	proxy, err := kubegateway.New(kubegateway.Config{Upstream: c.URL, UpstreamCA: c.CAPEM, TokenFile: gw.TokenFile, Serving: serving,
		Auth: auth, Cluster: "test", Emitter: em, Tenant: "acme", StateDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	sctx, scancel := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() { served <- proxy.Serve(sctx, ln) }()
	defer func() {
		scancel()
		if err := <-served; err != nil {
			t.Errorf("the Kubernetes gateway: %v", err)
		}
	}()
	k := c.StartKubelet()
	k.CreatePod("shop", "web-1")
	tok, err := identity.ClientCredentialsToken(t.Context(), idp.Issuer, "erin", "erin-secret")
	if err != nil {
		t.Fatal(err)
	}
	kubeconfig := filepath.Join(t.TempDir(), "kubeconfig")
	os.WriteFile(kubeconfig, []byte(fmt.Sprintf(`apiVersion: v1
kind: Config
clusters:
- name: gw
  cluster:
    server: https://%s
    certificate-authority-data: %s
users:
- name: erin
  user:
    token: %s
contexts:
- name: gw
  context: {cluster: gw, user: erin}
current-context: gw
`, ln.Addr(), base64.StdEncoding.EncodeToString(serving.CAPEM), tok)), 0o600)
	cmd := c.KubectlCmd(ctx, kubeconfig, "exec", "-n", "shop", "web-1", "-c", "main", "--", "sh", "-c", "echo hello from kubectl exec; echo card "+sshSecret)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil || !strings.Contains(out.String(), "hello from kubectl exec") {
		t.Fatalf("kubectl exec through the gateway: %v: %q %s", err, out.String(), errb.String())
	}
	var stored []natstest.Stored
	natstest.CheckFor(t, time.Minute, 20*time.Millisecond, func() error {
		stored = natstest.Events(t, js, bus.EventsStream)
		id = ""
		for _, s := range stored {
			if s.Event.Type == events.SessionStarted && s.Event.Source.Kind == "kube-gateway" && strings.Contains(string(s.Raw), "hello from kubectl exec") {
				id = s.Event.SessionID
			}
		}
		for _, s := range stored {
			if id != "" && s.Event.SessionID == id && s.Event.Type == events.SessionEnded {
				return nil
			}
		}
		return fmt.Errorf("no session.ended of the exec (%d events)", len(stored))
	})
	for _, s := range stored {
		if s.Event.SessionID == id {
			if bytes.Contains(s.Raw, []byte(sshSecret)) {
				t.Fatalf("the gateway recorded the card number in clear: %s", s.Raw)
			}
			evs = append(evs, s.Raw)
		}
	}
	return evs, id
}
