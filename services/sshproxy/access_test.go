package sshproxy_test

import (
	"fmt"
	"os"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/auditledger/auditledger/events"
	"github.com/auditledger/auditledger/services/access"
	"github.com/auditledger/auditledger/services/sshproxy"
	"github.com/auditledger/auditledger/test/natstest"
	"github.com/auditledger/auditledger/test/sshdtest"
)

const sshAccess = `version: 2
access:
  - id: web-hosts
    targets: [web]
    approvers: {groups: [approver]}
    max_duration: 1h
`

// accessFixture is a gateway enforcing sshAccess in front of a target
// that serves an unprivileged account as targets serve their users:
// under privilege separation, where sshd honours the gateway's signal
// requests (it signals no root login's programs: docs/COMMANDS.md). It
// returns the account the tests log in as.
func accessFixture(t *testing.T) (*fixture, string) {
	t.Helper()
	login := unprivilegedLogin(t)
	if os.Geteuid() != 0 {
		return start(t, options{access: sshAccess}), login
	}
	keysDir := t.TempDir()
	keys, err := sshproxy.OpenKeys(keysDir, []string{"127.0.0.1", "localhost"})
	if err != nil {
		t.Fatal(err)
	}
	target := sshdtest.StartAs(t, ssh.MarshalAuthorizedKey(keys.TargetCA.PublicKey()), login)
	return start(t, options{access: sshAccess, keysDir: keysDir, targetAddr: target.Addr, hostKeys: []string{target.HostKey}}), login
}

// runningProgram starts, through the gateway, a program without a
// terminal that ignores hang-ups and reads nothing, and returns the
// client and the program's pid on the target.
func (f *fixture) runningProgram(t *testing.T, c *client, login string) (*background, int) {
	t.Helper()
	b := f.background(t, c, login+"+web@gw", hangUpProgram(int(time.Now().UnixNano()%100000)))
	var pid int
	natstest.CheckFor(t, 3*time.Minute, 20*time.Millisecond, func() error {
		line, _, ok := strings.Cut(b.out.String(), "\n")
		if !ok {
			return fmt.Errorf("the program has not printed its pid yet (ssh's stderr: %q)", b.err.String())
		}
		var err error
		pid, err = strconv.Atoi(strings.TrimSpace(line))
		return err
	})
	if !alive(pid) {
		t.Fatalf("pid %d printed, but no such process", pid)
	}
	t.Cleanup(func() { syscall.Kill(pid, syscall.SIGKILL) }) // should it have survived
	return b, pid
}

// cutAndGone waits for the client to be let go and the program to be
// gone from the target, logging how long each took after at (never
// asserted: the machine is shared).
func cutAndGone(t *testing.T, what string, b *background, pid int, at time.Time) {
	t.Helper()
	b.wait(t) // fails the test if the client is not let go
	t.Logf("%s → ssh exited after %s", what, time.Since(at).Round(time.Millisecond))
	natstest.CheckFor(t, 3*time.Minute, 10*time.Millisecond, func() error {
		if alive(pid) {
			return fmt.Errorf("pid %d still runs on the target after the %s", pid, what)
		}
		return nil
	})
	t.Logf("%s → the program gone from the target after %s", what, time.Since(at).Round(time.Millisecond))
}

// A target an access rule names admits an ssh session only inside a live
// grant; at the grant's end, and at its revocation, the session is cut
// and a program without a terminal that ignores hang-ups does not
// survive on the target; session.ended says why.
func TestAccessGrantWithSSH(t *testing.T) {
	f, login := accessFixture(t)
	user := login + "+web@gw"
	c := f.loginAs(t, "alice", "a")
	_, stderr, err := f.ssh(t, c, "", user, "echo", "hi")
	if err == nil || !strings.Contains(stderr, "access refused") {
		t.Fatalf("ssh without a grant: %v\n%s", err, stderr)
	}
	alice := events.Actor{Issuer: f.issuer, Subject: "alice", Kind: events.Human}
	bob := events.Actor{Issuer: f.issuer, Subject: "bob", Kind: events.Human, Groups: []string{"approver"}}
	ended := func(g *access.Request, why string) {
		t.Helper()
		f.waitFor(t, 1, func(st natstest.Stored) bool {
			return st.Event.Type == events.SessionEnded && st.Payload["access_id"] == g.ID && strings.Contains(fmt.Sprint(st.Payload["end_reason"]), why)
		})
	}

	t.Run("end", func(t *testing.T) {
		g := f.access.Grant(t, "acme", alice, bob, "web", 30*time.Minute)
		if out, stderr, err := f.ssh(t, c, "", user, "echo", "hi"); err != nil || strings.TrimSpace(out) != "hi" {
			t.Fatalf("ssh inside the grant: %v %q\n%s", err, out, stderr)
		}
		b, pid := f.runningProgram(t, c, login)
		f.access.Clock.Set(g.NotAfter)
		cutAndGone(t, "grant end", b, pid, time.Now())
		if !strings.Contains(b.err.String(), "ended at") {
			t.Errorf("ssh's stderr does not say why: %s", b.err.String())
		}
		ended(g, "ended at")
		if out, stderr, err := f.ssh(t, c, "", user, "echo", "hi"); err == nil || !strings.Contains(stderr, "access refused") {
			t.Errorf("ssh after the grant's end: %v %q\n%s", err, out, stderr)
		}
	})

	t.Run("revocation", func(t *testing.T) {
		g := f.access.Grant(t, "acme", alice, bob, "web", 30*time.Minute)
		b, pid := f.runningProgram(t, c, login)
		at := time.Now()
		if _, err := f.access.Broker.Revoke(t.Context(), g.ID, bob, "done early"); err != nil {
			t.Fatal(err)
		}
		cutAndGone(t, "revocation", b, pid, at)
		if !strings.Contains(b.err.String(), "revoked") {
			t.Errorf("ssh's stderr does not say why: %s", b.err.String())
		}
		ended(g, "revoked")
		f.waitFor(t, 1, func(st natstest.Stored) bool {
			return st.Event.Type == events.AccessRevoked && st.Event.ID == "access/"+g.ID+"/revoked"
		})
	})
}
