package test

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/auditledger/auditledger/events"
	"github.com/auditledger/auditledger/ledger/bus"
	"github.com/auditledger/auditledger/services/approvals"
	"github.com/auditledger/auditledger/test/natstest"
)

// devRun is a running `auditledger dev` and what its banner said.
type devRun struct {
	cmd                            *exec.Cmd
	stderr                         *lockedBuffer
	data                           string
	nats, issuer, api, proxy, http string
	metrics                        string // http://ADDR, serving /metrics
}

var bannerRes = map[string]*regexp.Regexp{
	"nats":    regexp.MustCompile(`NATS \(JetStream\)\s+(nats://\S+)`),
	"issuer":  regexp.MustCompile(`identity \(dev\)\s+(http://\S+)`),
	"api":     regexp.MustCompile(`API\s+(http://\S+)`),
	"proxy":   regexp.MustCompile(`postgres proxy\s+(\d\S+)`),
	"http":    regexp.MustCompile(`http proxy\s+(http://\S+)`),
	"metrics": regexp.MustCompile(`metrics, health\s+(http://\S+)/metrics`),
}

// startDev runs dev on fresh state with every port chosen by the system,
// and waits for the end of its banner. Its data directory is one dev
// creates, as a user's is, in a directory the postgres user may pass
// through when the tests run as root.
func startDev(t *testing.T, env []string, args ...string) *devRun {
	t.Helper()
	dir := t.TempDir()
	for _, d := range []string{filepath.Dir(dir), dir} {
		if err := os.Chmod(d, 0o711); err != nil {
			t.Fatal(err)
		}
	}
	return startDevAt(t, filepath.Join(dir, "data"), env, args...)
}

// startDevAt runs dev on the data directory data.
func startDevAt(t *testing.T, data string, env []string, args ...string) *devRun {
	t.Helper()
	d := &devRun{data: data, stderr: &lockedBuffer{}}
	args = append([]string{"dev", "--data", d.data, "--nats-port", "-1", "--http", "127.0.0.1:0",
		"--api", "127.0.0.1:0", "--oidc", "127.0.0.1:0", "--proxy", "127.0.0.1:0", "--proxy-http", "127.0.0.1:0", "--postgres-port", "0"}, args...)
	d.cmd = exec.Command(binary, args...)
	d.cmd.Env = append(os.Environ(), env...)
	out, err := d.cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	d.cmd.Stderr = d.stderr
	if err := d.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		d.cmd.Process.Kill()
		d.cmd.Wait()
		d.waitPostgresGone(t)
	})
	lines := make(chan string, 100)
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
	}()
	found := map[string]string{}
	timeout := time.After(60 * time.Second)
	for done := false; !done; {
		select {
		case l, ok := <-lines:
			if !ok {
				t.Fatalf("dev exited before printing its banner:\n%s", d.stderr.String())
			}
			for k, re := range bannerRes {
				if m := re.FindStringSubmatch(l); m != nil {
					found[k] = m[1]
				}
			}
			done = strings.Contains(l, "auditledger approvals list")
		case <-timeout:
			t.Fatalf("no banner after 60s:\n%s", d.stderr.String())
		}
	}
	go func() { // keep draining so dev never blocks on stdout
		for range lines {
		}
	}()
	d.nats, d.issuer, d.api, d.proxy, d.http, d.metrics = found["nats"], found["issuer"], found["api"], found["proxy"], found["http"], found["metrics"]
	if d.nats == "" || d.issuer == "" || d.api == "" {
		t.Fatalf("banner incomplete: %v", found)
	}
	return d
}

// stop sends what Ctrl-C sends and expects a clean exit.
func (d *devRun) stop(t *testing.T) {
	t.Helper()
	d.cmd.Process.Signal(syscall.SIGTERM)
	if err := d.cmd.Wait(); err != nil {
		t.Fatalf("dev did not stop cleanly: %v\n%s", err, d.stderr.String())
	}
}

