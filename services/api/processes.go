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
//   - Projectors: each projector's cursor in the projection (the
//     records it has applied, when it last applied a segment) and its
//     lag behind the log's size as the bus tells it (the newest
//     AUDIT_LEDGER message's index and count).
//   - Producers (gateways, the API, the writer's own records): the newest
//     record of each in the projection, of the tenants in the caller's
//     scope only, chosen before the limit (projections.MaxProducers)
//     counts; truncated says the limit cut the list. A producer records
//     only when there is traffic, so "stale" here means no record for
//     longer than stale_after. Beside it, a gateway's liveness from its
//     heartbeat (bus.HeartbeatBucket, put every few seconds while it
//     runs, never a record): alive, stopped (it said so when it closed),
//     stale (no beat within its TTL) or none. A heartbeat is shown with
//     the producer's row when that row is of the caller's tenants, or
//     when the gateway's configured tenant is: a gateway alive that has
//     recorded nothing yet has a row of its own (state none).
//
// The writers' leases, the forwarders' consumers and the projectors'
// cursors are the installation's: every tenant's records pass through
// them, and their figures (a forwarder's lag, its last delivery, the
// log's size) tell of all tenants' traffic. They are shown only to a
// caller whose scope covers every tenant (as the lists decide "every
// tenant": tenant:*, or ScopeConfig.UnscopedAll); to another, writers,
// forwarders and projectors are null and withheld says why. Each read
// is recorded: the producers' part as one audit.accessed per tenant it
// names, with the producers (and the heartbeats shown) named (and
// withheld, or truncated, when so); the writers, forwarders and
// projectors served, named, under the API's own tenant (Config.Tenant),
// as a read that concerns no tenant.

// ProcessesReport is the answer of GET /v1/processes.
type ProcessesReport struct {
	Now time.Time `json:"now"`
	// StaleAfter is the quiet time after which a forwarder or producer
	// is flagged stale, in seconds.
	StaleAfter float64 `json:"stale_after_seconds"`
	// Bus says why what the bus tells is missing (writers, forwarders,
	// the log's size, heartbeats): the API has no bus to read them
	// from, or it could not be read; empty when they were read.
	Bus string `json:"bus_error,omitempty"`
	// Writers, Forwarders and Projectors are null when withheld
	// (Withheld says why).
	Writers    []WriterState    `json:"writers"`
	Forwarders []ForwarderState `json:"forwarders"`
	Projectors []ProjectorState `json:"projectors"`
	// LogSize is the records the writer has sealed and published (the
	// newest AUDIT_LEDGER message's index and count): what the
	// projectors' lag is measured against. Absent when unknown or
	// withheld.
	LogSize *uint64 `json:"log_size,omitempty"`
	// Withheld says why writers, forwarders and projectors are not
	// shown: they are the installation's, and the caller's scope does
	// not cover every tenant. Empty when they are shown.
	Withheld  string          `json:"withheld,omitempty"`
	Producers []ProducerState `json:"producers"`
	// Truncated: the producers were cut at the limit of one read
	// (projections.MaxProducers (kind, instance, tenant) entries).
	Truncated bool `json:"truncated"`
}

// withheldNote is ProcessesReport.Withheld.
const withheldNote = "writers' leases, forwarders' consumers and projectors' cursors are the installation's (every tenant's records pass through them): they need a scope over every tenant"

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

// ProjectorState is one projector's cursor (projections.Config.Name).
type ProjectorState struct {
	Name    string    `json:"name"`
	Size    uint64    `json:"size"`    // records applied: the next index
	Updated time.Time `json:"updated"` // when it last applied a segment
	// Lag is LogSize less Size (never below zero); absent when the log's
	// size is unknown.
	Lag *uint64 `json:"lag,omitempty"`
	// State: current (no lag), applying (behind, a segment applied
	// within stale_after), stale (behind, none applied within
	// stale_after), or unknown (the log's size is unknown).
	State string `json:"state"`
}

