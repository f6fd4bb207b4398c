package api_test

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/auditledger/auditledger/events"
	"github.com/auditledger/auditledger/ledger"
	"github.com/auditledger/auditledger/services/api"
	"github.com/auditledger/auditledger/services/approvals"
	"github.com/auditledger/auditledger/test/natstest"
)

// globexEvents are 8 events of a second tenant, globex: session g1 on
// target billing, each statement naming a globex secret. The last has the
// id of one of acme's events (ids are unique within a tenant only).
func globexEvents() []ledger.Entry {
	var es []ledger.Entry
	for i := range 8 {
		id := fmt.Sprintf("gx-%d", i)
		if i == 7 {
			id = "ev-5"
		}
		es = append(es, ledger.Entry{Event: fmt.Appendf(nil, `{"version":1,"id":"%s","type":"command.executed","time":"2026-11-26T12:01:%02dZ","tenant":"globex","source":{"kind":"postgres-proxy","instance":"p2"},"actor":{"issuer":"https://idp.example","subject":"gina","kind":"human"},"session_id":"g1","session_seq":%d,"target":{"kind":"postgres","name":"billing"},"payload":{"statement":"SELECT globex_secret_%d"}}`, id, i, i+1, i)})
	}
	return es
}

// An auditor scoped to tenant acme gets nothing of tenant globex through
// any endpoint — events, sessions, timelines, proofs, entry tiles,
// evidence builds, status and downloads — while an auditor of every
// tenant gets both; an auditor holding no tenant group gets nothing; and
// every refusal is in the log as command.blocked.
func TestTenantScope(t *testing.T) {
	f := newReadFixture(t, globexEvents()...)
	carol, olga := f.tokens["carol"], f.tokens["olga"]
	events1000 := func(token, query string) (int, []api.EventResult) {
		code, _, body := f.get(t, "/v1/events?limit=1000"+query, token)
		var page api.EventPage
		json.Unmarshal([]byte(body), &page)
		return code, page.Events
	}
	tenants := func(es []api.EventResult) map[string]int {
		n := map[string]int{}
		for _, e := range es {
			var ev events.Event
			json.Unmarshal(e.Event, &ev)
			n[ev.Tenant]++
		}
		return n
	}
	// The auditor of every tenant sees both; carol sees acme's only,
	// whatever the filter.
	if code, es := events1000(olga, ""); code != 200 || tenants(es)["acme"] != 40 || tenants(es)["globex"] != 8 {
		t.Fatalf("olga (tenant:*): %d, %v; want 40 of acme and 8 of globex", code, tenants(es))
	}
	if code, es := events1000(carol, ""); code != 200 || len(es) != 40 || tenants(es)["acme"] != 40 {
		t.Errorf("carol (tenant:acme): %d, %v; want acme's 40 only", code, tenants(es))
	}
	for _, q := range []string{"&q=globex_secret", "&session=g1", "&actor=gina", "&target=billing", "&after=39"} {
		if code, es := events1000(carol, q); code != 200 || len(es) != 0 {
			t.Errorf("carol, events%s: %d, %d events; want none", q, code, len(es))
		}
	}
	code, _, body := f.get(t, "/v1/sessions?limit=1000", carol)
	var sessions []api.SessionSummary
	if json.Unmarshal([]byte(body), &sessions); code != 200 || len(sessions) != 4 {
		t.Errorf("carol's sessions: %d %s; want acme's 4", code, body)
	}
	for _, s := range sessions {
		if s.Tenant != "acme" {
			t.Errorf("carol sees session %s of tenant %s", s.SessionID, s.Tenant)
		}
	}
	// The id ev-5 is acme's for carol, with no word of globex's.
	code, _, body = f.get(t, "/v1/proofs/inclusion?event_id=ev-5", carol)
	if p, err := ledger.ParseInclusionProof([]byte(body)); code != 200 || err != nil || p.Index != 5 {
		t.Errorf("carol's proof of ev-5: %d %s; want acme's index 5", code, body)
	}
	// Entry bundles: tenant-bound records show other tenants' records
	// without their events.
	if code, _, body := f.get(t, "/v1/log/tile/entries/000.p/48", carol); code != 200 || strings.Contains(body, "globex_secret") || !strings.Contains(body, "\x03") {
		t.Errorf("carol's entry bundle: %d, shows globex's events: %v", code, strings.Contains(body, "globex_secret"))
	}

	// A bundle of globex, built by olga.
	from, to := time.Now().Add(-time.Hour).UTC().Format(time.RFC3339), time.Now().Add(time.Hour).UTC().Format(time.RFC3339)
	code, out := f.post(t, "/v1/evidence", olga, `{"tenant":"globex","from":"`+from+`","to":"`+to+`"}`)
	var st api.EvidenceStatus
	if err := json.Unmarshal([]byte(out), &st); code != 202 || err != nil {
		t.Fatalf("olga's globex bundle: %d %s", code, out)
	}
	bundle := st.ID
	var refused []string // paths carol or uma was refused, each to be recorded
	for _, c := range []struct {
		who, method, path, body string
		code                    int
	}{
		{"carol", "GET", "/v1/events?tenant=globex", "", 403},
		{"carol", "GET", "/v1/sessions?tenant=globex", "", 403},
		{"carol", "GET", "/v1/sessions/g1?tenant=globex", "", 403},
		{"carol", "GET", "/v1/proofs/inclusion?event_id=gx-1", "", 404},
		{"carol", "GET", "/v1/proofs/inclusion?index=41", "", 404},
		{"carol", "POST", "/v1/evidence", `{"tenant":"globex","from":"` + from + `","to":"` + to + `"}`, 403},
		{"carol", "GET", "/v1/evidence/" + bundle, "", 403},
		{"carol", "GET", "/v1/evidence/" + bundle + "/download", "", 403},
		{"uma", "GET", "/v1/events", "", 403},
		{"uma", "GET", "/v1/sessions", "", 403},
		{"uma", "GET", "/v1/events?tenant=acme", "", 403},
		{"uma", "GET", "/v1/proofs/inclusion?index=1", "", 404},
		{"uma", "GET", "/v1/evidence/" + bundle, "", 403},
	} {
		var code int
		var body string
		if c.method == "POST" {
			code, body = f.post(t, c.path, f.tokens[c.who], c.body)
		} else {
			code, _, body = f.get(t, c.path, f.tokens[c.who])
		}
		if code != c.code || strings.Contains(body, "globex_secret") {
			t.Errorf("%s %s %s: %d %s; want %d", c.who, c.method, c.path, code, body, c.code)
		}
		if code == 404 && strings.Contains(body, "scope") {
			t.Errorf("%s %s: %s; a hidden event must read as an unknown one", c.who, c.path, body)
		}
		refused = append(refused, c.who+" "+strings.SplitN(c.path, "?", 2)[0])
	}
	// Olga's bundle is hers to read; carol stays refused once it is ready.
	natstest.CheckFor(t, 60*time.Second, 50*time.Millisecond, func() error {
		code, _, body := f.get(t, "/v1/evidence/"+bundle, olga)
		if json.Unmarshal([]byte(body), &st); code != 200 || st.Status != "ready" {
			return fmt.Errorf("olga's bundle: %d %s", code, body)
		}
		return nil
	})
	if code, ctype, _ := f.get(t, "/v1/evidence/"+bundle+"/download", olga); code != 200 || ctype != "application/zip" {
		t.Errorf("olga downloads her globex bundle: %d %s", code, ctype)
	}
	if code, _, body := f.get(t, "/v1/evidence/"+bundle+"/download", carol); code != 403 || strings.Contains(body, st.SHA256) {
		t.Errorf("carol downloads the ready globex bundle: %d %s; want 403", code, body)
	}
	refused = append(refused, "carol /v1/evidence/"+bundle+"/download")

	// A record from before tenant-bound records holds its event in its
	// leaf input: an entry bundle showing one of globex's is refused to
	// carol, and served to olga.
	var header []byte
	if err := f.db.QueryRow(t.Context(), `SELECT header FROM events WHERE idx = 47`).Scan(&header); err != nil {
		t.Fatal(err)
	}
	legacy := append([]byte{ledger.RecordVersion}, header[1:ledger.RecordHeaderSize]...)
	if _, err := f.db.Exec(t.Context(), `UPDATE events SET header = $1 WHERE idx = 47`, legacy); err != nil {
		t.Fatal(err)
	}
	if code, _, body := f.get(t, "/v1/log/tile/entries/000.p/48", carol); code != 403 || strings.Contains(body, "globex") {
		t.Errorf("carol's entry bundle with a version-1 record of globex: %d %s; want 403", code, body)
	}
	refused = append(refused, "carol /v1/log/tile/entries/000.p/48")
	if code, _, body := f.get(t, "/v1/log/tile/entries/000.p/48", olga); code != 200 || !strings.Contains(body, "globex_secret_7") {
		t.Errorf("olga's entry bundle: %d; want 200 with the version-1 record whole", code)
	}

	// Every refusal is in the log, by whom and of what.
	natstest.CheckFor(t, 60*time.Second, 50*time.Millisecond, func() error {
		blocked := map[string]int{}
		for _, s := range f.stream() {
			if s.Event.Type == events.CommandBlocked && strings.HasPrefix(fmt.Sprint(s.Payload["reason"]), "out of scope") {
				blocked[s.Event.Actor.Subject+" "+fmt.Sprint(s.Payload["path"])]++
			}
		}
		for _, r := range refused {
			if blocked[r] == 0 {
				return fmt.Errorf("the refusal of %s is not recorded (recorded: %v)", r, blocked)
			}
			blocked[r]--
		}
		return nil
	})
}

