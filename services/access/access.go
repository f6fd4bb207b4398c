// Package access is just-in-time access: a person or agent asks for a
// target for a bounded time with a reason; reviewers from the groups an
// access rule names approve or deny (never the requester); the grant has a
// start and an end no later than the rule allows, and every gateway admits
// a session to a target that needs a grant only inside a live grant for
// that identity, ending it when the grant ends or is revoked.
//
// Requests live in the JetStream key-value bucket AUDIT_ACCESS (working
// state; the ledger holds the record). Every change is a compare-and-swap
// on the request's revision, and every transition is an event recorded by
// the API (access.requested, access.approved, access.denied,
// access.granted, access.revoked, access.expired). Anyone with producer
// credentials can write the bucket, so a grant counts only if the API
// signed it: a C2SP signed note over GrantText, which gateways open with
// the API's verifier key (approvals.vkey). A grant that does not verify is
// refused and recorded.
package access

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/auditledger/auditledger/events"
	"github.com/auditledger/auditledger/events/detect"
	"github.com/auditledger/auditledger/ledger"
	"github.com/auditledger/auditledger/ledger/bus"
	"github.com/auditledger/auditledger/ledger/bus/emitter"
	"github.com/auditledger/auditledger/services/identity"
	"github.com/auditledger/auditledger/services/internal/kvrecord"
)

// Bucket is the key-value bucket holding access requests.
const Bucket = bus.AccessBucket

// Status is where a request stands.
type Status string

// Statuses. Pending becomes Approved (the grant, signed), Denied or
// Expired; Approved becomes Used (a gateway admitted a session on it),
// and Approved or Used become Expired (the grant ended) or Revoked.
const (
	Pending  Status = "pending"
	Approved Status = "approved"
	Denied   Status = "denied"
	Expired  Status = "expired"
	Revoked  Status = "revoked"
	Used     Status = "used"
)

// Live reports whether s is a grant's status (it still has to be inside
// its window and verify).
func (s Status) Live() bool { return s == Approved || s == Used }

var (
	ErrNotFound = errors.New("no such access request")
	// ErrNoBucket: the access bucket does not exist yet; the api role
	// creates it.
	ErrNoBucket = errors.New("the access bucket " + Bucket + " does not exist yet: the api role creates it")
	// ErrSelfApproval: the reviewer is the requester.
	ErrSelfApproval = errors.New("the requester cannot approve or deny their own access request")
	// ErrNotReviewer: the reviewer is in none of the rule's approver
	// groups (or, for break-glass, its break-glass groups).
	ErrNotReviewer = errors.New("not in a group the access rule names")
	// ErrInvalid: the request is not one the rules allow (no rule covers
	// the target, too long, no reason, a start in the past).
	ErrInvalid = errors.New("invalid access request")
	// ErrState: the request is not in a state that allows the change.
	ErrState = errors.New("the access request's state does not allow this")
	// ErrNoKey: no key to sign (API) or check (gateways) grants with.
	ErrNoKey = errors.New("no approvals key configured to sign or check access grants")
)

// Decision is one reviewer's approval, denial or revocation.
type Decision struct {
	Actor  events.Actor `json:"actor"`
	Reason string       `json:"reason"`
	At     time.Time    `json:"at"`
}

// Request is one access request as stored in the bucket.
type Request struct {
	ID        string       `json:"id"`
	Tenant    string       `json:"tenant"`
	Rule      string       `json:"rule"`
	Requester events.Actor `json:"requester"`
	Target    string       `json:"target"` // the target's name (events' target.name)
	Reason    string       `json:"reason"`
	// Start is when the window asked for begins; zero: when granted.
	Start       time.Time `json:"start,omitzero"`
	DurationSec int64     `json:"duration_seconds"`
	RequestedAt time.Time `json:"requested_at"`
	// ExpiresAt is when a pending request expires: its start, or the
	// rule's pending timeout after the request when it names none.
	ExpiresAt  time.Time  `json:"expires_at"`
	Status     Status     `json:"status"`
	BreakGlass bool       `json:"break_glass,omitempty"`
	Approvals  []Decision `json:"approvals,omitempty"`
	// Decision ends the request: the denial, revocation or expiry (its
	// actor the system for an expiry).
	Decision *Decision `json:"decision,omitempty"`
	// The grant: its window, when it was granted, and the API's signed
	// note over GrantText.
	NotBefore time.Time `json:"not_before,omitzero"`
	NotAfter  time.Time `json:"not_after,omitzero"`
	GrantedAt time.Time `json:"granted_at,omitzero"`
	Signature string    `json:"signature,omitempty"`
	UsedAt    time.Time `json:"used_at,omitzero"`
}

