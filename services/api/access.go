package api

import (
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/go-chi/chi/v5"

	"github.com/auditledger/auditledger/events"
	"github.com/auditledger/auditledger/services/access"
	"github.com/auditledger/auditledger/services/identity"
)

// Just-in-time access requests. Anyone with a valid token may ask for
// access (or, in a break-glass group, take it); approvers decide the
// requests whose tenant and target are in their scope, as for approvals;
// a request's requester, or an approver in scope, may revoke it. The
// access rules (which reviewer groups, how long) are the broker's.

// errNoAccess: the API was started without access rules.
var errNoAccess = errors.New("just-in-time access is not configured: give the api role the policy file holding the access rules (api.access_policy)")

// AccessAsk is the body of POST /v1/access-requests.
type AccessAsk struct {
	Tenant string `json:"tenant,omitempty"` // empty: the caller's one tenant, or the API's
	Target string `json:"target"`
	// Start is when the window begins (RFC 3339); empty: when granted.
	Start      string `json:"start,omitempty"`
	Duration   string `json:"duration"` // Go duration: "2h", "30m"; ignored for break-glass
	Reason     string `json:"reason"`
	BreakGlass bool   `json:"break_glass,omitempty"`
}

func (a *api) needsAccess(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if a.cfg.Access == nil {
			a.fail(w, r, errNoAccess)
			return
		}
		next.ServeHTTP(w, r)
	})
}

func (a *api) requestAccess(w http.ResponseWriter, r *http.Request) {
	var ask AccessAsk
	if !a.decodeBody(w, r, &ask, "") {
		return
	}
	tenant := ask.Tenant
	if tenant != "" {
		if err := checkTenant(tenant); err != nil {
			a.fail(w, r, err)
			return
		}
		if !a.checkTenantScope(w, r, tenant) {
			return
		}
	} else {
		tenant = a.readTenant(r, "")
	}
	var start time.Time
	if ask.Start != "" {
		var err error
		if start, err = time.Parse(time.RFC3339, ask.Start); err != nil {
			a.fail(w, r, badParam("start", "want an RFC 3339 time such as 2026-12-07T14:00:00Z"))
			return
		}
	}
	var d time.Duration
	if !ask.BreakGlass {
		var err error
		if d, err = time.ParseDuration(ask.Duration); err != nil {
			a.fail(w, r, badParam("duration", "%q: want a duration such as 2h or 30m", ask.Duration))
			return
		}
	}
	who := a.sealActor(r.Context(), a.actorIn(actorOf(r.Context()), tenant), tenant)
	in := access.Ask{Tenant: tenant, Requester: who, Target: ask.Target, Start: start, Duration: d, Reason: ask.Reason}
	var req *access.Request
	var err error
	if ask.BreakGlass {
		req, err = a.cfg.Access.BreakGlass(r.Context(), in)
	} else {
		req, err = a.cfg.Access.Request(r.Context(), in)
	}
	if errors.Is(err, access.ErrNotReviewer) {
		a.recordAsync(r, events.CommandBlocked, who, tenant, map[string]any{"reason": err.Error(), "target_name": ask.Target})
	}
	if err != nil { // a break-glass grant whose record failed is revoked
		a.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, req)
}

// accessVisible says whether the caller may see req: its requester, or a
// holder of the approver, security or auditor role whose scope reaches
// its tenant and target.
func (a *api) accessVisible(r *http.Request, req *access.Request) bool {
	actor := actorOf(r.Context())
	if a.holds(actor, Approver, Security, Auditor) {
		s := a.scopeOf(r)
		if s.tenant(req.Tenant) && s.target(req.Target) {
			return true
		}
	}
	return identity.Same(a.sealActor(r.Context(), actor, req.Tenant), req.Requester)
}

