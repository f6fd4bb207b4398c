package kubegateway_test

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/auditledger/auditledger/events"
	"github.com/auditledger/auditledger/internal/oidcdev"
	"github.com/auditledger/auditledger/ledger/bus"
	"github.com/auditledger/auditledger/ledger/bus/emitter"
	"github.com/auditledger/auditledger/ledger/ledgertest"
	"github.com/auditledger/auditledger/ledger/piikeys"
	"github.com/auditledger/auditledger/services/approvals"
	"github.com/auditledger/auditledger/services/gateway/gatewaytest"
	"github.com/auditledger/auditledger/services/identity"
	"github.com/auditledger/auditledger/services/kubegateway"
	"github.com/auditledger/auditledger/test/kubetest"
	"github.com/auditledger/auditledger/test/natstest"
)

const testPolicy = `version: 2
deny:
  - id: keep-namespaces
    verbs: [delete, deletecollection]
    resources: [namespaces]
    reason: namespaces are deleted through the change process
  - id: protected-config
    verbs: [delete]
    resources: [configmaps]
    names: ["protected-*"]
    reason: protected configuration stays
approve:
  - id: role-bindings
    verbs: [create]
    api_groups: [rbac.authorization.k8s.io]
    resources: [rolebindings]
    reason: bindings need a second person
allow:
  - id: sre-secrets
    resources: [secrets]
    exempt: {outside_groups: [sre]}
`

// fixture is the gateway in front of an upstream, with its bus, identity
// provider and approvals.
type fixture struct {
	js      jetstream.JetStream
	pii     *piikeys.Store // the gateway's key store: bulk pieces open with it
	proxy   *kubegateway.Proxy
	serving *kubegateway.ServingCert
	url     string // https://127.0.0.1:PORT of the gateway
	issuer  string
	broker  *approvals.Broker
}

// upstream is what the gateway talks to and how.
type upstream struct {
	url       string
	ca        []byte
	tokenFile string
}

func start(t *testing.T, up upstream, policy string) *fixture {
	t.Helper()
	return startWith(t, up, policy, nil)
}

// startWith is start; with, if set, completes the gateway's
// configuration on the fixture's bus before it is made.
func startWith(t *testing.T, up upstream, policy string, with func(f *fixture, em *emitter.Emitter, cfg *kubegateway.Config)) *fixture {
	t.Helper()
	f := &fixture{}
	idp, err := oidcdev.Listen("127.0.0.1:0", oidcdev.Config{Audience: "auditledger-kube", Users: []oidcdev.User{
		{Name: "alice", Secret: "a", Email: "alice@example.com", Groups: []string{"developers", "system:masters"}},
		{Name: "carol", Secret: "c", Groups: []string{"developers", "sre"}},
	}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { idp.Close() })
	f.issuer = idp.Issuer
	auth, err := identity.NewOIDC(t.Context(), identity.OIDCConfig{Issuer: idp.Issuer, Audience: "auditledger-kube"})
	if err != nil {
		t.Fatal(err)
	}
	ns := natstest.Start(t)
	_, f.js = ns.Connect(t, nats.MaxReconnects(-1))
	if err := bus.EnsureStreams(t.Context(), f.js, bus.StreamOptions{}); err != nil {
		t.Fatal(err)
	}
	em, err := emitter.New(emitter.Config{JetStream: f.js, Timeout: 5 * time.Second, Retries: 1})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { em.Close() })
	f.broker, err = approvals.New(t.Context(), approvals.Config{JetStream: f.js, Create: true, Signer: ledgertest.Signer(t, "api.test/approvals"),
		Emitter: em, Source: events.Source{Kind: "api", Instance: "t"}})
	if err != nil {
		t.Fatal(err)
	}
	pii, err := piikeys.Open(t.Context(), f.js, 1)
	if err != nil {
		t.Fatal(err)
	}
	f.pii = pii
	if f.serving, err = kubegateway.OpenKeys(t.TempDir(), []string{"127.0.0.1", "localhost"}); err != nil {
		t.Fatal(err)
	}
	var pol *kubegateway.Policy
	if policy != "" {
		file := filepath.Join(t.TempDir(), "policy.yaml")
		os.WriteFile(file, []byte(policy), 0o644)
		if pol, err = kubegateway.LoadPolicy(file); err != nil {
			t.Fatal(err)
		}
	}
	cfg := kubegateway.Config{Upstream: up.url, UpstreamCA: up.ca, TokenFile: up.tokenFile, Serving: f.serving,
		Auth: auth, Cluster: "test", Policy: pol, Emitter: em, Tenant: "acme", Approvals: f.broker, PII: pii, StateDir: t.TempDir()}
	if with != nil {
		with(f, em, &cfg)
	}
	f.proxy, err = kubegateway.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	f.url = "https://" + ln.Addr().String()
	ctx, cancel := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() { served <- f.proxy.Serve(ctx, ln) }()
	t.Cleanup(func() {
		cancel()
		if err := <-served; err != nil {
			t.Errorf("Serve: %v", err)
		}
	})
	return f
}