// Duration is the length of the window asked for.
func (r *Request) Duration() time.Duration { return time.Duration(r.DurationSec) * time.Second }

// LiveAt reports whether r is a grant in force at t (its signature
// aside): approved or used, not_before <= t < not_after.
func (r *Request) LiveAt(t time.Time) bool {
	return r.Status.Live() && !t.Before(r.NotBefore) && t.Before(r.NotAfter)
}

// GrantText is the statement the API signs for a grant: canonical JSON
// (these fields in this order, Go's encoding, times in RFC 3339 UTC) and
// a newline. The status is not in it: a grant marked used is the same
// grant.
func GrantText(r *Request) []byte {
	return events.GrantText(events.Grant{ID: r.ID, Tenant: r.Tenant, Rule: r.Rule,
		Requester: events.Actor{Issuer: r.Requester.Issuer, Subject: r.Requester.Subject}, Target: r.Target,
		NotBefore: r.NotBefore, NotAfter: r.NotAfter, BreakGlass: r.BreakGlass})
}

// Verify checks that r's grant is the API's: its signature opens with v
// and says exactly GrantText(r).
func Verify(v *ledger.NoteVerifier, r *Request) error {
	if v == nil {
		return ErrNoKey
	}
	text, err := v.OpenNote([]byte(r.Signature))
	if err != nil {
		return fmt.Errorf("no valid signature by %s: %w", v.Name(), err)
	}
	if string(text) != string(GrantText(r)) {
		return errors.New("the signed grant is for another request, identity, target or window")
	}
	return nil
}

// NewID returns a fresh request id, short enough to type.
func NewID() string { return "acc-" + detect.RandomHex(6) }

// Config configures a Broker (the API's side).
type Config struct {
	JetStream jetstream.JetStream // required
	Emitter   *emitter.Emitter    // required: every transition is recorded
	Source    events.Source       // who records the events
	Signer    *ledger.NoteSigner  // signs grants; required
	Rules     Rules               // the access rules the API applies
	// Peers are the source instances of the other api instances signing
	// grants with the same key: an access review counts their grants as
	// this broker's (its own instance always counts).
	Peers []string
	// Create makes the bucket (the API role).
	Create   bool
	Replicas int              // of the bucket; zero means 1
	Now      func() time.Time // nil: time.Now
	Logger   *slog.Logger     // nil: slog.Default()
}

// Broker opens, decides, revokes and expires access requests.
type Broker struct {
	cfg Config
	kv  jetstream.KeyValue
}

// History is how many revisions of a request the bucket keeps.
const history = 8

// OpenBucket creates (create) or opens the access bucket.
func OpenBucket(ctx context.Context, js jetstream.JetStream, create bool, replicas int) (jetstream.KeyValue, error) {
	if !create {
		kv, err := js.KeyValue(ctx, Bucket)
		if errors.Is(err, jetstream.ErrBucketNotFound) {
			return nil, fmt.Errorf("access: %w", ErrNoBucket)
		}
		if err != nil {
			return nil, fmt.Errorf("access: bucket %s: %w", Bucket, err)
		}
		return kv, nil
	}
	if replicas == 0 {
		replicas = 1
	}
	kv, err := bus.CreateOrUpdateKeyValue(ctx, js, jetstream.KeyValueConfig{
		Bucket:      Bucket,
		Description: "auditledger just-in-time access requests and grants (working state; the ledger holds the record)",
		History:     history,
		Storage:     jetstream.FileStorage,
		Replicas:    replicas,
	})
	if err != nil {
		return nil, fmt.Errorf("access: bucket %s: %w", Bucket, err)
	}
	return kv, nil
}

