package gateway_test

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/auditledger/auditledger/events"
	"github.com/auditledger/auditledger/ledger/piikeys"
	"github.com/auditledger/auditledger/services/gateway"
	"github.com/auditledger/auditledger/services/gateway/gatewaytest"
)

// Every event of a session carries the actor's e-mail sealed under their
// key, the journal too; the bus holds no byte of the address, and the
// token opens to it until the subject is erased.
func TestActorEmailSealed(t *testing.T) {
	b := startBus(t, true)
	keys, err := piikeys.Open(t.Context(), b.js, 1)
	if err != nil {
		t.Fatal(err)
	}
	state := t.TempDir()
	g := newGateway(t, b.em, func(c *gateway.Config) { c.Keys, c.StateDir = keys, state })
	if err := g.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	mail := gatewaytest.Email(t, "alice")
	who := alice
	who.Email = mail
	s := g.Session(events.Target{Kind: "ssh", Name: "bastion"})
	s.Authenticated(who)
	if err := s.Start(t.Context(), map[string]any{}); err != nil {
		t.Fatal(err)
	}
	journal, err := os.ReadFile(filepath.Join(state, "sessions", s.ID()+".session"))
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(journal), mail) {
		t.Errorf("the session journal holds the e-mail in clear: %s", journal)
	}
	if _, err := s.Record(t.Context(), events.CommandExecuted, map[string]any{"statement": "ls"}); err != nil {
		t.Fatal(err)
	}
	s.End(t.Context(), map[string]any{})
	got := b.stored(t, 3)
	gatewaytest.CheckAbsent(t, gatewaytest.BusBytes(t, b.js), mail)
	var token string
	for _, st := range got {
		tok := st.Event.Actor.Email
		if _, _, ok := piikeys.ParseToken(tok); !ok {
			t.Fatalf("%s: actor.email %q is not a sealed field", st.Event.Type, tok)
		}
		if token != "" && tok != token {
			t.Errorf("%s: sealed again within the session (%q, then %q)", st.Event.Type, token, tok)
		}
		token = tok
		v, err := keys.Unseal(t.Context(), "acme", "actor.email", tok)
		if err != nil || v != mail {
			t.Fatalf("%s: Unseal = %q, %v; want %q", st.Event.Type, v, err, mail)
		}
	}
	if _, err := keys.Erase(t.Context(), "acme", who.Issuer, who.Subject); err != nil {
		t.Fatal(err)
	}
	if _, err := keys.Unseal(t.Context(), "acme", "actor.email", token); !errors.Is(err, piikeys.ErrErased) {
		t.Fatalf("after erasure Unseal = %v, want ErrErased", err)
	}
}

// Without a key store the e-mail is left out, never recorded in clear.
func TestActorEmailWithoutKeys(t *testing.T) {
	b := startBus(t, true)
	g := newGateway(t, b.em, nil)
	if err := g.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	mail := gatewaytest.Email(t, "bob")
	who := alice
	who.Email = mail
	s := g.Session(events.Target{Kind: "ssh", Name: "bastion"})
	s.Authenticated(who)
	if _, err := s.Record(t.Context(), events.CommandExecuted, map[string]any{"statement": "ls"}); err != nil {
		t.Fatal(err)
	}
	got := b.stored(t, 1)
	if e := got[0].Event.Actor.Email; e != "" {
		t.Errorf("actor.email = %q without a key store, want it left out", e)
	}
	if got[0].Event.Actor.Subject != "alice" {
		t.Errorf("actor %+v", got[0].Event.Actor)
	}
	gatewaytest.CheckAbsent(t, gatewaytest.BusBytes(t, b.js), mail)
}
