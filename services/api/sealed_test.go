package api_test

import (
	"encoding/json"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/auditledger/auditledger/events"
	"github.com/auditledger/auditledger/internal/oidcdev"
	"github.com/auditledger/auditledger/ledger/piikeys"
	"github.com/auditledger/auditledger/services/api"
	"github.com/auditledger/auditledger/services/gateway"
	"github.com/auditledger/auditledger/services/gateway/gatewaytest"
	"github.com/auditledger/auditledger/test/natstest"
)

// A person with an opaque subject and an e-mail works through a gateway,
// which seals the e-mail. An auditor sees it opened in the approvals and
// through POST /v1/sealed/open, and finds the person's sealed events by
// the address (in any letter case); an approver alone sees the subject,
// not the address, and a caller of another tenant is refused. Once the
// subject is erased, the address finds nothing and opens as (erased).
func TestSealedEmailsOpenedForAuditors(t *testing.T) {
	dana := gatewaytest.Email(t, "dana")
	x := newPIIRig(t, []oidcdev.User{
		{Name: "u-dana", Secret: "d", Email: dana, Groups: []string{"tenant:acme", "target:*"}},
		{Name: "rita", Secret: "r", Groups: []string{"approver", "tenant:acme", "target:*"}},
		{Name: "carol", Secret: "c", Groups: []string{"auditor", "tenant:acme", "target:*"}},
		{Name: "olga", Secret: "o", Groups: []string{"auditor", "tenant:globex", "target:*"}},
	})
	get := func(user, path string, out any) {
		t.Helper()
		code, body := x.call(t, "GET", path, x.tok[user], "")
		if code != 200 || json.Unmarshal([]byte(body), out) != nil {
			t.Fatalf("%s as %s: %d %s", path, user, code, body)
		}
	}

	s := x.session(t, x.tok["u-dana"])
	held := make(chan error, 1)
	go func() {
		_, _, err := s.Hold(t.Context(), gateway.Hold{Rule: "ddl", Reason: "schema change", Timeout: time.Minute, Statement: "DROP TABLE t"})
		held <- err
	}()
	r := x.pending(t)
	if !strings.HasPrefix(r.Requester.Email, piikeys.TokenPrefix) {
		t.Fatalf("the approvals bucket holds the requester's e-mail as %q, want it sealed", r.Requester.Email)
	}
	approvalsAs := func(user string) (list []api.ApprovalResult, body string) {
		t.Helper()
		code, b := x.call(t, "GET", "/v1/approvals?status=pending", x.tok[user], "")
		if code != 200 || json.Unmarshal([]byte(b), &list) != nil || len(list) != 1 {
			t.Fatalf("approvals as %s: %d %s", user, code, b)
		}
		return list, b
	}
	if list, body := approvalsAs("rita"); list[0].RequesterEmail != "" || strings.Contains(body, dana) {
		t.Errorf("an approver is shown the requester's e-mail: %s", body)
	}
	if list, _ := approvalsAs("carol"); list[0].RequesterEmail != dana || list[0].Requester.Subject != "u-dana" {
		t.Errorf("an auditor is shown requester %+v, e-mail %q; want %s", list[0].Requester, list[0].RequesterEmail, dana)
	}
	if code, body := x.call(t, "POST", "/v1/approvals/"+r.ID+"/deny", x.tok["rita"], `{"reason":"not now"}`); code != 200 {
		t.Fatalf("deny: %d %s", code, body)
	}
	if err := <-held; err != nil {
		t.Fatal(err)
	}
	if _, err := s.Record(t.Context(), events.CommandExecuted, map[string]any{"statement": "SELECT 1"}); err != nil {
		t.Fatal(err)
	}
	s.End(t.Context(), map[string]any{})
	x.project(t)
	var danas []natstest.Stored
	for _, st := range natstest.Events(t, x.js, "") {
		if st.Event.SessionID == s.ID() {
			danas = append(danas, st)
		}
	}
	if len(danas) < 4 {
		t.Fatalf("%d events of the session, want start, request, command, end", len(danas))
	}

	// The session's timeline opens the sealed e-mail too (read from the
	// projection's column, not the event).
	var tl api.Timeline
	get("carol", "/v1/sessions/"+url.PathEscape(s.ID())+"?tenant=acme", &tl)
	if len(tl.Events) != len(danas) {
		t.Fatalf("the timeline holds %d events, the session %d", len(tl.Events), len(danas))
	}
	for _, e := range tl.Events {
		if e.ActorEmail != dana {
			t.Errorf("the timeline's event %d shows e-mail %q, want %s", e.Index, e.ActorEmail, dana)
		}
	}

	// The address finds the sealed events, as typed in another case.
	byEmail := "/v1/events?tenant=acme&email=" + url.QueryEscape(strings.ToUpper(dana))
	var page api.EventPage
	get("carol", byEmail, &page)
	sealed := 0
	for _, e := range page.Events {
		if e.ActorEmail != dana {
			t.Errorf("event %d found by the address shows e-mail %q", e.Index, e.ActorEmail)
		}
		var ev events.Event
		json.Unmarshal(e.Event, &ev)
		if strings.HasPrefix(ev.Actor.Email, piikeys.TokenPrefix) {
			sealed++
		}
	}
	if len(page.Events) != len(danas) || sealed != len(danas) {
		t.Errorf("the address finds %d events (%d sealed), want the session's %d", len(page.Events), sealed, len(danas))
	}

	// The search by value finds them too, by the sealed actor e-mail.
	mb, _ := json.Marshal(api.MatchRequest{Value: " " + strings.ToUpper(dana), Tenant: "acme"})
	code, body := x.call(t, "POST", "/v1/events/match", x.tok["carol"], string(mb))
	var mp api.MatchPage
	if code != 200 || json.Unmarshal([]byte(body), &mp) != nil {
		t.Fatalf("match as carol: %d %s", code, body)
	}
	if len(mp.Events) != len(danas) {
		t.Errorf("the value finds %d events, want the session's %d: %s", len(mp.Events), len(danas), body)
	}
	for _, e := range mp.Events {
		if !slices.Contains(e.Matched, api.MatchPlace{Path: "actor.email", Detector: "email"}) {
			t.Errorf("event %d found by value, matched at %v; want the sealed actor e-mail", e.Index, e.Matched)
		}
	}
	mb, _ = json.Marshal(api.MatchRequest{Value: dana, Tenant: "acme"})
	if code, body := x.call(t, "POST", "/v1/events/match", x.tok["olga"], string(mb)); code == 200 && strings.Contains(body, `"index"`) {
		t.Errorf("an auditor of another tenant finds the events by value: %s", body)
	}

	// Opening what a tool read from the records.
	open := func(user string) (int, string) {
		t.Helper()
		b, _ := json.Marshal(api.OpenRequest{Fields: []api.SealedField{{Tenant: "acme", Token: danas[0].Event.Actor.Email}}})
		return x.call(t, "POST", "/v1/sealed/open", x.tok[user], string(b))
	}
	if code, body := open("carol"); code != 200 || !strings.Contains(body, `"`+dana+`"`) {
		t.Errorf("open as an auditor of acme: %d %s", code, body)
	}
	for _, user := range []string{"olga", "rita"} {
		if code, body := open(user); code != 403 || strings.Contains(body, dana) {
			t.Errorf("open as %s: %d %s; want 403", user, code, body)
		}
	}
	x.project(t)
	var opened int
	for _, st := range natstest.Events(t, x.js, "") {
		if st.Event.Type == events.AuditAccessed && strings.Contains(string(st.Event.Payload), `"resource":"sealed"`) {
			opened++
			p, _, _ := piikeys.ParseToken(danas[0].Event.Actor.Email)
			if !strings.Contains(string(st.Event.Payload), p) {
				t.Errorf("the opening is recorded without the pseudonym: %s", st.Event.Payload)
			}
		}
	}
	if opened != 1 {
		t.Errorf("%d openings recorded, want 1", opened)
	}

	// Erased: not found by the address, shown as erased.
	if _, err := x.gwKeys.Erase(t.Context(), "acme", x.idp.Issuer, "u-dana"); err != nil {
		t.Fatal(err)
	}
	get("carol", byEmail, &page)
	if len(page.Events) != 0 {
		t.Errorf("after erasure the address finds %d events", len(page.Events))
	}
	if code, body := open("carol"); code != 200 || !strings.Contains(body, `"`+api.ErasedEmail+`"`) {
		t.Errorf("open after erasure: %d %s", code, body)
	}
	var all api.EventPage
	get("carol", "/v1/events?tenant=acme&actor=u-dana", &all)
	if len(all.Events) != len(danas) || all.Events[0].ActorEmail != api.ErasedEmail {
		t.Errorf("after erasure the subject's %d events show %+v", len(all.Events), all.Events)
	}
	x.project(t)
	checkProjection(t, x.db, dana)
	gatewaytest.CheckAbsent(t, gatewaytest.BusBytes(t, x.js), dana)
}
