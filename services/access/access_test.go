package access_test

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/auditledger/auditledger/events"
	"github.com/auditledger/auditledger/events/detect"
	"github.com/auditledger/auditledger/ledger"
	"github.com/auditledger/auditledger/ledger/bus"
	"github.com/auditledger/auditledger/ledger/bus/emitter"
	"github.com/auditledger/auditledger/ledger/ledgertest"
	"github.com/auditledger/auditledger/services/access"
	"github.com/auditledger/auditledger/test/natstest"
)

var (
	alice = events.Actor{Issuer: "https://idp.example", Subject: "alice", Kind: events.Human, Groups: []string{"dev"}}
	bob   = events.Actor{Issuer: "https://idp.example", Subject: "bob", Kind: events.Human, Groups: []string{"dba"}}
	carol = events.Actor{Issuer: "https://idp.example", Subject: "carol", Kind: events.Human, Groups: []string{"security"}}
	dave  = events.Actor{Issuer: "https://idp.example", Subject: "dave", Kind: events.Human, Groups: []string{"oncall"}}
)

const policy = `version: 2
access:
  - id: prod-db
    targets: [orders, "prod-*"]
    approvers: {groups: [dba, security], each_group: true}
    max_duration: 4h
    break_glass: {groups: [oncall], duration: 30m}
  - id: staging
    targets: [staging]
    approvers: {groups: [dba], count: 1}
    max_duration: 2h
    pending_timeout: 10m
  - id: two-person
    targets: [vault]
    approvers: {groups: [dba, security], count: 2}
    max_duration: 1h
`

// Clock is a clock tests move by hand.
type Clock struct {
	mu sync.Mutex
	t  time.Time
}

func NewClock() *Clock { return &Clock{t: time.Date(2026, 12, 7, 9, 0, 0, 0, time.UTC)} }

func (c *Clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }

func (c *Clock) Add(d time.Duration) { c.mu.Lock(); c.t = c.t.Add(d); c.mu.Unlock() }

type rig struct {
	b     *access.Broker
	js    jetstream.JetStream
	em    *emitter.Emitter
	clock *Clock
	key   *ledger.NoteSigner
}

func setup(t *testing.T) *rig {
	t.Helper()
	srv := natstest.Start(t)
	_, js := srv.Connect(t)
	if err := bus.EnsureStreams(t.Context(), js, bus.StreamOptions{}); err != nil {
		t.Fatal(err)
	}
	em, err := emitter.New(emitter.Config{JetStream: js, Timeout: 2 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { em.Close() })
	rules, err := access.ParseRules("policy.yaml", []byte(policy))
	if err != nil {
		t.Fatal(err)
	}
	c := NewClock()
	key := ledgertest.Signer(t, "api.test/approvals")
	b, err := access.New(t.Context(), access.Config{JetStream: js, Emitter: em, Source: events.Source{Kind: "api", Instance: "api-1"},
		Signer: key, Rules: rules, Create: true, Now: c.Now})
	if err != nil {
		t.Fatal(err)
	}
	return &rig{b: b, js: js, em: em, clock: c, key: key}
}

func accessEvents(t *testing.T, js jetstream.JetStream) []natstest.Stored {
	var out []natstest.Stored
	for _, st := range natstest.Events(t, js, "") {
		if strings.HasPrefix(string(st.Event.Type), "access.") || st.Event.Type == events.CommandBlocked {
			out = append(out, st)
		}
	}
	return out
}

func types(sts []natstest.Stored) string {
	var s []string
	for _, st := range sts {
		s = append(s, string(st.Event.Type)+"/"+st.Event.Actor.Subject)
	}
	return strings.Join(s, " ")
}

func TestRulesAreCheckedAtTheirLine(t *testing.T) {
	for _, tc := range []struct{ text, want string }{
		{"version: 2\naccess:\n  - id: a\n    approvers: {groups: [x]}\n    max_duration: 1h\n", "line 3: access rule \"a\": targets"},
		{"version: 2\naccess:\n  - id: a\n    targets: [t]\n    max_duration: 1h\n", "approvers.groups"},
		{"version: 2\naccess:\n  - id: a\n    targets: [t]\n    approvers: {groups: [x]}\n", "max_duration"},
		{"version: 2\naccess:\n  - id: a\n    targets: [t]\n    approvers: {groups: [x]}\n    max_duration: 1h\n    break_glass: {groups: [o], duration: 2h}\n", "break_glass.duration"},
		{"version: 2\naccess:\n  - id: a\n    targets: [t]\n    approvers: {groups: [x]}\n    max_duration: 1h\n    approver: x\n", "approver"},
	} {
		_, err := access.ParseRules("p.yaml", []byte(tc.text))
		if !errors.Is(err, access.ErrRules) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q: %v, want an error naming %q", tc.text, err, tc.want)
		}
	}
}

