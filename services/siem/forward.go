package siem

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/auditledger/auditledger/events"
	"github.com/auditledger/auditledger/ledger/bus"
)

// Item is one record on its way to a destination: the record and its
// rendering.
type Item struct {
	Sealed
	Body []byte
}

// Destination is where a forwarder delivers.
type Destination interface {
	// Send delivers items and returns only when the destination has
	// confirmed them: nil means every item not in rejected was accepted.
	// An error means nothing can be taken as delivered and the batch is
	// tried again; rejected maps an item's position to the reason the
	// destination refused it for good (it is parked, not retried).
	Send(ctx context.Context, items []Item) (rejected map[int]error, err error)
	// String names the destination in logs.
	String() string
}

// Rejection is an error the destination gives for a batch it will never
// accept as it is (an HTTP 400): the forwarder then sends the items one
// at a time, to park only those it refuses.
type Rejection struct{ Reason string }

func (r *Rejection) Error() string { return r.Reason }

// Config configures a forwarder.
type Config struct {
	// Name names the forwarder: its durable consumer on AUDIT_LEDGER
	// ("forward-NAME", bus.ForwarderDurable), its metrics label and its
	// parked file. JetStream should be connected as bus.Forwarder(Name),
	// the one role with rights on that consumer.
	Name        string
	JetStream   jetstream.JetStream
	Destination Destination
	Format      Format
	// Filter keeps only some records (its zero value: all).
	Filter Filter
	// Batch is the most items per Send (default 500).
	Batch int
	// Retries is how many times a failed batch is tried again, with
	// backoff from 100 ms up to 10 s, before the chunk is handed back to
	// JetStream to come again after RetryLater (default 30 s); default 8.
	Retries    int
	RetryLater time.Duration
	// Parked is the file events the destination refused are appended to,
	// one JSON object per line with the reason (default: none, logged
	// only).
	Parked   string
	Registry prometheus.Registerer
	Logger   *slog.Logger
}

// Forwarder follows AUDIT_LEDGER with a durable consumer of its own and
// delivers every sealed record that passes its filters, at least once, in
// log order: a chunk of records is acknowledged only after the
// destination confirmed all of them.
type Forwarder struct {
	cfg     Config
	metrics forwarderMetrics
	next    uint64 // the index after the last record delivered in this run
	parkMu  sync.Mutex
}

type forwarderMetrics struct {
	delivered, failed, retries, parked prometheus.Counter
	latency                            prometheus.Observer
	lag                                prometheus.Gauge
}

