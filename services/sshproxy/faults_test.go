package sshproxy_test

import (
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/auditledger/auditledger/events"
	"github.com/auditledger/auditledger/services/gateway"
	"github.com/auditledger/auditledger/services/gateway/gatewaytest"
	"github.com/auditledger/auditledger/services/sshproxy"
	"github.com/auditledger/auditledger/test/natstest"
)

// An interactive session through a pty: the recorded stdout chunks are
// exactly what the client's terminal received, byte for byte, and the
// session names its terminal and size.
func TestInteractiveSessionRecorded(t *testing.T) {
	f := start(t, options{})
	c := f.loginAs(t, "alice", "a")
	out, errOut, err := f.ssh(t, c, "echo hi-$((6*7))\nexit 3\n", "-tt", "-o", "SetEnv=LANG=C.UTF-8", f.user("web"))
	if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 3 {
		t.Fatalf("ssh -tt: %v, want exit status 3\n%s", err, errOut)
	}
	if !strings.Contains(out, "hi-42") {
		t.Fatalf("the terminal showed %q", out)
	}
	ended := f.waitFor(t, 1, ofType(events.SessionEnded))[0]
	evs := f.sessionEvents(t, ended.Event.SessionID)
	if got := stream(t, evs, "stdout"); got != out {
		t.Errorf("recorded stdout differs from what the terminal received:\n%q\n%q", got, out)
	}
	if in := stream(t, evs, "stdin"); in != "echo hi-$((6*7))\nexit 3\n" {
		t.Errorf("recorded stdin %q", in)
	}
	st := evs[0].Payload
	pty, _ := st["pty"].(map[string]any)
	if st["request"] != "shell" || pty["term"] == nil || st["env"].(map[string]any)["LANG"] != "C.UTF-8" {
		t.Errorf("session.started %v", st)
	}
	if ended.Payload["exit_status"] != 3.0 {
		t.Errorf("session.ended %v", ended.Payload)
	}

	// Exported as asciicast v2, Debian's asciinema plays it back: the
	// output, byte for byte.
	var all []*events.Event
	for _, e := range f.events(t) {
		all = append(all, e.Event)
	}
	cast, err := sshproxy.CastOf(all, ended.Event.SessionID)
	if err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(t.TempDir(), "session.cast")
	fh, _ := os.Create(file)
	cast.WriteTo(fh)
	fh.Close()
	// asciinema wants a terminal: script gives it one, raw, so the bytes
	// pass unchanged.
	played, errOut, err := f.run(t, "", "script", "-q", "-e", "-c", "stty raw -echo; asciinema cat "+file, "/dev/null")
	if err != nil {
		t.Fatalf("asciinema cat: %v %s", err, errOut)
	}
	if played != out {
		t.Errorf("asciinema played\n%q\nthe terminal received\n%q", played, out)
	}
}