func TestGrantNeedsOneApprovalFromEachGroupNeverTheRequester(t *testing.T) {
	r := setup(t)
	ctx := t.Context()
	if _, err := r.b.Request(ctx, access.Ask{Tenant: "acme", Requester: alice, Target: "orders", Duration: 2 * time.Hour}); !errors.Is(err, access.ErrInvalid) {
		t.Fatalf("no reason: %v, want ErrInvalid", err)
	}
	if _, err := r.b.Request(ctx, access.Ask{Tenant: "acme", Requester: alice, Target: "orders", Duration: 5 * time.Hour, Reason: "x"}); !errors.Is(err, access.ErrInvalid) || !strings.Contains(err.Error(), "max_duration 4h") {
		t.Fatalf("too long: %v", err)
	}
	if _, err := r.b.Request(ctx, access.Ask{Tenant: "acme", Requester: alice, Target: "dev-db", Duration: time.Hour, Reason: "x"}); !errors.Is(err, access.ErrInvalid) {
		t.Fatalf("no rule: %v", err)
	}
	req, err := r.b.Request(ctx, access.Ask{Tenant: "acme", Requester: alice, Target: "orders", Duration: 2 * time.Hour, Reason: "INC-42 repair"})
	if err != nil {
		t.Fatal(err)
	}
	// The requester, even in an approver group, cannot approve.
	self := alice
	self.Groups = []string{"dba"}
	if _, err := r.b.Approve(ctx, req.ID, self, "mine"); !errors.Is(err, access.ErrSelfApproval) {
		t.Fatalf("self-approval: %v, want ErrSelfApproval", err)
	}
	if _, err := r.b.Approve(ctx, req.ID, dave, "ok"); !errors.Is(err, access.ErrNotReviewer) {
		t.Fatalf("outsider: %v, want ErrNotReviewer", err)
	}
	got, err := r.b.Approve(ctx, req.ID, bob, "looked at INC-42")
	if err != nil || got.Status != access.Pending {
		t.Fatalf("first approval: %+v %v, want still pending", got, err)
	}
	if _, err := r.b.Approve(ctx, req.ID, bob, "again"); !errors.Is(err, access.ErrState) {
		t.Fatalf("second approval by the same reviewer: %v", err)
	}
	r.clock.Add(time.Minute)
	got, err = r.b.Approve(ctx, req.ID, carol, "fine")
	if err != nil || got.Status != access.Approved {
		t.Fatalf("second group's approval: %+v %v", got, err)
	}
	if !got.NotBefore.Equal(r.clock.Now()) || got.NotAfter.Sub(got.NotBefore) != 2*time.Hour {
		t.Errorf("window %s – %s, want two hours from now", got.NotBefore, got.NotAfter)
	}
	if err := access.Verify(r.key.Verifier(), got); err != nil {
		t.Fatalf("grant does not verify: %v", err)
	}
	if s := types(accessEvents(t, r.js)); s != "access.requested/alice access.approved/bob access.approved/carol access.granted/carol" {
		t.Fatalf("events: %s", s)
	}
	// Revoked by an approver, then nothing more.
	if _, err := r.b.Revoke(ctx, req.ID, bob, "work done"); err != nil {
		t.Fatal(err)
	}
	if _, err := r.b.Revoke(ctx, req.ID, bob, "again"); !errors.Is(err, access.ErrState) {
		t.Fatalf("revoke twice: %v", err)
	}
}

