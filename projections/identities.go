package projections

import (
	"context"
	"fmt"
	"time"
)

// SeenIdentity is an identity as a tenant's events record their actor,
// with every group its tokens carried.
type SeenIdentity struct {
	Subject string
	Kind    string
	Groups  []string
}

// IdentitiesSeen lists the identities of issuer that acted in tenant's
// events since a time, each with the union of the groups its events name
// (actor.groups, from the token): the identity snapshot where the
// provider offers no SCIM directory (services/directory). It reads every
// event of the tenant since then.
func (r *Reader) IdentitiesSeen(ctx context.Context, tenant, issuer string, since time.Time) ([]SeenIdentity, error) {
	db, err := r.pool(ctx)
	if err != nil {
		return nil, err
	}
	rows, err := db.Query(ctx, `
SELECT e.actor_subject, max(e.actor_kind), coalesce(array_agg(DISTINCT g.name ORDER BY g.name) FILTER (WHERE g.name IS NOT NULL), '{}')
FROM events e
LEFT JOIN LATERAL jsonb_array_elements_text(CASE WHEN jsonb_typeof(e.event::jsonb->'actor'->'groups') = 'array'
  THEN e.event::jsonb->'actor'->'groups' ELSE '[]'::jsonb END) AS g(name) ON true
WHERE e.tenant = $1 AND e.actor_issuer = $2 AND e.time >= $3
GROUP BY e.actor_subject
ORDER BY e.actor_subject`, tenant, issuer, since)
	if err != nil {
		return nil, fmt.Errorf("projections: identities seen in tenant %s: %w", tenant, err)
	}
	defer rows.Close()
	var out []SeenIdentity
	for rows.Next() {
		var s SeenIdentity
		if err := rows.Scan(&s.Subject, &s.Kind, &s.Groups); err != nil {
			return nil, fmt.Errorf("projections: identities seen in tenant %s: %w", tenant, err)
		}
		out = append(out, s)
	}
	return out, rows.Err()
}
