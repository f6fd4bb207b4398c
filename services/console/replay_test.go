package console_test

import (
	"fmt"
	"html"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/auditledger/auditledger/events"
	"github.com/auditledger/auditledger/test/natstest"
)

// TestReplay: a terminal session recorded by the SSH gateway is replayed
// from the API's cast: the page carries the cast and a transcript, the
// card number the person typed and printed stays redacted as recorded,
// each view and download is one audit.accessed, and the wrong role,
// another tenant or a session without a terminal is refused, recorded,
// without data.
func TestReplay(t *testing.T) {
	rec, id := recordSSHSession(t)
	f := newFixtureWith(t, rec)
	carol := f.signIn(t, "carol", "carol-secret")
	page := "/console/sessions/acme/" + id

	// The timeline offers the replay.
	status, body := get(t, carol, f.srv.URL+page)
	if status != 200 || !strings.Contains(body, `href="`+page+`/replay"`) {
		t.Fatalf("the timeline of the SSH session: %d, no replay link\n%.3000s", status, body)
	}
	before := countContaining(f.recorded(events.AuditAccessed), `"session cast"`)
	status, body = get(t, carol, f.srv.URL+page+"/replay")
	if status != 200 {
		t.Fatalf("replay: %d %.2000s", status, body)
	}
	text := html.UnescapeString(body)
	for _, want := range []string{`"version":2`, `id="screen"`, "hello from the replay", "[REDACTED:", `src="/console/static/replay.js"`} {
		if !strings.Contains(text, want) {
			t.Errorf("the replay page lacks %q", want)
		}
	}
	if strings.Contains(text, sshSecret) || strings.Contains(text, strings.ReplaceAll(sshSecret, " ", "")) {
		t.Fatal("the replay shows the card number the gateway redacted")
	}
	if strings.Contains(body, "<script>") {
		t.Fatal("an inline script on the replay page")
	}
	if n := countContaining(f.recorded(events.AuditAccessed), `"session cast"`) - before; n != 1 {
		t.Fatalf("%d audit.accessed of the cast for one view", n)
	}

	// The download: an asciicast v2 file, a read of its own.
	resp, err := carol.Get(f.srv.URL + page + "/cast")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "application/x-asciicast" || !strings.Contains(resp.Header.Get("Content-Disposition"), ".cast") {
		t.Fatalf("the cast download: %d %v", resp.StatusCode, resp.Header)
	}
	if n := countContaining(f.recorded(events.AuditAccessed), `"session cast"`) - before; n != 2 {
		t.Fatalf("%d audit.accessed of the cast for a view and a download", n)
	}

	// A session of no terminal (an HTTP request) has no cast: the page
	// shows the API's 404.
	status, body = get(t, carol, f.srv.URL+"/console/sessions/acme/http-s1/replay")
	if status != http.StatusNotFound || !strings.Contains(body, "no session.started") {
		t.Fatalf("the replay of an HTTP session: %d %.1500s", status, body)
	}

	// The wrong role, another tenant: refused by the API, recorded, no
	// output.
	blocked := len(f.recorded(events.CommandBlocked))
	for _, c := range []struct{ user, secret string }{{"alice", "alice-secret"}, {"gina", "gina-secret"}} {
		cl := f.signIn(t, c.user, c.secret)
		status, body := get(t, cl, f.srv.URL+page+"/replay")
		if status != http.StatusForbidden || strings.Contains(body, "hello from") || strings.Contains(body, `id="cast"`) {
			t.Fatalf("%s's replay: %d %.1500s", c.user, status, body)
		}
		status, body = get(t, cl, f.srv.URL+page+"/cast")
		if status != http.StatusForbidden || strings.Contains(body, "hello from") {
			t.Fatalf("%s's cast download: %d %.1500s", c.user, status, body)
		}
	}
	natstest.CheckFor(t, 30*time.Second, 20*time.Millisecond, func() error {
		if n := len(f.recorded(events.CommandBlocked)) - blocked; n < 4 {
			return fmt.Errorf("%d refusals recorded for 4 refused reads", n)
		}
		return nil
	})
}

