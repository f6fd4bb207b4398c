package api_test

import (
	"encoding/json"
	"fmt"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/auditledger/auditledger/events"
	"github.com/auditledger/auditledger/internal/oidcdev"
	"github.com/auditledger/auditledger/ledger/bus"
	"github.com/auditledger/auditledger/ledger/bus/emitter"
	"github.com/auditledger/auditledger/ledger/ledgertest"
	"github.com/auditledger/auditledger/services/access"
	"github.com/auditledger/auditledger/services/api"
	"github.com/auditledger/auditledger/services/approvals"
	"github.com/auditledger/auditledger/services/identity"
	"github.com/auditledger/auditledger/test/natstest"
)

const accessRules = `version: 2
access:
  - id: prod
    targets: [orders]
    approvers: {groups: [dba]}
    max_duration: 4h
    break_glass: {groups: [oncall], duration: 30m}
`

// accessRig is the API with approvals and just-in-time access on an
// in-process NATS server, behind a development OpenID provider whose
// users each have their name as secret; db, when not nil, is its
// projection.
type accessRig struct {
	srv    *httptest.Server
	issuer string
	js     jetstream.JetStream
	em     *emitter.Emitter
	src    events.Source // the API's and its brokers'
	tok    map[string]string
}

func newAccessRig(t *testing.T, users []oidcdev.User, roles map[api.Role][]string, db *pgxpool.Pool) *accessRig {
	t.Helper()
	for i := range users {
		users[i].Secret = users[i].Name
	}
	idp, err := oidcdev.Listen("127.0.0.1:0", oidcdev.Config{Audience: "auditledger", Users: users})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { idp.Close() })
	v, err := identity.NewOIDC(t.Context(), identity.OIDCConfig{Issuer: idp.Issuer, Audience: "auditledger"})
	if err != nil {
		t.Fatal(err)
	}
	_, js := natstest.Start(t).Connect(t)
	if err := bus.EnsureStreams(t.Context(), js, bus.StreamOptions{}); err != nil {
		t.Fatal(err)
	}
	em, err := emitter.New(emitter.Config{JetStream: js, Timeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { em.Close() })
	key := ledgertest.Signer(t, "api.test/approvals")
	src := events.Source{Kind: "api", Instance: "api-1"}
	b, err := approvals.New(t.Context(), approvals.Config{JetStream: js, Create: true, Signer: key, Emitter: em, Source: src})
	if err != nil {
		t.Fatal(err)
	}
	rules, err := access.ParseRules("p.yaml", []byte(accessRules))
	if err != nil {
		t.Fatal(err)
	}
	ab, err := access.New(t.Context(), access.Config{JetStream: js, Create: true, Signer: key, Emitter: em, Rules: rules, Source: src})
	if err != nil {
		t.Fatal(err)
	}
	h, err := api.New(api.Config{Auth: v, Approvals: b, Access: ab, Emitter: em, DB: db, Instance: src.Instance, Tenant: "ops", Roles: roles})
	if err != nil {
		t.Fatal(err)
	}
	x := &accessRig{srv: httptest.NewServer(h), issuer: idp.Issuer, js: js, em: em, src: src, tok: map[string]string{}}
	t.Cleanup(x.srv.Close)
	for _, u := range users {
		if x.tok[u.Name], err = identity.ClientCredentialsToken(t.Context(), idp.Issuer, u.Name, u.Secret); err != nil {
			t.Fatal(err)
		}
	}
	return x
}

func (x *accessRig) call(t *testing.T, method, path, token, body string) (int, string) {
	t.Helper()
	return callAPI(t, x.srv.URL, method, path, token, body)
}

