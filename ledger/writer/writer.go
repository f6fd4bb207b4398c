// Package writer is the ledger writer: it holds the single-writer lease
// for a log in a NATS KV bucket, opens the log when it becomes the writer,
// runs the ingester, and registers its metrics and readiness in the
// process's health (internal/health).
//
// Two writers can never fork a log: the lease makes one of them active and
// a standby takes over within a lease TTL of the active writer's death; and
// should a stale writer still try to seal, the store's conditional create
// refuses it (ledger.ErrFenced).
package writer

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/auditledger/auditledger/internal/health"
	"github.com/auditledger/auditledger/ledger"
	"github.com/auditledger/auditledger/ledger/bus"
	"github.com/auditledger/auditledger/ledger/ingest"
)

// Config configures the ledger role.
type Config struct {
	JetStream jetstream.JetStream // required
	Store     ledger.SegmentStore // required
	Signer    *ledger.NoteSigner  // required
	Retention time.Duration       // lock per sealed object; zero for a local store. With TenantRetention, the default
	// TenantRetention overrides Retention per tenant (ledger.Config). When
	// the writer takes the log, any difference from the retention its
	// records last recorded is sealed first, as ledger.retention.changed
	// records; with neither recorded nor per-tenant retention, nothing is.
	TenantRetention map[string]time.Duration
	// RetentionSource says where the retention was configured, for those
	// records (e.g. "ledger.retention in /etc/auditledger.yaml"); empty:
	// "the writer's configuration".
	RetentionSource string
	Streams         bus.StreamOptions   // replicas and duplicate window
	Consumer        string              // durable consumer and lease key; empty means "ledger"
	BatchSize       int                 // see ingest.Config
	MaxWait         time.Duration       // see ingest.Config
	LeaseTTL        time.Duration       // zero means 5s; while renewals fail the writer pauses sealing at 4/5 of it (see lease)
	Logger          *slog.Logger        // nil means slog.Default()
	OnWriter        func(l *ledger.Log) // called when this process becomes the writer (tests, dev banner)
	Instance        string              // lease holder name; empty means hostname-pid-random
	Health          *health.Health      // where the role registers its metrics and readiness; nil: a private one
	NewLog          bool                // see ingest.Config.NewLog
	IndexDir        string              // see ingest.Config.IndexDir
	// Producers and RequireSigned: see ingest.Config.
	Producers     *ledger.Producers
	RequireSigned bool
	// Clock and ClockEvery: see ingest.Config (the clock's status sealed
	// at start and hourly).
	Clock      func() ledger.ClockStatus
	ClockEvery time.Duration
	// Verify and VerifyEvery: see ingest.Config (full verifications of
	// the log sealed at start and daily).
	Verify      func(ctx context.Context, known uint64) (ledger.Verification, bool)
	VerifyEvery time.Duration

	metrics *writerMetrics // set by Run
}

// writerMetrics is the ledger role's state and metrics in one process's
// health (one per Health, so a role run again in the same process reuses
// them).
type writerMetrics struct {
	writer    atomic.Bool
	ready     atomic.Bool
	ingester  atomic.Pointer[ingest.Ingester]
	js        jetstream.JetStream
	consumer  string
	log       atomic.Pointer[ledger.Log]
	takeovers atomic.Uint64
	lost      atomic.Uint64         // leases lost to another writer
	lease     atomic.Pointer[lease] // while this process is the writer
	sealSec   prometheus.Histogram
	sealedAge prometheus.Histogram
}

var writerMetricsByHealth sync.Map // *health.Health → *writerMetrics

// metricsFor returns the writer's metrics in h, registering them once.
func metricsFor(h *health.Health) *writerMetrics {
	if m, ok := writerMetricsByHealth.Load(h); ok {
		return m.(*writerMetrics)
	}
	m := &writerMetrics{}
	if prev, loaded := writerMetricsByHealth.LoadOrStore(h, m); loaded {
		return prev.(*writerMetrics)
	}
	m.register(h.Registry())
	return m
}