// drainStopAndRead waits until the writer has sealed everything on the
// bus, stops dev cleanly, and returns the sealed events of the verified
// store.
func (d *devRun) drainStopAndRead(t *testing.T) []natstest.Stored {
	t.Helper()
	nc, err := nats.Connect(d.nats, natstest.RoleOptions(t, filepath.Join(d.data, "nats-keys"), bus.Admin)...)
	if err != nil {
		t.Fatal(err)
	}
	js, _ := jetstream.New(nc)
	waitDrained(t, js, 30*time.Second)
	nc.Close()
	d.stop(t)
	return verifiedEvents(t, d.store(), d.vkey())
}

// waitPostgresGone waits until the PostgreSQL server dev ran in its data
// directory has exited (it follows dev when dev is killed), so that
// nothing is left running and the directory can be removed.
func (d *devRun) waitPostgresGone(t *testing.T) {
	t.Helper()
	pidfile := filepath.Join(d.data, "postgres", "data", "postmaster.pid")
	deadline := time.Now().Add(60 * time.Second)
	for {
		b, err := os.ReadFile(pidfile)
		if err != nil {
			return
		}
		var pid int
		fmt.Sscan(string(b), &pid)
		if pid <= 0 || syscall.Kill(pid, 0) != nil {
			return
		}
		if time.Now().After(deadline) {
			syscall.Kill(pid, syscall.SIGQUIT)
			t.Errorf("dev's PostgreSQL (pid %d) still runs 60s after dev ended", pid)
			return
		}
		time.Sleep(50 * time.Millisecond) // polling for the server's exit, with a deadline
	}
}

func (d *devRun) vkey() string  { return filepath.Join(d.data, "keys", "ledger.vkey") }
func (d *devRun) store() string { return filepath.Join(d.data, "store") }

// token gets a development user's token the way the banner shows.
func (d *devRun) token(t *testing.T, user string) string {
	t.Helper()
	r := mustRun(t, nil, []string{"AUDITLEDGER_CLIENT_SECRET=" + user + "-dev-secret"}, "token", "--issuer", d.issuer, "--client-id", user)
	return strings.TrimSpace(r.stdout)
}

// TestDevReadme runs what the README shows: `auditledger dev` on fresh
// state, then emit the sample events and verify the log.
func TestDevReadme(t *testing.T) {
	d := startDev(t, nil)
	keys := filepath.Join(d.data, "nats-keys")
	// The stock nats CLI follows the records as they are sealed, with the
	// reader's seed, as the banner shows: subscribed before anything is.
	var subOut lockedBuffer
	sub := exec.Command(natstest.CLI(t), "--server", d.nats, "--nkey", filepath.Join(keys, "reader.nk"), "--inbox-prefix", "_INBOX_reader",
		"sub", "audit.live.acme.>", "--count", "12")
	sub.Stdout, sub.Stderr = &subOut, &subOut
	if err := sub.Start(); err != nil {
		t.Fatal(err)
	}
	subDone := make(chan error, 1)
	go func() { subDone <- sub.Wait() }()
	natstest.CheckFor(t, 20*time.Second, 20*time.Millisecond, func() error {
		if !strings.Contains(subOut.String(), "Subscribing on audit.live.acme.>") {
			return fmt.Errorf("nats sub not subscribed yet: %s", subOut.String())
		}
		return nil
	})
	// The bus takes no anonymous client, and names why.
	if r := run(t, mustReadSample(t), nil, "emit", "--nats", d.nats); r.code == 0 || !strings.Contains(r.stderr, "NATS refused the credentials") {
		t.Fatalf("emit without credentials: exit %d\n%s", r.code, r.stderr)
	}
	r := mustRun(t, mustReadSample(t), nil, "emit", "--nats", d.nats, "--nkey", filepath.Join(keys, "proxy.nk"))
	if !strings.Contains(r.stderr, "emitted 12 events stored by JetStream") || !strings.Contains(r.stderr, "0 of them it held already") {
		t.Fatalf("emit: %s", r.stderr)
	}
	select {
	case err := <-subDone:
		if n := strings.Count(subOut.String(), `"version":1`); err != nil || n != 12 {
			t.Fatalf("nats sub: %v, %d records, want 12:\n%s", err, n, subOut.String())
		}
	case <-time.After(30 * time.Second):
		sub.Process.Kill()
		t.Fatalf("nats sub saw fewer than 12 records in 30s:\n%s", subOut.String())
	}
	natstest.CheckFor(t, 30*time.Second, 100*time.Millisecond, func() error {
		v := run(t, nil, nil, "verify", "--store", d.store(), "--vkey", d.vkey())
		// The sample's 12 events, the writer's clock status, the
		// identity snapshot of dev's tenant and the API's attestation
		// of it.
		if n := contextRecords(t, d.store()); v.code != 0 || n < 2 || !strings.Contains(v.stdout, fmt.Sprintf("records      %d in", 12+n)) {
			return fmt.Errorf("verify: exit %d\n%s", v.code, v.stdout)
		}
		return nil
	})
	d.stop(t)
}