// New checks cfg and registers the forwarder's metrics.
func New(cfg Config) (*Forwarder, error) {
	if cfg.Name == "" || cfg.JetStream == nil || cfg.Destination == nil {
		return nil, errors.New("siem: a forwarder needs a name, JetStream and a destination")
	}
	if cfg.Format == "" {
		cfg.Format = JSON
	}
	if !slices.Contains(Formats, cfg.Format) {
		return nil, fmt.Errorf("siem: format %q unknown: want json, ocsf or cef", cfg.Format)
	}
	if cfg.Batch <= 0 {
		cfg.Batch = 500
	}
	if cfg.Retries <= 0 {
		cfg.Retries = 8
	}
	if cfg.RetryLater <= 0 {
		cfg.RetryLater = 30 * time.Second
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Registry == nil {
		cfg.Registry = prometheus.NewRegistry()
	}
	labels := prometheus.Labels{"forwarder": cfg.Name}
	counter := func(name, help string) prometheus.Counter {
		c := prometheus.NewCounter(prometheus.CounterOpts{Name: "auditledger_forwarder_" + name, Help: help, ConstLabels: labels})
		cfg.Registry.MustRegister(c)
		return c
	}
	f := &Forwarder{cfg: cfg}
	f.metrics.delivered = counter("delivered_total", "records the destination confirmed")
	f.metrics.failed = counter("failed_total", "batches the destination failed to take (each retried)")
	f.metrics.retries = counter("retries_total", "batches sent again after a failure")
	f.metrics.parked = counter("parked_total", "records the destination refused for good, parked with their reason")
	h := prometheus.NewHistogram(prometheus.HistogramOpts{Name: "auditledger_forwarder_delivery_seconds", Help: "from a record's sealing to the destination's confirmation",
		ConstLabels: labels, Buckets: prometheus.ExponentialBuckets(0.005, 2, 14)})
	g := prometheus.NewGauge(prometheus.GaugeOpts{Name: "auditledger_forwarder_lag_seconds", Help: "age of the last record confirmed when it was confirmed", ConstLabels: labels})
	cfg.Registry.MustRegister(h, g)
	f.metrics.latency, f.metrics.lag = h, g
	return f, nil
}

// Durable is the name of the forwarder's consumer on AUDIT_LEDGER, the
// only consumer its bus role, bus.Forwarder(Name), may use.
func (f *Forwarder) Durable() string { return bus.ForwarderDurable(f.cfg.Name) }

// Run delivers until ctx ends.
func (f *Forwarder) Run(ctx context.Context) error {
	cons, err := f.cfg.JetStream.CreateOrUpdateConsumer(ctx, bus.LedgerStream, jetstream.ConsumerConfig{
		Durable: f.Durable(), FilterSubject: bus.LedgerRecordsSubject, AckPolicy: jetstream.AckExplicitPolicy,
		DeliverPolicy: jetstream.DeliverAllPolicy, MaxAckPending: 1, AckWait: ackWait, MaxDeliver: -1,
		Description: "auditledger forwarder " + f.cfg.Name + " to " + f.cfg.Destination.String(),
	})
	if err != nil {
		return fmt.Errorf("siem: forwarder %s: consumer: %w", f.cfg.Name, err)
	}
	f.cfg.Logger.Info("forwarder starting", "forwarder", f.cfg.Name, "destination", f.cfg.Destination.String(), "format", f.cfg.Format)
	for ctx.Err() == nil {
		batch, err := cons.Fetch(1, jetstream.FetchMaxWait(5*time.Second))
		if err != nil {
			if ctx.Err() != nil {
				break
			}
			f.cfg.Logger.Warn("forwarder: fetching", "forwarder", f.cfg.Name, "err", err)
			time.Sleep(time.Second) // the bus is away: try again shortly
			continue
		}
		for msg := range batch.Messages() {
			if err := f.chunk(ctx, msg); err != nil {
				if ctx.Err() != nil {
					return nil
				}
				f.cfg.Logger.Error("forwarder: chunk handed back, to come again", "forwarder", f.cfg.Name, "err", err, "in", f.cfg.RetryLater)
				msg.NakWithDelay(f.cfg.RetryLater)
			}
		}
	}
	return nil
}

// ackWait is how long a chunk stays with a forwarder that stopped
// answering (killed) before JetStream gives it out again; a working
// forwarder tells JetStream every ackWait/3 that it still works on it.
const ackWait = 15 * time.Second

// chunk delivers one AUDIT_LEDGER message's records and acknowledges it.
func (f *Forwarder) chunk(ctx context.Context, msg jetstream.Msg) error {
	working := make(chan struct{})
	defer close(working)
	go func() {
		t := time.NewTicker(ackWait / 3)
		defer t.Stop()
		for {
			select {
			case <-working:
				return
			case <-t.C:
				msg.InProgress()
			}
		}
	}()
	first, _ := strconv.ParseUint(msg.Headers().Get(bus.HeaderIndex), 10, 64)
	raws, err := bus.SplitRecords(msg.Data())
	if err != nil {
		return err
	}
	var items []Item
	for i, raw := range raws {
		idx := first + uint64(i)
		if idx < f.next {
			continue // delivered from an earlier copy of the chunk
		}
		s, err := FromRecord(raw)
		if err != nil {
			f.park(Item{Sealed: Sealed{Index: idx}}, fmt.Errorf("not a readable record: %w", err))
			continue
		}
		if !f.cfg.Filter.Keep(s.Event) {
			continue
		}
		body, err := Render(f.cfg.Format, s)
		if err != nil {
			f.park(Item{Sealed: s}, fmt.Errorf("rendering: %w", err))
			continue
		}
		items = append(items, Item{Sealed: s, Body: body})
	}
	for len(items) > 0 {
		n := min(len(items), f.cfg.Batch)
		if err := f.send(ctx, msg, items[:n]); err != nil {
			return err
		}
		items = items[n:]
	}
	if err := msg.DoubleAck(ctx); err != nil {
		return fmt.Errorf("acknowledging: %w", err)
	}
	f.next = max(f.next, first+uint64(len(raws)))
	return nil
}

// Filter keeps the records of some tenants and event types; an empty
// list keeps all.
type Filter struct {
	Tenants []string
	Types   []events.Type
}

// Keep reports whether ev passes.
func (f Filter) Keep(ev *events.Event) bool {
	return (len(f.Tenants) == 0 || slices.Contains(f.Tenants, ev.Tenant)) &&
		(len(f.Types) == 0 || slices.Contains(f.Types, ev.Type))
}

// ParseTypes reads event type names (blank ones skipped), refusing a name
// that is not in the catalog.
func ParseTypes(names []string) ([]events.Type, error) {
	var out []events.Type
	for _, n := range names {
		if n = strings.TrimSpace(n); n == "" {
			continue
		}
		if !events.Type(n).Known() {
			return nil, fmt.Errorf("%q is not an event type (docs/FORMAT.md §1)", n)
		}
		out = append(out, events.Type(n))
	}
	return out, nil
}

// send delivers one batch, retrying with backoff; a batch the destination
// rejects is sent one item at a time, and the items it refuses parked.
func (f *Forwarder) send(ctx context.Context, msg jetstream.Msg, items []Item) error {
	backoff := 100 * time.Millisecond
	for attempt := 0; ; attempt++ {
		rejected, err := f.cfg.Destination.Send(ctx, items)
		var rej *Rejection
		switch {
		case err == nil:
			f.delivered(items, rejected)
			return nil
		case errors.As(err, &rej) && len(items) > 1:
			for i := range items {
				if err := f.send(ctx, msg, items[i:i+1]); err != nil {
					return err
				}
			}
			return nil
		case errors.As(err, &rej):
			f.park(items[0], err)
			return nil
		}
		f.metrics.failed.Inc()
		if attempt == f.cfg.Retries || ctx.Err() != nil {
			return fmt.Errorf("%s: %d attempts: %w", f.cfg.Destination, attempt+1, err)
		}
		f.cfg.Logger.Warn("forwarder: destination failed, retrying", "forwarder", f.cfg.Name, "destination", f.cfg.Destination.String(), "err", err, "in", backoff)
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, 10*time.Second)
		f.metrics.retries.Inc()
	}
}

