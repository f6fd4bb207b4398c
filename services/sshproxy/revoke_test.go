package sshproxy_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/auditledger/auditledger/events"
	"github.com/auditledger/auditledger/services/sshproxy"
	"github.com/auditledger/auditledger/test/natstest"
)

// A user certificate revoked while its sessions are open ends them: the
// KRL, updated in place by ssh-keygen -k -u as an operator would, is read
// again, each of the user's open sessions (an exec and an interactive
// shell) is closed, the client told why on its stderr, and session.ended
// names the revocation; other users' sessions go on. Revoking the user
// CA itself then ends every session it signed.
func TestRevokedMidSession(t *testing.T) {
	f := start(t, options{})
	keygen := func(args ...string) {
		t.Helper()
		if out, err := exec.Command("ssh-keygen", args...).CombinedOutput(); err != nil {
			t.Fatalf("ssh-keygen %v: %v\n%s", args, err, out)
		}
	}
	krlFile := filepath.Join(f.keys.Dir, sshproxy.KRLFile)
	spec := filepath.Join(t.TempDir(), "spec")
	revoke := func(what string, update bool) {
		t.Helper()
		os.WriteFile(spec, []byte(what+"\n"), 0o644)
		args := []string{"-k", "-f", krlFile, "-s", filepath.Join(f.keys.Dir, sshproxy.UserCAFile+".pub")}
		if update {
			args = append(args, "-u")
		}
		keygen(append(args, spec)...)
	}
	revoke("serial: 1", false) // a KRL that revokes none of these

	alice := f.loginAs(t, "alice", "a")
	bob := f.loginAs(t, "bob", "b")
	exec1 := f.background(t, alice, f.user("web"), "sleep 600")
	shell := f.background(t, alice, "-tt", f.user("web"))
	other := f.background(t, bob, f.user("web"), "sleep 600")
	f.waitFor(t, 2, ofSubject(events.SessionStarted, "alice"))
	f.waitFor(t, 1, ofSubject(events.CommandExecuted, "bob"))
	// The shell is up: what is typed reaches it and comes back.
	shell.stdin.Write([]byte("echo up-$((40+2))\n"))
	natstest.CheckFor(t, 3*time.Minute, 20*time.Millisecond, func() error {
		if !strings.Contains(shell.out.String(), "up-42") {
			return os.ErrNotExist
		}
		return nil
	})

	serial := certSerial(t, alice)
	revoke("serial: "+serial, true)
	want := "user certificate revoked: certificate serial " + serial + " is revoked (KRL version "
	for name, b := range map[string]*background{"exec": exec1, "shell": shell} {
		if err := b.wait(t); err == nil || !strings.Contains(b.err.String()+b.out.String(), "auditledger: the gateway closed this connection: "+want) {
			t.Errorf("alice's %s session: %v, stderr %q", name, err, b.err.String())
		}
	}
	for _, e := range f.waitFor(t, 2, ofSubject(events.SessionEnded, "alice")) {
		if r, _ := e.Payload["reason"].(string); !strings.HasPrefix(r, want) {
			t.Errorf("session.ended %v", e.Payload)
		}
	}
	select {
	case err := <-other.done:
		t.Fatalf("bob's session ended with alice's revocation: %v %q", err, other.err.String())
	default:
	}
	// And alice logs in no more.
	if _, errOut, err := f.ssh(t, alice, "", f.user("web"), "true"); err == nil || !strings.Contains(errOut, "certificate serial "+serial+" is revoked") {
		t.Errorf("a login with the revoked certificate: %v %q", err, errOut)
	}

	// The user CA itself revoked: bob's session ends too.
	ca, err := os.ReadFile(filepath.Join(f.keys.Dir, sshproxy.UserCAFile+".pub"))
	if err != nil {
		t.Fatal(err)
	}
	revoke(strings.TrimSpace(string(ca)), true)
	if err := other.wait(t); err == nil || !strings.Contains(other.err.String(), "user certificate revoked: the certificate authority that signed it is revoked") {
		t.Errorf("bob's session, its CA revoked: %v %q", err, other.err.String())
	}
	ended := f.waitFor(t, 1, ofSubject(events.SessionEnded, "bob"))[0]
	if r, _ := ended.Payload["reason"].(string); !strings.HasPrefix(r, "user certificate revoked: the certificate authority that signed it is revoked") {
		t.Errorf("session.ended %v", ended.Payload)
	}
}

