package console

import (
	"fmt"
	"math"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/go-chi/chi/v5"

	"github.com/auditledger/auditledger/services/api"
)

// Charts: one tenant's period drawn as server-rendered SVG bar charts
// (no script, no chart library), each with its numbers in a table. The
// counts are the API's GET /v1/charts (the projection's grouped counts),
// which authorises the tenant and records the view as audit.accessed.

// chartRanges are the periods offered: each a length and the bucket
// its charts count by.
var (
	chartRanges = []option{{"24h", "24 hours, by hour"}, {"7d", "7 days, by day"}, {"30d", "30 days, by day"}}
	chartRange  = map[string]struct {
		d    time.Duration
		unit string
	}{"24h": {24 * time.Hour, "hour"}, "7d": {7 * 24 * time.Hour, "day"}, "30d": {30 * 24 * time.Hour, "day"}}
)

// chartsView is what the charts page shows.
type chartsView struct {
	Tenant, Range, To string
	Ranges            []option
	Since, Until      time.Time
	Unit              string
	Total             int64
	TypeTotals        []typeTotal // every type of the period, most first
	Charts            []*chart
}

type typeTotal struct {
	Type  string
	Count int64
}

// chartsForm answers /console/charts: the form alone, or, with a
// tenant, the way to its charts.
func (c *Console) chartsForm(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	if t := q.Get("tenant"); t != "" {
		q.Del("tenant")
		u := "/console/charts/" + url.PathEscape(t)
		if len(q) > 0 {
			u += "?" + q.Encode()
		}
		http.Redirect(w, r, u, http.StatusSeeOther)
		return
	}
	c.render(w, r, http.StatusOK, "charts", page{Title: "Charts", Charts: &chartsView{Range: "24h", Ranges: chartRanges}})
}

// chartsPage answers /console/charts/TENANT?range=24h|7d|30d&to=DAY: the
// period ends at the end of the UTC day to (default: the end of the
// current hour, for 24h, or day), and starts range before.
func (c *Console) chartsPage(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	v := &chartsView{Tenant: chi.URLParam(r, "tenant"), Range: q.Get("range"), To: q.Get("to"), Ranges: chartRanges}
	if v.Range == "" {
		v.Range = "24h"
	}
	bad := func(param, detail string) {
		c.render(w, r, http.StatusBadRequest, "charts", page{Title: "Charts", Charts: v, Refusal: &refusal{Status: http.StatusBadRequest, Param: param, Detail: detail}})
	}
	rg, ok := chartRange[v.Range]
	if !ok {
		bad("range", fmt.Sprintf("%q is not a period this page offers (24h, 7d, 30d)", v.Range))
		return
	}
	v.Unit = rg.unit
	step := map[string]time.Duration{"hour": time.Hour, "day": 24 * time.Hour}[rg.unit]
	if v.To != "" {
		day, err := time.Parse(time.DateOnly, v.To)
		if err != nil {
			bad("to", fmt.Sprintf("%q is not a day (YYYY-MM-DD)", v.To))
			return
		}
		v.Until = day.Add(24 * time.Hour)
	} else {
		v.Until = time.Now().UTC().Truncate(step).Add(step)
	}
	v.Since = v.Until.Add(-rg.d)
	var d api.Charts
	if !c.get(w, r, "/v1/charts", url.Values{"tenant": {v.Tenant}, "since": {v.Since.Format(time.RFC3339)}, "until": {v.Until.Format(time.RFC3339)}, "bucket": {rg.unit}}, &d) {
		return
	}
	v.build(&d)
	c.render(w, r, http.StatusOK, "charts", page{Title: "Charts of " + v.Tenant, Charts: v})
}

// chartTypes is how many event types the events chart draws apart; the
// others are drawn as one.
const chartTypes = 6

