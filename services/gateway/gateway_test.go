package gateway_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/auditledger/auditledger/events"
	"github.com/auditledger/auditledger/ledger/bus"
	"github.com/auditledger/auditledger/ledger/bus/emitter"
	"github.com/auditledger/auditledger/services/gateway"
	"github.com/auditledger/auditledger/services/identity"
	"github.com/auditledger/auditledger/services/internal/policyfile"
	"github.com/auditledger/auditledger/services/pgproxy"
	"github.com/auditledger/auditledger/test/natstest"
)

// bus is a JetStream server with the audit streams, and an emitter on it.
type testBus struct {
	js jetstream.JetStream
	em *emitter.Emitter
}

func startBus(t testing.TB, streams bool) *testBus {
	t.Helper()
	srv := natstest.Start(t)
	_, js := srv.Connect(t, nats.MaxReconnects(-1))
	if streams {
		if err := bus.EnsureStreams(t.Context(), js, bus.StreamOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	em, err := emitter.New(emitter.Config{JetStream: js, Timeout: 500 * time.Millisecond, Retries: 1})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { em.Close() })
	return &testBus{js: js, em: em}
}

// stored waits until the bus holds n events and returns them.
func (b *testBus) stored(t *testing.T, n int) []natstest.Stored {
	t.Helper()
	var got []natstest.Stored
	natstest.CheckFor(t, 10*time.Second, 20*time.Millisecond, func() error {
		got = natstest.Events(t, b.js, "")
		if len(got) < n {
			return errors.New("not yet")
		}
		return nil
	})
	if len(got) != n {
		t.Fatalf("%d events stored, want %d", len(got), n)
	}
	return got
}

func newGateway(t testing.TB, em gateway.Recorder, mod func(*gateway.Config)) *gateway.Gateway {
	t.Helper()
	cfg := gateway.Config{Name: "testgw", Kind: "test-gateway", Tenant: "acme", Emitter: em}
	if mod != nil {
		mod(&cfg)
	}
	g, err := gateway.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { g.Close() })
	return g
}

var alice = gateway.Identity{Actor: events.Actor{Issuer: "https://idp.example", Subject: "alice", Groups: []string{"dba"}, Kind: events.Human},
	Method: gateway.SSHCertificate}

