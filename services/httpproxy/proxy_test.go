package httpproxy_test

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"os/exec"
	"strings"
	"sync"
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
	"github.com/auditledger/auditledger/services/gateway"
	"github.com/auditledger/auditledger/services/httpproxy"
	"github.com/auditledger/auditledger/services/identity"
	"github.com/auditledger/auditledger/test/natstest"
)

const policy = `version: 1
mask:
  - id: pii-email
    version: 2
    fields: ["customers.*.email", "**.contact_email"]
    method: partial
    info_type: EMAIL_ADDRESS
  - id: cards
    detect: [credit_card]
    method: redact
    info_type: CREDIT_CARD_NUMBER
deny:
  - id: no-admin-deletes
    methods: [DELETE]
    paths: ["/admin/**"]
    reason: deletions under /admin need a change ticket
approve:
  - id: deploys
    methods: [POST]
    paths: ["/api/deploy*"]
    groups: [developers]
    timeout: 2m
    reason: production deploys need a second person
`

const customers = `{"customers":[{"id":1,"email":"ann@example.com","card":"4111 1111 1111 1111","note":"vip"},` +
	`{"id":2,"email":"ben@example.com","card":"none","profile":{"contact_email":"ben@work.example"}}],"total":2}`

// upstream is a real HTTP service that remembers what reached it.
type upstream struct {
	srv  *httptest.Server
	hits atomic.Int64
	mu   sync.Mutex
	seen []seen
}

type seen struct {
	method, uri, auth, body string
}

func startUpstream(t *testing.T) *upstream {
	u := &upstream{}
	u.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		u.hits.Add(1)
		b, _ := io.ReadAll(r.Body)
		u.mu.Lock()
		u.seen = append(u.seen, seen{r.Method, r.RequestURI, r.Header.Get("Authorization"), string(b)})
		u.mu.Unlock()
		switch r.URL.Path {
		case "/api/customers":
			w.Header().Set("Content-Type", "application/json")
			io.WriteString(w, customers)
		case "/api/stream": // a response that never ends, one line a tick
			w.Header().Set("Content-Type", "text/plain")
			for {
				if _, err := io.WriteString(w, "tick\n"); err != nil {
					return
				}
				w.(http.Flusher).Flush()
				select {
				case <-r.Context().Done():
					return
				case <-time.After(20 * time.Millisecond):
				}
			}
		case "/api/broken":
			w.Header().Set("Content-Type", "application/json")
			io.WriteString(w, `{"email": "leak@example.com", `) // truncated JSON
		default:
			w.Header().Set("Content-Type", "text/plain")
			io.WriteString(w, "ok "+r.Method+" "+r.URL.Path+"\n")
		}
	}))
	t.Cleanup(u.srv.Close)
	return u
}

type fixture struct {
	up     *upstream
	proxy  *httptest.Server
	js     jetstream.JetStream
	nats   *natstest.Server
	broker *approvals.Broker
	verify *identity.OIDC
	tokens map[string]string
	keys   *piikeys.Store // the proxy's personal-data keys
	issuer string
}

// bodyHMAC is a body's keyed digest under tenant acme's search key.
func (f *fixture) bodyHMAC(t *testing.T, body string) string {
	t.Helper()
	return f.keyed(t, gateway.BodyLabel, body)
}

// keyed is KeyedDigest under tenant acme's search key.
func (f *fixture) keyed(t *testing.T, label, content string) string {
	t.Helper()
	key, err := f.keys.TenantKey(t.Context(), "acme")
	if err != nil {
		t.Fatal(err)
	}
	return gateway.KeyedDigest(key, label, []byte(content))
}

func start(t *testing.T) *fixture { return startFor(t, startUpstream(t), policy) }

// startFor runs the proxy in front of up with the policy text.
func startFor(t *testing.T, up *upstream, policyText string) *fixture {
	t.Helper()
	return startWith(t, up, policyText, nil)
}