// TestDevProxyApprovalsPgbench is the whole write path as a user drives
// it: dev with its PostgreSQL proxy in front of a real database; pgbench
// through the proxy with an agent's OIDC token; a schema change by a DBA
// held until another person approves it with the CLI; then the verified
// ledger holds exactly one command.executed and one response.digest for
// every statement pgbench ran, and the approval story in order.
func TestDevProxyApprovalsPgbench(t *testing.T) {
	pg := targetPostgres(t)
	db := pg.NewDatabase(t)
	pg.InitPgbench(t, db)
	policy := filepath.Join(t.TempDir(), "policy.yaml")
	os.WriteFile(policy, []byte("version: 1\napprove:\n  - id: schema-change\n    kinds: [ALTER]\n    groups: [dba]\n    timeout: 2m\n"), 0o644)
	d := startDev(t, []string{"AUDITLEDGER_PROXY_UPSTREAM=" + pg.DSN(db)}, "--policy", policy)
	if d.proxy == "" {
		t.Fatal("dev did not start the postgres proxy")
	}
	host, port, _ := strings.Cut(d.proxy, ":")
	conninfo := func(user string) string {
		return "host=" + host + " port=" + port + " user=" + user + " dbname=" + db + " sslmode=disable"
	}
	agent, alice, bob := d.token(t, "agent"), d.token(t, "alice"), d.token(t, "bob")

	for _, args := range [][]string{{"-S", "-M", "simple"}, {"-M", "prepared"}, {"-M", "extended"}} {
		args = append(append([]string{"-n", "-c", "2", "-t", "25"}, args...), conninfo("agent"))
		cmd := exec.Command("pgbench", args...)
		cmd.Env = append(os.Environ(), "PGPASSWORD="+agent)
		if out, err := cmd.CombinedOutput(); err != nil || !strings.Contains(string(out), "number of failed transactions: 0") {
			t.Fatalf("pgbench %v: %v\n%s", args, err, out)
		}
	}

	stmt := "ALTER TABLE pgbench_branches ADD COLUMN note text"
	psql := exec.Command("psql", "-X", "-v", "ON_ERROR_STOP=1", "-c", stmt, conninfo("alice"))
	psql.Env = append(os.Environ(), "PGPASSWORD="+alice)
	var psqlOut strings.Builder
	psql.Stdout, psql.Stderr = &psqlOut, &psqlOut
	if err := psql.Start(); err != nil {
		t.Fatal(err)
	}
	psqlDone := make(chan error, 1)
	go func() { psqlDone <- psql.Wait() }()

	bobEnv := []string{"AUDITLEDGER_TOKEN=" + bob}
	pending := onePending(t, d, bobEnv)
	id := pending.ID
	if pending.Statement != stmt || pending.Requester.Subject != "alice" {
		t.Fatalf("pending request %+v", pending)
	}
	if r := mustRun(t, nil, bobEnv, "approvals", "list", "--api", d.api); !strings.Contains(r.stdout, id) || !strings.Contains(r.stdout, "alice") {
		t.Errorf("approvals list table:\n%s", r.stdout)
	}
	if r := run(t, nil, []string{"AUDITLEDGER_TOKEN=" + alice}, "approvals", "approve", id, "--api", d.api); r.code == 0 || !strings.Contains(r.stderr, "needs the role approver") {
		t.Errorf("alice (dba, not approver) approving: exit %d %s", r.code, r.stderr)
	}
	if r := run(t, nil, bobEnv, "approvals", "approve", id, "--api", d.api, "--sha256", "00000000"); r.code == 0 || !strings.Contains(r.stderr, "nothing decided") {
		t.Errorf("approving with the wrong digest: exit %d %s", r.code, r.stderr)
	}
	if r := run(t, nil, nil, "approvals", "approve", id, "--api", d.api); r.code == 0 || !strings.Contains(r.stderr, "AUDITLEDGER_TOKEN") {
		t.Errorf("approving without a token: exit %d %s", r.code, r.stderr)
	}
	if r := mustRun(t, nil, bobEnv, "approvals", "approve", id, "--api", d.api, "--sha256", approvals.Digest(stmt)[:12], "--reason", "CHG-1"); !strings.Contains(r.stdout, id+" granted by bob") {
		t.Errorf("approve: %s", r.stdout)
	}
	if err := <-psqlDone; err != nil || !strings.Contains(psqlOut.String(), "held for approval "+id) {
		t.Fatalf("psql after approval: %v\n%s", err, psqlOut.String())
	}

	commands, digests := map[string]string{}, map[string]int{}
	var story []string
	for _, s := range d.drainStopAndRead(t) {
		ev, p := s.Event, s.Payload
		switch ev.Type {
		case events.CommandExecuted:
			commands[ev.ID] = p["statement"].(string)
			if p["statement"] == stmt {
				story = append(story, "executed by "+ev.Actor.Subject)
			}
		case events.ResponseDigest:
			digests[p["command_id"].(string)]++
		case events.ApprovalRequested:
			story = append(story, "requested by "+ev.Actor.Subject)
		case events.ApprovalGranted:
			story = append(story, "granted by "+ev.Actor.Subject)
			if p["statement_sha256"] != approvals.Digest(stmt) || p["reason"] != "CHG-1" {
				t.Errorf("approval.granted payload %v", p)
			}
		}
	}
	// select-only: 1 statement a transaction; TPC-B-like: 7; 2 clients ×
	// 25 transactions; three runs.
	tx := 0
	for id, s := range commands {
		if digests[id] != 1 {
			t.Errorf("statement %q has %d digests in the ledger, want 1", s, digests[id])
		}
		u := strings.ToUpper(strings.TrimSpace(s))
		for _, p := range []string{"BEGIN", "END", "UPDATE PGBENCH_", "SELECT ABALANCE", "INSERT INTO PGBENCH_HISTORY"} {
			if strings.HasPrefix(u, p) {
				tx++
				break
			}
		}
	}
	if want := 2 * 25 * (1 + 7 + 7); tx != want {
		t.Errorf("%d pgbench transaction statements in the ledger, want %d", tx, want)
	}
	if got := strings.Join(story, ", "); got != "requested by alice, granted by bob, executed by alice" {
		t.Errorf("approval story in the ledger: %s", got)
	}
	// Everything dev's proxy and API recorded is attested by their
	// producer key, and checks offline with the registry.
	v := mustRun(t, nil, nil, "verify", "--store", d.store(), "--vkey", d.vkey(), "--producers", filepath.Join(d.data, "keys", "producer.vkey"))
	if !strings.Contains(v.stdout, "0 not attested") || strings.Contains(v.stdout, " 0 event(s) attested") {
		t.Errorf("verify --producers:\n%s", v.stdout)
	}
}

