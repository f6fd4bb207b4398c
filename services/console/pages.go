package console

import (
	"embed"
	"encoding/json"
	"fmt"
	"html/template"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"time"

	"github.com/go-chi/chi/v5"

	"github.com/auditledger/auditledger/services/api"
)

//go:embed templates/*.html
var templateFiles embed.FS

var tmpl = template.Must(template.New("").Funcs(template.FuncMap{
	"time":  func(t time.Time) string { return t.UTC().Format("2006-01-02 15:04:05Z") },
	"until": until,
	"dur":   func(s int64) string { return (time.Duration(s) * time.Second).String() },
	"count": count,
	"ago":   ago,
}).ParseFS(templateFiles, "templates/*.html"))

// page is what every template gets.
type page struct {
	Title   string
	Who     string
	CSRF    string
	Refusal *refusal
	// The sessions page.
	Filter  filterForm
	Rows    []row
	Next    string // URL of the next page, when there is one
	Export  map[string]string
	Options options
	// The timeline.
	Tenant, SessionID string
	Gaps              []api.Gap
	// TimelineHTML are the timeline's items (timelineItems).
	TimelineHTML template.HTML
	// The inbox.
	Inbox *inbox
	// The replay; Terminal: the timeline's session recorded a terminal.
	Replay   *replay
	Terminal bool
	// The proof page.
	Proof *proofView
	// The evidence pages.
	Evidence *evidenceView
	// The health page.
	Health *health
	// The charts page.
	Charts *chartsView
}

type refusal struct {
	Status int
	Detail string
	Param  string
	SignIn bool
}

