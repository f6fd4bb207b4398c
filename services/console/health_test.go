package console_test

import (
	"html"
	"strings"
	"testing"

	"github.com/auditledger/auditledger/events"
	"github.com/auditledger/auditledger/projections"
)

// TestHealthPage: the newest checkpoint and the last full verification,
// each the API's recorded read; a person without the read roles is
// refused.
func TestHealthPage(t *testing.T) {
	f := newFixture(t)
	carol := f.signIn(t, "carol", "carol-secret")
	status, body := get(t, carol, f.srv.URL+"/console/health")
	if status != 200 || !strings.Contains(body, "console.test/log") || !strings.Contains(body, "no full verification has run yet") {
		t.Fatalf("the health page: %d %.3000s", status, body)
	}
	if _, err := projections.VerifyNow(t.Context(), projections.Config{DB: f.db, Store: f.store, Verifier: f.signer.Verifier()}); err != nil {
		t.Fatal(err)
	}
	before := countContaining(f.recorded(events.AuditAccessed), `"verify status"`)
	status, body = get(t, carol, f.srv.URL+"/console/health")
	body = html.UnescapeString(body)
	if status != 200 || !strings.Contains(body, `data-ok="true"`) || !strings.Contains(body, `<dd id="cp-size">`) {
		t.Fatalf("the health page after a verification: %d %.3000s", status, body)
	}
	if n := countContaining(f.recorded(events.AuditAccessed), `"verify status"`) - before; n != 1 {
		t.Fatalf("%d audit.accessed of the verification for one view", n)
	}
	alice := f.signIn(t, "alice", "alice-secret")
	if status, body := get(t, alice, f.srv.URL+"/console/health"); status != 403 || strings.Contains(body, "console.test/log") {
		t.Fatalf("alice's health page: %d %.1500s", status, body)
	}
}
