package api

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/auditledger/auditledger/ledger/bus"
)

// The other processes, as the bus and the log know them (GET
// /v1/processes): no process reports to the API, so each is read where
// it leaves a trace.
//
//   - Writers: the single-writer lease of each log (the AUDIT_LEDGER_LEASES
//     bucket): its holder and when it last renewed it. A writer renews
//     within the bucket's TTL, and a lease not renewed for that long is
//     gone: no writer is sealing that log.
//   - Forwarders: each forwarder's durable consumer on AUDIT_LEDGER
//     (bus.ForwarderDurable): the records not yet delivered to it, those
//     delivered and not acknowledged, whether it is pulling now (a pull
//     request waiting), and when it last acknowledged.
//   - Producers (gateways, the API, the writer's own records): the newest
//     record of each in the projection, of the tenants in the caller's
//     scope only, chosen before the limit (projections.MaxProducers)
//     counts; truncated says the limit cut the list. A producer records
//     only when there is traffic: a quiet gateway is not told from a
//     stopped one, so "stale" here means no record for longer than
//     stale_after.
//
// The writers' leases and the forwarders' consumers are the
// installation's: every tenant's records pass through them, and their
// figures (a forwarder's lag, its last delivery) tell of all tenants'
// traffic. They are shown only to a caller whose scope covers every
// tenant (as the lists decide "every tenant": tenant:*, or
// ScopeConfig.UnscopedAll); to another, writers and forwarders are null
// and withheld says why. Each read is recorded: the producers' part as
// one audit.accessed per tenant it names, with the producers named (and
// withheld, or truncated, when so); the writers and forwarders served,
// named, under the API's own tenant (Config.Tenant), as a read that
// concerns no tenant.

// ProcessesReport is the answer of GET /v1/processes.
type ProcessesReport struct {
	Now time.Time `json:"now"`
	// StaleAfter is the quiet time after which a forwarder or producer
	// is flagged stale, in seconds.
	StaleAfter float64 `json:"stale_after_seconds"`
	// Bus says why writers and forwarders are missing (the API has no
	// bus to read them from, or it could not be read); empty when they
	// were read.
	Bus string `json:"bus_error,omitempty"`
	// Writers and Forwarders are null when withheld (Withheld says why).
	Writers    []WriterState    `json:"writers"`
	Forwarders []ForwarderState `json:"forwarders"`
	// Withheld says why writers and forwarders are not shown: they are
	// the installation's, and the caller's scope does not cover every
	// tenant. Empty when they are shown.
	Withheld  string          `json:"withheld,omitempty"`
	Producers []ProducerState `json:"producers"`
	// Truncated: the producers were cut at the limit of one read
	// (projections.MaxProducers (kind, instance, tenant) entries).
	Truncated bool `json:"truncated"`
}

// withheldNote is ProcessesReport.Withheld.
const withheldNote = "writers' leases and forwarders' consumers are the installation's (every tenant's records pass through them): they need a scope over every tenant"

// WriterState is one log's single-writer lease.
type WriterState struct {
	Log      string    `json:"log"`      // the lease key: the writer's consumer name
	Instance string    `json:"instance"` // the holder
	Renewed  time.Time `json:"renewed"`  // its last renewal
	// TTL is the lease's time to live, in seconds: a lease not renewed
	// for that long is gone.
	TTL   float64 `json:"ttl_seconds"`
	State string  `json:"state"` // holding, or stale (not renewed within TTL)
}

// ForwarderState is one forwarder's durable consumer on AUDIT_LEDGER.
type ForwarderState struct {
	Name string `json:"name"` // the durable consumer
	// Pending are the chunks of sealed records not yet delivered to it;
	// Unacked those delivered and not yet acknowledged.
	Pending uint64 `json:"pending"`
	Unacked int    `json:"unacked"`
	// Pulling: a pull request of the forwarder waits at the bus now.
	Pulling       bool       `json:"pulling"`
	LastDelivered *time.Time `json:"last_delivered,omitempty"`
	LastAcked     *time.Time `json:"last_acked,omitempty"`
	// State: pulling (connected, waiting for records), working (records
	// delivered and acknowledged within stale_after), or stale (neither).
	State string `json:"state"`
}

