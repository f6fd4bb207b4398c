package console_test

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/auditledger/auditledger/events"
	"github.com/auditledger/auditledger/ledger"
	"github.com/auditledger/auditledger/projections/evidence"
	"github.com/auditledger/auditledger/test/natstest"
)

// TestEvidencePage: an auditor asks for a bundle in the page (with the
// CSRF token), follows it to ready and downloads it, and the bundle
// verifies offline; the request, each look and the download are in the
// log; another tenant, the wrong role and a missing CSRF token are
// refused, recorded.
func TestEvidencePage(t *testing.T) {
	f := newFixture(t)
	gina := f.signIn(t, "gina", "gina-secret")
	_, page := get(t, gina, f.srv.URL+"/console/evidence")
	csrf := regexp.MustCompile(`name="csrf" value="([^"]+)"`).FindStringSubmatch(page)
	if csrf == nil {
		t.Fatalf("no CSRF token on the evidence page: %.2000s", page)
	}
	form := url.Values{"csrf": {csrf[1]}, "tenant": {"globex"}, "framework": {"iso27001-2022"}, "from": {time.Now().UTC().AddDate(0, 0, -1).Format(time.DateOnly)},
		"to": {time.Now().UTC().AddDate(0, 0, 1).Format(time.DateOnly)}}
	resp, err := gina.PostForm(f.srv.URL+"/console/evidence", form)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	m := regexp.MustCompile(`/console/evidence/([0-9a-f]{32})$`).FindStringSubmatch(resp.Request.URL.Path)
	if resp.StatusCode != 200 || m == nil {
		t.Fatalf("asking for a bundle: %d at %s %.2000s", resp.StatusCode, resp.Request.URL, body)
	}
	id := m[1]
	natstest.CheckFor(t, 2*time.Minute, 100*time.Millisecond, func() error {
		status, body := get(t, gina, f.srv.URL+"/console/evidence/"+id)
		if status != 200 || strings.Contains(body, `data-status="failed"`) {
			t.Fatalf("the bundle's page: %d %.2000s", status, body)
		}
		if !strings.Contains(body, `data-status="ready"`) {
			return fmt.Errorf("not ready: %.300s", body[strings.Index(body, "<dl"):])
		}
		return nil
	})
	// The list of bundles built: the API's GET /v1/evidence, with the
	// download; another tenant's auditor does not see it; a person
	// without the role gets the API's refusal.
	if _, list := get(t, gina, f.srv.URL+"/console/evidence"); !strings.Contains(list, `href="/console/evidence/`+id+`/download"`) {
		t.Fatalf("the list of bundles lacks %s's download: %.3000s", id, list)
	}
	if status, list := get(t, f.signIn(t, "carol", "carol-secret"), f.srv.URL+"/console/evidence"); status != 200 || strings.Contains(list, id) || !strings.Contains(list, "None yet") {
		t.Fatalf("acme's auditor's list of bundles: %d, shows %s: %v", status, id, strings.Contains(list, id))
	}
	if status, list := get(t, f.signIn(t, "alice", "alice-secret"), f.srv.URL+"/console/evidence"); status != http.StatusForbidden || strings.Contains(list, id) {
		t.Fatalf("alice's list of bundles: %d, shows %s: %v", status, id, strings.Contains(list, id))
	}
	natstest.CheckFor(t, 30*time.Second, 20*time.Millisecond, func() error {
		for _, s := range f.stream() {
			if s.Event.Type == events.AuditAccessed && s.Payload["resource"] == "evidence bundles" && s.Event.Tenant == "globex" && fmt.Sprint(s.Payload["ids"]) == "["+id+"]" {
				return nil
			}
		}
		return fmt.Errorf("no audit.accessed of the list naming %s under globex", id)
	})
	// The progress stream of a ready build: its end at once.
	resp, err = gina.Get(f.srv.URL + "/console/evidence/" + id + "/progress")
	if err != nil {
		t.Fatal(err)
	}
	stream, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "text/event-stream" || !strings.HasPrefix(string(stream), "event: end\ndata: {\"status\":\"ready\"") {
		t.Fatalf("the progress of a ready bundle: %d %v %q", resp.StatusCode, resp.Header, stream)
	}
	if status, body := get(t, f.signIn(t, "carol", "carol-secret"), f.srv.URL+"/console/evidence/"+id+"/progress"); status != http.StatusForbidden || strings.Contains(body, "event:") {
		t.Fatalf("acme's auditor following globex's build: %d %.1000s", status, body)
	}
	resp, err = gina.Get(f.srv.URL + "/console/evidence/" + id + "/download")
	if err != nil {
		t.Fatal(err)
	}
	bundle, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "application/zip" || !strings.Contains(resp.Header.Get("Content-Disposition"), id) {
		t.Fatalf("the download: %d %v", resp.StatusCode, resp.Header)
	}
	checkBundle(t, f, bundle, id, "globex", 1)

	// Refused: another tenant, the wrong role, no CSRF token.
	blocked := len(f.recorded(events.CommandBlocked))
	form.Set("tenant", "acme")
	if resp, err := gina.PostForm(f.srv.URL+"/console/evidence", form); err != nil || resp.StatusCode != http.StatusForbidden {
		t.Fatalf("gina asking for acme's evidence: %v %v", resp.StatusCode, err)
	}
	alice := f.signIn(t, "alice", "alice-secret")
	for _, path := range []string{"/console/evidence/" + id, "/console/evidence/" + id + "/download"} {
		if status, body := get(t, alice, f.srv.URL+path); status != http.StatusForbidden || strings.Contains(body, "sha256") {
			t.Fatalf("alice at %s: %d %.1000s", path, status, body)
		}
	}
	carol := f.signIn(t, "carol", "carol-secret") // acme's auditor
	if status, body := get(t, carol, f.srv.URL+"/console/evidence/"+id); status < 400 || strings.Contains(body, `data-status`) {
		t.Fatalf("carol at globex's bundle: %d %.1000s", status, body)
	}
	form.Del("csrf")
	form.Set("tenant", "globex")
	if resp, err := gina.PostForm(f.srv.URL+"/console/evidence", form); err != nil || resp.StatusCode != http.StatusForbidden {
		t.Fatalf("asking without the CSRF token: %v %v", resp.StatusCode, err)
	}
	natstest.CheckFor(t, 30*time.Second, 20*time.Millisecond, func() error {
		if n := len(f.recorded(events.CommandBlocked)) - blocked; n < 5 {
			return fmt.Errorf("%d refusals recorded for 5 refused requests", n)
		}
		return nil
	})
}

