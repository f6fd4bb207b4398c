package alerts

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/auditledger/auditledger/events"
	"github.com/auditledger/auditledger/ledger/bus/emitter"
	"github.com/auditledger/auditledger/services/siem"
)

// Name is the alerter's forwarder name: its bus principal is
// bus.Forwarder(Name), its durable consumer bus.ForwarderDurable(Name).
const Name = "alerter"

// Emitter stores an event on the bus (ledger/bus/emitter).
// EmitAlone gives the event a message of its own with its id as
// Nats-Msg-Id, so the same alert stored again (after a restart) within
// the bus's duplicate window is stored once.
type Emitter interface {
	EmitAlone(ctx context.Context, ev *events.Event) (emitter.Result, error)
}

// Sink is one destination of alerts.
type Sink struct {
	Name string
	Kind string
	// URL is the endpoint (slack, webhook); Secret the webhook's key.
	URL    string
	Secret []byte
	// Emitter stores alert.raised events (kind event).
	Emitter Emitter
	Client  *http.Client
}

// Config configures an Alerter.
type Config struct {
	Rules []*Rule
	Sinks []*Sink
	// API is the API's base URL, shown to reviewers with how to decide
	// (empty: the path only).
	API string
	// Instance is the source instance of alert.raised events.
	Instance string
	// State is a file holding the ledger index of the last record whose
	// alerts were all delivered (or refused), written after each: after a
	// restart the records up to it are evaluated (for rates) but not
	// alerted again, so a SIGKILL repeats the alerts of the one
	// record in hand. Empty: the durable consumer alone, which repeats
	// the alerts of the records delivered but not yet acknowledged.
	State    string
	Registry prometheus.Registerer
	Logger   *slog.Logger
	Now      func() time.Time
}

// Alerter is the siem.Destination that evaluates the rules over each
// sealed record it is given and delivers the alerts: one record at a
// time, in ledger order (it is Sequential), each alert to each of its
// rule's destinations once per run. A record is confirmed only when
// every alert of it is delivered or refused; the forwarder then
// acknowledges it on AUDIT_LEDGER.
type Alerter struct {
	cfg     Config
	engine  *Engine
	sinks   map[string]*Sink
	pending map[uint64][]*Alert // evaluated, not yet confirmed
	through uint64              // from State: records up to it are alerted
	hasThru bool
	done    map[string]error // alert id + sink → nil (delivered) or why refused
	metrics struct {
		raised, delivered, refused *prometheus.CounterVec
		latency                    prometheus.Observer
	}
}

// New checks cfg and registers the alerter's metrics.
func New(cfg Config) (*Alerter, error) {
	a := &Alerter{cfg: cfg, engine: NewEngine(cfg.Rules), sinks: map[string]*Sink{}, pending: map[uint64][]*Alert{}, done: map[string]error{}}
	for _, s := range cfg.Sinks {
		if s.Kind == KindEvent && s.Emitter == nil {
			return nil, fmt.Errorf("alerts: destination %s: an event destination needs the bus", s.Name)
		}
		a.sinks[s.Name] = s
	}
	for _, r := range cfg.Rules {
		for _, to := range r.To {
			if a.sinks[to] == nil {
				return nil, fmt.Errorf("alerts: rule %s: destination %q unknown", r.ID, to)
			}
		}
	}
	if a.cfg.Logger == nil {
		a.cfg.Logger = slog.Default()
	}
	if cfg.State != "" {
		if err := os.MkdirAll(filepath.Dir(cfg.State), 0o700); err != nil {
			return nil, fmt.Errorf("alerts: state: %w", err)
		}
		b, err := os.ReadFile(cfg.State)
		switch {
		case errors.Is(err, fs.ErrNotExist):
		case err != nil:
			return nil, fmt.Errorf("alerts: state: %w", err)
		default:
			if a.through, err = strconv.ParseUint(strings.TrimSpace(string(b)), 10, 64); err != nil {
				return nil, fmt.Errorf("alerts: state %s: %q is not a ledger index (remove the file to alert again from what the bus holds unacknowledged)", cfg.State, b)
			}
			a.hasThru = true
		}
	}
	if a.cfg.Registry == nil {
		a.cfg.Registry = prometheus.NewRegistry()
	}
	if a.cfg.Now == nil {
		a.cfg.Now = time.Now
	}
	if a.cfg.Instance == "" {
		a.cfg.Instance = "alerter"
	}
	vec := func(name, help string, labels ...string) *prometheus.CounterVec {
		c := prometheus.NewCounterVec(prometheus.CounterOpts{Name: "auditledger_alerts_" + name, Help: help}, labels)
		a.cfg.Registry.MustRegister(c)
		return c
	}
	a.metrics.raised = vec("raised_total", "alerts the rules raised", "rule")
	a.metrics.delivered = vec("delivered_total", "alerts a destination confirmed", "destination")
	a.metrics.refused = vec("refused_total", "alerts a destination refused for good (parked)", "destination")
	h := prometheus.NewHistogram(prometheus.HistogramOpts{Name: "auditledger_alerts_delivery_seconds", Help: "from the sealing of the record that raised an alert to a destination's confirmation",
		Buckets: prometheus.ExponentialBuckets(0.005, 2, 14)})
	a.cfg.Registry.MustRegister(h)
	a.metrics.latency = h
	return a, nil
}

