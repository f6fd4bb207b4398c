package console_test

import (
	"html"
	"regexp"
	"strings"
	"testing"

	"github.com/auditledger/auditledger/events"
)

// cells are the rows of the table id in page, each as its header and
// cells' text.
func cells(page, id string) [][]string {
	start := strings.Index(page, `<table id="`+id+`">`)
	if start < 0 {
		return nil
	}
	end := strings.Index(page[start:], "</table>")
	body := page[start : start+end]
	var out [][]string
	for _, tr := range regexp.MustCompile(`(?s)<tr>(.*?)</tr>`).FindAllStringSubmatch(body, -1) {
		var row []string
		for _, c := range regexp.MustCompile(`(?s)<t[hd][^>]*>(.*?)</t[hd]>`).FindAllStringSubmatch(tr[1], -1) {
			row = append(row, html.UnescapeString(c[1]))
		}
		out = append(out, row)
	}
	return out
}

// rowOf is the row of table whose first cell is label.
func rowOf(table [][]string, label string) []string {
	for _, r := range table {
		if len(r) > 0 && r[0] == label {
			return r
		}
	}
	return nil
}

// TestChartsPage: the charts of acme's 1 December, without a browser:
// the fixture's mask, block, approval and load in the tables, one
// recorded read per view; another tenant's auditor, a person without
// the role and a bad period refused.
func TestChartsPage(t *testing.T) {
	f := newFixture(t)
	carol := f.signIn(t, "carol", "carol-secret")
	before := countContaining(f.recorded(events.AuditAccessed), `"charts"`)
	status, body := get(t, carol, f.srv.URL+"/console/charts?tenant=acme&range=24h&to=2026-12-01")
	if status != 200 {
		t.Fatalf("the charts page: %d %.3000s", status, body)
	}
	if n := countContaining(f.recorded(events.AuditAccessed), `"charts"`) - before; n != 1 {
		t.Fatalf("%d audit.accessed for one view of the charts", n)
	}
	ev := cells(body, "events-table")
	// The fixture: 12 events of acme's gateways at 10:00, the load
	// generator's 10,500 statements at 11:00; globex's not counted.
	if len(ev) != 1+24+1 || rowOf(ev, "Dec 1 10:00") == nil || rowOf(ev, "Total") == nil {
		t.Fatalf("the events table: %v", ev)
	}
	head := ev[0]
	col := func(name string) int {
		for i, h := range head {
			if h == name {
				return i
			}
		}
		t.Fatalf("no column %q in %v", name, head)
		return 0
	}
	if r := rowOf(ev, "Dec 1 11:00"); r[col("command.executed")] != "10,500" {
		t.Errorf("11:00: %v", r)
	}
	if r := rowOf(ev, "Dec 1 10:00"); r[col("command.executed")] != "4" || r[col("session.started")] != "2" {
		t.Errorf("10:00: %v (head %v)", r, head)
	}
	if s := html.UnescapeString(body); !strings.Contains(s, `<span id="total">10,512</span>`) {
		t.Errorf("the total: %.2000s", s)
	}
	mb := cells(body, "outcomes-table")
	if r := rowOf(mb, "Dec 1 10:00"); len(r) != 3 || r[1] != "1" || r[2] != "1" {
		t.Errorf("masks and blocks at 10:00: %v", r)
	}
	if r := rowOf(mb, "Total"); len(r) != 3 || r[1] != "1" || r[2] != "1" {
		t.Errorf("masks and blocks in all: %v", r)
	}
	// apr-1 was granted a second after it was asked for.
	wt := cells(body, "waits-table")
	if r := rowOf(wt, "0 s to 1 min"); len(r) != 5 || r[1] != "1" {
		t.Errorf("approval waits: %v", wt)
	}
	if r := rowOf(cells(body, "grants-table"), "Total"); len(r) != 2 || r[1] != "0" {
		t.Errorf("grants: %v", r)
	}
	for _, want := range []string{`role="img"`, `<title id="events-svgtitle">Events per hour by type</title>`, "Hour (UTC)", "<rect class=\"s0\""} {
		if !strings.Contains(body, want) {
			t.Errorf("the page lacks %q", want)
		}
	}
	if strings.Contains(body, "globex") {
		t.Errorf("acme's charts name globex")
	}

	// gina (globex) and alice (no reading role): the API's refusal.
	gina := f.signIn(t, "gina", "gina-secret")
	if status, body := get(t, gina, f.srv.URL+"/console/charts/acme?range=7d&to=2026-12-01"); status != 403 || !strings.Contains(body, `id="refusal"`) || strings.Contains(body, "<svg viewBox") {
		t.Fatalf("gina's charts of acme: %d %.2000s", status, body)
	}
	f.waitRecorded(t, events.CommandBlocked, `out of scope: tenant \"acme\"`)
	alice := f.signIn(t, "alice", "alice-secret")
	if status, body := get(t, alice, f.srv.URL+"/console/charts/acme"); status != 403 || strings.Contains(body, "<svg viewBox") {
		t.Fatalf("alice's charts: %d %.2000s", status, body)
	}
	for _, u := range []string{"/console/charts/acme?range=1y", "/console/charts/acme?to=yesterday"} {
		if status, _ := get(t, carol, f.srv.URL+u); status != 400 {
			t.Errorf("%s: %d, want 400", u, status)
		}
	}
	// 30 days by day: the 1st's statements in one bucket.
	status, body = get(t, carol, f.srv.URL+"/console/charts/acme?range=30d&to=2026-12-01")
	if ev = cells(body, "events-table"); status != 200 || len(ev) != 1+30+1 || ev[0][1] != "command.executed" || rowOf(ev, "Dec 1")[1] != "10,504" {
		t.Fatalf("30 days: %d %v", status, ev)
	}
}
