package sshproxy_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"fmt"
	"net"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"golang.org/x/crypto/ssh"

	"github.com/auditledger/auditledger/events"
	"github.com/auditledger/auditledger/internal/oidcdev"
	"github.com/auditledger/auditledger/ledger/bus"
	"github.com/auditledger/auditledger/ledger/bus/emitter"
	"github.com/auditledger/auditledger/ledger/ledgertest"
	"github.com/auditledger/auditledger/ledger/piikeys"
	"github.com/auditledger/auditledger/services/access/accesstest"
	"github.com/auditledger/auditledger/services/approvals"
	"github.com/auditledger/auditledger/services/identity"
	"github.com/auditledger/auditledger/services/sshproxy"
	"github.com/auditledger/auditledger/test/natstest"
	"github.com/auditledger/auditledger/test/sshdtest"
)

type fixture struct {
	js      jetstream.JetStream
	target  *sshdtest.Server
	keys    *sshproxy.Keys
	proxy   *sshproxy.Proxy
	addr    string // the gateway's SSH address
	certURL string
	issuer  string
	login   string // the account on the target
	pii     *piikeys.Store
	broker  *approvals.Broker
	marker  string // a file denied commands would create
	access  *accesstest.Rig
}

type options struct {
	policy     string
	hostKeys   []string // pinned instead of the target's own
	clock      *sshproxy.ManualClock
	targetAddr string // instead of the sshd's: a target that is down
	keysDir    string // a keys directory prepared by the test
	// targetTrusts: the target's TrustedUserCAKeys; nil: the target CA
	targetTrusts []byte
	// access, if set, is the access rules the gateway enforces, with a
	// broker and a watcher on the test's clock (fixture.access).
	access string
}

func start(t *testing.T, o options) *fixture {
	t.Helper()
	f := &fixture{}
	f.login = sshdtest.Login(t)
	f.marker = filepath.Join(t.TempDir(), "marker")
	idp, err := oidcdev.Listen("127.0.0.1:0", oidcdev.Config{Audience: "auditledger-ssh", Users: []oidcdev.User{
		{Name: "alice", Secret: "a", Email: "alice@example.com", Groups: []string{"developers"}},
		{Name: "bob", Secret: "b", Groups: []string{"approver"}},
	}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { idp.Close() })
	f.issuer = idp.Issuer
	auth, err := identity.NewOIDC(t.Context(), identity.OIDCConfig{Issuer: idp.Issuer, Audience: "auditledger-ssh"})
	if err != nil {
		t.Fatal(err)
	}
	ns := natstest.Start(t)
	_, f.js = ns.Connect(t, nats.MaxReconnects(-1))
	if err := bus.EnsureStreams(t.Context(), f.js, bus.StreamOptions{}); err != nil {
		t.Fatal(err)
	}
	em, err := emitter.New(emitter.Config{JetStream: f.js, Timeout: 5 * time.Second, Retries: 1})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { em.Close() })
	f.broker, err = approvals.New(t.Context(), approvals.Config{JetStream: f.js, Create: true, Signer: ledgertest.Signer(t, "api.test/approvals"),
		Emitter: em, Source: events.Source{Kind: "api", Instance: "t"}})
	if err != nil {
		t.Fatal(err)
	}
	if f.pii, err = piikeys.Open(t.Context(), f.js, 1); err != nil {
		t.Fatal(err)
	}
	keysDir := o.keysDir
	if keysDir == "" {
		keysDir = t.TempDir()
	}
	if f.keys, err = sshproxy.OpenKeys(keysDir, []string{"127.0.0.1", "localhost"}); err != nil {
		t.Fatal(err)
	}
	trusted := o.targetTrusts
	if trusted == nil {
		trusted = ssh.MarshalAuthorizedKey(f.keys.TargetCA.PublicKey())
	}
	f.target = sshdtest.Start(t, trusted)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	f.addr = ln.Addr().String()
	var pol *sshproxy.Policy
	if o.policy != "" {
		file := filepath.Join(t.TempDir(), "policy.yaml")
		os.WriteFile(file, []byte(o.policy), 0o644)
		if pol, err = sshproxy.LoadPolicy(file); err != nil {
			t.Fatal(err)
		}
	}
	pinned := o.hostKeys
	if pinned == nil {
		pinned = []string{f.target.HostKey}
	}
	addr := f.target.Addr
	if o.targetAddr != "" {
		addr = o.targetAddr
	}
	cfg := sshproxy.Config{Addr: f.addr, Keys: f.keys, Auth: auth, Emitter: em, Tenant: "acme", Approvals: f.broker, PII: f.pii,
		Policy: pol, StateDir: t.TempDir(),
		Targets: []sshproxy.Target{{Name: "web", Addr: addr, HostKeys: pinned}}}
	if o.clock != nil {
		cfg.Clock = o.clock
	}
	if o.access != "" {
		f.access = accesstest.Start(t, f.js, em, o.access, time.Minute)
		cfg.Access, cfg.AccessTick = f.access.Watcher, 20*time.Millisecond
	}
	f.proxy, err = sshproxy.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() { served <- f.proxy.Serve(ctx, ln) }()
	t.Cleanup(func() {
		cancel()
		if err := <-served; err != nil {
			t.Errorf("Serve: %v", err)
		}
	})
	hs := httptest.NewServer(f.proxy.CertHandler())
	t.Cleanup(hs.Close)
	f.certURL = hs.URL
	return f
}

// client is a user's ssh setup after `auditledger login ssh`.
type client struct {
	config string // the ssh_config file
	files  *sshproxy.ClientFiles
}