// Each refusal before a session gets a clear message on the client's
// side and an event: an unknown target, a plain key, a certificate from
// another CA, an expired certificate, one revoked by an OpenSSH KRL (by
// serial, by key id), and any while the KRL cannot be read.
func TestRefusedLogins(t *testing.T) {
	f := start(t, options{})
	c := f.loginAs(t, "alice", "a")
	check := func(why string, errOut string, err error) {
		t.Helper()
		if err == nil || !strings.Contains(errOut, why) {
			t.Errorf("%s: err %v, stderr %q", why, err, errOut)
		}
	}
	refused := func(why string, args ...string) {
		t.Helper()
		_, errOut, err := f.ssh(t, c, "", append(args, "true")...)
		check(why, errOut, err)
	}
	withKey := func(why, key, cert string) {
		t.Helper()
		_, errOut, err := f.sshKey(t, c, key, cert, "true")
		check(why, errOut, err)
	}
	refused(`unknown target "nope"`, f.login+"+nope@gw")
	refused("name the login and the target", f.login+"@gw")
	withKey("plain keys are refused", c.files.Key, "none")

	dir := t.TempDir()
	keygen := func(args ...string) {
		t.Helper()
		if out, err := exec.Command("ssh-keygen", args...).CombinedOutput(); err != nil {
			t.Fatalf("ssh-keygen %v: %v\n%s", args, err, out)
		}
	}
	// A certificate from a CA the gateway does not know.
	keygen("-q", "-t", "ed25519", "-N", "", "-f", filepath.Join(dir, "other_ca"))
	key := filepath.Join(dir, "id")
	keygen("-q", "-t", "ed25519", "-N", "", "-f", key)
	keygen("-q", "-s", filepath.Join(dir, "other_ca"), "-I", "alice", "-n", "alice", "-V", "-5m:+1h", key+".pub")
	withKey("does not trust", key, key+"-cert.pub")
	// Signed by the gateway's own user CA, but expired.
	keygen("-q", "-s", filepath.Join(f.keys.Dir, sshproxy.UserCAFile), "-I", "alice", "-n", "alice", "-V", "20200101:20200102", key+".pub")
	withKey("expired", key, key+"-cert.pub")
	// Revoked by its serial, in a KRL ssh-keygen makes; the gateway reads
	// the file again when it changes.
	serial := certSerial(t, c) // not the recorded one, which the detectors may mask as a card number
	krl := func(spec string) {
		t.Helper()
		os.WriteFile(filepath.Join(dir, "spec"), []byte(spec), 0o644)
		keygen("-k", "-f", filepath.Join(dir, "krl"), "-s", filepath.Join(f.keys.Dir, sshproxy.UserCAFile+".pub"), filepath.Join(dir, "spec"))
		// Replaced whole, as a deployment would (rename), so no login
		// reads half a file.
		if err := os.Rename(filepath.Join(dir, "krl"), filepath.Join(f.keys.Dir, sshproxy.KRLFile)); err != nil {
			t.Fatal(err)
		}
	}
	krl("# a laptop was lost\nserial: " + serial + "\n")
	refused("certificate serial "+serial+" is revoked (KRL version", f.user("web"))
	krl("serial: 1\n")
	if _, errOut, err := f.ssh(t, c, "", f.user("web"), "true"); err != nil {
		t.Errorf("after the serial left the KRL: %v %s", err, errOut)
	}
	krl("id: alice\n")
	refused(`certificates of key id "alice" are revoked`, f.user("web"))
	os.WriteFile(filepath.Join(f.keys.Dir, sshproxy.KRLFile), []byte("serial "+serial+"\n"), 0o644) // not a KRL
	refused("the gateway cannot read its revocation list (KRL)", f.user("web"))
	failed := f.waitFor(t, 8, ofType(events.AuthnFailed))
	for _, e := range failed {
		if e.Payload["reason"] == "" || e.Payload["client_addr"] == nil {
			t.Errorf("authn.failed %v", e.Payload)
		}
	}
}

// A target whose host key is not the pinned one is refused, and the
// refusal recorded; the client is told why.
func TestChangedTargetHostKeyRefused(t *testing.T) {
	f := start(t, options{hostKeys: []string{"ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl"}})
	c := f.loginAs(t, "alice", "a")
	_, errOut, err := f.ssh(t, c, "", f.user("web"), "touch "+f.marker)
	if err == nil || !strings.Contains(errOut, "host key is not the one pinned") {
		t.Fatalf("err %v, stderr %q", err, errOut)
	}
	if _, err := os.Stat(f.marker); err == nil {
		t.Fatal("the command ran")
	}
	ended := f.waitFor(t, 1, ofType(events.SessionEnded))[0]
	if ended.Payload["reason"] != "refused" || !strings.Contains(ended.Payload["detail"].(string), "pinned") {
		t.Errorf("session.ended %v", ended.Payload)
	}
}

