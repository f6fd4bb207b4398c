package api

import (
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/auditledger/auditledger/events"
	"github.com/auditledger/auditledger/ledger"
	"github.com/auditledger/auditledger/ledger/piikeys"
	"github.com/auditledger/auditledger/projections"
	"github.com/auditledger/auditledger/services/gateway"
)

// The read path: queries over the projection (projections package) and
// proofs from its stored tree hashes, each read recorded as
// audit.accessed before its answer is sent.

// paramError is a bad query parameter: 400, naming it.
type paramError struct{ param, reason string }

func (e *paramError) Error() string        { return "query parameter " + e.param + ": " + e.reason }
func (e *paramError) Is(target error) bool { return target == errBadRequest }

func badParam(param, format string, args ...any) error {
	return &paramError{param, fmt.Sprintf(format, args...)}
}

// errNoReadPath: the API was started without the projection database.
var errNoReadPath = errors.New("the read path is not configured: start the api role with AUDITLEDGER_DATABASE_URL set to the projection database")

// EventResult is one event of a query: where it is in the log, and the
// exact record bytes its leaf hash covers (record = header ‖ event), so a
// client can check its inclusion proof without trusting this API.
type EventResult struct {
	Index    uint64          `json:"index"`
	Leaf     string          `json:"leaf"` // hex
	SealedAt time.Time       `json:"sealed_at"`
	Record   string          `json:"record"` // base64 of the exact record bytes
	Event    json.RawMessage `json:"event"`
	// ActorEmail is the event's actor.email as a reader sees it: opened
	// when sealed (docs/FORMAT.md §1.6), "(erased)" once the subject was
	// erased; Event keeps the sealed field.
	ActorEmail string `json:"actor_email,omitempty"`
}

// EventPage is an answer of GET /v1/events. Next, when set, is the value
// of after for the next page.
type EventPage struct {
	Events []EventResult `json:"events"`
	Next   *uint64       `json:"next,omitempty"`
}

// needsReadPath answers the read path's routes with 503 when the API was
// started without the projection database.
func (a *api) needsReadPath(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !a.read.Available() {
			a.fail(w, r, errNoReadPath)
			return
		}
		next.ServeHTTP(w, r)
	})
}

// cleanInput is the one check of every route's input text: a query
// parameter (its name or value), cursor or path segment must be valid
// UTF-8 without NUL bytes, which PostgreSQL cannot store or compare (it
// answers "invalid byte sequence"), and which no tenant, subject, id or
// filter holds. A parameter is named as sent, percent-encoded if its name
// is itself bad.
func (a *api) cleanInput(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if err := checkInput(r); err != nil {
			a.fail(w, r, err)
			return
		}
		next.ServeHTTP(w, r)
	})
}

func checkInput(r *http.Request) error {
	if !cleanText(r.URL.Path) {
		return badParam("path", "%q holds a NUL byte or invalid UTF-8", r.URL.EscapedPath())
	}
	q := r.URL.Query()
	for _, k := range slices.Sorted(maps.Keys(q)) {
		if !cleanText(k) {
			return badParam(url.QueryEscape(k), "the name holds a NUL byte or invalid UTF-8")
		}
		for _, v := range q[k] {
			if !cleanText(v) {
				return badParam(k, "%q holds a NUL byte or invalid UTF-8", v)
			}
		}
	}
	return nil
}

func cleanText(s string) bool { return utf8.ValidString(s) && !strings.ContainsRune(s, 0) }

// knownParams refuses a query parameter the route does not know.
func knownParams(q url.Values, known ...string) error {
	for k := range q {
		if !slices.Contains(known, k) {
			return badParam(k, "unknown (known: %s)", strings.Join(known, ", "))
		}
	}
	return nil
}

// checkTenant checks a tenant given as a parameter.
func checkTenant(v string) error {
	if !tenantParam.MatchString(v) {
		return badParam("tenant", "want 1-64 characters of a-z, 0-9, _ and -")
	}
	return nil
}

