package api

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/auditledger/auditledger/events"
	"github.com/auditledger/auditledger/ledger/piikeys"
	"github.com/auditledger/auditledger/projections"
	"github.com/auditledger/auditledger/services/approvals"
	"github.com/auditledger/auditledger/services/gateway"
)

// Sealed fields (docs/FORMAT.md §1.6): the API seals the e-mail of the
// actor of its own events, and opens the sealed e-mail of the events it
// returns, beside the exact record (which stays as sealed).

// Shown in place of an e-mail that cannot be opened.
const (
	// ErasedEmail: the subject was erased (their key destroyed).
	ErasedEmail = "(erased)"
	// SealedEmail: the API has no key store to open it with.
	SealedEmail = "(sealed)"
	// UnreadableEmail: the key store could not open it (unreachable,
	// or the field is damaged); the API's log says why.
	UnreadableEmail = "(unreadable)"
)

// sealActor is actor as the API's events carry it: the e-mail sealed
// under the subject's key, or left out without a key store or when the
// key cannot be had — never in clear; then a personal subject or group
// as the gateways record it (gateway.RecordedActor), so that the API's
// decider and a gateway's requester compare alike.
func (a *api) sealActor(ctx context.Context, actor events.Actor, tenant string) events.Actor {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	actor, err := gateway.SealActor(ctx, a.cfg.Keys, tenant, actor)
	if err != nil {
		a.cfg.Logger.Warn("actor recorded in part", "tenant", tenant, "err", err)
	}
	return actor
}

// opener opens the sealed e-mails of one answer, each token once.
type opener struct {
	a    *api
	ctx  context.Context
	seen map[string]string
}

func (a *api) opener(ctx context.Context) *opener {
	return &opener{a: a, ctx: ctx, seen: map[string]string{}}
}

// actorEmail is the e-mail of the actor of event (its JSON), as a reader
// sees it: opened when sealed, ErasedEmail once the subject was erased,
// as recorded when plain, empty when there is none.
func (o *opener) actorEmail(tenant string, event []byte) string {
	// Most events carry no e-mail at all, and then are not worth
	// decoding: no key "email", written plainly or with an escape.
	if !bytes.Contains(event, []byte(`"email"`)) && !bytes.Contains(event, []byte(`\u`)) {
		return ""
	}
	var ev struct {
		Actor struct {
			Email string `json:"email"`
		} `json:"actor"`
	}
	if json.Unmarshal(event, &ev) != nil {
		return ""
	}
	return o.email(tenant, ev.Actor.Email)
}

// email is an actor e-mail as recorded (tok), as a reader sees it.
func (o *opener) email(tenant, tok string) string {
	if tok == "" {
		return ""
	}
	if _, _, ok := piikeys.ParseToken(tok); !ok {
		return tok
	}
	if v, ok := o.seen[tenant+"\n"+tok]; ok {
		return v
	}
	v := SealedEmail
	if o.a.cfg.Keys != nil {
		var err error
		v, err = o.a.cfg.Keys.Unseal(o.ctx, tenant, gateway.FieldActorEmail, tok)
		switch {
		case errors.Is(err, piikeys.ErrErased):
			v = ErasedEmail
		case err != nil:
			o.a.cfg.Logger.Warn("sealed actor e-mail not opened", "tenant", tenant, "err", err)
			v = UnreadableEmail
		}
	}
	o.seen[tenant+"\n"+tok] = v
	return v
}

// emailSealers is the subjects, within tenants (nil: every tenant with a
// search key), whose actor e-mail was sealed as email, their key live: an
// e-mail filter finds their sealed events by pseudonym. An erased
// subject is not among them. A key store that cannot answer fails the
// search rather than leave sealed events out unsaid.
func (a *api) emailSealers(r *http.Request, tenants []string, email string) ([]projections.Sealer, error) {
	if tenants == nil {
		list, err := a.cfg.Keys.TenantKeyList(r.Context())
		if err != nil {
			return nil, fmt.Errorf("%w: listing the tenants' search keys: %v", errKeysUnavailable, err)
		}
		for _, k := range list {
			tenants = append(tenants, k.Tenant)
		}
	}
	var out []projections.Sealer
	for _, t := range tenants {
		ps, err := a.cfg.Keys.Sealers(r.Context(), t, gateway.FieldActorEmail, email)
		if err != nil {
			return nil, fmt.Errorf("%w: tenant %q: %v", errKeysUnavailable, t, err)
		}
		for _, p := range ps {
			out = append(out, projections.Sealer{Tenant: t, Pseudonym: p})
		}
	}
	return out, nil
}

