package projections

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"golang.org/x/mod/sumdb/tlog"

	"github.com/auditledger/auditledger/events"
	"github.com/auditledger/auditledger/ledger"
)

// Reader is the read side's one door to the projection: every query the
// API, the evidence builder and the console make is a method here, so the
// schema (migrations/) is read in this package alone. Scope is the
// caller's to decide and the reader's to apply: a filter's Tenants keeps a
// query to the tenants the caller may read. A Reader is safe for
// concurrent use.
type Reader struct {
	db *pgxpool.Pool
	// schema: the database was seen holding this version's schema
	schema atomic.Bool
}

// NewReader reads the projection in db. A nil db gives a reader whose
// every method answers ErrUnavailable.
func NewReader(db *pgxpool.Pool) *Reader { return &Reader{db: db} }

// Available reports whether the reader has a database to read.
func (r *Reader) Available() bool { return r != nil && r.db != nil }

func (r *Reader) pool(ctx context.Context) (*pgxpool.Pool, error) {
	if !r.Available() {
		return nil, ErrUnavailable
	}
	if !r.schema.Load() {
		// Until the projector has migrated, every query would fail on a
		// missing relation: say so instead, once per reader.
		if err := SchemaReady(ctx, r.db); err != nil {
			return nil, err
		}
		r.schema.Store(true)
	}
	return r.db, nil
}

// Event is one sealed record as the projection holds it.
type Event struct {
	Index  uint64
	Leaf   ledger.Hash // RFC 6962 leaf hash of the record
	Header []byte      // the record's bytes before the event
	Event  []byte      // the event exactly as sealed: record = Header ‖ Event
	// SealedAt is the record's time as the column keeps it (microseconds;
	// the record itself holds nanoseconds), in UTC.
	SealedAt time.Time
	Tenant   string
	// SessionSeq is the event's place in its session (Timeline only).
	SessionSeq int64
	// ActorEmail is the event's actor e-mail as recorded (sealed or
	// not; empty when it has none), when ActorEmailRead (Timeline only):
	// the projection's column, so a reader need not decode the event
	// for it.
	ActorEmail     string
	ActorEmailRead bool
	// Matched is where the event recorded a searched digest (Events with
	// Matches only), in path order.
	Matched []MatchPlace
}

// Match is a keyed search digest of one tenant (docs/FORMAT.md §1.5):
// the digest of the value searched for under that tenant's key.
type Match struct {
	Tenant, Digest string
}

// Sealer is a data subject of a tenant, by the pseudonym their sealed
// fields name.
type Sealer struct {
	Tenant, Pseudonym string
}

// MatchPlace is where an event recorded a searched value: the payload's
// JSON Pointer and the detector that found it; or SealedActorEmail and
// "email" when the event's actor e-mail, sealed, is the value.
type MatchPlace struct {
	Path, Detector string
}

// Record is the exact record bytes the leaf hash covers.
func (e *Event) Record() []byte {
	return append(e.Header[:len(e.Header):len(e.Header)], e.Event...)
}

// Limits of the read side's filters.
const (
	MaxText     = 256  // an actor, email, session, target, text or cursor filter
	MaxID       = 128  // an event or session id
	MaxPage     = 1000 // a page's limit
	DefaultPage = 100  // a page's limit when none is given
)

