package gateway_test

import (
	"slices"
	"strings"
	"testing"

	"github.com/auditledger/auditledger/events"
	"github.com/auditledger/auditledger/events/detect"
	"github.com/auditledger/auditledger/ledger/piikeys"
	"github.com/auditledger/auditledger/services/gateway"
	"github.com/auditledger/auditledger/services/gateway/gatewaytest"
)

// RecordedActor records a subject a detector finds something in by the
// subject's pseudonym, the same for every caller of the key store (a
// gateway and the API compare requester and decider so), and a personal
// group as a placeholder; anything else as it is.
func TestRecordedActor(t *testing.T) {
	b := startBus(t, true)
	gw, err := piikeys.Open(t.Context(), b.js, 1)
	if err != nil {
		t.Fatal(err)
	}
	other, err := piikeys.Open(t.Context(), b.js, 1)
	if err != nil {
		t.Fatal(err)
	}
	mail := gatewaytest.Email(t, "ann")
	groups := []string{"dba", "team of " + mail}
	a := events.Actor{Issuer: "https://idp.example", Subject: mail, Groups: groups, Kind: events.Human}

	got, err := gateway.RecordedActor(t.Context(), gw, "acme", a)
	if err != nil {
		t.Fatal(err)
	}
	p, err := gw.PseudonymOf(t.Context(), "acme", a.Issuer, mail)
	if err != nil || got.Subject != gateway.PseudonymPrefix+p {
		t.Fatalf("subject %q, want %s and the raw subject's pseudonym %q (%v)", got.Subject, gateway.PseudonymPrefix, p, err)
	}
	if want := []string{"dba", detect.Placeholder("email")}; !slices.Equal(got.Groups, want) {
		t.Errorf("groups %q, want %q", got.Groups, want)
	}
	if groups[1] != "team of "+mail {
		t.Errorf("the caller's groups were changed: %q", groups)
	}
	again, err := gateway.RecordedActor(t.Context(), other, "acme", a)
	if err != nil || again.Subject != got.Subject {
		t.Errorf("another store's caller records %q (%v), want %q", again.Subject, err, got.Subject)
	}
	if g, _ := gateway.RecordedActor(t.Context(), gw, "globex", a); g.Subject == got.Subject || !strings.HasPrefix(g.Subject, gateway.PseudonymPrefix) {
		t.Errorf("another tenant records %q, want its own pseudonym", g.Subject)
	}
	// Inside longer text, too; a recorded pseudonym stays as it is.
	for _, s := range []string{"user " + mail, "ann"} {
		g, err := gateway.RecordedActor(t.Context(), gw, "acme", events.Actor{Issuer: a.Issuer, Subject: s})
		if want := s == "ann"; err != nil || (g.Subject == s) != want || strings.Contains(g.Subject, mail) {
			t.Errorf("subject %q recorded as %q (%v)", s, g.Subject, err)
		}
	}
	if g, _ := gateway.RecordedActor(t.Context(), gw, "acme", got); g.Subject != got.Subject {
		t.Errorf("a pseudonym recorded again as %q", g.Subject)
	}

	// Without a key store: the placeholder, never the address.
	g, err := gateway.RecordedActor(t.Context(), nil, "acme", a)
	if err != nil || g.Subject != detect.Placeholder("email") {
		t.Errorf("without a key store: %q, %v; want %s", g.Subject, err, detect.Placeholder("email"))
	}

	// Erasing the raw subject destroys the entry the pseudonym came from:
	// what follows is recorded under a new one.
	if erased, err := gw.Erase(t.Context(), "acme", a.Issuer, mail); err != nil || erased != p {
		t.Fatalf("Erase = %q, %v; want %s", erased, err, p)
	}
	after, err := gateway.RecordedActor(t.Context(), gw, "acme", a)
	if err != nil || after.Subject == got.Subject || !strings.HasPrefix(after.Subject, gateway.PseudonymPrefix) {
		t.Errorf("after erasure: %q (%v), want a new pseudonym", after.Subject, err)
	}
}

// A session of a person whose subject is an e-mail address, without a
// key store, records the placeholder: never the address.
func TestPersonalSubjectWithoutKeys(t *testing.T) {
	b := startBus(t, true)
	g := newGateway(t, b.em, nil)
	if err := g.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	mail := gatewaytest.Email(t, "ann")
	who := alice
	who.Subject, who.Email = mail, mail
	s := g.Session(events.Target{Kind: "ssh", Name: "bastion"})
	s.Authenticated(who)
	if _, err := s.Record(t.Context(), events.CommandExecuted, map[string]any{"statement": "ls"}); err != nil {
		t.Fatal(err)
	}
	got := b.stored(t, 1)
	if a := got[0].Event.Actor; a.Subject != detect.Placeholder("email") || a.Email != "" {
		t.Errorf("actor %+v, want subject %s and no e-mail", a, detect.Placeholder("email"))
	}
	gatewaytest.CheckAbsent(t, gatewaytest.BusBytes(t, b.js), mail)
}
