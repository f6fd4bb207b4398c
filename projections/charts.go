package projections

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
)

// Charts: grouped counts of one period for the console's charts. Each
// query is bounded: at most MaxBuckets time buckets, each event type of
// the catalog at most once per bucket, at most MaxChartPeople people.

// Limits of a chart query.
const (
	// MaxBuckets is the most time buckets a chart query may span.
	MaxBuckets = 48
	// MaxChartPeople is the most people a chart of grants lists; the
	// rest are counted together.
	MaxChartPeople = 20
)

// WaitBounds are the upper bounds of the bands of approval waiting
// times, in order; a wait of a bound or more is in the next band, the
// last band is unbounded.
var WaitBounds = []time.Duration{time.Minute, 5 * time.Minute, 15 * time.Minute, time.Hour, 4 * time.Hour, 24 * time.Hour}

// ChartFilter selects a chart's period: Since ≤ time < Until, cut into
// buckets of Unit ("hour" or "day", UTC), of the Tenants (as
// EventFilter.Tenants: nil every tenant, empty none).
type ChartFilter struct {
	Tenants      []string
	Since, Until time.Time
	Unit         string
}

// TypeCount is how many events of a type a bucket holds.
type TypeCount struct {
	Bucket time.Time // the bucket's start, UTC
	Type   string
	Count  int64
}

// WaitCount is how many approvals of a decision waited within a band:
// Band indexes WaitBounds' bands (len(WaitBounds): longer than the last
// bound); Decision is granted, denied or expired, "" for a request with
// no decision (yet).
type WaitCount struct {
	Decision string
	Band     int
	Count    int64
}

// PersonCount is how many grants one person holds.
type PersonCount struct {
	Person string
	Count  int64
}

// ChartData is what the charts of a period count.
type ChartData struct {
	// Buckets are the starts of the period's buckets, in order: the
	// first holds Since, the last Until's instant before.
	Buckets []time.Time
	// Types are the events of each type in each bucket (by event time),
	// only counts above zero, by bucket then type.
	Types []TypeCount
	// Waits are the approval requests made in the period (by the
	// request's time), by decision and band of the time from request to
	// the first decision.
	Waits []WaitCount
	// Grants are the access.granted records of the period (by event
	// time), by the person granted (the payload's requester subject; of
	// the legacy SSH form, the actor subject), most first, at most
	// MaxChartPeople; GrantPeople and GrantTotal count every person and
	// grant.
	Grants      []PersonCount
	GrantPeople int
	GrantTotal  int64
}

// ChartBuckets are the starts of the buckets of unit ("hour", "day")
// that [since, until) spans, in UTC; a FilterError when the period is
// empty or longer than MaxBuckets.
func ChartBuckets(since, until time.Time, unit string) ([]time.Time, error) {
	var step time.Duration
	switch unit {
	case "hour":
		step = time.Hour
	case "day":
		step = 24 * time.Hour
	default:
		return nil, &FilterError{"bucket", fmt.Sprintf("%q: want hour or day", unit)}
	}
	if since.IsZero() || until.IsZero() || !since.Before(until) {
		return nil, &FilterError{"since", "a chart's period needs since before until"}
	}
	first := since.UTC().Truncate(step) // UTC: hours and days start on multiples of step since year 1
	n := int(until.UTC().Sub(first) / step)
	if first.Add(time.Duration(n) * step).Before(until) {
		n++
	}
	if n > MaxBuckets {
		return nil, &FilterError{"since", fmt.Sprintf("the period spans %d buckets of an %s, more than %d", n, unit, MaxBuckets)}
	}
	out := make([]time.Time, n)
	for i := range out {
		out[i] = first.Add(time.Duration(i) * step)
	}
	return out, nil
}

// Charts reads the grouped counts of f's period, in one snapshot.
func (r *Reader) Charts(ctx context.Context, f ChartFilter) (*ChartData, error) {
	buckets, err := ChartBuckets(f.Since, f.Until, f.Unit)
	if err != nil {
		return nil, err
	}
	pool, err := r.pool(ctx)
	if err != nil {
		return nil, err
	}
	tx, err := pool.BeginTx(ctx, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly})
	if err != nil {
		return nil, fmt.Errorf("projections: reading the charts: %w", err)
	}
	defer tx.Rollback(context.WithoutCancel(ctx))
	out := &ChartData{Buckets: buckets, Types: []TypeCount{}, Waits: []WaitCount{}, Grants: []PersonCount{}}
	// $1 tenants ($4 false: every tenant), $2 since, $3 until.
	args := []any{f.Tenants, f.Since, f.Until, f.Tenants != nil}
	const scoped = `(NOT $4 OR tenant = ANY($1::text[]))`

	rows, err := tx.Query(ctx, `SELECT date_trunc('`+f.Unit+`', time AT TIME ZONE 'UTC'), type, count(*) FROM events
		WHERE `+scoped+` AND time >= $2 AND time < $3 GROUP BY 1, 2 ORDER BY 1, 2`, args...)
	if err != nil {
		return nil, fmt.Errorf("projections: counting events by %s and type: %w", f.Unit, err)
	}
	out.Types, err = pgx.CollectRows(rows, func(row pgx.CollectableRow) (TypeCount, error) {
		var c TypeCount
		err := row.Scan(&c.Bucket, &c.Type, &c.Count)
		c.Bucket = time.Date(c.Bucket.Year(), c.Bucket.Month(), c.Bucket.Day(), c.Bucket.Hour(), 0, 0, 0, time.UTC)
		return c, err
	})
	if err != nil {
		return nil, fmt.Errorf("projections: counting events by %s and type: %w", f.Unit, err)
	}

	bounds := make([]float64, len(WaitBounds))
	for i, b := range WaitBounds {
		bounds[i] = b.Seconds()
	}
	rows, err = tx.Query(ctx, `SELECT coalesce(decision, ''), CASE WHEN waited IS NULL THEN 0 ELSE width_bucket(extract(epoch FROM waited)::float8, $5::float8[]) END, count(*)
		FROM approvals WHERE `+scoped+` AND requested_at >= $2 AND requested_at < $3 GROUP BY 1, 2 ORDER BY 1, 2`, append(args, bounds)...)
	if err != nil {
		return nil, fmt.Errorf("projections: counting approval waits: %w", err)
	}
	out.Waits, err = pgx.CollectRows(rows, func(row pgx.CollectableRow) (WaitCount, error) {
		var c WaitCount
		var band int32
		err := row.Scan(&c.Decision, &band, &c.Count)
		c.Band = int(band)
		return c, err
	})
	if err != nil {
		return nil, fmt.Errorf("projections: counting approval waits: %w", err)
	}

	rows, err = tx.Query(ctx, `SELECT person, n, count(*) OVER (), sum(n) OVER ()::bigint FROM (
		SELECT coalesce(payload->'requester'->>'subject', actor_subject) AS person, count(*) AS n FROM events
		WHERE type = 'access.granted' AND `+scoped+` AND time >= $2 AND time < $3 GROUP BY 1) g
		ORDER BY n DESC, person LIMIT $5`, append(args, MaxChartPeople)...)
	if err != nil {
		return nil, fmt.Errorf("projections: counting grants by person: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var c PersonCount
		var people int64
		if err := rows.Scan(&c.Person, &c.Count, &people, &out.GrantTotal); err != nil {
			return nil, fmt.Errorf("projections: counting grants by person: %w", err)
		}
		out.Grants, out.GrantPeople = append(out.Grants, c), int(people)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("projections: counting grants by person: %w", err)
	}
	return out, nil
}
