package test

import (
	"encoding/base64"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/auditledger/auditledger/events"
	"github.com/auditledger/auditledger/internal/oidcdev"
	"github.com/auditledger/auditledger/services/sshproxy"
	"github.com/auditledger/auditledger/test/natstest"
	"github.com/auditledger/auditledger/test/sshdtest"
	"github.com/auditledger/auditledger/test/testnet"
)

// lockedBytes is a byte buffer written by a process and read by a test.
type lockedBytes struct {
	mu sync.Mutex
	b  []byte
}

func (l *lockedBytes) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.b = append(l.b, p...)
	return len(p), nil
}

func (l *lockedBytes) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return string(l.b)
}

// TestSSHGatewayServeKill runs the ssh-proxy role as production would
// (serve, its own process), gets a certificate with `auditledger login
// ssh`, runs a command and an interactive session with the stock ssh
// client against a real sshd, then SIGKILLs the gateway mid-session: the
// sealed chunks are a prefix of what the client's terminal received, the
// session is recorded as lost when the gateway starts again, and verify
// passes.
func TestSSHGatewayServeKill(t *testing.T) {
	l := startLedger(t)
	idp, err := oidcdev.Listen("127.0.0.1:0", oidcdev.Config{Audience: "auditledger-ssh", Users: []oidcdev.User{
		{Name: "alice", Secret: "alice-secret", Groups: []string{"developers"}},
	}})
	if err != nil {
		t.Fatal(err)
	}
	defer idp.Close()
	keysDir, state, dir := t.TempDir(), t.TempDir(), t.TempDir()
	keys, err := sshproxy.OpenKeys(keysDir, []string{"127.0.0.1"}) // the role opens the same files
	if err != nil {
		t.Fatal(err)
	}
	target := sshdtest.Start(t, ssh.MarshalAuthorizedKey(keys.TargetCA.PublicKey()))
	login := sshdtest.Login(t)
	sshAddr, loginAddr := testnet.Addr(t), testnet.Addr(t)
	config := filepath.Join(dir, "auditledger.yaml")
	os.WriteFile(config, []byte(fmt.Sprintf(`roles: [ssh-proxy]
tenant: acme
log: {format: text, level: info}
http: {listen: "127.0.0.1:0"}
nats: {url: %q, nkeys: %q}
oidc: {issuer: %q, audience: auditledger-ssh}
ssh_proxy:
  listen: %q
  login_listen: %q
  host_names: [127.0.0.1]
  keys_dir: %q
  state_dir: %q
  targets:
    - {name: web, addr: %q, host_keys: [%q]}
`, l.srv.ClientURL(), l.srv.KeysDir, idp.Issuer, sshAddr, loginAddr, keysDir, state, target.Addr, target.HostKey)), 0o644)
	gw := startServe(t, config)
	waitListening(t, sshAddr, loginAddr)

	home := t.TempDir()
	r := mustRun(t, nil, []string{"AUDITLEDGER_CLIENT_SECRET=alice-secret"}, "login", "ssh", "--gateway", "http://"+loginAddr,
		"--issuer", idp.Issuer, "--client-id", "alice", "--dir", home, "--alias", "gw")
	if !strings.Contains(r.stdout, "Host gw") || !strings.Contains(r.stdout, "@cert-authority [127.0.0.1]:") {
		t.Fatalf("login ssh printed:\n%s", r.stdout)
	}
	sshConfig := filepath.Join(home, "ssh_config")
	out, err := exec.Command("ssh", "-F", sshConfig, "-o", "BatchMode=yes", login+"+web@gw", "echo through the gateway").Output()
	if err != nil || string(out) != "through the gateway\n" {
		t.Fatalf("ssh: %v\n%s", err, out)
	}

	// An interactive session, killed mid-way.
	cmd := exec.Command("ssh", "-F", sshConfig, "-o", "BatchMode=yes", "-tt", login+"+web@gw")
	stdin, _ := cmd.StdinPipe()
	var seen lockedBytes
	cmd.Stdout, cmd.Stderr = &seen, io.Discard
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { cmd.Process.Kill(); cmd.Wait() }()
	fmt.Fprintf(stdin, "echo marker-$((40+2))\n")
	natstest.CheckFor(t, 3*time.Minute, 20*time.Millisecond, func() error {
		if !strings.Contains(seen.String(), "marker-42") {
			return fmt.Errorf("the terminal shows %q", seen.String())
		}
		return nil
	})
	// More output pushes the marker out of the tail a stream holds back
	// (the last 4 KiB of text, judged with what follows it).
	fmt.Fprintf(stdin, "head -c 6000 /dev/zero | tr '\\0' .; echo filler-done\n")
	natstest.CheckFor(t, 3*time.Minute, 20*time.Millisecond, func() error {
		if !strings.Contains(seen.String(), "filler-done\r\n") {
			return fmt.Errorf("the terminal shows %q", seen.String())
		}
		return nil
	})
	// The chunk holding the output is sealed before the kill.
	var sid string
	natstest.CheckFor(t, 3*time.Minute, 50*time.Millisecond, func() error {
		for _, e := range natstest.Events(t, l.js, "") {
			if e.Event.Type == events.SessionOutput && e.Payload["stream"] == "stdout" {
				raw, _ := base64.StdEncoding.DecodeString(e.Payload["data"].(string))
				if strings.Contains(string(raw), "marker-42") {
					sid = e.Event.SessionID
					return nil
				}
			}
		}
		return fmt.Errorf("no recorded chunk holds the output yet")
	})
	gw.Process.Signal(syscall.SIGKILL)
	gw.Wait()
	cmd.Wait()
	saw := seen.String()

	// The gateway starts again on its state directory: the session it
	// lost is recorded as ended, lost.
	startServe(t, config)
	waitListening(t, sshAddr, loginAddr)
	var evs []natstest.Stored
	natstest.CheckFor(t, 3*time.Minute, 100*time.Millisecond, func() error {
		evs = l.verifiedEvents(t)
		for _, e := range evs {
			if e.Event.SessionID == sid && e.Event.Type == events.SessionEnded && e.Payload["reason"] == "lost" {
				return nil
			}
		}
		return fmt.Errorf("no lost end sealed for session %s", sid)
	})
	var chunks []natstest.Stored
	for _, e := range evs {
		if e.Event.SessionID == sid && e.Event.Type == events.SessionOutput && e.Payload["stream"] == "stdout" {
			chunks = append(chunks, e)
		}
	}
	slices.SortFunc(chunks, func(a, b natstest.Stored) int {
		return int(a.Payload["offset"].(float64) - b.Payload["offset"].(float64))
	})
	var sealed strings.Builder
	for _, c := range chunks {
		if int(c.Payload["offset"].(float64)) != sealed.Len() {
			t.Fatalf("a gap in the sealed stream at %d", sealed.Len())
		}
		raw, _ := base64.StdEncoding.DecodeString(c.Payload["data"].(string))
		sealed.Write(raw)
	}
	if !strings.HasPrefix(saw, sealed.String()) || !strings.Contains(sealed.String(), "marker-42") {
		t.Fatalf("the sealed stream is not a prefix of what the terminal received:\nsealed %q\nsaw    %q", sealed.String(), saw)
	}

	// Replayed from the store, and exported as a cast asciinema plays:
	// the sealed output, byte for byte.
	if r := mustRun(t, nil, nil, "replay", "--store", l.storeDir, "--session", sid, "--speed", "0"); r.stdout != sealed.String() {
		t.Errorf("replay printed\n%q\nsealed\n%q", r.stdout, sealed.String())
	}
	cast := filepath.Join(dir, "session.cast")
	mustRun(t, nil, nil, "export", "cast", "--store", l.storeDir, "--session", sid, "--out", cast)
	played, err := exec.Command("script", "-q", "-e", "-c", "stty raw -echo; asciinema cat "+cast, "/dev/null").Output()
	if err != nil || string(played) != sealed.String() {
		t.Errorf("asciinema cat: %v\n%q\nsealed\n%q", err, played, sealed.String())
	}
}

