package test

import (
	"archive/zip"
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/auditledger/auditledger/events"
	"github.com/auditledger/auditledger/projections/evidence"
	"github.com/auditledger/auditledger/services/gateway"
	"github.com/auditledger/auditledger/test/natstest"
)

// dev on its own PostgreSQL (no AUDITLEDGER_DATABASE_URL): the sample
// events, emitted as the README shows, come back from the API's /v1/events
// with carol's (auditor) token, one of them is proven offline with `proof
// verify` from what the API returned (its record bytes and a tlog-proof),
// and each read is in the sealed log as audit.accessed. dev stops its
// server on exit, finds the same projection when started again, and a
// killed dev leaves no server running (startDev's cleanup checks that).
func TestDevReadPath(t *testing.T) {
	d := startDev(t, nil)
	if _, err := os.Stat(filepath.Join(d.data, "postgres", "data", "PG_VERSION")); err != nil {
		t.Fatalf("dev's PostgreSQL cluster is not in its data directory: %v\n%s", err, d.stderr.String())
	}
	mustRun(t, mustReadSample(t), nil, "emit", "--nats", d.nats, "--nkey", filepath.Join(d.data, "nats-keys", "proxy.nk"))
	carol := d.token(t, "carol")
	get := func(path string) (int, []byte) { return apiGet(t, d.api, carol, path) }
	var page struct {
		Events []struct {
			Index  uint64 `json:"index"`
			Record string `json:"record"`
		} `json:"events"`
	}
	natstest.CheckFor(t, 30*time.Second, 200*time.Millisecond, func() error {
		code, body := get("/v1/events?tenant=acme")
		if code != 200 {
			return fmt.Errorf("/v1/events: %d %s", code, body)
		}
		if err := json.Unmarshal(body, &page); err != nil {
			return err
		}
		if n := sampleEvents(body); n != 12 {
			return fmt.Errorf("%d of the 12 sample events projected", n)
		}
		return nil
	})
	ev := page.Events[4]
	record, _ := base64.StdEncoding.DecodeString(ev.Record)
	code, proof := get(fmt.Sprintf("/v1/proofs/inclusion?index=%d", ev.Index))
	if code != 200 {
		t.Fatalf("inclusion proof: %d %s", code, proof)
	}
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "record"), record, 0o644)
	os.WriteFile(filepath.Join(dir, "proof"), proof, 0o644)
	mustRun(t, nil, nil, "proof", "verify", "--vkey", d.vkey(), "--record", filepath.Join(dir, "record"), "--proof", filepath.Join(dir, "proof"))
	// The same through the CLI: a table by default, JSON lines with --json.
	env := []string{"AUDITLEDGER_TOKEN=" + carol, "AUDITLEDGER_API=" + d.api}
	r := mustRun(t, nil, env, "query", "events", "--tenant", "acme", "--type", "session.started")
	if !strings.Contains(r.stdout, "INDEX") || !strings.Contains(r.stdout, "session.started") || strings.Contains(r.stdout, "command.executed") {
		t.Errorf("query events:\n%s", r.stdout)
	}
	// The CLI is held to carol's scope (dev's tenants): another tenant is
	// refused, saying why.
	for _, args := range [][]string{{"query", "events", "--tenant", "globex"}, {"query", "session", "sess-7f3a", "--tenant", "globex"}} {
		if r := run(t, nil, env, args...); r.code == 0 || !strings.Contains(r.stderr, "outside your scope") || !strings.Contains(r.stderr, "HTTP 403") {
			t.Errorf("%v: exit %d, %s", args, r.code, r.stderr)
		}
	}
	r = mustRun(t, nil, env, "query", "session", "sess-7f3a", "--tenant", "acme", "--json")
	if n := strings.Count(r.stdout, `"index"`); n < 2 {
		t.Errorf("query session --json printed %d events:\n%s", n, r.stdout)
	}
	if r := run(t, nil, []string{"AUDITLEDGER_API=" + d.api}, "query", "events"); r.code == 0 || !strings.Contains(r.stderr, "AUDITLEDGER_TOKEN") {
		t.Errorf("query without a token: exit %d, %s", r.code, r.stderr)
	}
	// Every read is in the sealed, verified log: who read what.
	d.stop(t)
	if _, err := os.Stat(filepath.Join(d.data, "postgres", "data", "postmaster.pid")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("dev's PostgreSQL still runs after dev stopped: %v", err)
	}
	reads := map[string]int{}
	for _, s := range verifiedEvents(t, d.store(), d.vkey()) {
		if s.Event.Type == events.AuditAccessed && s.Event.Actor.Subject == "carol" {
			reads[fmt.Sprint(s.Payload["resource"])]++
		}
	}
	if reads["events"] < 1 || reads["inclusion proof"] != 1 {
		t.Errorf("audit.accessed in the sealed log by resource: %v; want the events reads and the one proof", reads)
	}
	// Started again, dev runs the same cluster: the projection is there
	// before anything new is sealed. Carol's reads of acme are acme's
	// events too.
	again := startDevAt(t, d.data, nil)
	code, body := apiGet(t, again.api, again.token(t, "carol"), "/v1/events?tenant=acme&limit=100")
	if code != 200 || strings.Count(string(body), `"id": "sample-`) != 12 || !strings.Contains(string(body), `"type": "audit.accessed"`) {
		t.Errorf("after a restart, /v1/events?tenant=acme: %d, want the 12 sample events and carol's reads:\n%s", code, body)
	}
	if !strings.Contains(again.stderr.String(), "projection database up") || strings.Contains(again.stderr.String(), "created the projection database's cluster") {
		t.Errorf("the second start did not reuse the cluster:\n%s", again.stderr.String())
	}
}

