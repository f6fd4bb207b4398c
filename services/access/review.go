package access

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/auditledger/auditledger/events"
	"github.com/auditledger/auditledger/ledger"
	"github.com/auditledger/auditledger/projections"
	"github.com/auditledger/auditledger/services/identity"
)

// Access reviews (ISO/IEC 27001:2022 5.18): who held which just-in-time
// grants in a period, and the sessions each admitted, read from the
// projection (docs/FORMAT.md §13.1). A record counts as a grant only when
// it is the access broker's: published by one of its source instances,
// and carrying the grant's signed note, which verifies under the broker's
// key exactly as gateways verify grants. Every other record under
// access.granted is listed as unverified, with why — never counted,
// never dropped. SSH user certificates (ssh.certificate.issued, and
// access.granted with grant "ssh-user-certificate" as earlier releases
// recorded them) are listed apart: a certificate is a credential, not a
// grant.

// ReviewedGrant is one verified grant of a listing.
type ReviewedGrant struct {
	AccessID       string    `json:"access_id"`
	Holder         string    `json:"holder"`
	Target         string    `json:"target"`
	Rule           string    `json:"rule"`
	NotBefore      time.Time `json:"not_before"`
	NotAfter       time.Time `json:"not_after"`
	RevokedAt      time.Time `json:"revoked_at,omitzero"`
	Approvers      []string  `json:"approvers"`
	BreakGlass     bool      `json:"break_glass"`
	ReviewRequired bool      `json:"review_required"`
	Sessions       int64     `json:"sessions"`
	GrantIndex     uint64    `json:"grant_index"`

	holder events.Actor
}

// UnverifiedGrant is a record under access.granted that is not counted as
// a grant, with why.
type UnverifiedGrant struct {
	RecordIndex uint64 `json:"record_index"`
	AccessID    string `json:"access_id"`
	Holder      string `json:"holder"`
	Target      string `json:"target"`
	NotBefore   string `json:"not_before"`
	NotAfter    string `json:"not_after"`
	Source      string `json:"source"` // kind/instance, as recorded
	Reason      string `json:"reason"`

	holder events.Actor
}

// IssuedCertificate is an SSH user certificate the SSH gateway issued.
type IssuedCertificate struct {
	RecordIndex uint64    `json:"record_index"`
	RecordedAs  string    `json:"recorded_as"` // the record's type
	Holder      string    `json:"holder"`
	Serial      string    `json:"serial"`
	Principals  []string  `json:"principals"`
	IssuedAt    time.Time `json:"issued_at"`
	ValidBefore string    `json:"valid_before"`
}

// Listing is an access review's listing: the tenant, the period [From,
// To), the grants by holder then start, then the records that are not
// counted, and the SSH certificates issued, by ledger index.
type Listing struct {
	Tenant          string              `json:"tenant"`
	From            time.Time           `json:"from"`
	To              time.Time           `json:"to"`
	Grants          []ReviewedGrant     `json:"grants"`
	Unverified      []UnverifiedGrant   `json:"unverified"`
	SSHCertificates []IssuedCertificate `json:"ssh_certificates"`
}

// Bytes is the listing as the API serves it: the exact bytes a sign-off's
// listing_sha256 covers (Go's encoding/json, two-space indentation, a
// final newline).
func (l *Listing) Bytes() []byte {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetIndent("", "  ")
	_ = enc.Encode(l) // plain values only
	return b.Bytes()
}

// SHA256 is the lowercase hex SHA-256 of Bytes.
func (l *Listing) SHA256() string {
	sum := sha256.Sum256(l.Bytes())
	return hex.EncodeToString(sum[:])
}

// HeldBy reports whether who is the holder of a grant in the listing,
// verified or not (a reviewer may not sign off a period in which they
// held, or claimed, a grant).
func (l *Listing) HeldBy(who events.Actor) bool {
	for _, g := range l.Grants {
		if identity.Same(who, g.holder) {
			return true
		}
	}
	for _, u := range l.Unverified {
		if identity.Same(who, u.holder) {
			return true
		}
	}
	return false
}