func (f *fixture) token(t *testing.T, user, secret string) string {
	t.Helper()
	tok, err := identity.ClientCredentialsToken(t.Context(), f.issuer, user, secret)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// kubeconfig writes a kubeconfig for the gateway that presents user's
// token.
func (f *fixture) kubeconfig(t *testing.T, user, secret string) string {
	t.Helper()
	cfg := fmt.Sprintf(`apiVersion: v1
kind: Config
clusters:
- name: gw
  cluster:
    server: %s
    certificate-authority-data: %s
users:
- name: %s
  user:
    token: %s
contexts:
- name: gw
  context: {cluster: gw, user: %s}
current-context: gw
`, f.url, base64.StdEncoding.EncodeToString(f.serving.CAPEM), user, f.token(t, user, secret), user)
	file := filepath.Join(t.TempDir(), "kubeconfig")
	if err := os.WriteFile(file, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	return file
}

// client is an HTTP client that trusts the gateway.
func (f *fixture) client() *http.Client {
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(f.serving.CAPEM)
	return &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
}

func (f *fixture) events(t *testing.T) []natstest.Stored { return natstest.Events(t, f.js, "") }

// waitFor polls until the bus holds n events ok accepts.
func (f *fixture) waitFor(t *testing.T, n int, ok func(natstest.Stored) bool) []natstest.Stored {
	t.Helper()
	var got []natstest.Stored
	natstest.CheckFor(t, 2*time.Minute, 20*time.Millisecond, func() error {
		got = nil
		for _, e := range f.events(t) {
			if ok(e) {
				got = append(got, e)
			}
		}
		if len(got) < n {
			return fmt.Errorf("%d of %d events", len(got), n)
		}
		return nil
	})
	return got
}

// request matches a recorded request of type ty by its payload members.
func request(ty events.Type, members map[string]string) func(natstest.Stored) bool {
	return func(e natstest.Stored) bool {
		if e.Event.Type != ty {
			return false
		}
		for k, v := range members {
			if s, _ := e.Payload[k].(string); s != v {
				return false
			}
		}
		return true
	}
}

// status reads a Kubernetes Status from a response.
func status(t *testing.T, resp *http.Response) map[string]any {
	t.Helper()
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	var st map[string]any
	if err := json.Unmarshal(b, &st); err != nil {
		t.Fatalf("%s: not JSON: %q", resp.Status, b)
	}
	if st["kind"] != "Status" || st["apiVersion"] != "v1" || st["status"] != "Failure" || int(st["code"].(float64)) != resp.StatusCode {
		t.Fatalf("not a Status: %s", b)
	}
	return st
}

// clusterForGateway starts a control plane with the gateway's service
// account (allowed to impersonate, nothing else) and a role that lets the
// identity provider's developers do anything, so that only the gateway's
// policy stands between them and the cluster.
func clusterForGateway(t *testing.T, ctx context.Context) (*kubetest.Cluster, upstream) {
	t.Helper()
	c := kubetest.Start(t)
	gw := c.Gateway(ctx, kubetest.GatewayOptions{AllowAll: "oidc:developers"})
	return c, upstream{url: c.URL, ca: c.CAPEM, tokenFile: gw.TokenFile}
}

// The stock kubectl through the gateway to the stock kube-apiserver: each
// request recorded with its verb and resource, watches as a session of
// their own, denied requests never reaching the API server, client
// impersonation refused, secrets unreadable without a rule and their
// values never on the bus, and a held request run once after its
// approval.
func TestKubectlThroughGateway(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), 8*time.Minute)
	defer cancel()
	c, up := clusterForGateway(t, ctx)
	f := start(t, up, testPolicy)
	alice := f.kubeconfig(t, "alice", "a")
	carol := f.kubeconfig(t, "carol", "c")
	kubectl := func(cfg string, args ...string) string {
		t.Helper()
		out, err := c.Kubectl(ctx, cfg, args...)
		if err != nil {
			t.Fatal(err)
		}
		return strings.TrimSpace(out)
	}
	refused := func(cfg, want string, args ...string) {
		t.Helper()
		_, err := c.Kubectl(ctx, cfg, args...)
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Fatalf("kubectl %v: %v, want an error with %q", args, err, want)
		}
	}
	admin := func(args ...string) (string, error) {
		out, err := c.Kubectl(ctx, c.AdminKubeconfig, args...)
		return strings.TrimSpace(out), err
	}

	// Who the API server sees: the person, with their groups prefixed
	// (the identity provider's system:masters is not the cluster's).
	if got := kubectl(alice, "auth", "whoami", "-o", "jsonpath={.status.userInfo.username} {.status.userInfo.uid} {.status.userInfo.groups}"); got != `oidc:alice alice ["oidc:developers","oidc:system:masters","system:authenticated"]` {
		t.Fatalf("whoami: %q", got)
	}

	kubectl(alice, "create", "namespace", "team-a")
	f.waitFor(t, 1, request(events.CommandExecuted, map[string]string{"verb": "create", "resource": "namespaces", "name": ""}))

	manifest := filepath.Join(t.TempDir(), "cm.yaml")
	os.WriteFile(manifest, []byte("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: settings, namespace: team-a}\ndata: {mode: strict}\n---\napiVersion: v1\nkind: ConfigMap\nmetadata: {name: protected-root, namespace: team-a}\ndata: {mode: keep}\n"), 0o600)
	kubectl(alice, "apply", "-f", manifest)
	created := f.waitFor(t, 2, request(events.CommandExecuted, map[string]string{"verb": "create", "resource": "configmaps", "namespace": "team-a", "api_version": "v1"}))
	if b, _ := created[0].Payload["body"].(map[string]any); b == nil || b["kind"] != "ConfigMap" {
		t.Errorf("apply's create recorded without its body: %v", created[0].Payload)
	}

	// Watch: a session of its own, started, digested and ended.
	watchCtx, stopWatch := context.WithCancel(ctx)
	watch := c.KubectlCmd(watchCtx, alice, "get", "configmaps", "-n", "team-a", "--watch", "-o", "name")
	stdout, _ := watch.StdoutPipe()
	if err := watch.Start(); err != nil {
		t.Fatal(err)
	}
	seen := make(chan string, 16)
	go func() {
		b := make([]byte, 4096)
		for {
			n, err := stdout.Read(b)
			if n > 0 {
				seen <- string(b[:n])
			}
			if err != nil {
				close(seen)
				return
			}
		}
	}()
	f.waitFor(t, 1, request(events.CommandExecuted, map[string]string{"verb": "watch", "resource": "configmaps", "namespace": "team-a"}))
	kubectl(alice, "label", "configmap", "settings", "-n", "team-a", "tier=gold")
	f.waitFor(t, 1, request(events.CommandExecuted, map[string]string{"verb": "patch", "resource": "configmaps", "name": "settings"}))
	stopWatch()
	watch.Wait()
	started := f.waitFor(t, 1, request(events.SessionStarted, map[string]string{"kind": "watch"}))
	sid := started[0].Event.SessionID
	ended := f.waitFor(t, 1, func(e natstest.Stored) bool { return e.Event.Type == events.SessionEnded && e.Event.SessionID == sid })
	digests := f.waitFor(t, 1, func(e natstest.Stored) bool { return e.Event.Type == events.ResponseDigest && e.Event.SessionID == sid })
	if h, _ := digests[0].Payload["hmac"].(string); !strings.HasPrefix(h, "hmac:") || ended[0].Payload["reason"] == "" {
		t.Errorf("watch: digest %v, end %v", digests[0].Payload, ended[0].Payload)
	}

	if got := kubectl(alice, "get", "configmap", "settings", "-n", "team-a", "-o", "jsonpath={.data.mode}/{.metadata.labels.tier}"); got != "strict/gold" {
		t.Fatalf("get: %q", got)
	}
	f.waitFor(t, 1, request(events.CommandExecuted, map[string]string{"verb": "get", "resource": "configmaps", "name": "settings"}))
	kubectl(alice, "get", "configmaps", "-n", "team-a")
	f.waitFor(t, 1, request(events.CommandExecuted, map[string]string{"verb": "list", "resource": "configmaps", "namespace": "team-a"}))
	f.waitFor(t, 1, request(events.ResponseDigest, map[string]string{}))

	// Denied: recorded, refused with the rule, never at the API server.
	refused(alice, "blocked by policy rule protected-config", "delete", "configmap", "protected-root", "-n", "team-a")
	if _, err := admin("get", "configmap", "protected-root", "-n", "team-a"); err != nil {
		t.Fatalf("the denied delete reached the API server: %v", err)
	}
	refused(alice, "blocked by policy rule keep-namespaces", "delete", "namespace", "team-a")
	if out, err := admin("get", "namespace", "team-a", "-o", "jsonpath={.status.phase}"); err != nil || out != "Active" {
		t.Fatalf("the denied namespace delete reached the API server: %q %v", out, err)
	}
	blocked := f.waitFor(t, 2, request(events.CommandBlocked, map[string]string{"verb": "delete"}))
	for _, b := range blocked {
		if b.Payload["rule"] != "protected-config" && b.Payload["rule"] != "keep-namespaces" {
			t.Errorf("command.blocked %v", b.Payload)
		}
	}
	kubectl(alice, "delete", "configmap", "settings", "-n", "team-a")
	f.waitFor(t, 1, request(events.CommandExecuted, map[string]string{"verb": "delete", "resource": "configmaps", "name": "settings"}))

	// Client impersonation: refused, recorded, never at the API server.
	refused(alice, "refuses client impersonation", "create", "configmap", "as-someone", "-n", "team-a", "--as", "carol")
	if _, err := admin("get", "configmap", "as-someone", "-n", "team-a"); err == nil || !strings.Contains(err.Error(), "NotFound") {
		t.Fatalf("the impersonated create reached the API server: %v", err)
	}
	imp := f.waitFor(t, 1, func(e natstest.Stored) bool {
		return e.Event.Type == events.CommandBlocked && e.Payload["impersonate_headers"] != nil
	})
	if imp[0].Payload["verb"] != "create" || imp[0].Payload["resource"] != "configmaps" {
		t.Errorf("impersonation recorded as %v", imp[0].Payload)
	}
	req, _ := http.NewRequest("GET", f.url+"/api/v1/namespaces/team-a/configmaps", nil)
	req.Header.Set("Authorization", "Bearer "+f.token(t, "alice", "a"))
	req.Header.Set("Impersonate-Group", "system:masters")
	resp, err := f.client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	if st := status(t, resp); resp.StatusCode != 403 || st["reason"] != "Forbidden" {
		t.Fatalf("impersonation: %s %v", resp.Status, st)
	}

	// Secrets: created by anyone, read only by the sre group; values
	// never recorded, nor their copy in last-applied-configuration.
	const value, applied = "hunter2-Correct-Horse-17", "Battery-Staple-apply-42"
	kubectl(alice, "create", "secret", "generic", "db", "-n", "team-a", "--from-literal=password="+value)
	refused(alice, "no policy rule lets this requester read secrets", "get", "secret", "db", "-n", "team-a")
	if got := kubectl(carol, "get", "secret", "db", "-n", "team-a", "-o", "jsonpath={.data.password}"); got != base64.StdEncoding.EncodeToString([]byte(value)) {
		t.Fatalf("carol reads the secret: %q", got)
	}
	secretYAML := filepath.Join(t.TempDir(), "secret.yaml")
	os.WriteFile(secretYAML, []byte("apiVersion: v1\nkind: Secret\nmetadata: {name: api, namespace: team-a}\nstringData: {key: "+applied+"}\n"), 0o600)
	kubectl(carol, "apply", "-f", secretYAML)
	kubectl(carol, "patch", "secret", "api", "-n", "team-a", "-p", `{"stringData":{"key":"`+applied+`-2"}}`)
	f.waitFor(t, 1, request(events.CommandExecuted, map[string]string{"verb": "patch", "resource": "secrets", "name": "api"}))
	f.waitFor(t, 1, request(events.CommandBlocked, map[string]string{"verb": "get", "resource": "secrets", "name": "db"}))
	stored := gatewaytest.BusBytes(t, f.js)
	gatewaytest.CheckAbsent(t, stored, value, applied, base64.StdEncoding.EncodeToString([]byte(value)), base64.StdEncoding.EncodeToString([]byte(applied)))

	// Held: the binding is created once, after the approval.
	kubectl(alice, "create", "role", "reader", "-n", "team-a", "--verb=get", "--resource=configmaps")
	done := make(chan error, 1)
	go func() {
		_, err := c.Kubectl(ctx, alice, "create", "rolebinding", "readers", "-n", "team-a", "--role=reader", "--group=oidc:readers")
		done <- err
	}()
	held := f.waitFor(t, 1, request(events.ApprovalRequested, map[string]string{}))
	if _, err := admin("get", "rolebinding", "readers", "-n", "team-a"); err == nil {
		t.Fatal("the held request reached the API server before its approval")
	}
	if _, err := f.broker.Decide(ctx, held[0].Payload["approval_id"].(string), events.Actor{Issuer: "test", Subject: "bob", Kind: events.Human}, true, "ok"); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Fatalf("held request after the grant: %v", err)
	}
	if _, err := admin("get", "rolebinding", "readers", "-n", "team-a"); err != nil {
		t.Fatalf("the granted request did not run: %v", err)
	}
	f.waitFor(t, 1, request(events.CommandExecuted, map[string]string{"verb": "create", "resource": "rolebindings", "rule": "role-bindings"}))

	// An upgraded stream the gateway does not relay (a pod proxy's) is
	// refused with a Status.
	req, _ = http.NewRequest("GET", f.url+"/api/v1/namespaces/team-a/pods/web/proxy/", nil)
	req.Header.Set("Authorization", "Bearer "+f.token(t, "alice", "a"))
	req.Header.Set("Connection", "Upgrade")
	req.Header.Set("Upgrade", "websocket")
	resp, err = f.client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	if st := status(t, resp); resp.StatusCode != http.StatusNotImplemented || !strings.Contains(st["message"].(string), "does not relay") {
		t.Fatalf("upgraded pod proxy: %s %v", resp.Status, st)
	}
	f.waitFor(t, 1, request(events.CommandBlocked, map[string]string{"resource": "pods", "subresource": "proxy"}))
}