// ProducerState is the newest record of one producer under the tenants
// the caller may read.
type ProducerState struct {
	Kind     string `json:"kind"`
	Instance string `json:"instance"`
	// Tenants are those (of the caller's scope) it recorded for.
	Tenants  []string  `json:"tenants"`
	Index    uint64    `json:"index"`     // its newest record
	Time     time.Time `json:"time"`      // that record's event time
	SealedAt time.Time `json:"sealed_at"` // when it was sealed: the last heard
	State    string    `json:"state"`     // recent, or stale (nothing sealed within stale_after)
}

// defaultStaleAfter is stale_after when not given.
const defaultStaleAfter = 15 * time.Minute

// processes answers GET /v1/processes?stale_after=DURATION.
func (a *api) processes(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	if err := knownParams(q, "stale_after"); err != nil {
		a.fail(w, r, err)
		return
	}
	staleAfter := defaultStaleAfter
	if v := q.Get("stale_after"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil || d < time.Second || d > 30*24*time.Hour {
			a.fail(w, r, badParam("stale_after", "%q: want a duration from 1s to 720h, such as 15m", v))
			return
		}
		staleAfter = d
	}
	tenants, ok := a.tenantsOf(w, r, "")
	if !ok {
		return
	}
	now := time.Now().UTC()
	rep := ProcessesReport{Now: now, StaleAfter: staleAfter.Seconds(), Producers: []ProducerState{}}
	seen, truncated, err := a.read.Producers(r.Context(), tenants, a.cfg.MaxProducers)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	rep.Truncated = truncated
	// One row per producer: its newest record among the tenants read.
	byProducer := map[[2]string]int{}
	for _, p := range seen {
		k := [2]string{p.Kind, p.Instance}
		i, ok := byProducer[k]
		if !ok {
			i, byProducer[k] = len(rep.Producers), len(rep.Producers)
			rep.Producers = append(rep.Producers, ProducerState{Kind: p.Kind, Instance: p.Instance})
		}
		ps := &rep.Producers[i]
		ps.Tenants = append(ps.Tenants, p.Tenant)
		if p.Index >= ps.Index || len(ps.Tenants) == 1 {
			ps.Index, ps.Time, ps.SealedAt = p.Index, p.Time, p.SealedAt
		}
	}
	for i := range rep.Producers {
		rep.Producers[i].State = "recent"
		if now.Sub(rep.Producers[i].SealedAt) > staleAfter {
			rep.Producers[i].State = "stale"
		}
	}
	// The writers and forwarders: only for a scope over every tenant
	// (tenantsOf answers nil for it).
	switch {
	case tenants != nil:
		rep.Withheld = withheldNote + fmt.Sprintf(" (a group %s*)", a.cfg.Scope.TenantPrefix)
	case a.cfg.Bus == nil:
		rep.Writers, rep.Forwarders = []WriterState{}, []ForwarderState{}
		rep.Bus = "the API reads no bus (writers' leases and forwarders' consumers unknown)"
	default:
		rep.Writers, rep.Forwarders = []WriterState{}, []ForwarderState{}
		if err := a.busProcesses(r.Context(), &rep, staleAfter); err != nil {
			a.cfg.Logger.Warn("processes: reading the bus", "err", err)
			rep.Bus = err.Error()
		}
	}
	// The producers' part is tenant data (when a tenant's traffic last
	// came through which gateway): one audit.accessed per tenant, with
	// the producers it names. The writers and forwarders name no tenant:
	// those served are recorded under the API's own.
	var parts []part
	byTenant := map[string]int{}
	partOf := func(tenant string) map[string]any {
		i, ok := byTenant[tenant]
		if !ok {
			i, byTenant[tenant] = len(parts), len(parts)
			pl := map[string]any{"resource": "processes", "count": 0, "producers": []string{}}
			if rep.Truncated {
				pl["truncated"] = true
			}
			if rep.Withheld != "" {
				pl["withheld"] = "writers, forwarders"
			}
			parts = append(parts, part{tenant, pl})
		}
		return parts[i].payload
	}
	for _, p := range seen {
		pl := partOf(p.Tenant)
		pl["count"], pl["producers"] = pl["count"].(int)+1, append(pl["producers"].([]string), p.Kind+"/"+p.Instance)
	}
	if rep.Withheld == "" {
		writers, forwarders := []string{}, []string{}
		for _, w := range rep.Writers {
			writers = append(writers, w.Log+"="+w.Instance)
		}
		for _, f := range rep.Forwarders {
			forwarders = append(forwarders, f.Name)
		}
		pl := partOf(a.cfg.Tenant)
		pl["writers"], pl["forwarders"] = writers, forwarders
	}
	if len(parts) == 0 {
		partOf(a.readTenant(r, ""))
	}
	if err := a.accessedParts(r, parts); err != nil {
		a.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, rep)
}