// Counts are a listing's totals, as access.reviewed records them.
type Counts struct {
	Grants, Holders, Unverified, Sessions, BreakGlass int
}

// Counts counts the listing's grants, their distinct holders, sessions
// and break-glass grants, and the unverified records.
func (l *Listing) Counts() Counts {
	c := Counts{Grants: len(l.Grants), Unverified: len(l.Unverified)}
	holders := map[string]bool{}
	for _, g := range l.Grants {
		holders[g.Holder] = true
		c.Sessions += int(g.Sessions)
		if g.BreakGlass {
			c.BreakGlass++
		}
	}
	c.Holders = len(holders)
	return c
}

// ReviewConfig says whose grants an access review counts.
type ReviewConfig struct {
	// Verifier opens the grants' signed notes: the broker's key
	// (approvals.vkey). Required.
	Verifier *ledger.NoteVerifier
	// Brokers are the source instances of the access brokers (the api
	// role's instances): a grant published by any other is not counted.
	Brokers []string
}

// recordSlack: a grant is recorded a moment after it is signed, so a
// record up to this long after the period may hold a grant inside it.
const recordSlack = time.Hour

// Review reads the listing of tenant's grants whose window overlaps
// [from, to), judging every record (FORMAT §13.1).
func Review(ctx context.Context, rd *projections.Reader, tenant string, from, to time.Time, cfg ReviewConfig) (*Listing, error) {
	if cfg.Verifier == nil {
		return nil, ErrNoKey
	}
	from, to = from.UTC(), to.UTC()
	recs, err := rd.GrantRecords(ctx, tenant, to.Add(recordSlack))
	if err != nil {
		return nil, err
	}
	l := &Listing{Tenant: tenant, From: from, To: to, Grants: []ReviewedGrant{}, Unverified: []UnverifiedGrant{}, SSHCertificates: []IssuedCertificate{}}
	counted := map[string]uint64{} // access id → the index of the record that counts
	for _, rec := range recs {
		var p grantPayload
		perr := json.Unmarshal(rec.Payload, &p)
		if rec.Type == string(events.SSHCertificateIssued) || perr == nil && rec.Type == string(events.AccessGranted) && p.Grant == "ssh-user-certificate" {
			if c, ok := certificate(rec, &p, from, to); ok {
				l.SSHCertificates = append(l.SSHCertificates, c)
			}
			continue
		}
		holder := events.Actor{Issuer: p.Requester.Issuer, Subject: p.Requester.Subject}
		nb, nbErr := time.Parse(time.RFC3339, p.NotBefore)
		na, naErr := time.Parse(time.RFC3339, p.NotAfter)
		if nbErr == nil && naErr == nil {
			if !nb.Before(to) || !na.After(from) {
				continue
			}
		} else if rec.Time.Before(from) || !rec.Time.Before(to) {
			continue // no window: judged by when it was recorded
		}
		why := ""
		switch {
		case perr != nil:
			why = "the payload is not a grant's: " + perr.Error()
		case p.Grant != "just-in-time":
			why = fmt.Sprintf("not a just-in-time grant (grant %q)", p.Grant)
		case rec.SourceKind != "api" || !slices.Contains(cfg.Brokers, rec.SourceInstance):
			why = fmt.Sprintf("published by %s/%s, not by the access broker (api instance %s)", rec.SourceKind, rec.SourceInstance, strings.Join(cfg.Brokers, ", "))
		case nbErr != nil || naErr != nil:
			why = "its window is not two RFC 3339 times"
		case p.Signature == "":
			why = "it carries no grant signature"
		case counted[p.AccessID] != 0:
			why = fmt.Sprintf("another record of grant %s (index %d) is counted", p.AccessID, counted[p.AccessID])
		default:
			r := &Request{ID: p.AccessID, Tenant: tenant, Rule: p.Rule, Requester: holder, Target: p.Target,
				NotBefore: nb.UTC(), NotAfter: na.UTC(), BreakGlass: p.BreakGlass, Signature: p.Signature}
			if err := Verify(cfg.Verifier, r); err != nil {
				why = "its grant signature does not verify: " + err.Error()
			}
		}
		if why != "" {
			l.Unverified = append(l.Unverified, UnverifiedGrant{RecordIndex: rec.Index, AccessID: p.AccessID, Holder: p.Requester.Subject,
				Target: p.Target, NotBefore: p.NotBefore, NotAfter: p.NotAfter, Source: rec.SourceKind + "/" + rec.SourceInstance, Reason: why, holder: holder})
			continue
		}
		counted[p.AccessID] = rec.Index
		l.Grants = append(l.Grants, ReviewedGrant{AccessID: p.AccessID, Holder: holder.Subject, Target: p.Target, Rule: p.Rule,
			NotBefore: nb.UTC(), NotAfter: na.UTC(), Approvers: []string{}, BreakGlass: p.BreakGlass, ReviewRequired: p.BreakGlass,
			GrantIndex: rec.Index, holder: holder})
	}
	ids := make([]string, len(l.Grants))
	for i, g := range l.Grants {
		ids[i] = g.AccessID
	}
	acts, err := rd.GrantActivities(ctx, tenant, ids)
	if err != nil {
		return nil, err
	}
	for i := range l.Grants {
		g := &l.Grants[i]
		a := acts[g.AccessID]
		if a.Approvers != nil {
			g.Approvers = a.Approvers
		}
		g.Sessions = a.Sessions
		if !a.Revoked.IsZero() && a.Revoked.Before(g.NotAfter) {
			g.RevokedAt = a.Revoked
		}
	}
	slices.SortStableFunc(l.Grants, func(x, y ReviewedGrant) int {
		if c := strings.Compare(x.Holder, y.Holder); c != 0 {
			return c
		}
		if c := x.NotBefore.Compare(y.NotBefore); c != 0 {
			return c
		}
		return strings.Compare(x.AccessID, y.AccessID)
	})
	return l, nil
}