// EventFilter selects events. Each field is named, in a FilterError, as
// the API's query parameter of the same meaning (in quotes below).
type EventFilter struct {
	// Types ("type"): only these, each of the version-1 catalog; none:
	// every type.
	Types []events.Type
	// Tenants: nil means every tenant; otherwise only these (an empty,
	// non-nil list matches nothing). The caller's scope, or the one
	// tenant it asked for.
	Tenants []string
	// Actor ("actor", the subject), Email ("email"), Session ("session")
	// and Target ("target"): exact matches when set, MaxText at most.
	Actor, Email, Session, Target string
	// Source ("source"): the kind of the producer that recorded the
	// event (postgres-proxy, http-proxy, ssh-proxy, kube-gateway, api,
	// …), exact.
	Source string
	// EmailSealers, with Email: events whose actor e-mail is sealed
	// under one of these subjects' keys (docs/FORMAT.md §1.6) match too.
	// The caller looks them up in the key store (piikeys Sealers) and
	// keeps them within the caller's scope, as Tenants.
	EmailSealers []Sealer
	// Since ("since") and Until ("until") bound the event's time: Since ≤
	// time < Until; zero means unbounded.
	Since, Until time.Time
	// Text ("q"): a literal substring of the event, case-insensitive.
	Text string
	// Matches ("match_value"): nil means no such filter; otherwise only
	// events of these tenants that recorded the digest given for their
	// tenant (an empty, non-nil list matches nothing). The caller computes
	// each digest with its tenant's key and keeps Matches within the
	// caller's scope, as Tenants.
	Matches []Match
	// MatchSealers, with Matches: events whose actor e-mail is sealed
	// under one of these subjects' keys (docs/FORMAT.md §1.6) match too,
	// with MatchPlace{SealedActorEmail, "email"}: the subjects who sealed
	// the searched value as their e-mail (piikeys Sealers), kept within
	// the caller's scope, as Matches.
	MatchSealers []Sealer
	// After ("after") is the cursor: a ledger index, as EventPage.Next
	// gives it; only events after it. Empty: from the log's start.
	After string
	// Limit ("limit"): 1 to MaxPage; zero means DefaultPage.
	Limit int
}

// EventPage is one page of events in ledger order. Next, when set, is
// the After of the next page.
type EventPage struct {
	Events []Event
	Next   string
}

