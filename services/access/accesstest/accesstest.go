// Package accesstest runs the access broker and a gateway's watcher on a
// test's bus, with a clock the test moves by hand.
package accesstest

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/auditledger/auditledger/events"
	"github.com/auditledger/auditledger/ledger"
	"github.com/auditledger/auditledger/ledger/bus/emitter"
	"github.com/auditledger/auditledger/ledger/ledgertest"
	"github.com/auditledger/auditledger/services/access"
)

// Clock is a clock the test moves by hand.
type Clock struct {
	mu sync.Mutex
	t  time.Time
}

// NewClock starts at a fixed instant.
func NewClock() *Clock { return &Clock{t: time.Date(2026, 12, 7, 9, 0, 0, 0, time.UTC)} }

// Now is the clock's time.
func (c *Clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }

// Set moves the clock to t.
func (c *Clock) Set(t time.Time) { c.mu.Lock(); c.t = t; c.mu.Unlock() }

// Add moves the clock on by d.
func (c *Clock) Add(d time.Duration) { c.mu.Lock(); c.t = c.t.Add(d); c.mu.Unlock() }

// Rig is a broker (the API's side) and a watcher (a gateway's side).
type Rig struct {
	Broker  *access.Broker
	Watcher *access.Watcher
	Clock   *Clock
	Key     *ledger.NoteSigner
}

// Start makes the bucket and runs a watcher until the test ends; the
// watcher's staleness limit is stale (zero: a minute).
func Start(t testing.TB, js jetstream.JetStream, em *emitter.Emitter, policy string, stale time.Duration) *Rig {
	t.Helper()
	rules, err := access.ParseRules("test.yaml", []byte(policy))
	if err != nil {
		t.Fatal(err)
	}
	c := NewClock()
	key := ledgertest.Signer(t, "api.test/approvals")
	b, err := access.New(t.Context(), access.Config{JetStream: js, Emitter: em, Source: events.Source{Kind: "api", Instance: "api-1"},
		Signer: key, Rules: rules, Create: true, Now: c.Now})
	if err != nil {
		t.Fatal(err)
	}
	if stale == 0 {
		stale = time.Minute
	}
	w, err := access.NewWatcher(t.Context(), access.WatcherConfig{JetStream: js, Verifier: key.Verifier(), Rules: rules, Emitter: em,
		Source: events.Source{Kind: "gateway", Instance: "gw-1"}, Now: c.Now, Stale: stale, Poll: 20 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { w.Run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	checkFor(t, func() error {
		if !w.Synced() {
			return errors.New("watcher not synced")
		}
		return nil
	})
	return &Rig{Broker: b, Watcher: w, Clock: c, Key: key}
}

// Grant asks for target as requester and has approver approve it; it
// waits until the watcher holds the grant.
func (r *Rig) Grant(t testing.TB, tenant string, requester, approver events.Actor, target string, d time.Duration) *access.Request {
	t.Helper()
	req, err := r.Broker.Request(t.Context(), access.Ask{Tenant: tenant, Requester: requester, Target: target, Duration: d, Reason: "test"})
	if err != nil {
		t.Fatal(err)
	}
	g, err := r.Broker.Approve(t.Context(), req.ID, approver, "ok")
	if err != nil {
		t.Fatal(err)
	}
	if g.Status != access.Approved {
		t.Fatalf("grant %s is %s after one approval", g.ID, g.Status)
	}
	checkFor(t, func() error {
		_, err := r.Watcher.Find(tenant, requester, target)
		return err
	})
	return g
}

// checkFor polls f until it returns nil, for up to five seconds.
func checkFor(t testing.TB, f func() error) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		err := f()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatal(err)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
