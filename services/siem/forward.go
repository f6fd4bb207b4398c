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
	// Send MUST be safe for concurrent use (the forwarder has up to
	// Config.Inflight batches out at once, unless the destination is a
	// Sequential one) and MUST return once ctx ends.
	Send(ctx context.Context, items []Item) (rejected map[int]error, err error)
	// String names the destination in logs.
	String() string
}

// Sequential is a Destination that takes one batch at a time, in order
// (syslog: one connection, a byte stream): the forwarder never has more
// than one of its batches out, whatever Config.Inflight says.
type Sequential interface {
	Destination
	Sequential()
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
	// Batch is the most items per Send (default 500). A batch fills
	// across AUDIT_LEDGER messages; it leaves when full, or as soon as a
	// request slot is free and no further message is waiting.
	Batch int
	// Inflight is how many batches may be at the destination at once
	// (default 4; 1 for a Sequential destination). Batches leave in log
	// order but may be confirmed out of order.
	Inflight int
	// Timeout bounds one attempt at a batch, whatever the destination
	// does: past it the attempt is abandoned and counts as failed
	// (default 5 minutes, above the destinations' own bounds: the
	// webhook's 30 s, HEC's acknowledgement wait of 2 minutes).
	Timeout time.Duration
	// Retries is how many times a failed batch is tried again, with
	// backoff from 100 ms up to 10 s, before the forwarder waits
	// RetryLater (default 30 s) and starts over; default 8. A batch is
	// never skipped.
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
// delivers every sealed record that passes its filters, at least once:
// an AUDIT_LEDGER message is acknowledged only once the destination
// confirmed every record in it and in every message before it.
type Forwarder struct {
	cfg     Config
	ackWait time.Duration
	metrics forwarderMetrics
	next    uint64 // the index after the last record taken in this run
	parkMu  sync.Mutex

	mu     sync.Mutex
	held   []*held       // messages not yet acknowledged, in delivery order
	ready  chan struct{} // a held message may have become acknowledgeable
	acking sync.WaitGroup
}

// held is an AUDIT_LEDGER message the forwarder has taken and not yet
// acknowledged.
type held struct {
	msg  jetstream.Msg
	open int // its items not yet confirmed or parked
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
	if cfg.Batch < 0 || cfg.Inflight < 0 || cfg.Timeout < 0 {
		return nil, fmt.Errorf("siem: forwarder %s: batch %d, inflight %d, timeout %v: none may be negative", cfg.Name, cfg.Batch, cfg.Inflight, cfg.Timeout)
	}
	if cfg.Batch == 0 {
		cfg.Batch = 500
	}
	if cfg.Inflight == 0 {
		cfg.Inflight = 4
	}
	if _, ok := cfg.Destination.(Sequential); ok {
		cfg.Inflight = 1
	}
	if cfg.Timeout == 0 {
		cfg.Timeout = 5 * time.Minute
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
	f := &Forwarder{cfg: cfg, ackWait: ackWait, ready: make(chan struct{}, 1)}
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

// ackWait is how long JetStream waits for an acknowledgement before it
// gives a message out again. A working forwarder tells JetStream every
// ackWait/3 that it still holds each of its messages, and a forwarder
// starting takes back at once what a killed one held (ResetConsumer), so
// neither a slow destination nor a restart waits for it.
var ackWait = 30 * time.Second

// Run delivers until ctx ends. A Forwarder runs once.
func (f *Forwarder) Run(ctx context.Context) error {
	cons, err := f.cfg.JetStream.CreateOrUpdateConsumer(ctx, bus.LedgerStream, jetstream.ConsumerConfig{
		Durable: f.Durable(), FilterSubject: bus.LedgerRecordsSubject, AckPolicy: jetstream.AckExplicitPolicy,
		DeliverPolicy: jetstream.DeliverAllPolicy, AckWait: f.ackWait, MaxDeliver: -1,
		// Enough for every batch out and the one filling to be made of
		// one-record messages.
		MaxAckPending: (f.cfg.Inflight + 2) * f.cfg.Batch,
		Description:   "auditledger forwarder " + f.cfg.Name + " to " + f.cfg.Destination.String(),
	})
	if err != nil {
		return fmt.Errorf("siem: forwarder %s: consumer: %w", f.cfg.Name, err)
	}
	// What a predecessor took and never acknowledged (it was killed)
	// comes again now, not after the ack wait. Acknowledgements go in
	// order, so nothing past the ack floor is acknowledged and the reset
	// repeats nothing the predecessor finished.
	if _, err := f.cfg.JetStream.ResetConsumer(ctx, bus.LedgerStream, f.Durable()); err != nil {
		f.cfg.Logger.Warn("forwarder: cannot take back unacknowledged messages; they come again after the ack wait", "forwarder", f.cfg.Name, "err", err, "ack_wait", f.ackWait)
	}
	f.cfg.Logger.Info("forwarder starting", "forwarder", f.cfg.Name, "destination", f.cfg.Destination.String(), "format", f.cfg.Format,
		"batch", f.cfg.Batch, "inflight", f.cfg.Inflight)

	msgs := make(chan jetstream.Msg)
	var wg sync.WaitGroup
	pctx, stopPipeline := context.WithCancel(ctx)
	defer func() {
		stopPipeline()
		wg.Wait()
		f.acking.Wait()
		// Acknowledge what was confirmed before the end.
		actx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		f.ack(actx)
	}()
	wg.Go(func() { f.fetch(pctx, cons, msgs) })
	wg.Go(func() { f.keepAlive(pctx) })
	f.acking.Go(func() {
		for {
			select {
			case <-pctx.Done():
				return
			case <-f.ready:
				f.ack(pctx)
			}
		}
	})
	slots := make(chan struct{}, f.cfg.Inflight)
	var batch []Item
	var owners []*held
	send := func() {
		items, of := batch, owners
		batch, owners = nil, nil
		wg.Go(func() {
			defer func() { <-slots }()
			if f.send(pctx, items) == nil {
				f.confirm(of)
			}
		})
	}
	for {
		switch {
		case len(batch) >= f.cfg.Batch:
			select {
			case <-pctx.Done():
				return nil
			case slots <- struct{}{}:
				send()
			}
			continue
		case len(batch) > 0:
			select { // more waiting: take it first
			case m := <-msgs:
				batch, owners = f.take(m, batch, owners)
				continue
			default:
			}
			select {
			case <-pctx.Done():
				return nil
			case m := <-msgs:
				batch, owners = f.take(m, batch, owners)
			case slots <- struct{}{}:
				send()
			}
		default:
			select {
			case <-pctx.Done():
				return nil
			case m := <-msgs:
				batch, owners = f.take(m, batch, owners)
			}
		}
	}
}

// fetch pulls AUDIT_LEDGER messages into msgs until ctx ends.
func (f *Forwarder) fetch(ctx context.Context, cons jetstream.Consumer, msgs chan<- jetstream.Msg) {
	for {
		err := f.pull(ctx, cons, msgs)
		if ctx.Err() != nil {
			return
		}
		f.cfg.Logger.Warn("forwarder: fetching", "forwarder", f.cfg.Name, "err", err)
		select { // the bus is away: try again shortly
		case <-ctx.Done():
			return
		case <-time.After(time.Second):
		}
	}
}

// pull passes messages on until ctx ends or the pull fails.
func (f *Forwarder) pull(ctx context.Context, cons jetstream.Consumer, msgs chan<- jetstream.Msg) error {
	it, err := cons.Messages(jetstream.PullMaxMessages(2 * f.cfg.Inflight))
	if err != nil {
		return err
	}
	defer it.Stop()
	defer context.AfterFunc(ctx, it.Stop)()
	for {
		m, err := it.Next()
		if err != nil {
			return err
		}
		select {
		case msgs <- m:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// keepAlive tells JetStream every ackWait/3 that the forwarder still
// works on each message it holds, however long a batch takes.
func (f *Forwarder) keepAlive(ctx context.Context) {
	t := time.NewTicker(f.ackWait / 3)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		f.mu.Lock()
		hs := slices.Clone(f.held)
		f.mu.Unlock()
		for _, h := range hs {
			h.msg.InProgress()
		}
	}
}

// take holds an AUDIT_LEDGER message and adds its records that pass the
// filters to batch, each with the message it belongs to in owners.
func (f *Forwarder) take(msg jetstream.Msg, batch []Item, owners []*held) ([]Item, []*held) {
	h := &held{msg: msg}
	first, err := strconv.ParseUint(msg.Headers().Get(bus.HeaderIndex), 10, 64)
	var raws [][]byte
	if err == nil {
		raws, err = bus.SplitRecords(msg.Data())
	}
	if err != nil {
		// The same bytes come again on every delivery: park the chunk
		// with the evidence rather than stop every record behind it.
		meta, _ := msg.Metadata()
		var seq uint64
		if meta != nil {
			seq = meta.Sequence.Stream
		}
		f.park(Item{Sealed: Sealed{Index: first}}, fmt.Errorf("AUDIT_LEDGER message %d (%s %q) unreadable: %w", seq, bus.HeaderIndex, msg.Headers().Get(bus.HeaderIndex), err))
		raws = nil
	}
	for i, raw := range raws {
		idx := first + uint64(i)
		if idx < f.next {
			continue // taken from an earlier copy of the message
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
		batch, owners = append(batch, Item{Sealed: s, Body: body}), append(owners, h)
		h.open++
	}
	f.next = max(f.next, first+uint64(len(raws)))
	f.mu.Lock()
	f.held = append(f.held, h)
	f.mu.Unlock()
	f.wake()
	return batch, owners
}

func (f *Forwarder) wake() {
	select {
	case f.ready <- struct{}{}:
	default:
	}
}

// confirm counts a batch's items as done with their messages.
func (f *Forwarder) confirm(owners []*held) {
	f.mu.Lock()
	for _, h := range owners {
		h.open--
	}
	f.mu.Unlock()
	f.wake()
}

// ack acknowledges the held messages, oldest first, up to the first one
// with a record not yet confirmed: JetStream's ack floor never passes a
// record that is not at the destination.
func (f *Forwarder) ack(ctx context.Context) {
	for {
		f.mu.Lock()
		if len(f.held) == 0 || f.held[0].open > 0 {
			f.mu.Unlock()
			return
		}
		h := f.held[0]
		f.mu.Unlock()
		if err := h.msg.DoubleAck(ctx); err != nil {
			if ctx.Err() == nil {
				// It comes again after the ack wait; its records are
				// then skipped (below next) and it is acknowledged.
				f.cfg.Logger.Warn("forwarder: acknowledging", "forwarder", f.cfg.Name, "err", err)
			}
			return
		}
		f.mu.Lock()
		f.held = f.held[1:]
		f.mu.Unlock()
	}
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

// send delivers one batch, retrying with backoff until it is delivered
// or ctx ends; a batch the destination rejects is sent one item at a
// time, and the items it refuses parked. Each attempt ends by
// cfg.Timeout, whatever the destination does.
func (f *Forwarder) send(ctx context.Context, items []Item) error {
	backoff := 100 * time.Millisecond
	for attempt := 0; ; attempt++ {
		actx, cancel := context.WithTimeout(ctx, f.cfg.Timeout)
		rejected, err := f.cfg.Destination.Send(actx, items)
		cancel()
		var rej *Rejection
		switch {
		case err == nil:
			f.delivered(items, rejected)
			return nil
		case errors.As(err, &rej) && len(items) > 1:
			for i := range items {
				if err := f.send(ctx, items[i:i+1]); err != nil {
					return err
				}
			}
			return nil
		case errors.As(err, &rej):
			f.park(items[0], err)
			return nil
		case ctx.Err() != nil:
			return ctx.Err()
		}
		f.metrics.failed.Inc()
		wait := backoff
		if attempt == f.cfg.Retries {
			f.cfg.Logger.Error("forwarder: destination keeps failing, trying again later", "forwarder", f.cfg.Name, "destination", f.cfg.Destination.String(),
				"records", fmt.Sprintf("%d-%d", items[0].Index, items[len(items)-1].Index), "attempts", attempt+1, "err", err, "in", f.cfg.RetryLater)
			wait, backoff, attempt = f.cfg.RetryLater, 100*time.Millisecond, -1
		} else {
			f.cfg.Logger.Warn("forwarder: destination failed, retrying", "forwarder", f.cfg.Name, "destination", f.cfg.Destination.String(), "err", err, "in", backoff)
			backoff = min(2*backoff, 10*time.Second)
		}
		if ra := (*RetryAfter)(nil); errors.As(err, &ra) && ra.After > wait {
			wait = ra.After // what the destination asked, capped
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(wait):
		}
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
