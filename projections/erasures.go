package projections

import (
	"context"
	"fmt"

	"github.com/auditledger/auditledger/events"
)

// ErasureEvent is an erasure.performed event of the projection: the
// pseudonym of the data subject whose key was destroyed.
type ErasureEvent struct {
	Index     uint64
	Pseudonym string
}

// Erasures returns tenant's erasure.performed events up to the ledger
// index end (excluded), in log order. Erasure happens outside the log
// (docs/FORMAT.md §2.4): these events say which sealed fields no key opens
// any more.
func (r *Reader) Erasures(ctx context.Context, tenant string, end uint64) ([]ErasureEvent, error) {
	db, err := r.pool(ctx)
	if err != nil {
		return nil, err
	}
	rows, err := db.Query(ctx, `SELECT idx, coalesce(payload->>'pseudonym', '') FROM events
		WHERE tenant = $1 AND type = $2 AND idx < $3 ORDER BY idx`, tenant, string(events.ErasurePerformed), int64(end))
	if err != nil {
		return nil, fmt.Errorf("projections: reading erasures: %w", err)
	}
	defer rows.Close()
	var out []ErasureEvent
	for rows.Next() {
		var e ErasureEvent
		var idx int64
		if err := rows.Scan(&idx, &e.Pseudonym); err != nil {
			return nil, fmt.Errorf("projections: reading erasures: %w", err)
		}
		e.Index = uint64(idx)
		if e.Pseudonym != "" {
			out = append(out, e)
		}
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("projections: reading erasures: %w", err)
	}
	return out, nil
}
