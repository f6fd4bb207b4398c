package sshproxy_test

import (
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/auditledger/auditledger/events"
	"github.com/auditledger/auditledger/services/sshproxy"
	"github.com/auditledger/auditledger/test/natstest"
	"github.com/auditledger/auditledger/test/testnet"
)

// background runs the stock ssh client until the test ends, its output
// kept.
type background struct {
	cmd      *exec.Cmd
	stdin    io.WriteCloser
	out, err lockedBuffer
	done     chan error
}

func (f *fixture) background(t *testing.T, c *client, args ...string) *background {
	t.Helper()
	b := &background{cmd: exec.Command("ssh", append([]string{"-F", c.config}, args...)...), done: make(chan error, 1)}
	b.cmd.Stdout, b.cmd.Stderr = &b.out, &b.err
	b.stdin, _ = b.cmd.StdinPipe()
	if err := b.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { b.done <- b.cmd.Wait() }()
	t.Cleanup(func() {
		b.cmd.Process.Kill()
		<-b.done
	})
	return b
}

// wait is the client's exit, which must come.
func (b *background) wait(t *testing.T) error {
	t.Helper()
	select {
	case err := <-b.done:
		b.done <- err
		return err
	case <-time.After(3 * time.Minute):
		t.Fatalf("ssh %v did not end; stderr %q", b.cmd.Args, b.err.String())
		return nil
	}
}

// ofSubject matches events of type ty whose actor is subject.
func ofSubject(ty events.Type, subject string) func(natstest.Stored) bool {
	return func(e natstest.Stored) bool { return e.Event.Type == ty && e.Event.Actor.Subject == subject }
}

// Limits per user, group and target, on the gateway's clock (advanced by
// the test, never waited for): a user over max_sessions is refused with a
// clear message and the refusal recorded; a session past max_duration, or
// idle past idle_timeout, is closed, the client told why on its stderr,
// and its session.ended says why.
func TestLimits(t *testing.T) {
	clock := sshproxy.NewManualClock(time.Now())
	f := start(t, options{clock: clock, policy: `version: 2
limits:
  - id: one-at-a-time
    max_sessions: 1
    exempt: {users: [bob]}
  - id: idle
    idle_timeout: 10m
    exempt: {users: [alice]}
  - id: shifts
    max_duration: 30m
    targets: [web]
    exempt: {outside_groups: [developers]}
  - id: elsewhere
    max_duration: 1m
    targets: [db]
allow:
  - id: files
    subsystems: [sftp]
`})
	alice := f.loginAs(t, "alice", "a")
	first := f.background(t, alice, f.user("web"), "sleep 600")
	f.waitFor(t, 1, ofSubject(events.CommandExecuted, "alice"))
	_, errOut, err := f.ssh(t, alice, "", f.user("web"), "true")
	if err == nil || !strings.Contains(errOut, "alice has 1 sessions open, the most allowed (limit rule one-at-a-time)") {
		t.Errorf("a second session: %v %q", err, errOut)
	}
	blocked := f.waitFor(t, 1, ofSubject(events.CommandBlocked, "alice"))[0]
	if blocked.Payload["kind"] != "session" || !strings.Contains(blocked.Payload["reason"].(string), "one-at-a-time") || blocked.Payload["rule"] != "one-at-a-time" {
		t.Errorf("command.blocked %v", blocked.Payload)
	}

	// alice, a developer, is bound by shifts (30m), and not by idle.
	clock.Advance(30 * time.Minute)
	if err := first.wait(t); err == nil {
		t.Error("the session outlived max_duration")
	}
	if !strings.Contains(first.err.String(), "auditledger: the gateway closed this connection: max_duration 30m0s (limit rule shifts)") {
		t.Errorf("the client was not told why: %q", first.err.String())
	}
	ended := f.waitFor(t, 1, ofSubject(events.SessionEnded, "alice"))[0]
	if ended.Payload["reason"] != "max_duration 30m0s (limit rule shifts)" {
		t.Errorf("session.ended %v", ended.Payload)
	}

	// bob is bound by idle, and by neither shifts nor one-at-a-time.
	bob := f.loginAs(t, "bob", "b")
	idle := f.background(t, bob, f.user("web"), "sleep 600")
	busy := f.background(t, bob, f.user("web"), "cat")
	f.waitFor(t, 2, ofSubject(events.CommandExecuted, "bob"))
	clock.Advance(9 * time.Minute)
	// Bytes on the busy connection keep it open past the idle one's
	// timeout: it is closed ten minutes after them.
	io.WriteString(busy.stdin, "tick\n")
	natstest.CheckFor(t, 3*time.Minute, 20*time.Millisecond, func() error {
		if busy.out.String() != "tick\n" {
			return io.ErrUnexpectedEOF
		}
		return nil
	})
	clock.Advance(time.Minute)
	if err := idle.wait(t); err == nil || !strings.Contains(idle.err.String(), "idle_timeout 10m0s (limit rule idle)") {
		t.Errorf("the idle session: %v %q", err, idle.err.String())
	}
	select {
	case err := <-busy.done:
		t.Fatalf("the busy session was closed: %v %q", err, busy.err.String())
	default:
	}
	clock.Advance(9 * time.Minute)
	if err := busy.wait(t); err == nil || !strings.Contains(busy.err.String(), "idle_timeout 10m0s (limit rule idle)") {
		t.Errorf("the busy session, once idle: %v %q", err, busy.err.String())
	}
	for _, e := range f.waitFor(t, 2, ofSubject(events.SessionEnded, "bob")) {
		if e.Payload["reason"] != "idle_timeout 10m0s (limit rule idle)" {
			t.Errorf("session.ended %v", e.Payload)
		}
	}
}

