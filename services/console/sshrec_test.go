package console_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/auditledger/auditledger/events"
	"github.com/auditledger/auditledger/internal/oidcdev"
	"github.com/auditledger/auditledger/ledger/bus"
	"github.com/auditledger/auditledger/ledger/bus/emitter"
	"github.com/auditledger/auditledger/services/identity"
	"github.com/auditledger/auditledger/services/sshproxy"
	"github.com/auditledger/auditledger/test/natstest"
	"github.com/auditledger/auditledger/test/sshdtest"
)

// sshSecret is a card number typed and printed in the recorded SSH
// session: the gateway's detectors redact it, so no page may show it.
const sshSecret = "4111 1111 1111 1111"

// recordSSHSession runs a real terminal session through the SSH gateway
// (Debian's sshd as the target, the stock ssh client with -tt, the
// gateway recording into its own NATS) and returns the session's events
// as the gateway published them, and its id. The person types a command
// that prints a line in bold and a card number.
func recordSSHSession(t *testing.T) (evs [][]byte, id string) {
	t.Helper()
	idp, err := oidcdev.Listen("127.0.0.1:0", oidcdev.Config{Audience: "auditledger-ssh", Users: []oidcdev.User{
		{Name: "frank", Secret: "frank-secret", Groups: []string{"developers"}}}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { idp.Close() })
	auth, err := identity.NewOIDC(t.Context(), identity.OIDCConfig{Issuer: idp.Issuer, Audience: "auditledger-ssh"})
	if err != nil {
		t.Fatal(err)
	}
	ns := natstest.Start(t)
	_, js := ns.Connect(t)
	if err := bus.EnsureStreams(t.Context(), js, bus.StreamOptions{}); err != nil {
		t.Fatal(err)
	}
	em, err := emitter.New(emitter.Config{JetStream: js, Timeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { em.Close() })
	keys, err := sshproxy.OpenKeys(t.TempDir(), []string{"127.0.0.1", "localhost"})
	if err != nil {
		t.Fatal(err)
	}
	target := sshdtest.Start(t, ssh.MarshalAuthorizedKey(keys.TargetCA.PublicKey()))
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	proxy, err := sshproxy.New(sshproxy.Config{Addr: ln.Addr().String(), Keys: keys, Auth: auth, Emitter: em, Tenant: "acme", StateDir: t.TempDir(),
		Targets: []sshproxy.Target{{Name: "web", Addr: target.Addr, HostKeys: []string{target.HostKey}}}})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() { served <- proxy.Serve(ctx, ln) }()
	defer func() {
		cancel()
		if err := <-served; err != nil {
			t.Errorf("the SSH gateway: %v", err)
		}
	}()
	hs := httptest.NewServer(proxy.CertHandler())
	defer hs.Close()

	// `auditledger login ssh`, as the gateway's own tests do it.
	dir := t.TempDir()
	key := filepath.Join(dir, "id_ed25519")
	if out, err := exec.Command("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", key).CombinedOutput(); err != nil {
		t.Fatalf("ssh-keygen: %v\n%s", err, out)
	}
	pub, _ := os.ReadFile(key + ".pub")
	tok, err := identity.ClientCredentialsToken(t.Context(), idp.Issuer, "frank", "frank-secret")
	if err != nil {
		t.Fatal(err)
	}
	resp, err := sshproxy.Login(t.Context(), nil, hs.URL, tok, pub)
	if err != nil {
		t.Fatal(err)
	}
	host, port, _ := net.SplitHostPort(ln.Addr().String())
	files, err := sshproxy.WriteClientFiles(dir, key, "gw", host, port, resp)
	if err != nil {
		t.Fatal(err)
	}
	config := filepath.Join(dir, "ssh_config")
	os.WriteFile(config, []byte(files.Config+"  BatchMode yes\n  ConnectTimeout 30\n"), 0o644)

	rctx, rcancel := context.WithTimeout(t.Context(), 5*time.Minute)
	defer rcancel()
	cmd := exec.CommandContext(rctx, "ssh", "-F", config, "-tt", "-o", "SetEnv=LANG=C.UTF-8", sshdtest.Login(t)+"+web@gw")
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	var out, errb lockedBuffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	// Typed one line at a time, each once the last one's output came
	// back: the cast has frames apart in time, as a person's session.
	for _, step := range []struct{ line, until string }{
		{"printf 'hello from \\033[1mthe replay\\033[0m\\n'\n", "\x1b[1mthe replay"},
		// More than the gateway holds back for its detectors (4 KiB):
		// recorded while the session runs, a frame of its own.
		{"yes 'the quick brown fox jumps' | head -300; echo done-$((6*7))\n", "\r\ndone-42\r\n"},
		{"echo card " + sshSecret + "\n", "\rcard " + sshSecret + "\r\n"},
		{"exit\n", ""},
	} {
		if _, err := io.WriteString(stdin, step.line); err != nil {
			t.Fatal(err)
		}
		if step.until != "" {
			natstest.CheckFor(t, time.Minute, 10*time.Millisecond, func() error {
				if !strings.Contains(out.String(), step.until) {
					return fmt.Errorf("the terminal has not shown %q: %q", step.until, out.String())
				}
				return nil
			})
		}
	}
	stdin.Close()
	if err := cmd.Wait(); err != nil {
		t.Fatalf("ssh through the gateway: %v\n%s", err, errb.String())
	}
	// The session's end is recorded after its streams' last chunks.
	var stored []natstest.Stored
	natstest.CheckFor(t, time.Minute, 20*time.Millisecond, func() error {
		stored = natstest.Events(t, js, bus.EventsStream)
		id = ""
		for _, s := range stored {
			if s.Event.Type == events.SessionStarted && s.Event.Source.Kind == "ssh-proxy" {
				id = s.Event.SessionID
			}
		}
		for _, s := range stored {
			if id != "" && s.Event.SessionID == id && s.Event.Type == events.SessionEnded {
				return nil
			}
		}
		return fmt.Errorf("no session.ended of the SSH session (%d events)", len(stored))
	})
	for _, s := range stored {
		if s.Event.SessionID == id {
			if bytes.Contains(s.Raw, []byte(sshSecret)) {
				t.Fatalf("the gateway recorded the card number in clear: %s", s.Raw)
			}
			evs = append(evs, s.Raw)
		}
	}
	return evs, id
}

type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}
