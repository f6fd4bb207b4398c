package bus_test

import (
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/auditledger/auditledger/ledger/bus"
	"github.com/auditledger/auditledger/test/natstest"
)

// EnsureStreams, called again as every role of a process starts, leaves
// streams already as wanted alone: no update (an update racing a
// consumer's creation on the stream is a data race in nats-server, which
// a dev built with -race reported). Seen by the servers' advisories: none
// for the four streams before one of a stream updated afterwards on
// purpose.
func TestEnsureStreamsLeavesCurrentStreams(t *testing.T) {
	srv := natstest.Start(t)
	nc, js := srv.Connect(t)
	if err := bus.EnsureStreams(t.Context(), js, bus.StreamOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := js.CreateStream(t.Context(), jetstream.StreamConfig{Name: "SENTINEL", Subjects: []string{"sentinel"}}); err != nil {
		t.Fatal(err)
	}
	updated := make(chan string, 16)
	sub, err := nc.Subscribe("$JS.EVENT.ADVISORY.STREAM.UPDATED.>", func(m *nats.Msg) { updated <- m.Subject })
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Unsubscribe()
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
	if err := bus.EnsureStreams(t.Context(), js, bus.StreamOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := js.UpdateStream(t.Context(), jetstream.StreamConfig{Name: "SENTINEL", Subjects: []string{"sentinel"}, Description: "now"}); err != nil {
		t.Fatal(err)
	}
	for {
		select {
		case s := <-updated:
			if s == "$JS.EVENT.ADVISORY.STREAM.UPDATED.SENTINEL" {
				return
			}
			t.Fatalf("a second EnsureStreams updated a stream already as wanted: %s", s)
		case <-time.After(30 * time.Second):
			t.Fatal("no advisory of the sentinel's update")
		}
	}
}