// A user certificate that expires mid-session ends the session: the
// client is told, and session.ended says so.
func TestCertificateExpiresMidSession(t *testing.T) {
	clock := sshproxy.NewManualClock(time.Now())
	f := start(t, options{clock: clock})
	alice := f.loginAs(t, "alice", "a") // valid as long as the token: one hour
	b := f.background(t, alice, f.user("web"), "sleep 600")
	f.waitFor(t, 1, ofType(events.CommandExecuted))
	clock.Advance(61 * time.Minute)
	if err := b.wait(t); err == nil || !strings.Contains(b.err.String(), "auditledger: the gateway closed this connection: certificate expired") {
		t.Errorf("ssh: %v %q", err, b.err.String())
	}
	ended := f.waitFor(t, 1, ofType(events.SessionEnded))[0]
	if ended.Payload["reason"] != "certificate expired" {
		t.Errorf("session.ended %v", ended.Payload)
	}
	// And it logs in no more.
	_, errOut, err := f.ssh(t, alice, "", f.user("web"), "true")
	if err == nil || !strings.Contains(errOut, "expired") {
		t.Errorf("a login with the expired certificate: %v %q", err, errOut)
	}
}

// A target that is down: the client is told which and why, and the
// session is recorded as refused.
func TestTargetDown(t *testing.T) {
	f := start(t, options{targetAddr: testnet.Addr(t)}) // nothing listens there
	alice := f.loginAs(t, "alice", "a")
	_, errOut, err := f.ssh(t, alice, "", f.user("web"), "true")
	if err == nil || !strings.Contains(errOut, "auditledger: target web unreachable") {
		t.Fatalf("ssh: %v %q", err, errOut)
	}
	ended := f.waitFor(t, 1, ofType(events.SessionEnded))[0]
	if ended.Payload["reason"] != "refused" || !strings.Contains(ended.Payload["detail"].(string), "unreachable") {
		t.Errorf("session.ended %v", ended.Payload)
	}
}

// dialRaw connects with Go's SSH client and c's certificate, trusting the
// gateway through its host CA: a client that does what the stock one
// never does.
func (f *fixture) dialRaw(t *testing.T, c *client) *ssh.Client {
	t.Helper()
	cl, err := f.dialRawErr(c)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cl.Close() })
	return cl
}

func (f *fixture) dialRawErr(c *client) (*ssh.Client, error) {
	keyPEM, _ := os.ReadFile(c.files.Key)
	certText, _ := os.ReadFile(c.files.Certificate)
	key, err := ssh.ParsePrivateKey(keyPEM)
	if err != nil {
		return nil, err
	}
	pub, _, _, _, err := ssh.ParseAuthorizedKey(certText)
	if err != nil {
		return nil, err
	}
	signer, err := ssh.NewCertSigner(pub.(*ssh.Certificate), key)
	if err != nil {
		return nil, err
	}
	hostCA := f.keys.HostCA.PublicKey()
	checker := &ssh.CertChecker{IsHostAuthority: func(auth ssh.PublicKey, _ string) bool {
		return string(auth.Marshal()) == string(hostCA.Marshal())
	}}
	return ssh.Dial("tcp", f.addr, &ssh.ClientConfig{User: f.login + "+web", Auth: []ssh.AuthMethod{ssh.PublicKeys(signer)},
		HostKeyCallback: checker.CheckHostKey, Timeout: time.Minute})
}

