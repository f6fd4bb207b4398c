package sshproxy_test

import (
	"crypto/rand"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/auditledger/auditledger/events"
	"github.com/auditledger/auditledger/services/gateway"
	"github.com/auditledger/auditledger/test/natstest"
)

// scp (its SFTP-based default and the original protocol, scp -O) and
// sftp pass through the gateway; each file operation is recorded with
// its path, size and keyed digest, and a path a rule denies is refused.
func TestScpAndSftp(t *testing.T) {
	f := start(t, options{policy: `version: 2
deny:
  - id: no-secrets
    commands: [sftp-write, sftp-read]
    pattern: "/secret"
    reason: the secret directory is closed
  - id: no-secrets-scp
    pattern: "/secret"
    reason: the secret directory is closed
allow:
  - id: files
    subsystems: [sftp]
`})
	c := f.loginAs(t, "alice", "a")
	dir := t.TempDir()
	remote := t.TempDir()
	os.Chmod(remote, 0o777)
	data := make([]byte, 300<<10)
	rand.Read(data)
	local := filepath.Join(dir, "data.bin")
	os.WriteFile(local, data, 0o644)
	scp := func(args ...string) (string, error) {
		_, errOut, err := f.run(t, "", "scp", append([]string{"-F", c.config, "-q"}, args...)...)
		return errOut, err
	}
	// Upload and download with the default (SFTP) protocol.
	if errOut, err := scp(local, f.user("web")+":"+remote+"/up.bin"); err != nil {
		t.Fatalf("scp up: %v %s", err, errOut)
	}
	if got, _ := os.ReadFile(filepath.Join(remote, "up.bin")); string(got) != string(data) {
		t.Fatalf("the target holds %d bytes, want the %d sent", len(got), len(data))
	}
	if errOut, err := scp(f.user("web")+":"+remote+"/up.bin", filepath.Join(dir, "down.bin")); err != nil {
		t.Fatalf("scp down: %v %s", err, errOut)
	}
	if got, _ := os.ReadFile(filepath.Join(dir, "down.bin")); string(got) != string(data) {
		t.Fatal("scp down: different bytes")
	}
	// The original protocol: an exec of scp -t / scp -f on the target.
	if errOut, err := scp("-O", local, f.user("web")+":"+remote+"/legacy.bin"); err != nil {
		t.Fatalf("scp -O: %v %s", err, errOut)
	}
	if got, _ := os.ReadFile(filepath.Join(remote, "legacy.bin")); string(got) != string(data) {
		t.Fatal("scp -O: different bytes")
	}
	// sftp in batch mode.
	batch := filepath.Join(dir, "batch")
	os.WriteFile(batch, []byte("put "+local+" "+remote+"/s.bin\nrename "+remote+"/s.bin "+remote+"/t.bin\nget "+remote+"/t.bin "+dir+"/t.bin\nrm "+remote+"/t.bin\nmkdir "+remote+"/d\n"), 0o644)
	if _, errOut, err := f.run(t, "", "sftp", "-F", c.config, "-b", batch, f.user("web")); err != nil {
		t.Fatalf("sftp: %v %s", err, errOut)
	}
	if _, err := os.Stat(filepath.Join(remote, "d")); err != nil {
		t.Fatal("sftp mkdir did not reach the target")
	}
	// Denied by path, either way, and with scp -O.
	os.MkdirAll(filepath.Join(remote, "secret"), 0o777)
	if errOut, err := scp(local, f.user("web")+":"+remote+"/secret/x"); err == nil || !strings.Contains(errOut, "Permission denied") {
		t.Errorf("scp into the secret directory: %v %q", err, errOut)
	}
	if errOut, err := scp("-O", local, f.user("web")+":"+remote+"/secret/y"); err == nil {
		t.Errorf("scp -O into the secret directory: %v %q", err, errOut)
	}
	if entries, _ := os.ReadDir(filepath.Join(remote, "secret")); len(entries) != 0 {
		t.Errorf("the secret directory holds %v", entries)
	}

	key, err := f.pii.TenantKey(t.Context(), "acme")
	if err != nil {
		t.Fatal(err)
	}
	want := gateway.KeyedDigest(key, "auditledger file v1\n", data)
	ops := map[string]int{}
	f.waitFor(t, 1, func(e natstest.Stored) bool {
		return e.Event.Type == events.CommandExecuted && e.Payload["operation"] == "mkdir"
	})
	for _, e := range f.events(t) {
		if e.Event.Type != events.CommandExecuted || e.Payload["protocol"] != "sftp" {
			continue
		}
		op := e.Payload["operation"].(string)
		ops[op]++
		if (op == "read" || op == "write") && (e.Payload["hmac"] != want || e.Payload["bytes"] != float64(len(data))) {
			t.Errorf("%s %v: want %d bytes, %s", op, e.Payload["path"], len(data), want)
		}
	}
	if ops["write"] != 2 || ops["read"] != 2 || ops["rename"] != 1 || ops["remove"] != 1 || ops["mkdir"] != 1 {
		t.Errorf("sftp operations recorded: %v", ops)
	}
	blocked := f.waitFor(t, 2, ofType(events.CommandBlocked))
	if len(blocked) != 2 {
		t.Errorf("blocked: %v", blocked)
	}
}