// startWith is startFor with a last say on the proxy's configuration
// (given the fixture's bus and emitter).
func startWith(t *testing.T, up *upstream, policyText string, configure func(*httpproxy.Config, jetstream.JetStream, *emitter.Emitter)) *fixture {
	t.Helper()
	idp, err := oidcdev.Listen("127.0.0.1:0", oidcdev.Config{Audience: "auditledger", Users: []oidcdev.User{
		{Name: "alice", Secret: "a", Email: "alice@example.com", Groups: []string{"developers"}},
		{Name: "bob", Secret: "b", Groups: []string{"approver"}},
	}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { idp.Close() })
	v, err := identity.NewOIDC(t.Context(), identity.OIDCConfig{Issuer: idp.Issuer, Audience: "auditledger"})
	if err != nil {
		t.Fatal(err)
	}
	f := &fixture{up: up, verify: v, tokens: map[string]string{}, issuer: idp.Issuer}
	f.nats = natstest.Start(t)
	_, f.js = f.nats.Connect(t, nats.MaxReconnects(-1))
	if err := bus.EnsureStreams(t.Context(), f.js, bus.StreamOptions{}); err != nil {
		t.Fatal(err)
	}
	em, err := emitter.New(emitter.Config{JetStream: f.js, Timeout: time.Second, Retries: 1})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { em.Close() })
	if f.broker, err = approvals.New(t.Context(), approvals.Config{JetStream: f.js, Create: true, Signer: ledgertest.Signer(t, "api.test/approvals"), Emitter: em, Source: events.Source{Kind: "api", Instance: "t"}}); err != nil {
		t.Fatal(err)
	}
	pol, err := httpproxy.ParsePolicy("policy.yaml", []byte(policyText))
	if err != nil {
		t.Fatal(err)
	}
	if f.keys, err = piikeys.Open(t.Context(), f.js, 1); err != nil {
		t.Fatal(err)
	}
	cfg := httpproxy.Config{Upstream: f.up.srv.URL, UpstreamHeaders: http.Header{"Authorization": {"Bearer upstream-service-token"}},
		Auth: v, Emitter: em, Tenant: "acme", Target: "orders-api", Policy: pol, Approvals: f.broker, Keys: f.keys}
	if configure != nil {
		configure(&cfg, f.js, em)
	}
	p, err := httpproxy.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	f.proxy = httptest.NewUnstartedServer(p)
	f.proxy.Config.ConnContext, f.proxy.Config.ConnState = p.ConnContext, p.ConnState // as health.Serve sets them
	f.proxy.Start()
	t.Cleanup(f.proxy.Close)
	for u, s := range map[string]string{"alice": "a", "bob": "b"} {
		if f.tokens[u], err = identity.ClientCredentialsToken(t.Context(), idp.Issuer, u, s); err != nil {
			t.Fatal(err)
		}
	}
	return f
}

