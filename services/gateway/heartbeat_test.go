package gateway_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/auditledger/auditledger/ledger/bus"
	"github.com/auditledger/auditledger/ledger/bus/emitter"
	"github.com/auditledger/auditledger/services/gateway"
	"github.com/auditledger/auditledger/test/natstest"
)

// A started gateway puts its heartbeat in the bucket every interval, with
// its own producer credentials (which may put its key only), adds no
// record to the log, and puts a last entry marked stopped when it
// closes.
func TestHeartbeat(t *testing.T) {
	ns := natstest.StartSecure(t, "gw-1")
	_, admin := ns.Connect(t)
	if err := bus.EnsureStreams(t.Context(), admin, bus.StreamOptions{}); err != nil {
		t.Fatal(err)
	}
	_, pjs := ns.ConnectAs(t, bus.Producer("gw-1"))
	em, err := emitter.New(emitter.Config{JetStream: pjs, Timeout: 2 * time.Second, Retries: 1})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { em.Close() })
	g, err := gateway.New(gateway.Config{Name: "pgproxy", Kind: "postgres-proxy", Instance: "gw-1", Tenant: "acme", Emitter: em,
		Heartbeat: gateway.HeartbeatConfig{Interval: 50 * time.Millisecond, TTL: 500 * time.Millisecond}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { g.Close() })
	if err := g.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	key := bus.HeartbeatKey("postgres-proxy", "gw-1")
	entry := func() (bus.Heartbeat, uint64, error) {
		kv, err := admin.KeyValue(t.Context(), bus.HeartbeatBucket)
		if err != nil {
			return bus.Heartbeat{}, 0, err
		}
		e, err := kv.Get(t.Context(), key)
		if err != nil {
			return bus.Heartbeat{}, 0, err
		}
		var hb bus.Heartbeat
		if err := json.Unmarshal(e.Value(), &hb); err != nil {
			return hb, 0, fmt.Errorf("%s: %w", e.Value(), err)
		}
		return hb, e.Revision(), nil
	}
	var first bus.Heartbeat
	var rev uint64
	natstest.CheckFor(t, 30*time.Second, 20*time.Millisecond, func() error {
		first, rev, err = entry()
		return err
	})
	if first.Kind != "postgres-proxy" || first.Instance != "gw-1" || first.Tenant != "acme" || first.Role != "pgproxy" || first.Version == "" ||
		first.Started.IsZero() || first.Beat.Before(first.Started) || first.Interval != 0.05 || first.TTL != 0.5 || first.Stopped || first.PID == 0 {
		t.Errorf("first heartbeat %+v", first)
	}
	// It beats again, and again: the entry is put anew, started kept.
	natstest.CheckFor(t, 30*time.Second, 20*time.Millisecond, func() error {
		hb, r, err := entry()
		if err != nil {
			return err
		}
		if r < rev+3 || !hb.Started.Equal(first.Started) || !hb.Beat.After(first.Beat) {
			return fmt.Errorf("revision %d (first %d), %+v", r, rev, hb)
		}
		return nil
	})
	// Beats are no records: the quiet gateway published no event.
	if evs := natstest.Events(t, admin, ""); len(evs) != 0 {
		t.Errorf("a quiet gateway's heartbeats put %d events on %s", len(evs), bus.EventsStream)
	}
	// Its credentials put its own key only.
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Second)
	defer cancel()
	if _, err := pjs.Publish(ctx, "$KV."+bus.HeartbeatBucket+"."+bus.HeartbeatKey("postgres-proxy", "gw-2"), []byte(`{}`)); err == nil {
		t.Errorf("gw-1's credentials put gw-2's heartbeat")
	}
	// Closed: a last entry says stopped.
	if err := g.Close(); err != nil {
		t.Fatal(err)
	}
	hb, _, err := entry()
	if err != nil || !hb.Stopped || !hb.Started.Equal(first.Started) {
		t.Errorf("after Close: %+v %v, want the entry marked stopped", hb, err)
	}
}

// A heartbeat whose TTL is not longer than its interval is refused; a
// negative interval beats nowhere.
func TestHeartbeatConfig(t *testing.T) {
	b := startBus(t, true)
	_, err := gateway.New(gateway.Config{Name: "pgproxy", Kind: "postgres-proxy", Tenant: "acme", Emitter: b.em,
		Heartbeat: gateway.HeartbeatConfig{Interval: time.Second, TTL: time.Second}})
	if !errors.Is(err, gateway.ErrConfig) {
		t.Errorf("TTL = interval: %v, want ErrConfig", err)
	}
	g, err := gateway.New(gateway.Config{Name: "pgproxy", Kind: "postgres-proxy", Tenant: "acme", Emitter: b.em,
		Heartbeat: gateway.HeartbeatConfig{Interval: -1}})
	if err != nil {
		t.Fatal(err)
	}
	if err := g.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	g.Close()
	if _, err := b.js.KeyValue(t.Context(), bus.HeartbeatBucket); !errors.Is(err, jetstream.ErrBucketNotFound) {
		t.Errorf("with no heartbeat, the bucket: %v, want none made", err)
	}
}
