package test

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/auditledger/auditledger/events"
	"github.com/auditledger/auditledger/ledger"
	"github.com/auditledger/auditledger/ledger/bus"
	"github.com/auditledger/auditledger/ledger/bus/nkeyauth"
	"github.com/auditledger/auditledger/ledger/file"
	"github.com/auditledger/auditledger/test/natstest"
)

// TestProxyIntoVerifiedLedger: psql → `auditledger proxy postgres` →
// PostgreSQL, with `auditledger serve` sealing what the proxy records; the
// verified ledger holds one command.executed and one response.digest per
// statement.
func TestProxyIntoVerifiedLedger(t *testing.T) {
	pg := targetPostgres(t)
	db := pg.NewDatabase(t)
	l := startLedger(t)
	srv, js, serve := l.srv, l.js, l.serve

	proxy, addr := startProxyPostgres(t, srv, pg.DSN(db))
	defer func() { proxy.Process.Signal(syscall.SIGTERM); proxy.Wait() }()
	url := fmt.Sprintf("postgres://alice:alice-secret@%s/%s?sslmode=disable", addr, db)
	psqlOut, err := exec.Command("psql", "-X", "-A", "-t", "-v", "ON_ERROR_STOP=1",
		"-c", "CREATE TABLE t (a int)", "-c", "INSERT INTO t SELECT generate_series(1, 10)", "-c", "SELECT sum(a) FROM t", url).CombinedOutput()
	if err != nil || !strings.Contains(string(psqlOut), "55") {
		t.Fatalf("psql through the proxy: %v\n%s", err, psqlOut)
	}
	waitDrained(t, js, 30*time.Second)
	serve.Process.Signal(syscall.SIGTERM)
	serve.Wait()

	commands, digests := map[string]string{}, map[string]int{}
	types := map[events.Type]int{}
	for _, s := range l.verifiedEvents(t) {
		types[s.Event.Type]++
		switch s.Event.Type {
		case events.CommandExecuted:
			commands[s.Event.ID] = s.Payload["statement"].(string)
		case events.ResponseDigest:
			digests[s.Payload["command_id"].(string)]++
		}
	}
	if len(commands) != 3 || types[events.SessionStarted] != 1 || types[events.SessionEnded] != 1 {
		t.Fatalf("sealed: %v, commands %q", types, commands)
	}
	for id, stmt := range commands {
		if digests[id] != 1 {
			t.Errorf("statement %q has %d digests in the ledger", stmt, digests[id])
		}
	}
}

// verifiedEvents runs `auditledger verify` on a store, which must pass,
// then returns every sealed event, parsed; an invalid one fails the test.
func verifiedEvents(t *testing.T, storeDir, vkey string) []natstest.Stored {
	t.Helper()
	mustRun(t, nil, nil, "verify", "--store", storeDir, "--vkey", vkey)
	st, err := file.New(storeDir)
	if err != nil {
		t.Fatal(err)
	}
	var out []natstest.Stored
	err = ledger.ReadRecords(t.Context(), st, 0, func(i uint64, rec []byte) error {
		r, err := ledger.ParseRecord(rec)
		if err != nil {
			return err
		}
		ev, err := events.Parse(r.Event)
		if err != nil {
			return fmt.Errorf("sealed event %d invalid: %w", i, err)
		}
		var p map[string]any
		json.Unmarshal(ev.Payload, &p)
		out = append(out, natstest.Stored{Event: ev, Raw: r.Event, Payload: p})
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// startProxyPostgres runs `auditledger proxy postgres` in front of
// upstream, recording to srv as the proxy bus role, with the development
// user alice (password alice-secret) and tenant acme; it returns the
// process and the address from its banner.
func startProxyPostgres(t *testing.T, srv *natstest.Server, upstream string, args ...string) (*exec.Cmd, string) {
	t.Helper()
	users := filepath.Join(t.TempDir(), "users.yaml")
	os.WriteFile(users, []byte("alice: alice-secret\n"), 0o600)
	proxy := exec.Command(binary, append([]string{"proxy", "postgres", "--listen", "127.0.0.1:0", "--users", users, "--nats", srv.ClientURL(),
		"--nkey", nkeyauth.SeedFile(srv.KeysDir, bus.Proxy), "--tenant", "acme"}, args...)...)
	proxy.Env = append(os.Environ(), "AUDITLEDGER_PROXY_UPSTREAM="+upstream)
	out, _ := proxy.StdoutPipe()
	proxy.Stderr = os.Stderr
	if err := proxy.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { proxy.Process.Kill(); proxy.Wait() })
	banner := make([]byte, 512)
	n, _ := out.Read(banner)
	// "auditledger proxy postgres on ADDR ..."
	if f := strings.Fields(string(banner[:n])); len(f) > 4 && f[3] == "on" {
		return proxy, f[4]
	}
	t.Fatalf("no address in the proxy banner %q", banner[:n])
	return nil, ""
}

// ledgerRun is `auditledger serve` with the ledger role on an
// authenticated in-process NATS server and a local store.
type ledgerRun struct {
	srv            *natstest.Server
	js             jetstream.JetStream // admin
	keys, storeDir string
	serve          *exec.Cmd
}

// startLedger starts it and waits until the writer has set up the streams.
func startLedger(t *testing.T) *ledgerRun {
	t.Helper()
	l := &ledgerRun{srv: natstest.StartSecure(t), keys: t.TempDir(), storeDir: t.TempDir()}
	_, l.js = l.srv.Connect(t)
	mustRun(t, nil, nil, "keys", "generate", "--out", l.keys)
	l.serve = startServe(t, serveConfig(t, l.srv, l.storeDir, filepath.Join(l.keys, "ledger.key")))
	natstest.CheckFor(t, 30*time.Second, 20*time.Millisecond, func() error {
		_, err := l.js.Stream(t.Context(), bus.EventsStream)
		return err
	})
	return l
}

// verifiedEvents verifies the store and returns its events.
func (l *ledgerRun) verifiedEvents(t *testing.T) []natstest.Stored {
	t.Helper()
	return verifiedEvents(t, l.storeDir, filepath.Join(l.keys, "ledger.vkey"))
}
