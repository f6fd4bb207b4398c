package approvals_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/auditledger/auditledger/events"
	"github.com/auditledger/auditledger/events/detect"
	"github.com/auditledger/auditledger/ledger/bus"
	"github.com/auditledger/auditledger/ledger/bus/emitter"
	"github.com/auditledger/auditledger/ledger/ledgertest"
	"github.com/auditledger/auditledger/services/approvals"
	"github.com/auditledger/auditledger/test/natstest"
)

var (
	alice = events.Actor{Issuer: "https://idp.example", Subject: "alice", Kind: events.Human}
	bob   = events.Actor{Issuer: "https://idp.example", Subject: "bob", Kind: events.Human, Groups: []string{"approver"}}
)

func broker(t *testing.T) (*approvals.Broker, jetstream.JetStream) {
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
	b, err := approvals.New(t.Context(), approvals.Config{JetStream: js, Create: true, Signer: ledgertest.Signer(t, "api.test/approvals"), Emitter: em, Source: events.Source{Kind: "test", Instance: t.Name()}})
	if err != nil {
		t.Fatal(err)
	}
	return b, js
}

func open(t *testing.T, b *approvals.Broker, stmt string, ttl time.Duration) *approvals.Request {
	t.Helper()
	r := &approvals.Request{ID: approvals.NewID(), Tenant: "acme", Rule: "ddl", Requester: alice,
		Target: events.Target{Kind: "postgres", Database: "orders"}, Statement: stmt,
		RequestedAt: time.Now().UTC(), ExpiresAt: time.Now().Add(ttl).UTC()}
	if err := b.Open(t.Context(), r); err != nil {
		t.Fatal(err)
	}
	return r
}

// decisions returns the approval decision events on AUDIT_EVENTS.
func decisions(t *testing.T, js jetstream.JetStream) []events.Event {
	t.Helper()
	var out []events.Event
	for _, st := range natstest.Events(t, js, "") {
		out = append(out, *st.Event)
	}
	return out
}

func TestGrantIsRecordedOnceAndBoundToTheStatement(t *testing.T) {
	b, js := broker(t)
	r := open(t, b, "ALTER TABLE orders ADD COLUMN note text", time.Minute)

	got := make(chan *approvals.Request, 1)
	go func() {
		d, err := b.Await(context.Background(), r)
		if err != nil {
			t.Error(err)
		}
		got <- d
	}()
	if _, err := b.Decide(t.Context(), r.ID, alice, true, "mine"); !errors.Is(err, approvals.ErrSelfApproval) {
		t.Fatalf("self-approval: %v, want ErrSelfApproval", err)
	}
	if _, err := b.Decide(t.Context(), "apr-nonexistent", bob, true, ""); !errors.Is(err, approvals.ErrNotFound) {
		t.Fatalf("unknown id: %v, want ErrNotFound", err)
	}
	if _, err := b.Decide(t.Context(), r.ID, bob, true, "reviewed"); err != nil {
		t.Fatal(err)
	}
	d := <-got
	if d.Status != approvals.Granted || d.Decider.Subject != "bob" || d.StatementSHA256 != approvals.Digest(r.Statement) {
		t.Fatalf("await: %+v", d)
	}
	var e *approvals.DecidedError
	if _, err := b.Decide(t.Context(), r.ID, bob, false, "changed my mind"); !errors.As(err, &e) || e.Status != approvals.Granted {
		t.Fatalf("second decision: %v, want DecidedError granted", err)
	}
	evs := decisions(t, js)
	if len(evs) != 1 || evs[0].Type != events.ApprovalGranted || evs[0].Actor.Subject != "bob" {
		t.Fatalf("events: %+v, want one approval.granted by bob (the API's and the proxy's copies are one)", evs)
	}
	var p map[string]any
	json.Unmarshal(evs[0].Payload, &p)
	if p["statement_sha256"] != approvals.Digest("ALTER TABLE orders ADD COLUMN note text") || p["approval_id"] != r.ID {
		t.Errorf("payload %v", p)
	}
}