// A rule asking for two approvals grants on the second, from two
// different reviewers (of any of its groups, the same group too); the
// first leaves the request pending, and a reviewer cannot count twice.
func TestGrantNeedsTwoApprovalsWhenTheRuleCountsTwo(t *testing.T) {
	r := setup(t)
	ctx := t.Context()
	erin := events.Actor{Issuer: "https://idp.example", Subject: "erin", Kind: events.Human, Groups: []string{"dba"}}
	req, err := r.b.Request(ctx, access.Ask{Tenant: "acme", Requester: alice, Target: "vault", Duration: time.Hour, Reason: "rotate keys"})
	if err != nil {
		t.Fatal(err)
	}
	got, err := r.b.Approve(ctx, req.ID, bob, "ok")
	if err != nil || got.Status != access.Pending || got.Signature != "" {
		t.Fatalf("first of two approvals: %+v %v, want still pending, unsigned", got, err)
	}
	if _, err := r.b.Approve(ctx, req.ID, bob, "again"); !errors.Is(err, access.ErrState) {
		t.Fatalf("the same reviewer again: %v, want ErrState", err)
	}
	if cur, err := r.b.Get(ctx, req.ID); err != nil || cur.Status != access.Pending || len(cur.Approvals) != 1 {
		t.Fatalf("after a repeated approval: %+v %v, want pending with one approval", cur, err)
	}
	got, err = r.b.Approve(ctx, req.ID, erin, "agreed")
	if err != nil || got.Status != access.Approved || len(got.Approvals) != 2 {
		t.Fatalf("second approval: %+v %v, want a grant", got, err)
	}
	if err := access.Verify(r.key.Verifier(), got); err != nil {
		t.Fatalf("grant does not verify: %v", err)
	}
	evs := accessEvents(t, r.js)
	if s := types(evs); s != "access.requested/alice access.approved/bob access.approved/erin access.granted/erin" {
		t.Fatalf("events: %s", s)
	}
	if p := evs[1].Payload; p["approvals"] != float64(1) || p["complete"] != false {
		t.Errorf("first access.approved payload %v, want approvals 1, complete false", p)
	}
	if p := evs[2].Payload; p["approvals"] != float64(2) || p["complete"] != true {
		t.Errorf("second access.approved payload %v, want approvals 2, complete true", p)
	}
	if p := evs[3].Payload; p["approvals"] != float64(2) || p["status"] != string(access.Approved) || p["signature"] != got.Signature {
		t.Errorf("access.granted payload %v", p)
	}
}

// A reviewer's denial ends a pending request: recorded as access.denied
// by the reviewer with the reason, never granted afterwards; the
// requester cannot deny their own, and a denial needs a reason.
func TestReviewerDeniesARequest(t *testing.T) {
	r := setup(t)
	ctx := t.Context()
	w := watcher(t, r)
	req, err := r.b.Request(ctx, access.Ask{Tenant: "acme", Requester: alice, Target: "staging", Duration: time.Hour, Reason: "deploy"})
	if err != nil {
		t.Fatal(err)
	}
	self := alice
	self.Groups = []string{"dba"}
	if _, err := r.b.Deny(ctx, req.ID, self, "changed my mind"); !errors.Is(err, access.ErrSelfApproval) {
		t.Fatalf("the requester denying: %v, want ErrSelfApproval", err)
	}
	if _, err := r.b.Deny(ctx, req.ID, bob, " "); !errors.Is(err, access.ErrInvalid) {
		t.Fatalf("a denial without a reason: %v, want ErrInvalid", err)
	}
	if _, err := r.b.Deny(ctx, req.ID, carol, "not mine to judge"); !errors.Is(err, access.ErrNotReviewer) {
		t.Fatalf("a denial by someone outside the rule's groups: %v, want ErrNotReviewer", err)
	}
	got, err := r.b.Deny(ctx, req.ID, bob, "no change window today")
	if err != nil || got.Status != access.Denied || got.Decision == nil || got.Decision.Actor.Subject != "bob" {
		t.Fatalf("denial: %+v %v", got, err)
	}
	if _, err := r.b.Approve(ctx, req.ID, bob, "after all"); !errors.Is(err, access.ErrState) {
		t.Fatalf("approving a denied request: %v, want ErrState", err)
	}
	evs := accessEvents(t, r.js)
	if s := types(evs); s != "access.requested/alice access.denied/bob" {
		t.Fatalf("events: %s", s)
	}
	d := evs[1]
	if d.Event.ID != "access/"+req.ID+"/denied" || d.Payload["status"] != string(access.Denied) || d.Payload["reason"] != "no change window today" || d.Payload["access_id"] != req.ID {
		t.Fatalf("access.denied %s %v", d.Event.ID, d.Payload)
	}
	if cur, err := r.b.Get(ctx, req.ID); err != nil || cur.Status != access.Denied {
		t.Fatalf("in the bucket: %+v %v, want denied", cur, err)
	}
	if _, err := w.Find("acme", alice, "staging"); err == nil {
		t.Fatal("a gateway finds a grant for a denied request")
	}
}