// pageLimit is the limit parameter: 1 to projections.MaxPage, 0 (the
// reader's default) when absent.
func pageLimit(q url.Values) (int, error) {
	v := q.Get("limit")
	if v == "" {
		return 0, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 1 || n > projections.MaxPage {
		return 0, badParam("limit", "%q: want 1 to %d", v, projections.MaxPage)
	}
	return n, nil
}

// actorFilter is the actor subject a query names as events record it
// (gateway.RecordedActor): a personal one — an OIDC sub that is an
// e-mail address — by its pseudonym under the one tenant queried and
// the issuer the query names. A subject without a key (never recorded,
// or erased: its old events keep a pseudonym nothing leads to) matches
// nothing. ok is false when the query was answered with an error.
func (a *api) actorFilter(w http.ResponseWriter, r *http.Request, actor, issuer string, tenants []string) (string, bool) {
	d := gateway.Personal(actor)
	if d == "" {
		return actor, true
	}
	// The value is not echoed: it is personal.
	var err error
	switch {
	case a.cfg.Keys == nil:
		err = badParam("actor", "the subject named holds what the %s detector finds, so events record it by pseudonym, and this API has no key store to find it", d)
	case len(tenants) != 1:
		err = badParam("tenant", "required with an actor subject the %s detector finds something in: it is recorded by a pseudonym of each tenant", d)
	case issuer == "":
		err = badParam("issuer", "required with an actor subject the %s detector finds something in: it is recorded by a pseudonym of issuer and subject", d)
	}
	if err != nil {
		a.fail(w, r, err)
		return "", false
	}
	p, err := a.cfg.Keys.PseudonymOf(r.Context(), tenants[0], issuer, actor)
	switch {
	case errors.Is(err, piikeys.ErrNoSubject):
		// PseudonymPrefix alone is no recorded subject.
		return gateway.PseudonymPrefix, true
	case err != nil:
		a.fail(w, r, fmt.Errorf("the pseudonym of the actor named: %w", err))
		return "", false
	}
	return gateway.PseudonymPrefix + p, true
}

// eventResult is one projected record as the API returns it.
func eventResult(o *opener, e *projections.Event) EventResult {
	var email string
	if e.ActorEmailRead {
		email = o.email(e.Tenant, e.ActorEmail)
	} else {
		email = o.actorEmail(e.Tenant, e.Event)
	}
	return EventResult{Index: e.Index, Leaf: hex.EncodeToString(e.Leaf[:]), SealedAt: e.SealedAt,
		Record: base64.StdEncoding.EncodeToString(e.Record()), Event: json.RawMessage(e.Event),
		ActorEmail: email}
}

var tenantParam = regexp.MustCompile(`^[a-z0-9_-]{1,64}$`)

// eventParams are the filters of GET /v1/events and its export.
var eventParams = []string{"type", "tenant", "actor", "issuer", "email", "session", "target", "source", "since", "until", "q", "after"}

// eventFilter reads the filters of GET /v1/events (and of its export,
// which knows the extra parameters given), scoped to the caller: the
// tenant named, checked against the scope, or the scope's tenants. False
// means refused, the answer written.
func (a *api) eventFilter(w http.ResponseWriter, r *http.Request, q url.Values, extra ...string) (projections.EventFilter, bool) {
	if err := knownParams(q, append(append([]string{"limit"}, eventParams...), extra...)...); err != nil {
		a.fail(w, r, err)
		return projections.EventFilter{}, false
	}
	f := projections.EventFilter{Actor: q.Get("actor"), Email: q.Get("email"), Session: q.Get("session"), Target: q.Get("target"),
		Source: q.Get("source"), Text: q.Get("q"), After: q.Get("after")}
	if v := q.Get("type"); v != "" {
		for _, t := range strings.Split(v, ",") {
			f.Types = append(f.Types, events.Type(t))
		}
	}
	var ok bool
	if f.Tenants, ok = a.tenantsOf(w, r, q.Get("tenant")); !ok {
		return f, false
	}
	if f.Actor, ok = a.actorFilter(w, r, f.Actor, q.Get("issuer"), f.Tenants); !ok {
		return f, false
	}
	if f.Email != "" && a.cfg.Keys != nil {
		var err error
		if f.EmailSealers, err = a.emailSealers(r, f.Tenants, f.Email); err != nil {
			a.fail(w, r, err)
			return f, false
		}
	}
	for _, p := range []struct {
		param string
		t     *time.Time
	}{{"since", &f.Since}, {"until", &f.Until}} {
		if v := q.Get(p.param); v != "" {
			t, err := time.Parse(time.RFC3339Nano, v)
			if err != nil {
				a.fail(w, r, badParam(p.param, "%q is not an RFC 3339 time (e.g. 2026-11-27T10:00:00Z)", v))
				return f, false
			}
			*p.t = t
		}
	}
	return f, true
}

// listEvents answers GET /v1/events: filters type (comma-separated),
// tenant, actor (the subject; with issuer when personal, actorFilter),
// email, session, target, source (the recording producer's kind), since
// and until (RFC 3339), q (text in the event, case-insensitive); keyset
// pagination by ledger index (after, limit).
func (a *api) listEvents(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	f, ok := a.eventFilter(w, r, q)
	if !ok {
		return
	}
	var err error
	if f.Limit, err = pageLimit(q); err != nil {
		a.fail(w, r, err)
		return
	}
	res, err := a.read.Events(r.Context(), f)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	page := EventPage{Events: make([]EventResult, len(res.Events))}
	o := a.opener(r.Context())
	for i := range res.Events {
		page.Events[i] = eventResult(o, &res.Events[i])
	}
	if res.Next != "" {
		next := page.Events[len(page.Events)-1].Index
		page.Next = &next
	}
	filters := map[string]string{}
	for k := range q {
		filters[k] = events.Clean(q.Get(k), 256)
	}
	// One record per tenant on the page, each with its own count and
	// range (the events are in index order).
	var parts []part
	byTenant := map[string]int{}
	for _, e := range res.Events {
		j, ok := byTenant[e.Tenant]
		if !ok {
			j, byTenant[e.Tenant] = len(parts), len(parts)
			parts = append(parts, part{e.Tenant, map[string]any{"resource": "events", "filters": filters, "count": 0, "first_index": e.Index}})
		}
		p := parts[j].payload
		p["count"], p["last_index"] = p["count"].(int)+1, e.Index
	}
	if len(parts) == 0 {
		parts = []part{{a.readTenant(r, q.Get("tenant")), map[string]any{"resource": "events", "filters": filters, "count": 0}}}
	}
	if err := a.accessedParts(r, parts); err != nil {
		a.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, page)
}

// latestCheckpoint answers GET /v1/checkpoints/latest with the newest
// signed checkpoint the projection holds, verbatim (C2SP tlog-checkpoint).
func (a *api) latestCheckpoint(w http.ResponseWriter, r *http.Request) {
	cp, size, err := a.checkpointAt(r, "")
	if err != nil {
		a.fail(w, r, err)
		return
	}
	if err := a.accessed(r, a.cfg.Tenant, map[string]any{"resource": "checkpoint", "size": size}); err != nil {
		a.fail(w, r, err)
		return
	}
	writeText(w, cp)
}

// inclusionProof answers GET /v1/proofs/inclusion?index=N|event_id=ID
// [&size=M] with a C2SP tlog-proof against the signed checkpoint at M
// (default: the newest), read in O(log M).
func (a *api) inclusionProof(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	var index uint64
	switch id, idx := q.Get("event_id"), q.Get("index"); {
	case (id == "") == (idx == ""):
		a.fail(w, r, badParam("index", "give index or event_id, one of them"))
		return
	case idx != "":
		n, err := strconv.ParseUint(idx, 10, 63)
		if err != nil {
			a.fail(w, r, badParam("index", "%q is not a ledger index", idx))
			return
		}
		index = n
	default:
		// Ids are unique within a tenant: the caller's events are those
		// of its tenants, and another tenant's event is unknown to it.
		hits, err := a.read.EventsWithID(r.Context(), id)
		if err != nil {
			a.fail(w, r, err)
			return
		}
		sc := a.scopeOf(r)
		var idxs []uint64
		for _, h := range hits {
			if sc.tenant(h.Tenant) {
				idxs = append(idxs, h.Index)
			}
		}
		notFound := fmt.Errorf("%w: no sealed event has the id %q", errNotFound, id)
		switch {
		case len(idxs) == 0 && len(hits) > 0:
			out := &scopeError{what: notFound.Error(), scope: sc, hidden: true}
			for _, h := range hits {
				out.tenants = append(out.tenants, h.Tenant)
			}
			a.refuse(w, r, out)
			return
		case len(idxs) == 0:
			a.fail(w, r, notFound)
			return
		case len(idxs) > 1:
			a.fail(w, r, badParam("event_id", "%q names events of more than one tenant: ask by index", id))
			return
		}
		index = idxs[0]
	}
	cp, size, err := a.checkpointAt(r, q.Get("size"))
	if err != nil {
		a.fail(w, r, err)
		return
	}
	if index >= size {
		a.fail(w, r, badParam("index", "%d is not below the tree size %d", index, size))
		return
	}
	// A proof carries only hashes, but whether index is an event the
	// caller may know of is the scope's to say, and the read is one of
	// that event's tenant.
	tenant, err := a.read.TenantAt(r.Context(), index)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	if sc := a.scopeOf(r); !sc.tenant(tenant) {
		a.refuse(w, r, &scopeError{what: fmt.Sprintf("no event of your tenants at index %d", index), scope: sc, hidden: true, tenants: []string{tenant}})
		return
	}
	hashes, err := a.read.InclusionProof(r.Context(), index, size)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	if err := a.accessed(r, tenant, map[string]any{"resource": "inclusion proof", "index": index, "size": size}); err != nil {
		a.fail(w, r, err)
		return
	}
	writeText(w, string((&ledger.InclusionProofText{Index: index, Hashes: hashes, Checkpoint: []byte(cp)}).Marshal()))
}

// consistencyProof answers GET /v1/proofs/consistency?from=A&to=B, both
// sizes of signed checkpoints (or 0 for from), in the text form of
// docs/FORMAT.md §6.
func (a *api) consistencyProof(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	_, to, err := a.checkpointAt(r, q.Get("to"))
	if err != nil {
		a.fail(w, r, err)
		return
	}
	from, err := strconv.ParseUint(q.Get("from"), 10, 63)
	if err != nil {
		a.fail(w, r, badParam("from", "%q is not a tree size", q.Get("from")))
		return
	}
	if from > to {
		a.fail(w, r, badParam("from", "%d is beyond to (%d)", from, to))
		return
	}
	if from > 0 {
		if _, _, err := a.checkpointAt(r, strconv.FormatUint(from, 10)); err != nil {
			var fe *projections.FilterError
			if errors.As(err, &fe) {
				fe.Field = "from"
			}
			a.fail(w, r, err)
			return
		}
	}
	hashes, err := a.read.ConsistencyProof(r.Context(), from, to)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	if err := a.accessed(r, a.cfg.Tenant, map[string]any{"resource": "consistency proof", "from": from, "to": to}); err != nil {
		a.fail(w, r, err)
		return
	}
	writeText(w, string((&ledger.ConsistencyProofText{Old: from, New: to, Hashes: hashes}).Marshal()))
}

// checkpointAt is the signed checkpoint at size (a query parameter's
// value; empty: the newest) and its size.
func (a *api) checkpointAt(r *http.Request, size string) (string, uint64, error) {
	var cp projections.Checkpoint
	var err error
	if size == "" {
		cp, err = a.read.LatestCheckpoint(r.Context())
	} else {
		m, perr := strconv.ParseUint(size, 10, 63)
		if perr != nil {
			return "", 0, badParam("size", "%q is not a tree size", size)
		}
		cp, err = a.read.CheckpointAt(r.Context(), m)
	}
	return cp.Note, cp.Size, err
}

func writeText(w http.ResponseWriter, s string) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Write([]byte(s))
}

// verifyStatus answers GET /v1/verify/status: the newest full
// verification of the store the projector ran (at its start and on a
// schedule).
func (a *api) verifyStatus(w http.ResponseWriter, r *http.Request) {
	v, err := a.read.LatestVerification(r.Context())
	if err != nil {
		a.fail(w, r, err)
		return
	}
	if v == nil {
		a.fail(w, r, fmt.Errorf("%w: no verification has run yet (the projector runs one at start)", errNotFound))
		return
	}
	if err := a.accessed(r, a.cfg.Tenant, map[string]any{"resource": "verify status", "size": v.Size, "ok": v.OK}); err != nil {
		a.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, v)
}