// A client that sends its input before the exec request: the input waits
// at the gateway until the command is judged, reaches an allowed command
// and is recorded as its stdin; a refused command never gets it.
func TestStdinBeforeExec(t *testing.T) {
	f := start(t, options{policy: `version: 2
deny:
  - id: no-tee
    commands: [tee]
    reason: no writing files
`})
	cl := f.dialRaw(t, f.loginAs(t, "alice", "a"))
	run := func(command, input string) (stdout, stderr string, status int) {
		t.Helper()
		ch, reqs, err := cl.OpenChannel("session", nil)
		if err != nil {
			t.Fatal(err)
		}
		defer ch.Close()
		statusc := make(chan int, 1)
		go func() {
			status := -1
			for r := range reqs {
				var st struct{ Status uint32 }
				if r.Type == "exit-status" && ssh.Unmarshal(r.Payload, &st) == nil {
					status = int(st.Status)
				}
				if r.WantReply {
					r.Reply(false, nil)
				}
			}
			statusc <- status
		}()
		if _, err := io.WriteString(ch, input); err != nil {
			t.Fatal(err)
		}
		if err := ch.CloseWrite(); err != nil {
			t.Fatal(err)
		}
		ok, err := ch.SendRequest("exec", true, ssh.Marshal(struct{ Command string }{command}))
		if err != nil || !ok {
			t.Fatalf("exec %q: %v %v", command, ok, err)
		}
		var errb lockedBuffer
		done := make(chan struct{})
		go func() { io.Copy(&errb, ch.Stderr()); close(done) }()
		out, _ := io.ReadAll(ch)
		<-done
		return string(out), errb.String(), <-statusc
	}
	if out, errOut, st := run("cat", "typed-before-exec\n"); out != "typed-before-exec\n" || st != 0 {
		t.Errorf("cat: %q %q %d", out, errOut, st)
	}
	if out, errOut, st := run("tee "+f.marker, "never-written\n"); st != 126 || out != "" || !strings.Contains(errOut, "refused: no writing files") {
		t.Errorf("tee: %q %q %d", out, errOut, st)
	}
	if _, err := os.Stat(f.marker); err == nil {
		t.Error("the refused command ran")
	}
	ended := f.waitFor(t, 2, ofType(events.SessionEnded))
	for _, e := range ended {
		want := "typed-before-exec\n"
		if e.Payload["exit_status"] == 126.0 {
			want = "" // refused: its input was never read
		}
		if in := stream(t, f.sessionEvents(t, e.Event.SessionID), "stdin"); in != want {
			t.Errorf("recorded stdin %q, want %q (session.ended %v)", in, want, e.Payload)
		}
	}
}

// A client that vanishes mid-command (SIGKILL, no goodbye): the session
// is recorded as ended by the client's going, and the program on the
// target ends: the gateway sends it SIGHUP (which sshd delivers unless
// the login is root) and closes its channel, which ends its input.
func TestClientVanishes(t *testing.T) {
	f := start(t, options{})
	alice := f.loginAs(t, "alice", "a")
	const program = "cat - /dev/null" // reads its input until it ends
	running := func() bool { return exec.Command("pgrep", "-f", "^"+program+"$").Run() == nil }
	b := f.background(t, alice, f.user("web"), program)
	f.waitFor(t, 1, ofType(events.CommandExecuted))
	natstest.CheckFor(t, 3*time.Minute, 20*time.Millisecond, func() error {
		if !running() {
			return errors.New("not started yet")
		}
		return nil
	})
	b.cmd.Process.Kill()
	b.wait(t)
	ended := f.waitFor(t, 1, ofType(events.SessionEnded))[0]
	if ended.Payload["reason"] != sshproxy.ReasonClientGone {
		t.Errorf("session.ended %v", ended.Payload)
	}
	natstest.CheckFor(t, 3*time.Minute, 20*time.Millisecond, func() error {
		if running() {
			return errors.New("still running on the target")
		}
		return nil
	})
}

