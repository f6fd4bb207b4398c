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

	"github.com/jackc/pgx/v5"

	"github.com/auditledger/auditledger/events"
	"github.com/auditledger/auditledger/ledger"
	"github.com/auditledger/auditledger/projections"
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
		if a.cfg.DB == nil {
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

// pageLimit is the limit parameter: 1 to 1000, 100 when absent.
func pageLimit(q url.Values) (int, error) {
	v := q.Get("limit")
	if v == "" {
		return 100, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 1 || n > 1000 {
		return 0, badParam("limit", "%q: want 1 to 1000", v)
	}
	return n, nil
}

// eventResult is one projected record as the API returns it.
func eventResult(idx int64, leaf, header []byte, sealed time.Time, ev string) EventResult {
	return EventResult{Index: uint64(idx), Leaf: hex.EncodeToString(leaf), SealedAt: sealed.UTC(),
		Record: base64.StdEncoding.EncodeToString(append(header, ev...)), Event: json.RawMessage(ev)}
}

var (
	tenantParam = regexp.MustCompile(`^[a-z0-9_-]{1,64}$`)
	maxText     = 256
)

// listEvents answers GET /v1/events: filters type (comma-separated),
// tenant, actor (the subject), email, session, target, since and until
// (RFC 3339), q (text in the event, case-insensitive); keyset pagination
// by ledger index (after, limit).
func (a *api) listEvents(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	if err := knownParams(q, "type", "tenant", "actor", "email", "session", "target", "since", "until", "q", "after", "limit"); err != nil {
		a.fail(w, r, err)
		return
	}
	var where []string
	var args []any
	arg := func(v any) string { args = append(args, v); return "$" + strconv.Itoa(len(args)) }
	if v := q.Get("type"); v != "" {
		var types []string
		for _, t := range strings.Split(v, ",") {
			if !events.Type(t).Known() {
				a.fail(w, r, badParam("type", "%q is not an event type of the version-1 catalog", t))
				return
			}
			types = append(types, t)
		}
		if len(types) == 1 {
			where = append(where, "type = "+arg(types[0])) // lets the planner use (actor, type, idx)
		} else {
			where = append(where, "type = ANY("+arg(types)+")")
		}
	}
	if v := q.Get("tenant"); v != "" {
		if err := checkTenant(v); err != nil {
			a.fail(w, r, err)
			return
		}
		if !a.checkTenantScope(w, r, v) {
			return
		}
		where = append(where, "tenant = "+arg(v))
	} else if cond, ok := a.tenantCondition(w, r, arg); !ok {
		return
	} else if cond != "" {
		where = append(where, cond)
	}
	for _, p := range []struct{ param, cond string }{
		{"actor", "actor_subject = %s"},
		{"email", "actor_email = %s"},
		{"session", "session_id = %s"},
		{"target", "target_name = %s"},
	} {
		if v := q.Get(p.param); v != "" {
			if len(v) > maxText {
				a.fail(w, r, badParam(p.param, "longer than %d characters", maxText))
				return
			}
			where = append(where, fmt.Sprintf(p.cond, arg(v)))
		}
	}
	for _, p := range []struct{ param, op string }{{"since", ">="}, {"until", "<"}} {
		if v := q.Get(p.param); v != "" {
			t, err := time.Parse(time.RFC3339Nano, v)
			if err != nil {
				a.fail(w, r, badParam(p.param, "%q is not an RFC 3339 time (e.g. 2026-11-27T10:00:00Z)", v))
				return
			}
			where = append(where, "time "+p.op+" "+arg(t))
		}
	}
	if v := q.Get("q"); v != "" {
		if len(v) > maxText {
			a.fail(w, r, badParam("q", "longer than %d characters", maxText))
			return
		}
		// A literal substring: LIKE's wildcards in it are escaped.
		pattern := "%" + strings.NewReplacer(`\`, `\\`, `%`, `\%`, `_`, `\_`).Replace(v) + "%"
		where = append(where, "event ILIKE "+arg(pattern))
	}
	if v := q.Get("after"); v != "" {
		n, err := strconv.ParseUint(v, 10, 63)
		if err != nil {
			a.fail(w, r, badParam("after", "%q is not a ledger index", v))
			return
		}
		where = append(where, "idx > "+arg(int64(n)))
	}
	limit, err := pageLimit(q)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	sql := "SELECT idx, leaf, header, sealed_at, event, tenant FROM events"
	if len(where) > 0 {
		sql += " WHERE " + strings.Join(where, " AND ")
	}
	sql += " ORDER BY idx LIMIT " + arg(limit+1)
	rows, err := a.cfg.DB.Query(r.Context(), sql, args...)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	page := EventPage{Events: []EventResult{}}
	var tenants []string // of each event
	for rows.Next() {
		var idx int64
		var leaf, header []byte
		var sealed time.Time
		var ev, tenant string
		if err := rows.Scan(&idx, &leaf, &header, &sealed, &ev, &tenant); err != nil {
			rows.Close()
			a.fail(w, r, err)
			return
		}
		page.Events = append(page.Events, eventResult(idx, leaf, header, sealed, ev))
		tenants = append(tenants, tenant)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		a.fail(w, r, err)
		return
	}
	if len(page.Events) > limit {
		page.Events = page.Events[:limit]
		next := page.Events[limit-1].Index
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
	for i, e := range page.Events {
		j, ok := byTenant[tenants[i]]
		if !ok {
			j, byTenant[tenants[i]] = len(parts), len(parts)
			parts = append(parts, part{tenants[i], map[string]any{"resource": "events", "filters": filters, "count": 0, "first_index": e.Index}})
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
		if len(id) > 128 {
			a.fail(w, r, badParam("event_id", "longer than 128 characters"))
			return
		}
		// Ids are unique within a tenant: the caller's events are those
		// of its tenants, and another tenant's event is unknown to it.
		type hit struct {
			Idx    int64
			Tenant string
		}
		rows, err := a.cfg.DB.Query(r.Context(), `SELECT idx, tenant FROM events WHERE id = $1 ORDER BY idx`, id)
		var hits []hit
		if err == nil {
			hits, err = pgx.CollectRows(rows, pgx.RowToStructByPos[hit])
		}
		if err != nil {
			a.fail(w, r, err)
			return
		}
		sc := a.scopeOf(r)
		var idxs []int64
		for _, h := range hits {
			if sc.tenant(h.Tenant) {
				idxs = append(idxs, h.Idx)
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
		index = uint64(idxs[0])
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
	var tenant string
	err = a.cfg.DB.QueryRow(r.Context(), `SELECT tenant FROM events WHERE idx = $1`, int64(index)).Scan(&tenant)
	if errors.Is(err, pgx.ErrNoRows) {
		err = fmt.Errorf("%w: record %d is not projected yet", errNotFound, index)
	}
	if err != nil {
		a.fail(w, r, err)
		return
	}
	if sc := a.scopeOf(r); !sc.tenant(tenant) {
		a.refuse(w, r, &scopeError{what: fmt.Sprintf("no event of your tenants at index %d", index), scope: sc, hidden: true, tenants: []string{tenant}})
		return
	}
	hashes, err := projections.InclusionProof(r.Context(), a.cfg.DB, index, size)
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
			var pe *paramError
			if errors.As(err, &pe) {
				pe.param = "from"
			}
			a.fail(w, r, err)
			return
		}
	}
	hashes, err := projections.ConsistencyProof(r.Context(), a.cfg.DB, from, to)
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
	var cp string
	var n int64
	var err error
	if size == "" {
		err = a.cfg.DB.QueryRow(r.Context(), `SELECT size, checkpoint FROM segments ORDER BY size DESC LIMIT 1`).Scan(&n, &cp)
	} else {
		m, perr := strconv.ParseUint(size, 10, 63)
		if perr != nil {
			return "", 0, badParam("size", "%q is not a tree size", size)
		}
		err = a.cfg.DB.QueryRow(r.Context(), `SELECT size, checkpoint FROM segments WHERE size = $1`, int64(m)).Scan(&n, &cp)
		if errors.Is(err, pgx.ErrNoRows) {
			return "", 0, badParam("size", "no signed checkpoint at size %d (checkpoints are signed at segment ends)", m)
		}
	}
	if errors.Is(err, pgx.ErrNoRows) {
		return "", 0, fmt.Errorf("%w: the projection holds no checkpoint yet", errNotFound)
	}
	return cp, uint64(n), err
}

func writeText(w http.ResponseWriter, s string) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Write([]byte(s))
}

// verifyStatus answers GET /v1/verify/status: the newest full
// verification of the store the projector ran (at its start and on a
// schedule).
func (a *api) verifyStatus(w http.ResponseWriter, r *http.Request) {
	v, err := projections.LatestVerification(r.Context(), a.cfg.DB)
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
