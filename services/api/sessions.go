package api

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/go-chi/chi/v5"

	"github.com/auditledger/auditledger/events"
	"github.com/auditledger/auditledger/projections"
	"github.com/auditledger/auditledger/services/sshproxy"
)

// SessionSummary is one session of GET /v1/sessions.
type SessionSummary struct {
	Tenant       string    `json:"tenant"`
	SessionID    string    `json:"session_id"`
	Started      time.Time `json:"started"`
	LastSeen     time.Time `json:"last_seen"`
	Events       int64     `json:"events"`
	LastSeq      int64     `json:"last_seq"`
	HasGaps      bool      `json:"has_gaps"`
	ActorSubject string    `json:"actor_subject"`
	Target       string    `json:"target,omitempty"`
}

// Gap is a run of session_seq values missing from a session.
type Gap struct {
	From int64 `json:"from"`
	To   int64 `json:"to"`
}

// Timeline is GET /v1/sessions/{id}: the session's events in sequence
// order, and the sequence numbers missing from it.
type Timeline struct {
	Tenant    string        `json:"tenant"`
	SessionID string        `json:"session_id"`
	Events    []EventResult `json:"events"`
	Gaps      []Gap         `json:"gaps"`
}

// listSessions answers GET /v1/sessions?tenant=&actor=&issuer=&after=&limit=,
// sessions in id order (issuer: with a personal actor, actorFilter).
func (a *api) listSessions(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	if err := knownParams(q, "tenant", "actor", "issuer", "after", "limit"); err != nil {
		a.fail(w, r, err)
		return
	}
	f := projections.SessionFilter{Actor: q.Get("actor"), After: q.Get("after")}
	var ok bool
	if f.Tenants, ok = a.tenantsOf(w, r, q.Get("tenant")); !ok {
		return
	}
	if f.Actor, ok = a.actorFilter(w, r, f.Actor, q.Get("issuer"), f.Tenants); !ok {
		return
	}
	var err error
	if f.Limit, err = pageLimit(q); err != nil {
		a.fail(w, r, err)
		return
	}
	list, err := a.read.Sessions(r.Context(), f)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	out := make([]SessionSummary, len(list))
	for i, s := range list {
		out[i] = SessionSummary(s)
	}
	// One record per tenant listed, each with its own count.
	var parts []part
	byTenant := map[string]int{}
	for _, s := range out {
		i, ok := byTenant[s.Tenant]
		if !ok {
			i, byTenant[s.Tenant] = len(parts), len(parts)
			parts = append(parts, part{s.Tenant, map[string]any{"resource": "sessions", "count": 0}})
		}
		parts[i].payload["count"] = parts[i].payload["count"].(int) + 1
	}
	if len(parts) == 0 {
		parts = []part{{a.readTenant(r, q.Get("tenant")), map[string]any{"resource": "sessions", "count": 0}}}
	}
	if err := a.accessedParts(r, parts); err != nil {
		a.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, out)
}

// sessionTimeline answers GET /v1/sessions/{id}?tenant=T.
func (a *api) sessionTimeline(w http.ResponseWriter, r *http.Request) {
	tenant, id, ok := a.sessionParams(w, r)
	if !ok {
		return
	}
	res, err := a.read.Timeline(r.Context(), tenant, id)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	tl := Timeline{Tenant: tenant, SessionID: id, Events: make([]EventResult, len(res.Events)), Gaps: make([]Gap, len(res.Gaps))}
	o := a.opener(r.Context())
	for i := range res.Events {
		tl.Events[i] = eventResult(o, &res.Events[i])
	}
	for i, g := range res.Gaps {
		tl.Gaps[i] = Gap(g)
	}
	if err := a.accessed(r, tenant, map[string]any{"resource": "session", "session_id": id, "count": len(tl.Events), "gaps": len(tl.Gaps)}); err != nil {
		a.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, tl)
}

// sessionParams reads the session's id and tenant of /v1/sessions/{id}
// and its cast, and checks the tenant against the caller's scope. False
// means refused, the answer written.
func (a *api) sessionParams(w http.ResponseWriter, r *http.Request) (tenant, id string, ok bool) {
	id = chi.URLParam(r, "id")
	tenant = r.URL.Query().Get("tenant")
	if !tenantParam.MatchString(tenant) {
		a.fail(w, r, badParam("tenant", "required: the session's tenant (1-64 characters of a-z, 0-9, _ and -)"))
		return "", "", false
	}
	if len(id) > projections.MaxID {
		// Before the scope: a malformed request is refused as such.
		a.fail(w, r, badParam("id", "longer than %d characters", projections.MaxID))
		return "", "", false
	}
	if !a.checkTenantScope(w, r, tenant) {
		return "", "", false
	}
	return tenant, id, true
}

// sessionCast answers GET /v1/sessions/{id}/cast?tenant=T: a terminal
// session (an SSH shell or command, a kubectl exec) as an asciicast v2
// file, rebuilt from its session.output chunks exactly as they were
// recorded, so redacted where the detectors redacted them (binary
// chunks, recorded as a size and digest, are left out), and its bulk
// pieces opened, read from the store or AUDIT_BULK, with what the
// detectors find replaced (bulk.go; a piece that cannot be read fails
// the cast, 409, naming it). A session that
// recorded no terminal stream is a cast without frames; one that did not
// start (no session.started) is 404. Recorded as audit.accessed before
// the first byte, as any read.
func (a *api) sessionCast(w http.ResponseWriter, r *http.Request) {
	tenant, id, ok := a.sessionParams(w, r)
	if !ok {
		return
	}
	res, err := a.read.Timeline(r.Context(), tenant, id)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	evs, err := timelineEvents(id, res)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	var o opened
	cast, err := sshproxy.CastWith(r.Context(), evs, id, a.castOpener(&o))
	if errors.Is(err, sshproxy.ErrNoSession) {
		a.fail(w, r, fmt.Errorf("%w: session %q in tenant %q has no session.started: there is no terminal to replay", errNotFound, id, tenant))
		return
	}
	if err != nil {
		a.fail(w, r, err)
		return
	}
	if err := a.accessed(r, tenant, o.note(map[string]any{"resource": "session cast", "session_id": id, "frames": len(cast.Frames), "gaps": len(res.Gaps)})); err != nil {
		a.fail(w, r, err)
		return
	}
	w.Header().Set("Content-Type", "application/x-asciicast")
	cast.WriteTo(w)
}

// timelineEvents decodes the events of a session's timeline.
func timelineEvents(id string, res projections.Timeline) ([]*events.Event, error) {
	evs := make([]*events.Event, 0, len(res.Events))
	for i := range res.Events {
		var e events.Event
		if err := json.Unmarshal(res.Events[i].Event, &e); err != nil {
			return nil, fmt.Errorf("session %q: the event at index %d: %w", id, res.Events[i].Index, err)
		}
		evs = append(evs, &e)
	}
	return evs, nil
}
