package api_test

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/auditledger/auditledger/events"
	"github.com/auditledger/auditledger/services/api"
)

// GET /v1/charts: acme's 40 statements in their hour, one recorded read;
// the tenant required and in scope, the role, the period's bounds.
func TestCharts(t *testing.T) {
	f := newReadFixture(t)
	const q = "/v1/charts?tenant=acme&since=2026-11-26T00:00:00Z&until=2026-11-27T00:00:00Z&bucket=hour"
	accessed := func() int {
		n := 0
		for _, s := range f.stream() {
			if s.Event.Type == events.AuditAccessed && strings.Contains(string(s.Raw), `"resource":"charts"`) {
				n++
			}
		}
		return n
	}
	code, _, body := f.get(t, q, f.tokens["carol"])
	var c api.Charts
	if err := json.Unmarshal([]byte(body), &c); code != 200 || err != nil {
		t.Fatalf("charts: %d %s", code, body)
	}
	if len(c.Buckets) != 24 || len(c.Types) != 1 || c.Types[0].Count != 40 || c.Types[0].Type != "command.executed" || !c.Types[0].Bucket.Equal(c.Buckets[12]) ||
		len(c.WaitBounds) != 6 || c.WaitBounds[0] != 60 || len(c.Waits) != 0 || len(c.Grants) != 0 || c.GrantTotal != 0 {
		t.Errorf("charts of acme's day: %+v", c)
	}
	if n := accessed(); n != 1 {
		t.Errorf("%d audit.accessed of charts for one read", n)
	}
	for _, r := range []struct {
		path, who string
		code      int
		param     string
	}{
		{strings.Replace(q, "tenant=acme&", "", 1), "carol", 400, "tenant"},
		{strings.Replace(q, "acme", "globex", 1), "carol", 403, ""},
		{q, "uma", 403, ""},   // the role, no tenant
		{q, "alice", 403, ""}, // no reading role
		{strings.Replace(q, "bucket=hour", "bucket=minute", 1), "carol", 400, "bucket"},
		{strings.Replace(q, "2026-11-27", "2026-12-27", 1), "carol", 400, "since"}, // 744 hours
		{strings.Replace(q, "since=2026-11-26T00:00:00Z", "since=yesterday", 1), "carol", 400, "since"},
		{q + "&limit=5", "carol", 400, "limit"},
	} {
		code, _, body := f.get(t, r.path, f.tokens[r.who])
		var p api.Problem
		json.Unmarshal([]byte(body), &p)
		if code != r.code || p.Param != r.param || strings.Contains(body, `"buckets"`) {
			t.Errorf("%s as %s: %d %s; want %d naming %q", r.path, r.who, code, body, r.code, r.param)
		}
	}
	if n := accessed(); n != 1 {
		t.Errorf("%d audit.accessed of charts after refusals, want the one read", n)
	}
}