// ssh -J through the gateway is refused unless an allow rule names local
// forwarding for the requester on that target; allowed, the jump reaches
// the target's sshd and is recorded as a session.
func TestJumpHost(t *testing.T) {
	f := start(t, options{policy: `version: 2
allow:
  - id: jump
    forwarding: [local]
    exempt: {users: [alice]}
`})
	_, port, _ := net.SplitHostPort(f.target.Addr)
	jump := func(c *client) (string, error) {
		t.Helper()
		_, errOut, err := f.ssh(t, c, "", "-J", f.user("web"), "-p", port, "-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=no",
			"-o", "UserKnownHostsFile=/dev/null", "-o", "IdentitiesOnly=yes", "-o", "IdentityFile=/dev/null", f.login+"@127.0.0.1", "true")
		return errOut, err
	}
	errOut, err := jump(f.loginAs(t, "alice", "a"))
	if err == nil || !strings.Contains(errOut, "port forwarding to 127.0.0.1:"+port+" is not allowed by the gateway's policy") {
		t.Errorf("ssh -J by alice: %v %q", err, errOut)
	}
	blocked := f.waitFor(t, 1, ofType(events.CommandBlocked))[0]
	if blocked.Payload["kind"] != "forwarding local 127.0.0.1:"+port {
		t.Errorf("command.blocked %v", blocked.Payload)
	}
	// bob may jump: his connection reaches the target's sshd, which asks
	// for a key he does not have.
	errOut, err = jump(f.loginAs(t, "bob", "b"))
	if err == nil || !strings.Contains(errOut, "Permission denied (publickey") {
		t.Errorf("ssh -J by bob: %v %q", err, errOut)
	}
	started := f.waitFor(t, 1, ofSubject(events.SessionStarted, "bob"))[0]
	if started.Payload["request"] != "direct-tcpip" || started.Payload["to"] != "127.0.0.1:"+port {
		t.Errorf("session.started %v", started.Payload)
	}
}

// Rotating both CAs, through the stock client and a real sshd: a user
// certificate from the previous user CA still logs in during the
// overlap, new ones come from the current CA only; the gateway logs in to
// the target with the new target CA, which the target trusts beside the
// old one (TrustedUserCAKeys holds both) until the old one is removed.
func TestCARotation(t *testing.T) {
	dir := t.TempDir()
	keys, err := sshproxy.OpenKeys(dir, []string{"127.0.0.1"})
	if err != nil {
		t.Fatal(err)
	}
	// A certificate from the user CA about to be retired.
	certDir := t.TempDir()
	key := certDir + "/id"
	if out, err := exec.Command("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", key).CombinedOutput(); err != nil {
		t.Fatalf("%v %s", err, out)
	}
	if out, err := exec.Command("ssh-keygen", "-q", "-s", dir+"/"+sshproxy.UserCAFile, "-I", "alice", "-n", "alice", "-V", "-5m:+1h", key+".pub").CombinedOutput(); err != nil {
		t.Fatalf("%v %s", err, out)
	}
	oldUser, oldTarget := keys.UserCA.PublicKey(), keys.TargetCA.PublicKey()
	now := time.Now()
	if _, err := sshproxy.RotateUserCA(dir, now); err != nil {
		t.Fatal(err)
	}
	next, err := sshproxy.StageTargetCA(dir)
	if err != nil {
		t.Fatal(err)
	}
	nextPub, _ := os.ReadFile(next)
	// Every target trusts both target CAs before the new one is used.
	trusted := append(ssh.MarshalAuthorizedKey(oldTarget), nextPub...)
	if _, err := sshproxy.ActivateTargetCA(dir, now); err != nil {
		t.Fatal(err)
	}
	f := start(t, options{keysDir: dir, targetTrusts: trusted})
	if string(f.keys.UserCA.PublicKey().Marshal()) == string(oldUser.Marshal()) ||
		string(ssh.MarshalAuthorizedKey(f.keys.TargetCA.PublicKey())) != strings.Fields(string(nextPub))[0]+" "+strings.Fields(string(nextPub))[1]+"\n" {
		t.Fatal("the CAs did not rotate")
	}
	c := f.loginAs(t, "alice", "a")
	if out, errOut, err := f.sshKey(t, c, key, key+"-cert.pub", "echo old-ca"); err != nil || out != "old-ca\n" {
		t.Errorf("a certificate from the previous user CA, during the overlap: %q %v %s", out, err, errOut)
	}
	certText, _ := os.ReadFile(c.files.Certificate)
	pub, _, _, _, err := ssh.ParseAuthorizedKey(certText)
	if err != nil {
		t.Fatal(err)
	}
	if string(pub.(*ssh.Certificate).SignatureKey.Marshal()) != string(f.keys.UserCA.PublicKey().Marshal()) {
		t.Error("a certificate was issued by another CA than the current one")
	}
	if out, errOut, err := f.ssh(t, c, "", f.user("web"), "echo new-ca"); err != nil || out != "new-ca\n" {
		t.Errorf("a certificate from the current user CA: %q %v %s", out, err, errOut)
	}
	if fp := ssh.FingerprintSHA256(f.keys.TargetCA.PublicKey()); !strings.Contains(f.target.Log(), "CA ED25519 "+fp) {
		t.Errorf("the target's log names no certificate from the new target CA (%s):\n%s", fp, f.target.Log())
	}
}

