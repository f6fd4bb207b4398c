package test

import (
	"encoding/base64"
	"encoding/json"
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
	"github.com/auditledger/auditledger/test/pgtest"
)

// dev with a projection database: the sample events, emitted as the README
// shows, come back from the API's /v1/events with carol's (auditor) token,
// one of them is proven offline with `proof verify` from what the API
// returned (its record bytes and a tlog-proof), and each read is in the
// sealed log as audit.accessed.
func TestDevReadPath(t *testing.T) {
	pg, err := pgtest.Start()
	if err != nil {
		t.Fatal(err)
	}
	defer pg.Stop()
	d := startDev(t, []string{"AUDITLEDGER_DATABASE_URL=" + pg.DSN(pg.NewDatabase(t))})
	mustRun(t, mustReadSample(t), nil, "emit", "--nats", d.nats, "--nkey", filepath.Join(d.data, "nats-keys", "proxy.nk"))
	carol := d.token(t, "carol")
	get := func(path string) (int, []byte) {
		req, _ := http.NewRequest("GET", d.api+path, nil)
		req.Header.Set("Authorization", "Bearer "+carol)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, b
	}
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
	r = mustRun(t, nil, env, "query", "session", "sess-7f3a", "--tenant", "acme", "--json")
	if n := strings.Count(r.stdout, `"index"`); n < 2 {
		t.Errorf("query session --json printed %d events:\n%s", n, r.stdout)
	}
	if r := run(t, nil, []string{"AUDITLEDGER_API=" + d.api}, "query", "events"); r.code == 0 || !strings.Contains(r.stderr, "AUDITLEDGER_TOKEN") {
		t.Errorf("query without a token: exit %d, %s", r.code, r.stderr)
	}
	// Every read is in the sealed, verified log: who read what.
	d.stop(t)
	reads := map[string]int{}
	for _, s := range verifiedEvents(t, d.store(), d.vkey()) {
		if s.Event.Type == events.AuditAccessed && s.Event.Actor.Subject == "carol" {
			reads[fmt.Sprint(s.Payload["resource"])]++
		}
	}
	if reads["events"] < 1 || reads["inclusion proof"] != 1 {
		t.Errorf("audit.accessed in the sealed log by resource: %v; want the events reads and the one proof", reads)
	}
}