// An API server whose certificate does not verify against the configured
// CA is never sent a request: the client gets a Status naming why.
func TestUpstreamCertificateRefused(t *testing.T) {
	var reached atomic.Int32
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { reached.Add(1) }))
	defer srv.Close()
	other, err := kubegateway.OpenKeys(t.TempDir(), []string{"127.0.0.1"}) // a CA that did not sign it
	if err != nil {
		t.Fatal(err)
	}
	tokenFile := filepath.Join(t.TempDir(), "token")
	os.WriteFile(tokenFile, []byte("gateway-token"), 0o600)
	f := start(t, upstream{url: srv.URL, ca: other.CAPEM, tokenFile: tokenFile}, "")
	req, _ := http.NewRequest("GET", f.url+"/api/v1/namespaces", nil)
	req.Header.Set("Authorization", "Bearer "+f.token(t, "alice", "a"))
	resp, err := f.client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	st := status(t, resp)
	if resp.StatusCode != http.StatusBadGateway || !strings.Contains(st["message"].(string), "does not verify") || reached.Load() != 0 {
		t.Fatalf("%s %v (upstream reached %d times)", resp.Status, st, reached.Load())
	}
	d := f.waitFor(t, 1, request(events.ResponseDigest, map[string]string{}))
	if d[0].Payload["incomplete"] == nil {
		t.Errorf("response.digest %v", d[0].Payload)
	}

	// No token, or a token the provider did not sign: 401 Status.
	req, _ = http.NewRequest("GET", f.url+"/api/v1/namespaces", nil)
	req.Header.Set("Authorization", "Bearer not-a-token")
	resp, err = f.client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	if st := status(t, resp); resp.StatusCode != 401 || st["reason"] != "Unauthorized" {
		t.Fatalf("bad token: %s %v", resp.Status, st)
	}
	f.waitFor(t, 1, request(events.AuthnFailed, map[string]string{}))
}