// lockedBuffer collects a child process's output while the test reads it.
type lockedBuffer struct {
	mu sync.Mutex
	b  strings.Builder
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

// onePending waits until the approvals API of d lists exactly one pending
// request, asking through the CLI as the approver env names, and returns it.
func onePending(t *testing.T, d *devRun, env []string) approvals.Request {
	t.Helper()
	var list []approvals.Request
	natstest.CheckFor(t, 20*time.Second, 50*time.Millisecond, func() error {
		r := mustRun(t, nil, env, "approvals", "list", "--api", d.api, "--json")
		list = nil
		json.Unmarshal([]byte(r.stdout), &list)
		if len(list) != 1 {
			return fmt.Errorf("pending: %s", r.stdout)
		}
		return nil
	})
	return list[0]
}

// TestDevBusyPortNamed: a busy port stops dev before anything starts
// (no NATS store, no PostgreSQL cluster), naming the port and the flag
// that moves it.
func TestDevBusyPortNamed(t *testing.T) {
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	_, port, _ := net.SplitHostPort(busy.Addr().String())
	data := filepath.Join(t.TempDir(), "data")
	r := run(t, nil, nil, "dev", "--data", data, "--nats-port", "-1", "--http", "127.0.0.1:0", "--oidc", "127.0.0.1:0",
		"--api", busy.Addr().String(), "--postgres-port", "0")
	want := "port " + port + " is in use (flag --api, now " + busy.Addr().String() + "): choose another"
	if r.code == 0 || !strings.Contains(r.stderr, want) {
		t.Fatalf("dev with --api on a busy port: exit %d\nstderr: %s\nwant %q", r.code, r.stderr, want)
	}
	for _, d := range []string{"nats", "postgres", "store"} {
		if _, err := os.Stat(filepath.Join(data, d)); err == nil {
			t.Errorf("%s was created before the busy port was found", filepath.Join(data, d))
		}
	}
}

// TestDevPostgresClusterNotLeftBehind: as root, with a data directory the
// postgres user cannot enter (below a 0700 directory), dev's projection
// cluster is a temporary one, removed when dev stops, and nothing is
// added to the postgres user's home (where clusters used to pile up, one
// per data directory, never removed).
func TestDevPostgresClusterNotLeftBehind(t *testing.T) {
	if os.Geteuid() != 0 {
		// Not root: the server runs as this user, in the data directory.
		d := startDevAt(t, filepath.Join(t.TempDir(), "data"), nil)
		if _, err := os.Stat(filepath.Join(d.data, "postgres", "data", "PG_VERSION")); err != nil {
			t.Fatalf("not root, dev's cluster is not in its data directory: %v", err)
		}
		return
	}
	pgUser, err := user.Lookup("postgres")
	if err != nil {
		t.Fatal(err)
	}
	legacy := filepath.Join(pgUser.HomeDir, "auditledger-dev")
	before, _ := os.ReadDir(legacy)
	closed := t.TempDir() // 0700: the postgres user cannot pass through
	d := startDevAt(t, filepath.Join(closed, "data"), nil)
	m := regexp.MustCompile(`temporary cluster.*cluster=(\S+)`).FindStringSubmatch(d.stderr.String())
	if m == nil {
		t.Fatalf("dev did not say its projection cluster is temporary:\n%s", d.stderr.String())
	}
	cluster := m[1]
	if !strings.HasPrefix(cluster, os.TempDir()) {
		t.Errorf("the temporary cluster %s is not under %s", cluster, os.TempDir())
	}
	if _, err := os.Stat(filepath.Join(cluster, "data", "PG_VERSION")); err != nil {
		t.Fatalf("no cluster in %s while dev runs: %v", cluster, err)
	}
	// The read path answers (the projector has migrated its schema: a stop
	// during the migration ends dev with its error) before the stop.
	mustRun(t, mustReadSample(t), nil, "emit", "--nats", d.nats, "--nkey", filepath.Join(d.data, "nats-keys", "proxy.nk"))
	carol := d.token(t, "carol")
	natstest.CheckFor(t, 60*time.Second, 200*time.Millisecond, func() error {
		if code, body := apiGet(t, d.api, carol, "/v1/events?tenant=acme"); code != 200 || sampleEvents(body) != 12 {
			return fmt.Errorf("/v1/events: %d %.300s", code, body)
		}
		return nil
	})
	d.stop(t)
	if _, err := os.Stat(cluster); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the temporary cluster %s is still there after dev stopped: %v", cluster, err)
	}
	if after, _ := os.ReadDir(legacy); len(after) != len(before) {
		t.Errorf("%s went from %d to %d entries", legacy, len(before), len(after))
	}
}

