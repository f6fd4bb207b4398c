package test

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/auditledger/auditledger/events"
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
		if len(page.Events) != 12 {
			return fmt.Errorf("%d of the 12 sample events projected", len(page.Events))
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
