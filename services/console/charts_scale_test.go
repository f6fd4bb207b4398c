package console

import (
	"bytes"
	"math"
	"strings"
	"testing"
)

// The charts' scaling: a round axis above the largest bar, bars that
// fit the plot, a count above zero never drawn as nothing; no data, one
// bucket and counts near int64's limit drawn without NaN or overflow.
func TestChartsScale(t *testing.T) {
	for _, c := range []struct {
		top, axis, step float64
	}{
		{0, 1, 1}, {1, 1, 1}, {3, 3, 1}, {7, 8, 2}, {10, 10, 2}, {12, 15, 5}, {10500, 15000, 5000}, {10512, 15000, 5000}, {99, 100, 20},
	} {
		if axis, step := niceScale(c.top); axis != c.axis || step != c.step {
			t.Errorf("niceScale(%v) = %v, %v; want %v, %v", c.top, axis, step, c.axis, c.step)
		}
	}
	for _, c := range []struct {
		n    int64
		want string
	}{{0, "0"}, {7, "7"}, {999, "999"}, {1000, "1,000"}, {10500, "10,500"}, {1234567, "1,234,567"}, {-1200, "-1,200"}} {
		if got := count(c.n); got != c.want {
			t.Errorf("count(%d) = %q, want %q", c.n, got, c.want)
		}
	}

	check := func(name string, ch *chart) {
		t.Helper()
		for _, b := range ch.Bars {
			for _, v := range []float64{b.X, b.Y, b.W, b.H} {
				if math.IsNaN(v) || math.IsInf(v, 0) {
					t.Fatalf("%s: a bar of NaN or infinite geometry: %+v", name, b)
				}
			}
			if b.H < 1 || b.Y < float64(ch.PlotTop)-0.001 || b.Y+b.H > float64(ch.PlotBottom)+0.001 || b.X < float64(ch.PlotLeft) || b.X+b.W > float64(ch.PlotRight)+0.001 {
				t.Errorf("%s: bar %+v outside the plot %d..%d × %d..%d", name, b, ch.PlotLeft, ch.PlotRight, ch.PlotTop, ch.PlotBottom)
			}
		}
		var out bytes.Buffer
		if err := tmpl.ExecuteTemplate(&out, "charts", page{Title: "t", Charts: &chartsView{Tenant: "acme", Range: "24h", Ranges: chartRanges, Charts: []*chart{ch}}}); err != nil {
			t.Fatalf("%s: rendering: %v", name, err)
		}
		if s := out.String(); strings.Contains(s, "NaN") || strings.Contains(s, "Inf") || !strings.Contains(s, `<table id="`+ch.ID+`-table">`) {
			t.Errorf("%s: the page: %.2000s", name, s)
		}
	}

	// No data: an empty chart that says so, and a table of zeros.
	ch := barChart("none", "Nothing", "Hour (UTC)", "Events", []string{"a", "b"}, []string{"x"}, [][]int64{{0, 0}}, true)
	if !ch.Empty || len(ch.Bars) != 0 || len(ch.Rows) != 2 || ch.Rows[1].Cells[0] != "0" || ch.Totals[0] != "0" || ch.Desc != "Nothing to count in this period." {
		t.Errorf("no data: %+v", ch)
	}
	check("no data", ch)
	// No categories at all (no one was granted anything).
	ch = barChart("nobody", "Grants", "Person", "Grants", nil, []string{"g"}, [][]int64{{}}, false)
	if !ch.Empty || len(ch.Bars) != 0 || len(ch.Rows) != 0 {
		t.Errorf("no categories: %+v", ch)
	}
	check("no categories", ch)

	// One bucket, one count: the bar fills the plot's height.
	ch = barChart("one", "One", "Day (UTC)", "Events", []string{"Dec 1"}, []string{"x"}, [][]int64{{1}}, true)
	if len(ch.Bars) != 1 || ch.Bars[0].H != float64(ch.PlotBottom-ch.PlotTop) || ch.Rows[0].Cells[0] != "1" || len(ch.XTicks) != 1 {
		t.Errorf("one bucket: %+v", ch)
	}
	check("one bucket", ch)

	// Stacked: a category's bars sum to its total's height; a count of 1
	// beside 10,500 still shows (one unit high).
	ch = barChart("stack", "Stack", "Hour (UTC)", "Events", []string{"10:00", "11:00"}, []string{"x", "y"}, [][]int64{{1, 10500}, {11, 0}}, true)
	if len(ch.Bars) != 3 || ch.Bars[0].H != 1 || ch.Bars[1].Y+ch.Bars[1].H != ch.Bars[0].Y || ch.Totals[0] != "10,501" || ch.Totals[1] != "11" {
		t.Errorf("stacked: %+v", ch.Bars)
	}
	check("stacked", ch)

	// Huge counts, side by side: near int64's limit, and many buckets
	// (the x labels thinned to at most maxXLabels).
	var cats []string
	huge := make([]int64, 48)
	for i := range huge {
		cats = append(cats, "b"+count(int64(i)))
		huge[i] = math.MaxInt64 - int64(i)
	}
	ch = barChart("huge", "Huge", "Hour (UTC)", "Events", cats, []string{"x", "y"}, [][]int64{huge, make([]int64, 48)}, false)
	if len(ch.Bars) != 48 || len(ch.XTicks) > maxXLabels || ch.Rows[0].Cells[0] != "9,223,372,036,854,775,807" || len(ch.YTicks) < 2 ||
		ch.Totals[0] != "9,223,372,036,854,775,807" {
		t.Errorf("huge counts: %d bars, %d x labels, first row %v, y ticks %v", len(ch.Bars), len(ch.XTicks), ch.Rows[0].Cells, ch.YTicks)
	}
	check("huge", ch)
}
