package api_test

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/auditledger/auditledger/events"
	"github.com/auditledger/auditledger/internal/oidcdev"
	"github.com/auditledger/auditledger/ledger/bus"
	"github.com/auditledger/auditledger/ledger/bus/emitter"
	"github.com/auditledger/auditledger/ledger/ledgertest"
	"github.com/auditledger/auditledger/services/api"
	"github.com/auditledger/auditledger/services/approvals"
	"github.com/auditledger/auditledger/services/identity"
	"github.com/auditledger/auditledger/test/natstest"
)

func TestApprovalsAPI(t *testing.T) {
	idp, err := oidcdev.Listen("127.0.0.1:0", oidcdev.Config{Audience: "auditledger", Users: []oidcdev.User{
		{Name: "alice", Secret: "a", Groups: []string{"dba"}},
		{Name: "bob", Secret: "b", Groups: []string{"approver", "tenant:acme", "target:*"}},
		{Name: "carol", Secret: "c", Groups: []string{"auditors", "tenant:acme", "target:*"}},
	}})
	if err != nil {
		t.Fatal(err)
	}
	defer idp.Close()
	v, err := identity.NewOIDC(t.Context(), identity.OIDCConfig{Issuer: idp.Issuer, Audience: "auditledger"})
	if err != nil {
		t.Fatal(err)
	}
	_, js := natstest.Start(t).Connect(t)
	if err := bus.EnsureStreams(t.Context(), js, bus.StreamOptions{}); err != nil {
		t.Fatal(err)
	}
	em, err := emitter.New(emitter.Config{JetStream: js, Timeout: 2 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer em.Close()
	b, err := approvals.New(t.Context(), approvals.Config{JetStream: js, Create: true, Signer: ledgertest.Signer(t, "api.test/approvals"), Emitter: em, Source: events.Source{Kind: "api", Instance: "test"}})
	if err != nil {
		t.Fatal(err)
	}
	h, err := api.New(api.Config{Auth: v, Approvals: b, Emitter: em, Roles: map[api.Role][]string{
		api.Approver: {"approver"}, api.Auditor: {"auditors"},
	}})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(h)
	defer srv.Close()

	tok := map[string]string{}
	for u, s := range map[string]string{"alice": "a", "bob": "b", "carol": "c"} {
		if tok[u], err = identity.ClientCredentialsToken(t.Context(), idp.Issuer, u, s); err != nil {
			t.Fatal(err)
		}
	}
	aliceActor, _ := v.Authenticate(t.Context(), "", tok["alice"])
	r := &approvals.Request{ID: approvals.NewID(), Tenant: "acme", Rule: "ddl", Requester: aliceActor,
		Target: events.Target{Kind: "postgres"}, Statement: "DROP TABLE t", RequestedAt: time.Now().UTC(), ExpiresAt: time.Now().Add(time.Minute).UTC()}
	if err := b.Open(t.Context(), r); err != nil {
		t.Fatal(err)
	}

	call := func(method, path, token, body string) (int, string) {
		t.Helper()
		return callAPI(t, srv.URL, method, path, token, body)
	}
	for _, c := range []struct {
		name, method, path, token, body string
		code                            int
		says                            string
	}{
		{"no token", "GET", "/v1/approvals", "", "", 401, "Authorization: Bearer"},
		{"bad token", "GET", "/v1/approvals", "eyJhbGciOiJSUzI1NiJ9.e30.c2ln", "", 401, "token refused"},
		{"requester lacks the role", "GET", "/v1/approvals", tok["alice"], "", 403, "needs the role approver or security or auditor"},
		{"auditor lists", "GET", "/v1/approvals?status=pending", tok["carol"], "", 200, r.ID},
		{"auditor cannot decide", "POST", "/v1/approvals/" + r.ID + "/approve", tok["carol"], "", 403, "needs the role approver"},
		{"bad status filter", "GET", "/v1/approvals?status=maybe", tok["bob"], "", 400, "is not pending, granted"},
		{"unknown id", "POST", "/v1/approvals/apr-000000000000/approve", tok["bob"], "", 404, "no such approval"},
		{"deny needs a reason", "POST", "/v1/approvals/" + r.ID + "/deny", tok["bob"], `{}`, 400, "needs a reason"},
		{"unknown body field", "POST", "/v1/approvals/" + r.ID + "/approve", tok["bob"], `{"reasn":"x"}`, 400, "reasn"},
		{"approve", "POST", "/v1/approvals/" + r.ID + "/approve", tok["bob"], `{"reason":"ticket 42"}`, 200, `"status": "granted"`},
		{"decide twice", "POST", "/v1/approvals/" + r.ID + "/deny", tok["bob"], `{"reason":"x"}`, 409, "already granted"},
	} {
		code, body := call(c.method, c.path, c.token, c.body)
		if code != c.code || !strings.Contains(body, c.says) {
			t.Errorf("%s: %d %s, want %d with %q", c.name, code, body, c.code, c.says)
		}
	}
	var got approvals.Request
	_, body := call("GET", "/v1/approvals/"+r.ID, tok["bob"], "")
	if err := json.Unmarshal([]byte(body), &got); err != nil || got.Decider == nil || got.Decider.Subject != "bob" || got.Reason != "ticket 42" {
		t.Errorf("after approval: %s", body)
	}

	// The auditors are audited: every refused call and every read is an
	// event, the forged token's refusal included.
	em.Wait()
	type seen struct {
		typ     events.Type
		subject string
		path    string
	}
	var recorded []seen
	for _, st := range natstest.Events(t, js, "") {
		if st.Event.Source.Kind == "api" && st.Event.Type != events.ApprovalGranted {
			recorded = append(recorded, seen{st.Event.Type, st.Event.Actor.Subject, st.Payload["path"].(string)})
		}
	}
	want := map[seen]int{
		{events.AuthnFailed, "unauthenticated", "/v1/approvals"}:               2, // no token, forged token
		{events.CommandBlocked, "alice", "/v1/approvals"}:                      1,
		{events.CommandBlocked, "carol", "/v1/approvals/" + r.ID + "/approve"}: 1,
		{events.AuditAccessed, "carol", "/v1/approvals"}:                       1,
		{events.AuditAccessed, "bob", "/v1/approvals/" + r.ID}:                 1,
	}
	counts := map[seen]int{}
	for _, e := range recorded {
		counts[e]++
	}
	for k, n := range want {
		if counts[k] != n {
			t.Errorf("%v recorded %d times, want %d (recorded: %v)", k, counts[k], n, recorded)
		}
	}
}

func TestSelfApprovalRefused(t *testing.T) {
	// The same person in the approver group cannot approve their own
	// request, through the API.
	idp, err := oidcdev.Listen("127.0.0.1:0", oidcdev.Config{Audience: "auditledger", Users: []oidcdev.User{
		{Name: "dave", Secret: "d", Groups: []string{"approver", "tenant:*", "target:*"}},
	}})
	if err != nil {
		t.Fatal(err)
	}
	defer idp.Close()
	v, _ := identity.NewOIDC(t.Context(), identity.OIDCConfig{Issuer: idp.Issuer, Audience: "auditledger"})
	_, js := natstest.Start(t).Connect(t)
	bus.EnsureStreams(t.Context(), js, bus.StreamOptions{})
	em, _ := emitter.New(emitter.Config{JetStream: js})
	defer em.Close()
	b, _ := approvals.New(t.Context(), approvals.Config{JetStream: js, Create: true, Signer: ledgertest.Signer(t, "api.test/approvals"), Emitter: em, Source: events.Source{Kind: "api", Instance: "t"}})
	h, _ := api.New(api.Config{Auth: v, Approvals: b, Emitter: em})
	srv := httptest.NewServer(h)
	defer srv.Close()
	tok, _ := identity.ClientCredentialsToken(t.Context(), idp.Issuer, "dave", "d")
	dave, _ := v.Authenticate(t.Context(), "", tok)
	r := &approvals.Request{ID: approvals.NewID(), Tenant: "acme", Rule: "x", Requester: dave, Statement: "DROP TABLE t",
		RequestedAt: time.Now().UTC(), ExpiresAt: time.Now().Add(time.Minute).UTC()}
	b.Open(t.Context(), r)
	req, _ := http.NewRequest("POST", srv.URL+"/v1/approvals/"+r.ID+"/approve", nil)
	req.Header.Set("Authorization", "Bearer "+tok)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 403 || !strings.Contains(string(body), "cannot decide their own") {
		t.Errorf("self-approval: %d %s", resp.StatusCode, body)
	}
	// Refused, and the refusal sealed under the request's tenant.
	natstest.CheckFor(t, 30*time.Second, 50*time.Millisecond, func() error {
		for _, st := range natstest.Events(t, js, "") {
			if st.Event.Type == events.CommandBlocked && st.Event.Tenant == "acme" && st.Event.Actor.Subject == "dave" &&
				strings.Contains(fmt.Sprint(st.Payload["reason"]), "cannot decide their own") {
				return nil
			}
		}
		return fmt.Errorf("the refused self-approval is not recorded under tenant acme")
	})
}

// Reviewers are scoped to tenants and targets: bob reviews target orders
// of tenant acme; he sees and decides only those approvals, and each
// refusal is recorded, under the approval's tenant. A decision is
// recorded under its tenant without the decider's groups naming others.
func TestApprovalScope(t *testing.T) {
	idp, err := oidcdev.Listen("127.0.0.1:0", oidcdev.Config{Audience: "auditledger", Users: []oidcdev.User{
		{Name: "alice", Secret: "a", Groups: []string{"dba"}},
		{Name: "bob", Secret: "b", Groups: []string{"approver", "tenant:acme", "target:orders"}},
		{Name: "vic", Secret: "v", Groups: []string{"approver"}}, // no scope
		{Name: "max", Secret: "m", Groups: []string{"approver", "tenant:acme", "tenant:globex", "target:*"}},
	}})
	if err != nil {
		t.Fatal(err)
	}
	defer idp.Close()
	v, err := identity.NewOIDC(t.Context(), identity.OIDCConfig{Issuer: idp.Issuer, Audience: "auditledger"})
	if err != nil {
		t.Fatal(err)
	}
	_, js := natstest.Start(t).Connect(t)
	if err := bus.EnsureStreams(t.Context(), js, bus.StreamOptions{}); err != nil {
		t.Fatal(err)
	}
	em, err := emitter.New(emitter.Config{JetStream: js, Timeout: 2 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer em.Close()
	b, err := approvals.New(t.Context(), approvals.Config{JetStream: js, Create: true, Signer: ledgertest.Signer(t, "api.test/approvals"), Emitter: em, Source: events.Source{Kind: "api", Instance: "test"}})
	if err != nil {
		t.Fatal(err)
	}
	h, err := api.New(api.Config{Auth: v, Approvals: b, Emitter: em})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(h)
	defer srv.Close()
	tok := func(u, s string) string {
		tk, err := identity.ClientCredentialsToken(t.Context(), idp.Issuer, u, s)
		if err != nil {
			t.Fatal(err)
		}
		return tk
	}
	alice, bob, vic, max := tok("alice", "a"), tok("bob", "b"), tok("vic", "v"), tok("max", "m")
	aliceActor, _ := v.Authenticate(t.Context(), "", alice)
	open := func(tenant, target string) *approvals.Request {
		r := &approvals.Request{ID: approvals.NewID(), Tenant: tenant, Rule: "ddl", Requester: aliceActor, Target: events.Target{Kind: "postgres", Name: target},
			Statement: "DROP TABLE t", RequestedAt: time.Now().UTC(), ExpiresAt: time.Now().Add(time.Hour).UTC()}
		if err := b.Open(t.Context(), r); err != nil {
			t.Fatal(err)
		}
		return r
	}
	mine, payroll, globex := open("acme", "orders"), open("acme", "payroll"), open("globex", "orders")
	call := func(method, path, token, body string) (int, string) {
		t.Helper()
		return callAPI(t, srv.URL, method, path, token, body)
	}
	var list []approvals.Request
	code, body := call("GET", "/v1/approvals?status=pending", bob, "")
	if err := json.Unmarshal([]byte(body), &list); code != 200 || err != nil || len(list) != 1 || list[0].ID != mine.ID {
		t.Errorf("bob's list: %d %s; want only %s", code, body, mine.ID)
	}
	code, body = call("GET", "/v1/approvals", vic, "")
	if err := json.Unmarshal([]byte(body), &list); code != 200 || err != nil || len(list) != 0 {
		t.Errorf("vic's list (no scope): %d %s; want none", code, body)
	}
	refused := map[string]string{} // who and path → the tenant it is recorded under
	for _, c := range []struct{ who, token, method, path, body, tenant string }{
		{"bob", bob, "GET", "/v1/approvals/" + payroll.ID, "", "acme"},
		{"bob", bob, "GET", "/v1/approvals/" + globex.ID, "", "globex"},
		{"bob", bob, "POST", "/v1/approvals/" + payroll.ID + "/approve", `{"reason":"x"}`, "acme"},
		{"bob", bob, "POST", "/v1/approvals/" + globex.ID + "/deny", `{"reason":"x"}`, "globex"},
		{"vic", vic, "POST", "/v1/approvals/" + mine.ID + "/approve", `{"reason":"x"}`, "acme"},
	} {
		if code, body := call(c.method, c.path, c.token, c.body); code != 403 || !strings.Contains(body, "outside your scope") {
			t.Errorf("%s %s %s: %d %s; want 403", c.who, c.method, c.path, code, body)
		}
		refused[c.who+" "+c.path] = c.tenant
	}
	for _, r := range []*approvals.Request{payroll, globex, mine} {
		if got, _ := b.Get(t.Context(), r.ID); got.Status != approvals.Pending {
			t.Errorf("%s is %s after refused decisions", r.ID, got.Status)
		}
	}
	if code, body := call("POST", "/v1/approvals/"+mine.ID+"/approve", bob, `{"reason":"ticket 7"}`); code != 200 || !strings.Contains(body, `"status": "granted"`) {
		t.Errorf("bob approves in his scope: %d %s", code, body)
	}
	if code, body := call("POST", "/v1/approvals/"+globex.ID+"/deny", max, `{"reason":"not now"}`); code != 200 || strings.Contains(body, "tenant:acme") {
		t.Errorf("max denies globex's request: %d %s; want 200 naming no other tenant", code, body)
	}
	natstest.CheckFor(t, 30*time.Second, 50*time.Millisecond, func() error {
		blocked := map[string]string{}
		var denial *events.Event
		for _, st := range natstest.Events(t, js, "") {
			if st.Event.Type == events.CommandBlocked && strings.HasPrefix(fmt.Sprint(st.Payload["reason"]), "out of scope") {
				blocked[st.Event.Actor.Subject+" "+fmt.Sprint(st.Payload["path"])] = st.Event.Tenant
			}
			if st.Event.Type == events.ApprovalDenied && st.Payload["approval_id"] == globex.ID {
				denial = st.Event
			}
		}
		for r, tenant := range refused {
			if blocked[r] != tenant {
				return fmt.Errorf("the refusal of %s is recorded under tenant %q, want %q", r, blocked[r], tenant)
			}
		}
		if denial == nil || denial.Tenant != "globex" || slices.Contains(denial.Actor.Groups, "tenant:acme") {
			return fmt.Errorf("max's denial of globex's request: %+v; want it under globex, his groups naming no other tenant", denial)
		}
		return nil
	})
}
