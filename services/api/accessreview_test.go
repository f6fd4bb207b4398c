package api_test

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/auditledger/auditledger/events"
	"github.com/auditledger/auditledger/internal/oidcdev"
	"github.com/auditledger/auditledger/ledger"
	"github.com/auditledger/auditledger/ledger/file"
	"github.com/auditledger/auditledger/ledger/ledgertest"
	"github.com/auditledger/auditledger/projections"
	"github.com/auditledger/auditledger/services/access"
	"github.com/auditledger/auditledger/services/api"
	"github.com/auditledger/auditledger/test/natstest"
	"github.com/auditledger/auditledger/test/pgtest"
)

// TestAccessReviewsAPI: grants made through the API (an approved request,
// a break-glass grant) are sealed and projected into a real PostgreSQL;
// records under access.granted that are not the broker's signed grants
// (a changed window, another publisher, no signature) are listed as
// unverified with why, and the SSH gateway's certificates, in their own
// type and in the form earlier releases recorded, apart. Listing and
// sign-off are authenticated (development OpenID provider), authorised by
// role and scope — every refusal recorded — and the sign-off is recorded
// as access.reviewed by the token's identity over the listing's SHA-256.
func TestAccessReviewsAPI(t *testing.T) {
	pg := pgtest.StartT(t)
	db, err := pgxpool.New(t.Context(), pg.DSN(pg.NewDatabase(t)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(db.Close)
	logSigner := ledgertest.Signer(t, "api.test/log")
	store, _ := file.New(t.TempDir())
	lg, err := ledger.Open(t.Context(), ledger.Config{Store: store, Signer: logSigner})
	if err != nil {
		t.Fatal(err)
	}
	pcfg := projections.Config{DB: db, Store: store, Verifier: logSigner.Verifier()}
	if err := projections.Migrate(t.Context(), db); err != nil {
		t.Fatal(err)
	}
	all := []string{"tenant:acme", "target:*"}
	x := newAccessRig(t, []oidcdev.User{
		{Name: "alice", Groups: []string{"dev", "tenant:acme"}},
		{Name: "bob", Groups: append([]string{"dba", "approver"}, all...)},
		{Name: "dave", Groups: append([]string{"oncall", "security"}, all...)},
		{Name: "rita", Groups: append([]string{"security"}, all...)},
		{Name: "carol", Groups: append([]string{"auditors"}, all...)},
		{Name: "pat", Groups: []string{"approver", "tenant:acme", "target:orders"}},
		{Name: "gina", Groups: []string{"security", "tenant:globex", "target:*"}},
	}, map[api.Role][]string{api.Approver: {"approver"}, api.Auditor: {"auditors"}, api.Security: {"security"}}, db)
	tok, js, em, src := x.tok, x.js, x.em, x.src
	call := func(method, path, token, body string) (int, string) {
		t.Helper()
		return x.call(t, method, path, token, body)
	}

	// Two real grants: alice's, approved by bob; dave's break-glass.
	code, body := call("POST", "/v1/access-requests", tok["alice"], `{"tenant":"acme","target":"orders","duration":"2h","reason":"INC-7"}`)
	var req access.Request
	if code != 200 || json.Unmarshal([]byte(body), &req) != nil {
		t.Fatalf("request: %d %s", code, body)
	}
	if code, body := call("POST", "/v1/access-requests/"+req.ID+"/approve", tok["bob"], `{"reason":"INC-7 is real"}`); code != 200 {
		t.Fatalf("approve: %d %s", code, body)
	}
	var glass access.Request
	code, body = call("POST", "/v1/access-requests", tok["dave"], `{"tenant":"acme","target":"orders","reason":"outage","break_glass":true}`)
	if code != 200 || json.Unmarshal([]byte(body), &glass) != nil {
		t.Fatalf("break-glass: %d %s", code, body)
	}
	em.Wait()

	// Seal what the broker recorded, and what others wrote under
	// access.granted, as the ledger writer would.
	var es []ledger.Entry
	var granted natstest.Stored
	for _, st := range natstest.Events(t, js, "") {
		if strings.HasPrefix(string(st.Event.Type), "access.") {
			es = append(es, ledger.Entry{Event: st.Raw})
		}
		if st.Event.Type == events.AccessGranted && st.Payload["access_id"] == req.ID {
			granted = st
		}
	}
	if granted.Event == nil || granted.Payload["signature"] == "" {
		t.Fatalf("alice's access.granted on the bus, with its signature: %+v", granted.Payload)
	}
	forge := func(id string, change func(ev *events.Event, p map[string]any)) ledger.Entry {
		ev := *granted.Event
		p := map[string]any{}
		for k, v := range granted.Payload {
			p[k] = v
		}
		ev.ID = id
		change(&ev, p)
		ev.Payload, _ = json.Marshal(p)
		raw, err := json.Marshal(&ev)
		if err != nil {
			t.Fatal(err)
		}
		return ledger.Entry{Event: raw}
	}
	now := time.Now().UTC().Truncate(time.Second)
	es = append(es,
		forge("forged-longer", func(_ *events.Event, p map[string]any) {
			p["access_id"], p["not_after"] = "acc-longer00001", now.Add(30*24*time.Hour).Format(time.RFC3339)
		}),
		forge("forged-publisher", func(ev *events.Event, p map[string]any) {
			ev.Source.Instance = "proxy-1"
			p["access_id"] = "acc-other000001"
		}),
		forge("forged-unsigned", func(_ *events.Event, p map[string]any) { delete(p, "signature"); p["access_id"] = "acc-unsigned001" }),
	)
	// The legacy certificate's payload is the SSH gateway's own.
	legacy := fmt.Appendf(nil, `{"version":1,"id":"legacy-ssh-cert","type":"access.granted","time":%q,"tenant":"acme","source":{"kind":"ssh-proxy","instance":"ssh-1"},"actor":{"issuer":%q,"subject":"alice","kind":"human"},"target":{"kind":"ssh","name":"ssh-login"},"payload":{"grant":"ssh-user-certificate","client_addr":"127.0.0.1:5","serial":"4242","key_id":"alice","principals":["alice"],"valid_before":%q}}`,
		now.Format(time.RFC3339), x.issuer, now.Add(time.Hour).Format(time.RFC3339))
	issued := fmt.Appendf(nil, `{"version":1,"id":"new-ssh-cert","type":"ssh.certificate.issued","time":%q,"tenant":"acme","source":{"kind":"ssh-proxy","instance":"ssh-1"},"actor":{"issuer":%q,"subject":"alice","kind":"human"},"target":{"kind":"ssh","name":"ssh-login"},"payload":{"client_addr":"127.0.0.1:5","serial":"4243","key_id":"alice","principals":["alice"],"valid_before":%q}}`,
		now.Format(time.RFC3339), x.issuer, now.Add(time.Hour).Format(time.RFC3339))
	session := fmt.Appendf(nil, `{"version":1,"id":"sess-1","type":"session.started","time":%q,"tenant":"acme","source":{"kind":"postgres-proxy","instance":"pg-1"},"actor":{"issuer":%q,"subject":"alice","kind":"human"},"session_id":"s1","session_seq":1,"target":{"kind":"postgres","name":"orders"},"payload":{"access_id":%q}}`,
		now.Format(time.RFC3339), x.issuer, req.ID)
	es = append(es, ledger.Entry{Event: legacy}, ledger.Entry{Event: issued}, ledger.Entry{Event: session})
	if _, err := lg.Append(t.Context(), es); err != nil {
		t.Fatal(err)
	}
	for {
		applied, err := projections.Step(t.Context(), pcfg)
		if err != nil {
			t.Fatal(err)
		}
		if !applied {
			break
		}
	}

	period := "?" + url.Values{"tenant": {"acme"}, "from": {now.Add(-24 * time.Hour).Format(time.RFC3339)}, "to": {now.Add(24 * time.Hour).Format(time.RFC3339)}}.Encode()
	code, listing := call("GET", "/v1/access-reviews"+period, tok["carol"], "")
	if code != 200 {
		t.Fatalf("listing: %d %s", code, listing)
	}
	var l access.Listing
	if err := json.Unmarshal([]byte(listing), &l); err != nil {
		t.Fatal(err)
	}
	var grants []string
	for _, g := range l.Grants {
		grants = append(grants, fmt.Sprintf("%s %s %s bg=%t sessions=%d approvers=%v", g.Holder, g.AccessID, g.Target, g.BreakGlass, g.Sessions, g.Approvers))
	}
	want := []string{fmt.Sprintf("alice %s orders bg=false sessions=1 approvers=[bob]", req.ID), fmt.Sprintf("dave %s orders bg=true sessions=0 approvers=[]", glass.ID)}
	if !slices.Equal(grants, want) {
		t.Errorf("grants:\n%s\nwant\n%s", strings.Join(grants, "\n"), strings.Join(want, "\n"))
	}
	why := map[string]string{}
	for _, u := range l.Unverified {
		why[u.AccessID] = u.Reason
	}
	for id, says := range map[string]string{"acc-longer00001": "signature does not verify", "acc-other000001": "published by api/proxy-1, not by the access broker",
		"acc-unsigned001": "carries no grant signature"} {
		if !strings.Contains(why[id], says) {
			t.Errorf("unverified %s: %q, want %q (all: %v)", id, why[id], says, why)
		}
	}
	if len(l.Unverified) != 3 {
		t.Errorf("%d unverified records, want 3: %+v", len(l.Unverified), l.Unverified)
	}
	var certs []string
	for _, c := range l.SSHCertificates {
		certs = append(certs, c.Holder+" "+c.Serial+" "+c.RecordedAs)
	}
	if !slices.Equal(certs, []string{"alice 4242 access.granted", "alice 4243 ssh.certificate.issued"}) {
		t.Errorf("ssh certificates: %v", certs)
	}
	sum := sha256.Sum256([]byte(listing))
	digest := hex.EncodeToString(sum[:])

	for _, c := range []struct {
		name, method, token, body string
		code                      int
		says                      string
	}{
		{"no role", "GET", tok["alice"], "", 403, "needs the role approver or security or auditor"},
		{"another tenant", "GET", tok["gina"], "", 403, "outside your scope (your groups give tenants [globex]"},
		{"some targets only", "GET", tok["pat"], "", 403, "covers every target"},
		{"auditor cannot sign off", "POST", tok["carol"], `{"reason":"fine"}`, 403, "needs the role approver or security"},
		{"no reason", "POST", tok["rita"], `{}`, 400, "a reason is required"},
		{"a holder signs off", "POST", tok["dave"], `{"reason":"fine"}`, 403, "held a grant in the period"},
		{"not the listing read", "POST", tok["rita"], `{"reason":"fine","listing_sha256":"00"}`, 409, "the listing changed"},
		{"sign-off", "POST", tok["rita"], fmt.Sprintf(`{"reason":"all justified","listing_sha256":%q}`, digest), 200, digest},
	} {
		code, body := call(c.method, "/v1/access-reviews"+period, c.token, c.body)
		if code != c.code || !strings.Contains(body, c.says) {
			t.Errorf("%s: %d %s, want %d with %q", c.name, code, body, c.code, c.says)
		}
	}

	// The read is on record with the listing's digest; the refusals are on
	// record under acme; the sign-off is access.reviewed by rita.
	natstest.CheckFor(t, 10*time.Second, 20*time.Millisecond, func() error {
		var read, reviewed bool
		blocked := map[string]bool{}
		for _, st := range natstest.Events(t, js, "") {
			switch st.Event.Type {
			case events.AuditAccessed:
				read = read || st.Event.Actor.Subject == "carol" && st.Payload["resource"] == "access-review" && st.Payload["listing_sha256"] == digest
			case events.CommandBlocked:
				if st.Event.Tenant == "acme" && strings.Contains(st.Payload["path"].(string), "/v1/access-reviews") {
					blocked[st.Event.Actor.Subject] = true
				}
			case events.AccessReviewed:
				reviewed = st.Event.Actor.Subject == "rita" && st.Event.Source == src && st.Payload["listing_sha256"] == digest &&
					st.Payload["by"] == "rita" && st.Payload["unverified"] == float64(3) && st.Payload["grants"] == float64(2) &&
					st.Event.Target.Kind == "access-review" && strings.HasPrefix(st.Event.ID, "access-review/")
			}
		}
		for _, who := range []string{"alice", "gina", "pat", "carol", "dave"} {
			if !blocked[who] {
				return fmt.Errorf("%s's refusal not recorded under acme (recorded: %v)", who, blocked)
			}
		}
		if !read || !reviewed {
			return fmt.Errorf("audit.accessed of the listing %v, access.reviewed by rita %v", read, reviewed)
		}
		return nil
	})
}