// New creates or opens the bucket.
func New(ctx context.Context, cfg Config) (*Broker, error) {
	if cfg.JetStream == nil || cfg.Emitter == nil || cfg.Source.Kind == "" {
		return nil, errors.New("access: JetStream, Emitter and Source are required")
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	kv, err := OpenBucket(ctx, cfg.JetStream, cfg.Create, cfg.Replicas)
	if err != nil {
		return nil, err
	}
	return &Broker{cfg: cfg, kv: kv}, nil
}

// Rules are the rules the broker applies.
func (b *Broker) Rules() Rules { return b.cfg.Rules }

// ReviewConfig is what an access review needs to count this broker's
// grants: its key, and its and its peers' source instances.
func (b *Broker) ReviewConfig() ReviewConfig {
	rc := ReviewConfig{Brokers: append([]string{b.cfg.Source.Instance}, b.cfg.Peers...)}
	if b.cfg.Signer != nil {
		rc.Verifier = b.cfg.Signer.Verifier()
	}
	return rc
}

func (b *Broker) now() time.Time { return b.cfg.Now().UTC().Truncate(time.Second) }

func (b *Broker) get(ctx context.Context, id string) (*Request, uint64, error) {
	return kvrecord.Get[Request](ctx, b.kv, "access request", id, ErrNotFound)
}

// Get returns one request.
func (b *Broker) Get(ctx context.Context, id string) (*Request, error) {
	r, _, err := b.get(ctx, id)
	return r, err
}

// List returns the requests with the given status (all when empty),
// oldest first.
func (b *Broker) List(ctx context.Context, status Status) ([]*Request, error) {
	out, err := kvrecord.List(ctx, b.kv, "access request", ErrNotFound, func(r *Request) bool { return status == "" || r.Status == status })
	if err != nil {
		return nil, err
	}
	slices.SortFunc(out, func(x, y *Request) int { return x.RequestedAt.Compare(y.RequestedAt) })
	return out, nil
}

// Ask is what a requester asks for.
type Ask struct {
	Tenant    string
	Requester events.Actor // as events record it (gateway.SealActor)
	Target    string
	Start     time.Time // zero: from the grant
	Duration  time.Duration
	Reason    string
}

// clean makes what a requester typed fit to keep: the reason as
// detect.FreeText keeps it; a target name holding a value a detector
// finds is refused (targets are the operator's names, and the request
// would keep the value in the bucket and every event about it).
func (a *Ask) clean() error {
	if t := detect.FreeText(a.Target); t != a.Target {
		return invalid("the target name holds a value a detector finds (%s); name a target as the gateway's configuration does", t)
	}
	a.Reason = detect.FreeText(a.Reason)
	return nil
}

// invalid wraps ErrInvalid with what is wrong.
func invalid(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrInvalid, fmt.Sprintf(format, args...))
}

func (b *Broker) rule(target string) (*Rule, error) {
	r := b.cfg.Rules.For(target)
	if r == nil {
		return nil, invalid("target %q needs no grant: no access rule names it", target)
	}
	return r, nil
}

// Request opens a pending request and records access.requested.
func (b *Broker) Request(ctx context.Context, a Ask) (*Request, error) {
	if err := a.clean(); err != nil {
		return nil, err
	}
	rule, err := b.rule(a.Target)
	if err != nil {
		return nil, err
	}
	now := b.now()
	switch {
	case strings.TrimSpace(a.Reason) == "":
		return nil, invalid("a reason is required (say why the access is needed)")
	case a.Duration <= 0:
		return nil, invalid("give how long the access is for (for example 2h)")
	case a.Duration > rule.Max():
		return nil, invalid("%s is longer than access rule %s allows for %s (max_duration %s)", a.Duration, rule.ID, a.Target, rule.Max())
	case a.Duration%time.Second != 0:
		return nil, invalid("the duration %s is not a whole number of seconds", a.Duration)
	case !a.Start.IsZero() && !a.Start.After(now):
		return nil, invalid("the start %s is not in the future (leave it out to start when granted)", a.Start.Format(time.RFC3339))
	}
	r := &Request{ID: NewID(), Tenant: a.Tenant, Rule: rule.ID, Requester: a.Requester, Target: a.Target, Reason: a.Reason,
		DurationSec: int64(a.Duration / time.Second), RequestedAt: now, Status: Pending}
	r.ExpiresAt = now.Add(rule.Pending())
	if !a.Start.IsZero() {
		r.Start = a.Start.UTC().Truncate(time.Second)
		// A pending request expires before the window it asks for could
		// start: a late approval never grants a window cut short.
		r.ExpiresAt = r.Start
	}
	if err := b.record(ctx, r, events.AccessRequested, r.Requester, "requested", map[string]any{"reason": r.Reason}); err != nil {
		return nil, err
	}
	if err := b.create(ctx, r); err != nil {
		return nil, err
	}
	return r, nil
}