// Events answers f, a page at a time, by ledger index (keyset).
func (r *Reader) Events(ctx context.Context, f EventFilter) (EventPage, error) {
	db, err := r.pool(ctx)
	if err != nil {
		return EventPage{}, err
	}
	var where []string
	var args []any
	arg := func(v any) string { args = append(args, v); return "$" + strconv.Itoa(len(args)) }
	if len(f.Types) > 0 {
		types := make([]string, len(f.Types))
		for i, t := range f.Types {
			if !t.Known() {
				return EventPage{}, &FilterError{"type", fmt.Sprintf("%q is not an event type of the version-1 catalog", string(t))}
			}
			types[i] = string(t)
		}
		if len(types) == 1 {
			where = append(where, "type = "+arg(types[0])) // lets the planner use events_actor_type (actor, type, idx, tenant, time)
		} else {
			where = append(where, "type = ANY("+arg(types)+")")
		}
	}
	if f.Tenants != nil {
		where = append(where, tenantIn(f.Tenants, arg))
	}
	if f.Email != "" && len(f.EmailSealers) > 0 {
		if err := checkText("email", f.Email, MaxText); err != nil {
			return EventPage{}, err
		}
		var ts, ps []string
		for _, s := range f.EmailSealers {
			ts, ps = append(ts, s.Tenant), append(ps, s.Pseudonym)
		}
		// As recorded in clear (before sealing), or sealed by one of the
		// subjects (events_actor_email_pseudonym).
		where = append(where, "(actor_email = "+arg(f.Email)+" OR actor_email LIKE 'pii1.%' AND (tenant, split_part(actor_email, '.', 2)) IN (SELECT * FROM unnest("+
			arg(ts)+"::text[], "+arg(ps)+"::text[])))")
		f.Email = ""
	}
	for _, p := range []struct{ field, value, cond string }{
		{"actor", f.Actor, "actor_subject = %s"},
		{"email", f.Email, "actor_email = %s"},
		{"session", f.Session, "session_id = %s"},
		{"target", f.Target, "target_name = %s"},
		{"source", f.Source, "source_kind = %s"},
	} {
		if p.value != "" {
			if err := checkText(p.field, p.value, MaxText); err != nil {
				return EventPage{}, err
			}
			where = append(where, fmt.Sprintf(p.cond, arg(p.value)))
		}
	}
	if !f.Since.IsZero() {
		where = append(where, "time >= "+arg(f.Since))
	}
	if !f.Until.IsZero() {
		where = append(where, "time < "+arg(f.Until))
	}
	if f.Text != "" {
		if err := checkText("q", f.Text, MaxText); err != nil {
			return EventPage{}, err
		}
		// A literal substring: LIKE's wildcards in it are escaped.
		pattern := "%" + strings.NewReplacer(`\`, `\\`, `%`, `\%`, `_`, `\_`).Replace(f.Text) + "%"
		where = append(where, "event ILIKE "+arg(pattern))
	}
	var matchTenants, matchDigests []string
	if f.Matches != nil {
		for _, m := range f.Matches {
			if !IsMatchDigest(m.Digest) {
				return EventPage{}, &FilterError{"match_value", fmt.Sprintf("digest %q for tenant %q is not hmac: and 64 hex digits", m.Digest, m.Tenant)}
			}
			matchTenants, matchDigests = append(matchTenants, m.Tenant), append(matchDigests, m.Digest)
		}
		// The digests' index, (tenant, digest, idx), finds the few
		// events; the outer filters then apply to them alone.
		cond := "idx IN (SELECT m.idx FROM event_matches m JOIN unnest(" + arg(matchTenants) + "::text[], " + arg(matchDigests) +
			"::text[]) AS q(tenant, digest) ON m.tenant = q.tenant AND m.digest = q.digest)"
		if len(f.MatchSealers) > 0 {
			var ts, ps []string
			for _, s := range f.MatchSealers {
				ts, ps = append(ts, s.Tenant), append(ps, s.Pseudonym)
			}
			cond = "(" + cond + " OR actor_email LIKE 'pii1.%' AND (tenant, split_part(actor_email, '.', 2)) IN (SELECT * FROM unnest(" +
				arg(ts) + "::text[], " + arg(ps) + "::text[])))"
		}
		where = append(where, cond)
	}
	if f.After != "" {
		n, err := strconv.ParseUint(f.After, 10, 63)
		if err != nil {
			return EventPage{}, &FilterError{"after", fmt.Sprintf("%q is not a ledger index", f.After)}
		}
		where = append(where, "idx > "+arg(int64(n)))
	}
	limit, err := pageLimit(f.Limit)
	if err != nil {
		return EventPage{}, err
	}
	sql := "SELECT idx, leaf, header, sealed_at, event, tenant FROM events"
	if len(where) > 0 {
		sql += " WHERE " + strings.Join(where, " AND ")
	}
	sql += " ORDER BY idx LIMIT " + arg(limit+1)
	rows, err := db.Query(ctx, sql, args...)
	if err != nil {
		return EventPage{}, fmt.Errorf("projections: querying events: %w", err)
	}
	evs, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (Event, error) {
		var e Event
		return e, scanEvent(row, &e, &e.Tenant)
	})
	if err != nil {
		return EventPage{}, fmt.Errorf("projections: reading events: %w", err)
	}
	page := EventPage{Events: evs}
	if len(evs) > limit {
		page.Events = evs[:limit]
		page.Next = strconv.FormatUint(page.Events[limit-1].Index, 10)
	}
	if len(matchDigests) > 0 && len(page.Events) > 0 {
		if err := matchedPlaces(ctx, db, page.Events, matchTenants, matchDigests); err != nil {
			return EventPage{}, err
		}
	}
	if len(f.MatchSealers) > 0 {
		sealedPlaces(page.Events, f.MatchSealers)
	}
	return page, nil
}

// matchedPlaces fills in where each event recorded one of the digests.
func matchedPlaces(ctx context.Context, db *pgxpool.Pool, evs []Event, tenants, digests []string) error {
	idxs := make([]int64, len(evs))
	at := make(map[int64]int, len(evs))
	for i, e := range evs {
		idxs[i], at[int64(e.Index)] = int64(e.Index), i
	}
	rows, err := db.Query(ctx, `SELECT m.idx, m.path, m.detector FROM event_matches m
		JOIN unnest($2::text[], $3::text[]) AS q(tenant, digest) ON m.tenant = q.tenant AND m.digest = q.digest
		WHERE m.idx = ANY($1) ORDER BY m.idx, m.path, m.detector`, idxs, tenants, digests)
	if err != nil {
		return fmt.Errorf("projections: reading where digests were recorded: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var idx int64
		var p MatchPlace
		if err := rows.Scan(&idx, &p.Path, &p.Detector); err != nil {
			return fmt.Errorf("projections: reading where digests were recorded: %w", err)
		}
		e := &evs[at[idx]]
		if n := len(e.Matched); n == 0 || e.Matched[n-1] != p {
			e.Matched = append(e.Matched, p)
		}
	}
	return rows.Err()
}

// SealedActorEmail is the MatchPlace path of an event found because its
// actor e-mail, sealed, is the searched value: the sealed field's name
// (docs/FORMAT.md §1.6), not a JSON Pointer into the payload.
const SealedActorEmail = "actor.email"

// sealedPlaces notes, in each event whose actor e-mail is sealed by one
// of sealers, that the e-mail matched.
func sealedPlaces(evs []Event, sealers []Sealer) {
	for i := range evs {
		e := &evs[i]
		var ev struct {
			Actor struct {
				Email string `json:"email"`
			} `json:"actor"`
		}
		if json.Unmarshal(e.Event, &ev) != nil || !strings.HasPrefix(ev.Actor.Email, "pii1.") {
			continue
		}
		p, _, _ := strings.Cut(strings.TrimPrefix(ev.Actor.Email, "pii1."), ".")
		if slices.Contains(sealers, Sealer{Tenant: e.Tenant, Pseudonym: p}) {
			e.Matched = append(e.Matched, MatchPlace{Path: SealedActorEmail, Detector: "email"})
		}
	}
}

// scanEvent scans idx, leaf, header, sealed_at, event and then extra.
func scanEvent(row pgx.Row, e *Event, extra ...any) error {
	var idx int64
	var leaf []byte
	if err := row.Scan(append([]any{&idx, &leaf, &e.Header, &e.SealedAt, &e.Event}, extra...)...); err != nil {
		return err
	}
	if len(leaf) != ledger.HashSize {
		return fmt.Errorf("record %d: a leaf hash of %d bytes", idx, len(leaf))
	}
	e.Index, e.Leaf, e.SealedAt = uint64(idx), ledger.Hash(leaf), e.SealedAt.UTC()
	return nil
}

// tenantIn is the condition keeping a query to tenants.
func tenantIn(tenants []string, arg func(any) string) string {
	if len(tenants) == 1 {
		return "tenant = " + arg(tenants[0])
	}
	return "tenant = ANY(" + arg(tenants) + ")"
}

// checkText refuses a text filter PostgreSQL cannot compare (invalid
// UTF-8, NUL bytes: it answers "invalid byte sequence") or longer than
// max.
func checkText(field, v string, max int) error {
	if !utf8.ValidString(v) || strings.ContainsRune(v, 0) {
		return &FilterError{field, fmt.Sprintf("%q holds a NUL byte or invalid UTF-8", v)}
	}
	if len(v) > max {
		return &FilterError{field, fmt.Sprintf("longer than %d characters", max)}
	}
	return nil
}

func pageLimit(n int) (int, error) {
	switch {
	case n == 0:
		return DefaultPage, nil
	case n < 1 || n > MaxPage:
		return 0, &FilterError{"limit", fmt.Sprintf("\"%d\": want 1 to %d", n, MaxPage)}
	}
	return n, nil
}

// EventRef is where an event is: its ledger index and tenant.
type EventRef struct {
	Index  uint64
	Tenant string
}

// EventsWithID are the events whose id is id, in ledger order: ids are
// unique within a tenant, so there may be one per tenant. The caller's
// scope picks among them.
func (r *Reader) EventsWithID(ctx context.Context, id string) ([]EventRef, error) {
	db, err := r.pool(ctx)
	if err != nil {
		return nil, err
	}
	if err := checkText("event_id", id, MaxID); err != nil {
		return nil, err
	}
	rows, err := db.Query(ctx, `SELECT idx, tenant FROM events WHERE id = $1 ORDER BY idx`, id)
	if err != nil {
		return nil, fmt.Errorf("projections: looking up event %q: %w", id, err)
	}
	refs, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (EventRef, error) {
		var idx int64
		var ref EventRef
		err := row.Scan(&idx, &ref.Tenant)
		ref.Index = uint64(idx)
		return ref, err
	})
	if err != nil {
		return nil, fmt.Errorf("projections: looking up event %q: %w", id, err)
	}
	return refs, nil
}

// TenantAt is the tenant of the record at index; ErrNotFound when it is
// not projected yet.
func (r *Reader) TenantAt(ctx context.Context, index uint64) (string, error) {
	db, err := r.pool(ctx)
	if err != nil {
		return "", err
	}
	var tenant string
	err = db.QueryRow(ctx, `SELECT tenant FROM events WHERE idx = $1`, int64(index)).Scan(&tenant)
	if errors.Is(err, pgx.ErrNoRows) {
		return "", fmt.Errorf("%w: record %d is not projected yet", ErrNotFound, index)
	}
	if err != nil {
		return "", fmt.Errorf("projections: record %d: %w", index, err)
	}
	return tenant, nil
}

// Records calls fn with each record of [first, end) in ledger order (of
// tenant only, if tenant is set), one at a time: for evidence bundles and
// entry tiles, which hold one record in memory. An error from fn stops
// the walk and is returned. Missing records are skipped: the caller checks
// that the indexes it was given are the ones it asked for.
func (r *Reader) Records(ctx context.Context, first, end uint64, tenant string, fn func(*Event) error) error {
	db, err := r.pool(ctx)
	if err != nil {
		return err
	}
	sql := `SELECT idx, leaf, header, sealed_at, event, tenant FROM events WHERE idx >= $1 AND idx < $2`
	args := []any{int64(first), int64(end)}
	if tenant != "" {
		sql += ` AND tenant = $3`
		args = append(args, tenant)
	}
	rows, err := db.Query(ctx, sql+` ORDER BY idx`, args...)
	if err != nil {
		return fmt.Errorf("projections: reading records %d..%d: %w", first, end, err)
	}
	defer rows.Close()
	for rows.Next() {
		var e Event
		if err := scanEvent(rows, &e, &e.Tenant); err != nil {
			return fmt.Errorf("projections: reading records %d..%d: %w", first, end, err)
		}
		if err := fn(&e); err != nil {
			return err
		}
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("projections: reading records %d..%d: %w", first, end, err)
	}
	return nil
}

// Session is one session: the events recorded under one session id of a
// tenant.
type Session struct {
	Tenant       string
	SessionID    string
	Started      time.Time // the first event's time
	LastSeen     time.Time // the last event's time
	Events       int64
	LastSeq      int64 // the highest session sequence number
	HasGaps      bool  // some sequence number up to LastSeq is missing
	ActorSubject string
	Target       string // empty when none
}

// SessionFilter selects sessions, named in a FilterError as EventFilter's
// fields are.
type SessionFilter struct {
	Tenants []string // as EventFilter.Tenants
	Actor   string   // "actor": the subject, exact
	After   string   // "after": the cursor, the last session id of the previous page
	Limit   int      // "limit": 1 to MaxPage; zero means DefaultPage
}

// Sessions answers f in session id order.
func (r *Reader) Sessions(ctx context.Context, f SessionFilter) ([]Session, error) {
	db, err := r.pool(ctx)
	if err != nil {
		return nil, err
	}
	sql := `SELECT tenant, session_id, started, last_seen, events, last_seq, has_gaps, actor_subject, coalesce(target_name, '') FROM sessions WHERE true`
	var args []any
	arg := func(v any) string { args = append(args, v); return "$" + strconv.Itoa(len(args)) }
	if f.Tenants != nil {
		sql += " AND " + tenantIn(f.Tenants, arg)
	}
	for _, p := range []struct{ field, value string }{{"actor", f.Actor}, {"after", f.After}} {
		if err := checkText(p.field, p.value, MaxText); err != nil {
			return nil, err
		}
	}
	if f.Actor != "" {
		sql += " AND actor_subject = " + arg(f.Actor)
	}
	if f.After != "" {
		sql += " AND session_id > " + arg(f.After)
	}
	limit, err := pageLimit(f.Limit)
	if err != nil {
		return nil, err
	}
	sql += " ORDER BY session_id, tenant LIMIT " + arg(limit)
	rows, err := db.Query(ctx, sql, args...)
	if err != nil {
		return nil, fmt.Errorf("projections: querying sessions: %w", err)
	}
	out, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (Session, error) {
		var s Session
		err := row.Scan(&s.Tenant, &s.SessionID, &s.Started, &s.LastSeen, &s.Events, &s.LastSeq, &s.HasGaps, &s.ActorSubject, &s.Target)
		return s, err
	})
	if err != nil {
		return nil, fmt.Errorf("projections: reading sessions: %w", err)
	}
	return out, nil
}

// Gap is a run of session sequence numbers missing from a session.
type Gap struct {
	From int64
	To   int64
}

// Timeline is one session's events in sequence order, and the sequence
// numbers missing from it (the producer numbers a session's events from
// 1: a gap is an event recorded by no one, or not yet sealed).
type Timeline struct {
	Tenant    string
	SessionID string
	Events    []Event
	Gaps      []Gap
}

// Timeline reads session id ("id") of tenant; ErrNotFound when it has no
// event.
func (r *Reader) Timeline(ctx context.Context, tenant, id string) (Timeline, error) {
	db, err := r.pool(ctx)
	if err != nil {
		return Timeline{}, err
	}
	if err := checkText("id", id, MaxID); err != nil {
		return Timeline{}, err
	}
	rows, err := db.Query(ctx, `SELECT idx, leaf, header, sealed_at, event, session_seq, coalesce(actor_email, '') FROM events
		WHERE tenant = $1 AND session_id = $2 ORDER BY session_seq, idx`, tenant, id)
	if err != nil {
		return Timeline{}, fmt.Errorf("projections: querying session %q: %w", id, err)
	}
	evs, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (Event, error) {
		e := Event{Tenant: tenant, ActorEmailRead: true}
		return e, scanEvent(row, &e, &e.SessionSeq, &e.ActorEmail)
	})
	if err != nil {
		return Timeline{}, fmt.Errorf("projections: reading session %q: %w", id, err)
	}
	if len(evs) == 0 {
		return Timeline{}, fmt.Errorf("%w: no session %q in tenant %q", ErrNotFound, id, tenant)
	}
	return Timeline{Tenant: tenant, SessionID: id, Events: evs, Gaps: gaps(evs)}, nil
}

// gaps are the sequence numbers missing before each event of a session,
// read in sequence order (a number seen twice is no gap).
func gaps(evs []Event) []Gap {
	out := []Gap{}
	next := int64(1)
	for _, e := range evs {
		if e.SessionSeq > next {
			out = append(out, Gap{From: next, To: e.SessionSeq - 1})
		}
		next = max(next, e.SessionSeq+1)
	}
	return out
}

// Checkpoint is a signed checkpoint of the log, at a segment's end.
type Checkpoint struct {
	Size uint64
	Note string // the signed checkpoint, verbatim (C2SP tlog-checkpoint)
}

// LatestCheckpoint is the newest signed checkpoint the projection holds;
// ErrNotFound before the first.
func (r *Reader) LatestCheckpoint(ctx context.Context) (Checkpoint, error) {
	db, err := r.pool(ctx)
	if err != nil {
		return Checkpoint{}, err
	}
	var cp Checkpoint
	var n int64
	err = db.QueryRow(ctx, `SELECT size, checkpoint FROM segments ORDER BY size DESC LIMIT 1`).Scan(&n, &cp.Note)
	if errors.Is(err, pgx.ErrNoRows) {
		return Checkpoint{}, fmt.Errorf("%w: the projection holds no checkpoint yet", ErrNotFound)
	}
	if err != nil {
		return Checkpoint{}, fmt.Errorf("projections: reading the latest checkpoint: %w", err)
	}
	cp.Size = uint64(n)
	return cp, nil
}

// CheckpointAt is the signed checkpoint at size; a FilterError ("size")
// when none was signed there (checkpoints are signed at segment ends).
func (r *Reader) CheckpointAt(ctx context.Context, size uint64) (Checkpoint, error) {
	db, err := r.pool(ctx)
	if err != nil {
		return Checkpoint{}, err
	}
	cp := Checkpoint{Size: size}
	err = db.QueryRow(ctx, `SELECT checkpoint FROM segments WHERE size = $1`, int64(size)).Scan(&cp.Note)
	if errors.Is(err, pgx.ErrNoRows) {
		return Checkpoint{}, &FilterError{"size", fmt.Sprintf("no signed checkpoint at size %d (checkpoints are signed at segment ends)", size)}
	}
	if err != nil {
		return Checkpoint{}, fmt.Errorf("projections: reading the checkpoint at size %d: %w", size, err)
	}
	return cp, nil
}

// Span is what a period covers in the log, by its signed checkpoints:
// from the last checkpoint sealed before the period's start (Start; size
// 0, no note, when none was) to the last sealed before its end (End).
type Span struct {
	// Latest is the size of the newest checkpoint: 0 when nothing is
	// sealed yet (then nothing else is set).
	Latest uint64
	Start  Checkpoint
	// End has size 0 when nothing was sealed before the period's end
	// (then nothing below is set).
	End    Checkpoint
	Origin string // the log's origin line, from End
	// Open is set when no checkpoint is sealed at or after the period's
	// end yet: records of the period may still come.
	Open bool
	// FirstSealed and LastSealed are the sealing times of the span's
	// first and last records; zero when it holds none.
	FirstSealed, LastSealed time.Time
}

// SpanOf is the span of the period [from, to), read in one snapshot of
// the projection. A segment's records share one sealing time, so the
// segments sealed before to hold exactly its records and those before.
func (r *Reader) SpanOf(ctx context.Context, from, to time.Time) (Span, error) {
	pool, err := r.pool(ctx)
	if err != nil {
		return Span{}, err
	}
	// One snapshot: a checkpoint projected between two of the reads
	// below would make the newest checkpoint older than the period's end
	// checkpoint (a consistency proof from 19 to 18).
	db, err := pool.BeginTx(ctx, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly})
	if err != nil {
		return Span{}, fmt.Errorf("projections: reading the checkpoints: %w", err)
	}
	defer db.Rollback(ctx)
	var sp Span
	var latest, first, end int64
	var after bool
	if err := db.QueryRow(ctx, `SELECT coalesce(max(size), 0) FROM checkpoints`).Scan(&latest); err != nil {
		return Span{}, fmt.Errorf("projections: reading the checkpoints: %w", err)
	}
	if sp.Latest = uint64(latest); latest == 0 {
		return sp, nil
	}
	if err := db.QueryRow(ctx, `SELECT coalesce(max(size), 0) FROM checkpoints WHERE sealed_at < $1`, from).Scan(&first); err != nil {
		return Span{}, fmt.Errorf("projections: the checkpoint before %s: %w", from.Format(time.RFC3339), err)
	}
	if err := db.QueryRow(ctx, `SELECT coalesce(max(size), 0), EXISTS (SELECT 1 FROM checkpoints WHERE sealed_at >= $1) FROM checkpoints WHERE sealed_at < $1`, to).Scan(&end, &after); err != nil {
		return Span{}, fmt.Errorf("projections: the checkpoint before %s: %w", to.Format(time.RFC3339), err)
	}
	sp.Open = !after
	if end == 0 {
		return sp, nil
	}
	sp.Start.Size, sp.End.Size = uint64(first), uint64(end)
	if err := db.QueryRow(ctx, `SELECT note, origin FROM checkpoints WHERE size = $1`, end).Scan(&sp.End.Note, &sp.Origin); err != nil {
		return Span{}, fmt.Errorf("projections: the end checkpoint (size %d): %w", end, err)
	}
	if first > 0 {
		if err := db.QueryRow(ctx, `SELECT note FROM checkpoints WHERE size = $1`, first).Scan(&sp.Start.Note); err != nil {
			return Span{}, fmt.Errorf("projections: the start checkpoint (size %d): %w", first, err)
		}
	}
	if first < end {
		if err := db.QueryRow(ctx, `SELECT (SELECT sealed_at FROM events WHERE idx = $1), (SELECT sealed_at FROM events WHERE idx = $2)`, first, end-1).Scan(&sp.FirstSealed, &sp.LastSealed); err != nil {
			return Span{}, fmt.Errorf("projections: sealing times of records %d and %d: %w", first, end-1, err)
		}
		sp.FirstSealed, sp.LastSealed = sp.FirstSealed.UTC(), sp.LastSealed.UTC()
	}
	return sp, nil
}

// Segment is one sealed segment as the projector read it from the store.
type Segment struct {
	Name   string
	First  uint64
	Size   uint64 // the tree size at its end
	SHA256 []byte // of the segment object
	// Version, LockMode and RetainUntil are the object's version and lock
	// as the store reported them; empty (nil) when it reports none.
	Version     string
	LockMode    string
	RetainUntil *time.Time
	Sealed      time.Time // the sealing time of its last record
}

// Segments are the segments holding records of [first, end), in order.
func (r *Reader) Segments(ctx context.Context, first, end uint64) ([]Segment, error) {
	db, err := r.pool(ctx)
	if err != nil {
		return nil, err
	}
	rows, err := db.Query(ctx, `SELECT s.name, s.first, s.size, s.sha256, coalesce(s.version, ''), coalesce(s.lock_mode, ''), s.retain_until, c.sealed_at
		FROM segments s JOIN checkpoints c ON c.size = s.size WHERE s.size > $1 AND s.first < $2 ORDER BY s.first`, int64(first), int64(end))
	if err != nil {
		return nil, fmt.Errorf("projections: querying segments: %w", err)
	}
	list, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (Segment, error) {
		var s Segment
		var first, size int64
		err := row.Scan(&s.Name, &first, &size, &s.SHA256, &s.Version, &s.LockMode, &s.RetainUntil, &s.Sealed)
		s.First, s.Size, s.Sealed = uint64(first), uint64(size), s.Sealed.UTC()
		if s.RetainUntil != nil {
			t := s.RetainUntil.UTC()
			s.RetainUntil = &t
		}
		return s, err
	})
	if err != nil {
		return nil, fmt.Errorf("projections: reading segments: %w", err)
	}
	return list, nil
}

// Rows is the answer of a control query: column names, and each row's
// values in PostgreSQL's text form.
type Rows struct {
	Columns []string
	Values  [][]string
	// Capped is set when the query had more rows than asked for.
	Capped bool
}

// HashReader reads the log's stored hashes from the projection: what
// tiles, proofs and roots are made of.
func (r *Reader) HashReader(ctx context.Context) (tlog.HashReader, error) {
	db, err := r.pool(ctx)
	if err != nil {
		return nil, err
	}
	return HashReader(ctx, db), nil
}

// InclusionProof: see the function of that name.
func (r *Reader) InclusionProof(ctx context.Context, index, size uint64) ([]ledger.Hash, error) {
	db, err := r.pool(ctx)
	if err != nil {
		return nil, err
	}
	return InclusionProof(ctx, db, index, size)
}

// ConsistencyProof: see the function of that name.
func (r *Reader) ConsistencyProof(ctx context.Context, m, n uint64) ([]ledger.Hash, error) {
	db, err := r.pool(ctx)
	if err != nil {
		return nil, err
	}
	return ConsistencyProof(ctx, db, m, n)
}

// PrefixHashes: see the function of that name.
func (r *Reader) PrefixHashes(ctx context.Context, size uint64) ([]ledger.Hash, error) {
	db, err := r.pool(ctx)
	if err != nil {
		return nil, err
	}
	return PrefixHashes(ctx, db, size)
}

// LatestVerification: see the function of that name.
func (r *Reader) LatestVerification(ctx context.Context) (*Verification, error) {
	db, err := r.pool(ctx)
	if err != nil {
		return nil, err
	}
	return LatestVerification(ctx, db)
}
