package projections

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
)

// ProducerSeen is the newest record of one producer (an event's source:
// a gateway, the API, the writer's own records) under one tenant.
type ProducerSeen struct {
	Kind, Instance string
	Tenant         string
	Index          uint64    // the newest record's ledger index
	Time           time.Time // its event time (the producer's clock)
	SealedAt       time.Time // when the writer sealed it
}

// maxProducerPairs bounds the (producer, tenant) pairs one read walks.
const maxProducerPairs = 10_000

// Producers is the newest record of each producer under each of tenants
// (nil: every tenant; empty: none), by kind, instance and tenant. It
// walks the distinct (kind, instance, tenant) triples of the index
// events_source, one probe each, then reads each one's newest record
// (the same index backwards): its cost grows with the number of
// producers and tenants, not of events.
func (r *Reader) Producers(ctx context.Context, tenants []string) ([]ProducerSeen, error) {
	if tenants != nil && len(tenants) == 0 {
		return []ProducerSeen{}, nil
	}
	pool, err := r.pool(ctx)
	if err != nil {
		return nil, err
	}
	rows, err := pool.Query(ctx, `WITH RECURSIVE p(kind, inst, tenant, n) AS (
		(SELECT source_kind, source_instance, tenant, 1 FROM events ORDER BY source_kind, source_instance, tenant LIMIT 1)
		UNION ALL
		SELECT x.source_kind, x.source_instance, x.tenant, p.n + 1 FROM p, LATERAL (
			SELECT source_kind, source_instance, tenant FROM events
			WHERE (source_kind, source_instance, tenant) > (p.kind, p.inst, p.tenant)
			ORDER BY source_kind, source_instance, tenant LIMIT 1) x
		WHERE p.n < $3)
	SELECT p.kind, p.inst, p.tenant, l.idx, l.time, l.sealed_at FROM p, LATERAL (
		SELECT idx, time, sealed_at FROM events e
		WHERE e.source_kind = p.kind AND e.source_instance = p.inst AND e.tenant = p.tenant
		ORDER BY idx DESC LIMIT 1) l
	WHERE NOT $2 OR p.tenant = ANY($1::text[])
	ORDER BY p.kind, p.inst, p.tenant`, tenants, tenants != nil, maxProducerPairs)
	if err != nil {
		return nil, fmt.Errorf("projections: reading the producers heard from: %w", err)
	}
	out, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (ProducerSeen, error) {
		var p ProducerSeen
		var idx int64
		err := row.Scan(&p.Kind, &p.Instance, &p.Tenant, &idx, &p.Time, &p.SealedAt)
		p.Index, p.Time, p.SealedAt = uint64(idx), p.Time.UTC(), p.SealedAt.UTC()
		return p, err
	})
	if err != nil {
		return nil, fmt.Errorf("projections: reading the producers heard from: %w", err)
	}
	return out, nil
}
