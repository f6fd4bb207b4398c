package gateway_test

import (
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/auditledger/auditledger/events"
	"github.com/auditledger/auditledger/services/access/accesstest"
	"github.com/auditledger/auditledger/services/gateway"
	"github.com/auditledger/auditledger/test/natstest"
)

// A session refused for want of a grant is recorded naming the access
// rule that required it, as a deny rule's refusal names its rule (FORMAT
// §1; 8.3 tests that every refusal by a policy rule names it); a target
// no rule covers is admitted without a refusal, and a grant admits.
func TestAccessRefusalNamesItsRule(t *testing.T) {
	b := startBus(t, true)
	rig := accesstest.Start(t, b.js, b.em, `version: 2
access:
  - id: orders-db
    targets: [orders]
    approvers: {groups: [approver]}
    max_duration: 4h
`, time.Minute)
	g := newGateway(t, b.em, func(c *gateway.Config) { c.Access = rig.Watcher })
	if err := g.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	admit := func(target string) error {
		s := g.Session(events.Target{Kind: "postgres", Name: target})
		s.Authenticated(alice)
		release, err := s.Admit(t.Context(), func(string) {})
		if err == nil {
			release()
		}
		return err
	}
	if err := admit("billing"); err != nil {
		t.Fatalf("a target no access rule covers: %v", err)
	}
	if err := admit("orders"); !errors.Is(err, gateway.ErrAccessDenied) {
		t.Fatalf("orders without a grant: %v, want %v", err, gateway.ErrAccessDenied)
	}
	var refusals []natstest.Stored
	natstest.CheckFor(t, 10*time.Second, 20*time.Millisecond, func() error {
		refusals = refusals[:0]
		for _, st := range natstest.Events(t, b.js, "") {
			if st.Event.Type == events.CommandBlocked {
				refusals = append(refusals, st)
			}
		}
		if len(refusals) == 0 {
			return errors.New("no command.blocked stored")
		}
		return nil
	})
	if len(refusals) != 1 {
		t.Fatalf("%d refusals stored, want 1 (orders)", len(refusals))
	}
	p := refusals[0].Payload
	if p["rule"] != "orders-db" || p["access_required"] != true || fmt.Sprint(p["reason"]) == "" || refusals[0].Event.Target.Name != "orders" {
		t.Errorf("the access refusal: %v, want rule orders-db, access_required true and a reason", p)
	}
	reviewer := events.Actor{Issuer: "https://idp.example", Subject: "bob", Groups: []string{"approver"}, Kind: events.Human}
	rig.Grant(t, "acme", alice.Actor, reviewer, "orders", time.Hour)
	if err := admit("orders"); err != nil {
		t.Errorf("orders inside a grant: %v", err)
	}
}
