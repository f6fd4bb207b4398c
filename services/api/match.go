package api

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/auditledger/auditledger/events"
	"github.com/auditledger/auditledger/projections"
)

// The search by value: which events recorded a value the recording rule
// replaced (docs/FORMAT.md §1.5). The value travels in the request body,
// never in the URL (which access logs and proxies keep); the API turns it
// into each tenant's keyed digest at once, searches the projection by
// digest, and records the search (audit.accessed) with the digest, never
// the value. An actor e-mail is sealed rather than digested: the subjects
// who sealed the value as their e-mail (the key store's lookup) find
// their events too.

// MatchRequest is the body of POST /v1/events/match.
type MatchRequest struct {
	// Value is what to look for, as typed: it is put in canonical form
	// (piikeys.Canonical: folded as the detectors read it, separators
	// between digit groups dropped, an address lower-cased) before its
	// digest is made. Required; at most 256 bytes.
	Value string `json:"value"`
	// Tenant: only this one (within the caller's scope); empty: every
	// tenant of the caller's scope.
	Tenant string `json:"tenant,omitempty"`
	// Type: event types, comma-separated; Since, Until: RFC 3339; After,
	// Limit: the page, as for GET /v1/events.
	Type  string     `json:"type,omitempty"`
	Since *time.Time `json:"since,omitempty"`
	Until *time.Time `json:"until,omitempty"`
	After *uint64    `json:"after,omitempty"`
	Limit int        `json:"limit,omitempty"`
}

// MatchResult is one event that recorded the value, and where.
type MatchResult struct {
	EventResult
	Matched []MatchPlace `json:"matched"`
}

// MatchPlace is where an event recorded the value: the payload's JSON
// Pointer and the detector that found it; or path "actor.email",
// detector "email", when the event's actor e-mail is the value, sealed
// (docs/FORMAT.md §1.6).
type MatchPlace struct {
	Path     string `json:"path"`
	Detector string `json:"detector"`
}

// MatchPage is an answer of POST /v1/events/match. Next, when set, is the
// after of the next page.
type MatchPage struct {
	Events []MatchResult `json:"events"`
	Next   *uint64       `json:"next,omitempty"`
}

// MaxMatchValue is the longest value searched for.
const MaxMatchValue = 256

// errNoKeys: the API runs without the personal-data key store.
var errNoKeys = errors.New("search by value is not available: the api role has no access to the personal-data keys (bucket AUDIT_PII_KEYS on the bus)")

