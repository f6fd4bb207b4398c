package console

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"time"

	"github.com/go-chi/chi/v5"

	"github.com/auditledger/auditledger/services/access"
	"github.com/auditledger/auditledger/services/api"
)

// The reviewers' inbox: pending approvals and access requests, each
// decided in place through the API's own decide routes, the list updated
// live by polling a fragment. The page view records audit.accessed (the
// API's lists record it); the polls are reads of the same api.View, kept
// in the person's console session, so the API authorises each poll and
// records again only when a poll shows something the view has not.

// maxViews bounds the page views a session keeps for its polls; a poll
// of a view no longer kept starts a new one (and is recorded).
const maxViews = 32

// inbox is what the inbox fragment shows.
type inbox struct {
	View      string
	Approvals []api.ApprovalResult
	Access    []*access.Request
	// Notice is the outcome of the decision just made in place, or the
	// API's refusal of it.
	Notice     string
	NoticeFail bool
	// Unavailable names a list the API does not serve here (no access
	// requests configured).
	Unavailable string
}

// view is the session's page view named id, or a new one when id names
// none of this session's.
func (c *Console) view(s *session, id string) (string, *api.View) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if s.views == nil {
		s.views = map[string]*api.View{}
	}
	if v, ok := s.views[id]; ok && id != "" {
		return id, v
	}
	if len(s.views) >= maxViews {
		for k := range s.views {
			delete(s.views, k)
			break
		}
	}
	id = randomToken()[:16]
	s.views[id] = api.NewView()
	return id, s.views[id]
}

// pending reads both lists under the view; a refusal of the approvals
// list is the page's refusal.
func (c *Console) pending(r *http.Request, viewID string) (*inbox, *capture) {
	id, v := c.view(sessionFrom(r.Context()), viewID)
	r = r.WithContext(api.WithView(r.Context(), v))
	in := &inbox{View: id}
	out := c.call(r, "/v1/approvals", url.Values{"status": {"pending"}}, nil)
	if out.status != http.StatusOK {
		return nil, out
	}
	if err := json.Unmarshal(out.body.Bytes(), &in.Approvals); err != nil {
		return nil, &capture{status: http.StatusInternalServerError}
	}
	out = c.call(r, "/v1/access-requests", url.Values{"status": {"pending"}}, nil)
	switch out.status {
	case http.StatusOK:
		if err := json.Unmarshal(out.body.Bytes(), &in.Access); err != nil {
			return nil, &capture{status: http.StatusInternalServerError}
		}
	case http.StatusServiceUnavailable:
		// No access rules here: the approvals alone.
		var p api.Problem
		json.Unmarshal(out.body.Bytes(), &p)
		in.Unavailable = "Access requests: " + p.Detail
	default:
		return nil, out
	}
	return in, nil
}

func (c *Console) inboxPage(w http.ResponseWriter, r *http.Request) {
	in, out := c.pending(r, "")
	if out != nil {
		c.refusedBy(w, r, out)
		return
	}
	c.render(w, r, http.StatusOK, "inbox", page{Title: "Inbox", Inbox: in})
}

// inboxFragment is the live part of the page, polled by htmx.
func (c *Console) inboxFragment(w http.ResponseWriter, r *http.Request) {
	in, out := c.pending(r, r.URL.Query().Get("view"))
	if out != nil {
		c.refusedBy(w, r, out)
		return
	}
	c.render(w, r, http.StatusOK, "pending", page{Inbox: in})
}

// decide posts the person's decision to the API's route
// /v1/{kind}/{id}/{approve|deny}: the API checks the role, the scope and
// self-approval, and records. Without JavaScript the answer is a page;
// with htmx, the fragment again, with the outcome (or the API's refusal)
// above the lists.
func (c *Console) decide(kind string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		id, verb := chi.URLParam(r, "id"), r.PostFormValue("decision")
		if verb != "approve" && verb != "deny" {
			c.render(w, r, http.StatusBadRequest, "refusal", page{Title: "Bad request", Refusal: &refusal{Status: 400, Param: "decision", Detail: "want approve or deny"}})
			return
		}
		body, _ := json.Marshal(api.Decision{Reason: r.PostFormValue("reason")})
		out := c.callBody(r, http.MethodPost, "/v1/"+kind+"/"+url.PathEscape(id)+"/"+verb, body)
		what := map[string]string{"approvals": "Approval", "access-requests": "Access request"}[kind]
		notice, failed := what+" "+id+": "+map[string]string{"approve": "approved", "deny": "denied"}[verb], false
		if out.status != http.StatusOK {
			var p api.Problem
			if json.Unmarshal(out.body.Bytes(), &p) != nil || p.Detail == "" {
				p.Detail = http.StatusText(out.status)
			}
			notice, failed = what+" "+id+" not decided: "+p.Detail, true
		}
		if r.Header.Get("HX-Request") != "true" {
			if failed {
				c.refusedBy(w, r, out)
				return
			}
			http.Redirect(w, r, "/console/inbox", http.StatusSeeOther)
			return
		}
		in, out2 := c.pending(r, r.PostFormValue("view"))
		if out2 != nil {
			c.refusedBy(w, r, out2)
			return
		}
		in.Notice, in.NoticeFail = notice, failed
		c.render(w, r, http.StatusOK, "pending", page{Inbox: in})
	}
}

// callBody runs a state-changing API route as the session's person.
func (c *Console) callBody(r *http.Request, method, path string, body []byte) *capture {
	s := sessionFrom(r.Context())
	// A fresh routing context: the API routes the call on its own.
	req := r.Clone(context.WithValue(r.Context(), chi.RouteCtxKey, nil))
	req.Method = method
	req.Body = http.NoBody
	if body != nil {
		req.Body = readCloser{bytes.NewReader(body)}
	}
	req.ContentLength = int64(len(body))
	req.URL = &url.URL{Path: path}
	req.RequestURI = path
	req.Header = http.Header{"Authorization": {"Bearer " + s.token}, "User-Agent": {"auditledger-console"}, "Content-Type": {"application/json"}}
	out := &capture{hdr: http.Header{}}
	c.cfg.API.ServeHTTP(out, req)
	if out.status == 0 {
		out.status = http.StatusOK
	}
	return out
}

type readCloser struct{ *bytes.Reader }

func (readCloser) Close() error { return nil }

// until formats how long until t, for expiries.
func until(t time.Time) string {
	d := time.Until(t).Round(time.Second)
	if d <= 0 {
		return "expired"
	}
	return "in " + d.String()
}