// BreakGlass grants at once, without approval, the rule's fixed
// break-glass duration to a member of its break-glass groups, recording
// access.requested and access.granted with break_glass and
// review_required.
func (b *Broker) BreakGlass(ctx context.Context, a Ask) (*Request, error) {
	if err := a.clean(); err != nil {
		return nil, err
	}
	rule, err := b.rule(a.Target)
	if err != nil {
		return nil, err
	}
	if strings.TrimSpace(a.Reason) == "" {
		return nil, invalid("a reason is required (say what the emergency is)")
	}
	if !rule.MayBreakGlass(a.Requester.Groups) {
		if rule.BreakGlass == nil {
			return nil, fmt.Errorf("%w: access rule %s allows no break-glass grant for %s", ErrNotReviewer, rule.ID, a.Target)
		}
		return nil, fmt.Errorf("%w: a break-glass grant under access rule %s needs a member of %v", ErrNotReviewer, rule.ID, rule.BreakGlass.Groups)
	}
	if b.cfg.Signer == nil {
		return nil, ErrNoKey
	}
	now := b.now()
	r := &Request{ID: NewID(), Tenant: a.Tenant, Rule: rule.ID, Requester: a.Requester, Target: a.Target, Reason: a.Reason,
		DurationSec: int64(rule.BreakGlassDuration() / time.Second), RequestedAt: now, ExpiresAt: now, Status: Pending, BreakGlass: true}
	if err := b.record(ctx, r, events.AccessRequested, r.Requester, "requested", map[string]any{"reason": r.Reason}); err != nil {
		return nil, err
	}
	if err := b.grant(r, now); err != nil {
		return nil, err
	}
	if err := b.create(ctx, r); err != nil {
		return nil, err
	}
	return r, b.recordGrant(ctx, r, 0)
}

// grant makes r a signed grant from now (or its start).
func (b *Broker) grant(r *Request, now time.Time) error {
	if b.cfg.Signer == nil {
		return ErrNoKey
	}
	r.NotBefore = now
	if !r.Start.IsZero() && r.Start.After(now) {
		r.NotBefore = r.Start
	}
	r.NotAfter = r.NotBefore.Add(r.Duration())
	r.GrantedAt, r.Status = now, Approved
	sig, err := b.cfg.Signer.SignNote(GrantText(r))
	if err != nil {
		return fmt.Errorf("access: signing grant %s: %w", r.ID, err)
	}
	r.Signature = string(sig)
	return nil
}

// sameAsRequester refuses a reviewer who is the requester, or who cannot
// be told apart (a subject recorded only as a placeholder).
func sameAsRequester(r *Request, reviewer events.Actor) error {
	if identity.Same(reviewer, r.Requester) {
		return fmt.Errorf("access request %s: %w", r.ID, ErrSelfApproval)
	}
	for _, who := range []struct {
		role string
		a    events.Actor
	}{{"requester", r.Requester}, {"reviewer", reviewer}} {
		if strings.HasPrefix(who.a.Subject, "[REDACTED") {
			return fmt.Errorf("access request %s: %w: the %s's subject is recorded as %s, so requester and reviewer cannot be compared", r.ID, ErrSelfApproval, who.role, who.a.Subject)
		}
	}
	return nil
}

