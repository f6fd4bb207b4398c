package sshproxy_test

import (
	"bufio"
	"fmt"
	"os"
	"os/user"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/auditledger/auditledger/events"
	"github.com/auditledger/auditledger/services/sshproxy"
	"github.com/auditledger/auditledger/test/natstest"
	"github.com/auditledger/auditledger/test/sshdtest"
)

// unprivilegedLogin is an account other than root that sshd can run a
// command as: the user running the tests, or, for tests run as root, an
// account with a login shell (postgres, which .ci/run installs with
// PostgreSQL, first).
func unprivilegedLogin(t *testing.T) string {
	t.Helper()
	if os.Geteuid() != 0 {
		u, err := user.Current()
		if err != nil {
			t.Fatal(err)
		}
		return u.Username
	}
	f, err := os.Open("/etc/passwd")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var found []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fs := strings.Split(sc.Text(), ":")
		if len(fs) < 7 || fs[2] == "0" || strings.HasSuffix(fs[6], "nologin") || strings.HasSuffix(fs[6], "false") || fs[6] == "/bin/sync" {
			continue
		}
		if _, err := os.Stat(fs[5]); err != nil {
			continue // no home directory to start in
		}
		found = append(found, fs[0])
	}
	for _, name := range found {
		if name == "postgres" {
			return name
		}
	}
	if len(found) == 0 {
		t.Fatal("no account but root has a login shell and a home: the test needs one to log in as on the target (.ci/run installs postgresql, whose postgres account has both)")
	}
	return found[0]
}

// hangUpProgram is a program that ignores SIGHUP and reads nothing: it
// prints its pid (sleep's, after exec) and sleeps for an hour. tag makes
// the command line its own.
func hangUpProgram(tag int) string {
	return fmt.Sprintf("trap '' HUP; echo $$; exec sleep %d", 3600+tag)
}

// A program that ignores SIGHUP and reads nothing, whose client vanishes:
// the gateway sends SIGHUP, then SIGKILL once the grace has passed, and
// records how the program ended (session.ended's hangup). A login sshd
// serves with privilege separation is signalled and the program killed;
// sshd refuses to signal root's programs, and the record says so — the
// program runs on, which is why the target must be configured as
// docs/COMMANDS.md says.
func TestProgramIgnoringHangUp(t *testing.T) {
	run := func(t *testing.T, f *fixture, login string) (pid int, ended natstest.Stored) {
		t.Helper()
		alice := f.loginAs(t, "alice", "a")
		b, pid := f.runningProgram(t, alice, login)
		b.cmd.Process.Kill() // the client vanishes
		b.wait(t)
		ended = f.waitFor(t, 1, ofType(events.SessionEnded))[0]
		if ended.Payload["reason"] != sshproxy.ReasonClientGone {
			t.Errorf("session.ended %v", ended.Payload)
		}
		return pid, ended
	}

	t.Run("signalled", func(t *testing.T) {
		login := unprivilegedLogin(t)
		var f *fixture
		if os.Geteuid() == 0 {
			// A target sshd run as that account, trusting the
			// gateway's target CA.
			keysDir := t.TempDir()
			keys, err := sshproxy.OpenKeys(keysDir, []string{"127.0.0.1", "localhost"})
			if err != nil {
				t.Fatal(err)
			}
			target := sshdtest.StartAs(t, ssh.MarshalAuthorizedKey(keys.TargetCA.PublicKey()), login)
			f = start(t, options{keysDir: keysDir, targetAddr: target.Addr, hostKeys: []string{target.HostKey}})
		} else {
			f = start(t, options{})
		}
		pid, ended := run(t, f, login)
		defer syscall.Kill(pid, syscall.SIGKILL) // should it have survived
		if ended.Payload["hangup"] != sshproxy.HangupKilled || ended.Payload["exit_signal"] != "KILL" {
			t.Errorf("session.ended %v: want hangup %q, exit_signal KILL", ended.Payload, sshproxy.HangupKilled)
		}
		natstest.CheckFor(t, 3*time.Minute, 20*time.Millisecond, func() error {
			if alive(pid) {
				return fmt.Errorf("pid %d still runs on the target", pid)
			}
			return nil
		})
	})

	t.Run("root", func(t *testing.T) {
		if os.Geteuid() != 0 {
			t.Skip("sshd run by a user other than root logs in as that user only")
		}
		pid, ended := run(t, start(t, options{}), "root")
		defer syscall.Kill(pid, syscall.SIGKILL) // the test's own program, which sshd left running
		if ended.Payload["hangup"] != sshproxy.HangupRefused {
			t.Errorf("session.ended %v: want hangup %q", ended.Payload, sshproxy.HangupRefused)
		}
		if !alive(pid) {
			t.Errorf("pid %d ended: sshd signals root's programs after all, and HangupRefused's account of it is wrong", pid)
		}
	})
}

// alive reports whether process pid exists (a zombie counts as gone).
func alive(pid int) bool {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return false
	}
	_, rest, _ := strings.Cut(string(b), ") ")
	return !strings.HasPrefix(rest, "Z")
}