// register registers the ledger role's metrics.
func (m *writerMetrics) register(reg *prometheus.Registry) {
	m.sealSec = prometheus.NewHistogram(prometheus.HistogramOpts{Name: "auditledger_seal_seconds",
		Help:    "time to seal one batch: segment written, checkpoint signed and stored",
		Buckets: prometheus.ExponentialBuckets(0.001, 2, 14)})
	m.sealedAge = prometheus.NewHistogram(prometheus.HistogramOpts{Name: "auditledger_publish_to_sealed_seconds",
		Help:    "from an event's own time (when its producer made it) to its seal",
		Buckets: prometheus.ExponentialBuckets(0.001, 2, 16)})
	reg.MustRegister(m.sealSec, m.sealedAge, writerCollector{m})
}

// observeSeal is the ingester's OnSeal hook.
func (m *writerMetrics) observeSeal(took time.Duration, ages []time.Duration) {
	m.sealSec.Observe(took.Seconds())
	for _, a := range ages {
		m.sealedAge.Observe(a.Seconds())
	}
}

// Run runs the ledger role until ctx is cancelled.
func Run(ctx context.Context, cfg Config) error {
	if cfg.JetStream == nil || cfg.Store == nil || cfg.Signer == nil {
		return errors.New("service: JetStream, Store and Signer are required")
	}
	if cfg.Consumer == "" {
		cfg.Consumer = "ledger"
	}
	if cfg.LeaseTTL <= 0 {
		cfg.LeaseTTL = 5 * time.Second
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Instance == "" {
		host, _ := os.Hostname()
		var b [4]byte
		rand.Read(b[:])
		cfg.Instance = fmt.Sprintf("%s-%d-%s", host, os.Getpid(), hex.EncodeToString(b[:]))
	}
	if cfg.Health == nil {
		cfg.Health = &health.Health{}
	}
	m := metricsFor(cfg.Health)
	m.js, m.consumer = cfg.JetStream, cfg.Consumer
	cfg.metrics = m
	cfg.Health.AddReadiness("ledger", func() (string, error) {
		switch {
		case !m.ready.Load():
			return "", errors.New("streams and lease bucket not set up yet")
		case m.writer.Load():
			if ls := m.lease.Load(); ls != nil {
				if ok, until := ls.valid(); !ok {
					return "", fmt.Errorf("the lease could not be renewed since %s: sealing paused until it is", until.Format(time.RFC3339))
				}
			}
			if in := m.ingester.Load(); in != nil {
				if err := in.Stats.SealFailure.Load(); err != nil {
					return "", fmt.Errorf("sealing fails (retrying; nothing is acknowledged meanwhile): %v", *err)
				}
			}
			return "writer", nil
		}
		return "standby", nil
	})
	if err := bus.EnsureStreams(ctx, cfg.JetStream, cfg.Streams); err != nil {
		return err
	}
	kv, err := bus.CreateOrUpdateKeyValue(ctx, cfg.JetStream, jetstream.KeyValueConfig{
		Bucket: bus.LeaseBucket, Description: "single-writer leases of ledger logs",
		TTL: cfg.LeaseTTL, History: 1, Replicas: max(cfg.Streams.Replicas, 1),
	})
	if err != nil {
		return fmt.Errorf("service: lease bucket: %w", err)
	}
	m.ready.Store(true)
	defer m.ready.Store(false)
	for ctx.Err() == nil {
		sent := time.Now()
		rev, err := kv.Create(ctx, cfg.Consumer, []byte(cfg.Instance))
		if err != nil {
			if !errors.Is(err, jetstream.ErrKeyExists) && ctx.Err() == nil {
				cfg.Logger.Warn("lease: cannot reach the lease bucket", "err", err)
			}
			sleep(ctx, cfg.LeaseTTL/4)
			continue
		}
		m.takeovers.Add(1)
		cfg.Logger.Info("lease acquired: this process is the writer", "log", cfg.Consumer, "instance", cfg.Instance)
		ls := newLease(cfg, kv, rev, sent)
		err = runWriter(ctx, cfg, ls)
		m.writer.Store(false)
		if ctx.Err() != nil {
			// Release so a standby need not wait for the TTL.
			kv.Delete(context.WithoutCancel(ctx), cfg.Consumer, jetstream.LastRevision(ls.rev.Load()))
			return nil
		}
		if errors.Is(err, ingest.ErrStoreBehind) {
			// Not something a retry fixes: the operator must look.
			kv.Delete(context.WithoutCancel(ctx), cfg.Consumer, jetstream.LastRevision(ls.rev.Load()))
			return err
		}
		if errors.Is(err, ledger.ErrFenced) {
			cfg.Logger.Error("another writer sealed this log: standing by", "err", err)
		} else if err != nil {
			cfg.Logger.Error("writer stopped; retrying", "err", err)
		}
		sleep(ctx, cfg.LeaseTTL/4)
	}
	return nil
}

// runWriter holds the lease while it opens the log and ingests; losing
// the lease cancels the ingester.
func runWriter(ctx context.Context, cfg Config, ls *lease) error {
	ctx, cancel := context.WithCancelCause(ctx)
	var wg sync.WaitGroup
	defer wg.Wait()
	defer cancel(nil)
	cfg.metrics.lease.Store(ls)
	defer cfg.metrics.lease.Store(nil)
	wg.Go(func() {
		if err := ls.hold(ctx); err != nil && ctx.Err() == nil {
			cfg.metrics.lost.Add(1)
			cfg.Logger.Error("lease lost: stopping the writer", "err", err)
			cancel(fmt.Errorf("lease lost: %w", err))
		}
	})
	l, err := ledger.Open(ctx, ledger.Config{Store: cfg.Store, Signer: cfg.Signer, Retention: cfg.Retention, TenantRetention: cfg.TenantRetention})
	if err != nil {
		return err
	}
	in, err := ingest.New(ctx, ingest.Config{
		JetStream: cfg.JetStream, Log: l, Store: cfg.Store, Consumer: cfg.Consumer,
		BatchSize: cfg.BatchSize, MaxWait: cfg.MaxWait, Logger: cfg.Logger, NewLog: cfg.NewLog,
		Producers: cfg.Producers, RequireSigned: cfg.RequireSigned, IndexDir: cfg.IndexDir,
		OnSeal: cfg.metrics.observeSeal, Lease: ls, Clock: cfg.Clock, ClockEvery: cfg.ClockEvery,
		Verify: cfg.Verify, VerifyEvery: cfg.VerifyEvery,
	})
	if err != nil {
		return err
	}
	// After ingest.New, which refuses a store that is behind the bus, and
	// before the first seal: Run publishes these records with the rest.
	if err := recordRetention(ctx, cfg, l); err != nil {
		return err
	}
	cfg.metrics.log.Store(l)
	cfg.metrics.ingester.Store(in)
	cfg.metrics.writer.Store(true)
	if cfg.OnWriter != nil {
		cfg.OnWriter(l)
	}
	err = in.Run(ctx)
	if cause := context.Cause(ctx); err == nil && cause != nil && !errors.Is(cause, context.Canceled) {
		return cause
	}
	return err
}

// recordRetention seals the differences between the configured retention
// and the one the log last recorded, before any segment the new one
// applies to. A log that records none and a configuration without
// per-tenant retention need no record: verify then checks the one
// retention it is given.
func recordRetention(ctx context.Context, cfg Config, l *ledger.Log) error {
	want := ledger.Retention{Default: cfg.Retention, Tenants: cfg.TenantRetention}
	had, recorded := l.RecordedRetention()
	if !recorded && len(want.Tenants) == 0 {
		return nil
	}
	source := cfg.RetentionSource
	if source == "" {
		source = "the writer's configuration"
	}
	changes := want.Changes(had, fmt.Sprintf("%s, recorded by writer %s", source, cfg.Instance))
	if len(changes) == 0 {
		return nil
	}
	entries, err := ledger.RetentionEntries(l.Origin(), l.Size(), changes, time.Now())
	if err != nil {
		return err
	}
	if _, err := l.Append(ctx, entries); err != nil {
		return fmt.Errorf("service: recording the retention change: %w", err)
	}
	for _, c := range changes {
		cfg.Logger.Info("retention change recorded", "tenant", c.Tenant, "old", c.Old, "new", c.New)
	}
	return nil
}

// errLeaseLost: the lease key names another writer, at a revision newer
// than this holder's.
var errLeaseLost = errors.New("service: the lease is held by another writer")

// lease is this process's hold on its log's key in the lease bucket.
//
// The key expires TTL after its last write, on every replica by its own
// clock, whether or not the bucket has a leader. So the holder may write
// until TTL less a margin (clock skew between the servers, a seal in
// flight) after the start of its last successful renewal. A failed renewal
// is retried, without end: while the bus cannot renew the lease, nobody
// can take it either. Past the deadline sealing waits (Wait), and it
// resumes when a renewal proves the key still this holder's, or when the
// key expired and this holder creates it again (nobody else took it; one
// who held it in between would have sealed, and the store then fences
// this writer: ledger.ErrFenced). The lease is lost only when the key
// names another writer.
type lease struct {
	kv       jetstream.KeyValue
	key      string
	instance string
	ttl      time.Duration
	log      *slog.Logger
	rev      atomic.Uint64 // the key's revision this holder last wrote

	mu      sync.Mutex
	until   time.Time     // writes are safe before this
	lost    error         // set once the key names another writer
	changed chan struct{} // closed (and replaced) when until or lost changes
}

func newLease(cfg Config, kv jetstream.KeyValue, rev uint64, acquired time.Time) *lease {
	ls := &lease{kv: kv, key: cfg.Consumer, instance: cfg.Instance, ttl: cfg.LeaseTTL, log: cfg.Logger, changed: make(chan struct{})}
	ls.renewed(rev, acquired)
	return ls
}

// safeFor is how long after a write's start the lease surely holds.
func (ls *lease) safeFor() time.Duration { return ls.ttl - ls.ttl/5 }

// renewed records a write of the key at rev that started at sent.
func (ls *lease) renewed(rev uint64, sent time.Time) {
	ls.rev.Store(rev)
	ls.mu.Lock()
	defer ls.mu.Unlock()
	ls.until = sent.Add(ls.safeFor())
	close(ls.changed)
	ls.changed = make(chan struct{})
}

// lose records that the key names another writer.
func (ls *lease) lose(err error) {
	ls.mu.Lock()
	defer ls.mu.Unlock()
	ls.lost = err
	close(ls.changed)
	ls.changed = make(chan struct{})
}

// valid reports whether writes are safe now, and until when.
func (ls *lease) valid() (bool, time.Time) {
	ls.mu.Lock()
	defer ls.mu.Unlock()
	return ls.lost == nil && time.Now().Before(ls.until), ls.until
}

// Wait returns nil at once while the lease surely holds; past its
// deadline it waits until a renewal proves it held again. It returns an
// error once the lease is lost or ctx ends (ingest.Lease).
func (ls *lease) Wait(ctx context.Context) error {
	for {
		ls.mu.Lock()
		lost, ok, changed := ls.lost, time.Now().Before(ls.until), ls.changed
		ls.mu.Unlock()
		switch {
		case lost != nil:
			return lost
		case ok:
			return nil
		}
		select {
		case <-changed:
		case <-ctx.Done():
			return context.Cause(ctx)
		}
	}
}

// hold renews the lease every quarter of its TTL, and every 100ms while
// renewals fail, until ctx ends (nil) or the lease is lost.
func (ls *lease) hold(ctx context.Context) error {
	wait := ls.ttl / 4
	var failing time.Time // since when renewals fail; zero while they succeed
	paused := false
	for {
		sleep(ctx, wait)
		if ctx.Err() != nil {
			return nil
		}
		sent := time.Now()
		err := ls.renew(ctx, sent)
		switch {
		case ctx.Err() != nil:
			return nil
		case errors.Is(err, errLeaseLost):
			ls.lose(err)
			return err
		case err == nil:
			if !failing.IsZero() {
				ls.log.Info("lease renewed after failed renewals", "failing_for", time.Since(failing).Round(time.Millisecond), "sealing_paused", paused)
			}
			failing, paused, wait = time.Time{}, false, ls.ttl/4
			continue
		}
		wait = 100 * time.Millisecond
		if failing.IsZero() {
			failing = sent
			ls.log.Warn("lease renewal failed; retrying (the lease holds until it names another writer)", "err", err)
		}
		if ok, until := ls.valid(); !ok && !paused {
			paused = true
			ls.log.Warn("lease not renewed in time: sealing paused until it is", "err", err, "since", until.Format(time.RFC3339Nano))
		}
	}
}

// renew writes the key again at the revision this holder last wrote. It
// returns an error wrapping errLeaseLost when the key names another writer
// at a newer revision; any other error leaves the lease in doubt.
func (ls *lease) renew(ctx context.Context, sent time.Time) error {
	ctx, cancel := context.WithTimeout(ctx, ls.ttl/4)
	defer cancel()
	rev := ls.rev.Load()
	r, err := ls.kv.Update(ctx, ls.key, []byte(ls.instance), rev)
	if err == nil {
		ls.renewed(r, sent)
		return nil
	}
	if !errors.Is(err, jetstream.ErrKeyExists) {
		return err
	}
	// The key is no longer at rev: a renewal whose answer was lost
	// landed, it expired, or another writer holds it. Reads may come from
	// a replica that lags (direct get), so only a newer revision counts.
	e, gerr := ls.kv.Get(ctx, ls.key)
	switch {
	case gerr == nil && e.Revision() <= rev:
		return fmt.Errorf("service: renew lease at revision %d: %w (read revision %d from a lagging replica)", rev, err, e.Revision())
	case gerr == nil && string(e.Value()) == ls.instance:
		ls.rev.Store(e.Revision()) // renew from there, next time
		return fmt.Errorf("service: renew lease at revision %d: %w (an earlier renewal landed at %d)", rev, err, e.Revision())
	case gerr == nil:
		return fmt.Errorf("%w: %q at revision %d (this writer's was %d)", errLeaseLost, e.Value(), e.Revision(), rev)
	case !errors.Is(gerr, jetstream.ErrKeyNotFound):
		return fmt.Errorf("service: renew lease at revision %d: %w; reading it: %w", rev, err, gerr)
	}
	// Expired (or deleted): nobody holds it, and creating it is atomic.
	r, cerr := ls.kv.Create(ctx, ls.key, []byte(ls.instance))
	if cerr != nil {
		// Another writer's create, or this one's whose answer was lost:
		// the next read tells.
		return fmt.Errorf("service: lease expired at revision %d; taking it again: %w", rev, cerr)
	}
	ls.log.Warn("lease expired while it could not be renewed; taken again", "revision", r)
	ls.renewed(r, sent)
	return nil
}

func sleep(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
	case <-ctx.Done():
	}
}