// ApprovalResult is an approval request as the API returns it: the
// request as the approvals bucket holds it (its actors' e-mails sealed),
// and, for a caller holding the auditor or security role, the e-mails
// opened as the event reads open them. An approver alone is shown the
// subjects, not the e-mails.
type ApprovalResult struct {
	*approvals.Request
	RequesterEmail string `json:"requester_email,omitempty"`
	DeciderEmail   string `json:"decider_email,omitempty"`
}

func (a *api) approvalResult(r *http.Request, o *opener, q *approvals.Request) ApprovalResult {
	res := ApprovalResult{Request: q}
	if !a.holds(actorOf(r.Context()), Auditor, Security) {
		return res
	}
	res.RequesterEmail = o.email(q.Tenant, q.Requester.Email)
	if q.Decider != nil {
		res.DeciderEmail = o.email(q.Tenant, q.Decider.Email)
	}
	return res
}

// OpenRequest is the body of POST /v1/sealed/open: sealed actor e-mails
// (docs/FORMAT.md §1.6) as records hold them, each with its event's
// tenant, for tools that read records elsewhere (auditledger log, tail).
type OpenRequest struct {
	Fields []SealedField `json:"fields"`
}

// SealedField is one sealed actor e-mail and its event's tenant.
type SealedField struct {
	Tenant string `json:"tenant"`
	Token  string `json:"token"`
}

// OpenResult is the answer: Values in the order of the request's
// fields, each the e-mail, ErasedEmail, SealedEmail or UnreadableEmail.
type OpenResult struct {
	Values []string `json:"values"`
}

// MaxOpen is the most fields one request opens.
const MaxOpen = 1000

// openSealed answers POST /v1/sealed/open, for the auditor and security
// roles, within the caller's tenants (a field of another tenant refuses
// the whole request, recorded). Each request is recorded as
// audit.accessed per tenant, naming the pseudonyms opened, never the
// e-mails.
func (a *api) openSealed(w http.ResponseWriter, r *http.Request) {
	var req OpenRequest
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, 1<<20))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil {
		a.fail(w, r, fmt.Errorf("%w: body: %v (want {\"fields\": [{\"tenant\", \"token\"}]})", errBadRequest, err))
		return
	}
	if len(req.Fields) == 0 || len(req.Fields) > MaxOpen {
		a.fail(w, r, badParam("fields", "%d fields: want 1 to %d", len(req.Fields), MaxOpen))
		return
	}
	sc := a.scopeOf(r)
	var outside []string
	for i, f := range req.Fields {
		if err := checkTenant(f.Tenant); err != nil {
			a.fail(w, r, badParam("fields", "field %d: %v", i, err))
			return
		}
		if _, _, ok := piikeys.ParseToken(f.Token); !ok {
			a.fail(w, r, badParam("fields", "field %d: not a sealed field (%s<32 hex>.<base64url>)", i, piikeys.TokenPrefix))
			return
		}
		if !sc.tenant(f.Tenant) {
			outside = append(outside, f.Tenant)
		}
	}
	if len(outside) > 0 {
		a.refuse(w, r, &scopeError{what: "sealed fields of tenants " + strings.Join(slices.Compact(slices.Sorted(slices.Values(outside))), ", "), scope: sc, tenants: outside})
		return
	}
	var parts []part
	byTenant := map[string]int{}
	for _, f := range req.Fields {
		j, ok := byTenant[f.Tenant]
		if !ok {
			j, byTenant[f.Tenant] = len(parts), len(parts)
			parts = append(parts, part{f.Tenant, map[string]any{"resource": "sealed", "field": gateway.FieldActorEmail, "count": 0, "pseudonyms": []string{}}})
		}
		p := parts[j].payload
		pseudonym, _, _ := piikeys.ParseToken(f.Token)
		p["count"] = p["count"].(int) + 1
		if ps := p["pseudonyms"].([]string); !slices.Contains(ps, pseudonym) {
			p["pseudonyms"] = append(ps, pseudonym)
		}
	}
	if err := a.accessedParts(r, parts); err != nil {
		a.fail(w, r, err)
		return
	}
	o := a.opener(r.Context())
	res := OpenResult{Values: make([]string, len(req.Fields))}
	for i, f := range req.Fields {
		res.Values[i] = o.email(f.Tenant, f.Token)
	}
	writeJSON(w, http.StatusOK, res)
}
