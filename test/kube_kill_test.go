package test

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/auditledger/auditledger/events"
	"github.com/auditledger/auditledger/internal/oidcdev"
	"github.com/auditledger/auditledger/test/kubetest"
	"github.com/auditledger/auditledger/test/natstest"
	"github.com/auditledger/auditledger/test/testnet"
)

// TestKubeGatewayServeKill runs the kube-gateway role as production
// would (serve, its own process) in front of a real kube-apiserver and the
// test kubelet, and SIGKILLs it while a kubectl exec streams output
// through it: kubectl ends with an error instead of hanging, every event
// the bus acknowledged before the kill is sealed, the sealed output is a
// prefix of what kubectl printed, the exec's session is recorded as lost
// when the gateway starts again (as the SSH gateway's is), and verify
// passes.
func TestKubeGatewayServeKill(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Minute)
	defer cancel()
	l := startLedger(t)
	idp, err := oidcdev.Listen("127.0.0.1:0", oidcdev.Config{Audience: "auditledger-kube", Users: []oidcdev.User{
		{Name: "alice", Secret: "alice-secret", Groups: []string{"developers"}},
	}})
	if err != nil {
		t.Fatal(err)
	}
	defer idp.Close()
	c := kubetest.Start(t)
	account := c.Gateway(ctx, kubetest.GatewayOptions{AllowAll: "oidc:developers"})
	c.StartKubelet().CreatePod("team-x", "shell")

	keysDir, state, dir := t.TempDir(), t.TempDir(), t.TempDir()
	addr := testnet.Addr(t)
	config := filepath.Join(dir, "auditledger.yaml")
	os.WriteFile(config, []byte(fmt.Sprintf(`roles: [kube-gateway]
tenant: acme
log: {format: text, level: info}
http: {listen: "127.0.0.1:0"}
nats: {url: %q, nkeys: %q}
oidc: {issuer: %q, audience: auditledger-kube}
kube_gateway:
  listen: %q
  upstream: %q
  upstream_ca: %q
  token_file: %q
  keys_dir: %q
  host_names: [127.0.0.1]
  state_dir: %q
  cluster: test
`, l.srv.ClientURL(), l.srv.KeysDir, idp.Issuer, addr, c.URL, account.CAFile, account.TokenFile, keysDir, state)), 0o644)
	gw := startServe(t, config)
	waitListening(t, addr)

	kubeconfig := filepath.Join(dir, "kubeconfig")
	mustRun(t, nil, nil, "kubeconfig", "--cluster", "test", "--server", "https://"+addr, "--ca-file", filepath.Join(keysDir, "ca.crt"),
		"--issuer", idp.Issuer, "--client-id", "alice", "-o", kubeconfig)

	// An exec that streams until it is stopped: numbered lines, enough of
	// them that chunks are recorded past the tail a stream holds back.
	cmd := c.KubectlCmd(ctx, kubeconfig, "exec", "-n", "team-x", "shell", "-c", "main", "--",
		"sh", "-c", `i=0; while :; do printf 'kill-line-%06d ........................................................\n' $i; i=$((i+1)); sleep 0.005; done`)
	cmd.Env = append(cmd.Env, "AUDITLEDGER_CLIENT_SECRET=alice-secret")
	var seen, errOut lockedBytes
	cmd.Stdout, cmd.Stderr = &seen, &errOut
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	defer cmd.Process.Kill()

	// Output recorded and acknowledged by the bus, then the kill.
	var sid string
	var acked []natstest.Stored
	natstest.CheckFor(t, 3*time.Minute, 50*time.Millisecond, func() error {
		acked = natstest.Events(t, l.js, "")
		for _, e := range acked {
			if e.Event.Type == events.SessionOutput && e.Payload["stream"] == "stdout" {
				raw, _ := base64.StdEncoding.DecodeString(e.Payload["data"].(string))
				if strings.Contains(string(raw), "kill-line-000001") {
					sid = e.Event.SessionID
					return nil
				}
			}
		}
		return fmt.Errorf("no recorded chunk holds the exec's output yet (kubectl printed %d bytes; stderr %q)", len(seen.String()), errOut.String())
	})
	gw.Process.Signal(syscall.SIGKILL)
	gw.Wait()
	// Read again after the kill: what the bus stored before it, including
	// what was acknowledged while the first read ran.
	acked = natstest.Events(t, l.js, "")

	// kubectl ends, with an error: its connection is gone.
	select {
	case err := <-exited:
		var exitErr *exec.ExitError
		if !errors.As(err, &exitErr) || exitErr.ExitCode() == 0 {
			t.Fatalf("kubectl exec after the gateway was killed: %v (want a non-zero exit); stderr %q", err, errOut.String())
		}
	case <-time.After(3 * time.Minute):
		t.Fatalf("kubectl exec still running 3 minutes after the gateway was killed; stderr %q", errOut.String())
	}
	saw := seen.String()

	// The gateway starts again on its state directory: the session it
	// lost is recorded as ended, lost.
	startServe(t, config)
	waitListening(t, addr)
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
	sealed := map[string]bool{}
	for _, e := range evs {
		sealed[e.Event.ID] = true
	}
	for _, e := range acked {
		if !sealed[e.Event.ID] {
			t.Errorf("event %s (%s), acknowledged before the kill, is not sealed", e.Event.ID, e.Event.Type)
		}
	}
	var chunks []natstest.Stored
	ends := 0
	for _, e := range evs {
		if e.Event.SessionID != sid {
			continue
		}
		switch {
		case e.Event.Type == events.SessionOutput && e.Payload["stream"] == "stdout":
			chunks = append(chunks, e)
		case e.Event.Type == events.SessionEnded:
			ends++
		}
	}
	if ends != 1 {
		t.Errorf("session %s has %d ends sealed, want 1 (lost)", sid, ends)
	}
	slices.SortFunc(chunks, func(a, b natstest.Stored) int {
		return int(a.Payload["offset"].(float64) - b.Payload["offset"].(float64))
	})
	var out strings.Builder
	for _, ch := range chunks {
		if int(ch.Payload["offset"].(float64)) != out.Len() {
			t.Fatalf("a gap in the sealed stream at %d", out.Len())
		}
		raw, _ := base64.StdEncoding.DecodeString(ch.Payload["data"].(string))
		out.Write(raw)
	}
	if !strings.HasPrefix(saw, out.String()) || !strings.Contains(out.String(), "kill-line-000001") {
		t.Fatalf("the sealed stream (%d bytes) is not a prefix of what kubectl printed (%d bytes)", out.Len(), len(saw))
	}
}
