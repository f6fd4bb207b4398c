package gateway_test

import (
	"context"
	"fmt"

	"github.com/auditledger/auditledger/events"
	"github.com/auditledger/auditledger/ledger/bus/emitter"
	"github.com/auditledger/auditledger/services/gateway"
)

// printer stands in for the bus in the example: it prints what a gateway
// records and reports it stored.
type printer struct{}

func (printer) Emit(_ context.Context, ev *events.Event) (emitter.Result, error) {
	fmt.Printf("%d %s %s %s\n", ev.SessionSeq, ev.Type, ev.Actor.Subject, ev.Payload)
	return emitter.Result{ID: ev.ID}, nil
}

func (p printer) EmitAsync(ctx context.Context, ev *events.Event, done func(emitter.Result)) error {
	r, _ := p.Emit(ctx, ev)
	done(r)
	return nil
}

// What a gateway does for one session: open it, authenticate, start,
// record each command before it runs (refusing it when the record fails),
// record its output as a stream, end.
func Example() {
	g, err := gateway.New(gateway.Config{Name: "sshgw", Kind: "ssh-gateway", Tenant: "acme", Emitter: printer{}})
	if err != nil {
		panic(err)
	}
	ctx := context.Background()
	if err := g.Start(ctx); err != nil {
		panic(err) // the gateway must not serve
	}
	s := g.Session(events.Target{Kind: "ssh", Name: "bastion"})
	s.Authenticated(gateway.Identity{Actor: events.Actor{Issuer: "ca", Subject: "alice", Kind: events.Human}, Method: gateway.SSHCertificate})
	if err := s.Start(ctx, map[string]any{}); err != nil {
		return // refuse the session
	}
	if _, err := s.Record(ctx, events.CommandExecuted, map[string]any{"statement": "uptime"}); err != nil {
		return // refuse the command
	}
	out := s.Stream("stdout", gateway.StreamConfig{})
	fmt.Fprint(out, "up 3 days")
	out.Close()
	s.End(ctx, map[string]any{"commands": 1})
	// Output:
	// 1 session.started alice {"auth_method":"ssh-certificate"}
	// 2 command.executed alice {"statement":"uptime"}
	// 3 session.output alice {"bytes":9,"data":"dXAgMyBkYXlz","offset":0,"sha256":"e89699b0f2648cd6c167b5e3d7e9017d882562d762c7c9146790612956277947","stream":"stdout"}
	// 4 session.ended alice {"commands":1}
}
