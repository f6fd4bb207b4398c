package httpproxy_test

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/auditledger/auditledger/events"
	"github.com/auditledger/auditledger/ledger/bus/emitter"
	"github.com/auditledger/auditledger/services/access/accesstest"
	"github.com/auditledger/auditledger/services/httpproxy"
	"github.com/auditledger/auditledger/test/natstest"
)

const accessPolicy = `version: 2
access:
  - id: orders-api
    targets: [orders-api]
    approvers: {groups: [approver]}
    max_duration: 2h
`

func startAccess(t *testing.T) (*fixture, *accesstest.Rig) {
	t.Helper()
	var rig *accesstest.Rig
	f := startWith(t, startUpstream(t), accessPolicy, func(c *httpproxy.Config, js jetstream.JetStream, em *emitter.Emitter) {
		rig = accesstest.Start(t, js, em, accessPolicy, time.Minute)
		c.Access, c.AccessTick = rig.Watcher, 20*time.Millisecond
	})
	return f, rig
}

func (f *fixture) curl(t *testing.T, user, path string) *exec.Cmd {
	return exec.Command("curl", "-sS", "-N", "--fail-with-body", "-H", "Authorization: Bearer "+f.tokens[user], f.proxy.URL+path)
}

func TestAccessGrantWithCurl(t *testing.T) {
	f, rig := startAccess(t)
	alice := events.Actor{Issuer: f.issuer, Subject: "alice", Kind: events.Human}
	bob := events.Actor{Issuer: f.issuer, Subject: "bob", Kind: events.Human, Groups: []string{"approver"}}
	out, err := f.curl(t, "alice", "/api/orders").CombinedOutput()
	if err == nil || !strings.Contains(string(out), "access refused") {
		t.Fatalf("curl without a grant: %v\n%s", err, out)
	}
	if f.up.hits.Load() != 0 {
		t.Fatal("a request without a grant reached the upstream")
	}
	g := rig.Grant(t, "acme", alice, bob, "orders-api", time.Hour)
	if out, err := f.curl(t, "alice", "/api/orders").CombinedOutput(); err != nil || !strings.Contains(string(out), "ok GET /api/orders") {
		t.Fatalf("curl inside the grant: %v\n%s", err, out)
	}

	// A response still streaming at the grant's end is cut.
	stream := f.curl(t, "alice", "/api/stream")
	stdout, _ := stream.StdoutPipe()
	if err := stream.Start(); err != nil {
		t.Fatal(err)
	}
	lines := bufio.NewScanner(stdout)
	if !lines.Scan() || lines.Text() != "tick" {
		t.Fatalf("stream did not start: %q", lines.Text())
	}
	rig.Clock.Set(g.NotAfter)
	moved := time.Now()
	for lines.Scan() {
	}
	err = stream.Wait()
	t.Logf("grant end → curl's stream ended after %s (enforcement tick 20ms)", time.Since(moved))
	if err == nil {
		t.Fatal("curl's stream ended cleanly; want it cut")
	}
	if out, err := f.curl(t, "alice", "/api/orders").CombinedOutput(); err == nil || !strings.Contains(string(out), "access refused") {
		t.Fatalf("curl after the grant's end: %v\n%s", err, out)
	}
	natstest.CheckFor(t, 5*time.Second, 20*time.Millisecond, func() error {
		for _, r := range f.events(t) {
			if r.ev.Type == events.SessionEnded && r.payload["access_id"] == g.ID && strings.Contains(fmt.Sprint(r.payload["end_reason"]), "ended at") {
				return nil
			}
		}
		return errors.New("no session.ended naming the grant's end")
	})

	// Revocation cuts a stream at once.
	g2 := rig.Grant(t, "acme", alice, bob, "orders-api", time.Hour)
	stream = f.curl(t, "alice", "/api/stream")
	stdout, _ = stream.StdoutPipe()
	if err := stream.Start(); err != nil {
		t.Fatal(err)
	}
	lines = bufio.NewScanner(stdout)
	if !lines.Scan() {
		t.Fatal("stream did not start")
	}
	revoked := time.Now()
	if _, err := rig.Broker.Revoke(t.Context(), g2.ID, bob, "done"); err != nil {
		t.Fatal(err)
	}
	for lines.Scan() {
	}
	if err := stream.Wait(); err == nil {
		t.Fatal("curl's stream survived the revocation")
	}
	t.Logf("revocation → curl's stream ended after %s", time.Since(revoked))

	// A connection kept alive after its exchange is closed when the
	// grant it was admitted on ends, not left open until its next
	// request is refused.
	g3 := rig.Grant(t, "acme", alice, bob, "orders-api", time.Hour)
	conn, err := net.Dial("tcp", strings.TrimPrefix(f.proxy.URL, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	fmt.Fprintf(conn, "GET /api/orders HTTP/1.1\r\nHost: orders\r\nAuthorization: Bearer %s\r\n\r\n", f.tokens["alice"])
	br := bufio.NewReader(conn)
	resp, err := http.ReadResponse(br, nil)
	if err != nil || resp.StatusCode != http.StatusOK || resp.Close {
		t.Fatalf("a kept-alive exchange inside the grant: %v %+v", err, resp)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	rig.Clock.Set(g3.NotAfter)
	moved = time.Now()
	conn.SetReadDeadline(time.Now().Add(30 * time.Second)) // a bound on the wait, not a measure
	if n, err := br.Read(make([]byte, 1)); !errors.Is(err, io.EOF) {
		t.Fatalf("the kept-alive connection after the grant's end: read %d, %v; want it closed by the gateway", n, err)
	}
	t.Logf("grant end → the idle kept-alive connection closed after %s", time.Since(moved))
}
