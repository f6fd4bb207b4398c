package api_test

import (
	"encoding/csv"
	"encoding/json"
	"strings"
	"testing"

	"github.com/auditledger/auditledger/events"
	"github.com/auditledger/auditledger/services/api"
)

// TestExport: GET /v1/events/export streams every event a filter
// matches, as CSV or JSON, recorded as one audit.accessed under its one
// tenant; a caller of several tenants names one; limit and unknown
// formats are refused; another tenant's export is refused and recorded.
func TestExport(t *testing.T) {
	f := newReadFixture(t)
	accessed := func() (n int) {
		for _, s := range f.stream() {
			if s.Event.Type == events.AuditAccessed && strings.Contains(string(s.Raw), "events export") {
				n++
			}
		}
		return n
	}
	code, ctype, body := f.get(t, "/v1/events/export?format=csv&actor=dave&source=postgres-proxy", f.tokens["carol"])
	if code != 200 || !strings.HasPrefix(ctype, "text/csv") {
		t.Fatalf("csv: %d %s %s", code, ctype, body)
	}
	rows, err := csv.NewReader(strings.NewReader(body)).ReadAll()
	if err != nil || len(rows) != 11 || rows[0][0] != "index" || rows[1][7] != "dave" || rows[1][6] != "postgres-proxy" {
		t.Fatalf("csv: %v, %d rows: %v", err, len(rows), rows)
	}
	code, _, body = f.get(t, "/v1/events/export?format=json&tenant=acme&after=30", f.tokens["milo"])
	var got []api.EventResult
	if code != 200 || json.Unmarshal([]byte(body), &got) != nil || len(got) != 9 || got[0].Index != 31 {
		t.Fatalf("json: %d, %d events: %.300s", code, len(got), body)
	}
	if n := accessed(); n != 2 {
		t.Fatalf("%d exports recorded, want 2", n)
	}
	for q, want := range map[string]string{
		"format=csv":                     "one tenant", // milo reads acme and globex
		"format=csv&tenant=acme&limit=5": "no limit",
		"format=xml&tenant=acme":         "want csv or json",
		"format=csv&tenant=acme&source=" + strings.Repeat("x", 300): "longer than",
	} {
		if code, _, body := f.get(t, "/v1/events/export?"+q, f.tokens["milo"]); code != 400 || !strings.Contains(body, want) {
			t.Errorf("%s: %d %s", q, code, body)
		}
	}
	if code, _, body := f.get(t, "/v1/events/export?format=csv&tenant=globex", f.tokens["carol"]); code != 403 || strings.Contains(body, "SELECT") {
		t.Fatalf("another tenant's export: %d %s", code, body)
	}
	if n := accessed(); n != 2 {
		t.Fatalf("%d exports recorded after refusals, want 2", n)
	}
}
