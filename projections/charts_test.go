package projections_test

import (
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/auditledger/auditledger/ledger"
	"github.com/auditledger/auditledger/projections"
)

// The charts' grouped counts: events by hour and type, approval waits by
// decision and band, grants by person; each kept to the tenants asked
// for and the period.
func TestChartsQueries(t *testing.T) {
	f := newFixture(t)
	ev := func(id, typ, tenant, at, subject, payload string) ledger.Entry {
		return ledger.Entry{Event: fmt.Appendf(nil, `{"version":1,"id":%q,"type":%q,"time":%q,"tenant":%q,"source":{"kind":"api","instance":"t"},"actor":{"issuer":"https://idp.example","subject":%q,"kind":"human"},"payload":%s}`,
			id, typ, at, tenant, subject, payload)}
	}
	es := []ledger.Entry{
		ev("m1", "mask.applied", "acme", "2026-11-26T10:05:00Z", "dave", `{"rule_id":"r"}`),
		ev("m2", "mask.applied", "acme", "2026-11-26T10:59:59Z", "dave", `{"rule_id":"r"}`),
		ev("b1", "command.blocked", "acme", "2026-11-26T12:00:00Z", "dave", `{"rule":"r"}`),
		ev("m3", "mask.applied", "globex", "2026-11-26T10:10:00Z", "gus", `{"rule_id":"r"}`),
		ev("early", "mask.applied", "acme", "2026-11-26T09:59:59Z", "dave", `{"rule_id":"r"}`),
		ev("late", "mask.applied", "acme", "2026-11-26T13:00:00Z", "dave", `{"rule_id":"r"}`),
		// Approvals: granted after 30 s, denied after 2 h, one pending.
		ev("q1", "approval.requested", "acme", "2026-11-26T10:00:00Z", "dave", `{"approval_id":"a1"}`),
		ev("d1", "approval.granted", "acme", "2026-11-26T10:00:30Z", "bob", `{"approval_id":"a1"}`),
		ev("q2", "approval.requested", "acme", "2026-11-26T11:00:00Z", "dave", `{"approval_id":"a2"}`),
		ev("d2", "approval.denied", "acme", "2026-11-26T13:00:00Z", "bob", `{"approval_id":"a2"}`),
		ev("q3", "approval.requested", "acme", "2026-11-26T11:30:00Z", "erin", `{"approval_id":"a3"}`),
		// Grants: dave twice (just-in-time), frank once (legacy SSH form:
		// the actor is the person).
		ev("g1", "access.granted", "acme", "2026-11-26T10:20:00Z", "bob", `{"grant":"just-in-time","requester":{"issuer":"https://idp.example","subject":"dave"}}`),
		ev("g2", "access.granted", "acme", "2026-11-26T11:20:00Z", "bob", `{"grant":"just-in-time","requester":{"issuer":"https://idp.example","subject":"dave"}}`),
		ev("g3", "access.granted", "acme", "2026-11-26T11:40:00Z", "frank", `{"grant":"ssh-user-certificate"}`),
		ev("g4", "access.granted", "globex", "2026-11-26T11:40:00Z", "gus", `{"grant":"ssh-user-certificate"}`),
	}
	if _, err := f.log.Append(t.Context(), es); err != nil {
		t.Fatal(err)
	}
	f.project(t)
	r := projections.NewReader(f.cfg.DB)
	at := func(s string) time.Time { t, _ := time.Parse(time.RFC3339, s); return t }
	d, err := r.Charts(t.Context(), projections.ChartFilter{Tenants: []string{"acme"}, Since: at("2026-11-26T10:00:00Z"), Until: at("2026-11-26T13:00:00Z"), Unit: "hour"})
	if err != nil {
		t.Fatal(err)
	}
	if want := []time.Time{at("2026-11-26T10:00:00Z"), at("2026-11-26T11:00:00Z"), at("2026-11-26T12:00:00Z")}; !slices.Equal(d.Buckets, want) {
		t.Fatalf("buckets %v, want %v", d.Buckets, want)
	}
	wantTypes := []projections.TypeCount{
		{at("2026-11-26T10:00:00Z"), "access.granted", 1}, {at("2026-11-26T10:00:00Z"), "approval.granted", 1},
		{at("2026-11-26T10:00:00Z"), "approval.requested", 1}, {at("2026-11-26T10:00:00Z"), "mask.applied", 2},
		{at("2026-11-26T11:00:00Z"), "access.granted", 2}, {at("2026-11-26T11:00:00Z"), "approval.requested", 2},
		{at("2026-11-26T12:00:00Z"), "command.blocked", 1},
	}
	if !slices.Equal(d.Types, wantTypes) {
		t.Errorf("types by hour:\n%v, want\n%v", d.Types, wantTypes)
	}
	// Band 0: under a minute; 4: 1 to 4 hours; undecided: band 0.
	if want := []projections.WaitCount{{"", 0, 1}, {"denied", 4, 1}, {"granted", 0, 1}}; !slices.Equal(d.Waits, want) {
		t.Errorf("waits %v, want %v", d.Waits, want)
	}
	if want := []projections.PersonCount{{"dave", 2}, {"frank", 1}}; !slices.Equal(d.Grants, want) || d.GrantPeople != 2 || d.GrantTotal != 3 {
		t.Errorf("grants %v (%d people, %d grants), want %v", d.Grants, d.GrantPeople, d.GrantTotal, want)
	}

	// Every tenant, by day; no tenant at all.
	d, err = r.Charts(t.Context(), projections.ChartFilter{Since: at("2026-11-26T00:00:00Z"), Until: at("2026-11-27T00:00:00Z"), Unit: "day"})
	if err != nil {
		t.Fatal(err)
	}
	var n int64
	for _, c := range d.Types {
		n += c.Count
	}
	if len(d.Buckets) != 1 || n != int64(len(es)) || d.GrantTotal != 4 || d.GrantPeople != 3 {
		t.Errorf("every tenant by day: %d buckets, %d events (want %d), %d grants of %d people", len(d.Buckets), n, len(es), d.GrantTotal, d.GrantPeople)
	}
	d, err = r.Charts(t.Context(), projections.ChartFilter{Tenants: []string{}, Since: at("2026-11-26T00:00:00Z"), Until: at("2026-11-27T00:00:00Z"), Unit: "day"})
	if err != nil || len(d.Types)+len(d.Waits)+len(d.Grants) != 0 || d.GrantTotal != 0 {
		t.Errorf("no tenant: %+v %v", d, err)
	}

	// Bounded: more than MaxBuckets, an empty period, another unit.
	for _, f := range []projections.ChartFilter{
		{Since: at("2026-11-01T00:00:00Z"), Until: at("2026-11-26T00:00:00Z"), Unit: "hour"},
		{Since: at("2026-11-26T00:00:00Z"), Until: at("2026-11-26T00:00:00Z"), Unit: "hour"},
		{Since: at("2026-11-26T00:00:00Z"), Until: at("2026-11-27T00:00:00Z"), Unit: "minute"},
	} {
		if _, err := r.Charts(t.Context(), f); !errors.Is(err, projections.ErrBadFilter) {
			t.Errorf("%+v: %v, want a filter error", f, err)
		}
	}
}

