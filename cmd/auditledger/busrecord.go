package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/auditledger/auditledger/cmd/auditledger/internal/busdial"
	"github.com/auditledger/auditledger/cmd/auditledger/internal/cli"
	"github.com/auditledger/auditledger/events"
	"github.com/auditledger/auditledger/ledger/bus"
	"github.com/auditledger/auditledger/ledger/bus/emitter"
	"github.com/auditledger/auditledger/ledger/piikeys"
	"github.com/auditledger/auditledger/services/gateway"
)

// busRecorder is the bus, dialled as one principal, with an emitter for
// commands that record what they do one event at a time (erase, subject
// hold and release, legal-hold set and release) and must know the bus
// stored each before going on.
type busRecorder struct {
	js   jetstream.JetStream
	em   *emitter.Emitter
	dial *busdial.Dialer
	keys *piikeys.Store // opened on the first record
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
	if err := b.recordingRule(rctx, ev); err != nil {
		return fmt.Errorf("recording %s %s: %w", ev.Type, ev.ID, err)
	}
	res, err := b.em.EmitAlone(rctx, ev)
	if err == nil {
		err = res.Stored(false)
	}
	if err != nil {
		return fmt.Errorf("recording %s %s: %w", ev.Type, ev.ID, err)
	}
	return nil
}

// recordingRule applies to ev what every producer applies before
// publishing (docs/FORMAT.md §1.5, §1.6): the actor's e-mail sealed and a
// personal subject, issuer or group recorded by pseudonym or placeholder
// (gateway.SealActor), every value a detector finds in the payload
// replaced and recorded by its keyed search digest under the tenant's key
// (gateway.EncodePayload). An operator named by e-mail address, or a
// reason that quotes one, is recorded so, never in clear (the writer
// would refuse the event).
func (b *busRecorder) recordingRule(ctx context.Context, ev *events.Event) error {
	if err := b.openKeys(ctx); err != nil {
		return err
	}
	actor, err := gateway.SealActor(ctx, b.keys, ev.Tenant, ev.Actor)
	if err != nil {
		return err
	}
	ev.Actor = actor
	d := json.NewDecoder(bytes.NewReader(ev.Payload))
	d.UseNumber()
	var payload map[string]any
	if err := d.Decode(&payload); err != nil {
		return fmt.Errorf("payload: %w", err)
	}
	key, err := b.keys.TenantKey(ctx, ev.Tenant)
	if err != nil {
		return err
	}
	ev.Payload, err = gateway.EncodePayload(payload, key)
	return err
}

// openKeys opens the key store on first use.
func (b *busRecorder) openKeys(ctx context.Context) error {
	if b.keys != nil {
		return nil
	}
	keys, err := piikeys.Open(ctx, b.js, 1)
	if err != nil {
		return err
	}
	b.keys = keys
	return nil
}

// recordedActor is a as the ledger records it (gateway.SealActor): for
// what names the actor outside the log, as a bundle's manifest does.
func (b *busRecorder) recordedActor(ctx context.Context, tenant string, a events.Actor) (events.Actor, error) {
	if err := b.openKeys(ctx); err != nil {
		return events.Actor{}, err
	}
	return gateway.SealActor(ctx, b.keys, tenant, a)
}

// close drains the emitter, then closes the connection.
func (b *busRecorder) close() error {
	err := b.em.Close()
	b.dial.Close()
	return err
}