// loginAs gets user a certificate the way `auditledger login ssh` does:
// a key pair made by ssh-keygen, a token from the provider, the files and
// the ssh_config snippet.
func (f *fixture) loginAs(t *testing.T, name, secret string) *client {
	t.Helper()
	dir := t.TempDir()
	key := filepath.Join(dir, "id_ed25519")
	if out, err := exec.Command("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", key).CombinedOutput(); err != nil {
		t.Fatalf("ssh-keygen: %v\n%s", err, out)
	}
	pub, _ := os.ReadFile(key + ".pub")
	tok, err := identity.ClientCredentialsToken(t.Context(), f.issuer, name, secret)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := sshproxy.Login(t.Context(), nil, f.certURL, tok, pub)
	if err != nil {
		t.Fatal(err)
	}
	host, port, _ := net.SplitHostPort(f.addr)
	files, err := sshproxy.WriteClientFiles(dir, key, "gw", host, port, resp)
	if err != nil {
		t.Fatal(err)
	}
	c := &client{config: filepath.Join(dir, "ssh_config"), files: files}
	os.WriteFile(c.config, []byte(files.Config+"  BatchMode yes\n  ConnectTimeout 30\n"), 0o644)
	return c
}

// ssh runs the stock ssh client through the gateway.
func (f *fixture) ssh(t *testing.T, c *client, stdin string, args ...string) (stdout, stderr string, err error) {
	t.Helper()
	return f.run(t, stdin, "ssh", append([]string{"-F", c.config}, args...)...)
}

func (f *fixture) run(t *testing.T, stdin string, prog string, args ...string) (string, string, error) {
	t.Helper()
	return f.runEnv(t, nil, stdin, prog, args...)
}

// runEnv runs prog with env added to the test's environment.
func (f *fixture) runEnv(t *testing.T, env []string, stdin string, prog string, args ...string) (string, string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, prog, args...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	cmd.Stdin = strings.NewReader(stdin)
	cmd.Env = append(os.Environ(), env...)
	err := cmd.Run()
	return out.String(), errb.String(), err
}

// sshKey runs ssh with only the given key and certificate (none: "none").
func (f *fixture) sshKey(t *testing.T, c *client, key, cert string, args ...string) (stdout, stderr string, err error) {
	t.Helper()
	host, port, _ := net.SplitHostPort(f.addr)
	opts := []string{"-F", "/dev/null", "-p", port, "-o", "BatchMode=yes", "-o", "IdentitiesOnly=yes", "-o", "IdentityFile=" + key,
		"-o", "CertificateFile=" + cert, "-o", "UserKnownHostsFile=" + c.files.KnownHosts, "-o", "GlobalKnownHostsFile=/dev/null",
		"-o", "StrictHostKeyChecking=yes", "-l", f.login + "+web", host}
	return f.run(t, "", "ssh", append(opts, args...)...)
}

func (f *fixture) user(target string) string { return f.login + "+" + target + "@gw" }

// events returns the stored events, in stream order.
func (f *fixture) events(t *testing.T) []natstest.Stored { return natstest.Events(t, f.js, "") }

// waitFor polls until the bus holds an event ok accepts, n of them.
func (f *fixture) waitFor(t *testing.T, n int, ok func(natstest.Stored) bool) []natstest.Stored {
	t.Helper()
	var got []natstest.Stored
	natstest.CheckFor(t, 3*time.Minute, 20*time.Millisecond, func() error {
		got = nil
		for _, e := range f.events(t) {
			if ok(e) {
				got = append(got, e)
			}
		}
		if len(got) < n {
			return fmt.Errorf("%d of %d events", len(got), n)
		}
		return nil
	})
	return got
}

func ofType(ty events.Type) func(natstest.Stored) bool {
	return func(e natstest.Stored) bool { return e.Event.Type == ty }
}

// sessionEvents are one session's events, by session_seq.
func (f *fixture) sessionEvents(t *testing.T, id string) []natstest.Stored {
	var out []natstest.Stored
	for _, e := range f.events(t) {
		if e.Event.SessionID == id {
			out = append(out, e)
		}
	}
	slices.SortFunc(out, func(a, b natstest.Stored) int { return int(a.Event.SessionSeq) - int(b.Event.SessionSeq) })
	return out
}

// stream joins a session's recorded chunks of one stream.
func stream(t *testing.T, evs []natstest.Stored, name string) string {
	t.Helper()
	var chunks []natstest.Stored
	for _, e := range evs {
		if e.Event.Type == events.SessionOutput && e.Payload["stream"] == name {
			chunks = append(chunks, e)
		}
	}
	slices.SortFunc(chunks, func(a, b natstest.Stored) int {
		return int(a.Payload["offset"].(float64) - b.Payload["offset"].(float64))
	})
	var b strings.Builder
	at := 0 // the stream's bytes as they passed
	for _, c := range chunks {
		if int(c.Payload["offset"].(float64)) != at {
			t.Fatalf("stream %s: a chunk at %v after %d bytes", name, c.Payload["offset"], at)
		}
		at += int(c.Payload["bytes"].(float64))
		if c.Payload["binary"] == true {
			continue // recorded as its keyed digest only
		}
		if c.Payload["bulk"] != nil {
			t.Fatalf("stream %s: a bulk piece at %v: open it with fixture.stream", name, c.Payload["offset"])
		}
		raw, err := base64.StdEncoding.DecodeString(c.Payload["data"].(string))
		if err != nil {
			t.Fatal(err)
		}
		b.Write(raw)
	}
	return b.String()
}
