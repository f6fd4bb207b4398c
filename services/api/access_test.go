package api_test

import (
	"encoding/json"
	"fmt"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

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

func TestAccessRequestsAPI(t *testing.T) {
	idp, err := oidcdev.Listen("127.0.0.1:0", oidcdev.Config{Audience: "auditledger", Users: []oidcdev.User{
		{Name: "alice", Secret: "a", Groups: []string{"dba", "approver", "tenant:acme", "target:*"}},
		{Name: "bob", Secret: "b", Groups: []string{"dba", "approver", "tenant:acme", "target:*"}},
		{Name: "carol", Secret: "c", Groups: []string{"auditors", "tenant:acme", "target:*"}},
		{Name: "dave", Secret: "d", Groups: []string{"oncall", "tenant:acme"}},
		{Name: "erin", Secret: "e", Groups: []string{"dev", "tenant:acme"}},
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
	key := ledgertest.Signer(t, "api.test/approvals")
	b, err := approvals.New(t.Context(), approvals.Config{JetStream: js, Create: true, Signer: key, Emitter: em, Source: events.Source{Kind: "api", Instance: "test"}})
	if err != nil {
		t.Fatal(err)
	}
	rules, err := access.ParseRules("p.yaml", []byte(accessRules))
	if err != nil {
		t.Fatal(err)
	}
	ab, err := access.New(t.Context(), access.Config{JetStream: js, Create: true, Signer: key, Emitter: em, Rules: rules, Source: events.Source{Kind: "api", Instance: "test"}})
	if err != nil {
		t.Fatal(err)
	}
	h, err := api.New(api.Config{Auth: v, Approvals: b, Access: ab, Emitter: em, Roles: map[api.Role][]string{
		api.Approver: {"approver"}, api.Auditor: {"auditors"},
	}})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(h)
	defer srv.Close()
	tok := map[string]string{}
	for u, s := range map[string]string{"alice": "a", "bob": "b", "carol": "c", "dave": "d", "erin": "e"} {
		if tok[u], err = identity.ClientCredentialsToken(t.Context(), idp.Issuer, u, s); err != nil {
			t.Fatal(err)
		}
	}
	call := func(method, path, token, body string) (int, string) {
		t.Helper()
		return callAPI(t, srv.URL, method, path, token, body)
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