// Approve adds reviewer's approval. When the rule's approvals are
// complete the request becomes a signed grant (access.granted); before,
// it stays pending. Each approval is access.approved.
func (b *Broker) Approve(ctx context.Context, id string, reviewer events.Actor, reason string) (*Request, error) {
	r, rev, rule, now, err := b.decidable(ctx, id, reviewer, reason, "approve")
	if err != nil {
		return nil, err
	}
	reason = detect.FreeText(reason)
	if slices.ContainsFunc(r.Approvals, func(d Decision) bool { return identity.Same(d.Actor, reviewer) }) {
		return nil, fmt.Errorf("%w: %s has already approved %s", ErrState, reviewer.Subject, r.ID)
	}
	r.Approvals = append(r.Approvals, Decision{Actor: reviewer, Reason: reason, At: now})
	complete := complete(rule, r.Approvals)
	if complete {
		if err := b.grant(r, now); err != nil {
			return nil, err
		}
	}
	n := len(r.Approvals)
	if err := b.swap(ctx, r, rev); err != nil {
		return nil, err
	}
	if err := b.record(ctx, r, events.AccessApproved, reviewer, fmt.Sprintf("approved/%d", n),
		map[string]any{"reason": reason, "approvals": n, "complete": complete}); err != nil {
		if complete { // no grant the ledger does not hold
			return nil, errors.Join(err, b.recordGrantFailed(ctx, r))
		}
		return nil, err
	}
	if complete {
		return r, b.recordGrant(ctx, r, n)
	}
	return r, nil
}

// decidable reads the pending request id for reviewer to approve or deny
// (verb), with its revision, its rule and the time of the decision:
// refused without a reason, to the requester, to a reviewer in none of
// the rule's approver groups, and when the request is no longer pending.
func (b *Broker) decidable(ctx context.Context, id string, reviewer events.Actor, reason, verb string) (*Request, uint64, *Rule, time.Time, error) {
	fail := func(err error) (*Request, uint64, *Rule, time.Time, error) { return nil, 0, nil, time.Time{}, err }
	if strings.TrimSpace(reason) == "" {
		return fail(invalid("a reason is required to %s", verb))
	}
	r, rev, err := b.get(ctx, id)
	if err != nil {
		return fail(err)
	}
	if err := sameAsRequester(r, reviewer); err != nil {
		return fail(err)
	}
	rule, err := b.rule(r.Target)
	if err != nil {
		return fail(err)
	}
	if !rule.MayApprove(reviewer.Groups) {
		doing := map[string]string{"approve": "approving", "deny": "denying"}[verb]
		return fail(fmt.Errorf("%w: %s under access rule %s needs a member of %v", ErrNotReviewer, doing, rule.ID, rule.Approvers.Groups))
	}
	now := b.now()
	if err := b.pending(r, now); err != nil {
		return fail(err)
	}
	return r, rev, rule, now, nil
}

// complete reports whether approvals satisfy rule.
func complete(rule *Rule, approvals []Decision) bool {
	if rule.Approvers.EachGroup {
		for _, g := range rule.Approvers.Groups {
			if !slices.ContainsFunc(approvals, func(d Decision) bool { return slices.Contains(d.Actor.Groups, g) }) {
				return false
			}
		}
		return true
	}
	return len(approvals) >= rule.Approvers.Count
}

// pending refuses a request that is no longer pending, expiring it first
// if its time is up.
func (b *Broker) pending(r *Request, now time.Time) error {
	if r.Status == Pending && !now.Before(r.ExpiresAt) {
		return fmt.Errorf("%w: %s expired at %s without enough approvals", ErrState, r.ID, r.ExpiresAt.Format(time.RFC3339))
	}
	if r.Status != Pending {
		return fmt.Errorf("%w: %s is %s", ErrState, r.ID, r.Status)
	}
	return nil
}

// Deny ends a pending request (access.denied).
func (b *Broker) Deny(ctx context.Context, id string, reviewer events.Actor, reason string) (*Request, error) {
	r, rev, _, now, err := b.decidable(ctx, id, reviewer, reason, "deny")
	if err != nil {
		return nil, err
	}
	reason = detect.FreeText(reason)
	r.Status, r.Decision = Denied, &Decision{Actor: reviewer, Reason: reason, At: now}
	if err := b.swap(ctx, r, rev); err != nil {
		return nil, err
	}
	return r, b.record(ctx, r, events.AccessDenied, reviewer, "denied", map[string]any{"reason": reason})
}

