// Package telemetry holds the Prometheus metrics the proxies, the API and
// the emitter of a process publish on its /metrics, registered by each
// role in the process's one registry (internal/health.Health.Registry).
package telemetry

import (
	"net/http"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/auditledger/auditledger/events"
	"github.com/auditledger/auditledger/ledger/bus/emitter"
)

// Proxy counts what a proxy records and how long each record took to be
// stored: the latency the audit adds to a statement or request (before
// it is forwarded, or before its result is released).
type Proxy struct {
	recorded *prometheus.CounterVec
	failed   *prometheus.CounterVec
	wait     prometheus.Histogram
	bulkLost prometheus.Counter
}

// NewProxy registers the metrics of a proxy of protocol ("postgres",
// "http") in reg.
func NewProxy(reg prometheus.Registerer, protocol string) *Proxy {
	labels := prometheus.Labels{"protocol": protocol}
	p := &Proxy{
		recorded: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "auditledger_proxy_events_total",
			Help: "events the proxy had stored, by type", ConstLabels: labels}, []string{"type"}),
		failed: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "auditledger_proxy_events_failed_total",
			Help: "events the proxy could not have stored (it failed closed, or open with a spool)", ConstLabels: labels}, []string{"type"}),
		wait: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "auditledger_proxy_record_seconds",
			Help:        "from handing an event to the emitter to its being stored: what recording adds to a statement or request",
			ConstLabels: labels, Buckets: prometheus.ExponentialBuckets(0.0001, 2, 16)}),
		bulkLost: prometheus.NewCounter(prometheus.CounterOpts{Name: "auditledger_proxy_bulk_pieces_lost_total",
			Help: "bulk pieces the bus did not take: each recorded as its size and keyed digest only", ConstLabels: labels}),
	}
	reg.MustRegister(p.recorded, p.failed, p.wait, p.bulkLost)
	return p
}

// BulkLost notes a bulk piece recorded as its digest only. A nil Proxy
// notes nothing.
func (p *Proxy) BulkLost() {
	if p != nil {
		p.bulkLost.Inc()
	}
}

// Recorded notes one event handed to the emitter at start, and whether it
// was stored. A nil Proxy notes nothing.
func (p *Proxy) Recorded(t events.Type, start time.Time, err error) {
	if p == nil {
		return
	}
	if err != nil {
		p.failed.WithLabelValues(string(t)).Inc()
		return
	}
	p.recorded.WithLabelValues(string(t)).Inc()
	p.wait.Observe(time.Since(start).Seconds())
}

// Emitter exposes an emitter's running totals, read at each scrape, for
// the role that owns it.
func Emitter(reg prometheus.Registerer, role string, em *emitter.Emitter) {
	labels := prometheus.Labels{"role": role}
	counter := func(name, help string, f func() uint64) prometheus.Collector {
		return prometheus.NewCounterFunc(prometheus.CounterOpts{Name: name, Help: help, ConstLabels: labels}, func() float64 { return float64(f()) })
	}
	reg.MustRegister(
		counter("auditledger_emitter_batches_total", "groups of events stored as one batch message", em.Stats.Groups.Load),
		counter("auditledger_emitter_batched_events_total", "events stored in batch messages", em.Stats.GroupedEvents.Load),
		counter("auditledger_emitter_single_publishes_total", "events published one by one", em.Stats.Singles.Load),
		counter("auditledger_emitter_batches_not_taken_total", "batch messages the bus did not acknowledge (their events went one by one)", em.Stats.GroupsRefused.Load),
		counter("auditledger_emitter_failed_total", "events neither stored nor spooled (each reported to its caller)", em.Failed),
		counter("auditledger_emitter_spool_damaged_total", "regions of the spool that held no readable event, quarantined beside it and skipped", em.Stats.SpoolDamaged.Load),
		counter("auditledger_emitter_attestations_lost_total", "producer attestations not signed, or not stored by the bus at close: their events stay unattested", em.Stats.AttestationsLost.Load),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "auditledger_emitter_spooled", Help: "1 while events wait in the local spool",
			ConstLabels: labels}, func() float64 {
			if em.Spooled() {
				return 1
			}
			return 0
		}),
	)
}

// HTTP measures the requests an HTTP handler serves: their duration by
// method, route (as route names it, never the raw path) and status code.
type HTTP struct {
	seconds *prometheus.HistogramVec
}

// NewHTTP registers the request histogram of role in reg.
func NewHTTP(reg prometheus.Registerer, role string) *HTTP {
	h := &HTTP{seconds: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "auditledger_http_request_seconds",
		Help: "requests served, by method, route and status", ConstLabels: prometheus.Labels{"role": role},
		Buckets: prometheus.ExponentialBuckets(0.0005, 2, 14)}, []string{"method", "route", "code"})}
	reg.MustRegister(h.seconds)
	return h
}

// Wrap measures next; route names a request's route once it is served.
func (h *HTTP) Wrap(next http.Handler, route func(*http.Request) string) http.Handler {
	if h == nil {
		return next
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		sw := &statusWriter{ResponseWriter: w, code: http.StatusOK}
		next.ServeHTTP(sw, r)
		h.seconds.WithLabelValues(r.Method, route(r), strconv.Itoa(sw.code)).Observe(time.Since(start).Seconds())
	})
}

type statusWriter struct {
	http.ResponseWriter
	code int
}

func (w *statusWriter) WriteHeader(code int) {
	w.code = code
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }
