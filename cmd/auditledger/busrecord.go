package main

import (
	"context"
	"fmt"
	"io"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/auditledger/auditledger/cmd/auditledger/internal/busdial"
	"github.com/auditledger/auditledger/cmd/auditledger/internal/cli"
	"github.com/auditledger/auditledger/events"
	"github.com/auditledger/auditledger/ledger/bus"
	"github.com/auditledger/auditledger/ledger/bus/emitter"
)

// busRecorder is the bus, dialled as one principal, with an emitter for
// commands that record what they do one event at a time (erase, subject
// hold and release, legal-hold set and release) and must know the bus
// stored each before going on.
type busRecorder struct {
	js   jetstream.JetStream
	em   *emitter.Emitter
	dial *busdial.Dialer
}

// dialRecorder connects to url as principal p, with the nkey seed file
// or the credentials file given (neither: no credentials).
func dialRecorder(ctx context.Context, stderr io.Writer, name, url, nkey, creds string, p bus.Principal) (*busRecorder, error) {
	dial := &busdial.Dialer{URL: url, Name: name, SeedFile: nkey, Creds: creds, Log: cli.Logger(ctx, stderr, "text", "warn")}
	_, js, err := dial.Connect(p)
	if err != nil {
		dial.Close()
		return nil, err
	}
	em, err := emitter.New(emitter.Config{JetStream: js, Logger: dial.Log})
	if err != nil {
		dial.Close()
		return nil, err
	}
	return &busRecorder{js: js, em: em, dial: dial}, nil
}

// record publishes ev in a message of its own and waits, up to timeout,
// until JetStream has stored it.
func (b *busRecorder) record(ctx context.Context, ev *events.Event, timeout time.Duration) error {
	rctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	res, err := b.em.EmitAlone(rctx, ev)
	if err == nil {
		err = res.Stored(false)
	}
	if err != nil {
		return fmt.Errorf("recording %s %s: %w", ev.Type, ev.ID, err)
	}
	return nil
}

// close drains the emitter, then closes the connection.
func (b *busRecorder) close() error {
	err := b.em.Close()
	b.dial.Close()
	return err
}
