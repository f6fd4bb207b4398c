package api_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/auditledger/auditledger/events"
	"github.com/auditledger/auditledger/events/detect"
	"github.com/auditledger/auditledger/internal/oidcdev"
	"github.com/auditledger/auditledger/ledger"
	"github.com/auditledger/auditledger/ledger/bus"
	"github.com/auditledger/auditledger/ledger/bus/emitter"
	"github.com/auditledger/auditledger/ledger/file"
	"github.com/auditledger/auditledger/ledger/ingest"
	"github.com/auditledger/auditledger/ledger/ledgertest"
	"github.com/auditledger/auditledger/ledger/piikeys"
	"github.com/auditledger/auditledger/projections"
	"github.com/auditledger/auditledger/services/api"
	"github.com/auditledger/auditledger/services/approvals"
	"github.com/auditledger/auditledger/services/gateway"
	"github.com/auditledger/auditledger/services/gateway/gatewaytest"
	"github.com/auditledger/auditledger/services/identity"
	"github.com/auditledger/auditledger/test/natstest"
	"github.com/auditledger/auditledger/test/pgtest"
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
	idp, err := oidcdev.Listen("127.0.0.1:0", oidcdev.Config{Audience: "auditledger", Users: users})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { idp.Close() })
	v, err := identity.NewOIDC(t.Context(), identity.OIDCConfig{Issuer: idp.Issuer, Audience: "auditledger"})
	if err != nil {
		t.Fatal(err)
	}
	tok := map[string]string{}
	for _, u := range users {
		if tok[u.Name], err = identity.ClientCredentialsToken(t.Context(), idp.Issuer, u.Name, u.Secret); err != nil {
			t.Fatal(err)
		}
	}

	_, js := natstest.Start(t).Connect(t)
	if err := bus.EnsureStreams(t.Context(), js, bus.StreamOptions{}); err != nil {
		t.Fatal(err)
	}
	em, err := emitter.New(emitter.Config{JetStream: js, Timeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { em.Close() })
	signer := ledgertest.Signer(t, "api.test/approvals")
	apiBroker, err := approvals.New(t.Context(), approvals.Config{JetStream: js, Create: true, Signer: signer, Emitter: em, Source: events.Source{Kind: "api", Instance: "t"}})
	if err != nil {
		t.Fatal(err)
	}
	gwBroker, err := approvals.New(t.Context(), approvals.Config{JetStream: js, Verifier: signer.Verifier(), Emitter: em, Source: events.Source{Kind: "test-gateway", Instance: "g1"}})
	if err != nil {
		t.Fatal(err)
	}
	// The API and the gateway each open the key store, as their roles do.
	apiKeys, err := piikeys.Open(t.Context(), js, 1)
	if err != nil {
		t.Fatal(err)
	}
	gwKeys, err := piikeys.Open(t.Context(), js, 1)
	if err != nil {
		t.Fatal(err)
	}

	// The writer seals what the bus holds into the log; the projection
	// reads the log.
	store, _ := file.New(t.TempDir())
	logSigner := ledgertest.Signer(t, "api.test/log")
	l, err := ledger.Open(t.Context(), ledger.Config{Store: store, Signer: logSigner})
	if err != nil {
		t.Fatal(err)
	}
	in, err := ingest.New(t.Context(), ingest.Config{JetStream: js, Log: l, Store: store, BatchSize: 50, MaxWait: 10 * time.Millisecond,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	ctx, stop := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- in.Run(ctx) }()
	t.Cleanup(func() { stop(); <-done })
	pg := pgtest.StartT(t)
	db, err := pgxpool.New(t.Context(), pg.DSN(pg.NewDatabase(t)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(db.Close)
	if err := projections.Migrate(t.Context(), db); err != nil {
		t.Fatal(err)
	}
	pcfg := projections.Config{DB: db, Store: store, Verifier: logSigner.Verifier()}

	h, err := api.New(api.Config{Auth: v, Approvals: apiBroker, Emitter: em, DB: db, Tenant: "ops", Keys: apiKeys})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	call := func(method, path, token, body string) (int, string) {
		t.Helper()
		req, _ := http.NewRequest(method, srv.URL+path, strings.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+token)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}

	g, err := gateway.New(gateway.Config{Name: "testgw", Kind: "test-gateway", Tenant: "acme", Emitter: em, Keys: gwKeys, Approvals: gwBroker})
	if err != nil {
		t.Fatal(err)
	}
	if err := g.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	annActor, err := v.Authenticate(t.Context(), "", tok[ann])
	if err != nil || annActor.Subject != ann {
		t.Fatalf("ann's token: %+v, %v", annActor, err)
	}
	session := func() *gateway.Session {
		s := g.Session(events.Target{Kind: "postgres", Name: "orders"})
		s.Authenticated(gateway.Identity{Actor: annActor, Method: gateway.OIDCToken})
		if err := s.Start(t.Context(), map[string]any{}); err != nil {
			t.Fatal(err)
		}
		return s
	}
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
	var r *approvals.Request
	natstest.CheckFor(t, 30*time.Second, 20*time.Millisecond, func() error {
		list, err := apiBroker.List(t.Context(), approvals.Pending)
		if err != nil || len(list) != 1 {
			return fmt.Errorf("pending: %d, %v", len(list), err)
		}
		r = list[0]
		return nil
	})
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

	project := func() {
		t.Helper()
		want := uint64(len(natstest.Events(t, js, "")))
		natstest.CheckFor(t, 60*time.Second, 20*time.Millisecond, func() error {
			if n := l.Size(); n < want {
				return fmt.Errorf("the log holds %d records, the bus %d events", n, want)
			}
			return nil
		})
		for {
			applied, err := projections.Step(t.Context(), pcfg)
			if err != nil {
				t.Fatal(err)
			}
			if !applied {
				break
			}
		}
		// The writer took every event (none refused for what it holds).
		var ids []string
		for _, st := range natstest.Events(t, js, "") {
			ids = append(ids, st.Event.ID)
		}
		var n int
		if err := db.QueryRow(t.Context(), `SELECT count(*) FROM events WHERE id = ANY($1)`, ids).Scan(&n); err != nil || n != len(ids) {
			t.Fatalf("the projection holds %d of the %d events on the bus (%v)", n, len(ids), err)
		}
	}
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
	var r3 *approvals.Request
	natstest.CheckFor(t, 30*time.Second, 20*time.Millisecond, func() error {
		list, err := apiBroker.List(t.Context(), approvals.Pending)
		if err != nil || len(list) != 1 {
			return fmt.Errorf("pending: %d, %v", len(list), err)
		}
		r3 = list[0]
		return nil
	})

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