func (f *Forwarder) delivered(items []Item, rejected map[int]error) {
	now := time.Now()
	for i, it := range items {
		if err, ok := rejected[i]; ok {
			f.park(it, err)
			continue
		}
		f.metrics.delivered.Inc()
		f.metrics.latency.Observe(now.Sub(it.SealedAt).Seconds())
	}
	if len(items) > 0 {
		f.metrics.lag.Set(now.Sub(items[len(items)-1].SealedAt).Seconds())
	}
}

// park records an item the destination refused for good: logged, counted
// and appended to the parked file with its reason.
func (f *Forwarder) park(it Item, reason error) {
	f.metrics.parked.Inc()
	id := ""
	if it.Event != nil {
		id = it.Event.ID
	}
	f.cfg.Logger.Error("forwarder: record parked: the destination refused it", "forwarder", f.cfg.Name, "index", it.Index, "event_id", id, "reason", reason)
	if f.cfg.Parked == "" {
		return
	}
	line, _ := json.Marshal(map[string]any{"forwarder": f.cfg.Name, "index": it.Index, "event_id": id, "reason": reason.Error(),
		"parked_at": time.Now().UTC(), "body": string(it.Body)})
	f.parkMu.Lock()
	defer f.parkMu.Unlock()
	os.MkdirAll(filepath.Dir(f.cfg.Parked), 0o700)
	file, err := os.OpenFile(f.cfg.Parked, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		f.cfg.Logger.Error("forwarder: parked file", "err", err)
		return
	}
	defer file.Close()
	file.Write(append(line, '\n'))
	file.Sync()
}
