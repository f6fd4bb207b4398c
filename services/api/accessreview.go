package api

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/auditledger/auditledger/events"
	"github.com/auditledger/auditledger/services/access"
)

// Access reviews (ISO/IEC 27001:2022 5.18): GET /v1/access-reviews lists
// the just-in-time grants a tenant's identities held in a period
// (services/access.Review: only the access broker's signed grants count;
// other records are listed as unverified, with why); POST signs the
// listing off as the authenticated caller, recorded as access.reviewed.
// A review covers every target of the tenant, so both need the tenant in
// scope and every target (a target scope of "*"). The listing is served
// to the approver, security and auditor roles, each read recorded as
// audit.accessed before it is sent; a sign-off needs the approver or
// security role, and a reviewer who held (or claimed) a grant in the
// period is refused. Every refusal is recorded (command.blocked).

// AccessReviewSignOff is the body of POST /v1/access-reviews.
type AccessReviewSignOff struct {
	Reason string `json:"reason"`
	// ListingSHA256, when given, must be the SHA-256 of the listing as
	// GET serves it now: the reviewer signs off what they read.
	ListingSHA256 string `json:"listing_sha256,omitempty"`
}

// AccessReviewed is the answer to a sign-off: the access.reviewed
// record's id and payload members.
type AccessReviewed struct {
	EventID       string    `json:"event_id"`
	Tenant        string    `json:"tenant"`
	From          time.Time `json:"from"`
	To            time.Time `json:"to"`
	Grants        int       `json:"grants"`
	Holders       int       `json:"holders"`
	Unverified    int       `json:"unverified"`
	Sessions      int       `json:"sessions"`
	BreakGlass    int       `json:"break_glass"`
	ListingSHA256 string    `json:"listing_sha256"`
	By            string    `json:"by"`
}

// errListingChanged: the listing a sign-off names is not the current one.
var errListingChanged = errors.New("the listing changed since it was read")

// reviewPeriod reads tenant, from and to (RFC 3339, or YYYY-MM-DD for
// midnight UTC) and checks the caller's scope: the tenant, and every
// target. False: refused, the answer written.
func (a *api) reviewPeriod(w http.ResponseWriter, r *http.Request) (tenant string, from, to time.Time, ok bool) {
	q := r.URL.Query()
	tenant = q.Get("tenant")
	if tenant == "" {
		a.fail(w, r, badParam("tenant", "required: the tenant whose grants are reviewed"))
		return "", from, to, false
	}
	if err := checkTenant(tenant); err != nil {
		a.fail(w, r, err)
		return "", from, to, false
	}
	for _, p := range []struct {
		name string
		t    *time.Time
	}{{"from", &from}, {"to", &to}} {
		v := q.Get(p.name)
		t, err := time.Parse(time.RFC3339, v)
		if err != nil {
			t, err = time.Parse(time.DateOnly, v)
		}
		if err != nil {
			a.fail(w, r, badParam(p.name, "%q is not an RFC 3339 time or a date (2026-12-01)", v))
			return "", from, to, false
		}
		*p.t = t.UTC()
	}
	if !from.Before(to) {
		a.fail(w, r, badParam("to", "%s is not after from %s", to.Format(time.RFC3339), from.Format(time.RFC3339)))
		return "", from, to, false
	}
	if !a.checkTenantScope(w, r, tenant) {
		return "", from, to, false
	}
	if s := a.scopeOf(r); !s.allTargets {
		a.refuse(w, r, &scopeError{what: fmt.Sprintf("an access review of tenant %q covers every target and needs the target scope %s*", tenant, a.cfg.Scope.TargetPrefix),
			scope: s, tenants: []string{tenant}})
		return "", from, to, false
	}
	return tenant, from, to, true
}

// listing reads the review's listing with the broker's key and brokers.
func (a *api) listing(r *http.Request, tenant string, from, to time.Time) (*access.Listing, error) {
	return access.Review(r.Context(), a.read, tenant, from, to, a.cfg.Access.ReviewConfig())
}

