// Package natstest runs real in-process NATS servers with JetStream for
// tests, on free ports with file storage in the test's temporary directory;
// and clusters whose nodes are processes of the test binary, for tests
// that kill a node as a crash would (proc.go).
package natstest

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"

	"github.com/auditledger/auditledger/events"
	"github.com/auditledger/auditledger/ledger/bus"
	"github.com/auditledger/auditledger/ledger/bus/nkeyauth"
	"github.com/auditledger/auditledger/test/testnet"

	"fmt"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// Server is a running JetStream server.
type Server struct {
	*server.Server
	StoreDir string
	// KeysDir holds one nkey seed per bus role when the server requires
	// authentication (StartSecure); empty for an open server.
	KeysDir string
}

// Start runs a single JetStream server with file storage.
func Start(t testing.TB) *Server {
	t.Helper()
	return StartIn(t, t.TempDir(), -1)
}

// StartIn runs a server storing in dir on port (-1: any free port), so a
// test can stop it and start it again on the same state.
func StartIn(t testing.TB, dir string, port int) *Server {
	t.Helper()
	return start(t, dir, port, "")
}

// StartSecure runs a server that requires each bus role's nkey and grants
// each only its permissions, as dev and production do. Connect connects
// as the admin role; ConnectAs as any other.
func StartSecure(t testing.TB, producers ...string) *Server {
	t.Helper()
	return StartSecureIn(t, t.TempDir(), -1, t.TempDir(), producers...)
}

// StartSecureIn is StartSecure storing in dir on port, with the seeds in
// keysDir (created, or reused when a test restarts the server), and a
// Producer role for each of producers.
func StartSecureIn(t testing.TB, dir string, port int, keysDir string, producers ...string) *Server {
	t.Helper()
	return start(t, dir, port, keysDir, producers...)
}

func start(t testing.TB, dir string, port int, keysDir string, producers ...string) *Server {
	t.Helper()
	opts := &server.Options{Host: "127.0.0.1", Port: port, JetStream: true, StoreDir: dir, NoSigs: true, NoLog: true}
	if keysDir != "" {
		pubs, err := nkeyauth.Generate(keysDir, producers...)
		if err != nil {
			t.Fatal(err)
		}
		opts.Nkeys = nkeyauth.Users(pubs)
	}
	s, err := server.NewServer(opts)
	if err != nil {
		t.Fatal(err)
	}
	s.Start()
	if !s.ReadyForConnections(10 * time.Second) {
		t.Fatal("nats server not ready")
	}
	t.Cleanup(s.Shutdown)
	return &Server{Server: s, StoreDir: dir, KeysDir: keysDir}
}

// Connect returns a JetStream client for s, closed at the end of the test:
// as the admin role if s requires authentication.
func (s *Server) Connect(t testing.TB, opts ...nats.Option) (*nats.Conn, jetstream.JetStream) {
	t.Helper()
	if s.KeysDir != "" {
		return s.ConnectAs(t, bus.Admin, opts...)
	}
	return dial(t, s.ClientURL(), opts...)
}

// ConnectAs connects to a secure server with role's credentials.
func (s *Server) ConnectAs(t testing.TB, role bus.Principal, opts ...nats.Option) (*nats.Conn, jetstream.JetStream) {
	t.Helper()
	return dial(t, s.ClientURL(), append(RoleOptions(t, s.KeysDir, role), opts...)...)
}

// RoleOptions are the client options for role's seed in keysDir.
func RoleOptions(t testing.TB, keysDir string, role bus.Principal) []nats.Option {
	t.Helper()
	o, err := nkeyauth.Options(role, nkeyauth.SeedFile(keysDir, role))
	if err != nil {
		t.Fatal(err)
	}
	return o
}