// TestDevStopDuringStartup stops dev (SIGTERM, as Ctrl-C or a service
// manager does) at several moments of its start-up, each found by the line
// dev prints there: a stop is a clean exit at any moment, and the next dev
// on the same data directory starts, brings the projection's schema up to
// date and seals a log that verifies.
func TestDevStopDuringStartup(t *testing.T) {
	for _, at := range []struct{ name, line string }{
		{"first line", "created signing key"},                                 // keys made; PostgreSQL not started yet
		{"postgres up", "projection database up"},                             // before NATS and the roles
		{"roles preparing", "connected to the bus"},                           // the first role's prepare
		{"projection migrating", "projector: bringing the schema up to date"}, // goose under way
		{"writer running", "lease acquired: this process is the writer"},      // the banner follows
	} {
		t.Run(strings.ReplaceAll(at.name, " ", "-"), func(t *testing.T) {
			dir := t.TempDir()
			for _, d := range []string{filepath.Dir(dir), dir} {
				if err := os.Chmod(d, 0o711); err != nil {
					t.Fatal(err)
				}
			}
			data := filepath.Join(dir, "data")
			stopDevAtLine(t, data, at.line)
			d := startDevAt(t, data, nil)
			waitStderr(t, d, "projector: the store verifies")
			mustRun(t, mustReadSample(t), nil, "emit", "--nats", d.nats, "--nkey", filepath.Join(d.data, "nats-keys", "proxy.nk"))
			if got := d.drainStopAndRead(t); len(got) == 0 {
				t.Fatal("the restarted dev sealed nothing")
			}
		})
	}
}

