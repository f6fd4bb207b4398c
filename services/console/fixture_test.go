package console_test

import (
	"crypto/ed25519"
	"crypto/rand"
	"fmt"
	"io"
	"maps"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/nats-io/nats.go/jetstream"
	"golang.org/x/crypto/ssh"

	"github.com/auditledger/auditledger/events"
	"github.com/auditledger/auditledger/internal/oidcdev"
	"github.com/auditledger/auditledger/ledger"
	"github.com/auditledger/auditledger/ledger/bus"
	"github.com/auditledger/auditledger/ledger/bus/emitter"
	"github.com/auditledger/auditledger/ledger/file"
	"github.com/auditledger/auditledger/ledger/ledgertest"
	"github.com/auditledger/auditledger/projections"
	"github.com/auditledger/auditledger/services/access"
	"github.com/auditledger/auditledger/services/api"
	"github.com/auditledger/auditledger/services/approvals"
	"github.com/auditledger/auditledger/services/console"
	"github.com/auditledger/auditledger/services/identity"
	"github.com/auditledger/auditledger/test/natstest"
	"github.com/auditledger/auditledger/test/pgtest"
)

// bulkEvents is how many statements the load generator ran: more than
// the 10,000 events another console's audit view stops at.
const bulkEvents = 10_500

// fixture: a log holding sessions of every gateway (PostgreSQL with a
// mask, a block and an approval; HTTP; SSH; Kubernetes) in tenant acme,
// one session in tenant globex, and bulkEvents statements of a load
// generator, projected into a real PostgreSQL; the API and the console
// behind one server, with the development provider and its login page.
type fixture struct {
	srv    *httptest.Server
	idp    *oidcdev.Server
	js     jetstream.JetStream
	stream func() []natstest.Stored
	// The approvals broker (the API's, which also awaits as a proxy
	// does), the access broker and the API's token verifier.
	approvals *approvals.Broker
	access    *access.Broker
	auth      identity.Authenticator
	// The log's store and signer (a proof's checks).
	store  *file.Store
	signer *ledger.NoteSigner
	// tamper, when set, makes the server change the inclusion proofs
	// the console serves.
	tamper *atomic.Bool
	// tamperConsistency, the consistency proofs.
	tamperConsistency *atomic.Bool
	// evidenceKey signs the evidence bundles' manifests.
	evidenceKey ssh.PublicKey
	db          *pgxpool.Pool
	log         *ledger.Log
	sealed      int // the bus's events sealBus has sealed
}

// grow appends n events of tenant acme to the log and projects them: a
// new signed checkpoint, larger than the last.
func (f *fixture) grow(t *testing.T, n int) {
	t.Helper()
	var es []ledger.Entry
	for i := range n {
		es = append(es, ledger.Entry{Event: fmt.Appendf(nil, `{"version":1,"id":"grow-%d-%d","type":"command.executed","time":"2026-12-02T10:00:00Z","tenant":"acme","source":{"kind":"postgres-proxy","instance":"gw-3"},"actor":{"issuer":"https://idp.example","subject":"later","kind":"human"},"session_id":"grow","session_seq":%d,"target":{"kind":"postgres","name":"orders"},"payload":{"protocol":"simple","statement":"SELECT %d","kind":"SELECT"}}`,
			time.Now().UnixNano(), i, i+1, i)})
	}
	f.seal(t, es)
}

// seal appends es to the log and projects it, as the writer and the
// projector do.
func (f *fixture) seal(t *testing.T, es []ledger.Entry) {
	t.Helper()
	if _, err := f.log.Append(t.Context(), es); err != nil {
		t.Fatal(err)
	}
	cfg := projections.Config{DB: f.db, Store: f.store, Verifier: f.signer.Verifier()}
	for {
		applied, err := projections.Step(t.Context(), cfg)
		if err != nil {
			t.Fatal(err)
		}
		if !applied {
			return
		}
	}
}

// sealBus appends what the API and the brokers recorded on the bus
// since the last call (each tenant's id once, as the writer keeps it) to
// the log and projects it, as the writer and the projector do.
func (f *fixture) sealBus(t *testing.T) {
	t.Helper()
	var es []ledger.Entry
	seen := map[string]bool{}
	stored := f.stream()
	for _, s := range stored[f.sealed:] {
		if k := s.Event.Tenant + "\x00" + s.Event.ID; !seen[k] {
			seen[k] = true
			es = append(es, ledger.Entry{Event: s.Raw})
		}
	}
	f.sealed = len(stored)
	if len(es) == 0 {
		return
	}
	f.seal(t, es)
}