func TestDenyAndExpiry(t *testing.T) {
	b, js := broker(t)
	denied := open(t, b, "DROP INDEX orders_idx", time.Minute)
	if _, err := b.Decide(t.Context(), denied.ID, bob, false, "not in a change window"); err != nil {
		t.Fatal(err)
	}
	d, err := b.Await(t.Context(), denied)
	if err != nil || d.Status != approvals.Denied || d.Reason != "not in a change window" {
		t.Fatalf("denied: %+v %v", d, err)
	}

	expiring := open(t, b, "VACUUM FULL orders", 300*time.Millisecond)
	d, err = b.Await(t.Context(), expiring)
	if err != nil || d.Status != approvals.Expired {
		t.Fatalf("expiry: %+v %v", d, err)
	}
	var e *approvals.DecidedError
	if _, err := b.Decide(t.Context(), expiring.ID, bob, true, ""); !errors.As(err, &e) || e.Status != approvals.Expired {
		t.Fatalf("grant after expiry: %v", err)
	}

	gone := open(t, b, "REINDEX TABLE orders", time.Minute)
	ctx, cancel := context.WithCancel(t.Context())
	time.AfterFunc(100*time.Millisecond, cancel)
	d, err = b.Await(ctx, gone)
	if err != nil || d.Status != approvals.Expired {
		t.Fatalf("requester gone: %+v %v", d, err)
	}

	var types []string
	for _, ev := range decisions(t, js) {
		types = append(types, string(ev.Type))
	}
	if fmt.Sprint(types) != "[approval.denied approval.expired approval.expired]" {
		t.Errorf("events %v", types)
	}
	pending, err := b.List(t.Context(), approvals.Pending)
	if err != nil || len(pending) != 0 {
		t.Errorf("pending after all decided: %v %v", pending, err)
	}
	all, _ := b.List(t.Context(), "")
	if len(all) != 3 {
		t.Errorf("listed %d requests, want 3", len(all))
	}
}

// TestRemovedRequestIsRecorded: a pending request deleted or purged from
// the bucket (by anyone holding producer credentials) ends the wait as a
// denial by the system, recorded in the ledger with a reason that says
// what happened and that who did it is not known; the held statement
// never runs.
func TestRemovedRequestIsRecorded(t *testing.T) {
	b, js := broker(t)
	kv, err := js.KeyValue(t.Context(), approvals.Bucket)
	if err != nil {
		t.Fatal(err)
	}
	// A purge (a rollup) is refused by the bucket (bus.KeyValueStream):
	// no credential that may put a request empties the bucket.
	if err := kv.Purge(t.Context(), "apr-any"); err == nil || !strings.Contains(err.Error(), "rollup not permitted") {
		t.Fatalf("purging a request: %v, want the bucket's refusal", err)
	}
	for _, how := range []string{"delete"} {
		t.Run(how, func(t *testing.T) {
			r := open(t, b, "DROP TABLE orders_"+how, time.Minute)
			type outcome struct {
				d   *approvals.Request
				err error
			}
			got := make(chan outcome, 1)
			go func() {
				d, err := b.Await(context.Background(), r)
				got <- outcome{d, err}
			}()
			// The watch delivers the removal whenever it happens, so
			// removing at once is as good as removing later.
			if err = kv.Delete(t.Context(), r.ID); err != nil {
				t.Fatal(err)
			}
			var o outcome
			select {
			case o = <-got:
			case <-time.After(30 * time.Second):
				t.Fatal("Await did not end after the request was removed")
			}
			if o.err != nil || o.d == nil || o.d.Status != approvals.Denied {
				t.Fatalf("Await after %s: %+v, %v; want a denial", how, o.d, o.err)
			}
			var ev *events.Event
			for _, e := range decisions(t, js) {
				if e.ID == "approval/"+r.ID+"/decision" {
					ev = &e
				}
			}
			if ev == nil || ev.Type != events.ApprovalDenied || ev.Actor.Subject != "approvals" {
				t.Fatalf("decision event for %s: %+v, want approval.denied by the system", r.ID, ev)
			}
			var p map[string]any
			json.Unmarshal(ev.Payload, &p)
			reason, _ := p["reason"].(string)
			if !strings.Contains(reason, "removed from the bus") || !strings.Contains(reason, "not known") {
				t.Errorf("reason %q: want it to say the request was removed, and that who removed it is not known", reason)
			}
		})
	}
}

