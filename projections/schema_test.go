package projections_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/auditledger/auditledger/projections"
)

// A reader started before the projector has created the schema (the API
// and the projector start together) answers ErrNoSchema - an
// ErrUnavailable, which the API serves as 503 - rather than failing on a
// missing relation; once the schema is migrated, the same reader reads.
func TestReaderBeforeTheSchema(t *testing.T) {
	db := pool(t)
	r := projections.NewReader(db)
	_, err := r.Events(t.Context(), projections.EventFilter{Limit: 10})
	if !errors.Is(err, projections.ErrNoSchema) || !errors.Is(err, projections.ErrUnavailable) || !strings.Contains(err.Error(), "schema version 0") {
		t.Fatalf("reading an empty database: %v, want ErrNoSchema (an ErrUnavailable) naming schema version 0", err)
	}
	if err := projections.SchemaReady(t.Context(), db); !errors.Is(err, projections.ErrNoSchema) {
		t.Fatalf("SchemaReady on an empty database: %v", err)
	}
	if err := projections.Migrate(t.Context(), db); err != nil {
		t.Fatal(err)
	}
	if err := projections.SchemaReady(t.Context(), db); err != nil {
		t.Fatalf("SchemaReady after Migrate: %v", err)
	}
	page, err := r.Events(t.Context(), projections.EventFilter{Limit: 10})
	if err != nil || len(page.Events) != 0 {
		t.Fatalf("reading after Migrate: %d events, %v", len(page.Events), err)
	}
}