// The API's own events go to the tenant whose data they concern, so a
// tenant's auditors read, in their tenant's events, nothing of another
// tenant: a read under the tenant read (a list spanning tenants as one
// audit.accessed per tenant, with that tenant's part), a refusal under the
// tenant asked for, an export and its download under the bundle's tenant,
// and what concerns no tenant (a failed token, a refusal naming no tenant,
// a checkpoint) under the API's own tenant, with no tenant's names.
func TestOwnEventsStayInTheirTenant(t *testing.T) {
	f := newReadFixture(t, globexEvents()...)
	tok := f.tokens
	now := time.Now().UTC()
	// A pending approval in each tenant, on a target named after it.
	approval := map[string]string{}
	for _, tenant := range []string{"acme", "globex"} {
		r := &approvals.Request{ID: approvals.NewID(), Tenant: tenant, Rule: "ddl",
			Requester: events.Actor{Issuer: "https://idp.example", Subject: "dev-" + tenant, Kind: events.Human},
			Target:    events.Target{Kind: "postgres", Name: "db-" + tenant}, Statement: "DROP TABLE " + tenant,
			RequestedAt: now, ExpiresAt: now.Add(time.Hour)}
		if err := f.approvals.Open(t.Context(), r); err != nil {
			t.Fatal(err)
		}
		approval[tenant] = r.ID
	}
	// carol (acme) and gina (globex) each build, follow and download a
	// bundle of their tenant.
	from, to := now.Add(-time.Hour).Format(time.RFC3339), now.Add(time.Hour).Format(time.RFC3339)
	bundle := map[string]string{}
	for who, tenant := range map[string]string{"carol": "acme", "gina": "globex"} {
		code, out := f.post(t, "/v1/evidence", tok[who], `{"tenant":"`+tenant+`","from":"`+from+`","to":"`+to+`"}`)
		var st api.EvidenceStatus
		if err := json.Unmarshal([]byte(out), &st); code != 202 || err != nil {
			t.Fatalf("%s's %s bundle: %d %s", who, tenant, code, out)
		}
		bundle[tenant] = st.ID
	}
	for who, tenant := range map[string]string{"carol": "acme", "gina": "globex"} {
		natstest.CheckFor(t, 120*time.Second, 50*time.Millisecond, func() error {
			var st api.EvidenceStatus
			code, _, body := f.get(t, "/v1/evidence/"+bundle[tenant], tok[who])
			if json.Unmarshal([]byte(body), &st); code != 200 || st.Status != "ready" {
				return fmt.Errorf("%s's bundle: %d %s", who, code, body)
			}
			return nil
		})
		if code, _, _ := f.get(t, "/v1/evidence/"+bundle[tenant]+"/download", tok[who]); code != 200 {
			t.Fatalf("%s downloads her %s bundle: %d", who, tenant, code)
		}
	}

	// Reads; tenant is where each audit.accessed belongs.
	type read struct{ who, path, tenant string }
	reads := []read{
		{"carol", "/v1/events?limit=1000", "acme"},
		{"carol", "/v1/sessions", "acme"},
		{"carol", "/v1/sessions/s1?tenant=acme", "acme"},
		{"carol", "/v1/proofs/inclusion?event_id=ev-3", "acme"},
		{"gina", "/v1/events?limit=1000", "globex"},
		{"gina", "/v1/sessions", "globex"},
		{"gina", "/v1/sessions/g1?tenant=globex", "globex"},
		{"gina", "/v1/proofs/inclusion?event_id=gx-2", "globex"},
		{"gina", "/v1/proofs/inclusion?index=44", "globex"},
		{"gina", "/v1/checkpoints/latest", "ops"},
		{"milo", "/v1/approvals/" + approval["globex"], "globex"},
		// Lists spanning both tenants: one record in each.
		{"milo", "/v1/events?limit=1000", "acme"}, {"milo", "/v1/events?limit=1000", "globex"},
		{"milo", "/v1/sessions", "acme"}, {"milo", "/v1/sessions", "globex"},
		{"milo", "/v1/approvals", "acme"}, {"milo", "/v1/approvals", "globex"},
		{"olga", "/v1/events?limit=1000", "acme"}, {"olga", "/v1/events?limit=1000", "globex"},
	}
	for i, r := range reads {
		if i > 0 && reads[i-1].who == r.who && reads[i-1].path == r.path {
			continue
		}
		if code, _, body := f.get(t, r.path, tok[r.who]); code != 200 {
			t.Fatalf("%s GET %s: %d %s", r.who, r.path, code, body)
		}
	}
	// Refusals; tenant is the tenant asked for (the API's own, ops, when
	// none was).
	type refusal struct{ who, method, path, body, tenant string }
	refusals := []refusal{
		{"carol", "GET", "/v1/events?tenant=globex", "", "globex"},
		{"carol", "GET", "/v1/sessions/g1?tenant=globex", "", "globex"},
		{"carol", "GET", "/v1/proofs/inclusion?event_id=gx-1", "", "globex"},
		{"carol", "GET", "/v1/proofs/inclusion?index=41", "", "globex"},
		{"carol", "POST", "/v1/evidence", `{"tenant":"globex","from":"` + from + `","to":"` + to + `"}`, "globex"},
		{"carol", "GET", "/v1/evidence/" + bundle["globex"], "", "globex"},
		{"carol", "GET", "/v1/evidence/" + bundle["globex"] + "/download", "", "globex"},
		{"gina", "GET", "/v1/events?tenant=acme", "", "acme"},
		{"gina", "GET", "/v1/sessions?tenant=acme", "", "acme"},
		{"gina", "GET", "/v1/sessions/s1?tenant=acme", "", "acme"},
		{"gina", "GET", "/v1/proofs/inclusion?event_id=ev-3", "", "acme"},
		{"gina", "GET", "/v1/proofs/inclusion?index=3", "", "acme"},
		{"gina", "POST", "/v1/evidence", `{"tenant":"acme","from":"` + from + `","to":"` + to + `"}`, "acme"},
		{"gina", "GET", "/v1/evidence/" + bundle["acme"], "", "acme"},
		{"gina", "GET", "/v1/evidence/" + bundle["acme"] + "/download", "", "acme"},
		{"gina", "GET", "/v1/approvals/" + approval["acme"], "", "acme"},
		{"alice", "GET", "/v1/events?tenant=globex", "", "globex"}, // no role, a tenant named
		{"alice", "GET", "/v1/events", "", "ops"},                  // no role, no tenant named
		{"uma", "GET", "/v1/events", "", "ops"},                    // no tenant in her groups
	}
	for _, c := range refusals {
		var code int
		if c.method == "POST" {
			code, _ = f.post(t, c.path, tok[c.who], c.body)
		} else {
			code, _, _ = f.get(t, c.path, tok[c.who])
		}
		if code != 403 && code != 404 {
			t.Fatalf("%s %s %s: %d, want a refusal", c.who, c.method, c.path, code)
		}
	}
	if code, _, _ := f.get(t, "/v1/events?tenant=globex", ""); code != 401 {
		t.Fatalf("no token: %d, want 401", code)
	}

	// What each tenant's events must not hold: the names, ids and bundles
	// of the others.
	secrets := map[string][]string{
		"acme":   {"acme", bundle["acme"], approval["acme"]},
		"globex": {"globex", "gx-", bundle["globex"], approval["globex"]},
		"ops":    {},
	}
	natstest.CheckFor(t, 60*time.Second, 50*time.Millisecond, func() error {
		stored := f.stream()
		type key struct {
			typ               events.Type
			who, path, tenant string
		}
		seen := map[key][]natstest.Stored{}
		for _, s := range stored {
			p := fmt.Sprint(s.Payload["path"])
			k := key{s.Event.Type, s.Event.Actor.Subject, p, s.Event.Tenant}
			seen[k] = append(seen[k], s)
		}
		for _, r := range reads {
			if len(seen[key{events.AuditAccessed, r.who, strings.SplitN(r.path, "?", 2)[0], r.tenant}]) == 0 {
				return fmt.Errorf("%s's read of %s: no audit.accessed under tenant %s", r.who, r.path, r.tenant)
			}
		}
		for _, c := range refusals {
			if len(seen[key{events.CommandBlocked, c.who, strings.SplitN(c.path, "?", 2)[0], c.tenant}]) == 0 {
				return fmt.Errorf("%s's refused %s %s: no command.blocked under tenant %s", c.who, c.method, c.path, c.tenant)
			}
		}
		if len(seen[key{events.AuthnFailed, "unauthenticated", "/v1/events", "ops"}]) == 0 {
			return fmt.Errorf("the call without a token: no authn.failed under tenant ops")
		}
		for who, tenant := range map[string]string{"carol": "acme", "gina": "globex"} {
			if len(seen[key{events.EvidenceExported, who, "/v1/evidence", tenant}]) == 0 ||
				len(seen[key{events.AuditAccessed, who, "/v1/evidence/" + bundle[tenant] + "/download", tenant}]) == 0 {
				return fmt.Errorf("%s's %s bundle: its export or download is not under tenant %s", who, tenant, tenant)
			}
		}
		// Each tenant's part of a list spanning both.
		for _, who := range []string{"milo", "olga"} {
			for tenant, want := range map[string]string{"acme": "40 0 39", "globex": "8 40 47"} {
				got := seen[key{events.AuditAccessed, who, "/v1/events", tenant}]
				if len(got) != 1 || fmt.Sprint(got[0].Payload["count"], got[0].Payload["first_index"], got[0].Payload["last_index"]) != want {
					return fmt.Errorf("%s's events list under %s: %d records, want one of count, first and last index %s", who, tenant, len(got), want)
				}
			}
		}
		for tenant, id := range approval {
			got := seen[key{events.AuditAccessed, "milo", "/v1/approvals", tenant}]
			if len(got) != 1 || fmt.Sprint(got[0].Payload["ids"]) != "["+id+"]" {
				return fmt.Errorf("milo's approvals list under %s: %d records, want one listing %s", tenant, len(got), id)
			}
		}
		for _, s := range stored {
			for other, words := range secrets {
				if other == s.Event.Tenant {
					continue
				}
				for _, w := range words {
					if strings.Contains(string(s.Raw), w) {
						return fmt.Errorf("an event of tenant %s holds %q of tenant %s: %s", s.Event.Tenant, w, other, s.Raw)
					}
				}
			}
		}
		return nil
	})
}