// 200 sessions open at once, each its own connection: none hangs, each
// gets its own input back, and each is recorded whole (its command, its
// input and output, its end). Connections are opened a few at a time,
// as sshd takes only so many unauthenticated ones at once (MaxStartups);
// the sessions are all open together before any gets its input.
func TestTwoHundredConcurrentSessions(t *testing.T) {
	const n = 200
	f := start(t, options{})
	alice := f.loginAs(t, "alice", "a")
	type sess struct {
		cl  *ssh.Client
		s   *ssh.Session
		in  io.WriteCloser
		out lockedBuffer
	}
	all := make([]*sess, n)
	opening := make(chan struct{}, 8)
	errs := make(chan error, n)
	for i := range all {
		opening <- struct{}{}
		go func() {
			defer func() { <-opening }()
			cl, err := f.dialRawErr(alice)
			if err != nil {
				errs <- err
				return
			}
			s, err := cl.NewSession()
			if err != nil {
				cl.Close()
				errs <- err
				return
			}
			x := &sess{cl: cl, s: s}
			s.Stdout = &x.out
			x.in, _ = s.StdinPipe()
			if err := s.Start("cat"); err != nil {
				cl.Close()
				errs <- err
				return
			}
			all[i] = x
			errs <- nil
		}()
	}
	for range n {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	t.Cleanup(func() {
		for _, x := range all {
			x.cl.Close()
		}
	})
	var executed int
	natstest.CheckFor(t, 5*time.Minute, 200*time.Millisecond, func() error {
		executed = len(f.eventsOf(t, events.CommandExecuted))
		if executed < n {
			return fmt.Errorf("%d of %d sessions started", executed, n)
		}
		return nil
	})
	for i, x := range all {
		fmt.Fprintf(x.in, "session-%d\n", i)
		x.in.Close()
	}
	for i, x := range all {
		done := make(chan error, 1)
		go func() { done <- x.s.Wait() }()
		select {
		case err := <-done:
			if err != nil || x.out.String() != fmt.Sprintf("session-%d\n", i) {
				t.Errorf("session %d: %v %q", i, err, x.out.String())
			}
		case <-time.After(5 * time.Minute):
			t.Fatalf("session %d hangs", i)
		}
	}
	var ended []natstest.Stored
	natstest.CheckFor(t, 5*time.Minute, 200*time.Millisecond, func() error {
		ended = f.eventsOf(t, events.SessionEnded)
		if len(ended) < n {
			return fmt.Errorf("%d of %d sessions recorded as ended", len(ended), n)
		}
		return nil
	})
	stored := f.events(t)
	// Chunks of one stream are in order on the bus (one session's events
	// are published in sequence).
	streams := map[string]map[string]string{} // session, stream: bytes
	for _, e := range stored {
		if e.Event.Type == events.SessionOutput {
			if streams[e.Event.SessionID] == nil {
				streams[e.Event.SessionID] = map[string]string{}
			}
			streams[e.Event.SessionID][e.Payload["stream"].(string)] += decode(t, e.Payload["data"].(string))
		}
	}
	seen := map[string]bool{}
	for _, e := range ended {
		st := streams[e.Event.SessionID]
		in, out := st["stdin"], st["stdout"]
		if e.Payload["exit_status"] != 0.0 || out != in || e.Payload["bytes_out"] != float64(len(out)+len(st["stderr"])) ||
			!strings.HasPrefix(in, "session-") || seen[in] {
			t.Errorf("session %s: input %q, output %q, end %v", e.Event.SessionID, in, out, e.Payload)
		}
		seen[in] = true
	}
}

// eventsOf are the stored events of type ty.
func (f *fixture) eventsOf(t *testing.T, ty events.Type) []natstest.Stored {
	var out []natstest.Stored
	for _, e := range f.events(t) {
		if e.Event.Type == ty {
			out = append(out, e)
		}
	}
	return out
}

func decode(t *testing.T, s string) string {
	b, err := base64.StdEncoding.DecodeString(s)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