// build turns the API's counts into the page's charts.
func (v *chartsView) build(d *api.Charts) {
	at := make(map[time.Time]int, len(d.Buckets))
	labels := make([]string, len(d.Buckets))
	for i, b := range d.Buckets {
		at[b.UTC()] = i
		labels[i] = bucketLabel(b, d.Bucket)
	}
	totals := map[string]int64{}
	for _, c := range d.Types {
		totals[c.Type] += c.Count
		v.Total += c.Count
	}
	for t, n := range totals {
		v.TypeTotals = append(v.TypeTotals, typeTotal{t, n})
	}
	slices.SortFunc(v.TypeTotals, func(a, b typeTotal) int {
		if a.Count != b.Count {
			return cmpDesc(a.Count, b.Count)
		}
		return strings.Compare(a.Type, b.Type)
	})
	// Events by bucket and type: the most frequent types apart, the
	// rest as "other types".
	var names []string
	for i, t := range v.TypeTotals {
		if i == chartTypes && len(v.TypeTotals) > chartTypes+1 {
			names = append(names, "other types")
			break
		}
		names = append(names, t.Type)
	}
	series := make([][]int64, len(names))
	for i := range series {
		series[i] = make([]int64, len(d.Buckets))
	}
	masks, blocks := make([]int64, len(d.Buckets)), make([]int64, len(d.Buckets))
	for _, c := range d.Types {
		i, ok := at[c.Bucket.UTC()]
		if !ok {
			continue
		}
		s := slices.Index(names, c.Type)
		if s < 0 {
			s = len(names) - 1 // "other types"
		}
		series[s][i] += c.Count
		switch c.Type {
		case "mask.applied":
			masks[i] += c.Count
		case "command.blocked":
			blocks[i] += c.Count
		}
	}
	unit := map[string]string{"hour": "Hour", "day": "Day"}[d.Bucket]
	ev := barChart("events", "Events per "+d.Bucket+" by type", unit+" (UTC)", "Events", labels, names, series, true)
	mb := barChart("outcomes", "Masks and blocks per "+d.Bucket, unit+" (UTC)", "Events", labels, []string{"masks applied (mask.applied)", "statements blocked (command.blocked)"},
		[][]int64{masks, blocks}, false)
	// Approval waits: a bar per band (and one for requests without a
	// decision), the decisions stacked.
	var bands []string
	prev := "0 s"
	for _, b := range d.WaitBounds {
		s := waitLabel(b)
		bands = append(bands, prev+" to "+s)
		prev = s
	}
	bands = append(bands, prev+" or more", "no decision yet")
	decisions := []string{"granted", "denied", "expired"}
	waits := make([][]int64, len(decisions))
	for i := range waits {
		waits[i] = make([]int64, len(bands))
	}
	undecided := make([]int64, len(bands))
	for _, c := range d.Waits {
		i := slices.Index(decisions, c.Decision)
		switch {
		case c.Decision == "":
			undecided[len(bands)-1] += c.Count
		case i >= 0 && c.Band >= 0 && c.Band < len(bands)-1:
			waits[i][c.Band] += c.Count
		}
	}
	wt := barChart("waits", "Approval waiting times", "Time from request to decision", "Approval requests", bands,
		append(decisions, "no decision"), append(waits, undecided), true)
	// Grants per person.
	people := make([]string, len(d.Grants))
	grants := make([]int64, len(d.Grants))
	for i, g := range d.Grants {
		people[i], grants[i] = g.Person, g.Count
	}
	gr := barChart("grants", "Access grants per person", "Person granted", "Grants", people, []string{"access grants (access.granted)"}, [][]int64{grants}, false)
	if d.GrantPeople > len(d.Grants) {
		gr.Note = fmt.Sprintf("The %d people granted most of %d; %s grants in all.", len(d.Grants), d.GrantPeople, count(d.GrantTotal))
	}
	v.Charts = []*chart{ev, mb, wt, gr}
}

func cmpDesc(a, b int64) int {
	switch {
	case a > b:
		return -1
	case a < b:
		return 1
	}
	return 0
}

func bucketLabel(b time.Time, unit string) string {
	if unit == "hour" {
		return b.UTC().Format("Jan 2 15:04")
	}
	return b.UTC().Format("Jan 2")
}

func waitLabel(s int64) string {
	switch {
	case s%3600 == 0:
		return strconv.FormatInt(s/3600, 10) + " h"
	case s%60 == 0:
		return strconv.FormatInt(s/60, 10) + " min"
	}
	return strconv.FormatInt(s, 10) + " s"
}

// The SVG's geometry, in its user units.
const (
	svgWidth   = 760
	svgHeight  = 300
	plotLeft   = 80
	plotRight  = 12
	plotTop    = 12
	plotBottom = 80 // x labels and the axis title
	maxXLabels = 12
)

// chart is one bar chart: its drawing and its numbers.
type chart struct {
	ID, Title, XLabel, YLabel string
	Width, Height             int
	PlotLeft, PlotTop         int
	PlotRight, PlotBottom     int // the plot's right and bottom edges
	XTitleX, XTitleY          int
	YTitleX, YTitleY          int
	Series                    []legend
	Bars                      []bar
	YTicks, XTicks            []tick
	Empty                     bool
	Desc                      string // what the chart shows, in words
	// The numbers: a row per category, a column per series, and totals.
	Columns []string
	Rows    []tableRow
	Totals  []string
	Note    string
}

type legend struct{ Name, Class string }

type bar struct {
	X, Y, W, H float64
	Class      string
	Label      string // the bar's tooltip: category, series, count
}

type tick struct {
	X, Y  float64
	Label string
}

type tableRow struct {
	Label string
	Cells []string
}

