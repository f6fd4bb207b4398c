package test

import (
	"crypto/sha256"
	"encoding/hex"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/auditledger/auditledger/events"
	"github.com/auditledger/auditledger/services/approvals"
)

// TestDevHTTPProxyCurl drives dev's HTTP proxy with curl in front of a
// real HTTP service: a masked read, a denied delete, a deploy held until
// bob approves it with the CLI; then the verified ledger tells it all,
// and the recorded digest is the digest of what curl received.
func TestDevHTTPProxyCurl(t *testing.T) {
	var deploys atomic.Int64
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch {
		case r.URL.Path == "/api/users":
			w.Header().Set("Content-Type", "application/json")
			io.WriteString(w, `{"users":[{"name":"Ann","email":"ann@example.com","iban":"DE89 3704 0044 0532 0130 00"}]}`)
		case r.URL.Path == "/api/deploy" && r.Method == "POST":
			deploys.Add(1)
			io.WriteString(w, "deployed\n")
		default:
			io.WriteString(w, "ok\n")
		}
	}))
	defer up.Close()
	policy := filepath.Join(t.TempDir(), "http-policy.yaml")
	os.WriteFile(policy, []byte(`version: 1
mask:
  - id: pii
    fields: ["**.email"]
    detect: [iban]
    method: redact
deny:
  - id: no-deletes
    methods: [DELETE]
    reason: deletes go through the change process
approve:
  - id: deploys
    methods: [POST]
    paths: ["/api/deploy"]
    timeout: 2m
`), 0o644)
	d := startDev(t, nil, "--http-upstream", up.URL, "--http-policy", policy)
	if d.http == "" {
		t.Fatal("dev did not start the HTTP proxy")
	}
	alice, bob := d.token(t, "alice"), d.token(t, "bob")
	curl := func(token string, args ...string) *exec.Cmd {
		// The token goes in a header read from stdin, not on the command line.
		cmd := exec.Command("curl", append([]string{"-sS", "-H", "@-"}, args...)...)
		cmd.Stdin = strings.NewReader("Authorization: Bearer " + token + "\n")
		return cmd
	}

	users, err := curl(alice, "--fail-with-body", d.http+"/api/users").Output()
	if err != nil || strings.Contains(string(users), "ann@example.com") || !strings.Contains(string(users), `"email":"[REDACTED]"`) || !strings.Contains(string(users), `"iban":"[REDACTED]"`) {
		t.Fatalf("masked read: %v %s", err, users)
	}
	del, _ := curl(alice, "-X", "DELETE", "-w", " %{http_code}", d.http+"/api/users/1").Output()
	if !strings.Contains(string(del), "deletes go through the change process") || !strings.HasSuffix(string(del), " 403") {
		t.Errorf("DELETE: %s", del)
	}

	deploy := curl(alice, "--fail-with-body", "-X", "POST", "--data", `{"release":"v2"}`, d.http+"/api/deploy")
	var deployOut strings.Builder
	deploy.Stdout, deploy.Stderr = &deployOut, &deployOut
	if err := deploy.Start(); err != nil {
		t.Fatal(err)
	}
	bobEnv := []string{"AUDITLEDGER_TOKEN=" + bob}
	pending := onePending(t, d, bobEnv)
	if deploys.Load() != 0 {
		t.Fatal("the deploy reached the service before approval")
	}
	// The body is bound by its keyed digest under the tenant's search key
	// (docs/FORMAT.md §1.5), which only the bus holds.
	head, body, _ := strings.Cut(pending.Statement, "\nbody-hmac: ")
	if want := approvals.HTTPStatement("POST", "/api/deploy", http.Header{"Content-Type": {"application/x-www-form-urlencoded"}}, ""); head != want ||
		!regexp.MustCompile(`^hmac:[0-9a-f]{64}$`).MatchString(body) {
		t.Fatalf("held statement %q, want %q and the body's keyed digest", pending.Statement, want)
	}
	mustRun(t, nil, bobEnv, "approvals", "approve", pending.ID, "--api", d.api)
	if err := deploy.Wait(); err != nil || deployOut.String() != "deployed\n" || deploys.Load() != 1 {
		t.Fatalf("approved deploy: %v %q (%d deploys)", err, deployOut.String(), deploys.Load())
	}

	var story []string
	var usersDigest string
	commands := map[string]string{}
	unkeyed := sha256.Sum256(users)
	for _, s := range d.drainStopAndRead(t) {
		ev, p := s.Event, s.Payload
		if strings.Contains(string(s.Raw), "ann@example.com") || strings.Contains(string(s.Raw), "0532 0130") {
			t.Errorf("unmasked value in the ledger: %s", s.Raw)
		}
		if strings.Contains(string(s.Raw), hex.EncodeToString(unkeyed[:])) {
			t.Errorf("the unkeyed SHA-256 of a response in the ledger: %s", s.Raw)
		}
		switch ev.Type {
		case events.CommandExecuted:
			commands[ev.ID] = p["statement"].(string)
			story = append(story, "executed "+p["statement"].(string))
		case events.ResponseDigest:
			if commands[p["command_id"].(string)] == "GET /api/users" {
				usersDigest, _ = p["hmac"].(string)
			}
		case events.CommandBlocked:
			story = append(story, "blocked "+p["statement"].(string))
		case events.ApprovalRequested, events.ApprovalGranted:
			story = append(story, string(ev.Type)+" "+ev.Actor.Subject)
		}
	}
	// Keyed under the tenant's search key, which only the bus holds
	// (docs/FORMAT.md §1.5).
	if !regexp.MustCompile(`^hmac:[0-9a-f]{64}$`).MatchString(usersDigest) {
		t.Errorf("digest of the response in the ledger %q, want a keyed one", usersDigest)
	}
	want := "executed GET /api/users, blocked DELETE /api/users/1, approval.requested alice, approval.granted bob, executed POST /api/deploy"
	if got := strings.Join(story, ", "); got != want {
		t.Errorf("ledger story:\n got %s\nwant %s", got, want)
	}
}