// A session whose user certificate a retired user CA signed ends when
// the rotation's overlap does (on the gateway's clock), even though the
// certificate itself is valid longer.
func TestRetiredUserCAOverlapEnds(t *testing.T) {
	dir := t.TempDir()
	if _, err := sshproxy.OpenKeys(dir, []string{"127.0.0.1"}); err != nil {
		t.Fatal(err)
	}
	certDir := t.TempDir()
	key := certDir + "/id"
	for _, args := range [][]string{{"-q", "-t", "ed25519", "-N", "", "-f", key},
		{"-q", "-s", dir + "/" + sshproxy.UserCAFile, "-I", "alice", "-n", "alice", "-V", "-5m:+2d", key + ".pub"}} {
		if out, err := exec.Command("ssh-keygen", args...).CombinedOutput(); err != nil {
			t.Fatalf("%v %s", err, out)
		}
	}
	clock := sshproxy.NewManualClock(time.Now())
	if _, err := sshproxy.RotateUserCA(dir, clock.Now()); err != nil {
		t.Fatal(err)
	}
	f := start(t, options{keysDir: dir, clock: clock})
	c := f.loginAs(t, "alice", "a") // for its known_hosts
	b := f.backgroundKey(t, c, key, key+"-cert.pub", "sleep 600")
	f.waitFor(t, 1, ofType(events.CommandExecuted))
	clock.Advance(sshproxy.MaxUserCertValidity - time.Minute)
	select {
	case err := <-b.done:
		t.Fatalf("the session ended before the overlap: %v %q", err, b.err.String())
	default:
	}
	clock.Advance(time.Minute)
	if err := b.wait(t); err == nil || !strings.Contains(b.err.String(), "auditledger: the gateway closed this connection: "+sshproxy.ReasonCARetired) {
		t.Errorf("ssh: %v %q", err, b.err.String())
	}
	ended := f.waitFor(t, 1, ofType(events.SessionEnded))[0]
	if ended.Payload["reason"] != sshproxy.ReasonCARetired {
		t.Errorf("session.ended %v", ended.Payload)
	}
}

// backgroundKey runs the stock ssh client with key and cert (not c's)
// until the test ends, trusting the gateway through c's known_hosts.
func (f *fixture) backgroundKey(t *testing.T, c *client, key, cert string, args ...string) *background {
	t.Helper()
	conf := filepath.Join(t.TempDir(), "ssh_config")
	os.WriteFile(conf, []byte(strings.NewReplacer(c.files.Key+"\n", key+"\n", c.files.Certificate+"\n", cert+"\n").Replace(
		mustRead(t, c.config))), 0o644)
	return f.background(t, &client{config: conf, files: c.files}, append([]string{f.user("web")}, args...)...)
}

// certSerial is the serial number of c's certificate, read from the file
// (the recorded one may be masked: a long number can look like a card
// number to the detectors).
func certSerial(t *testing.T, c *client) string {
	t.Helper()
	pub, _, _, _, err := ssh.ParseAuthorizedKey([]byte(mustRead(t, c.files.Certificate)))
	if err != nil {
		t.Fatal(err)
	}
	return strconv.FormatUint(pub.(*ssh.Certificate).Serial, 10)
}

func mustRead(t *testing.T, file string) string {
	t.Helper()
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// Rotating the host CA, through the stock client: the gateway presents a
// host certificate from the new CA; the known_hosts the login hands out
// lists both @cert-authority lines during the overlap, and only the new
// one after it. A known_hosts holding both lines, or only the new, trusts
// the gateway; one holding only the retired line refuses it.
func TestHostCARotation(t *testing.T) {
	dir := t.TempDir()
	k0, err := sshproxy.OpenKeys(dir, []string{"127.0.0.1"})
	if err != nil {
		t.Fatal(err)
	}
	clock := sshproxy.NewManualClock(time.Now())
	if _, err := sshproxy.RotateHostCA(dir, clock.Now()); err != nil {
		t.Fatal(err)
	}
	f := start(t, options{keysDir: dir, clock: clock})
	oldCA := strings.TrimSpace(string(ssh.MarshalAuthorizedKey(k0.HostCA.PublicKey())))
	newCA := strings.TrimSpace(string(ssh.MarshalAuthorizedKey(f.keys.HostCA.PublicKey())))
	if oldCA == newCA || string(f.keys.HostCert.SignatureKey.Marshal()) != string(f.keys.HostCA.PublicKey().Marshal()) {
		t.Fatal("the host CA did not rotate, or the host certificate is not from the new one")
	}
	c := f.loginAs(t, "alice", "a")
	lines := strings.Split(strings.TrimSpace(mustRead(t, c.files.KnownHosts)), "\n")
	if len(lines) != 2 || !strings.HasPrefix(lines[0], "@cert-authority ") || !strings.HasSuffix(lines[0], " "+newCA) ||
		!strings.HasPrefix(lines[1], "@cert-authority ") || !strings.HasSuffix(lines[1], " "+oldCA) {
		t.Fatalf("known_hosts during the overlap:\n%s", strings.Join(lines, "\n"))
	}
	connect := func(known string) (string, string, error) {
		t.Helper()
		os.WriteFile(c.files.KnownHosts, []byte(known+"\n"), 0o644)
		return f.ssh(t, c, "", f.user("web"), "echo trusted")
	}
	if out, errOut, err := connect(lines[0] + "\n" + lines[1]); err != nil || out != "trusted\n" {
		t.Errorf("known_hosts with both lines: %q %v %s", out, err, errOut)
	}
	if out, errOut, err := connect(lines[0]); err != nil || out != "trusted\n" {
		t.Errorf("known_hosts with the new line only: %q %v %s", out, err, errOut)
	}
	if out, errOut, err := connect(lines[1]); err == nil || out != "" || !strings.Contains(errOut, "Host key verification failed") {
		t.Errorf("known_hosts with the retired line only: %q %v %s", out, err, errOut)
	}
	// After the overlap, the login hands out the new line only.
	clock.Advance(sshproxy.MaxUserCertValidity)
	c = f.loginAs(t, "alice", "a")
	if got := strings.TrimSpace(mustRead(t, c.files.KnownHosts)); got != lines[0] {
		t.Errorf("known_hosts after the overlap:\n%s", got)
	}
}