func (a *api) listAccess(w http.ResponseWriter, r *http.Request) {
	st := access.Status(r.URL.Query().Get("status"))
	switch st {
	case "", access.Pending, access.Approved, access.Denied, access.Expired, access.Revoked, access.Used:
	default:
		a.fail(w, r, badParam("status", "%q is not pending, approved, used, denied, expired or revoked", st))
		return
	}
	all, err := a.cfg.Access.List(r.Context(), st)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	list := []*access.Request{}
	var parts []part
	byTenant := map[string]int{}
	for _, q := range all {
		if !a.accessVisible(r, q) {
			continue
		}
		list = append(list, q)
		i, ok := byTenant[q.Tenant]
		if !ok {
			i, byTenant[q.Tenant] = len(parts), len(parts)
			parts = append(parts, part{q.Tenant, map[string]any{"resource": "access-requests", "status_filter": string(st), "count": 0, "ids": []string{}}})
		}
		p := parts[i].payload
		p["count"], p["ids"] = p["count"].(int)+1, append(p["ids"].([]string), q.ID)
	}
	if len(parts) == 0 {
		parts = []part{{a.readTenant(r, ""), map[string]any{"resource": "access-requests", "status_filter": string(st), "count": 0, "ids": []string{}}}}
	}
	if err := a.accessedParts(r, parts); err != nil {
		a.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, list)
}

// accessRequest reads the request named in the path, refusing (and
// recording) one the caller may not see.
func (a *api) accessRequest(w http.ResponseWriter, r *http.Request) (*access.Request, bool) {
	req, err := a.cfg.Access.Get(r.Context(), chi.URLParam(r, "id"))
	if err != nil {
		a.fail(w, r, err)
		return nil, false
	}
	if !a.accessVisible(r, req) {
		a.refuse(w, r, &scopeError{what: "access request " + req.ID, scope: a.scopeOf(r), tenants: []string{req.Tenant}})
		return nil, false
	}
	return req, true
}

func (a *api) getAccess(w http.ResponseWriter, r *http.Request) {
	req, ok := a.accessRequest(w, r)
	if !ok {
		return
	}
	if err := a.accessed(r, req.Tenant, map[string]any{"resource": "access-request", "ids": []string{req.ID}, "count": 1}); err != nil {
		a.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, req)
}

// decideAccess approves, denies or revokes. Approve and deny need the
// approver role and the request in scope; revoke, the requester or an
// approver in scope. Every refusal is recorded (command.blocked), a
// self-approval included.
func (a *api) decideAccess(verb string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		var d Decision
		if !a.decodeBody(w, r, &d, `{"reason": "..."}`) {
			return
		}
		if strings.TrimSpace(d.Reason) == "" {
			a.fail(w, r, fmt.Errorf("%w: a reason is required to %s", errBadRequest, verb))
			return
		}
		req, err := a.cfg.Access.Get(r.Context(), chi.URLParam(r, "id"))
		if err != nil {
			a.fail(w, r, err)
			return
		}
		actor := actorOf(r.Context())
		who := a.sealActor(r.Context(), a.actorIn(actor, req.Tenant), req.Tenant)
		s := a.scopeOf(r)
		reviewer := a.holds(actor, Approver) && s.tenant(req.Tenant) && s.target(req.Target)
		if !reviewer && !(verb == "revoke" && identity.Same(who, req.Requester)) {
			if !a.holds(actor, Approver) {
				doing := map[string]string{"approve": "approving", "deny": "denying", "revoke": "revoking another's"}[verb]
				err := fmt.Errorf("%w: %s an access request needs the role approver; %s has groups %v", errForbidden, doing, actor.Subject, actor.Groups)
				a.recordAsync(r, events.CommandBlocked, who, req.Tenant, map[string]any{"reason": err.Error()})
				a.fail(w, r, err)
				return
			}
			a.refuse(w, r, &scopeError{what: "access request " + req.ID, scope: s, tenants: []string{req.Tenant}})
			return
		}
		switch verb {
		case "approve":
			req, err = a.cfg.Access.Approve(r.Context(), req.ID, who, d.Reason)
		case "deny":
			req, err = a.cfg.Access.Deny(r.Context(), req.ID, who, d.Reason)
		default:
			req, err = a.cfg.Access.Revoke(r.Context(), req.ID, who, d.Reason)
		}
		if errors.Is(err, access.ErrSelfApproval) || errors.Is(err, access.ErrNotReviewer) {
			a.recordAsync(r, events.CommandBlocked, who, tenantOr(req, a.cfg.Tenant), map[string]any{"reason": err.Error(), "access_id": chi.URLParam(r, "id")})
		}
		if err != nil {
			a.fail(w, r, err)
			return
		}
		writeJSON(w, http.StatusOK, req)
	}
}

// tenantOr is req's tenant, or def when there is no request.
func tenantOr(req *access.Request, def string) string {
	if req == nil {
		return def
	}
	return req.Tenant
}