// checkBundle verifies a downloaded bundle as `evidence verify` does and
// checks that its build and download are in the log.
func checkBundle(t *testing.T, f *fixture, bundle []byte, id, tenant string, events_ int) {
	t.Helper()
	v, err := ledger.NewNoteVerifier(f.signer.Verifier().String())
	if err != nil {
		t.Fatal(err)
	}
	rep, err := evidence.Verify(bytes.NewReader(bundle), int64(len(bundle)), evidence.VerifyOptions{LogVerifier: v,
		AllowedSigners: []ssh.PublicKey{f.evidenceKey}, AllowUnlocked: true})
	if err != nil {
		t.Fatalf("the downloaded bundle does not verify: %v", err)
	}
	if rep.Manifest.BundleID != id || rep.Manifest.Tenant != tenant || rep.Manifest.Events != events_ {
		t.Fatalf("the bundle's manifest: id %s tenant %s events %d", rep.Manifest.BundleID, rep.Manifest.Tenant, rep.Manifest.Events)
	}
	natstest.CheckFor(t, 30*time.Second, 20*time.Millisecond, func() error {
		exported, downloaded := false, false
		for _, s := range f.stream() {
			exported = exported || s.Event.Type == events.EvidenceExported && s.Payload["bundle_id"] == id
			downloaded = downloaded || s.Event.Type == events.AuditAccessed && s.Payload["bundle_id"] == id && s.Payload["resource"] == "evidence"
		}
		if !exported || !downloaded {
			return fmt.Errorf("exported %v, downloaded %v", exported, downloaded)
		}
		return nil
	})
}
