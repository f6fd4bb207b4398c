package console

import (
	"html/template"
	"strings"
	"testing"
	"time"
)

// timelineRowTemplate is how timeline.html wrote each event before
// timelineItems: the reference its output is held to.
const timelineRowTemplate = `{{range .}}<li class="ev ev-{{.Type}}" data-index="{{.Index}}"><h2><span class="seq">#{{.Seq}}</span> {{.Type}} <span class="meta">{{time .Time}} · {{.Who}} · {{.Target}} · ledger index {{.Index}}</span></h2>
<p class="meta"><a href="/console/proof/{{.Tenant}}/{{.Index}}" aria-label="Check the inclusion of event {{.Index}}">check its inclusion</a></p>
{{with .Statement}}<pre><code>{{.}}</code></pre>{{end}}
{{if .Details}}<dl>{{range .Details}}<dt>{{.Name}}</dt><dd>{{.Value}}</dd>{{end}}</dl>{{end}}
</li>{{end}}`

// TestTimelineItemsAsTemplate: the timeline's items are written exactly
// as html/template writes them, for values that try to leave their
// context (quotes, markup, entities, NUL, non-ASCII, a plus sign).
func TestTimelineItemsAsTemplate(t *testing.T) {
	ref := template.Must(template.New("").Funcs(template.FuncMap{"time": func(t time.Time) string { return t.UTC().Format("2006-01-02 15:04:05Z") }}).Parse(timelineRowTemplate))
	at := time.Date(2026, 12, 1, 10, 0, 5, 123, time.FixedZone("x", 3600))
	rows := []row{
		{Index: 7, Time: at, Tenant: "acme", Type: "command.executed", Who: "dave", Target: "orders", Seq: 1, Statement: "SELECT 1"},
		{Index: 1 << 62, Time: at, Tenant: "a b", Type: `x" onmouseover="alert(1)`, Who: `<script>alert('w')</script>`, Target: "&amp; 'q' \"d\" a+b",
			Seq: -3, Statement: "SELECT '<b>' || \"x\" FROM t WHERE a < b && c > d\x00 — ünïcode\n\ttab", Details: []detail{{"rule", "r<1>"}, {"requester", `{"subject":"e+f"}`}}},
		{Index: 0, Tenant: "globex", Type: "", Details: []detail{{"", ""}}},
	}
	var want strings.Builder
	if err := ref.Execute(&want, rows); err != nil {
		t.Fatal(err)
	}
	if got := string(timelineItems(rows)); got != want.String() {
		t.Fatalf("timelineItems:\n%s\nhtml/template:\n%s", got, want.String())
	}
	if got := timelineItems(nil); got != "" {
		t.Fatalf("no rows: %q", got)
	}
}