// A session numbers its events from 1, names them <session>.<seq>, and
// carries its identity and target; session.started names how the
// identity was established.
func TestSessionRecords(t *testing.T) {
	b := startBus(t, true)
	g := newGateway(t, b.em, nil)
	if err := g.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	s := g.Session(events.Target{Kind: "ssh", Name: "bastion"})
	s.RecordOrLog(t.Context(), events.AuthnFailed, map[string]any{"reason": "no certificate"})
	s.Authenticated(alice)
	if err := s.Start(t.Context(), map[string]any{"client_addr": "10.0.0.1:22"}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Record(t.Context(), events.CommandExecuted, map[string]any{"statement": "ls"}); err != nil {
		t.Fatal(err)
	}
	s.RecordAsync(t.Context(), events.ResponseDigest, map[string]any{"bytes": 3})
	s.End(t.Context(), map[string]any{"commands": 1})
	got := b.stored(t, 5)
	seen := map[uint64]natstest.Stored{}
	for _, st := range got {
		seen[st.Event.SessionSeq] = st
		if st.Event.SessionID != s.ID() || st.Event.ID != s.ID()+"."+strconv.FormatUint(st.Event.SessionSeq, 10) {
			t.Errorf("event %s of session %s seq %d: ids do not follow <session>.<seq>", st.Event.ID, st.Event.SessionID, st.Event.SessionSeq)
		}
		if _, ok := st.Payload["policy"]; ok {
			t.Errorf("%s carries a policy reference, with no policy in force", st.Event.Type)
		}
	}
	for seq, want := range map[uint64]events.Type{1: events.AuthnFailed, 2: events.SessionStarted, 3: events.CommandExecuted, 4: events.ResponseDigest, 5: events.SessionEnded} {
		if seen[seq].Event == nil || seen[seq].Event.Type != want {
			t.Fatalf("seq %d: %+v, want %s", seq, seen[seq].Event, want)
		}
	}
	if a := seen[1].Event.Actor; a.Subject != "unauthenticated" || a.Issuer != "testgw" {
		t.Errorf("authn.failed actor %+v, want testgw/unauthenticated", a)
	}
	if a := seen[3].Event.Actor; a.Subject != "alice" || seen[3].Event.Target.Name != "bastion" || seen[3].Event.Source.Kind != "test-gateway" {
		t.Errorf("command.executed: actor %+v target %+v source %+v", a, seen[3].Event.Target, seen[3].Event.Source)
	}
	if m := seen[2].Payload["auth_method"]; m != "ssh-certificate" {
		t.Errorf("session.started auth_method %v, want ssh-certificate", m)
	}
}

// Without a bus to store it, a record fails and says so: the caller
// refuses what it describes.
func TestRecordOrRefuse(t *testing.T) {
	b := startBus(t, false) // no streams: nothing can be stored
	g := newGateway(t, b.em, nil)
	s := g.Session(events.Target{Kind: "ssh"})
	s.Authenticated(alice)
	if _, err := s.Record(t.Context(), events.CommandExecuted, map[string]any{"statement": "rm -rf /"}); !errors.Is(err, gateway.ErrNotRecorded) {
		t.Fatalf("Record without a bus: %v, want ErrNotRecorded", err)
	}
	if err := s.Start(t.Context(), map[string]any{}); !errors.Is(err, gateway.ErrNotRecorded) {
		t.Fatalf("Start without a bus: %v, want ErrNotRecorded", err)
	}
	g2 := newGateway(t, b.em, func(c *gateway.Config) { c.Durability = gateway.BeforeResponse })
	s2 := g2.Session(events.Target{Kind: "ssh"})
	_, stored, err := s2.Command(t.Context(), map[string]any{"statement": "ls"})
	if err == nil {
		if err = <-stored; !errors.Is(err, gateway.ErrNotRecorded) {
			t.Fatalf("before-response command without a bus: %v, want ErrNotRecorded", err)
		}
	}
}

// testPolicy is a gateway's policy type as a gateway writes one: it
// embeds policyfile.Loaded, and its parser reports exemptions by
// omission.
type testPolicy struct {
	policyfile.Loaded
	rules int
}

func parseTestPolicy(name string, b []byte) (*testPolicy, error) {
	p := &testPolicy{rules: 1}
	p.Omissions = []policyfile.Omission{{Rule: "ddl", Kind: "approve", Groups: []string{"dba"}}}
	return p, nil
}

const policyText = "version: 1\napprove:\n  - id: ddl\n    kinds: [ALTER, CREATE, DROP]\n    groups: [dba]\n"

// writePolicy writes the test policy as policy.yaml in a directory of
// its own, the test's working directory, and returns its name as
// recorded: a temporary directory's path holds random digits, and one
// run in a hundred or so they make a number the detectors take for a
// card, which the record of the path replaces.
func writePolicy(t *testing.T) (string, string) {
	t.Helper()
	t.Chdir(t.TempDir())
	file := "policy.yaml"
	if err := os.WriteFile(file, []byte(policyText), 0o600); err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256([]byte(policyText))
	return file, hex.EncodeToString(sum[:])
}

// The policy in force is on record before the gateway serves
// (policy.loaded, with the exemptions it makes by omission), and every
// event of a session names it by version and digest.
func TestPolicyLoadedAndReferenced(t *testing.T) {
	b := startBus(t, true)
	file, sum := writePolicy(t)
	pol, err := gateway.LoadPolicy(file, parseTestPolicy)
	if err != nil {
		t.Fatal(err)
	}
	if src := pol.Source; src.File != file || src.Version != 1 || src.SHA256 != sum {
		t.Fatalf("LoadPolicy filled in %+v, want %s, version 1, %s", src, file, sum)
	}
	var logged bytes.Buffer
	g := newGateway(t, b.em, func(c *gateway.Config) {
		c.Policy, c.Logger = pol.Info(), slog.New(slog.NewTextHandler(&logged, nil))
	})
	if err := g.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(logged.String(), "level=WARN") || !strings.Contains(logged.String(), "policy migrate") {
		t.Errorf("a version-1 policy loaded without a warning to migrate it: %q", logged.String())
	}
	s := g.Session(events.Target{Kind: "postgres"})
	s.Authenticated(alice)
	if _, err := s.Record(t.Context(), events.CommandBlocked, map[string]any{"statement": "DROP TABLE t", "rule": "no-drop"}); err != nil {
		t.Fatal(err)
	}
	got := b.stored(t, 2)
	loaded, judged := got[0], got[1]
	if loaded.Event.Type != events.PolicyLoaded {
		t.Fatalf("first event %s, want policy.loaded", loaded.Event.Type)
	}
	om, _ := loaded.Payload["exemptions_by_omission"].([]any)
	if loaded.Payload["file"] != file || loaded.Payload["version"] != 1.0 || loaded.Payload["sha256"] != sum || len(om) != 1 ||
		om[0].(map[string]any)["rule"] != "ddl" {
		t.Errorf("policy.loaded payload %v", loaded.Payload)
	}
	ref, _ := judged.Payload["policy"].(map[string]any)
	if ref["version"] != 1.0 || ref["sha256"] != sum || len(ref) != 2 {
		t.Errorf("%s payload.policy = %v, want {version: 1, sha256: %s}", judged.Event.Type, judged.Payload["policy"], sum)
	}
}

// A gateway whose policy.loaded cannot be recorded does not start: the
// core's Start fails, and a PostgreSQL proxy serves no connection.
func TestPolicyLoadedRefusedDoesNotStart(t *testing.T) {
	b := startBus(t, false) // the bus stores nothing
	file, _ := writePolicy(t)
	pol, err := gateway.LoadPolicy(file, parseTestPolicy)
	if err != nil {
		t.Fatal(err)
	}
	g := newGateway(t, b.em, func(c *gateway.Config) { c.Policy = pol.Info() })
	if err := g.Start(t.Context()); !errors.Is(err, gateway.ErrNotRecorded) {
		t.Fatalf("Start: %v, want ErrNotRecorded", err)
	}

	pgPolicy := filepath.Join(t.TempDir(), "pg.yaml")
	os.WriteFile(pgPolicy, []byte("version: 1\ndeny:\n  - id: no-drop\n    kinds: [DROP]\n    reason: no\n"), 0o600)
	pp, err := pgproxy.LoadPolicy(pgPolicy)
	if err != nil {
		t.Fatal(err)
	}
	px, err := pgproxy.New(pgproxy.Config{Upstream: "postgres://u@127.0.0.1:1/db", Auth: identity.StaticUsers{"a": "b"},
		Emitter: b.em, Tenant: "acme", Policy: pp})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	if err := px.Serve(ctx, ln); !errors.Is(err, gateway.ErrNotRecorded) {
		t.Fatalf("Serve: %v, want ErrNotRecorded", err)
	}
	if c, err := net.Dial("tcp", ln.Addr().String()); err == nil {
		c.Close()
		t.Fatal("the proxy's listener accepts connections after it refused to start")
	}
}

// A gateway refuses a policy that names no file and digest: what it
// enforces must be on record.
func TestPolicyWithoutSourceRefused(t *testing.T) {
	b := startBus(t, false)
	_, err := gateway.New(gateway.Config{Name: "x", Kind: "x", Tenant: "acme", Emitter: b.em, Policy: &policyfile.Loaded{}})
	if !errors.Is(err, gateway.ErrConfig) {
		t.Fatalf("New: %v, want ErrConfig", err)
	}
}

// The target's names can come from the client (the database a PostgreSQL
// client names before it authenticates): they pass the detectors too.
func TestTargetNamesScrubbed(t *testing.T) {
	b := startBus(t, true)
	g := newGateway(t, b.em, nil)
	s := g.Session(events.Target{Kind: "postgres", Name: "orders", Database: "jane@example.com"})
	s.RecordOrLog(t.Context(), events.AuthnFailed, map[string]any{"reason": "no such database"})
	s.RecordOrLog(t.Context(), events.AuthnFailed, map[string]any{"reason": "no such database"})
	// The session judges its target once; a new target (SetTarget) is
	// judged anew, and so is the one before when it comes back.
	s.SetTarget(events.Target{Kind: "postgres", Name: "orders", Host: "4111 1111 1111 1111", Database: "orders"})
	s.RecordOrLog(t.Context(), events.AuthnFailed, map[string]any{"reason": "no such database"})
	s.SetTarget(events.Target{Kind: "postgres", Name: "orders", Database: "jane@example.com"})
	s.RecordOrLog(t.Context(), events.AuthnFailed, map[string]any{"reason": "no such database"})
	got := b.stored(t, 4)
	for i, want := range []events.Target{
		{Kind: "postgres", Name: "orders", Database: "[REDACTED:email]"},
		{Kind: "postgres", Name: "orders", Database: "[REDACTED:email]"},
		{Kind: "postgres", Name: "orders", Host: "[REDACTED:credit_card]", Database: "orders"},
		{Kind: "postgres", Name: "orders", Database: "[REDACTED:email]"},
	} {
		if tg := got[i].Event.Target; tg == nil || *tg != want {
			t.Errorf("event %d: recorded target %+v, want %+v", i+1, got[i].Event.Target, want)
		}
	}
}