// matchEvents answers POST /v1/events/match.
func (a *api) matchEvents(w http.ResponseWriter, r *http.Request) {
	if a.cfg.Keys == nil {
		a.fail(w, r, errNoKeys)
		return
	}
	var req MatchRequest
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, 8<<10))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil {
		// The decoder's message quotes no string value of the body.
		a.fail(w, r, fmt.Errorf("%w: body: %v (want {\"value\", \"tenant\", \"type\", \"since\", \"until\", \"after\", \"limit\"})", errBadRequest, err))
		return
	}
	// The value is never quoted back: an error names what is wrong
	// with it, not what it is.
	switch {
	case strings.TrimSpace(req.Value) == "":
		a.fail(w, r, badParam("value", "required: the value to look for"))
		return
	case len(req.Value) > MaxMatchValue:
		a.fail(w, r, badParam("value", "longer than %d bytes", MaxMatchValue))
		return
	case !cleanText(req.Value):
		a.fail(w, r, badParam("value", "holds a NUL byte or invalid UTF-8"))
		return
	}
	if req.Limit < 0 || req.Limit > projections.MaxPage {
		a.fail(w, r, badParam("limit", "%d: want 1 to %d", req.Limit, projections.MaxPage))
		return
	}
	if req.Tenant != "" && !cleanText(req.Tenant) {
		a.fail(w, r, badParam("tenant", "holds a NUL byte or invalid UTF-8"))
		return
	}
	tenants, ok := a.tenantsOf(w, r, req.Tenant)
	if !ok {
		return
	}
	// Only tenants with a key were ever recorded with digests; asking
	// the store lists them without making keys for the others.
	list, err := a.cfg.Keys.TenantKeyList(r.Context())
	if err != nil {
		a.fail(w, r, fmt.Errorf("%w: listing the tenants' search keys: %v", errKeysUnavailable, err))
		return
	}
	var keyed []string
	for _, k := range list {
		keyed = append(keyed, k.Tenant)
	}
	if tenants == nil { // every tenant
		tenants = keyed
	}
	f := projections.EventFilter{Matches: []projections.Match{}, Since: deref(req.Since), Until: deref(req.Until), Limit: req.Limit}
	for _, t := range slices.Sorted(slices.Values(tenants)) {
		if !slices.Contains(keyed, t) {
			continue
		}
		d, err := a.cfg.Keys.Match(r.Context(), t, req.Value)
		if err != nil {
			a.fail(w, r, fmt.Errorf("%w: tenant %q: %v", errKeysUnavailable, t, err))
			return
		}
		f.Matches = append(f.Matches, projections.Match{Tenant: t, Digest: d})
		f.Tenants = append(f.Tenants, t)
	}
	// An actor e-mail is sealed, not digested (docs/FORMAT.md §1.6): the
	// subjects who sealed the value as theirs find those events, as the
	// e-mail filter of GET /v1/events does.
	if len(f.Tenants) > 0 && strings.Contains(req.Value, "@") {
		if f.MatchSealers, err = a.emailSealers(r, f.Tenants, req.Value); err != nil {
			a.fail(w, r, err)
			return
		}
	}
	if f.Tenants == nil {
		f.Tenants = []string{}
	}
	if req.Type != "" {
		for _, t := range strings.Split(req.Type, ",") {
			f.Types = append(f.Types, events.Type(t))
		}
	}
	if req.After != nil {
		f.After = strconv.FormatUint(*req.After, 10)
	}
	res, err := a.read.Events(r.Context(), f)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	page := MatchPage{Events: make([]MatchResult, len(res.Events))}
	o := a.opener(r.Context())
	for i := range res.Events {
		e := &res.Events[i]
		m := MatchResult{EventResult: eventResult(o, e), Matched: make([]MatchPlace, len(e.Matched))}
		for j, p := range e.Matched {
			m.Matched[j] = MatchPlace{Path: p.Path, Detector: p.Detector}
		}
		page.Events[i] = m
	}
	if res.Next != "" {
		next := page.Events[len(page.Events)-1].Index
		page.Next = &next
	}
	// One audit.accessed per tenant searched, found or not, each with
	// that tenant's digest: its auditors see that it was searched, and
	// for what, as far as the key lets anyone tell.
	filters := map[string]any{}
	if req.Type != "" {
		filters["type"] = events.Clean(req.Type, 256)
	}
	for k, t := range map[string]*time.Time{"since": req.Since, "until": req.Until} {
		if t != nil {
			filters[k] = t.UTC().Format(time.RFC3339Nano)
		}
	}
	if req.After != nil {
		filters["after"] = strconv.FormatUint(*req.After, 10)
	}
	var parts []part
	for _, m := range f.Matches {
		fl := map[string]any{"match_digest": m.Digest}
		for k, v := range filters {
			fl[k] = v
		}
		p := map[string]any{"resource": "events", "filters": fl, "count": 0}
		for _, e := range res.Events {
			if e.Tenant != m.Tenant {
				continue
			}
			if p["count"] == 0 {
				p["first_index"] = e.Index
			}
			p["count"], p["last_index"] = p["count"].(int)+1, e.Index
		}
		parts = append(parts, part{m.Tenant, p})
	}
	if len(parts) == 0 {
		// No tenant in scope has a key: nothing could match. The search
		// is recorded all the same, without a digest (there is none).
		parts = []part{{a.readTenant(r, req.Tenant), map[string]any{"resource": "events", "filters": map[string]any{"match_digest": nil}, "count": 0}}}
	}
	if err := a.accessedParts(r, parts); err != nil {
		a.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, page)
}

// errKeysUnavailable: the key store did not answer.
var errKeysUnavailable = errors.New("the personal-data key store is unavailable")

func deref(t *time.Time) time.Time {
	if t == nil {
		return time.Time{}
	}
	return *t
}
