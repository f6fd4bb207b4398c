package api_test

import (
	"net/http"
	"net/http/httptest"
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

// TestView: reads under one api.View record audit.accessed once for what
// they show; a repeat read showing nothing new is served, still
// authorised, without another record; a new id, another filter, or no
// view at all records again.
func TestView(t *testing.T) {
	idp, err := oidcdev.Listen("127.0.0.1:0", oidcdev.Config{Audience: "auditledger", Users: []oidcdev.User{
		{Name: "carol", Secret: "c", Groups: []string{"auditor", "tenant:acme", "target:*"}},
		{Name: "erin", Secret: "e", Groups: []string{"dev", "tenant:acme"}},
		{Name: "gus", Secret: "g", Groups: []string{"auditor", "tenant:acme", "target:*"}},
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
	em, err := emitter.New(emitter.Config{JetStream: js, Timeout: 5 * time.Second})
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
	tok := map[string]string{}
	for u, s := range map[string]string{"carol": "c", "erin": "e", "gus": "g"} {
		if tok[u], err = identity.ClientCredentialsToken(t.Context(), idp.Issuer, u, s); err != nil {
			t.Fatal(err)
		}
	}
	open := func(statement string) {
		r := &approvals.Request{ID: approvals.NewID(), Tenant: "acme", Rule: "ddl", Requester: events.Actor{Issuer: idp.Issuer, Subject: "dave"},
			Target: events.Target{Kind: "postgres", Name: "orders"}, Statement: statement, RequestedAt: time.Now().UTC(), ExpiresAt: time.Now().Add(time.Hour).UTC()}
		if err := b.Open(t.Context(), r); err != nil {
			t.Fatal(err)
		}
	}
	accessed := func() int {
		n := 0
		for _, s := range natstest.Events(t, js, bus.EventsStream) {
			if s.Event.Type == events.AuditAccessed {
				n++
			}
		}
		return n
	}
	view := api.NewView()
	read := func(user, query string, v *api.View) int {
		t.Helper()
		req := httptest.NewRequest("GET", "/v1/approvals"+query, nil)
		req.Header.Set("Authorization", "Bearer "+tok[user])
		if v != nil {
			req = req.WithContext(api.WithView(req.Context(), v))
		}
		w := httptest.NewRecorder()
		h.ServeHTTP(w, req)
		return w.Code
	}
	open("DROP TABLE t")
	for _, c := range []struct {
		what, user, query string
		view              *api.View
		code, recorded    int
	}{
		{"the view", "carol", "?status=pending", view, 200, 1},
		{"a poll", "carol", "?status=pending", view, 200, 0},
		{"another poll", "carol", "?status=pending", view, 200, 0},
		{"another filter", "carol", "", view, 200, 1},
		{"no view", "carol", "?status=pending", nil, 200, 1},
		{"no view again", "carol", "?status=pending", nil, 200, 1},
		{"the wrong role, same view", "erin", "?status=pending", view, 403, 0},
		{"another auditor, same view", "gus", "?status=pending", view, 200, 1},
	} {
		before := accessed()
		if code := read(c.user, c.query, c.view); code != c.code {
			t.Fatalf("%s: %d, want %d", c.what, code, c.code)
		}
		if n := accessed() - before; n != c.recorded {
			t.Fatalf("%s: %d audit.accessed, want %d", c.what, n, c.recorded)
		}
	}
	// A new approval shows: recorded, once.
	open("TRUNCATE t")
	for i, want := range []int{1, 0} {
		before := accessed()
		if code := read("carol", "?status=pending", view); code != http.StatusOK || accessed()-before != want {
			t.Fatalf("poll %d after a new approval: %d, %d recorded, want %d", i, code, accessed()-before, want)
		}
	}
}
