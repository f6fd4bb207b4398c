package console

import (
	"encoding/json"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"github.com/go-chi/chi/v5"

	"github.com/auditledger/auditledger/compliance"
	"github.com/auditledger/auditledger/services/api"
)

// Evidence: ask for a bundle (framework, tenant, period) through the
// API's POST /v1/evidence, follow its build and download it, each a call
// to the API's own route with the person's token: the API checks the
// role and the tenant scope and records the request (evidence.exported
// once built), each status read and the download.

// frameworks are the frameworks the page offers: those of
// compliance/data with an evidence mapping, the default first.
var frameworks = func() []option {
	var out []option
	for _, f := range []option{{"iso27001-2022", "ISO/IEC 27001:2022"}, {"iso27001-2013", "ISO/IEC 27001:2013"}, {"soc2-2017", "SOC 2 (2017 TSC)"}, {"nist-800-53r5", "NIST SP 800-53 rev. 5"}} {
		if _, err := compliance.Load(f.Value); err == nil {
			out = append(out, f)
		}
	}
	return out
}()

// maxBundles bounds the bundles the page lists.
const maxBundles = 50

// evidenceView is what the evidence pages show.
type evidenceView struct {
	Frameworks []option
	// The form, as sent (kept on a refusal).
	Tenant, Framework, From, To string
	Bundles                     []api.EvidenceStatus
	Bundle                      *api.EvidenceStatus
}

// evidencePage is the form and the bundles built: the API's
// GET /v1/evidence (its tenants only, recorded as one audit.accessed per
// tenant listed), newest first, each linked to its page and, once
// ready, its download.
func (c *Console) evidencePage(w http.ResponseWriter, r *http.Request) {
	now := time.Now().UTC()
	ev := &evidenceView{Frameworks: frameworks, Framework: frameworks[0].Value, From: now.AddDate(0, 0, -30).Format("2006-01-02"), To: now.AddDate(0, 0, 1).Format("2006-01-02")}
	if !c.get(w, r, "/v1/evidence", url.Values{"limit": {strconv.Itoa(maxBundles)}}, &ev.Bundles) {
		return
	}
	c.render(w, r, http.StatusOK, "evidence", page{Title: "Evidence", Evidence: ev})
}

// requestEvidence posts the form to POST /v1/evidence; the bundle's page
// opens.
func (c *Console) requestEvidence(w http.ResponseWriter, r *http.Request) {
	ev := &evidenceView{Frameworks: frameworks, Tenant: r.PostFormValue("tenant"), Framework: r.PostFormValue("framework"), From: r.PostFormValue("from"), To: r.PostFormValue("to")}
	bad := func(param, detail string) {
		c.render(w, r, http.StatusBadRequest, "evidence", page{Title: "Evidence", Evidence: ev, Refusal: &refusal{Status: 400, Param: param, Detail: detail}})
	}
	if !valid(frameworks, ev.Framework) {
		bad("framework", "not a framework this page offers")
		return
	}
	from, err := time.Parse("2006-01-02", ev.From)
	if err != nil {
		bad("from", "want a date, YYYY-MM-DD")
		return
	}
	to, err := time.Parse("2006-01-02", ev.To)
	if err != nil {
		bad("to", "want a date, YYYY-MM-DD")
		return
	}
	body, _ := json.Marshal(api.EvidenceRequest{Tenant: ev.Tenant, Framework: ev.Framework, From: from, To: to})
	out := c.callBody(r, http.MethodPost, "/v1/evidence", body)
	if out.status != http.StatusAccepted {
		var p api.Problem
		if json.Unmarshal(out.body.Bytes(), &p) != nil || p.Detail == "" {
			p.Detail = http.StatusText(out.status)
		}
		c.render(w, r, out.status, "evidence", page{Title: "Evidence", Evidence: ev, Refusal: &refusal{Status: out.status, Detail: p.Detail, Param: p.Param}})
		return
	}
	var st api.EvidenceStatus
	if err := json.Unmarshal(out.body.Bytes(), &st); err != nil || st.ID == "" {
		c.cfg.Logger.Error("console: reading the API's answer", "err", err)
		c.render(w, r, http.StatusInternalServerError, "refusal", page{Title: "Error", Refusal: &refusal{Status: 500, Detail: "internal error"}})
		return
	}
	http.Redirect(w, r, "/console/evidence/"+st.ID, http.StatusSeeOther)
}

// bundlePage is one bundle's state (the API's read, recorded): its
// progress while it builds, its digest and range once ready.
func (c *Console) bundlePage(w http.ResponseWriter, r *http.Request) {
	id := chi.URLParam(r, "id")
	var st api.EvidenceStatus
	if !c.get(w, r, "/v1/evidence/"+url.PathEscape(id), nil, &st) {
		return
	}
	c.render(w, r, http.StatusOK, "bundle", page{Title: "Evidence bundle " + id, Evidence: &evidenceView{Bundle: &st}})
}

// downloadBundle streams the API's download (recorded by the API before
// the first byte).
func (c *Console) downloadBundle(w http.ResponseWriter, r *http.Request) {
	id := chi.URLParam(r, "id")
	out := c.call(r, "/v1/evidence/"+url.PathEscape(id)+"/download", nil, w, "Content-Type", "Content-Disposition", "Content-Length")
	if out.status != http.StatusOK {
		c.refusedBy(w, r, out)
	}
}

// bundleProgress streams the API's GET /v1/evidence/{id}/progress (one
// recorded read; the build's counts from the API's memory as they
// change) to the bundle page's script, which reloads the page — a
// status read, recorded — once the build ends.
func (c *Console) bundleProgress(w http.ResponseWriter, r *http.Request) {
	id := chi.URLParam(r, "id")
	out := c.call(r, "/v1/evidence/"+url.PathEscape(id)+"/progress", nil, w, "Content-Type", "Cache-Control", "X-Accel-Buffering")
	if out.status != http.StatusOK {
		c.refusedBy(w, r, out)
	}
}
