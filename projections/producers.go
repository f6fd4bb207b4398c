package projections

import (
	"cmp"
	"context"
	"fmt"
	"slices"
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

// MaxProducers is the limit GET /v1/processes reads Producers with.
const MaxProducers = 10_000

// Producers is the newest record of each producer under each of tenants
// (nil: every tenant; empty: none), by kind, instance and tenant, at most
// limit of them; truncated says that more were left out. The tenants are
// chosen in the walk, before the limit counts: another tenant's producers
// never push out those of tenants. Each tenant's distinct (kind,
// instance) are walked in the index events_tenant_source, one probe each,
// then each one's newest record read (the same index backwards): its cost
// grows with the number of producers of those tenants, not of events.
// Every tenant (nil) is one walk over (tenant, kind, instance). A limit
// reached keeps the first by tenant, kind and instance.
func (r *Reader) Producers(ctx context.Context, tenants []string, limit int) (out []ProducerSeen, truncated bool, err error) {
	if limit < 1 {
		return nil, false, fmt.Errorf("projections: reading the producers heard from: limit %d, want at least 1", limit)
	}
	if tenants != nil && len(tenants) == 0 {
		return []ProducerSeen{}, false, nil
	}
	pool, err := r.pool(ctx)
	if err != nil {
		return nil, false, err
	}
	// Each walk stops after limit+1 entries: with every walk's first
	// limit+1, the first limit+1 of them all (by tenant, kind, instance)
	// are exact, and a (limit+1)th says the list was cut.
	const walk = `WITH RECURSIVE p(tenant, kind, inst, n) AS (
		%s
		UNION ALL
		SELECT x.tenant, x.source_kind, x.source_instance, p.n + 1 FROM p, LATERAL (
			SELECT tenant, source_kind, source_instance FROM events
			WHERE %s
			ORDER BY tenant, source_kind, source_instance LIMIT 1) x
		WHERE p.n <= $1)
	SELECT p.kind, p.inst, p.tenant, l.idx, l.time, l.sealed_at FROM p, LATERAL (
		SELECT idx, time, sealed_at FROM events e
		WHERE e.tenant = p.tenant AND e.source_kind = p.kind AND e.source_instance = p.inst
		ORDER BY idx DESC LIMIT 1) l
	ORDER BY p.tenant, p.kind, p.inst
	LIMIT $1 + 1`
	var q string
	args := []any{limit}
	if tenants == nil {
		q = fmt.Sprintf(walk,
			`(SELECT tenant, source_kind, source_instance, 1 FROM events ORDER BY tenant, source_kind, source_instance LIMIT 1)`,
			`(tenant, source_kind, source_instance) > (p.tenant, p.kind, p.inst)`)
	} else {
		// One walk per tenant, each within its tenant.
		q = fmt.Sprintf(walk,
			`SELECT f.tenant, f.source_kind, f.source_instance, 1 FROM unnest($2::text[]) t(name), LATERAL (
			SELECT tenant, source_kind, source_instance FROM events WHERE tenant = t.name
			ORDER BY tenant, source_kind, source_instance LIMIT 1) f`,
			`tenant = p.tenant AND (source_kind, source_instance) > (p.kind, p.inst)`)
		args = append(args, tenants)
	}
	rows, err := pool.Query(ctx, q, args...)
	if err != nil {
		return nil, false, fmt.Errorf("projections: reading the producers heard from: %w", err)
	}
	out, err = pgx.CollectRows(rows, func(row pgx.CollectableRow) (ProducerSeen, error) {
		var p ProducerSeen
		var idx int64
		err := row.Scan(&p.Kind, &p.Instance, &p.Tenant, &idx, &p.Time, &p.SealedAt)
		p.Index, p.Time, p.SealedAt = uint64(idx), p.Time.UTC(), p.SealedAt.UTC()
		return p, err
	})
	if err != nil {
		return nil, false, fmt.Errorf("projections: reading the producers heard from: %w", err)
	}
	if truncated = len(out) > limit; truncated {
		out = out[:limit]
	}
	slices.SortFunc(out, func(a, b ProducerSeen) int {
		return cmp.Or(cmp.Compare(a.Kind, b.Kind), cmp.Compare(a.Instance, b.Instance), cmp.Compare(a.Tenant, b.Tenant))
	})
	return out, truncated, nil
}
