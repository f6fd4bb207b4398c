package api_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"golang.org/x/crypto/ssh"

	"github.com/auditledger/auditledger/events"
	"github.com/auditledger/auditledger/ledger"
	"github.com/auditledger/auditledger/ledger/bus"
	"github.com/auditledger/auditledger/projections/evidence"
	"github.com/auditledger/auditledger/services/api"
	"github.com/auditledger/auditledger/test/natstest"
)

func (f *readFixture) post(t *testing.T, path, token, body string) (int, string) {
	t.Helper()
	req, _ := http.NewRequest("POST", f.srv.URL+path, strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var b bytes.Buffer
	b.ReadFrom(resp.Body)
	return resp.StatusCode, b.String()
}

// An auditor asks for a bundle, follows its build, downloads it and it
// verifies; the export and the download are in the log; bad requests name
// the parameter; a caller without the role is refused.
func TestEvidenceAPI(t *testing.T) {
	f := newReadFixture(t)
	carol := f.tokens["carol"]
	from, to := time.Now().Add(-time.Hour).UTC().Format(time.RFC3339), time.Now().Add(time.Hour).UTC().Format(time.RFC3339)

	for body, param := range map[string]string{
		`{"tenant":"acme","from":"` + from + `"}`:                                           "to",
		`{"tenant":"ACME!","from":"` + from + `","to":"` + to + `"}`:                        "tenant",
		`{"tenant":"acme","from":"` + from + `","to":"` + to + `","framework":"soc2-2017"}`: "framework",
		`{"tenant":"acme","to":"` + to + `"}`:                                               "from",
	} {
		code, out := f.post(t, "/v1/evidence", carol, body)
		var p api.Problem
		json.Unmarshal([]byte(out), &p)
		if code != 400 || p.Param != param {
			t.Errorf("POST %s: %d %s, want 400 naming %s", body, code, out, param)
		}
	}
	if code, out := f.post(t, "/v1/evidence", f.tokens["alice"], `{"tenant":"acme","from":"`+from+`","to":"`+to+`"}`); code != 403 {
		t.Errorf("alice (dba) asking for evidence: %d %s, want 403", code, out)
	}

	code, out := f.post(t, "/v1/evidence", carol, `{"tenant":"acme","from":"`+from+`","to":"`+to+`"}`)
	var st api.EvidenceStatus
	if err := json.Unmarshal([]byte(out), &st); code != 202 || err != nil || st.ID == "" {
		t.Fatalf("POST /v1/evidence: %d %s", code, out)
	}
	natstest.CheckFor(t, 30*time.Second, 50*time.Millisecond, func() error {
		code, _, body := f.get(t, "/v1/evidence/"+st.ID, carol)
		if err := json.Unmarshal([]byte(body), &st); code != 200 || err != nil {
			return fmt.Errorf("status: %d %s", code, body)
		}
		if st.Status == "failed" {
			t.Fatalf("the build failed: %s", st.Error)
		}
		if st.Status != "ready" {
			return fmt.Errorf("status %s, %d of %d", st.Status, st.Done, st.Total)
		}
		return nil
	})
	if st.Events != 40 || st.Done != st.Total || st.Total != 40 || st.Download == "" {
		t.Errorf("ready: %+v, want 40 events of 40 records", st)
	}
	code, ctype, bundle := f.get(t, st.Download, carol)
	if code != 200 || ctype != "application/zip" {
		t.Fatalf("download: %d %s", code, ctype)
	}
	v, _ := ledger.NewNoteVerifier(f.vkey)
	rep, err := evidence.Verify(strings.NewReader(bundle), int64(len(bundle)), evidence.VerifyOptions{LogVerifier: v,
		AllowedSigners: []ssh.PublicKey{f.evidenceKey}, AllowUnlocked: true})
	if err != nil {
		t.Fatalf("the downloaded bundle: %v", err)
	}
	if rep.Manifest.BundleID != st.ID {
		t.Errorf("bundle id %s, the build's %s", rep.Manifest.BundleID, st.ID)
	}
	if rb := rep.Manifest.RequestedBy; rb == nil || rb.Subject != "carol" || rb.Issuer == "" {
		t.Errorf("the manifest names requester %+v, want carol who asked", rb)
	}
	if code, _, body := f.get(t, "/v1/evidence/0123456789abcdef0123456789abcdef", carol); code != 404 {
		t.Errorf("an unknown bundle: %d %s", code, body)
	}
	// The export and the download, in the log.
	natstest.CheckFor(t, 10*time.Second, 50*time.Millisecond, func() error {
		exported, downloaded := false, false
		for _, s := range f.stream() {
			exported = exported || s.Event.Type == events.EvidenceExported && s.Payload["bundle_id"] == st.ID && s.Event.Actor.Subject == "carol"
			downloaded = downloaded || s.Event.Type == events.AuditAccessed && s.Payload["bundle_id"] == st.ID && s.Payload["resource"] == "evidence"
		}
		if !exported || !downloaded {
			return fmt.Errorf("evidence.exported %v, audit.accessed of the download %v", exported, downloaded)
		}
		return nil
	})
}

// refuseNewEvents makes the bus refuse every further event: the events
// stream is full and discards new messages, so no audit record can be
// stored.
func (f *readFixture) refuseNewEvents(t *testing.T) {
	t.Helper()
	s, err := f.js.Stream(t.Context(), bus.EventsStream)
	if err != nil {
		t.Fatal(err)
	}
	info, err := s.Info(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	cfg := info.Config
	cfg.MaxMsgs, cfg.Discard = int64(info.State.Msgs), jetstream.DiscardNew
	if _, err := f.js.UpdateStream(t.Context(), cfg); err != nil {
		t.Fatal(err)
	}
}

// A bundle's status (its tenant, digest and range) is audit data: reading
// it is recorded as audit.accessed, and refused (503) like every other
// read while no audit record can be stored.
func TestEvidenceStatusIsAudited(t *testing.T) {
	f := newReadFixture(t)
	carol := f.tokens["carol"]
	from, to := time.Now().Add(-time.Hour).UTC().Format(time.RFC3339), time.Now().Add(time.Hour).UTC().Format(time.RFC3339)
	code, out := f.post(t, "/v1/evidence", carol, `{"tenant":"acme","from":"`+from+`","to":"`+to+`"}`)
	var st api.EvidenceStatus
	if err := json.Unmarshal([]byte(out), &st); code != 202 || err != nil || st.ID == "" {
		t.Fatalf("POST /v1/evidence: %d %s", code, out)
	}
	natstest.CheckFor(t, 60*time.Second, 50*time.Millisecond, func() error {
		code, _, body := f.get(t, "/v1/evidence/"+st.ID, carol)
		if err := json.Unmarshal([]byte(body), &st); code != 200 || err != nil || st.Status != "ready" {
			return fmt.Errorf("status: %d %s", code, body)
		}
		return nil
	})
	natstest.CheckFor(t, 30*time.Second, 50*time.Millisecond, func() error {
		for _, s := range f.stream() {
			if s.Event.Type == events.AuditAccessed && s.Payload["resource"] == "evidence status" && s.Payload["bundle_id"] == st.ID &&
				s.Payload["tenant"] == "acme" && s.Payload["sha256"] == st.SHA256 && s.Event.Actor.Subject == "carol" {
				return nil
			}
		}
		return fmt.Errorf("no audit.accessed of bundle %s's status", st.ID)
	})
	f.refuseNewEvents(t)
	for _, path := range []string{"/v1/events?limit=1", "/v1/evidence/" + st.ID, "/v1/evidence/" + st.ID + "/download"} {
		if code, _, body := f.get(t, path, carol); code != 503 || !strings.Contains(body, "could not be recorded") {
			t.Errorf("%s while no audit record can be stored: %d %s, want 503", path, code, body)
		}
	}
}

// buildBundle asks for a bundle of tenant as token's holder and waits
// until it is ready.
func (f *readFixture) buildBundle(t *testing.T, token, tenant string) api.EvidenceStatus {
	t.Helper()
	from, to := time.Now().Add(-time.Hour).UTC().Format(time.RFC3339), time.Now().Add(time.Hour).UTC().Format(time.RFC3339)
	code, out := f.post(t, "/v1/evidence", token, `{"tenant":"`+tenant+`","from":"`+from+`","to":"`+to+`"}`)
	var st api.EvidenceStatus
	if err := json.Unmarshal([]byte(out), &st); code != 202 || err != nil || st.ID == "" {
		t.Fatalf("POST /v1/evidence for %s: %d %s", tenant, code, out)
	}
	natstest.CheckFor(t, 60*time.Second, 50*time.Millisecond, func() error {
		code, _, body := f.get(t, "/v1/evidence/"+st.ID, token)
		if err := json.Unmarshal([]byte(body), &st); code != 200 || err != nil {
			return fmt.Errorf("status: %d %s", code, body)
		}
		if st.Status == "failed" {
			t.Fatalf("the build of %s failed: %s", tenant, st.Error)
		}
		if st.Status != "ready" {
			return fmt.Errorf("status %s", st.Status)
		}
		return nil
	})
	return st
}

// listBundles reads GET /v1/evidence?query as token's holder.
func (f *readFixture) listBundles(t *testing.T, query, token string) (int, []api.EvidenceStatus, api.Problem) {
	t.Helper()
	code, _, body := f.get(t, "/v1/evidence"+query, token)
	var list []api.EvidenceStatus
	var p api.Problem
	if code == 200 {
		if err := json.Unmarshal([]byte(body), &list); err != nil {
			t.Fatalf("GET /v1/evidence%s: %v: %s", query, err, body)
		}
	} else {
		json.Unmarshal([]byte(body), &p)
	}
	return code, list, p
}

func bundleIDs(list []api.EvidenceStatus) []string {
	var ids []string
	for _, st := range list {
		ids = append(ids, st.ID)
	}
	return ids
}

// GET /v1/evidence lists the bundles built, each caller those of its
// tenants only, one audit.accessed per tenant listed naming its bundles;
// another tenant, the wrong role and bad parameters are refused; a second
// API process on the same directory (a restart) lists the finished ones.
func TestEvidenceList(t *testing.T) {
	f := newReadFixture(t)
	carol, gina, milo := f.tokens["carol"], f.tokens["gina"], f.tokens["milo"]
	acme := f.buildBundle(t, carol, "acme")
	globex := f.buildBundle(t, gina, "globex")

	code, list, p := f.listBundles(t, "", carol)
	if code != 200 || len(list) != 1 || list[0].ID != acme.ID || list[0].Status != "ready" || list[0].SHA256 != acme.SHA256 ||
		list[0].Download != "/v1/evidence/"+acme.ID+"/download" || list[0].Request == nil || list[0].Request.Tenant != "acme" {
		t.Fatalf("carol's list: %d %+v %v, want acme's bundle %s alone", code, list, p, acme.ID)
	}
	if code, list, _ := f.listBundles(t, "", gina); code != 200 || len(list) != 1 || list[0].ID != globex.ID {
		t.Errorf("gina's list: %d %v, want globex's bundle %s alone", code, bundleIDs(list), globex.ID)
	}
	// Newest first, both tenants for who reads both.
	if code, list, _ := f.listBundles(t, "", milo); code != 200 || len(list) != 2 || list[0].ID != globex.ID || list[1].ID != acme.ID {
		t.Errorf("milo's list: %d %v, want [%s %s]", code, bundleIDs(list), globex.ID, acme.ID)
	}
	if code, list, _ := f.listBundles(t, "?tenant=globex&status=ready&limit=5", milo); code != 200 || len(list) != 1 || list[0].ID != globex.ID {
		t.Errorf("milo's list of globex: %d %v", code, bundleIDs(list))
	}
	if code, list, _ := f.listBundles(t, "?status=building", milo); code != 200 || len(list) != 0 {
		t.Errorf("milo's list of bundles building: %d %v, want none", code, bundleIDs(list))
	}
	if code, list, _ := f.listBundles(t, "?limit=1", milo); code != 200 || len(list) != 1 || list[0].ID != globex.ID {
		t.Errorf("milo's list, limit=1: %d %v", code, bundleIDs(list))
	}
	for _, c := range []struct {
		name, query, token string
		code               int
		param              string
	}{
		{"another tenant", "?tenant=globex", carol, 403, ""},
		{"no role", "", f.tokens["alice"], 403, ""},
		{"no tenant", "", f.tokens["uma"], 403, ""},
		{"no token", "", "", 401, ""},
		{"bad status", "?status=done", carol, 400, "status"},
		{"bad limit", "?limit=0", carol, 400, "limit"},
		{"unknown parameter", "?framework=soc2", carol, 400, "framework"},
	} {
		code, list, p := f.listBundles(t, c.query, c.token)
		if code != c.code || p.Param != c.param || len(list) != 0 {
			t.Errorf("%s: %d %+v %v, want %d naming %q and no bundle", c.name, code, p, bundleIDs(list), c.code, c.param)
		}
	}
	// Each read recorded per tenant, naming its bundles; carol's refusal
	// under globex, whose auditors should see the attempt.
	natstest.CheckFor(t, 10*time.Second, 50*time.Millisecond, func() error {
		var carolRead, miloAcme, miloGlobex, refused bool
		for _, s := range f.stream() {
			ids := fmt.Sprint(s.Payload["ids"])
			switch {
			case s.Event.Type == events.AuditAccessed && s.Payload["resource"] == "evidence bundles" && s.Event.Actor.Subject == "carol":
				if s.Event.Tenant != "acme" || ids != "["+acme.ID+"]" {
					return fmt.Errorf("carol's list recorded under %s with ids %s", s.Event.Tenant, ids)
				}
				carolRead = true
			case s.Event.Type == events.AuditAccessed && s.Payload["resource"] == "evidence bundles" && s.Event.Actor.Subject == "milo":
				miloAcme = miloAcme || s.Event.Tenant == "acme" && ids == "["+acme.ID+"]"
				miloGlobex = miloGlobex || s.Event.Tenant == "globex" && ids == "["+globex.ID+"]"
				if strings.Contains(ids, acme.ID) && strings.Contains(ids, globex.ID) {
					return fmt.Errorf("one record of milo's list names both tenants' bundles: %s", ids)
				}
			case s.Event.Type == events.CommandBlocked && s.Event.Actor.Subject == "carol" && s.Event.Tenant == "globex" && strings.Contains(fmt.Sprint(s.Payload["reason"]), "globex"):
				refused = true
			}
		}
		if !carolRead || !miloAcme || !miloGlobex || !refused {
			return fmt.Errorf("recorded: carol's list %v, milo's acme part %v, globex part %v, carol's refusal %v", carolRead, miloAcme, miloGlobex, refused)
		}
		return nil
	})

	// A restart: the finished bundles are read from the directory.
	h, err := api.New(f.apiCfg)
	if err != nil {
		t.Fatal(err)
	}
	f.srv = httptest.NewServer(h)
	t.Cleanup(f.srv.Close)
	// (The manifest's time, which orders them now, is in whole seconds:
	// two bundles of the same second may come in either order.)
	code, list, _ = f.listBundles(t, "", milo)
	byID := map[string]api.EvidenceStatus{}
	for _, st := range list {
		byID[st.ID] = st
	}
	if code != 200 || len(list) != 2 || byID[globex.ID].SHA256 != globex.SHA256 || byID[acme.ID].SHA256 != acme.SHA256 || byID[acme.ID].Events != acme.Events ||
		byID[acme.ID].Status != "ready" || byID[acme.ID].Download != acme.Download {
		t.Errorf("after a restart, milo's list: %d %+v", code, list)
	}
	if code, list, _ := f.listBundles(t, "", carol); code != 200 || len(list) != 1 || list[0].ID != acme.ID {
		t.Errorf("after a restart, carol's list: %d %v, want acme's bundle alone", code, bundleIDs(list))
	}
}

// sseEvent is one server-sent event.
type sseEvent struct {
	name string
	p    api.Progress
}

// follow opens GET /v1/evidence/{id}/progress as token's holder and
// sends each event on the channel, closed when the stream ends.
func (f *readFixture) follow(t *testing.T, id, token string) (int, <-chan sseEvent) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Minute)
	req, _ := http.NewRequestWithContext(ctx, "GET", f.srv.URL+"/v1/evidence/"+id+"/progress", nil)
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	out := make(chan sseEvent, 100)
	if resp.StatusCode != 200 {
		resp.Body.Close()
		cancel()
		close(out)
		return resp.StatusCode, out
	}
	if ct := resp.Header.Get("Content-Type"); ct != "text/event-stream" {
		t.Errorf("progress Content-Type %q", ct)
	}
	go func() {
		defer cancel()
		defer close(out)
		defer resp.Body.Close()
		sc := bufio.NewScanner(resp.Body)
		var ev sseEvent
		for sc.Scan() {
			line := sc.Text()
			switch {
			case strings.HasPrefix(line, "event: "):
				ev.name = strings.TrimPrefix(line, "event: ")
			case strings.HasPrefix(line, "data: "):
				if err := json.Unmarshal([]byte(strings.TrimPrefix(line, "data: ")), &ev.p); err != nil {
					t.Errorf("progress data %q: %v", line, err)
				}
			case line == "" && ev.name != "":
				out <- ev
				ev = sseEvent{}
			}
		}
	}()
	return 200, out
}

