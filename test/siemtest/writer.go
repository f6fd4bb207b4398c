package siemtest

import (
	"context"
	"io"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/auditledger/auditledger/ledger"
	"github.com/auditledger/auditledger/ledger/bus"
	"github.com/auditledger/auditledger/ledger/bus/emitter"
	"github.com/auditledger/auditledger/ledger/file"
	"github.com/auditledger/auditledger/ledger/ingest"
	"github.com/auditledger/auditledger/test/natstest"
)

// Writer runs the real ledger writer on an in-process NATS server until
// the test ends: events emitted with the emitter are sealed and published
// on AUDIT_LEDGER, as in production, for a forwarder to follow.
func Writer(t *testing.T) (*natstest.Server, jetstream.JetStream, *emitter.Emitter) {
	t.Helper()
	ns := natstest.Start(t)
	_, js := ns.Connect(t)
	if err := bus.EnsureStreams(t.Context(), js, bus.StreamOptions{}); err != nil {
		t.Fatal(err)
	}
	store, _ := file.New(t.TempDir())
	skey, _, _ := ledger.GenerateKey(nil, "siem.test/log")
	signer, _ := ledger.NewNoteSigner(skey)
	l, err := ledger.Open(t.Context(), ledger.Config{Store: store, Signer: signer})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	in, err := ingest.New(ctx, ingest.Config{JetStream: js, Log: l, Store: store, BatchSize: 50, MaxWait: 10 * time.Millisecond, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	wg.Go(func() { in.Run(ctx) })
	t.Cleanup(func() { cancel(); wg.Wait() })
	em, _ := emitter.New(emitter.Config{JetStream: js})
	t.Cleanup(func() { em.Close() })
	return ns, js, em
}