// writerCollector reads the writer's running totals at each scrape.
type writerCollector struct{ m *writerMetrics }

var (
	descWriter    = prometheus.NewDesc("auditledger_writer", "1 if this process holds the writer lease", nil, nil)
	descTakeovers = prometheus.NewDesc("auditledger_lease_acquired_total", "times this process became the writer", nil, nil)
	descLost      = prometheus.NewDesc("auditledger_lease_lost_total", "times this process lost the writer lease to another writer", nil, nil)
	descLogSize   = prometheus.NewDesc("auditledger_log_size", "records sealed in the log", nil, nil)
	descCounters  = map[string]*prometheus.Desc{
		"ingested":    prometheus.NewDesc("auditledger_ingested_total", "records sealed by this process (events, rejections, gaps)", nil, nil),
		"rejected":    prometheus.NewDesc("auditledger_rejected_total", "events moved to AUDIT_REJECTED", nil, nil),
		"duplicates":  prometheus.NewDesc("auditledger_duplicate_events_total", "events rejected because their id was sealed before", nil, nil),
		"gaps":        prometheus.NewDesc("auditledger_gap_sequences_total", "stream sequences recorded as missing (ledger.gap records)", nil, nil),
		"skipped":     prometheus.NewDesc("auditledger_redelivered_skipped_total", "redelivered events already sealed", nil, nil),
		"resets":      prometheus.NewDesc("auditledger_consumer_resets_total", "times delivery was restarted at the log's position after a gap", nil, nil),
		"batches":     prometheus.NewDesc("auditledger_batches_total", "segments sealed by this process", nil, nil),
		"sealRetries": prometheus.NewDesc("auditledger_seal_retries_total", "seal attempts that failed and were retried", nil, nil),
	}
	descBatch  = prometheus.NewDesc("auditledger_batch_size", "records in the last sealed segment", nil, nil)
	descLag    = prometheus.NewDesc("auditledger_consumer_lag", "events in AUDIT_EVENTS not yet delivered to the writer", nil, nil)
	descAckPen = prometheus.NewDesc("auditledger_consumer_ack_pending", "events delivered but not yet sealed and acknowledged", nil, nil)
)

