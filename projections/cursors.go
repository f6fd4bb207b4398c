package projections

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
)

// ProjectorCursor is how far one projector (Config.Name) has applied
// the log: its size (the records applied, the next index) and when it
// last applied a segment.
type ProjectorCursor struct {
	Name    string
	Size    uint64
	Updated time.Time
}

// Projectors reads every projector's cursor, by name: one row each.
func (r *Reader) Projectors(ctx context.Context) ([]ProjectorCursor, error) {
	pool, err := r.pool(ctx)
	if err != nil {
		return nil, err
	}
	rows, err := pool.Query(ctx, `SELECT name, size, updated_at FROM projection_cursor ORDER BY name`)
	if err != nil {
		return nil, fmt.Errorf("projections: reading the projectors' cursors: %w", err)
	}
	out, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (ProjectorCursor, error) {
		var c ProjectorCursor
		var size int64
		err := row.Scan(&c.Name, &size, &c.Updated)
		c.Size, c.Updated = uint64(size), c.Updated.UTC()
		return c, err
	})
	if err != nil {
		return nil, fmt.Errorf("projections: reading the projectors' cursors: %w", err)
	}
	return out, nil
}