var users = []oidcdev.User{
	{Name: "carol", Secret: "carol-secret", Email: "carol@example.com", Groups: []string{"auditor", "tenant:acme"}},
	{Name: "alice", Secret: "alice-secret", Groups: []string{"dba", "tenant:acme"}}, // no role that reads
	{Name: "gina", Secret: "gina-secret", Groups: []string{"auditor", "tenant:globex"}},
	{Name: "bob", Secret: "bob-secret", Groups: []string{"approver", "auditor", "dba", "tenant:acme", "target:*"}},
	{Name: "dave", Secret: "dave-secret", Groups: []string{"approver", "dba", "tenant:acme", "target:*"}}, // a reviewer who also asks
	{Name: "sam", Secret: "sam-secret", Groups: []string{"security", "tenant:*"}},                         // security over every tenant
}

// accessRules: access to orders, approved by dba.
const accessRules = `version: 2
access:
  - id: prod
    targets: [orders]
    approvers: {groups: [dba]}
    max_duration: 4h
`

// gatewayEvents are the sessions of every gateway, as their producers
// record them (docs/FORMAT.md §1.1).
func gatewayEvents() []string {
	ev := func(id, typ, tenant, source, actor, target, targetKind, session string, seq int, payload string) string {
		return fmt.Sprintf(`{"version":1,"id":"%s","type":"%s","time":"2026-12-01T10:00:%02dZ","tenant":"%s","source":{"kind":"%s","instance":"gw-1"},"actor":{"issuer":"https://idp.example","subject":"%s","kind":"human"},"session_id":"%s","session_seq":%d,"target":{"kind":"%s","name":"%s"},"payload":%s}`,
			id, typ, seq, tenant, source, actor, session, seq, targetKind, target, payload)
	}
	return []string{
		ev("pg-1", "session.started", "acme", "postgres-proxy", "dave", "orders", "postgres", "pg-s1", 1, `{"protocol":"postgres"}`),
		ev("pg-2", "command.executed", "acme", "postgres-proxy", "dave", "orders", "postgres", "pg-s1", 2, `{"protocol":"simple","statement":"SELECT email, card FROM customers","statement_sha256":"`+strings.Repeat("a", 64)+`","kind":"SELECT"}`),
		ev("pg-3", "mask.applied", "acme", "postgres-proxy", "dave", "orders", "postgres", "pg-s1", 3, `{"rule":"mask-cards","columns":["card"],"statement":"SELECT email, card FROM customers"}`),
		ev("pg-4", "response.digest", "acme", "postgres-proxy", "dave", "orders", "postgres", "pg-s1", 4, `{"rows":2,"bytes":120,"result_hmac":"hmac:`+strings.Repeat("b", 64)+`"}`),
		ev("pg-5", "command.blocked", "acme", "postgres-proxy", "dave", "orders", "postgres", "pg-s1", 5, `{"statement":"DROP TABLE customers","rule":"no-drop","reason":"DDL is not allowed on orders"}`),
		ev("pg-6", "approval.requested", "acme", "postgres-proxy", "dave", "orders", "postgres", "pg-s1", 6, `{"approval_id":"apr-1","rule":"ddl","reason":"schema change","statement":"ALTER TABLE customers ADD note text","statement_sha256":"`+strings.Repeat("c", 64)+`"}`),
		ev("pg-7", "approval.granted", "acme", "postgres-proxy", "bob", "orders", "postgres", "pg-s1", 7, `{"approval_id":"apr-1","rule":"ddl","reason":"CHG-1","statement_sha256":"`+strings.Repeat("c", 64)+`"}`),
		ev("pg-8", "session.ended", "acme", "postgres-proxy", "dave", "orders", "postgres", "pg-s1", 8, `{"reason":"client closed"}`),
		ev("http-1", "command.executed", "acme", "http-proxy", "erin", "billing-api", "http", "http-s1", 1, `{"protocol":"http","method":"GET","path":"/invoices","statement":"GET /invoices"}`),
		ev("ssh-1", "session.started", "acme", "ssh-proxy", "frank", "bastion", "ssh", "ssh-s1", 1, `{"protocol":"ssh","kind":"shell"}`),
		ev("ssh-2", "command.executed", "acme", "ssh-proxy", "frank", "bastion", "ssh", "ssh-s1", 2, `{"protocol":"ssh","kind":"exec","statement":"systemctl restart nginx"}`),
		ev("kube-1", "command.executed", "acme", "kube-gateway", "erin", "prod-cluster", "kubernetes", "kube-s1", 1, `{"protocol":"kubernetes","verb":"delete","statement":"delete pods web-1 -n shop"}`),
		ev("gx-1", "command.executed", "globex", "postgres-proxy", "hank", "ledger", "postgres", "gx-s1", 1, `{"protocol":"simple","statement":"SELECT globex_secret_plan FROM plans","kind":"SELECT"}`),
	}
}