// The buckets a period spans: cut at the unit in UTC, the partial ones
// at both ends included.
func TestChartsBuckets(t *testing.T) {
	at := func(s string) time.Time { t, _ := time.Parse(time.RFC3339, s); return t }
	for _, c := range []struct {
		since, until, unit string
		n                  int
		first              string
	}{
		{"2026-11-26T10:00:00Z", "2026-11-27T10:00:00Z", "hour", 24, "2026-11-26T10:00:00Z"},
		{"2026-11-26T10:30:00Z", "2026-11-27T10:30:00Z", "hour", 25, "2026-11-26T10:00:00Z"},
		{"2026-11-26T10:30:00+02:00", "2026-11-26T10:31:00+02:00", "hour", 1, "2026-11-26T08:00:00Z"},
		{"2026-11-01T00:00:00Z", "2026-12-01T00:00:00Z", "day", 30, "2026-11-01T00:00:00Z"},
		{"2026-11-01T12:00:00Z", "2026-12-01T12:00:00Z", "day", 31, "2026-11-01T00:00:00Z"},
	} {
		b, err := projections.ChartBuckets(at(c.since), at(c.until), c.unit)
		if err != nil || len(b) != c.n || !b[0].Equal(at(c.first)) || b[0].Location() != time.UTC {
			t.Errorf("%s..%s by %s: %v %v, want %d from %s", c.since, c.until, c.unit, b, err, c.n, c.first)
		}
	}
}