// grantPayload is the members of an access.granted (or
// ssh.certificate.issued) payload a review reads.
type grantPayload struct {
	Grant     string `json:"grant"`
	AccessID  string `json:"access_id"`
	Rule      string `json:"rule"`
	Target    string `json:"target"`
	Requester struct {
		Issuer  string `json:"issuer"`
		Subject string `json:"subject"`
	} `json:"requester"`
	NotBefore  string `json:"not_before"`
	NotAfter   string `json:"not_after"`
	BreakGlass bool   `json:"break_glass"`
	Signature  string `json:"signature"`
	// SSH certificates.
	Serial      string   `json:"serial"`
	Principals  []string `json:"principals"`
	ValidBefore string   `json:"valid_before"`
}

// certificate reads an SSH certificate's issuance, if it was valid in
// [from, to): issued before to, valid until after from (a validity that
// does not parse: issued inside the period).
func certificate(rec projections.GrantRecord, p *grantPayload, from, to time.Time) (IssuedCertificate, bool) {
	if !rec.Time.Before(to) {
		return IssuedCertificate{}, false
	}
	if vb, err := time.Parse(time.RFC3339, p.ValidBefore); err == nil && !vb.After(from) || err != nil && rec.Time.Before(from) {
		return IssuedCertificate{}, false
	}
	principals := p.Principals
	if principals == nil {
		principals = []string{}
	}
	return IssuedCertificate{RecordIndex: rec.Index, RecordedAs: rec.Type, Holder: rec.ActorSubject, Serial: p.Serial,
		Principals: principals, IssuedAt: rec.Time, ValidBefore: p.ValidBefore}, true
}

// ErrHolder: the reviewer held a grant in the period reviewed.
var ErrHolder = errors.New("the reviewer held a grant in the period and may not sign its review off: another reviewer must")
