package api

import (
	"net/http"
	"time"

	"github.com/auditledger/auditledger/projections"
)

// Charts is the answer of GET /v1/charts: grouped counts of one tenant's
// period (projections.ChartData), for the console's charts.
type Charts struct {
	Tenant string    `json:"tenant"`
	Since  time.Time `json:"since"`
	Until  time.Time `json:"until"`
	Bucket string    `json:"bucket"`
	// Buckets are the starts of the buckets, in order.
	Buckets []time.Time `json:"buckets"`
	// Types: events by bucket (by event time) and type, counts above
	// zero.
	Types []ChartTypeCount `json:"types"`
	// WaitBounds are the upper bounds of the bands of approval waits, in
	// seconds; Waits the approval requests of the period by decision
	// ("" undecided) and band (len(WaitBounds): longer than the last).
	WaitBounds []int64          `json:"wait_bounds_seconds"`
	Waits      []ChartWaitCount `json:"waits"`
	// Grants: access.granted records by the person granted, most first,
	// at most projections.MaxChartPeople of GrantPeople.
	Grants      []ChartPersonCount `json:"grants"`
	GrantPeople int                `json:"grant_people"`
	GrantTotal  int64              `json:"grant_total"`
}

// ChartTypeCount: Count events of Type in the bucket starting at Bucket.
type ChartTypeCount struct {
	Bucket time.Time `json:"bucket"`
	Type   string    `json:"type"`
	Count  int64     `json:"count"`
}

// ChartWaitCount: Count approval requests of Decision waited in Band.
type ChartWaitCount struct {
	Decision string `json:"decision"`
	Band     int    `json:"band"`
	Count    int64  `json:"count"`
}

// ChartPersonCount: Count grants to Person (the subject as recorded).
type ChartPersonCount struct {
	Person string `json:"person"`
	Count  int64  `json:"count"`
}

// charts answers GET /v1/charts?tenant=T&since=&until=&bucket=hour|day:
// one tenant (required, in the caller's scope) and a period of at most
// projections.MaxBuckets buckets. One audit.accessed, before the answer.
func (a *api) charts(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	if err := knownParams(q, "tenant", "since", "until", "bucket"); err != nil {
		a.fail(w, r, err)
		return
	}
	tenant := q.Get("tenant")
	if tenant == "" {
		a.fail(w, r, badParam("tenant", "required: charts show one tenant"))
		return
	}
	tenants, ok := a.tenantsOf(w, r, tenant)
	if !ok {
		return
	}
	f := projections.ChartFilter{Tenants: tenants, Unit: q.Get("bucket")}
	for _, p := range []struct {
		param string
		t     *time.Time
	}{{"since", &f.Since}, {"until", &f.Until}} {
		v := q.Get(p.param)
		t, err := time.Parse(time.RFC3339Nano, v)
		if err != nil {
			a.fail(w, r, badParam(p.param, "%q is not an RFC 3339 time (e.g. 2026-11-27T10:00:00Z)", v))
			return
		}
		*p.t = t.UTC()
	}
	d, err := a.read.Charts(r.Context(), f)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	out := Charts{Tenant: tenant, Since: f.Since, Until: f.Until, Bucket: f.Unit, Buckets: d.Buckets, Types: make([]ChartTypeCount, len(d.Types)),
		Waits: make([]ChartWaitCount, len(d.Waits)), Grants: make([]ChartPersonCount, len(d.Grants)), GrantPeople: d.GrantPeople, GrantTotal: d.GrantTotal}
	for i, c := range d.Types {
		out.Types[i] = ChartTypeCount(c)
	}
	for _, b := range projections.WaitBounds {
		out.WaitBounds = append(out.WaitBounds, int64(b.Seconds()))
	}
	for i, c := range d.Waits {
		out.Waits[i] = ChartWaitCount(c)
	}
	for i, c := range d.Grants {
		out.Grants[i] = ChartPersonCount(c)
	}
	var events int64
	for _, c := range d.Types {
		events += c.Count
	}
	if err := a.accessed(r, tenant, map[string]any{"resource": "charts", "since": f.Since, "until": f.Until, "bucket": f.Unit, "events": events}); err != nil {
		a.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, out)
}