// sampleEvents counts the README sample's events (ids sample-…) in a
// /v1/events answer. The API records each read as an event of the tenant
// it read, so a poll that came before the sample was all projected finds
// its own earlier reads listed too: only the sample's are counted.
func sampleEvents(body []byte) int {
	var page struct {
		Events []struct {
			Event struct {
				ID string `json:"id"`
			} `json:"event"`
		} `json:"events"`
	}
	if json.Unmarshal(body, &page) != nil {
		return -1
	}
	n := 0
	for _, e := range page.Events {
		if strings.HasPrefix(e.Event.ID, "sample-") {
			n++
		}
	}
	return n
}

// apiGet calls the API with a bearer token and returns the status and body.
func apiGet(t *testing.T, api, token, path string) (int, []byte) {
	t.Helper()
	req, _ := http.NewRequest("GET", api+path, nil)
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, b
}

// TestDevSecondOnSameDataRefused: a second dev on a data directory in use
// is refused at once, naming the directory and the first one's PID, and
// touches nothing: the first keeps its projection database and serves
// reads. (Before the lock, the second started a second NATS on the same
// JetStream directory and its PostgreSQL launcher stopped the first's.)
func TestDevSecondOnSameDataRefused(t *testing.T) {
	d := startDev(t, nil)
	second := exec.Command(binary, "dev", "--data", d.data, "--nats-port", "-1", "--http", "127.0.0.1:0", "--api", "127.0.0.1:0",
		"--oidc", "127.0.0.1:0", "--proxy", "127.0.0.1:0", "--proxy-http", "127.0.0.1:0", "--postgres-port", "0")
	var out lockedBuffer
	second.Stdout, second.Stderr = &out, &out
	if err := second.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- second.Wait() }()
	select {
	case err := <-exited:
		want := fmt.Sprintf("the data directory %s is in use by another auditledger (pid %d)", d.data, d.cmd.Process.Pid)
		if err == nil || !strings.Contains(out.String(), want) {
			t.Fatalf("second dev: %v\n%s\nwant the refusal %q", err, out.String(), want)
		}
	case <-time.After(60 * time.Second):
		second.Process.Signal(syscall.SIGTERM)
		<-exited
		t.Fatalf("a second dev on %s still runs after 60s:\n%s", d.data, out.String())
	}
	// The first is untouched: ready, and its read path answers.
	mustRun(t, mustReadSample(t), nil, "emit", "--nats", d.nats, "--nkey", filepath.Join(d.data, "nats-keys", "proxy.nk"))
	carol := d.token(t, "carol")
	natstest.CheckFor(t, 60*time.Second, 200*time.Millisecond, func() error {
		resp, err := http.Get(d.metrics + "/readyz")
		if err != nil {
			return err
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 {
			return fmt.Errorf("/readyz %d %s", resp.StatusCode, body)
		}
		if code, body := apiGet(t, d.api, carol, "/v1/events?tenant=acme"); code != 200 || sampleEvents(body) != 12 {
			return fmt.Errorf("/v1/events: %d %.300s", code, body)
		}
		return nil
	})
	d.stop(t)
}