// A subject recorded only as a placeholder (a personal subject without a
// key store) stands for anyone a detector matches: a request from one, or
// a decision by one, is refused rather than compared.
func TestPlaceholderSubjectsCannotDecide(t *testing.T) {
	b, _ := broker(t)
	placeholder := events.Actor{Issuer: "https://idp.example", Subject: "[REDACTED:email]", Kind: events.Human}
	r := &approvals.Request{ID: approvals.NewID(), Tenant: "acme", Rule: "ddl", Requester: placeholder, Statement: "DROP TABLE t",
		RequestedAt: time.Now().UTC(), ExpiresAt: time.Now().Add(time.Minute).UTC()}
	if err := b.Open(t.Context(), r); err != nil {
		t.Fatal(err)
	}
	other := placeholder
	other.Issuer = "https://other.example"
	for _, who := range []events.Actor{bob, other} {
		if _, err := b.Decide(t.Context(), r.ID, who, true, "ok"); !errors.Is(err, approvals.ErrSelfApproval) || !strings.Contains(err.Error(), "requester's subject") {
			t.Errorf("deciding a placeholder's request as %s: %v, want refused", who.Subject, err)
		}
	}
	r2 := open(t, b, "DROP TABLE u", time.Minute)
	if _, err := b.Decide(t.Context(), r2.ID, placeholder, true, "ok"); !errors.Is(err, approvals.ErrSelfApproval) || !strings.Contains(err.Error(), "decider's subject") {
		t.Errorf("a placeholder deciding: %v, want refused", err)
	}
	if _, err := b.Decide(t.Context(), r2.ID, bob, true, "ok"); err != nil {
		t.Errorf("bob deciding alice's request: %v", err)
	}
}

// A decider's reason is kept, signed and recorded as detect.FreeText keeps
// it: the writer would refuse a decision event holding a value as typed
// (a held statement would then run with no approval.granted sealed), and
// the bucket would keep the value in clear.
func TestDecisionReasonKeepsNoValue(t *testing.T) {
	b, js := broker(t)
	const card, mail = "4968575613922114", "capprovalreason.kavvea@example.org"
	r := open(t, b, "DROP TABLE victim", time.Minute)
	d, err := b.Decide(t.Context(), r.ID, bob, true, "customer "+mail+" card "+card+" asked")
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(d.Reason, card) || strings.Contains(d.Reason, mail) || !strings.HasPrefix(d.Reason, "customer [REDACTED:email]") {
		t.Errorf("decided reason %q", d.Reason)
	}
	var granted int
	for _, st := range natstest.Events(t, js, "") {
		if strings.Contains(string(st.Raw), card) || strings.Contains(string(st.Raw), mail) {
			t.Errorf("%s holds a value: %s", st.Event.Type, st.Raw)
		}
		if err := detect.CheckEvent(st.Raw); err != nil {
			t.Errorf("the writer refuses %s: %v", st.Event.Type, err)
		}
		if st.Event.Type == events.ApprovalGranted {
			granted++
		}
	}
	if granted != 1 {
		t.Errorf("%d approval.granted events, want 1", granted)
	}
	kv, err := js.KeyValue(t.Context(), approvals.Bucket)
	if err != nil {
		t.Fatal(err)
	}
	e, err := kv.Get(t.Context(), r.ID)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(e.Value()), card) || strings.Contains(string(e.Value()), mail) {
		t.Errorf("the bucket's record holds a value: %s", e.Value())
	}
}
