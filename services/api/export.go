package api

import (
	"encoding/csv"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/auditledger/auditledger/events"
	"github.com/auditledger/auditledger/projections"
)

// exportEvents answers GET /v1/events/export?format=csv|json and the
// filters of GET /v1/events: every event the filter matches, from after
// to the end, streamed page by page (keyset, projections.MaxPage at a
// time) so that an export of any size holds one page in memory. An
// export covers one tenant (named, or the caller's only one), so that it
// is one audit.accessed, under that tenant, stored before the first byte
// is sent; the record names the filter and format, not the count, which
// is known only at the end.
//
// CSV has one row per event: index, sealed_at, time, id, type, tenant,
// source, actor, actor_email, target_kind, target, session_id,
// session_seq, leaf, event (the sealed event, verbatim). A text cell a
// spreadsheet would read as a formula (starting with =, +, -, @, tab or
// carriage return) is prefixed with a single quote. JSON is an array of
// the EventResult of GET /v1/events.
func (a *api) exportEvents(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	f, ok := a.eventFilter(w, r, q, "format")
	if !ok {
		return
	}
	format := q.Get("format")
	if format != "csv" && format != "json" {
		a.fail(w, r, badParam("format", "%q: want csv or json", format))
		return
	}
	if q.Has("limit") {
		a.fail(w, r, badParam("limit", "an export has no limit: it streams every event the filter matches"))
		return
	}
	if len(f.Tenants) != 1 {
		a.fail(w, r, badParam("tenant", "required: an export covers one tenant (one record of the read, under that tenant)"))
		return
	}
	f.Limit = projections.MaxPage
	// The first page before the record: a filter the reader refuses is a
	// 400, not a recorded read.
	page, err := a.read.Events(r.Context(), f)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	filters := map[string]string{}
	for k := range q {
		filters[k] = events.Clean(q.Get(k), 256)
	}
	if err := a.accessed(r, f.Tenants[0], map[string]any{"resource": "events export", "format": format, "filters": filters}); err != nil {
		a.fail(w, r, err)
		return
	}
	name := fmt.Sprintf("auditledger-%s-events-%s.%s", f.Tenants[0], time.Now().UTC().Format("20060102T150405Z"), format)
	w.Header().Set("Content-Disposition", `attachment; filename="`+name+`"`)
	o := a.opener(r.Context())
	var cw *csv.Writer
	if format == "csv" {
		w.Header().Set("Content-Type", "text/csv; charset=utf-8")
		cw = csv.NewWriter(w)
		cw.Write([]string{"index", "sealed_at", "time", "id", "type", "tenant", "source", "actor", "actor_email", "target_kind", "target", "session_id", "session_seq", "leaf", "event"})
	} else {
		w.Header().Set("Content-Type", "application/json")
		w.Write([]byte("["))
	}
	first := true
	for {
		for i := range page.Events {
			res := eventResult(o, &page.Events[i])
			if cw != nil {
				cw.Write(csvRow(res))
				continue
			}
			b, err := json.Marshal(res)
			if err != nil {
				a.cfg.Logger.Error("export: encoding an event", "index", res.Index, "err", err)
				return
			}
			if !first {
				w.Write([]byte(","))
			}
			first = false
			w.Write([]byte("\n"))
			w.Write(b)
		}
		if cw != nil {
			cw.Flush()
			if cw.Error() != nil {
				return // the client went away
			}
		}
		if page.Next == "" {
			break
		}
		f.After = page.Next
		if page, err = a.read.Events(r.Context(), f); err != nil {
			// The status is sent: the export ends short, without its
			// closing bracket (JSON) and logged; a reader sees it cut.
			a.cfg.Logger.Error("export ended short", "tenant", f.Tenants[0], "after", f.After, "err", err)
			return
		}
	}
	if cw == nil {
		w.Write([]byte("\n]\n"))
	}
}

// csvRow is one event of a CSV export.
func csvRow(e EventResult) []string {
	var ev struct {
		ID     string    `json:"id"`
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
			Kind string `json:"kind"`
			Name string `json:"name"`
		} `json:"target"`
		SessionID  string `json:"session_id"`
		SessionSeq *int64 `json:"session_seq"`
	}
	json.Unmarshal(e.Event, &ev) // sealed events are valid: missing fields stay empty
	var tk, tn, seq string
	if ev.Target != nil {
		tk, tn = ev.Target.Kind, ev.Target.Name
	}
	if ev.SessionSeq != nil {
		seq = strconv.FormatInt(*ev.SessionSeq, 10)
	}
	row := []string{strconv.FormatUint(e.Index, 10), e.SealedAt.Format(time.RFC3339Nano), ev.Time.UTC().Format(time.RFC3339Nano), ev.ID, ev.Type, ev.Tenant,
		ev.Source.Kind, ev.Actor.Subject, e.ActorEmail, tk, tn, ev.SessionID, seq, e.Leaf, string(e.Event)}
	for i, c := range row {
		if c != "" && strings.ContainsRune("=+-@\t\r", rune(c[0])) {
			row[i] = "'" + c
		}
	}
	return row
}