// busProcesses reads the writers' leases and the forwarders' consumers.
func (a *api) busProcesses(ctx context.Context, rep *ProcessesReport, staleAfter time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	js := a.cfg.Bus
	var errs []error
	// The leases: the bucket's keys are its stream's subjects.
	s, err := js.Stream(ctx, "KV_"+bus.LeaseBucket)
	switch {
	case errors.Is(err, jetstream.ErrStreamNotFound):
		// No writer ever started: no lease, shown as none.
	case err != nil:
		errs = append(errs, fmt.Errorf("the writers' lease bucket: %w", err))
	default:
		info, err := s.Info(ctx, jetstream.WithSubjectFilter("$KV."+bus.LeaseBucket+".>"))
		if err != nil {
			errs = append(errs, fmt.Errorf("the writers' lease bucket: %w", err))
			break
		}
		keys := make([]string, 0, len(info.State.Subjects))
		for subj := range info.State.Subjects {
			keys = append(keys, strings.TrimPrefix(subj, "$KV."+bus.LeaseBucket+"."))
		}
		slices.Sort(keys)
		for _, key := range keys {
			m, err := s.GetLastMsgForSubject(ctx, "$KV."+bus.LeaseBucket+"."+key)
			if err != nil {
				if !errors.Is(err, jetstream.ErrMsgNotFound) {
					errs = append(errs, fmt.Errorf("the lease of log %s: %w", key, err))
				}
				continue
			}
			if op := m.Header.Get("KV-Operation"); op == "DEL" || op == "PURGE" {
				continue // released
			}
			ws := WriterState{Log: key, Instance: string(m.Data), Renewed: m.Time.UTC(), TTL: info.Config.MaxAge.Seconds(), State: "holding"}
			if info.Config.MaxAge > 0 && rep.Now.Sub(ws.Renewed) > info.Config.MaxAge {
				ws.State = "stale"
			}
			rep.Writers = append(rep.Writers, ws)
		}
	}
	// The forwarders' durable consumers.
	ls, err := js.Stream(ctx, bus.LedgerStream)
	if err != nil {
		errs = append(errs, fmt.Errorf("the ledger stream: %w", err))
		return errors.Join(errs...)
	}
	list := ls.ListConsumers(ctx)
	for ci := range list.Info() {
		if !strings.HasPrefix(ci.Name, bus.ForwarderDurablePrefix) {
			continue
		}
		fs := ForwarderState{Name: ci.Name, Pending: ci.NumPending, Unacked: ci.NumAckPending, Pulling: ci.NumWaiting > 0,
			LastDelivered: ci.Delivered.Last, LastAcked: ci.AckFloor.Last}
		switch {
		case fs.Pulling && fs.Unacked == 0:
			fs.State = "pulling"
		case fs.LastAcked != nil && rep.Now.Sub(*fs.LastAcked) <= staleAfter:
			fs.State = "working"
		default:
			fs.State = "stale"
		}
		rep.Forwarders = append(rep.Forwarders, fs)
	}
	if err := list.Err(); err != nil {
		errs = append(errs, fmt.Errorf("the forwarders' consumers: %w", err))
	}
	return errors.Join(errs...)
}