// listAccessReview answers the listing: its exact bytes, whose SHA-256 a
// sign-off covers, recorded as audit.accessed first.
func (a *api) listAccessReview(w http.ResponseWriter, r *http.Request) {
	tenant, from, to, ok := a.reviewPeriod(w, r)
	if !ok {
		return
	}
	l, err := a.listing(r, tenant, from, to)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	ids := make([]string, len(l.Grants))
	for i, g := range l.Grants {
		ids[i] = g.AccessID
	}
	body := l.Bytes()
	sum := sha256.Sum256(body)
	if err := a.accessed(r, tenant, map[string]any{"resource": "access-review", "from": from, "to": to, "count": len(l.Grants), "ids": ids,
		"unverified": len(l.Unverified), "ssh_certificates": len(l.SSHCertificates), "listing_sha256": hex.EncodeToString(sum[:])}); err != nil {
		a.fail(w, r, err)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusOK)
	w.Write(body)
}

// signOffAccessReview records the caller's sign-off of the current
// listing as access.reviewed, stored before the answer.
func (a *api) signOffAccessReview(w http.ResponseWriter, r *http.Request) {
	tenant, from, to, ok := a.reviewPeriod(w, r)
	if !ok {
		return
	}
	var so AccessReviewSignOff
	if !a.decodeBody(w, r, &so, `{"reason": "...", "listing_sha256": "..."}`) {
		return
	}
	if strings.TrimSpace(so.Reason) == "" {
		a.fail(w, r, fmt.Errorf("%w: a reason is required to sign an access review off (the reviewer's conclusion)", errBadRequest))
		return
	}
	l, err := a.listing(r, tenant, from, to)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	digest := l.SHA256()
	if so.ListingSHA256 != "" && !strings.EqualFold(so.ListingSHA256, digest) {
		a.fail(w, r, fmt.Errorf("%w: listing_sha256 %s, now %s; read it again and sign off what you read", errListingChanged, so.ListingSHA256, digest))
		return
	}
	who := a.sealActor(r.Context(), a.actorIn(actorOf(r.Context()), tenant), tenant)
	if l.HeldBy(who) {
		err := fmt.Errorf("%w: %w (%s, tenant %s, %s to %s)", errForbidden, access.ErrHolder, who.Subject, tenant, from.Format(time.RFC3339), to.Format(time.RFC3339))
		a.recordAsync(r, events.CommandBlocked, who, tenant, map[string]any{"reason": err.Error()})
		a.fail(w, r, err)
		return
	}
	c := l.Counts()
	out := AccessReviewed{Tenant: tenant, From: from, To: to, Grants: c.Grants, Holders: c.Holders, Unverified: c.Unverified,
		Sessions: c.Sessions, BreakGlass: c.BreakGlass, ListingSHA256: digest, By: who.Subject}
	ev, err := a.event(r, events.AccessReviewed, who, tenant, map[string]any{"tenant": tenant, "from": from.Format(time.RFC3339), "to": to.Format(time.RFC3339),
		"grants": c.Grants, "holders": c.Holders, "unverified": c.Unverified, "sessions": c.Sessions, "break_glass": c.BreakGlass,
		"listing_sha256": digest, "reason": so.Reason, "by": who.Subject})
	if err != nil {
		a.fail(w, r, err)
		return
	}
	// The same sign-off retried is one event.
	id := sha256.Sum256([]byte(digest + "\n" + who.Issuer + "\n" + who.Subject + "\n" + so.Reason))
	ev.ID = "access-review/" + hex.EncodeToString(id[:16])
	ev.Target = &events.Target{Kind: "access-review", Name: tenant}
	out.EventID = ev.ID
	res, _ := a.cfg.Emitter.EmitAlone(r.Context(), ev)
	if err := res.Stored(false); err != nil {
		a.cfg.Logger.Error("access.reviewed not recorded: sign-off refused", "event_id", ev.ID, "err", err)
		a.fail(w, r, fmt.Errorf("%w: the sign-off: %v", errNotAudited, err))
		return
	}
	writeJSON(w, http.StatusOK, out)
}