func (c *Console) render(w http.ResponseWriter, r *http.Request, status int, name string, p page) {
	if s := sessionFrom(r.Context()); s != nil {
		p.Who, p.CSRF = s.who(), s.csrf
	} else if s := c.sessionOf(r); s != nil {
		p.Who, p.CSRF = s.who(), s.csrf
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(status)
	if err := tmpl.ExecuteTemplate(w, name, p); err != nil {
		c.cfg.Logger.Error("console: rendering", "template", name, "err", err)
	}
}

// filterForm is the sessions page's filter as the form holds it.
type filterForm struct {
	Tenant, Who, Target, Type, Gateway, Preset, Since, Text, Outcome string
	Limit                                                            int
}

type options struct {
	Types, Gateways, Presets, Outcomes []option
}

type option struct{ Value, Label string }

var (
	typeOptions = []option{{"", "any type"}, {"session.started", "session started"}, {"session.ended", "session ended"}, {"command.executed", "statement or request"},
		{"response.digest", "result digest"}, {"mask.applied", "mask applied"}, {"command.blocked", "blocked"}, {"approval.requested", "approval requested"},
		{"approval.granted", "approval granted"}, {"approval.denied", "approval denied"}, {"access.granted", "access granted"}, {"audit.accessed", "audit data read"}}
	gatewayOptions = []option{{"", "every gateway"}, {"postgres-proxy", "PostgreSQL"}, {"http-proxy", "HTTP"}, {"ssh-proxy", "SSH"}, {"kube-gateway", "Kubernetes"}, {"api", "API"}}
	presetOptions  = []option{{"", "any time"}, {"1h", "last hour"}, {"24h", "last 24 hours"}, {"7d", "last 7 days"}, {"30d", "last 30 days"}}
	// An outcome is the event that says it: a mask applied, a statement
	// blocked, a statement held for approval.
	outcomeOptions = []option{{"", "any outcome"}, {"masked", "masked"}, {"blocked", "blocked"}, {"held", "held for approval"}}
	outcomeTypes   = map[string]string{"masked": "mask.applied", "blocked": "command.blocked", "held": "approval.requested"}
	presets        = map[string]time.Duration{"1h": time.Hour, "24h": 24 * time.Hour, "7d": 7 * 24 * time.Hour, "30d": 30 * 24 * time.Hour}
)

func valid(opts []option, v string) bool {
	return slices.ContainsFunc(opts, func(o option) bool { return o.Value == v })
}

// apiQuery turns the page's query into the API's /v1/events filter.
func apiQuery(in url.Values) (filterForm, url.Values, *refusal) {
	f := filterForm{Tenant: in.Get("tenant"), Who: in.Get("who"), Target: in.Get("target"), Type: in.Get("type"), Gateway: in.Get("gateway"),
		Preset: in.Get("preset"), Since: in.Get("since"), Text: in.Get("q"), Outcome: in.Get("outcome")}
	bad := func(param, detail string) (filterForm, url.Values, *refusal) {
		return f, nil, &refusal{Status: http.StatusBadRequest, Param: param, Detail: detail}
	}
	q := url.Values{}
	for _, p := range []struct{ param, value string }{{"tenant", f.Tenant}, {"actor", f.Who}, {"target", f.Target}, {"source", f.Gateway}, {"q", f.Text}, {"after", in.Get("after")}} {
		if p.value != "" {
			q.Set(p.param, p.value)
		}
	}
	switch {
	case !valid(typeOptions, f.Type):
		return bad("type", fmt.Sprintf("%q is not a type this page offers", f.Type))
	case !valid(gatewayOptions, f.Gateway):
		return bad("gateway", fmt.Sprintf("%q is not a gateway this page offers", f.Gateway))
	case !valid(presetOptions, f.Preset):
		return bad("preset", fmt.Sprintf("%q is not a time this page offers", f.Preset))
	case !valid(outcomeOptions, f.Outcome):
		return bad("outcome", fmt.Sprintf("%q is not masked, blocked or held", f.Outcome))
	case f.Outcome != "" && f.Type != "" && outcomeTypes[f.Outcome] != f.Type:
		return bad("outcome", "an outcome is a type of event ("+outcomeTypes[f.Outcome]+"): choose the outcome or another type, not both")
	}
	if t := f.Type; t != "" {
		q.Set("type", t)
	}
	if f.Outcome != "" {
		q.Set("type", outcomeTypes[f.Outcome])
	}
	// A preset is resolved once, at the first page: the next pages carry
	// the same since, so the filter does not move under the cursor.
	if d, ok := presets[f.Preset]; ok && f.Since == "" {
		f.Since = time.Now().UTC().Add(-d).Format(time.RFC3339)
	}
	if f.Since != "" {
		q.Set("since", f.Since)
	}
	f.Limit = 50
	if v := in.Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > 1000 {
			return bad("limit", fmt.Sprintf("%q: want 1 to 1000", v))
		}
		f.Limit = n
	}
	return f, q, nil
}

// formValues is the filter as this page's query (without the cursor).
func (f filterForm) values() url.Values {
	v := url.Values{}
	for k, s := range map[string]string{"tenant": f.Tenant, "who": f.Who, "target": f.Target, "type": f.Type, "gateway": f.Gateway, "preset": f.Preset,
		"since": f.Since, "q": f.Text, "outcome": f.Outcome} {
		if s != "" {
			v.Set(k, s)
		}
	}
	if f.Limit != 50 {
		v.Set("limit", strconv.Itoa(f.Limit))
	}
	return v
}

// row is one event as the pages show it.
type row struct {
	Index      uint64
	Time       time.Time
	Tenant     string
	Type       string
	Gateway    string
	Who        string
	Target     string
	Session    string
	Seq        int64
	Statement  string
	Details    []detail
	TimelineOf string // the timeline's URL
}

type detail struct{ Name, Value string }

// detailKeys are the payload members a row shows beside the statement:
// digests of results, masks, blocks and approvals.
var detailKeys = []string{"rule", "reason", "approval_id", "columns", "rows", "bytes", "result_hmac", "hmac", "body_hmac", "statement_sha256", "status", "exit_status", "requester"}

