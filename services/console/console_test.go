package console_test

import (
	"crypto/sha256"
	"encoding/csv"
	"encoding/hex"
	"encoding/json"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/auditledger/auditledger/events"
	"github.com/auditledger/auditledger/services/api"
	"github.com/auditledger/auditledger/test/natstest"
)

// TestRefusals: without a session, with the wrong role, with a forged
// or missing CSRF token, with another tenant's ids in the URL, and with
// the console's cookie on the API: a clear refusal, recorded, never data.
func TestRefusals(t *testing.T) {
	f := newFixture(t)
	anon := &http.Client{}
	blockedBefore := len(f.recorded(events.CommandBlocked))

	// No session.
	code, body := get(t, anon, f.srv.URL+"/console/sessions?who=dave")
	if code != 401 || !strings.Contains(body, "no console session") || strings.Contains(body, "SELECT") {
		t.Fatalf("without a session: %d %s", code, body)
	}
	if !slicesContain(f.recorded(events.AuthnFailed), "no console session") {
		t.Fatal("the refusal without a session was not recorded as authn.failed")
	}
	if code, _ := get(t, anon, f.srv.URL+"/console/export?format=csv&tenant=acme"); code != 401 {
		t.Fatalf("an export without a session: %d", code)
	}

	// A wrong password at the provider: no session.
	jar, _ := cookiejar.New(nil)
	wrong := &http.Client{Jar: jar}
	resp, err := wrong.Get(f.srv.URL + "/console/login")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	resp, err = wrong.PostForm(f.idp.Issuer+"/login", url.Values{"id": {resp.Request.URL.Query().Get("id")}, "username": {"carol"}, "password": {"guess"}})
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 401 || !strings.Contains(string(b), "wrong password") {
		t.Fatalf("a wrong password: %d %s", resp.StatusCode, b)
	}
	if code, _ := get(t, wrong, f.srv.URL+"/console/sessions"); code != 401 {
		t.Fatalf("after a wrong password: %d", code)
	}
	// A callback this browser did not start: refused, recorded.
	if code, body := get(t, wrong, f.srv.URL+"/console/callback?code=x&state=y"); code != 401 || !strings.Contains(body, "state mismatch") {
		t.Fatalf("a forged callback: %d %s", code, body)
	}

	carol := f.signIn(t, "carol", "carol-secret")
	// The cookie alone on the API: bearer-only, 401.
	u, _ := url.Parse(f.srv.URL + "/console/")
	if len(carol.Jar.Cookies(u)) == 0 {
		t.Fatal("no session cookie after sign-in")
	}
	req, _ := http.NewRequest("GET", f.srv.URL+"/v1/events", nil)
	for _, c := range carol.Jar.Cookies(u) {
		req.AddCookie(c)
	}
	resp, err = http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	b, _ = io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 401 || strings.Contains(string(b), "SELECT") {
		t.Fatalf("the console cookie on /v1/events: %d %s", resp.StatusCode, b)
	}
	// The cookie is HttpOnly, SameSite=Strict and scoped to the console.
	cl := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, _ = cl.Get(f.srv.URL + "/console/login")
	resp.Body.Close()
	loc, _ := url.Parse(resp.Header.Get("Location"))
	if loc.Query().Get("code_challenge_method") != "S256" || loc.Query().Get("code_challenge") == "" || loc.Query().Get("state") == "" {
		t.Fatalf("the sign-in does not use PKCE S256 with a state: %s", loc)
	}

	// Another tenant's ids in the URL: refused, recorded under that
	// tenant, and nothing of it shown.
	code, body = get(t, carol, f.srv.URL+"/console/sessions/globex/gx-s1")
	if code != 403 || strings.Contains(body, "globex_secret_plan") || !strings.Contains(body, "outside your scope") {
		t.Fatalf("another tenant's session: %d %s", code, body)
	}
	code, body = get(t, carol, f.srv.URL+"/console/sessions?tenant=globex")
	if code != 403 || strings.Contains(body, "globex_secret_plan") {
		t.Fatalf("another tenant's events: %d %s", code, body)
	}
	code, body = get(t, carol, f.srv.URL+"/console/export?format=csv&tenant=globex")
	if code != 403 || strings.Contains(body, "globex_secret_plan") {
		t.Fatalf("another tenant's export: %d %s", code, body)
	}
	var globex int
	for _, s := range f.recorded(events.CommandBlocked)[blockedBefore:] {
		if s.Event.Tenant == "globex" && s.Event.Actor.Subject == "carol" {
			globex++
		}
	}
	if globex != 3 {
		t.Fatalf("%d refusals recorded under globex, want 3", globex)
	}
	// Her own tenant's list never holds globex's events either.
	if code, body = get(t, carol, f.srv.URL+"/console/sessions?q=globex_secret"); code != 200 || strings.Contains(body, "globex_secret_plan") {
		t.Fatalf("a text search reached another tenant: %d", code)
	}

	// The wrong role: alice (dba) reads nothing.
	alice := f.signIn(t, "alice", "alice-secret")
	code, body = get(t, alice, f.srv.URL+"/console/sessions")
	if code != 403 || !strings.Contains(body, "needs the role auditor or security") || strings.Contains(body, "SELECT") {
		t.Fatalf("the wrong role: %d %s", code, body)
	}
	if !slicesContain(f.recorded(events.CommandBlocked), "needs the role auditor or security") {
		t.Fatal("the wrong role's refusal was not recorded")
	}

	// CSRF: a logout without the token, or with a forged one, is refused,
	// recorded, and the session lives on; with it, the session ends.
	_, page := get(t, carol, f.srv.URL+"/console/sessions")
	csrf := regexp.MustCompile(`name="csrf" value="([^"]+)"`).FindStringSubmatch(page)
	if csrf == nil {
		t.Fatal("no CSRF token in the page")
	}
	for name, form := range map[string]url.Values{"missing": {}, "forged": {"csrf": {"forged-" + csrf[1][7:]}}} {
		resp, err := carol.PostForm(f.srv.URL+"/console/logout", form)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 403 || !strings.Contains(string(b), "CSRF") {
			t.Fatalf("%s CSRF token: %d %s", name, resp.StatusCode, b)
		}
	}
	if n := countContaining(f.recorded(events.CommandBlocked), "CSRF token"); n != 2 {
		t.Fatalf("%d CSRF refusals recorded, want 2", n)
	}
	if code, _ := get(t, carol, f.srv.URL+"/console/sessions"); code != 200 {
		t.Fatalf("the session did not survive a refused logout: %d", code)
	}
	resp, err = carol.PostForm(f.srv.URL+"/console/logout", url.Values{"csrf": {csrf[1]}})
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	// The cookie is gone from the jar, so send the old one by hand: the
	// server has forgotten it.
	old := &http.Client{}
	req, _ = http.NewRequest("GET", f.srv.URL+"/console/sessions", nil)
	req.Header.Set("Cookie", "auditledger_console="+strings.Repeat("x", 43))
	if resp, _ := old.Do(req); resp.StatusCode != 401 {
		t.Fatalf("a made-up session cookie: %d", resp.StatusCode)
	}
	if code, _ := get(t, carol, f.srv.URL+"/console/sessions"); code != 401 {
		t.Fatalf("after logout: %d", code)
	}
}