func (a *Alerter) String() string { return "alerter (" + fmt.Sprint(len(a.cfg.Rules)) + " rules)" }

// Sequential makes the forwarder hand over one batch at a time, in
// ledger order: rates and limits count records in order.
func (a *Alerter) Sequential() {}

// Send evaluates and delivers items. A destination that fails fails the
// batch (the forwarder tries it again; what was delivered is not sent
// again in this run); one that refuses an alert (4xx) has the record
// parked with the reason while the others go on.
func (a *Alerter) Send(ctx context.Context, items []siem.Item) (map[int]error, error) {
	for _, it := range items {
		if _, ok := a.pending[it.Index]; !ok {
			alerts := a.engine.Evaluate(it.Index, it.SealedAt, it.Event)
			for _, al := range alerts {
				a.metrics.raised.WithLabelValues(al.Rule.ID).Inc()
			}
			a.pending[it.Index] = alerts
		}
	}
	var rejected map[int]error
	for i, it := range items {
		if a.hasThru && it.Index <= a.through {
			continue // alerted before a restart
		}
		var refused []error
		for _, al := range a.pending[it.Index] {
			for _, to := range al.Rule.To {
				key := al.ID + "\x00" + to
				err, tried := a.done[key]
				if !tried {
					err = a.deliver(ctx, a.sinks[to], al)
					var rej *siem.Rejection
					if err != nil && !errors.As(err, &rej) {
						return nil, fmt.Errorf("alert %s to %s: %w", al.ID, to, err)
					}
					a.done[key] = err
					if err != nil {
						a.metrics.refused.WithLabelValues(to).Inc()
					} else {
						a.metrics.delivered.WithLabelValues(to).Inc()
						lat := a.cfg.Now().Sub(al.SealedAt)
						a.metrics.latency.Observe(lat.Seconds())
						a.cfg.Logger.Info("alert delivered", "alert", al.ID, "destination", to, "latency_ms", float64(lat.Microseconds())/1000)
					}
				}
				if err != nil {
					refused = append(refused, fmt.Errorf("alert %s to %s: %w", al.ID, to, err))
				}
			}
		}
		if len(refused) > 0 {
			if rejected == nil {
				rejected = map[int]error{}
			}
			rejected[i] = errors.Join(refused...)
		}
		if len(a.pending[it.Index]) > 0 {
			if err := a.save(it.Index); err != nil {
				return nil, err
			}
		}
	}
	for _, it := range items {
		for _, al := range a.pending[it.Index] {
			for _, to := range al.Rule.To {
				delete(a.done, al.ID+"\x00"+to)
			}
		}
		delete(a.pending, it.Index)
	}
	return rejected, nil
}

// save records that every alert of the record at index is delivered.
func (a *Alerter) save(index uint64) error {
	if a.cfg.State == "" {
		return nil
	}
	tmp := a.cfg.State + ".tmp"
	f, err := os.OpenFile(tmp, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o600)
	if err == nil {
		_, err = f.WriteString(strconv.FormatUint(index, 10) + "\n")
		if err == nil {
			err = f.Sync()
		}
		if cerr := f.Close(); err == nil {
			err = cerr
		}
	}
	if err == nil {
		err = os.Rename(tmp, a.cfg.State)
	}
	if err != nil {
		return fmt.Errorf("alerts: state: %w", err)
	}
	a.through, a.hasThru = index, true
	return nil
}