func rowOf(e api.EventResult) row {
	var ev struct {
		Type   string    `json:"type"`
		Time   time.Time `json:"time"`
		Tenant string    `json:"tenant"`
		Source struct {
			Kind string `json:"kind"`
		} `json:"source"`
		Actor struct {
			Subject string `json:"subject"`
		} `json:"actor"`
		Target *struct {
			Name string `json:"name"`
		} `json:"target"`
		SessionID  string                     `json:"session_id"`
		SessionSeq int64                      `json:"session_seq"`
		Payload    map[string]json.RawMessage `json:"payload"`
	}
	json.Unmarshal(e.Event, &ev)
	r := row{Index: e.Index, Time: ev.Time, Tenant: ev.Tenant, Type: ev.Type, Gateway: ev.Source.Kind, Who: ev.Actor.Subject, Session: ev.SessionID, Seq: ev.SessionSeq}
	if ev.Target != nil {
		r.Target = ev.Target.Name
	}
	if s, ok := ev.Payload["statement"]; ok {
		json.Unmarshal(s, &r.Statement)
	}
	for _, k := range detailKeys {
		if v, ok := ev.Payload[k]; ok {
			var s string
			if json.Unmarshal(v, &s) != nil {
				s = string(v)
			}
			r.Details = append(r.Details, detail{k, s})
		}
	}
	if r.Session != "" {
		r.TimelineOf = "/console/sessions/" + url.PathEscape(r.Tenant) + "/" + url.PathEscape(r.Session)
	}
	return r
}

func (c *Console) sessionsPage(w http.ResponseWriter, r *http.Request) {
	p := page{Title: "Sessions", Options: options{typeOptions, gatewayOptions, presetOptions, outcomeOptions}}
	f, q, bad := apiQuery(r.URL.Query())
	p.Filter = f
	if bad != nil {
		p.Refusal = bad
		c.render(w, r, bad.Status, "sessions", p)
		return
	}
	q.Set("limit", strconv.Itoa(f.Limit))
	var ep api.EventPage
	if !c.get(w, r, "/v1/events", q, &ep) {
		return
	}
	for _, e := range ep.Events {
		p.Rows = append(p.Rows, rowOf(e))
	}
	v := f.values()
	if ep.Next != nil {
		v.Set("after", strconv.FormatUint(*ep.Next, 10))
		p.Next = "/console/sessions?" + v.Encode()
		v.Del("after")
	}
	p.Export = map[string]string{}
	for _, format := range []string{"csv", "json"} {
		v.Set("format", format)
		p.Export[format] = "/console/export?" + v.Encode()
	}
	c.render(w, r, http.StatusOK, "sessions", p)
}

func (c *Console) timelinePage(w http.ResponseWriter, r *http.Request) {
	tenant, id := chi.URLParam(r, "tenant"), chi.URLParam(r, "id")
	var tl api.Timeline
	if !c.get(w, r, "/v1/sessions/"+url.PathEscape(id), url.Values{"tenant": {tenant}}, &tl) {
		return
	}
	p := page{Title: "Session " + id, Tenant: tl.Tenant, SessionID: tl.SessionID, Gaps: tl.Gaps}
	for _, e := range tl.Events {
		p.Rows = append(p.Rows, rowOf(e))
		p.Terminal = p.Terminal || p.Rows[len(p.Rows)-1].Type == "session.output"
	}
	p.TimelineHTML = timelineItems(p.Rows)
	c.render(w, r, http.StatusOK, "timeline", p)
}

// export streams the API's export of the page's filter: the API records
// it (one audit.accessed, before the first byte) and refuses it as it
// would any client.
func (c *Console) export(w http.ResponseWriter, r *http.Request) {
	_, q, bad := apiQuery(r.URL.Query())
	if bad != nil {
		c.render(w, r, bad.Status, "refusal", page{Title: "Bad filter", Refusal: bad})
		return
	}
	q.Del("after")
	q.Set("format", r.URL.Query().Get("format"))
	out := c.call(r, "/v1/events/export", q, w, "Content-Type", "Content-Disposition")
	if out.status != http.StatusOK {
		c.refusedBy(w, r, out)
	}
}
