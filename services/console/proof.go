package console

import (
	"net/http"
	"net/url"
	"strconv"

	"github.com/go-chi/chi/v5"

	"github.com/auditledger/auditledger/services/api"
)

// Proofs checked in the browser: the proof page shows one event, its
// record's bytes (as the API lists them) and, with static/proof.js, the
// check of its inclusion made in the browser: the page fetches the
// inclusion proof and its signed checkpoint through the console (the API
// authorises and records that read), hashes the record with WebCrypto
// SHA-256 and walks the proof to the checkpoint's root (RFC 9162
// §2.1.3.2), showing each step. The code and the proof come from the
// server being checked: a convenience beside the offline verifiers, not
// an independent proof.

// proofPage is /console/proof/{tenant}/{index}.
func (c *Console) proofPage(w http.ResponseWriter, r *http.Request) {
	tenant := chi.URLParam(r, "tenant")
	index, err := strconv.ParseUint(chi.URLParam(r, "index"), 10, 63)
	if err != nil {
		c.render(w, r, http.StatusBadRequest, "refusal", page{Title: "Bad request", Refusal: &refusal{Status: 400, Param: "index", Detail: "not a ledger index"}})
		return
	}
	// The event at index, read as any page reads events: the first of
	// the tenant's events after index-1, which must be that one.
	q := url.Values{"tenant": {tenant}, "limit": {"1"}}
	if index > 0 {
		q.Set("after", strconv.FormatUint(index-1, 10))
	}
	var ep api.EventPage
	if !c.get(w, r, "/v1/events", q, &ep) {
		return
	}
	if len(ep.Events) == 0 || ep.Events[0].Index != index {
		c.render(w, r, http.StatusNotFound, "refusal", page{Title: "Not found", Refusal: &refusal{Status: 404,
			Detail: "no event of tenant " + tenant + " at ledger index " + strconv.FormatUint(index, 10)}})
		return
	}
	e := ep.Events[0]
	rw := rowOf(e)
	c.render(w, r, http.StatusOK, "proof", page{Title: "Proof of event " + strconv.FormatUint(index, 10), Tenant: tenant,
		Rows: []row{rw}, Proof: &proofView{Index: index, Leaf: e.Leaf, Record: e.Record, Event: string(e.Event),
			ProofURL: "/console/proof/" + url.PathEscape(tenant) + "/" + strconv.FormatUint(index, 10) + "/inclusion"}})
}

// proofView is what the proof page shows of the event.
type proofView struct {
	Index    uint64
	Leaf     string // hex, as the API lists it
	Record   string // base64 of the record's bytes
	Event    string
	ProofURL string
}

// inclusionProof is /console/proof/{tenant}/{index}/inclusion: the API's
// tlog-proof of the event against the newest signed checkpoint, fetched
// by the page's script (and a download without it). The API decides
// whether the event is one of the person's tenants and records the read.
func (c *Console) inclusionProof(w http.ResponseWriter, r *http.Request) {
	index := chi.URLParam(r, "index")
	if _, err := strconv.ParseUint(index, 10, 63); err != nil {
		c.render(w, r, http.StatusBadRequest, "refusal", page{Title: "Bad request", Refusal: &refusal{Status: 400, Param: "index", Detail: "not a ledger index"}})
		return
	}
	out := c.call(r, "/v1/proofs/inclusion", url.Values{"index": {index}}, nil)
	if out.status != http.StatusOK {
		c.refusedBy(w, r, out)
		return
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Write(out.body.Bytes())
}

// consistencyProof is /console/proof/consistency?from=A&to=B: the API's
// consistency proof between two signed checkpoints' sizes, for the
// page's check against the checkpoint this browser saw before.
func (c *Console) consistencyProof(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	for _, p := range []string{"from", "to"} {
		if _, err := strconv.ParseUint(q.Get(p), 10, 63); err != nil {
			c.render(w, r, http.StatusBadRequest, "refusal", page{Title: "Bad request", Refusal: &refusal{Status: 400, Param: p, Detail: "not a tree size"}})
			return
		}
	}
	out := c.call(r, "/v1/proofs/consistency", url.Values{"from": {q.Get("from")}, "to": {q.Get("to")}}, nil)
	if out.status != http.StatusOK {
		c.refusedBy(w, r, out)
		return
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Write(out.body.Bytes())
}