// A build followed live: its progress comes from the API's memory as it
// changes (the build held on a lock of the events table shows as
// building, released it runs to the end), the stream ends with its end,
// and the stream is one recorded read; another tenant, the wrong role
// and an unknown bundle are refused.
func TestEvidenceProgress(t *testing.T) {
	f := newReadFixture(t)
	carol := f.tokens["carol"]
	// Hold the build at its first read of the events.
	tx, err := f.db.Begin(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback(context.WithoutCancel(t.Context()))
	if _, err := tx.Exec(t.Context(), `LOCK TABLE events IN ACCESS EXCLUSIVE MODE`); err != nil {
		t.Fatal(err)
	}
	from, to := time.Now().Add(-time.Hour).UTC().Format(time.RFC3339), time.Now().Add(time.Hour).UTC().Format(time.RFC3339)
	code, out := f.post(t, "/v1/evidence", carol, `{"tenant":"acme","from":"`+from+`","to":"`+to+`"}`)
	var st api.EvidenceStatus
	if err := json.Unmarshal([]byte(out), &st); code != 202 || err != nil || st.ID == "" {
		t.Fatalf("POST /v1/evidence: %d %s", code, out)
	}
	code, events_ := f.follow(t, st.ID, carol)
	if code != 200 {
		t.Fatalf("following the build: %d", code)
	}
	// Queued, then building; nothing more while the lock holds.
	for ev := range events_ {
		if ev.name != "progress" || ev.p.Status != "queued" && ev.p.Status != "building" {
			t.Fatalf("while the build is held: %+v", ev)
		}
		if ev.p.Status == "building" {
			break
		}
	}
	if err := tx.Commit(t.Context()); err != nil {
		t.Fatal(err)
	}
	var last sseEvent
	for ev := range events_ {
		if ev.name == "progress" && (ev.p.Status != "building" || ev.p.Done < last.p.Done) {
			t.Fatalf("progress %+v after %+v", ev, last)
		}
		last = ev
	}
	if last.name != "end" || last.p.Status != "ready" || last.p.Done != 40 || last.p.Total != 40 {
		t.Fatalf("the stream ended with %+v, want the end of a ready build of 40 records", last)
	}
	// A stream of a finished build: its end at once.
	_, again := f.follow(t, st.ID, carol)
	if ev, ok := <-again; !ok || ev.name != "end" || ev.p.Status != "ready" {
		t.Fatalf("following a ready build: %+v", ev)
	}
	for name, tok := range map[string]string{"gina": f.tokens["gina"], "alice": f.tokens["alice"]} {
		if code, _ := f.follow(t, st.ID, tok); code != 403 {
			t.Errorf("%s following acme's build: %d, want 403", name, code)
		}
	}
	if code, _ := f.follow(t, "0123456789abcdef0123456789abcdef", carol); code != 404 {
		t.Errorf("following an unknown build: %d, want 404", code)
	}
	natstest.CheckFor(t, 10*time.Second, 50*time.Millisecond, func() error {
		n := 0
		for _, s := range f.stream() {
			if s.Event.Type == events.AuditAccessed && s.Payload["resource"] == "evidence progress" && s.Payload["bundle_id"] == st.ID && s.Event.Tenant == "acme" {
				n++
			}
		}
		if n != 2 {
			return fmt.Errorf("%d audit.accessed of the progress for two streams", n)
		}
		return nil
	})
}