func (c writerCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descWriter, descTakeovers, descLost, descLogSize, descBatch, descLag, descAckPen} {
		ch <- d
	}
	for _, d := range descCounters {
		ch <- d
	}
}

func (c writerCollector) Collect(ch chan<- prometheus.Metric) {
	m := c.m
	b2f := func(b bool) float64 {
		if b {
			return 1
		}
		return 0
	}
	ch <- prometheus.MustNewConstMetric(descWriter, prometheus.GaugeValue, b2f(m.writer.Load()))
	ch <- prometheus.MustNewConstMetric(descTakeovers, prometheus.CounterValue, float64(m.takeovers.Load()))
	ch <- prometheus.MustNewConstMetric(descLost, prometheus.CounterValue, float64(m.lost.Load()))
	if l := m.log.Load(); l != nil {
		ch <- prometheus.MustNewConstMetric(descLogSize, prometheus.GaugeValue, float64(l.Size()))
	}
	if in := m.ingester.Load(); in != nil {
		s := &in.Stats
		for name, v := range map[string]uint64{"ingested": s.Ingested.Load(), "rejected": s.Rejected.Load(), "duplicates": s.Duplicates.Load(),
			"gaps": s.Gaps.Load(), "skipped": s.Skipped.Load(), "resets": s.Resets.Load(), "batches": s.Batches.Load(), "sealRetries": s.Retries.Load()} {
			ch <- prometheus.MustNewConstMetric(descCounters[name], prometheus.CounterValue, float64(v))
		}
		ch <- prometheus.MustNewConstMetric(descBatch, prometheus.GaugeValue, float64(s.LastBatch.Load()))
	}
	if m.js != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		if cons, err := m.js.Consumer(ctx, bus.EventsStream, m.consumer); err == nil {
			if info, err := cons.Info(ctx); err == nil {
				ch <- prometheus.MustNewConstMetric(descLag, prometheus.GaugeValue, float64(info.NumPending))
				ch <- prometheus.MustNewConstMetric(descAckPen, prometheus.GaugeValue, float64(info.NumAckPending))
			}
		}
	}
}