// stopDevAtLine starts dev on data, sends it SIGTERM as soon as it prints
// a line holding line (stdout or stderr), and expects a clean exit.
func stopDevAtLine(t *testing.T, data, line string) {
	t.Helper()
	cmd := exec.Command(binary, "dev", "--data", data, "--nats-port", "-1", "--http", "127.0.0.1:0",
		"--api", "127.0.0.1:0", "--oidc", "127.0.0.1:0", "--proxy", "127.0.0.1:0", "--proxy-http", "127.0.0.1:0", "--postgres-port", "0")
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	errp, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var all lockedBuffer
	lines := make(chan string, 100)
	var readers sync.WaitGroup
	for _, r := range []interface{ Read([]byte) (int, error) }{out, errp} {
		readers.Go(func() {
			sc := bufio.NewScanner(r)
			for sc.Scan() {
				all.Write([]byte(sc.Text() + "\n"))
				select {
				case lines <- sc.Text():
				default: // past the hook nobody reads them
				}
			}
		})
	}
	timeout := time.After(90 * time.Second)
	for seen := false; !seen; {
		select {
		case l := <-lines:
			seen = strings.Contains(l, line)
		case <-timeout:
			cmd.Process.Kill()
			cmd.Wait()
			t.Fatalf("dev printed no line with %q within 90s:\n%s", line, all.String())
		}
	}
	cmd.Process.Signal(syscall.SIGTERM)
	readers.Wait()
	err = cmd.Wait()
	(&devRun{data: data}).waitPostgresGone(t)
	if err != nil {
		t.Fatalf("dev stopped at %q: %v, want a clean exit:\n%s", line, err, all.String())
	}
}

// waitStderr waits until dev has logged a line holding s.
func waitStderr(t *testing.T, d *devRun, s string) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for !strings.Contains(d.stderr.String(), s) {
		if time.Now().After(deadline) {
			t.Fatalf("dev did not log %q within 60s:\n%s", s, d.stderr.String())
		}
		time.Sleep(50 * time.Millisecond) // polling dev's log, with a deadline
	}
}