// barChart draws series over categories: stacked, or side by side.
// Heights scale to a round axis maximum; a count above zero is at least
// one unit high, so it never vanishes.
func barChart(id, title, xLabel, yLabel string, categories, names []string, series [][]int64, stacked bool) *chart {
	c := &chart{ID: id, Title: title, XLabel: xLabel, YLabel: yLabel, Width: svgWidth, Height: svgHeight,
		PlotLeft: plotLeft, PlotTop: plotTop, PlotRight: svgWidth - plotRight, PlotBottom: svgHeight - plotBottom,
		Columns: names}
	c.XTitleX, c.XTitleY = (c.PlotLeft+c.PlotRight)/2, svgHeight-8
	c.YTitleX, c.YTitleY = -(c.PlotTop+c.PlotBottom)/2, 18
	for i, n := range names {
		c.Series = append(c.Series, legend{n, "s" + strconv.Itoa(i%8)})
	}
	// The largest bar: a category's sum when stacked, else its largest.
	var top float64
	totals := make([]int64, len(names))
	for i := range categories {
		var sum float64
		for s := range series {
			n := series[s][i]
			totals[s] = addCapped(totals[s], n)
			if stacked {
				sum += float64(n)
			} else {
				sum = math.Max(sum, float64(n))
			}
		}
		top = math.Max(top, sum)
	}
	for _, t := range totals {
		c.Totals = append(c.Totals, count(t))
	}
	c.Empty = top == 0
	axis, step := niceScale(top)
	plotH := float64(c.PlotBottom - c.PlotTop)
	for y := 0.0; y <= axis+step/2; y += step {
		c.YTicks = append(c.YTicks, tick{X: float64(c.PlotLeft - 6), Y: float64(c.PlotBottom) - y/axis*plotH, Label: countFloat(y)})
	}
	n := max(len(categories), 1)
	slot := float64(c.PlotRight-c.PlotLeft) / float64(n)
	every := (len(categories) + maxXLabels - 1) / maxXLabels
	for i, cat := range categories {
		x0 := float64(c.PlotLeft) + float64(i)*slot
		if i%max(every, 1) == 0 {
			c.XTicks = append(c.XTicks, tick{X: x0 + slot/2, Y: float64(c.PlotBottom) + 14, Label: cat})
		}
		row := tableRow{Label: cat}
		base := float64(c.PlotBottom)
		w := slot * 0.8
		if !stacked {
			w = slot * 0.8 / float64(max(len(series), 1))
		}
		for s := range series {
			cnt := series[s][i]
			row.Cells = append(row.Cells, count(cnt))
			if cnt == 0 {
				continue
			}
			h := math.Max(float64(cnt)/axis*plotH, 1)
			b := bar{W: w, H: h, Class: c.Series[s].Class, Label: fmt.Sprintf("%s, %s: %s", cat, names[s], count(cnt))}
			if stacked {
				b.X, b.Y = x0+slot*0.1, base-h
				base -= h
			} else {
				b.X, b.Y = x0+slot*0.1+float64(s)*w, float64(c.PlotBottom)-h
			}
			c.Bars = append(c.Bars, b)
		}
		c.Rows = append(c.Rows, row)
	}
	var parts []string
	for i, t := range totals {
		parts = append(parts, names[i]+" "+count(t))
	}
	if c.Empty {
		c.Desc = "Nothing to count in this period."
	} else {
		c.Desc = fmt.Sprintf("%s over %d %s: %s.", title, len(categories), strings.ToLower(xLabel), strings.Join(parts, "; "))
	}
	return c
}

// addCapped is a+b for counts, at most math.MaxInt64.
func addCapped(a, b int64) int64 {
	if a > math.MaxInt64-b {
		return math.MaxInt64
	}
	return a + b
}

// niceScale is the axis maximum for a largest value top and the step
// between its ticks: a step of 1, 2 or 5 times a power of ten giving at
// most 5 steps; 1 and 1 when top is 0.
func niceScale(top float64) (axis, step float64) {
	if top <= 0 {
		return 1, 1
	}
	raw := top / 5
	mag := math.Pow(10, math.Floor(math.Log10(raw)))
	for _, m := range []float64{1, 2, 5, 10} {
		if step = m * mag; step >= raw {
			break
		}
	}
	step = math.Max(step, 1) // counts: no fractional ticks
	return math.Ceil(top/step) * step, step
}

// count prints n with thousands separators.
func count(n int64) string { return separated(strconv.FormatInt(n, 10)) }

// countFloat prints f, rounded, with thousands separators (an axis's
// labels, which may pass int64's limit).
func countFloat(f float64) string { return separated(strconv.FormatFloat(math.Round(f), 'f', 0, 64)) }

func separated(s string) string {
	sign := ""
	if strings.HasPrefix(s, "-") {
		sign, s = "-", s[1:]
	}
	var b strings.Builder
	for i, r := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(r)
	}
	return sign + b.String()
}