func (f *fixture) do(t *testing.T, user, method, path, body string) (int, string) {
	t.Helper()
	req, _ := http.NewRequest(method, f.proxy.URL+path, strings.NewReader(body))
	if user != "" {
		req.Header.Set("Authorization", "Bearer "+f.tokens[user])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

type recorded struct {
	ev      *events.Event
	raw     string
	payload map[string]any
}

func (f *fixture) events(t *testing.T) []recorded {
	t.Helper()
	var out []recorded
	for _, st := range natstest.Events(t, f.js, "") {
		out = append(out, recorded{st.Event, string(st.Raw), st.Payload})
	}
	return out
}

// waitFor polls until the stream holds n events of type typ.
func (f *fixture) waitFor(t *testing.T, typ events.Type, n int) []recorded {
	t.Helper()
	var got []recorded
	natstest.CheckFor(t, 10*time.Second, 20*time.Millisecond, func() error {
		got = nil
		for _, r := range f.events(t) {
			if r.ev.Type == typ {
				got = append(got, r)
			}
		}
		if len(got) != n {
			return errors.New("not yet")
		}
		return nil
	})
	return got
}

func TestRecordingAndMaskingWithCurl(t *testing.T) {
	f := start(t)
	// curl, as a user would run it; the token in a header file keeps it
	// off the command line.
	out, err := exec.Command("curl", "-sS", "--fail-with-body", "-H", "Authorization: Bearer "+f.tokens["alice"],
		f.proxy.URL+"/api/customers?limit=2&sort=id").Output()
	if err != nil {
		t.Fatalf("curl: %v\n%s", err, out)
	}
	want := `{"customers":[{"id":1,"email":"a***@example.com","card":"[REDACTED]","note":"vip"},` +
		`{"id":2,"email":"b***@example.com","card":"none","profile":{"contact_email":"b***@work.example"}}],"total":2}`
	if string(out) != want {
		t.Fatalf("curl got\n%s\nwant\n%s", out, want)
	}
	f.up.mu.Lock()
	got := f.up.seen[0]
	f.up.mu.Unlock()
	if got.auth != "Bearer upstream-service-token" || got.uri != "/api/customers?limit=2&sort=id" {
		t.Errorf("upstream saw %+v: want the proxy's credentials, never the client's token", got)
	}

	digest := f.waitFor(t, events.ResponseDigest, 1)[0]
	// Keyed (docs/FORMAT.md §1.5): a response may hold personal data,
	// and an unkeyed digest of a short one can be guessed back.
	wantSum := f.keyed(t, gateway.ResponseLabel, string(out))
	if digest.payload["hmac"] != wantSum || digest.payload["sha256"] != nil || digest.payload["bytes"].(float64) != float64(len(out)) || digest.payload["status"].(float64) != 200 {
		t.Errorf("response.digest %v does not describe what curl received (%d bytes, %s)", digest.payload, len(out), wantSum)
	}
	unkeyed := sha256.Sum256(out)
	for _, r := range f.events(t) {
		if strings.Contains(r.raw, hex.EncodeToString(unkeyed[:])) {
			t.Errorf("event %s holds the unkeyed SHA-256 of the response", r.ev.ID)
		}
	}
	masks := map[string]float64{}
	for _, r := range f.waitFor(t, events.MaskApplied, 3) {
		masks[r.payload["rule_id"].(string)+" "+r.payload["field"].(string)] = r.payload["count"].(float64)
	}
	if masks["pii-email customers.*.email"] != 2 || masks["cards customers.*.card"] != 1 || masks["pii-email customers.*.profile.contact_email"] != 1 {
		t.Errorf("mask.applied: %v", masks)
	}
	for _, r := range f.events(t) {
		for _, secret := range []string{"ann@example.com", "ben@example.com", "ben@work.example", "4111 1111 1111 1111", f.tokens["alice"]} {
			if strings.Contains(r.raw, secret) {
				t.Errorf("event %s contains %q", r.ev.Type, secret)
			}
		}
		// Every event of the exchange is alice's; policy.loaded is the
		// proxy's own, before it served anyone.
		// Her e-mail is sealed under her key (FORMAT §1.6), never in clear.
		if r.ev.Type != events.PolicyLoaded {
			email, err := f.keys.Unseal(t.Context(), "acme", "actor.email", r.ev.Actor.Email)
			if r.ev.Actor.Subject != "alice" || err != nil || email != "alice@example.com" {
				t.Errorf("event %s actor %+v: e-mail %q, %v", r.ev.Type, r.ev.Actor, email, err)
			}
		}
	}
	cmd := f.waitFor(t, events.CommandExecuted, 1)[0].payload
	if cmd["method"] != "GET" || cmd["path"] != "/api/customers" || cmd["query"] != "limit=2&sort=id" {
		t.Errorf("command.executed %v", cmd)
	}
}

func TestAuthenticationAndDeny(t *testing.T) {
	f := start(t)
	if code, body := f.do(t, "", "GET", "/api/customers", ""); code != 401 || !strings.Contains(body, "Authorization: Bearer") {
		t.Errorf("no token: %d %s", code, body)
	}
	f.tokens["forged"] = f.tokens["alice"][:len(f.tokens["alice"])-4] + "AAAA"
	if code, body := f.do(t, "forged", "GET", "/api/customers", ""); code != 401 || !strings.Contains(body, "token refused") {
		t.Errorf("forged token: %d %s", code, body)
	}
	if code, body := f.do(t, "alice", "DELETE", "/admin/users/7", ""); code != 403 || !strings.Contains(body, "blocked by policy rule no-admin-deletes") {
		t.Errorf("denied: %d %s", code, body)
	}
	if code, _ := f.do(t, "alice", "GET", "/admin/users/7", ""); code != 200 {
		t.Errorf("GET under /admin is not denied, got %d", code)
	}
	if n := f.up.hits.Load(); n != 1 {
		t.Errorf("upstream hit %d times, want once (only the allowed GET)", n)
	}
	f.waitFor(t, events.AuthnFailed, 2)
	blocked := f.waitFor(t, events.CommandBlocked, 1)[0]
	if blocked.payload["rule"] != "no-admin-deletes" || blocked.payload["method"] != "DELETE" {
		t.Errorf("command.blocked %v", blocked.payload)
	}
}

func TestUnmaskableResponseWithheld(t *testing.T) {
	f := start(t)
	code, body := f.do(t, "alice", "GET", "/api/broken", "")
	if code != 502 || strings.Contains(body, "leak@example.com") || !strings.Contains(body, "could not be masked") {
		t.Fatalf("truncated JSON: %d %s", code, body)
	}
	d := f.waitFor(t, events.ResponseDigest, 1)[0]
	if d.payload["status"].(float64) != 502 {
		t.Errorf("digest %v", d.payload)
	}
}

func TestFailClosedWithoutTheBus(t *testing.T) {
	f := start(t)
	f.nats.Shutdown()
	code, body := f.do(t, "alice", "GET", "/api/customers", "")
	if code != 503 || !strings.Contains(body, "fails closed") {
		t.Fatalf("bus down: %d %s", code, body)
	}
	if n := f.up.hits.Load(); n != 0 {
		t.Errorf("upstream hit %d times with the bus down", n)
	}
}

func TestApprovalBindsMethodPathAndBody(t *testing.T) {
	f := start(t)
	type answer struct {
		code int
		body string
	}
	send := func(body string) chan answer {
		ch := make(chan answer, 1)
		go func() {
			c, b := f.do(t, "alice", "POST", "/api/deploy?env=prod", body)
			ch <- answer{c, b}
		}()
		return ch
	}
	pendingFor := func(body string) *approvals.Request {
		want := approvals.Digest(approvals.HTTPStatement("POST", "/api/deploy?env=prod", nil, f.bodyHMAC(t, body)))
		var found *approvals.Request
		natstest.CheckFor(t, 10*time.Second, 20*time.Millisecond, func() error {
			list, err := f.broker.List(t.Context(), approvals.Pending)
			if err != nil {
				return err
			}
			for _, r := range list {
				if r.StatementSHA256 == want {
					found = r
					return nil
				}
			}
			return errors.New("not held yet")
		})
		return found
	}
	v2 := send(`{"version":2}`)
	r2 := pendingFor(`{"version":2}`)
	v3 := send(`{"version":3}`)
	r3 := pendingFor(`{"version":3}`)
	if r2.ID == r3.ID {
		t.Fatal("two bodies share an approval")
	}
	if n := f.up.hits.Load(); n != 0 {
		t.Fatalf("held requests reached the upstream (%d)", n)
	}
	bob, err := f.verify.Authenticate(t.Context(), "", f.tokens["bob"])
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.broker.Decide(t.Context(), r2.ID, bob, true, "release 2"); err != nil {
		t.Fatal(err)
	}
	if a := <-v2; a.code != 200 {
		t.Fatalf("approved request: %d %s", a.code, a.body)
	}
	if _, err := f.broker.Decide(t.Context(), r3.ID, bob, false, "one deploy at a time"); err != nil {
		t.Fatal(err)
	}
	if a := <-v3; a.code != 403 || !strings.Contains(a.body, "denied by bob: one deploy at a time") {
		t.Fatalf("denied request: %d %s", a.code, a.body)
	}
	f.up.mu.Lock()
	seen := f.up.seen
	f.up.mu.Unlock()
	if len(seen) != 1 || seen[0].body != `{"version":2}` {
		t.Fatalf("upstream saw %+v, want only the approved body", seen)
	}
	// A GET by the same user is not held: the rule is for POST.
	if code, _ := f.do(t, "alice", "GET", "/api/deploy?env=prod", ""); code != 200 {
		t.Errorf("GET: %d", code)
	}
}
