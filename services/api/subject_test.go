package api_test

import (
	"encoding/json"
	"errors"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/auditledger/auditledger/events"
	"github.com/auditledger/auditledger/events/detect"
	"github.com/auditledger/auditledger/internal/oidcdev"
	"github.com/auditledger/auditledger/ledger/piikeys"
	"github.com/auditledger/auditledger/services/api"
	"github.com/auditledger/auditledger/services/gateway"
	"github.com/auditledger/auditledger/services/gateway/gatewaytest"
	"github.com/auditledger/auditledger/test/natstest"
)

// A person whose OIDC sub is their e-mail address (and who has a group
// naming it) works through a gateway: the events, the approvals bucket,
// the ledger and the projection hold the address nowhere, only the
// subject's pseudonym and placeholders. A second person approves the
// held command; the requester cannot approve it themself. The API finds
// the person's events by the raw subject, and erasing the raw subject
// destroys the key the pseudonym named: the old events keep it, new
// events get another.
func TestPersonalSubjectRecordedByPseudonym(t *testing.T) {
	ann, ben := gatewaytest.Email(t, "ann"), gatewaytest.Email(t, "ben")
	users := []oidcdev.User{
		{Name: ann, Secret: "a", Email: ann, Groups: []string{"approver", "tenant:acme", "target:*", "owner " + ann}},
		{Name: ben, Secret: "b", Groups: []string{"approver", "tenant:acme", "target:*"}},
		{Name: "carol", Secret: "c", Groups: []string{"auditor", "tenant:acme"}},
		{Name: "milo", Secret: "m", Groups: []string{"auditor", "tenant:acme", "tenant:globex"}},
	}
	x := newPIIRig(t, users)
	idp, tok, js, apiKeys, gwKeys, db := x.idp, x.tok, x.js, x.apiKeys, x.gwKeys, x.db
	em := x.em
	call := func(method, path, token, body string) (int, string) {
		t.Helper()
		return x.call(t, method, path, token, body)
	}
	annActor, err := x.auth.Authenticate(t.Context(), "", tok[ann])
	if err != nil || annActor.Subject != ann {
		t.Fatalf("ann's token: %+v, %v", annActor, err)
	}
	session := func() *gateway.Session { t.Helper(); return x.session(t, tok[ann]) }
	s := session()
	type held struct {
		ok  bool
		why string
		err error
	}
	res := make(chan held, 1)
	go func() {
		ok, why, err := s.Hold(t.Context(), gateway.Hold{Rule: "ddl", Reason: "schema change", Timeout: time.Minute, Statement: "DROP TABLE t"})
		res <- held{ok, why, err}
	}()
	r := x.pending(t)
	pseudonym := r.Requester.Subject
	p, _ := strings.CutPrefix(pseudonym, gateway.PseudonymPrefix)
	if !strings.HasPrefix(pseudonym, gateway.PseudonymPrefix) || len(p) != 32 {
		t.Fatalf("the approval's requester is %+v, want subject %s<32 hex>", r.Requester, gateway.PseudonymPrefix)
	}
	if want, err := apiKeys.PseudonymOf(t.Context(), "acme", idp.Issuer, ann); err != nil || p != want {
		t.Errorf("the requester's pseudonym %s, the key store's %s (%v)", p, want, err)
	}

	// Ann holds the approver role, but the request is hers: refused. Ben
	// approves it, and the gateway runs it.
	if code, body := call("POST", "/v1/approvals/"+r.ID+"/approve", tok[ann], `{"reason":"mine"}`); code != 403 || !strings.Contains(body, "cannot decide their own") {
		t.Errorf("self-approval by a subject recorded by pseudonym: %d %s", code, body)
	}
	if code, body := call("POST", "/v1/approvals/"+r.ID+"/approve", tok[ben], `{"reason":"ticket 7"}`); code != 200 || !strings.Contains(body, `"status": "granted"`) {
		t.Fatalf("approval by another person: %d %s", code, body)
	}
	select {
	case h := <-res:
		if !h.ok || h.err != nil {
			t.Fatalf("Hold = %v, %q, %v; want granted", h.ok, h.why, h.err)
		}
	case <-time.After(60 * time.Second):
		t.Fatal("the held command was not released")
	}
	if _, err := s.Record(t.Context(), events.CommandExecuted, map[string]any{"statement": "DROP TABLE t"}); err != nil {
		t.Fatal(err)
	}
	s.End(t.Context(), map[string]any{})

	// Every event as stored: the writer takes them all; the gateway's carry
	// the pseudonym and no group in clear.
	em.Wait()
	stored := natstest.Events(t, js, "")
	var annEvents, gatewayEvents, refusals int
	for _, st := range stored {
		if st.Event.Actor.Subject == pseudonym {
			annEvents++ // the API's record of her refused self-approval too
			if st.Event.Type == events.CommandBlocked && st.Event.Source.Kind == "api" {
				refusals++
			}
		}
		// The decision's event carries the decider; the API and the
		// gateway both record it, and whichever copy comes first is kept.
		if st.Event.Source.Kind != "test-gateway" || st.Event.Type == events.ApprovalGranted {
			continue
		}
		gatewayEvents++
		if st.Event.Actor.Subject != pseudonym || !strings.Contains(strings.Join(st.Event.Actor.Groups, ","), detect.Placeholder("email")) {
			t.Errorf("%s: actor %+v, want subject %s and the group naming the address as a placeholder", st.Event.Type, st.Event.Actor, pseudonym)
		}
	}
	if gatewayEvents < 4 || refusals != 1 {
		t.Fatalf("%d gateway events stored, want session start, approval request, command, end; %d refusals by the API under the same pseudonym, want 1", gatewayEvents, refusals)
	}
	gatewaytest.CheckAbsent(t, gatewaytest.BusBytes(t, js), ann, ben)

	project := func() { t.Helper(); x.project(t) }
	project()
	checkProjection(t, db, ann, ben)

	// The auditor finds ann's events by her subject as her provider names
	// it, with its issuer.
	q := "/v1/events?tenant=acme&issuer=" + url.QueryEscape(idp.Issuer) + "&actor=" + url.QueryEscape(ann)
	page := func(path string) api.EventPage {
		t.Helper()
		code, body := call("GET", path, tok["carol"], "")
		var p api.EventPage
		if err := json.Unmarshal([]byte(body), &p); code != 200 || err != nil {
			t.Fatalf("%s: %d %s", path, code, body)
		}
		return p
	}
	if got := page(q); len(got.Events) != annEvents {
		t.Errorf("events of the personal actor: %d, want %d", len(got.Events), annEvents)
	} else if got.Events[0].ActorEmail != ann {
		t.Errorf("actor_email %q, want the sealed e-mail opened", got.Events[0].ActorEmail)
	}
	// A pseudonym is per tenant and issuer: a query over two tenants, or
	// without the issuer, is refused.
	for _, c := range []struct{ path, user, param string }{
		{"/v1/events?tenant=acme&actor=" + url.QueryEscape(ann), "carol", "issuer"},
		{"/v1/sessions?actor=" + url.QueryEscape(ann), "carol", "issuer"},
		{"/v1/events?issuer=" + url.QueryEscape(idp.Issuer) + "&actor=" + url.QueryEscape(ann), "milo", "tenant"},
	} {
		code, body := call("GET", c.path, tok[c.user], "")
		var p api.Problem
		json.Unmarshal([]byte(body), &p)
		if code != 400 || p.Param != c.param || strings.Contains(body, ann) {
			t.Errorf("%s: %d %s; want 400 naming %q, without the address", c.path, code, body, c.param)
		}
	}

	// A request of Ann's still pending when she is erased.
	s3 := session()
	res3 := make(chan held, 1)
	go func() {
		ok, why, err := s3.Hold(t.Context(), gateway.Hold{Rule: "ddl", Reason: "schema change", Timeout: time.Minute, Statement: "DROP TABLE u"})
		res3 <- held{ok, why, err}
	}()
	r3 := x.pending(t)

	// erase takes the raw subject and finds the key the pseudonym names.
	erased, err := gwKeys.Erase(t.Context(), "acme", idp.Issuer, ann)
	if err != nil || erased != p {
		t.Fatalf("Erase(raw subject) = %q, %v; want the pseudonym %s", erased, err, p)
	}
	// Ann, back with a new key and so a new pseudonym, cannot approve her
	// own request through it: an erased requester is refused.
	if code, body := call("POST", "/v1/approvals/"+r3.ID+"/approve", tok[ann], `{"reason":"mine again"}`); code != 403 || !strings.Contains(body, "erased") {
		t.Errorf("approval of an erased requester's request: %d %s; want 403", code, body)
	}
	if code, body := call("POST", "/v1/approvals/"+r3.ID+"/deny", tok[ben], `{"reason":"requester erased"}`); code != 200 {
		t.Errorf("denial of an erased requester's request: %d %s", code, body)
	}
	if h := <-res3; h.ok || h.err != nil {
		t.Errorf("the erased requester's held command: ok %v, %v", h.ok, h.err)
	}
	if got := page(q); len(got.Events) != 0 {
		t.Errorf("after erasure the raw subject still finds %d events", len(got.Events))
	}
	if _, err := apiKeys.PseudonymOf(t.Context(), "acme", idp.Issuer, ann); !errors.Is(err, piikeys.ErrNoSubject) {
		t.Errorf("after erasure PseudonymOf = %v, want ErrNoSubject", err)
	}
	// A new session after erasure: another pseudonym (this gateway's
	// store forgot the erased key at Erase; another's within CacheFor).
	s2 := session()
	s2.End(t.Context(), map[string]any{})
	em.Wait()
	var again string
	for _, st := range natstest.Events(t, js, "") {
		if st.Event.SessionID == s2.ID() {
			again = st.Event.Actor.Subject
		}
	}
	if !strings.HasPrefix(again, gateway.PseudonymPrefix) || again == pseudonym {
		t.Errorf("after erasure a new session records subject %q, want a new pseudonym (not %s)", again, pseudonym)
	}
	project()
	checkProjection(t, db, ann, ben)
	gatewaytest.CheckAbsent(t, gatewaytest.BusBytes(t, js), ann, ben)
}