// Revoke ends a grant, or withdraws a pending request (access.revoked).
// Its requester may revoke it, and so may a member of the rule's approver
// or break-glass groups. Gateways end its sessions at once.
func (b *Broker) Revoke(ctx context.Context, id string, who events.Actor, reason string) (*Request, error) {
	if strings.TrimSpace(reason) == "" {
		return nil, invalid("a reason is required to revoke")
	}
	reason = detect.FreeText(reason)
	// A gateway marking the grant used may change it meanwhile: read
	// it again and retry, a few times.
	for attempt := 0; ; attempt++ {
		r, rev, err := b.get(ctx, id)
		if err != nil {
			return nil, err
		}
		rule := b.cfg.Rules.For(r.Target)
		if !identity.Same(who, r.Requester) && (rule == nil || !rule.MayApprove(who.Groups) && !rule.MayBreakGlass(who.Groups)) {
			return nil, fmt.Errorf("%w: only the requester or an approver of access rule %s may revoke %s", ErrNotReviewer, r.Rule, r.ID)
		}
		if r.Status != Pending && !r.Status.Live() {
			return nil, fmt.Errorf("%w: %s is %s", ErrState, r.ID, r.Status)
		}
		r.Status, r.Decision = Revoked, &Decision{Actor: who, Reason: reason, At: b.now()}
		if err := b.swap(ctx, r, rev); err != nil {
			if attempt < 3 {
				continue
			}
			return nil, err
		}
		return r, b.record(ctx, r, events.AccessRevoked, who, "revoked", map[string]any{"reason": reason})
	}
}