// ProducerState is the newest record of one producer under the tenants
// the caller may read, and its heartbeat.
type ProducerState struct {
	Kind     string `json:"kind"`
	Instance string `json:"instance"`
	// Tenants are those (of the caller's scope) it recorded for; for a
	// gateway with no record yet, its configured tenant.
	Tenants []string `json:"tenants"`
	// Its newest record: index, event time, and when it was sealed (the
	// last heard); absent (state none) when it has recorded nothing.
	Index    uint64    `json:"index"`
	Time     time.Time `json:"time,omitzero"`
	SealedAt time.Time `json:"sealed_at,omitzero"`
	// State: recent, stale (nothing sealed within stale_after), or none
	// (no record yet: known from its heartbeat only).
	State string `json:"state"`
	// Liveness from the gateway's heartbeat: alive (a beat within its
	// TTL), stopped (its last entry said it closed), stale (no beat
	// within its TTL: it stopped without a word, or lost the bus), or
	// none (no heartbeat: not a gateway, or the API reads no bus).
	Liveness  string          `json:"liveness"`
	Heartbeat *HeartbeatState `json:"heartbeat,omitempty"`
}

// HeartbeatState is a gateway's newest heartbeat (bus.Heartbeat).
type HeartbeatState struct {
	Role    string    `json:"role"`
	Version string    `json:"version"`
	Host    string    `json:"host,omitempty"`
	PID     int       `json:"pid,omitempty"`
	Started time.Time `json:"started"`
	// LastSeen is when the bus stored its newest beat.
	LastSeen time.Time `json:"last_seen"`
	Interval float64   `json:"interval_seconds"`
	TTL      float64   `json:"ttl_seconds"`
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
		rep.Producers[i].State, rep.Producers[i].Liveness = "recent", "none"
		if now.Sub(rep.Producers[i].SealedAt) > staleAfter {
			rep.Producers[i].State = "stale"
		}
	}
	// The gateways' heartbeats, beside the producers the caller may see.
	var busErrs []string
	if a.cfg.Bus == nil {
		busErrs = append(busErrs, "the API reads no bus (writers' leases, forwarders' consumers, the log's size and gateways' heartbeats unknown)")
	} else if err := a.heartbeats(r.Context(), &rep, tenants); err != nil {
		a.cfg.Logger.Warn("processes: reading the heartbeats", "err", err)
		busErrs = append(busErrs, err.Error())
	}
	// The writers and forwarders: only for a scope over every tenant
	// (tenantsOf answers nil for it).
	switch {
	case tenants != nil:
		rep.Withheld = withheldNote + fmt.Sprintf(" (a group %s*)", a.cfg.Scope.TenantPrefix)
	default:
		rep.Writers, rep.Forwarders = []WriterState{}, []ForwarderState{}
		if a.cfg.Bus != nil {
			if err := a.busProcesses(r.Context(), &rep, staleAfter); err != nil {
				a.cfg.Logger.Warn("processes: reading the bus", "err", err)
				busErrs = append(busErrs, err.Error())
			}
		}
		if err := a.projectors(r.Context(), &rep, staleAfter); err != nil {
			a.fail(w, r, err)
			return
		}
	}
	rep.Bus = strings.Join(busErrs, "; ")
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
				pl["withheld"] = "writers, forwarders, projectors"
			}
			parts = append(parts, part{tenant, pl})
		}
		return parts[i].payload
	}
	for _, p := range seen {
		pl := partOf(p.Tenant)
		pl["count"], pl["producers"] = pl["count"].(int)+1, append(pl["producers"].([]string), p.Kind+"/"+p.Instance)
	}
	for _, p := range rep.Producers {
		if p.Heartbeat == nil {
			continue
		}
		for _, t := range p.Tenants {
			pl := partOf(t)
			hb, _ := pl["heartbeats"].([]string)
			pl["heartbeats"] = append(hb, p.Kind+"/"+p.Instance)
		}
	}
	if rep.Withheld == "" {
		writers, forwarders := []string{}, []string{}
		for _, w := range rep.Writers {
			writers = append(writers, w.Log+"="+w.Instance)
		}
		for _, f := range rep.Forwarders {
			forwarders = append(forwarders, f.Name)
		}
		projectors := []string{}
		for _, p := range rep.Projectors {
			projectors = append(projectors, p.Name)
		}
		pl := partOf(a.cfg.Tenant)
		pl["writers"], pl["forwarders"], pl["projectors"] = writers, forwarders, projectors
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
	if size, err := logSize(ctx, ls); err != nil {
		errs = append(errs, err)
	} else {
		rep.LogSize = &size
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