// Port forwarding (ssh -W, which ssh -J uses; ssh -R), agent and X11
// forwarding are refused unless an allow rule names them, and each
// attempt is recorded.
func TestForwardingRefused(t *testing.T) {
	f := start(t, options{})
	c := f.loginAs(t, "alice", "a")
	_, errOut, err := f.ssh(t, c, "", "-W", f.target.Addr, f.user("web"))
	if err == nil || !strings.Contains(errOut, "not allowed") {
		t.Errorf("ssh -W: %v %q", err, errOut)
	}
	_, errOut, err = f.ssh(t, c, "", "-o", "ExitOnForwardFailure=yes", "-R", "0:127.0.0.1:1", f.user("web"), "true")
	if err == nil {
		t.Errorf("ssh -R: %v %q", err, errOut)
	}
	// An agent, so that ssh -A asks to forward it.
	sock := filepath.Join(t.TempDir(), "agent.sock")
	agent := exec.Command("ssh-agent", "-D", "-a", sock)
	if err := agent.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { agent.Process.Kill(); agent.Wait() })
	natstest.CheckFor(t, 30*time.Second, 20*time.Millisecond, func() error { _, err := os.Stat(sock); return err })
	out, errOut, err := f.runEnv(t, []string{"SSH_AUTH_SOCK=" + sock}, "", "ssh", "-F", c.config, "-A", f.user("web"), "echo ${SSH_AUTH_SOCK:-none}")
	if err != nil || out != "none\n" {
		t.Errorf("ssh -A: %q %v %s", out, err, errOut)
	}
	blocked := f.waitFor(t, 3, ofType(events.CommandBlocked))
	kinds := map[string]bool{}
	for _, b := range blocked {
		kinds[strings.Fields(b.Payload["kind"].(string))[1]] = true
	}
	if !kinds["local"] || !kinds["remote"] || !kinds["agent"] {
		t.Errorf("recorded refusals %v", kinds)
	}
}

// What is typed after a password prompt is recorded as its keyed digest
// only: the secret reaches the target, never the bus.
func TestSecretAfterPasswordPromptMasked(t *testing.T) {
	f := start(t, options{})
	c := f.loginAs(t, "alice", "a")
	cmd := exec.Command("ssh", "-F", c.config, "-tt", f.user("web"))
	stdin, _ := cmd.StdinPipe()
	var seen lockedBuffer
	cmd.Stdout, cmd.Stderr = &seen, &seen
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { cmd.Process.Kill(); cmd.Wait() }()
	io.WriteString(stdin, "read -s -p '[sudo] password for alice: ' x; echo; echo got-${#x}\n")
	natstest.CheckFor(t, 3*time.Minute, 20*time.Millisecond, func() error {
		if !strings.HasSuffix(strings.TrimRight(seen.String(), " "), "password for alice:") {
			return fmt.Errorf("no prompt yet: %q", seen.String())
		}
		return nil
	})
	const secret = "hunter2-correct-horse"
	io.WriteString(stdin, secret+"\r")
	natstest.CheckFor(t, 3*time.Minute, 20*time.Millisecond, func() error {
		if !strings.Contains(seen.String(), fmt.Sprintf("got-%d", len(secret))) {
			return fmt.Errorf("the target did not get the secret: %q", seen.String())
		}
		return nil
	})
	io.WriteString(stdin, "exit\n")
	cmd.Wait()
	ended := f.waitFor(t, 1, ofType(events.SessionEnded))[0]
	in := stream(t, f.sessionEvents(t, ended.Event.SessionID), "stdin")
	key, err := f.pii.TenantKey(t.Context(), "acme")
	if err != nil {
		t.Fatal(err)
	}
	want := "[MASKED:" + gateway.KeyedDigest(key, sshproxy.SecretLabel, []byte(secret)) + "]\r"
	if !strings.Contains(in, want) || ended.Payload["masked_inputs"] != 1.0 {
		t.Errorf("recorded stdin %q, want %q in it; session.ended %v", in, want, ended.Payload)
	}
	gatewaytest.CheckAbsent(t, gatewaytest.BusBytes(t, f.js), secret)
}

type lockedBuffer struct {
	mu sync.Mutex
	b  []byte
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.b = append(l.b, p...)
	return len(p), nil
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return string(l.b)
}