// Sweep expires what is due at now: pending requests past their expiry,
// and grants past their end (access.expired each). The api role runs it
// every few seconds; gateways end sessions at a grant's end without it.
func (b *Broker) Sweep(ctx context.Context) error {
	all, err := b.List(ctx, "")
	if err != nil {
		return err
	}
	now := b.now()
	var errs []error
	for _, r := range all {
		var why string
		switch {
		case r.Status == Pending && !now.Before(r.ExpiresAt):
			why = "no decision before the request expired"
			if !r.Start.IsZero() {
				why = "not approved before the window it asks for starts"
			}
		case r.Status.Live() && !now.Before(r.NotAfter):
			why = "the grant reached its end"
		default:
			continue
		}
		cur, rev, err := b.get(ctx, r.ID)
		if err != nil || cur.Status != r.Status {
			continue
		}
		cur.Status, cur.Decision = Expired, &Decision{Actor: System, Reason: why, At: now}
		if err := b.swap(ctx, cur, rev); err != nil {
			continue // changed meanwhile; the next sweep sees it
		}
		if err := b.record(ctx, cur, events.AccessExpired, System, "expired", map[string]any{"reason": why}); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// MarkUsed marks a grant used (best effort: the session's own record
// names the grant).
func MarkUsed(ctx context.Context, kv jetstream.KeyValue, id string, at time.Time) error {
	e, err := kv.Get(ctx, id)
	if err != nil {
		return err
	}
	var r Request
	if err := json.Unmarshal(e.Value(), &r); err != nil {
		return err
	}
	if r.Status != Approved {
		return nil
	}
	r.Status, r.UsedAt = Used, at.UTC()
	data, err := json.Marshal(&r)
	if err != nil {
		return err
	}
	_, err = kv.Update(ctx, id, data, e.Revision())
	return err
}

func (b *Broker) create(ctx context.Context, r *Request) error {
	data, err := json.Marshal(r)
	if err != nil {
		return err
	}
	if _, err := b.kv.Create(ctx, r.ID, data); err != nil {
		return fmt.Errorf("access: open %s: %w", r.ID, err)
	}
	return nil
}

// swap writes r if the stored revision is still rev.
func (b *Broker) swap(ctx context.Context, r *Request, rev uint64) error {
	data, err := json.Marshal(r)
	if err != nil {
		return err
	}
	if _, err := b.kv.Update(ctx, r.ID, data, rev); err != nil {
		if cur, _, gerr := b.get(ctx, r.ID); gerr == nil && cur.Status != r.Status {
			return fmt.Errorf("%w: %s changed meanwhile (now %s)", ErrState, r.ID, cur.Status)
		}
		return fmt.Errorf("access request %s: %w", r.ID, err)
	}
	return nil
}

// System is the actor of what nobody decided: an expiry, a refused
// forgery.
var System = events.Actor{Issuer: "auditledger", Subject: "access", Kind: events.Machine}

// recordGrant records access.granted for r. A grant whose record cannot
// be stored is revoked in the bucket (fail closed: no session on a grant
// the ledger does not hold).
func (b *Broker) recordGrant(ctx context.Context, r *Request, approvals int) error {
	actor := System
	if n := len(r.Approvals); n > 0 {
		actor = r.Approvals[n-1].Actor
	} else if r.BreakGlass {
		actor = r.Requester
	}
	err := b.record(ctx, r, events.AccessGranted, actor, "granted", GrantedPayload(r, approvals))
	if err == nil {
		return nil
	}
	return errors.Join(err, b.recordGrantFailed(ctx, r))
}

// GrantedPayload is what access.granted adds to Event's payload for r,
// granted after approvals approvals (0: break-glass).
func GrantedPayload(r *Request, approvals int) map[string]any {
	return map[string]any{"grant": "just-in-time", "reason": r.Reason, "approvals": approvals,
		"not_before": r.NotBefore, "not_after": r.NotAfter, "break_glass": r.BreakGlass, "review_required": r.BreakGlass,
		// The signed note: an access review counts the record as a
		// grant only when it verifies (review.go).
		"signature": r.Signature}
}

// recordGrantFailed revokes a grant whose record was not stored.
func (b *Broker) recordGrantFailed(ctx context.Context, r *Request) error {
	if cur, rev, gerr := b.get(context.WithoutCancel(ctx), r.ID); gerr == nil && cur.Status.Live() {
		cur.Status, cur.Decision = Revoked, &Decision{Actor: System, Reason: "access.granted could not be recorded", At: b.now()}
		if serr := b.swap(context.WithoutCancel(ctx), cur, rev); serr != nil {
			b.cfg.Logger.Error("grant not recorded and not revoked", "access_id", r.ID, "err", serr)
			return serr
		}
	}
	return fmt.Errorf("access: grant %s revoked: its record was not stored", r.ID)
}

// record stores one transition event of r, waiting for the bus. Its id
// is access/<request id>/<step>, the same whoever records it.
func (b *Broker) record(ctx context.Context, r *Request, t events.Type, actor events.Actor, step string, extra map[string]any) error {
	ev, err := Event(r, t, actor, step, b.now(), b.cfg.Source, extra)
	if err != nil {
		return err
	}
	res, _ := b.cfg.Emitter.EmitAlone(ctx, ev)
	if err := res.Stored(false); err != nil {
		return fmt.Errorf("access %s: recording %s: %w", r.ID, t, err)
	}
	return nil
}

// Event is the event recording one transition of r (docs/FORMAT.md,
// "Just-in-time access"). extra's members join the payload.
func Event(r *Request, t events.Type, actor events.Actor, step string, at time.Time, src events.Source, extra map[string]any) (*events.Event, error) {
	p := map[string]any{
		"access_id": r.ID, "rule": r.Rule, "status": r.Status, "target": r.Target,
		"requester":        map[string]string{"issuer": r.Requester.Issuer, "subject": r.Requester.Subject},
		"duration_seconds": r.DurationSec, "requested_at": r.RequestedAt, "expires_at": r.ExpiresAt,
	}
	if !r.Start.IsZero() {
		p["start"] = r.Start
	}
	if r.BreakGlass {
		p["break_glass"], p["review_required"] = true, true
	}
	for k, v := range extra {
		p[k] = v
	}
	payload, err := json.Marshal(p)
	if err != nil {
		return nil, err
	}
	return &events.Event{
		Version: events.Version, ID: "access/" + r.ID + "/" + step, Type: t, Time: at.UTC(),
		Tenant: r.Tenant, Source: src, Actor: actor, Target: &events.Target{Kind: "access", Name: r.Target}, Payload: payload,
	}, nil
}