func TestPendingExpiresBeforeItsWindowAndGrantsExpire(t *testing.T) {
	r := setup(t)
	ctx := t.Context()
	start := r.clock.Now().Add(30 * time.Minute)
	late, err := r.b.Request(ctx, access.Ask{Tenant: "acme", Requester: alice, Target: "staging", Start: start, Duration: time.Hour, Reason: "deploy"})
	if err != nil {
		t.Fatal(err)
	}
	if !late.ExpiresAt.Equal(start) {
		t.Fatalf("expires %s, want its start %s", late.ExpiresAt, start)
	}
	soon, err := r.b.Request(ctx, access.Ask{Tenant: "acme", Requester: alice, Target: "staging", Start: r.clock.Now().Add(2 * time.Hour), Duration: time.Hour, Reason: "later"})
	if err != nil {
		t.Fatal(err)
	}
	g, err := r.b.Approve(ctx, soon.ID, bob, "ok")
	if err != nil || !g.NotBefore.Equal(soon.Start) {
		t.Fatalf("approved ahead: %+v %v, want the window it asked for", g, err)
	}
	r.clock.Add(30 * time.Minute)
	if _, err := r.b.Approve(ctx, late.ID, bob, "too late"); !errors.Is(err, access.ErrState) {
		t.Fatalf("approving at the start: %v, want ErrState", err)
	}
	if err := r.b.Sweep(ctx); err != nil {
		t.Fatal(err)
	}
	if got, _ := r.b.Get(ctx, late.ID); got.Status != access.Expired {
		t.Fatalf("pending past its start: %s", got.Status)
	}
	r.clock.Add(3 * time.Hour)
	if err := r.b.Sweep(ctx); err != nil {
		t.Fatal(err)
	}
	if got, _ := r.b.Get(ctx, soon.ID); got.Status != access.Expired {
		t.Fatalf("grant past its end: %s", got.Status)
	}
	if s := types(accessEvents(t, r.js)); s != "access.requested/alice access.requested/alice access.approved/bob access.granted/bob access.expired/access access.expired/access" {
		t.Fatalf("events: %s", s)
	}
}