func dial(t testing.TB, url string, opts ...nats.Option) (*nats.Conn, jetstream.JetStream) {
	t.Helper()
	nc, err := nats.Connect(url, opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	return nc, js
}

// CheckFor polls f until it returns nil or the deadline passes.
func CheckFor(t testing.TB, total, every time.Duration, f func() error) {
	t.Helper()
	deadline := time.Now().Add(total)
	var err error
	for time.Now().Before(deadline) {
		if err = f(); err == nil {
			return
		}
		time.Sleep(every)
	}
	t.Fatalf("condition not met after %v: %v", total, err)
}

// Cluster is a JetStream cluster of in-process servers.
type Cluster struct {
	Servers []*Server
	KeysDir string // the bus roles' seeds; every node requires them
}

// StartCluster runs n clustered JetStream servers and waits for a
// JetStream meta leader.
func StartCluster(t testing.TB, n int) *Cluster {
	t.Helper()
	ports := make([]int, n)
	for i := range ports {
		ports[i] = testnet.Port(t)
	}
	var routes []*url.URL
	for _, p := range ports {
		routes = append(routes, &url.URL{Scheme: "nats", Host: fmt.Sprintf("127.0.0.1:%d", p)})
	}
	c := &Cluster{KeysDir: t.TempDir()}
	pubs, err := nkeyauth.Generate(c.KeysDir)
	if err != nil {
		t.Fatal(err)
	}
	for i := range n {
		opts := &server.Options{
			ServerName: fmt.Sprintf("n%d", i+1), Host: "127.0.0.1", Port: -1,
			JetStream: true, StoreDir: t.TempDir(), NoSigs: true, NoLog: true,
			Cluster: server.ClusterOpts{Name: "auditledger-test", Host: "127.0.0.1", Port: ports[i]},
			Routes:  routes,
			Nkeys:   nkeyauth.Users(pubs),
		}
		s, err := server.NewServer(opts)
		if err != nil {
			t.Fatal(err)
		}
		s.Start()
		t.Cleanup(s.Shutdown)
		c.Servers = append(c.Servers, &Server{Server: s, StoreDir: opts.StoreDir, KeysDir: c.KeysDir})
	}
	for _, s := range c.Servers {
		// Generous: three servers starting on busy CPUs.
		if !s.ReadyForConnections(30 * time.Second) {
			t.Fatalf("cluster node %s not ready after 30s", s.Name())
		}
	}
	CheckFor(t, 30*time.Second, 50*time.Millisecond, func() error {
		for _, s := range c.Servers {
			if s.JetStreamIsLeader() {
				return nil
			}
		}
		return fmt.Errorf("no JetStream meta leader yet")
	})
	return c
}

// URLs is the client URL list of every server, for clients that fail over.
func (c *Cluster) URLs() string {
	var us []string
	for _, s := range c.Servers {
		us = append(us, s.ClientURL())
	}
	return strings.Join(us, ",")
}

// Stored is one event as JetStream stored it.
type Stored struct {
	Event   *events.Event
	Raw     []byte
	Payload map[string]any
}

// Events reads every message of stream (AUDIT_EVENTS by default) and
// parses it as an event, or as the events of a batch message, in stream
// order; an invalid one fails the test.
func Events(t testing.TB, js jetstream.JetStream, stream string) []Stored {
	t.Helper()
	if stream == "" {
		stream = "AUDIT_EVENTS"
	}
	var out []Stored
	eachMsg(t, js, stream, func(m *jetstream.RawStreamMsg) {
		seq := m.Sequence
		var err error
		raws := [][]byte{m.Data}
		if _, batch := bus.BatchProducer(m.Subject); batch {
			if raws, err = bus.SplitBatch(m.Data); err != nil {
				t.Fatalf("stored batch %d: %v", seq, err)
			}
		}
		for _, raw := range raws {
			ev, err := events.Parse(raw)
			if err != nil {
				t.Fatalf("stored event %d invalid: %v", seq, err)
			}
			var p map[string]any
			json.Unmarshal(ev.Payload, &p)
			out = append(out, Stored{ev, raw, p})
		}
	})
	return out
}

// CLIVersion is the stock nats CLI the tests drive as users do.
const CLIVersion = "v0.5.0"

var cli struct {
	once sync.Once
	path string
	err  error
}

// CLI returns the path of the stock nats CLI: $NATS_CLI, on $PATH, or in
// $(go env GOPATH)/bin, installed there with go install when missing, so
// "go test ./..." works on a fresh machine. A test that cannot get it
// fails.
func CLI(t testing.TB) string {
	t.Helper()
	cli.once.Do(func() {
		if cli.path, cli.err = findCLI(); cli.err == nil {
			return
		}
		out, err := exec.Command("go", "install", "github.com/nats-io/natscli/nats@"+CLIVersion).CombinedOutput()
		if err != nil {
			cli.err = fmt.Errorf("%v; installing it failed: %v\n%s", cli.err, err, out)
			return
		}
		cli.path, cli.err = findCLI()
	})
	if cli.err != nil {
		t.Fatal(cli.err)
	}
	return cli.path
}

func findCLI() (string, error) {
	if p := os.Getenv("NATS_CLI"); p != "" {
		return p, nil
	}
	if p, err := exec.LookPath("nats"); err == nil {
		return p, nil
	}
	gopath, _ := exec.Command("go", "env", "GOPATH").Output()
	p := filepath.Join(strings.TrimSpace(string(gopath)), "bin", "nats")
	if _, err := os.Stat(p); err == nil {
		return p, nil
	}
	return "", fmt.Errorf("the nats CLI is not installed: go install github.com/nats-io/natscli/nats@%s (or set NATS_CLI)", CLIVersion)
}

// Sealed is one record read back from AUDIT_LEDGER.
type Sealed struct {
	Index  uint64
	Record []byte
}

// LedgerRecords reads every record on AUDIT_LEDGER, in order, checking
// that the chunks' indexes are contiguous from 0.
func LedgerRecords(t testing.TB, js jetstream.JetStream) []Sealed {
	t.Helper()
	var out []Sealed
	eachMsg(t, js, "AUDIT_LEDGER", func(m *jetstream.RawStreamMsg) {
		seq := m.Sequence
		recs, err := bus.SplitRecords(m.Data)
		if err != nil {
			t.Fatal(err)
		}
		first, _ := strconv.ParseUint(m.Header.Get(bus.HeaderIndex), 10, 64)
		if first != uint64(len(out)) || m.Header.Get(bus.HeaderCount) != strconv.Itoa(len(recs)) {
			t.Fatalf("AUDIT_LEDGER message %d: records %s.. (%s), want %d.. (%d)", seq, m.Header.Get(bus.HeaderIndex), m.Header.Get(bus.HeaderCount), len(out), len(recs))
		}
		for i, r := range recs {
			out = append(out, Sealed{Index: first + uint64(i), Record: r})
		}
	})
	return out
}

// eachMsg calls fn with every message of stream, in order (none deleted
// in between: it skips what the stream no longer holds).
func eachMsg(t testing.TB, js jetstream.JetStream, stream string, fn func(*jetstream.RawStreamMsg)) {
	t.Helper()
	s, err := js.Stream(context.Background(), stream)
	if err != nil {
		t.Fatal(err)
	}
	info, err := s.Info(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	for seq := info.State.FirstSeq; seq <= info.State.LastSeq && info.State.Msgs > 0; seq++ {
		m, err := s.GetMsg(context.Background(), seq)
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		fn(m)
	}
}