// An API server that cannot be reached: a Status, and the request's
// response.digest says why.
func TestUpstreamDown(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close() // nothing listens there now
	ca, err := kubegateway.OpenKeys(t.TempDir(), []string{"127.0.0.1"})
	if err != nil {
		t.Fatal(err)
	}
	tokenFile := filepath.Join(t.TempDir(), "token")
	os.WriteFile(tokenFile, []byte("gateway-token"), 0o600)
	f := start(t, upstream{url: "https://" + addr, ca: ca.CAPEM, tokenFile: tokenFile}, "")
	req, _ := http.NewRequest("GET", f.url+"/api/v1/namespaces/a/configmaps/b", nil)
	req.Header.Set("Authorization", "Bearer "+f.token(t, "carol", "c"))
	resp, err := f.client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	if st := status(t, resp); resp.StatusCode != http.StatusServiceUnavailable || !strings.Contains(st["message"].(string), "cannot be reached") {
		t.Fatalf("%s %v", resp.Status, st)
	}
	f.waitFor(t, 1, request(events.CommandExecuted, map[string]string{"verb": "get", "resource": "configmaps", "namespace": "a", "name": "b"}))
	d := f.waitFor(t, 1, request(events.ResponseDigest, map[string]string{}))
	if int(d[0].Payload["status"].(float64)) != 503 || d[0].Payload["incomplete"] == nil {
		t.Errorf("response.digest %v", d[0].Payload)
	}
}