// checkProjection fails t when any row of any table of the projection
// holds one of values.
func checkProjection(t *testing.T, db *pgxpool.Pool, values ...string) {
	t.Helper()
	rows, err := db.Query(t.Context(), `SELECT quote_ident(table_schema) || '.' || quote_ident(table_name) FROM information_schema.tables
		WHERE table_type = 'BASE TABLE' AND table_schema NOT IN ('pg_catalog', 'information_schema')`)
	if err != nil {
		t.Fatal(err)
	}
	var tables []string
	for rows.Next() {
		var n string
		if err := rows.Scan(&n); err != nil {
			t.Fatal(err)
		}
		tables = append(tables, n)
	}
	if err := rows.Err(); err != nil || len(tables) == 0 {
		t.Fatalf("the projection's tables: %v, %v", tables, err)
	}
	var events int
	if err := db.QueryRow(t.Context(), `SELECT count(*) FROM `+eventsTable(tables)).Scan(&events); err != nil || events == 0 {
		t.Fatalf("the projection holds %d events (%v)", events, err)
	}
	for _, table := range tables {
		for _, value := range values {
			var n int
			if err := db.QueryRow(t.Context(), `SELECT count(*) FROM `+table+` r WHERE strpos(lower(r::text), lower($1)) > 0`, value).Scan(&n); err != nil {
				t.Fatal(err)
			}
			if n > 0 {
				t.Errorf("%d rows of %s hold %s", n, table, value)
			}
		}
	}
}

func eventsTable(tables []string) string {
	for _, n := range tables {
		if strings.HasSuffix(n, ".events") {
			return n
		}
	}
	return tables[0]
}
