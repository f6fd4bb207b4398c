package compliance_test

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/auditledger/auditledger/compliance"
)

// reviewsOf is a log of reads of the audit data: a person's at each of
// at, and a machine's every day of the period (never a review).
func reviewsOf(p compliance.Period, at ...time.Time) []compliance.Observed {
	var evs [][]byte
	for d := p.From; d.Before(p.To); d = d.Add(24 * time.Hour) {
		evs = append(evs, evAt("m"+d.Format("0102"), "audit.accessed", "acme", d.Format(time.RFC3339), "", "siem", "machine", `[]`, `{"resource":"events"}`))
	}
	for i, t := range at {
		evs = append(evs, evAt(fmt.Sprint("r", i), "audit.accessed", "acme", t.Format(time.RFC3339Nano), "", "carol", "human", `["auditor"]`, `{"resource":"events"}`))
	}
	out := make([]compliance.Observed, len(evs))
	for i, e := range evs {
		out[i] = compliance.Observed{Index: uint64(i), Event: e}
	}
	return out
}

// audit-reviewed counts the period's edges: the time from its start to
// the first review and from the last review to its end are bound as the
// time between two reviews is (FORMAT §12.1); exactly every_days apart
// is on time; a period no longer than the bound without a review is not
// observed; version 2's rule tested neither edge.
func TestAuditReviewedCountsThePeriodsEdges(t *testing.T) {
	x, err := compliance.ParseExpectations("x.yaml", []byte("version: 3\ncontrols:\n  - control: \"8.16\"\n    check: audit-reviewed\n    statement: s\n    every_days: 7\n"))
	if err != nil {
		t.Fatal(err)
	}
	day := 24 * time.Hour
	nov := time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)
	month := compliance.Period{From: nov, To: nov.Add(30 * day)}
	every := func(from time.Time, step time.Duration, until time.Time) []time.Time {
		var at []time.Time
		for t := from; !t.After(until); t = t.Add(step) {
			at = append(at, t)
		}
		return at
	}
	late, lateEnd := compliance.ExReviewLate, compliance.ExReviewLateEnd
	for _, c := range []struct {
		name   string
		p      compliance.Period
		at     []time.Time
		want   string // exception per row, "-" for none
		result string
	}{
		{"no review in 30 days", month, nil, lateEnd, compliance.Exceptions},
		{"the last review 20 days before the end", month, every(nov.Add(day), 3*day, nov.Add(10*day)), "- - - - " + lateEnd, compliance.Exceptions},
		{"reviews every 3 days", month, every(nov.Add(2*day), 3*day, nov.Add(29*day)), "- - - - - - - - - -", compliance.Effective},
		{"the first review 10 days after the start", month, every(nov.Add(10*day), 3*day, nov.Add(29*day)), late + " - - - - - -", compliance.Exceptions},
		{"exactly 7 days apart, from the start to the end", month, []time.Time{nov.Add(7 * day), nov.Add(14 * day), nov.Add(21 * day), nov.Add(23 * day)}, "- - - -", compliance.Effective},
		{"7 days and a nanosecond after the start", month, []time.Time{nov.Add(7*day + 1), nov.Add(14 * day), nov.Add(21 * day), nov.Add(28 * day)}, late + " - - -", compliance.Exceptions},
		{"no review in 7 days", compliance.Period{From: nov, To: nov.Add(7 * day)}, nil, "", compliance.NotObserved},
		{"no review in 7 days and a nanosecond", compliance.Period{From: nov, To: nov.Add(7*day + 1)}, nil, lateEnd, compliance.Exceptions},
		// a review recorded before the period (sealed in it) shortens no
		// gap: the time runs from the latest of the start and the reviews
		{"a review timed before the start", month, []time.Time{nov.Add(-3 * day), nov.Add(8 * day), nov.Add(15 * day), nov.Add(22 * day), nov.Add(29 * day)}, "- " + late + " - - -", compliance.Exceptions},
	} {
		as, err := compliance.Assert(x, nil, c.p, reviewsOf(c.p, c.at...))
		if err != nil {
			t.Fatal(err)
		}
		a := as[0]
		var got []string
		for _, r := range a.Rows {
			ex := r.Exception
			if ex == "" {
				ex = "-"
			}
			got = append(got, ex)
		}
		if g := strings.Join(got, " "); g != c.want || a.Result != c.result {
			t.Errorf("%s:\n got %s (%s)\nwant %s (%s)", c.name, g, a.Result, c.want, c.result)
		}
	}

	// The end's row is of no event, and says what went unreviewed.
	as, _ := compliance.Assert(x, nil, month, reviewsOf(month, nov.Add(10*day+90*time.Minute+5)))
	end := as[0].Rows[1]
	if got := strings.Join(end.CSV(), ","); got != ",,,,no review from 2026-11-11T01:30:00.000000005Z to 2026-12-01T00:00:00Z,,"+lateEnd {
		t.Errorf("the end's row: %s", got)
	}
	as, _ = compliance.Assert(x, nil, month, nil)
	if got := strings.Join(as[0].Rows[0].CSV(), ","); got != ",,,,no review from 2026-11-01T00:00:00Z to 2026-12-01T00:00:00Z,,"+lateEnd {
		t.Errorf("no review at all: %s", got)
	}

	// Version 2 tested only the time between reviews: a month without a
	// review was not observed, a last review 20 days before the end
	// effective (how bundles built with it were derived).
	x.Version = 2
	if !x.LegacyReviews() {
		t.Error("version 2 with audit-reviewed is not LegacyReviews")
	}
	for at, want := range map[string][]time.Time{
		compliance.NotObserved: nil,
		compliance.Effective:   every(nov.Add(8*day), 3*day, nov.Add(10*day)),
		compliance.Exceptions:  {nov, nov.Add(8 * day)},
	} {
		as, _ := compliance.Assert(x, nil, month, reviewsOf(month, want...))
		if as[0].Result != at {
			t.Errorf("version 2's rule, reviews at %v: %s, want %s", want, as[0].Result, at)
		}
	}

	// A period that does not start before it ends is refused.
	if _, err := compliance.Assert(x, nil, compliance.Period{From: nov, To: nov}, nil); err == nil {
		t.Error("an empty period was accepted")
	}
}