// deliver sends one alert to one destination.
func (a *Alerter) deliver(ctx context.Context, s *Sink, al *Alert) error {
	switch s.Kind {
	case KindSlack:
		body, err := Slack(al, a.cfg.API)
		if err != nil {
			return &siem.Rejection{Reason: err.Error()}
		}
		h := http.Header{}
		h.Set("Content-Type", "application/json")
		ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		defer cancel()
		return siem.Post(ctx, s.Client, "slack destination "+s.Name, s.URL, body, h)
	case KindWebhook:
		ev, err := a.Event(al)
		if err != nil {
			return &siem.Rejection{Reason: err.Error()}
		}
		raw, err := ev.Marshal()
		if err != nil {
			return &siem.Rejection{Reason: err.Error()}
		}
		// The webhook forwarder's record shape, without a leaf: index
		// and sealed_at are those of the record that raised the alert,
		// event the alert.raised event (docs/ALERTS.md).
		body := fmt.Appendf(nil, `{"index":%d,"sealed_at":"%s","event":%s}`, al.Index, al.SealedAt.UTC().Format(time.RFC3339Nano), raw)
		w := &siem.Webhook{URL: s.URL, Secret: s.Secret, Client: s.Client}
		_, err = w.Send(ctx, []siem.Item{{Sealed: siem.Sealed{Index: al.Index}, Body: body}})
		return err
	case KindEvent:
		ev, err := a.Event(al)
		if err != nil {
			return &siem.Rejection{Reason: err.Error()}
		}
		ectx, cancel := context.WithTimeout(ctx, 30*time.Second)
		defer cancel()
		_, err = s.Emitter.EmitAlone(ectx, ev)
		var verr *events.FieldError
		if errors.As(err, &verr) {
			return &siem.Rejection{Reason: err.Error()}
		}
		return err
	}
	return &siem.Rejection{Reason: "unknown destination kind " + s.Kind}
}

// RaisedPayload is the payload of an alert.raised event (docs/FORMAT.md).
type RaisedPayload struct {
	Rule       string    `json:"rule"`
	Title      string    `json:"title"`
	Severity   string    `json:"severity"`
	Index      uint64    `json:"index"`
	EventID    string    `json:"event_id"`
	EventType  string    `json:"event_type"`
	EventTime  time.Time `json:"event_time"`
	SealedAt   time.Time `json:"sealed_at"`
	Rate       *RateJSON `json:"rate,omitempty"`
	Suppressed int       `json:"suppressed,omitempty"`
	Decide     *Decision `json:"decide,omitempty"`
}

// RateJSON is a rate rule's count in an alert.raised event.
type RateJSON struct {
	Count         int    `json:"count"`
	WithinSeconds int64  `json:"within_seconds"`
	Key           string `json:"key,omitempty"`
	Value         string `json:"value,omitempty"`
	// Overflow: the events were counted together, whatever their key
	// value, the rule having this many key values counted apart already.
	Overflow int `json:"overflow,omitempty"`
}

// Event is al as an alert.raised event: id "alert/<rule>/<index>", the
// triggering event's tenant and target, the alerter as a machine actor.
func (a *Alerter) Event(al *Alert) (*events.Event, error) {
	ev := al.Event
	p := RaisedPayload{Rule: al.Rule.ID, Title: al.Rule.Title, Severity: al.Rule.Severity, Index: al.Index, EventID: ev.ID, EventType: string(ev.Type),
		EventTime: ev.Time.UTC(), SealedAt: al.SealedAt.UTC(), Suppressed: al.Suppressed, Decide: decision(ev, a.cfg.API)}
	if al.Rate != nil {
		p.Rate = &RateJSON{Count: al.Rate.Count, WithinSeconds: int64(al.Rate.Within / time.Second), Key: al.Rate.Key, Value: al.Rate.Value}
		if al.Rate.Overflow {
			p.Rate.Overflow = al.Rate.Cap
		}
	}
	body, err := json.Marshal(p)
	if err != nil {
		return nil, err
	}
	out := &events.Event{Version: events.Version, ID: al.ID, Type: events.AlertRaised, Time: a.cfg.Now().UTC(), Tenant: ev.Tenant,
		Source: events.Source{Kind: Name, Instance: a.cfg.Instance}, Actor: events.Actor{Issuer: "auditledger", Subject: Name, Kind: events.Machine},
		Target: ev.Target, Payload: body}
	return out, out.Validate()
}

// SinkFor builds the destination d, reading its variables with getenv.
func SinkFor(d DestinationConfig, getenv func(string) string, em Emitter) *Sink {
	s := &Sink{Name: d.Name, Kind: d.Kind, URL: d.URL, Emitter: em}
	if d.URLEnv != "" {
		s.URL = strings.TrimSpace(getenv(d.URLEnv))
	}
	if d.SecretEnv != "" {
		s.Secret = []byte(getenv(d.SecretEnv))
	}
	return s
}
