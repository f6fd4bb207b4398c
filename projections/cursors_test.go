package projections_test

import (
	"fmt"
	"testing"

	"github.com/auditledger/auditledger/ledger"
	"github.com/auditledger/auditledger/projections"
)

// Projectors lists each projector's cursor: the records it applied and
// when it last applied a segment.
func TestProjectorsCursors(t *testing.T) {
	f := newFixture(t)
	if err := projections.Migrate(t.Context(), f.cfg.DB); err != nil {
		t.Fatal(err)
	}
	r := projections.NewReader(f.cfg.DB)
	if cs, err := r.Projectors(t.Context()); err != nil || len(cs) != 0 {
		t.Fatalf("before any segment: %+v %v, want none", cs, err)
	}
	for i := range 2 {
		var es []ledger.Entry
		for j := range 3 {
			es = append(es, ledger.Entry{Event: fmt.Appendf(nil, `{"version":1,"id":"c-%d-%d","type":"command.executed","time":"2026-11-26T10:00:00Z","tenant":"acme","source":{"kind":"postgres-proxy","instance":"gw-1"},"actor":{"issuer":"https://idp.example","subject":"dave","kind":"human"},"payload":{}}`, i, j)})
		}
		if _, err := f.log.Append(t.Context(), es); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := projections.Step(t.Context(), f.cfg); err != nil { // one segment of two
		t.Fatal(err)
	}
	cs, err := r.Projectors(t.Context())
	if err != nil || len(cs) != 1 || cs[0].Name != "default" || cs[0].Size != 3 || cs[0].Updated.IsZero() {
		t.Fatalf("after one segment: %+v %v, want default at 3", cs, err)
	}
	first := cs[0].Updated
	f.project(t)
	cs, err = r.Projectors(t.Context())
	if err != nil || len(cs) != 1 || cs[0].Size != 6 || cs[0].Updated.Before(first) {
		t.Fatalf("after both: %+v %v, want default at 6, updated again", cs, err)
	}
}