func TestAccessRequestsAPI(t *testing.T) {
	x := newAccessRig(t, []oidcdev.User{
		{Name: "alice", Groups: []string{"dba", "approver", "tenant:acme", "target:*"}},
		{Name: "bob", Groups: []string{"dba", "approver", "tenant:acme", "target:*"}},
		{Name: "carol", Groups: []string{"auditors", "tenant:acme", "target:*"}},
		{Name: "dave", Groups: []string{"oncall", "tenant:acme"}},
		{Name: "erin", Groups: []string{"dev", "tenant:acme"}},
	}, map[api.Role][]string{api.Approver: {"approver"}, api.Auditor: {"auditors"}}, nil)
	tok, js := x.tok, x.js
	call := func(method, path, token, body string) (int, string) {
		t.Helper()
		return x.call(t, method, path, token, body)
	}
	code, body := call("POST", "/v1/access-requests", tok["alice"], `{"target":"orders","duration":"2h","reason":"INC-42"}`)
	var req access.Request
	if code != 200 || json.Unmarshal([]byte(body), &req) != nil || req.Status != access.Pending {
		t.Fatalf("request: %d %s", code, body)
	}
	id := req.ID
	for _, c := range []struct {
		name, method, path, token, body string
		code                            int
		says                            string
	}{
		{"no reason", "POST", "/v1/access-requests", tok["alice"], `{"target":"orders","duration":"2h"}`, 400, "a reason is required"},
		{"too long", "POST", "/v1/access-requests", tok["alice"], `{"target":"orders","duration":"5h","reason":"x"}`, 400, "max_duration 4h"},
		{"bad duration", "POST", "/v1/access-requests", tok["alice"], `{"target":"orders","duration":"two hours","reason":"x"}`, 400, "want a duration"},
		{"no rule", "POST", "/v1/access-requests", tok["alice"], `{"target":"wiki","duration":"1h","reason":"x"}`, 400, "no access rule names it"},
		{"self-approval", "POST", "/v1/access-requests/" + id + "/approve", tok["alice"], `{"reason":"mine"}`, 403, "cannot approve or deny their own"},
		{"approve needs a reason", "POST", "/v1/access-requests/" + id + "/approve", tok["bob"], `{}`, 400, "a reason is required"},
		{"not an approver", "POST", "/v1/access-requests/" + id + "/approve", tok["erin"], `{"reason":"x"}`, 403, "needs the role approver"},
		{"others cannot see it", "GET", "/v1/access-requests/" + id, tok["erin"], "", 403, "outside your scope"},
		{"auditor sees it", "GET", "/v1/access-requests?status=pending", tok["carol"], "", 200, id},
		{"approve", "POST", "/v1/access-requests/" + id + "/approve", tok["bob"], `{"reason":"looked at INC-42"}`, 200, `"status": "approved"`},
		{"decide twice", "POST", "/v1/access-requests/" + id + "/deny", tok["bob"], `{"reason":"x"}`, 409, "is approved"},
		{"break-glass outside the group", "POST", "/v1/access-requests", tok["erin"], `{"target":"orders","reason":"outage","break_glass":true}`, 403, "needs a member of [oncall]"},
		{"break-glass", "POST", "/v1/access-requests", tok["dave"], `{"target":"orders","reason":"outage","break_glass":true}`, 200, `"break_glass": true`},
		{"requester revokes", "POST", "/v1/access-requests/" + id + "/revoke", tok["alice"], `{"reason":"done"}`, 200, `"status": "revoked"`},
	} {
		code, body := call(c.method, c.path, c.token, c.body)
		if code != c.code || !strings.Contains(body, c.says) {
			t.Errorf("%s: %d %s, want %d with %q", c.name, code, body, c.code, c.says)
		}
	}
	// The self-approval and the refused break-glass are on record.
	natstest.CheckFor(t, 5*time.Second, 20*time.Millisecond, func() error {
		var self, glass bool
		for _, st := range natstest.Events(t, js, "") {
			if st.Event.Type != events.CommandBlocked {
				continue
			}
			reason, _ := st.Payload["reason"].(string)
			self = self || st.Event.Actor.Subject == "alice" && strings.Contains(reason, "their own access request")
			glass = glass || st.Event.Actor.Subject == "erin" && strings.Contains(reason, "break-glass")
		}
		if !self || !glass {
			return fmt.Errorf("refusals on record: self-approval %v, break-glass %v", self, glass)
		}
		return nil
	})
	var kinds []string
	for _, st := range natstest.Events(t, js, "") {
		if strings.HasPrefix(string(st.Event.Type), "access.") {
			kinds = append(kinds, string(st.Event.Type)+"/"+st.Event.Actor.Subject)
		}
	}
	if got := strings.Join(kinds, " "); got != "access.requested/alice access.approved/bob access.granted/bob access.requested/dave access.granted/dave access.revoked/alice" {
		t.Errorf("access events: %s", got)
	}
}