func TestBreakGlassIsFixedAndMarkedForReview(t *testing.T) {
	r := setup(t)
	ctx := t.Context()
	if _, err := r.b.BreakGlass(ctx, access.Ask{Tenant: "acme", Requester: alice, Target: "orders", Reason: "outage"}); !errors.Is(err, access.ErrNotReviewer) {
		t.Fatalf("outside the break-glass group: %v", err)
	}
	g, err := r.b.BreakGlass(ctx, access.Ask{Tenant: "acme", Requester: dave, Target: "prod-eu", Reason: "outage INC-7", Duration: 4 * time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	if g.Status != access.Approved || g.NotAfter.Sub(g.NotBefore) != 30*time.Minute || !g.BreakGlass {
		t.Fatalf("break-glass grant %+v, want 30 minutes (the rule's, whatever was asked)", g)
	}
	evs := accessEvents(t, r.js)
	if s := types(evs); s != "access.requested/dave access.granted/dave" {
		t.Fatalf("events: %s", s)
	}
	p := evs[1].Payload
	if p["break_glass"] != true || p["review_required"] != true || p["access_id"] != g.ID {
		t.Fatalf("access.granted payload %v", p)
	}
}

func watcher(t *testing.T, r *rig) *access.Watcher {
	t.Helper()
	w, err := access.NewWatcher(t.Context(), access.WatcherConfig{JetStream: r.js, Verifier: r.key.Verifier(), Rules: r.b.Rules(), Emitter: r.em,
		Source: events.Source{Kind: "postgres-proxy", Instance: "pg-1"}, Now: r.clock.Now, Stale: time.Minute, Poll: 50 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { w.Run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	natstest.CheckFor(t, 5*time.Second, 10*time.Millisecond, func() error {
		if !w.Synced() {
			return errors.New("not synced")
		}
		return nil
	})
	return w
}

func TestForgedGrantOnTheBusIsRefusedAndRecorded(t *testing.T) {
	r := setup(t)
	w := watcher(t, r)
	now := r.clock.Now()
	forged := access.Request{ID: "acc-forged", Tenant: "acme", Rule: "prod-db", Requester: alice, Target: "orders",
		Status: access.Approved, NotBefore: now, NotAfter: now.Add(time.Hour), RequestedAt: now, DurationSec: 3600}
	// Signed, but by another key: not the API's.
	other := ledgertest.Signer(t, "api.test/approvals")
	sig, _ := other.SignNote(access.GrantText(&forged))
	forged.Signature = string(sig)
	data, _ := json.Marshal(forged)
	kv, err := r.js.KeyValue(t.Context(), access.Bucket)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := kv.Put(t.Context(), forged.ID, data); err != nil {
		t.Fatal(err)
	}
	natstest.CheckFor(t, 5*time.Second, 20*time.Millisecond, func() error {
		if s := types(accessEvents(t, r.js)); s != "access.denied/access" {
			return errors.New("events: " + s)
		}
		return nil
	})
	if _, err := w.Find("acme", alice, "orders"); !errors.Is(err, access.ErrNoGrant) {
		t.Fatalf("forged grant admitted: %v", err)
	}
	p := accessEvents(t, r.js)[0].Payload
	if p["forged"] != true || !strings.Contains(p["reason"].(string), "not signed by the API") {
		t.Fatalf("refusal payload %v", p)
	}

	// A real grant is found; changing its window in the bucket breaks it.
	req, _ := r.b.Request(t.Context(), access.Ask{Tenant: "acme", Requester: alice, Target: "staging", Duration: time.Hour, Reason: "deploy"})
	g, err := r.b.Approve(t.Context(), req.ID, bob, "ok")
	if err != nil {
		t.Fatal(err)
	}
	natstest.CheckFor(t, 5*time.Second, 10*time.Millisecond, func() error {
		_, err := w.Find("acme", alice, "staging")
		return err
	})
	g.NotAfter = g.NotAfter.Add(10 * time.Hour)
	data, _ = json.Marshal(g)
	if _, err := kv.Put(t.Context(), g.ID, data); err != nil {
		t.Fatal(err)
	}
	natstest.CheckFor(t, 5*time.Second, 10*time.Millisecond, func() error {
		if _, err := w.Find("acme", alice, "staging"); !errors.Is(err, access.ErrNoGrant) {
			return errors.New("lengthened grant still admitted")
		}
		return nil
	})
}

// What a requester or reviewer types is kept as detect.FreeText keeps it:
// no value a detector finds in the bucket or any event (the writer would
// refuse such an event, and the grant or decision it records would go
// unsealed), and a target name holding one is refused.
func TestTypedTextKeepsNoValue(t *testing.T) {
	r := setup(t)
	ctx := t.Context()
	const card, mail = "4968575613922114", "kavvea.reason@example.org"
	req, err := r.b.Request(ctx, access.Ask{Tenant: "acme", Requester: alice, Target: "orders", Duration: time.Hour,
		Reason: "refund for " + mail + " card " + card})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := r.b.Approve(ctx, req.ID, bob, "ok per "+mail); err != nil {
		t.Fatal(err)
	}
	if _, err := r.b.Approve(ctx, req.ID, carol, "card "+card+" checked"); err != nil {
		t.Fatal(err)
	}
	if _, err := r.b.Revoke(ctx, req.ID, carol, "done with "+card); err != nil {
		t.Fatal(err)
	}
	bg, err := r.b.BreakGlass(ctx, access.Ask{Tenant: "acme", Requester: dave, Target: "prod-a", Reason: "pager for " + card})
	if err != nil {
		t.Fatal(err)
	}
	_, err = r.b.Request(ctx, access.Ask{Tenant: "acme", Requester: alice, Target: "prod-" + card, Duration: time.Hour, Reason: "x"})
	if !errors.Is(err, access.ErrInvalid) || strings.Contains(err.Error(), card) {
		t.Errorf("a target name holding a card: %v, want it refused without the value", err)
	}
	sts := accessEvents(t, r.js)
	if got := types(sts); !strings.Contains(got, "access.approved/carol") || !strings.Contains(got, "access.revoked/carol") || !strings.Contains(got, "access.granted") {
		t.Fatalf("events %s", got)
	}
	for _, st := range sts {
		if strings.Contains(string(st.Raw), card) || strings.Contains(string(st.Raw), mail) {
			t.Errorf("%s holds a value: %s", st.Event.Type, st.Raw)
		}
		if err := detect.CheckEvent(st.Raw); err != nil {
			t.Errorf("the writer refuses %s: %v", st.Event.Type, err)
		}
	}
	kv, err := access.OpenBucket(ctx, r.js, false, 1)
	if err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{req.ID, bg.ID} {
		e, err := kv.Get(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		if strings.Contains(string(e.Value()), card) || strings.Contains(string(e.Value()), mail) {
			t.Errorf("bucket record %s holds a value: %s", id, e.Value())
		}
	}
}
