package sshproxy_test

import (
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/auditledger/auditledger/events"
	"github.com/auditledger/auditledger/test/natstest"
)

const denyTouch = `version: 2
deny:
  - id: no-touch
    commands: [touch]
    reason: touching files needs a change ticket
  - id: no-shells
    shell: true
    reason: interactive shells and what cannot be judged are closed
approve:
  - id: restart
    commands: [mkdir]
    timeout: 2m
    reason: creating directories needs a second person
allow:
  - id: files
    subsystems: [sftp]
`

// A denied command never runs on the target, wherever it hides in the
// command line: after ;, inside bash -c, inside $(…), behind sudo or env,
// in a function; and what the parser cannot resolve is judged as a shell
// (denied here), never as its harmless-looking outer command. Each is
// recorded as blocked, and the client is told why.
func TestDeniedCommandsNeverRun(t *testing.T) {
	f := start(t, options{policy: denyTouch})
	c := f.loginAs(t, "alice", "a")
	m := f.marker
	cases := []string{
		"touch " + m,
		"true; touch " + m,
		"bash -c 'touch " + m + "'",
		"sh -c \"echo x && touch " + m + "\"",
		"echo $(touch " + m + ")",
		"echo `touch " + m + "`",
		"sudo -u root touch " + m,
		"env A=1 /usr/bin/touch " + m,
		"f() { touch " + m + "; }; f",
		"true | (cd /; touch " + m + ")",
		"t\\ouch " + m,
		"'touch' " + m,
		// Unresolvable: judged as a shell.
		"eval 'touch " + m + "'",
		"CMD=touch; $CMD " + m,
		"python3 -c 'import pathlib; pathlib.Path(\"" + m + "\").touch()'",
		"perl -e 'open F, \">" + m + "\"'",
		"echo touch " + m + " | bash",
		"bash < /dev/null",
		"find /tmp -maxdepth 0 -exec touch " + m + " ;",
		"echo " + m + " | xargs touch",
		"ssh localhost touch " + m,
		"bash -c \"$(echo touch " + m + ")\"",
		"/usr/bin/t?uch " + m,
		"{touch," + m + "}",
		// Does not parse while rules apply: refused.
		"echo 'unterminated; touch " + m,
	}
	for _, cmd := range cases {
		_, errOut, err := f.ssh(t, c, "", f.user("web"), cmd)
		if err == nil || !strings.Contains(errOut, "auditledger: refused") {
			t.Errorf("%s: ran (err %v, stderr %q)", cmd, err, errOut)
		}
		if _, err := os.Stat(m); err == nil {
			t.Fatalf("%s: the marker exists: the command ran on the target", cmd)
		}
	}
	blocked := f.waitFor(t, len(cases), ofType(events.CommandBlocked))
	for _, b := range blocked {
		if b.Payload["rule"] == nil && !strings.Contains(b.Payload["reason"].(string), "cannot be parsed") {
			t.Errorf("command.blocked without a rule: %v", b.Payload)
		}
	}
	// What no rule matches runs.
	if out, errOut, err := f.ssh(t, c, "", f.user("web"), "echo ok | tr a-z A-Z"); err != nil || out != "OK\n" {
		t.Fatalf("an allowed command: %q %v %s", out, err, errOut)
	}
}

// A held command runs once an approver grants it, exactly once.
func TestHeldCommandRunsAfterApproval(t *testing.T) {
	f := start(t, options{policy: denyTouch})
	c := f.loginAs(t, "alice", "a")
	dir := f.marker + ".d"
	type result struct {
		out, errOut string
		err         error
	}
	done := make(chan result, 1)
	go func() {
		out, errOut, err := f.ssh(t, c, "", f.user("web"), "mkdir "+dir+" && echo made")
		done <- result{out, errOut, err}
	}()
	var id string
	natstest.CheckFor(t, 3*time.Minute, 50*time.Millisecond, func() error {
		for _, e := range f.events(t) {
			if e.Event.Type == events.ApprovalRequested {
				id = e.Payload["approval_id"].(string)
				return nil
			}
		}
		return fmt.Errorf("no approval.requested")
	})
	if _, err := os.Stat(dir); err == nil {
		t.Fatal("the held command ran before the approval")
	}
	f.decide(t, id, true)
	r := <-done
	if r.err != nil || r.out != "made\n" || !strings.Contains(r.errOut, "held for approval "+id) {
		t.Fatalf("held command: %q %v %q", r.out, r.err, r.errOut)
	}
	if _, err := os.Stat(dir); err != nil {
		t.Fatal("the granted command did not run")
	}
	executed := f.waitFor(t, 1, ofType(events.CommandExecuted))
	if len(executed) != 1 || executed[0].Payload["rule"] != "restart" {
		t.Errorf("command.executed %v", executed)
	}
}

// decide grants or denies an approval as the API does: bob signs it.
func (f *fixture) decide(t *testing.T, id string, grant bool) {
	t.Helper()
	if _, err := f.broker.Decide(t.Context(), id, bobActor, grant, "ok"); err != nil {
		t.Fatal(err)
	}
}

var bobActor = events.Actor{Issuer: "test", Subject: "bob", Kind: events.Human}
