package emitter_test

import (
	"context"
	"fmt"
	"os"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/auditledger/auditledger/events"
	"github.com/auditledger/auditledger/ledger/bus"
	"github.com/auditledger/auditledger/ledger/bus/emitter"
)

// A proxy emits one event per statement and counts it as recorded only
// once JetStream has stored it.
func Example() {
	// An embedded JetStream server stands in for the production cluster.
	dir, _ := os.MkdirTemp("", "emitter-example-")
	defer os.RemoveAll(dir)
	ns, _ := server.NewServer(&server.Options{Host: "127.0.0.1", Port: -1, JetStream: true, StoreDir: dir, NoLog: true, NoSigs: true})
	ns.Start()
	defer ns.Shutdown()
	ns.ReadyForConnections(10 * time.Second)
	nc, _ := nats.Connect(ns.ClientURL())
	defer nc.Close()
	js, _ := jetstream.New(nc)
	ctx := context.Background()
	js.CreateStream(ctx, jetstream.StreamConfig{Name: "AUDIT_EVENTS", Subjects: []string{"audit.events.>", bus.BatchSubjects}})

	em, err := emitter.New(emitter.Config{JetStream: js, SpoolDir: dir + "/spool"})
	if err != nil {
		panic(err)
	}
	defer em.Close()
	session := &emitter.Session{ID: "sess-42"}
	ev := &events.Event{
		Version: events.Version, ID: "stmt-0001", Type: events.CommandExecuted,
		Time: time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC), Tenant: "acme",
		Source:  events.Source{Kind: "postgres-proxy", Instance: "pgproxy-1"},
		Actor:   events.Actor{Issuer: "https://idp.example.com", Subject: "u-1042", Kind: events.Human},
		Target:  &events.Target{Kind: "postgres", Database: "orders"},
		Payload: []byte(`{"statement":"SELECT 1"}`),
	}
	session.Next(ev)
	r, err := em.Emit(ctx, ev)
	if err != nil {
		fmt.Println("not recorded:", err) // a fail-closed proxy refuses the statement here
		return
	}
	fmt.Printf("event %s (session %s #%d) stored at stream sequence %d, spooled: %v\n", r.ID, ev.SessionID, ev.SessionSeq, r.Seq, r.Spooled)
	// Output: event stmt-0001 (session sess-42 #1) stored at stream sequence 1, spooled: false
}
