package projections

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
)

// HeldGrant is one just-in-time access grant as the log records it
// (docs/FORMAT.md §13): its access.granted event, the approvers of its
// access.approved events, its end (access.revoked or access.expired, if
// any) and the sessions it admitted (session.started with its access_id).
type HeldGrant struct {
	Tenant    string
	AccessID  string
	Target    string
	Rule      string
	Holder    string // the requester's subject, as events record actors
	NotBefore time.Time
	NotAfter  time.Time
	// Ended is when it was revoked before NotAfter (zero: it ran out).
	Ended      time.Time
	BreakGlass bool
	Approvers  []string // the subjects of its approvals, in ledger order
	Sessions   int64
	GrantIndex uint64 // the ledger index of its access.granted record
}

// HeldGrants reads the grants of tenant whose window [NotBefore, NotAfter)
// overlaps [from, to), by holder then start. A record whose window is not
// two RFC 3339 times is not a grant (the API records none such).
func (r *Reader) HeldGrants(ctx context.Context, tenant string, from, to time.Time) ([]HeldGrant, error) {
	db, err := r.pool()
	if err != nil {
		return nil, err
	}
	if err := checkText("tenant", tenant, MaxText); err != nil {
		return nil, err
	}
	const sql = `
WITH g AS (
  SELECT DISTINCT ON (payload->>'access_id') idx, payload
  FROM events
  WHERE tenant = $1 AND type = 'access.granted' AND payload->>'grant' = 'just-in-time'
    AND payload->>'not_before' ~ '^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d' AND payload->>'not_after' ~ '^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d'
  ORDER BY payload->>'access_id', idx
)
SELECT g.idx, g.payload->>'access_id', coalesce(g.payload->>'target', ''), coalesce(g.payload->>'rule', ''),
  coalesce(g.payload->'requester'->>'subject', ''),
  (g.payload->>'not_before')::timestamptz, (g.payload->>'not_after')::timestamptz,
  coalesce((g.payload->>'break_glass')::boolean, false),
  (SELECT min(e.time) FROM events e WHERE e.tenant = $1 AND e.type = 'access.revoked' AND e.payload->>'access_id' = g.payload->>'access_id'),
  coalesce((SELECT array_agg(e.actor_subject ORDER BY e.idx) FROM events e
    WHERE e.tenant = $1 AND e.type = 'access.approved' AND e.payload->>'access_id' = g.payload->>'access_id'), '{}'),
  (SELECT count(*) FROM events e WHERE e.tenant = $1 AND e.type = 'session.started' AND e.payload->>'access_id' = g.payload->>'access_id')
FROM g
WHERE (g.payload->>'not_before')::timestamptz < $3 AND (g.payload->>'not_after')::timestamptz > $2
ORDER BY 5, 6, 2`
	rows, err := db.Query(ctx, sql, tenant, from, to)
	if err != nil {
		return nil, fmt.Errorf("projections: querying access grants: %w", err)
	}
	out, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (HeldGrant, error) {
		h := HeldGrant{Tenant: tenant}
		var ended *time.Time
		err := row.Scan(&h.GrantIndex, &h.AccessID, &h.Target, &h.Rule, &h.Holder, &h.NotBefore, &h.NotAfter, &h.BreakGlass, &ended, &h.Approvers, &h.Sessions)
		if ended != nil && ended.Before(h.NotAfter) {
			h.Ended = ended.UTC()
		}
		h.NotBefore, h.NotAfter = h.NotBefore.UTC(), h.NotAfter.UTC()
		return h, err
	})
	if err != nil {
		return nil, fmt.Errorf("projections: reading access grants: %w", err)
	}
	return out, nil
}