// TestPagesAndExport: each page view and each export is one
// audit.accessed, stored before the data is sent; the pages carry the
// strict CSP and no inline script; an export streams every matching
// event.
func TestPagesAndExport(t *testing.T) {
	f := newFixture(t)
	carol := f.signIn(t, "carol", "carol-secret")
	before := len(f.recorded(events.AuditAccessed))
	resp, err := carol.Get(f.srv.URL + "/console/sessions?tenant=acme&outcome=masked")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	body := string(b)
	if !strings.Contains(body, "mask-cards") || strings.Contains(body, "DROP TABLE") {
		t.Fatalf("outcome masked: %s", body)
	}
	if csp := resp.Header.Get("Content-Security-Policy"); !strings.Contains(csp, "script-src 'self'") || strings.Contains(csp, "unsafe") {
		t.Fatalf("CSP %q", csp)
	}
	for _, s := range regexp.MustCompile(`<script[^>]*>`).FindAllString(body, -1) {
		if !strings.Contains(s, `src="/console/static/`) {
			t.Fatalf("an inline or foreign script: %s", s)
		}
	}
	if regexp.MustCompile(`\son[a-z]+=`).MatchString(body) || strings.Contains(body, "style=") {
		t.Fatal("an inline event handler or style attribute")
	}
	acc := f.recorded(events.AuditAccessed)[before:]
	if len(acc) != 1 || acc[0].Event.Tenant != "acme" || acc[0].Event.Actor.Subject != "carol" {
		t.Fatalf("a page view recorded %d audit.accessed, want 1 by carol under acme: %+v", len(acc), acc)
	}

	// Blocked, held; a gateway; who; text.
	for q, want := range map[string]string{"outcome=blocked": "DDL is not allowed", "outcome=held": "ALTER TABLE customers", "gateway=ssh-proxy": "systemctl restart nginx",
		"gateway=kube-gateway": "delete pods web-1", "gateway=http-proxy": "GET /invoices", "who=frank": "systemctl", "q=customers&type=command.executed": "SELECT email, card"} {
		if code, body := get(t, carol, f.srv.URL+"/console/sessions?"+q); code != 200 || !strings.Contains(body, want) {
			t.Fatalf("%s: %d, %q not in the page", q, code, want)
		}
	}
	if code, body := get(t, carol, f.srv.URL+"/console/sessions?outcome=blocked&type=mask.applied"); code != 400 || !strings.Contains(body, "outcome") {
		t.Fatalf("a contradictory filter: %d", code)
	}

	// The timeline: statements with their digests, masks, blocks and
	// approvals.
	code, body := get(t, carol, f.srv.URL+"/console/sessions/acme/pg-s1")
	for _, want := range []string{"SELECT email, card FROM customers", "mask-cards", "result_hmac", "DDL is not allowed", "apr-1", "CHG-1"} {
		if code != 200 || !strings.Contains(body, want) {
			t.Fatalf("timeline: %d, %q missing", code, want)
		}
	}

	// The CSV export of the load generator: every one of its events, in
	// ledger order, one audit.accessed.
	before = len(f.recorded(events.AuditAccessed))
	start := time.Now()
	resp, err = carol.Get(f.srv.URL + "/console/export?format=csv&tenant=acme&who=loadgen")
	if err != nil {
		t.Fatal(err)
	}
	rows, err := csv.NewReader(resp.Body).ReadAll()
	resp.Body.Close()
	if err != nil || resp.StatusCode != 200 || !strings.Contains(resp.Header.Get("Content-Disposition"), "attachment") {
		t.Fatalf("export: %d %v %v", resp.StatusCode, err, resp.Header)
	}
	t.Logf("CSV export of %d events: %v", len(rows)-1, time.Since(start))
	if len(rows) != bulkEvents+1 || rows[0][0] != "index" || rows[1][7] != "loadgen" || rows[bulkEvents][3] != "bulk-10499" {
		t.Fatalf("the CSV export: %d rows, first %v", len(rows), rows[:2])
	}
	if acc := f.recorded(events.AuditAccessed)[before:]; len(acc) != 1 || !strings.Contains(string(acc[0].Raw), "events export") {
		t.Fatalf("an export recorded %d audit.accessed, want 1", len(acc))
	}
	// Figures, logged, never asserted: a page of 1,000 and one of 50 past
	// the 10,000th event, and a session's timeline of 1,000 events.
	for _, u := range []string{"/console/sessions?who=loadgen&limit=1000&after=9000", "/console/sessions?who=loadgen&limit=50&after=10000", "/console/sessions/acme/bulk-3"} {
		var took []time.Duration
		for range 5 {
			start := time.Now()
			if code, _ := get(t, carol, f.srv.URL+u); code != 200 {
				t.Fatalf("%s: %d", u, code)
			}
			took = append(took, time.Since(start))
		}
		slices.Sort(took)
		t.Logf("%s: median %v of 5", u, took[2])
	}
	// JSON: the API's event results, which a verifier checks.
	resp, err = carol.Get(f.srv.URL + "/console/export?format=json&tenant=acme&gateway=ssh-proxy")
	if err != nil {
		t.Fatal(err)
	}
	var got []api.EventResult
	err = json.NewDecoder(resp.Body).Decode(&got)
	resp.Body.Close()
	if err != nil || len(got) != 2 {
		t.Fatalf("the JSON export: %v, %d events", err, len(got))
	}
	// An export needs one tenant when the caller has several (not so for
	// carol, whose one tenant is implied).
	if code, _ := get(t, carol, f.srv.URL+"/console/export?format=xml&tenant=acme"); code != 400 {
		t.Fatalf("an unknown format: %d", code)
	}
}

// TestVendoredHTMX: the embedded htmx is the pinned release's file, and
// its licence travels with it.
func TestVendoredHTMX(t *testing.T) {
	b, err := os.ReadFile("static/vendor/htmx/htmx.min.js")
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(b)
	if got := hex.EncodeToString(sum[:]); got != "d6fdc75f204e6bdefa99b69bf1e6d4ac69b8a364f77929f45c13476b4000f717" {
		t.Fatalf("htmx.min.js sha256 %s is not htmx.org 2.0.11's", got)
	}
	if l, err := os.ReadFile("static/vendor/htmx/LICENSE"); err != nil || !strings.Contains(string(l), "Zero-Clause BSD") {
		t.Fatalf("htmx's licence: %v", err)
	}
}

func slicesContain(list []natstest.Stored, s string) bool { return countContaining(list, s) > 0 }

func countContaining(list []natstest.Stored, s string) int {
	n := 0
	for _, e := range list {
		if strings.Contains(string(e.Raw), s) {
			n++
		}
	}
	return n
}