// TestProofPage: the proof page and the proof it fetches are the API's
// reads, recorded; another tenant's event, the wrong role or a bad index
// is refused without the record or the proof.
func TestProofPage(t *testing.T) {
	f := newFixture(t)
	carol := f.signIn(t, "carol", "carol-secret")
	// Index 2 is pg-3 (mask.applied, acme); 12 is globex's gx-1.
	status, body := get(t, carol, f.srv.URL+"/console/proof/acme/2")
	if status != 200 || !strings.Contains(body, `data-record="`) || !strings.Contains(body, `data-proof-url="/console/proof/acme/2/inclusion"`) || !strings.Contains(body, "mask-cards") {
		t.Fatalf("the proof page: %d %.2000s", status, body)
	}
	before := countContaining(f.recorded(events.AuditAccessed), `"inclusion proof"`)
	status, body = get(t, carol, f.srv.URL+"/console/proof/acme/2/inclusion")
	if status != 200 || !strings.HasPrefix(body, "c2sp.org/tlog-proof@v1\nindex 2\n") || !strings.Contains(body, "console.test/log\n") {
		t.Fatalf("the proof: %d %.2000s", status, body)
	}
	if n := countContaining(f.recorded(events.AuditAccessed), `"inclusion proof"`) - before; n != 1 {
		t.Fatalf("%d audit.accessed for one proof", n)
	}
	// carol asks for acme's event at globex's index: there is none.
	if status, body := get(t, carol, f.srv.URL+"/console/proof/acme/12"); status != 404 || strings.Contains(body, "globex_secret_plan") {
		t.Fatalf("acme at globex's index: %d %.1500s", status, body)
	}
	blocked := len(f.recorded(events.CommandBlocked))
	for _, c := range []struct{ user, secret, path string }{
		{"carol", "carol-secret", "/console/proof/globex/12"},
		{"carol", "carol-secret", "/console/proof/acme/12/inclusion"},
		{"gina", "gina-secret", "/console/proof/acme/2"},
		{"gina", "gina-secret", "/console/proof/globex/2/inclusion"},
		{"alice", "alice-secret", "/console/proof/acme/2"},
		{"alice", "alice-secret", "/console/proof/acme/2/inclusion"},
	} {
		cl := f.signIn(t, c.user, c.secret)
		status, body := get(t, cl, f.srv.URL+c.path)
		if status < 400 || strings.Contains(body, "data-record") || strings.Contains(body, "c2sp.org") || strings.Contains(body, "globex_secret_plan") {
			t.Fatalf("%s %s: %d %.1500s", c.user, c.path, status, body)
		}
	}
	natstest.CheckFor(t, 30*time.Second, 20*time.Millisecond, func() error {
		if n := len(f.recorded(events.CommandBlocked)) - blocked; n < 6 {
			return fmt.Errorf("%d refusals recorded for 6 refused reads", n)
		}
		return nil
	})
	if status, _ := get(t, carol, f.srv.URL+"/console/proof/acme/x"); status != 400 {
		t.Fatalf("a bad index: %d", status)
	}
	// Without a session, every page of this slice is refused (401).
	for _, path := range []string{"/console/proof/acme/2", "/console/proof/acme/2/inclusion", "/console/proof/consistency?from=1&to=2",
		"/console/sessions/acme/pg-s1/replay", "/console/sessions/acme/pg-s1/cast", "/console/evidence", "/console/evidence/0123456789abcdef0123456789abcdef",
		"/console/evidence/0123456789abcdef0123456789abcdef/download", "/console/health"} {
		if status, body := get(t, http.DefaultClient, f.srv.URL+path); status != http.StatusUnauthorized || !strings.Contains(body, "no console session") {
			t.Errorf("%s without a session: %d", path, status)
		}
	}
}

// TestReplayKubeExec: a `kubectl exec` through the Kubernetes gateway is
// replayed as an SSH session is: its stdout from the API's cast, what
// the detectors found redacted.
func TestReplayKubeExec(t *testing.T) {
	rec, id := recordKubeExec(t)
	f := newFixtureWith(t, rec)
	carol := f.signIn(t, "carol", "carol-secret")
	page := "/console/sessions/acme/" + id
	if status, body := get(t, carol, f.srv.URL+page); status != 200 || !strings.Contains(body, `href="`+page+`/replay"`) {
		t.Fatalf("the timeline of the exec: %d, no replay link\n%.3000s", status, body)
	}
	status, body := get(t, carol, f.srv.URL+page+"/replay")
	text := html.UnescapeString(body)
	if status != 200 || !strings.Contains(text, "hello from kubectl exec\ncard [REDACTED:") || strings.Contains(text, sshSecret) {
		t.Fatalf("the replay of the exec: %d %.3000s", status, body)
	}
}
