package api

import (
	"fmt"
	"net/http"
	"strconv"
	"time"

	"github.com/go-chi/chi/v5"
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

// listSessions answers GET /v1/sessions?tenant=&actor=&after=&limit=,
// sessions in id order.
func (a *api) listSessions(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	if err := knownParams(q, "tenant", "actor", "after", "limit"); err != nil {
		a.fail(w, r, err)
		return
	}
	sql := `SELECT tenant, session_id, started, last_seen, events, last_seq, has_gaps, actor_subject, coalesce(target_name, '') FROM sessions WHERE true`
	var args []any
	arg := func(v any) string { args = append(args, v); return "$" + strconv.Itoa(len(args)) }
	if v := q.Get("tenant"); v != "" {
		if err := checkTenant(v); err != nil {
			a.fail(w, r, err)
			return
		}
		if !a.checkTenantScope(w, r, v) {
			return
		}
		sql += " AND tenant = " + arg(v)
	} else if cond, ok := a.tenantCondition(w, r, arg); !ok {
		return
	} else if cond != "" {
		sql += " AND " + cond
	}
	for _, p := range []string{"actor", "after"} {
		if v := q.Get(p); len(v) > maxText {
			a.fail(w, r, badParam(p, "longer than %d characters", maxText))
			return
		}
	}
	if v := q.Get("actor"); v != "" {
		sql += " AND actor_subject = " + arg(v)
	}
	if v := q.Get("after"); v != "" {
		sql += " AND session_id > " + arg(v)
	}
	limit, err := pageLimit(q)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	sql += " ORDER BY session_id, tenant LIMIT " + arg(limit)
	rows, err := a.cfg.DB.Query(r.Context(), sql, args...)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	out := []SessionSummary{}
	for rows.Next() {
		var s SessionSummary
		if err := rows.Scan(&s.Tenant, &s.SessionID, &s.Started, &s.LastSeen, &s.Events, &s.LastSeq, &s.HasGaps, &s.ActorSubject, &s.Target); err != nil {
			rows.Close()
			a.fail(w, r, err)
			return
		}
		out = append(out, s)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		a.fail(w, r, err)
		return
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
	id := chi.URLParam(r, "id")
	tenant := r.URL.Query().Get("tenant")
	if !tenantParam.MatchString(tenant) {
		a.fail(w, r, badParam("tenant", "required: the session's tenant (1-64 characters of a-z, 0-9, _ and -)"))
		return
	}
	if len(id) > 128 {
		a.fail(w, r, badParam("id", "longer than 128 characters"))
		return
	}
	if !a.checkTenantScope(w, r, tenant) {
		return
	}
	rows, err := a.cfg.DB.Query(r.Context(), `SELECT idx, leaf, header, sealed_at, event, session_seq FROM events
		WHERE tenant = $1 AND session_id = $2 ORDER BY session_seq, idx`, tenant, id)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	tl := Timeline{Tenant: tenant, SessionID: id, Events: []EventResult{}, Gaps: []Gap{}}
	next := int64(1)
	for rows.Next() {
		var idx, seq int64
		var leaf, header []byte
		var sealed time.Time
		var ev string
		if err := rows.Scan(&idx, &leaf, &header, &sealed, &ev, &seq); err != nil {
			rows.Close()
			a.fail(w, r, err)
			return
		}
		if seq > next {
			tl.Gaps = append(tl.Gaps, Gap{From: next, To: seq - 1})
		}
		next = max(next, seq+1)
		tl.Events = append(tl.Events, eventResult(idx, leaf, header, sealed, ev))
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		a.fail(w, r, err)
		return
	}
	if len(tl.Events) == 0 {
		a.fail(w, r, fmt.Errorf("%w: no session %q in tenant %q", errNotFound, id, tenant))
		return
	}
	if err := a.accessed(r, tenant, map[string]any{"resource": "session", "session_id": id, "count": len(tl.Events), "gaps": len(tl.Gaps)}); err != nil {
		a.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, tl)
}
