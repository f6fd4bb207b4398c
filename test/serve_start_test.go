package test

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/auditledger/auditledger/ledger/bus/nkeyauth"
	"github.com/auditledger/auditledger/test/natstest"
	"github.com/auditledger/auditledger/test/testnet"
)

// serve started before its NATS waits for it, saying so, and becomes
// ready once it answers — as it rides out an outage once connected —
// instead of exiting.
func TestServeWaitsForNATSAtStart(t *testing.T) {
	keys, natsKeys := t.TempDir(), t.TempDir()
	mustRun(t, nil, nil, "keys", "generate", "--out", keys)
	if _, err := nkeyauth.Generate(natsKeys); err != nil {
		t.Fatal(err)
	}
	natsPort, httpPort := testnet.Port(t), testnet.Port(t)
	cfg := filepath.Join(t.TempDir(), "auditledger.yaml")
	os.WriteFile(cfg, []byte(fmt.Sprintf(`roles: [ledger]
log: {format: text}
http: {listen: "127.0.0.1:%d"}
nats: {url: "nats://127.0.0.1:%d", nkeys: %q}
ledger: {store: %q, key: %q, index: ""}
`, httpPort, natsPort, natsKeys, filepath.Join(t.TempDir(), "store"), filepath.Join(keys, "ledger.key"))), 0o644)
	cmd := startServe(t, cfg)
	logPath := filepath.Join(filepath.Dir(cfg), "serve.log")
	natstest.CheckFor(t, 30*time.Second, 100*time.Millisecond, func() error {
		b, _ := os.ReadFile(logPath)
		if !strings.Contains(string(b), "NATS does not answer yet; waiting for it") {
			return fmt.Errorf("serve.log does not say it waits for NATS:\n%s", b)
		}
		return nil
	})
	if cmd.ProcessState != nil {
		t.Fatalf("serve exited: %v", cmd.ProcessState)
	}
	natstest.StartSecureIn(t, t.TempDir(), natsPort, natsKeys)
	natstest.CheckFor(t, 60*time.Second, 200*time.Millisecond, func() error {
		resp, err := http.Get(fmt.Sprintf("http://127.0.0.1:%d/readyz", httpPort))
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != 200 || !strings.Contains(string(body), "writer") {
			return fmt.Errorf("/readyz %d: %s", resp.StatusCode, body)
		}
		return nil
	})
}

// A store the writer cannot write to stops serve at start, named, rather
// than at its first seal.
func TestServeRefusesAnUnwritableStore(t *testing.T) {
	srv := natstest.StartSecure(t)
	keys := t.TempDir()
	mustRun(t, nil, nil, "keys", "generate", "--out", keys)
	store := t.TempDir()
	mustRun(t, nil, nil, "store", "init", "--store", store)
	if out, err := exec.Command("chattr", "+i", store).CombinedOutput(); err != nil {
		t.Fatalf("chattr +i (the tests run as root, which file modes do not stop): %v %s", err, out)
	}
	t.Cleanup(func() { exec.Command("chattr", "-i", store).Run() })
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	out, err := exec.CommandContext(ctx, binary, "serve", "--config", serveConfig(t, srv, store, filepath.Join(keys, "ledger.key"))).CombinedOutput()
	if err == nil || ctx.Err() != nil {
		t.Fatalf("serve with a read-only store: %v (want it to stop at start)\n%s", err, out)
	}
	if !strings.Contains(string(out), "ledger.store: file store "+store+" is not writable") {
		t.Errorf("serve's error does not name the unwritable store:\n%s", out)
	}
}

// TestServeSecondOnSameIndexRefused: a second serve given the ledger index
// directory a running one holds is refused at once, naming the directory
// and the first one's PID.
func TestServeSecondOnSameIndexRefused(t *testing.T) {
	keys, natsKeys := t.TempDir(), t.TempDir()
	mustRun(t, nil, nil, "keys", "generate", "--out", keys)
	if _, err := nkeyauth.Generate(natsKeys); err != nil {
		t.Fatal(err)
	}
	natsPort := testnet.Port(t)
	natstest.StartSecureIn(t, t.TempDir(), natsPort, natsKeys)
	index, store := filepath.Join(t.TempDir(), "index"), filepath.Join(t.TempDir(), "store")
	config := func(httpPort int) string {
		cfg := filepath.Join(t.TempDir(), "auditledger.yaml")
		os.WriteFile(cfg, []byte(fmt.Sprintf(`roles: [ledger]
log: {format: text}
http: {listen: "127.0.0.1:%d"}
nats: {url: "nats://127.0.0.1:%d", nkeys: %q}
ledger: {store: %q, key: %q, index: %q}
`, httpPort, natsPort, natsKeys, store, filepath.Join(keys, "ledger.key"), index)), 0o644)
		return cfg
	}
	httpPort := testnet.Port(t)
	first := startServe(t, config(httpPort))
	natstest.CheckFor(t, 60*time.Second, 200*time.Millisecond, func() error {
		resp, err := http.Get(fmt.Sprintf("http://127.0.0.1:%d/readyz", httpPort))
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		if body, _ := io.ReadAll(resp.Body); resp.StatusCode != 200 || !strings.Contains(string(body), "writer") {
			return fmt.Errorf("/readyz %d: %s", resp.StatusCode, body)
		}
		return nil
	})
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()
	second := exec.CommandContext(ctx, binary, "serve", "--config", config(testnet.Port(t)))
	out, err := second.CombinedOutput()
	want := fmt.Sprintf("ledger.index: the data directory %s is in use by another auditledger (pid %d)", index, first.Process.Pid)
	if ctx.Err() != nil {
		t.Fatalf("a second serve on the index %s still ran after 60s:\n%s", index, out)
	}
	if err == nil || !strings.Contains(string(out), want) {
		t.Fatalf("second serve: %v\n%s\nwant %q", err, out, want)
	}
}

// TestServeBusyPortNamed: a busy listen address is answered with the port
// and the setting that moves it, at once.
func TestServeBusyPortNamed(t *testing.T) {
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	_, port, _ := net.SplitHostPort(busy.Addr().String())
	keys := t.TempDir()
	mustRun(t, nil, nil, "keys", "generate", "--out", keys)
	cfg := filepath.Join(t.TempDir(), "auditledger.yaml")
	os.WriteFile(cfg, []byte(fmt.Sprintf(`roles: [ledger]
http: {listen: %q}
nats: {url: "nats://127.0.0.1:%d"}
ledger: {store: %q, key: %q, index: ""}
`, busy.Addr().String(), testnet.Port(t), filepath.Join(t.TempDir(), "store"), filepath.Join(keys, "ledger.key"))), 0o644)
	r := run(t, nil, nil, "serve", "--config", cfg)
	if want := "serve: http.listen: port " + port + " is in use (" + busy.Addr().String() + "): choose another"; r.code == 0 || !strings.Contains(r.stderr, want) {
		t.Fatalf("serve on a busy port: exit %d\n%s\nwant %q", r.code, r.stderr, want)
	}
}
