package projections

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
)

// GrantRecord is one record an access review judges (docs/FORMAT.md
// §13.1): an access.granted record of the tenant, whatever its form (a
// just-in-time grant, the SSH gateway's certificate issuance as earlier
// releases recorded it, or anything else a producer wrote under that
// type), or an ssh.certificate.issued record. The projection does not
// judge them: the caller verifies each grant's signature and publisher.
type GrantRecord struct {
	Index          uint64
	Time           time.Time
	Type           string
	SourceKind     string
	SourceInstance string
	ActorIssuer    string
	ActorSubject   string
	Payload        json.RawMessage
}

// MaxGrantRecords bounds how many records one access review reads.
const MaxGrantRecords = 100_000

// GrantRecords reads the tenant's access.granted and
// ssh.certificate.issued records sealed with an event time before
// before (a grant is recorded no later than its window starts, so one
// recorded later was not held before it), by ledger index. More than
// MaxGrantRecords is an error, not a cut listing.
func (r *Reader) GrantRecords(ctx context.Context, tenant string, before time.Time) ([]GrantRecord, error) {
	db, err := r.pool(ctx)
	if err != nil {
		return nil, err
	}
	if err := checkText("tenant", tenant, MaxText); err != nil {
		return nil, err
	}
	const sql = `
SELECT idx, time, type, source_kind, source_instance, actor_issuer, actor_subject, payload
FROM events
WHERE tenant = $1 AND type IN ('access.granted', 'ssh.certificate.issued') AND time < $2
ORDER BY idx
LIMIT $3`
	rows, err := db.Query(ctx, sql, tenant, before, MaxGrantRecords+1)
	if err != nil {
		return nil, fmt.Errorf("projections: querying access grants: %w", err)
	}
	out, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (GrantRecord, error) {
		var g GrantRecord
		err := row.Scan(&g.Index, &g.Time, &g.Type, &g.SourceKind, &g.SourceInstance, &g.ActorIssuer, &g.ActorSubject, &g.Payload)
		g.Time = g.Time.UTC()
		return g, err
	})
	if err != nil {
		return nil, fmt.Errorf("projections: reading access grants: %w", err)
	}
	if len(out) > MaxGrantRecords {
		return nil, fmt.Errorf("projections: tenant %s has more than %d grant records before %s: too many for one access review", tenant, MaxGrantRecords, before.Format(time.RFC3339))
	}
	return out, nil
}

// GrantActivity is what the log holds about one just-in-time grant
// besides its access.granted record.
type GrantActivity struct {
	// Approvers are the actor subjects of its access.approved records,
	// in ledger order.
	Approvers []string
	// Revoked is the time of its first access.revoked record (zero:
	// none).
	Revoked time.Time
	// Sessions counts the session.started records naming it.
	Sessions int64
}

// GrantActivities reads, for each of the tenant's access ids, its
// approvers, its first revocation and the sessions it admitted.
func (r *Reader) GrantActivities(ctx context.Context, tenant string, ids []string) (map[string]GrantActivity, error) {
	out := make(map[string]GrantActivity, len(ids))
	if len(ids) == 0 {
		return out, nil
	}
	db, err := r.pool(ctx)
	if err != nil {
		return nil, err
	}
	const sql = `
SELECT g.aid,
  coalesce((SELECT array_agg(e.actor_subject ORDER BY e.idx) FROM events e
    WHERE e.tenant = $1 AND e.type = 'access.approved' AND e.payload->>'access_id' = g.aid), '{}'),
  (SELECT min(e.time) FROM events e WHERE e.tenant = $1 AND e.type = 'access.revoked' AND e.payload->>'access_id' = g.aid),
  (SELECT count(*) FROM events e WHERE e.tenant = $1 AND e.type = 'session.started' AND e.payload->>'access_id' = g.aid)
FROM unnest($2::text[]) AS g(aid)`
	rows, err := db.Query(ctx, sql, tenant, ids)
	if err != nil {
		return nil, fmt.Errorf("projections: querying access grants' activity: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var id string
		var a GrantActivity
		var revoked *time.Time
		if err := rows.Scan(&id, &a.Approvers, &revoked, &a.Sessions); err != nil {
			return nil, fmt.Errorf("projections: reading access grants' activity: %w", err)
		}
		if revoked != nil {
			a.Revoked = revoked.UTC()
		}
		out[id] = a
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("projections: reading access grants' activity: %w", err)
	}
	return out, nil
}
