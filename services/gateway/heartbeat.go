package gateway

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"runtime/debug"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/auditledger/auditledger/ledger/bus"
	"github.com/auditledger/auditledger/ledger/bus/emitter"
)

// A running gateway says so: from Start to Close it puts its entry in
// the bus's heartbeat bucket (bus.HeartbeatBucket, key
// bus.HeartbeatKey(kind, instance)) every interval, and a last one
// marked stopped when it closes. The API reads them (GET /v1/processes),
// so that a gateway with no traffic shows alive rather than silent, and
// one that stopped without a word shows stale once its TTL has passed.
// Heartbeats are not records: the write-once log gets nothing from them.

// DefaultHeartbeatInterval is HeartbeatConfig.Interval when zero.
const DefaultHeartbeatInterval = 10 * time.Second

// HeartbeatConfig says how often a gateway beats and where.
type HeartbeatConfig struct {
	// Interval between two beats; zero means DefaultHeartbeatInterval,
	// negative no heartbeat at all.
	Interval time.Duration
	// TTL is how long after its last beat the gateway is taken for
	// alive (written in each entry for the readers); zero means three
	// intervals. It must be longer than Interval.
	TTL time.Duration
	// JetStream is the bus to beat on; nil means the Emitter's bus (an
	// *emitter.Emitter's), and no heartbeat for any other Recorder.
	JetStream jetstream.JetStream
}

// heartbeat puts a gateway's entry every interval until stopped.
type heartbeat struct {
	cfg   HeartbeatConfig
	js    jetstream.JetStream
	entry bus.Heartbeat
	key   string
	g     *Gateway

	kv      jetstream.KeyValue // opened at the first beat that reaches the bus
	failing bool               // the last beat failed (logged once until one succeeds)
	// life ends at Close, cutting short a beat the bus is slow to take.
	life context.Context
	end  context.CancelFunc
	done chan struct{}
	once sync.Once
}

// checkHeartbeat fills in hc's defaults; it fails on a TTL not longer
// than the interval.
func checkHeartbeat(hc HeartbeatConfig, name string) (HeartbeatConfig, error) {
	if hc.Interval < 0 {
		return hc, nil
	}
	if hc.Interval == 0 {
		hc.Interval = DefaultHeartbeatInterval
	}
	if hc.TTL == 0 {
		hc.TTL = 3 * hc.Interval
	}
	if hc.TTL <= hc.Interval {
		return hc, fmt.Errorf("%w: %s: heartbeat TTL %s not longer than its interval %s", ErrConfig, name, hc.TTL, hc.Interval)
	}
	return hc, nil
}

// startHeartbeat starts beating, when there is a bus to beat on. Start
// calls it once the gateway may serve.
func (g *Gateway) startHeartbeat() {
	hc, err := checkHeartbeat(g.cfg.Heartbeat, g.cfg.Name)
	if err != nil || hc.Interval < 0 {
		return // New refused a bad one
	}
	js := hc.JetStream
	if js == nil {
		if em, ok := g.cfg.Emitter.(*emitter.Emitter); ok {
			js = em.JetStream()
		}
	}
	if js == nil {
		return
	}
	host, _ := os.Hostname()
	h := &heartbeat{cfg: hc, js: js, g: g, key: bus.HeartbeatKey(g.source.Kind, g.source.Instance),
		entry: bus.Heartbeat{Kind: g.source.Kind, Instance: g.source.Instance, Tenant: g.cfg.Tenant, Role: g.cfg.Name,
			Version: buildVersion(), Host: host, PID: os.Getpid(), Started: time.Now().UTC(),
			Interval: hc.Interval.Seconds(), TTL: hc.TTL.Seconds()},
		done: make(chan struct{})}
	h.life, h.end = context.WithCancel(context.Background())
	if g.closed.Load() {
		return
	}
	g.beat.Store(h)
	go h.run()
	if g.closed.Load() {
		h.close() // Close ran meanwhile and may not have seen h
	}
}

// stopHeartbeat stops beating and puts the last entry, marked stopped
// (Close calls it).
func (g *Gateway) stopHeartbeat() {
	if h := g.beat.Load(); h != nil {
		h.close()
	}
}

func (h *heartbeat) run() {
	defer close(h.done)
	t := time.NewTicker(h.cfg.Interval)
	defer t.Stop()
	for {
		h.put(h.life, false)
		select {
		case <-h.life.Done():
			return
		case <-t.C:
		}
	}
}

// close stops the beats and puts the last entry, marked stopped, waiting
// at most stopTimeout for the bus: out of reach, the entry goes stale
// after its TTL instead of holding up the gateway's shutdown.
func (h *heartbeat) close() {
	h.once.Do(func() {
		h.end()
		<-h.done
		ctx, cancel := context.WithTimeout(context.Background(), stopTimeout)
		defer cancel()
		h.put(ctx, true)
	})
}

// stopTimeout bounds the wait for the last heartbeat at Close.
const stopTimeout = 2 * time.Second

// put puts the entry; a failure is logged (once until a beat succeeds
// again) and tried again at the next beat.
func (h *heartbeat) put(parent context.Context, stopped bool) {
	timeout := min(max(h.cfg.Interval, time.Second), 5*time.Second)
	ctx, cancel := context.WithTimeout(parent, timeout)
	defer cancel()
	err := h.putOnce(ctx, stopped)
	log := h.g.cfg.Logger
	switch {
	case err != nil && !stopped && h.life.Err() != nil:
		return // cut short by Close
	case err != nil && (!h.failing || stopped):
		log.Warn("gateway: heartbeat not stored on the bus (the processes page will show this gateway stale)",
			"gateway", h.g.cfg.Name, "bucket", bus.HeartbeatBucket, "key", h.key, "err", err)
	case err == nil && h.failing:
		log.Info("gateway: heartbeat stored on the bus again", "gateway", h.g.cfg.Name, "key", h.key)
	}
	h.failing = err != nil
}

func (h *heartbeat) putOnce(ctx context.Context, stopped bool) error {
	if h.kv == nil {
		kv, err := bus.CreateKeyValue(ctx, h.js, bus.HeartbeatBucketConfig()) // the same for every creator
		if err != nil {
			return err
		}
		h.kv = kv
	}
	e := h.entry
	e.Beat, e.Stopped = time.Now().UTC(), stopped
	b, err := json.Marshal(e)
	if err != nil {
		return err
	}
	if _, err := h.kv.Put(ctx, h.key, b); err != nil {
		return fmt.Errorf("putting %s: %w", h.key, err)
	}
	return nil
}

// buildVersion is the module version and source revision this binary
// was built from.
func buildVersion() string {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return "unknown"
	}
	v := bi.Main.Version
	for _, s := range bi.Settings {
		if s.Key == "vcs.revision" && len(s.Value) >= 12 {
			v += " " + s.Value[:12]
		}
	}
	return v
}