func newFixture(t *testing.T) *fixture { return newFixtureWith(t, nil) }

// newFixtureWith is newFixture with extra events in the log (a session
// a gateway recorded), and the API's configuration changed by each of
// apiCfg.
func newFixtureWith(t *testing.T, extra [][]byte, apiCfg ...func(*api.Config)) *fixture {
	t.Helper()
	pg := pgtest.StartT(t)
	db, err := pgxpool.New(t.Context(), pg.DSN(pg.NewDatabase(t)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(db.Close)
	signer := ledgertest.Signer(t, "console.test/log")
	store, _ := file.New(t.TempDir())
	l, err := ledger.Open(t.Context(), ledger.Config{Store: store, Signer: signer})
	if err != nil {
		t.Fatal(err)
	}
	var es []ledger.Entry
	for _, e := range gatewayEvents() {
		es = append(es, ledger.Entry{Event: []byte(e)})
	}
	for _, e := range extra {
		es = append(es, ledger.Entry{Event: e})
	}
	if _, err := l.Append(t.Context(), es); err != nil {
		t.Fatal(err)
	}
	for n := 0; n < bulkEvents; {
		es = es[:0]
		for ; len(es) < 2000 && n < bulkEvents; n++ {
			es = append(es, ledger.Entry{Event: fmt.Appendf(nil, `{"version":1,"id":"bulk-%d","type":"command.executed","time":"2026-12-01T11:%02d:%02dZ","tenant":"acme","source":{"kind":"postgres-proxy","instance":"gw-2"},"actor":{"issuer":"https://idp.example","subject":"loadgen","kind":"machine"},"session_id":"bulk-%d","session_seq":1,"target":{"kind":"postgres","name":"bulk"},"payload":{"protocol":"simple","statement":"SELECT %d","kind":"SELECT"}}`,
				n, n/60%60, n%60, n/1000, n)})
		}
		if _, err := l.Append(t.Context(), es); err != nil {
			t.Fatal(err)
		}
	}
	if err := projections.Rebuild(t.Context(), projections.Config{DB: db, Store: store, Verifier: signer.Verifier()}, nil); err != nil {
		t.Fatal(err)
	}

	ns := natstest.Start(t)
	_, js := ns.Connect(t)
	if err := bus.EnsureStreams(t.Context(), js, bus.StreamOptions{}); err != nil {
		t.Fatal(err)
	}
	em, _ := emitter.New(emitter.Config{JetStream: js, Timeout: 5 * time.Second})
	t.Cleanup(func() { em.Close() })
	b, err := approvals.New(t.Context(), approvals.Config{JetStream: js, Create: true, Signer: ledgertest.Signer(t, "console.test/approvals"), Emitter: em, Source: events.Source{Kind: "api", Instance: "test"}})
	if err != nil {
		t.Fatal(err)
	}
	rules, err := access.ParseRules("access.yaml", []byte(accessRules))
	if err != nil {
		t.Fatal(err)
	}
	ab, err := access.New(t.Context(), access.Config{JetStream: js, Create: true, Signer: ledgertest.Signer(t, "console.test/access"), Emitter: em, Rules: rules, Source: events.Source{Kind: "api", Instance: "test"}})
	if err != nil {
		t.Fatal(err)
	}
	idp, err := oidcdev.Listen("127.0.0.1:0", oidcdev.Config{Audience: "auditledger", Users: users,
		LoginClients: []oidcdev.LoginClient{{ID: "auditledger-console", RedirectGlobs: []string{"http://127.0.0.1:*/console/callback"}}}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { idp.Close() })
	auth, err := identity.NewOIDC(t.Context(), identity.OIDCConfig{Issuer: idp.Issuer, Audience: "auditledger"})
	if err != nil {
		t.Fatal(err)
	}
	_, epriv, _ := ed25519.GenerateKey(rand.Reader)
	esigner, _ := ssh.NewSignerFromKey(epriv)
	acfg := api.Config{Auth: auth, Approvals: b, Access: ab, Emitter: em, DB: db, Tenant: "ops",
		Evidence: &api.EvidenceConfig{Dir: t.TempDir(), Signer: esigner, LogVKey: signer.Verifier().String(), Generator: "console test"}, Bus: js}
	for _, change := range apiCfg {
		change(&acfg)
	}
	h, err := api.NewServer(acfg)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewUnstartedServer(nil)
	base := "http://" + srv.Listener.Addr().String()
	c, err := console.New(console.Config{API: h, Auth: auth, Issuer: idp.Issuer, ClientID: "auditledger-console", URL: base + "/console/"})
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.Handle("/console/", c)
	mux.Handle("/", h)
	tamper, tamperConsistency := &atomic.Bool{}, &atomic.Bool{}
	srv.Config.Handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if tamper.Load() && strings.HasPrefix(r.URL.Path, "/console/proof/") && strings.HasSuffix(r.URL.Path, "/inclusion") ||
			tamperConsistency.Load() && r.URL.Path == "/console/proof/consistency" {
			// A test double of a lying server: the first hash of the
			// proof changed (another base64 digit).
			rec := httptest.NewRecorder()
			mux.ServeHTTP(rec, r)
			lines := strings.Split(rec.Body.String(), "\n")
			first := map[string]int{"c2sp.org/tlog-proof@v1": 2, "auditledger.dev/tlog-consistency@v1": 3}[lines[0]]
			if first > 0 && len(lines) > first && lines[first] != "" {
				b := []byte(lines[first])
				if b[0] == 'A' {
					b[0] = 'B'
				} else {
					b[0] = 'A'
				}
				lines[first] = string(b)
			}
			maps.Copy(w.Header(), rec.Header())
			w.WriteHeader(rec.Code)
			io.WriteString(w, strings.Join(lines, "\n"))
			return
		}
		mux.ServeHTTP(w, r)
	})
	srv.Start()
	t.Cleanup(srv.Close)
	return &fixture{srv: srv, idp: idp, js: js, stream: func() []natstest.Stored { return natstest.Events(t, js, bus.EventsStream) },
		approvals: b, access: ab, auth: auth, store: store, signer: signer, tamper: tamper, tamperConsistency: tamperConsistency, evidenceKey: esigner.PublicKey(), db: db, log: l}
}

// signIn signs user in through the console and the provider's login
// page, as a browser without JavaScript would, and returns the client
// holding the session cookie.
func (f *fixture) signIn(t *testing.T, user, password string) *http.Client {
	t.Helper()
	jar, _ := cookiejar.New(nil)
	cl := &http.Client{Jar: jar}
	resp, err := cl.Get(f.srv.URL + "/console/login")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.Contains(string(body), `name="password"`) {
		t.Fatalf("the sign-in did not reach the login page: %d %s", resp.StatusCode, body)
	}
	id := resp.Request.URL.Query().Get("id")
	resp, err = cl.PostForm(f.idp.Issuer+"/login", url.Values{"id": {id}, "username": {user}, "password": {password}})
	if err != nil {
		t.Fatal(err)
	}
	body, _ = io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.Contains(string(body), "Signed in") {
		t.Fatalf("sign-in of %s: %d %s", user, resp.StatusCode, body)
	}
	return cl
}

// get fetches path with cl, returning status and body.
func get(t *testing.T, cl *http.Client, u string) (int, string) {
	t.Helper()
	resp, err := cl.Get(u)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// recorded are the API's events of type typ in the bus, after the first
// skip.
func (f *fixture) recorded(typ events.Type) []natstest.Stored {
	var out []natstest.Stored
	for _, s := range f.stream() {
		if s.Event.Type == typ {
			out = append(out, s)
		}
	}
	return out
}

// waitRecorded waits for an event of type typ holding s: refusals are
// recorded without holding the answer.
func (f *fixture) waitRecorded(t *testing.T, typ events.Type, s string) {
	t.Helper()
	natstest.CheckFor(t, 30*time.Second, 20*time.Millisecond, func() error {
		if countContaining(f.recorded(typ), s) == 0 {
			return fmt.Errorf("no %s holding %q recorded", typ, s)
		}
		return nil
	})
}