// TestDevEvidenceCheckCommandWorks: the "check it" command evidence build
// prints is one that passes on the store it was built from — dev's,
// which is not write-once, so with --allow-unlocked and a note why — and
// verify then warns once for all the unlocked segments, not once each.
// The build names who asked and is recorded as evidence.exported before
// the file is written; without the bus, nothing is written.
func TestDevEvidenceCheckCommandWorks(t *testing.T) {
	d := startDev(t, nil, "--batch", "3")
	// Three events per emit: one emit's events can travel as one bus
	// message, which is sealed whole into one segment whatever --batch
	// says (with busy cores all twelve once went in one message).
	lines := bytes.SplitAfter(bytes.TrimSpace(mustReadSample(t)), []byte("\n"))
	for i := 0; i < len(lines); i += 3 {
		mustRun(t, bytes.Join(lines[i:min(i+3, len(lines))], nil), nil, "emit", "--nats", d.nats, "--nkey", filepath.Join(d.data, "nats-keys", "proxy.nk"))
	}
	carol := d.token(t, "carol")
	natstest.CheckFor(t, 60*time.Second, 200*time.Millisecond, func() error {
		if code, body := apiGet(t, d.api, carol, "/v1/events?tenant=acme"); code != 200 || sampleEvents(body) != 12 {
			return fmt.Errorf("/v1/events: %d %.300s", code, body)
		}
		return nil
	})
	url, err := os.ReadFile(filepath.Join(d.data, "projection.url"))
	if err != nil {
		t.Fatal(err)
	}
	bundle := filepath.Join(t.TempDir(), "acme.zip")
	r := mustRun(t, nil, []string{"AUDITLEDGER_DATABASE_URL=" + strings.TrimSpace(string(url))}, "evidence", "build", "--tenant", "acme",
		"--from", "2000-01-01", "--to", "2100-01-01", "--out", bundle, "--key", filepath.Join(d.data, "keys", "evidence"), "--vkey", d.vkey(),
		"--nats", d.nats, "--nkey", filepath.Join(d.data, "nats-keys", "admin.nk"), "--operator", "auditor-7")
	_, check, ok := strings.Cut(r.stdout, "check it: auditledger ")
	if !ok {
		t.Fatalf("evidence build printed no check command:\n%s", r.stdout)
	}
	check, note, _ := strings.Cut(check, "\n")
	// The period runs past now: no verification can cover its end yet,
	// and the build says why 5.33 has an exception and when the writer
	// verifies.
	if !strings.Contains(r.stdout, "note: 5.33 has an exception because no verification sealed yet covers the period's end: the writer verifies the whole log when it starts on a log that holds records and every ledger.verify_every") {
		t.Errorf("evidence build does not explain 5.33's exception:\n%s", r.stdout)
	}
	// Chain of custody: the manifest names who asked and the tool, and
	// the export is in the log, naming the file's digest.
	zr, err := zip.OpenReader(bundle)
	if err != nil {
		t.Fatal(err)
	}
	mf, err := zr.Open(evidence.ManifestFile)
	if err != nil {
		t.Fatal(err)
	}
	var m evidence.Manifest
	err = json.NewDecoder(mf).Decode(&m)
	zr.Close()
	if err != nil || m.RequestedBy == nil || m.RequestedBy.Subject != "auditor-7" || !strings.HasPrefix(m.Generator, "auditledger ") {
		t.Errorf("the manifest names requester %+v and generator %q (%v), want auditor-7 and the tool's version", m.RequestedBy, m.Generator, err)
	}
	zipBytes, err := os.ReadFile(bundle)
	if err != nil {
		t.Fatal(err)
	}
	zipSum := sha256.Sum256(zipBytes)
	natstest.CheckFor(t, 60*time.Second, 200*time.Millisecond, func() error {
		code, body := apiGet(t, d.api, carol, "/v1/events?type=evidence.exported&tenant=acme")
		if code != 200 || !strings.Contains(string(body), m.BundleID) || !strings.Contains(string(body), hex.EncodeToString(zipSum[:])) {
			return fmt.Errorf("evidence.exported of bundle %s (sha256 %x) not in the log: %d %.500s", m.BundleID, zipSum, code, body)
		}
		return nil
	})
	// An operator named by e-mail address is named in the manifest as the
	// ledger records them, by pseudonym: a bundle handed out cannot be
	// erased.
	personal := filepath.Join(t.TempDir(), "personal.zip")
	mustRun(t, nil, []string{"AUDITLEDGER_DATABASE_URL=" + strings.TrimSpace(string(url))}, "evidence", "build", "--tenant", "acme",
		"--from", "2000-01-01", "--to", "2100-01-01", "--out", personal, "--key", filepath.Join(d.data, "keys", "evidence"), "--vkey", d.vkey(),
		"--nats", d.nats, "--nkey", filepath.Join(d.data, "nats-keys", "admin.nk"), "--operator", "jane.auditor@example.com")
	if zr, err := zip.OpenReader(personal); err != nil {
		t.Error(err)
	} else {
		for _, f := range zr.File {
			rc, err := f.Open()
			if err != nil {
				t.Fatal(err)
			}
			b, err := io.ReadAll(rc)
			rc.Close()
			if err != nil || bytes.Contains(b, []byte("jane.auditor")) {
				t.Errorf("%s of the bundle built by an operator named by e-mail holds the address (%v)", f.Name, err)
			}
		}
		var pm evidence.Manifest
		if mf, err := zr.Open(evidence.ManifestFile); err != nil || json.NewDecoder(mf).Decode(&pm) != nil || pm.RequestedBy == nil ||
			!strings.HasPrefix(pm.RequestedBy.Subject, gateway.PseudonymPrefix) {
			t.Errorf("the manifest names the requester %+v, want the pseudonym (%v)", pm.RequestedBy, err)
		}
		zr.Close()
	}
	// Without the bus the CLI builds nothing: no export unrecorded.
	unrecorded := filepath.Join(t.TempDir(), "unrecorded.zip")
	if r := run(t, nil, []string{"AUDITLEDGER_DATABASE_URL=" + strings.TrimSpace(string(url))}, "evidence", "build", "--tenant", "acme",
		"--from", "2000-01-01", "--to", "2100-01-01", "--out", unrecorded, "--key", filepath.Join(d.data, "keys", "evidence"), "--vkey", d.vkey(),
		"--nats", d.nats); r.code == 0 {
		t.Errorf("evidence build without the bus's credentials exited 0")
	}
	if _, err := os.Stat(unrecorded); !os.IsNotExist(err) {
		t.Errorf("a bundle whose export was not recorded was written: %v", err)
	}
	// Without the operator's keys, or with the bundle's own: not OK.
	if r := run(t, nil, nil, "evidence", "verify", bundle, "--trust-bundle-keys", "--allow-unlocked"); r.code != 1 || !strings.HasPrefix(r.stdout, "UNVERIFIED ORIGIN") {
		t.Errorf("verify --trust-bundle-keys: exit %d, want 1 and UNVERIFIED ORIGIN:\n%s", r.code, r.stdout)
	}
	if !strings.Contains(check, "--allow-unlocked") || !strings.Contains(note, "not write-once-locked") {
		t.Errorf("the check command %q (note %q) does not say --allow-unlocked for dev's store", check, note)
	}
	v := run(t, nil, nil, strings.Fields(check)...)
	if v.code != 0 || !strings.HasPrefix(v.stdout, "OK ") {
		t.Fatalf("the printed check command %q: exit %d\n%s%s", check, v.code, v.stdout, v.stderr)
	}
	segments := regexp.MustCompile(`segments\s+(\d+)`).FindStringSubmatch(v.stdout)
	if segments == nil || segments[1] == "1" || segments[1] == "0" {
		t.Fatalf("want several segments (dev --batch 3), verify says:\n%s", v.stdout)
	}
	warnings := regexp.MustCompile(`(?m)^\s*warning: .*write-once.*$`).FindAllString(v.stdout, -1)
	if len(warnings) != 1 || !strings.Contains(warnings[0], segments[1]+" of "+segments[1]+" segments are not write-once-locked") {
		t.Errorf("want one summary warning for the %s unlocked segments, got %d:\n%s", segments[1], len(warnings), v.stdout)
	}
}
