package natstest

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/auditledger/auditledger/ledger/bus"
	"github.com/auditledger/auditledger/ledger/bus/nkeyauth"
	"github.com/auditledger/auditledger/test/testnet"
)

// nodeEnv carries a node's settings to a test binary run as a cluster node.
const nodeEnv = "NATSTEST_CLUSTER_NODE"

// node is what a process cluster node needs to know.
type node struct {
	Name, StoreDir, KeysDir string
	Port, ClusterPort       int
	Routes                  []string
}

// RunNodeIfAsked makes this test binary a cluster node of
// StartProcessCluster, and never returns then; otherwise it returns at
// once. A TestMain that uses StartProcessCluster calls it first.
func RunNodeIfAsked() {
	spec := os.Getenv(nodeEnv)
	if spec == "" {
		return
	}
	var n node
	if err := json.Unmarshal([]byte(spec), &n); err != nil {
		fmt.Fprintln(os.Stderr, "natstest node:", err)
		os.Exit(2)
	}
	pubs, err := nkeyauth.Load(n.KeysDir)
	if err != nil {
		fmt.Fprintln(os.Stderr, "natstest node:", err)
		os.Exit(2)
	}
	var routes []*url.URL
	for _, r := range n.Routes {
		u, _ := url.Parse(r)
		routes = append(routes, u)
	}
	s, err := server.NewServer(&server.Options{
		ServerName: n.Name, Host: "127.0.0.1", Port: n.Port,
		JetStream: true, StoreDir: n.StoreDir, NoSigs: true, NoLog: true,
		Cluster: server.ClusterOpts{Name: "auditledger-test", Host: "127.0.0.1", Port: n.ClusterPort},
		Routes:  routes,
		Nkeys:   nkeyauth.Users(pubs),
	})
	if err != nil {
		fmt.Fprintln(os.Stderr, "natstest node:", err)
		os.Exit(2)
	}
	s.Start()
	// Until killed, or until the test process is gone: it holds the other
	// end of stdin, which the system closes when it dies (a panic runs
	// no cleanup).
	io.Copy(io.Discard, os.Stdin)
	os.Exit(0)
}

// ProcessCluster is a JetStream cluster whose nodes are processes (this
// test binary, run as a node), so that a test can kill one as a crash
// would: no leader steps down, no connection is closed cleanly.
type ProcessCluster struct {
	KeysDir string // the bus roles' seeds; every node requires them
	nodes   map[string]*exec.Cmd
	urls    []string
}

// StartProcessCluster runs n nodes named n1..nN and waits until each
// accepts connections. The test binary's TestMain must call
// RunNodeIfAsked.
func StartProcessCluster(t testing.TB, n int) *ProcessCluster {
	t.Helper()
	c := &ProcessCluster{KeysDir: t.TempDir(), nodes: map[string]*exec.Cmd{}}
	if _, err := nkeyauth.Generate(c.KeysDir); err != nil {
		t.Fatal(err)
	}
	clusterPorts := make([]int, n)
	var routes []string
	for i := range clusterPorts {
		clusterPorts[i] = testnet.Port(t)
		routes = append(routes, fmt.Sprintf("nats://127.0.0.1:%d", clusterPorts[i]))
	}
	for i := range n {
		nd := node{Name: fmt.Sprintf("n%d", i+1), StoreDir: t.TempDir(), KeysDir: c.KeysDir,
			Port: testnet.Port(t), ClusterPort: clusterPorts[i], Routes: routes}
		spec, _ := json.Marshal(nd)
		cmd := exec.Command(os.Args[0], "-test.run=^$")
		cmd.Env = append(os.Environ(), nodeEnv+"="+string(spec))
		logf, err := os.Create(filepath.Join(t.TempDir(), nd.Name+".log"))
		if err != nil {
			t.Fatal(err)
		}
		cmd.Stdout, cmd.Stderr = logf, logf
		alive, err := cmd.StdinPipe()
		if err != nil {
			t.Fatal(err)
		}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			cmd.Process.Kill()
			cmd.Wait()
			alive.Close()
			logf.Close()
		})
		c.nodes[nd.Name] = cmd
		c.urls = append(c.urls, "nats://127.0.0.1:"+strconv.Itoa(nd.Port))
	}
	// Generous: processes built with -race starting on busy CPUs.
	CheckFor(t, 60*time.Second, 50*time.Millisecond, func() error {
		for _, u := range c.urls {
			conn, err := net.DialTimeout("tcp", strings.TrimPrefix(u, "nats://"), time.Second)
			if err != nil {
				return fmt.Errorf("cluster node at %s: %w", u, err)
			}
			conn.Close()
		}
		return nil
	})
	nc, err := nats.Connect(c.URLs(), RoleOptions(t, c.KeysDir, bus.Admin)...)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	CheckFor(t, 60*time.Second, 100*time.Millisecond, func() error {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_, err := js.AccountInfo(ctx)
		return err
	})
	return c
}

// URLs is the client URL list of every node, for clients that fail over.
func (c *ProcessCluster) URLs() string { return strings.Join(c.urls, ",") }

// Kill kills the node named name with SIGKILL and waits for it to exit.
func (c *ProcessCluster) Kill(t testing.TB, name string) {
	t.Helper()
	cmd, ok := c.nodes[name]
	if !ok {
		t.Fatalf("no cluster node %q", name)
	}
	if err := cmd.Process.Kill(); err != nil {
		t.Fatalf("killing %s: %v", name, err)
	}
	cmd.Wait()
}