// waitListening waits until each address accepts connections.
func waitListening(t *testing.T, addrs ...string) {
	t.Helper()
	natstest.CheckFor(t, 3*time.Minute, 50*time.Millisecond, func() error {
		for _, a := range addrs {
			c, err := net.Dial("tcp", a)
			if err != nil {
				return err
			}
			c.Close()
		}
		return nil
	})
}

// TestDevSSHUpstream runs dev in front of a real sshd (the test brings
// it; dev starts nothing it cannot): login ssh with a dev user, then the
// stock ssh client through the gateway, recorded.
func TestDevSSHUpstream(t *testing.T) {
	dir := t.TempDir()
	os.Chmod(dir, 0o711)
	data := filepath.Join(dir, "data")
	// The target must trust dev's target CA: make the keys dev will use.
	keys, err := sshproxy.OpenKeys(filepath.Join(data, "ssh-keys"), []string{"localhost", "127.0.0.1"})
	if err != nil {
		t.Fatal(err)
	}
	target := sshdtest.Start(t, ssh.MarshalAuthorizedKey(keys.TargetCA.PublicKey()))
	sshAddr, loginAddr := testnet.Addr(t), testnet.Addr(t)
	d := startDevAt(t, data, nil, "--ssh-upstream", target.Addr, "--ssh-host-key", target.HostKey, "--proxy-ssh", sshAddr, "--ssh-login", loginAddr)
	waitListening(t, sshAddr, loginAddr)
	home := t.TempDir()
	mustRun(t, nil, []string{"AUDITLEDGER_CLIENT_SECRET=alice-dev-secret"}, "login", "ssh", "--gateway", "http://"+loginAddr,
		"--issuer", d.issuer, "--client-id", "alice", "--dir", home, "--alias", "dev")
	out, err := exec.Command("ssh", "-F", filepath.Join(home, "ssh_config"), "-o", "BatchMode=yes", sshdtest.Login(t)+"+dev-ssh@dev", "echo via dev").Output()
	if err != nil || string(out) != "via dev\n" {
		t.Fatalf("ssh through dev: %v\n%s\n%s", err, out, d.stderr.String())
	}
	evs := d.drainStopAndRead(t)
	var cmds int
	for _, e := range evs {
		if e.Event.Type == events.CommandExecuted && e.Event.Source.Kind == "ssh-proxy" && e.Payload["statement"] == "echo via dev" && e.Event.Actor.Subject == "alice" {
			cmds++
		}
	}
	if cmds != 1 {
		t.Errorf("%d sealed command.executed for the ssh command, want 1", cmds)
	}
}
