package console_test

import (
	"fmt"
	"html"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/auditledger/auditledger/events"
	"github.com/auditledger/auditledger/ledger/bus"
	"github.com/auditledger/auditledger/ledger/bus/emitter"
	"github.com/auditledger/auditledger/projections"
	"github.com/auditledger/auditledger/services/api"
	"github.com/auditledger/auditledger/services/gateway"
	"github.com/auditledger/auditledger/test/natstest"
)

// TestHealthPage: the newest checkpoint, the last full verification and
// the other processes (a writer's lease, a forwarder that does not pull,
// the projector, for a person whose scope covers every tenant; withheld,
// said so, from one tenant's auditor; the producers of the person's
// tenants, with a running gateway's heartbeat: alive, then stopped), each
// the API's recorded read; a person without the read roles is refused.
func TestHealthPage(t *testing.T) {
	f := newFixture(t)
	f.writerAndForwarder(t)
	// gw-1 runs, quiet: its heartbeat says so; gw-9 (acme) has recorded
	// nothing yet.
	gw1 := f.quietGateway(t, "postgres-proxy", "gw-1")
	f.quietGateway(t, "ssh-proxy", "gw-9")
	carol := f.signIn(t, "carol", "carol-secret")
	var status int
	var body string
	natstest.CheckFor(t, 30*time.Second, 50*time.Millisecond, func() error {
		status, body = get(t, carol, f.srv.URL+"/console/health")
		if !strings.Contains(body, `<td>ssh-proxy</td><td>gw-9</td>`) {
			return fmt.Errorf("no heartbeat of gw-9 shown yet")
		}
		return nil
	})
	if status != 200 || !strings.Contains(body, "console.test/log") || !strings.Contains(body, "no full verification has run yet") {
		t.Fatalf("the health page: %d %.3000s", status, body)
	}
	for _, want := range []string{`data-stale="0"`, `<p class="refusal" id="processes-withheld">Writers, forwarders and projectors not shown: writers&#39; leases, forwarders&#39; consumers and projectors&#39; cursors are the installation&#39;s`,
		`they need a scope over every tenant`, `<tr data-state="recent"><td>postgres-proxy</td><td>gw-1</td><td>acme</td>`,
		`<td data-liveness="alive">alive, last seen`, `<tr data-state="none"><td>ssh-proxy</td><td>gw-9</td><td>acme</td><td>no record yet</td>`} {
		if !strings.Contains(body, want) {
			t.Fatalf("carol's health page lacks %s: %.6000s", want, body[strings.Index(body, "processes-heading"):])
		}
	}
	for _, not := range []string{"globex", "writer-test", "forward-hec", `id="producers-truncated"`, `id="projectors"`} {
		if strings.Contains(body, not) {
			t.Fatalf("carol's health page names %s: %.6000s", not, body[strings.Index(body, "processes-heading"):])
		}
	}
	sam := f.signIn(t, "sam", "sam-secret")
	status, body = get(t, sam, f.srv.URL+"/console/health")
	if status != 200 {
		t.Fatalf("sam's health page: %d %.3000s", status, body)
	}
	for _, want := range []string{`data-stale="1"`, `<tr data-state="holding"><td>ledger</td><td>writer-test</td>`,
		`<tr data-state="stale"><td>forward-hec</td><td><strong class="bad">stale</strong> (not pulling)`,
		`<tr data-state="recent"><td>postgres-proxy</td><td>gw-1</td><td>acme, globex</td>`, `<table aria-labelledby="projectors-heading" id="projectors">`,
		`<td>default</td>`} {
		if !strings.Contains(body, want) {
			t.Fatalf("sam's health page lacks %s: %.6000s", want, body[strings.Index(body, "processes-heading"):])
		}
	}
	if strings.Contains(body, "processes-withheld") {
		t.Fatalf("sam's health page withholds the writers and forwarders")
	}
	natstest.CheckFor(t, 30*time.Second, 20*time.Millisecond, func() error {
		for _, s := range f.recorded(events.AuditAccessed) {
			if s.Payload["resource"] == "processes" && s.Event.Tenant == "acme" && s.Event.Actor.Subject == "carol" {
				return nil
			}
		}
		return fmt.Errorf("no audit.accessed of the processes under acme")
	})
	if _, err := projections.VerifyNow(t.Context(), projections.Config{DB: f.db, Store: f.store, Verifier: f.signer.Verifier()}); err != nil {
		t.Fatal(err)
	}
	before := countContaining(f.recorded(events.AuditAccessed), `"verify status"`)
	status, body = get(t, carol, f.srv.URL+"/console/health")
	body = html.UnescapeString(body)
	if status != 200 || !strings.Contains(body, `data-ok="true"`) || !strings.Contains(body, `<dd id="cp-size">`) {
		t.Fatalf("the health page after a verification: %d %.3000s", status, body)
	}
	if n := countContaining(f.recorded(events.AuditAccessed), `"verify status"`) - before; n != 1 {
		t.Fatalf("%d audit.accessed of the verification for one view", n)
	}
	// gw-1 closes: its last heartbeat says stopped.
	gw1.Close()
	natstest.CheckFor(t, 30*time.Second, 50*time.Millisecond, func() error {
		if _, body := get(t, carol, f.srv.URL+"/console/health"); !strings.Contains(body, `<td data-liveness="stopped">stopped, last seen`) {
			return fmt.Errorf("gw-1 not shown stopped")
		}
		return nil
	})
	alice := f.signIn(t, "alice", "alice-secret")
	if status, body := get(t, alice, f.srv.URL+"/console/health"); status != 403 || strings.Contains(body, "console.test/log") {
		t.Fatalf("alice's health page: %d %.1500s", status, body)
	}
}

// writerAndForwarder leaves on the bus what a writer and a forwarder
// leave: the lease of log "ledger" held by writer-test, and forwarder
// hec's durable consumer, which nothing pulls.
func (f *fixture) writerAndForwarder(t *testing.T) {
	t.Helper()
	kv, err := f.js.CreateOrUpdateKeyValue(t.Context(), jetstream.KeyValueConfig{Bucket: bus.LeaseBucket, TTL: time.Hour, History: 1})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := kv.Create(t.Context(), "ledger", []byte("writer-test")); err != nil {
		t.Fatal(err)
	}
	if _, err := f.js.CreateOrUpdateConsumer(t.Context(), bus.LedgerStream, jetstream.ConsumerConfig{Durable: bus.ForwarderDurable("hec"), AckPolicy: jetstream.AckExplicitPolicy}); err != nil {
		t.Fatal(err)
	}
}

// quietGateway runs a gateway of acme that records nothing, beating on
// the fixture's bus every 100 ms.
func (f *fixture) quietGateway(t *testing.T, kind, instance string) *gateway.Gateway {
	t.Helper()
	em, err := emitter.New(emitter.Config{JetStream: f.js, Timeout: 2 * time.Second, Retries: 1})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { em.Close() })
	g, err := gateway.New(gateway.Config{Name: "gw", Kind: kind, Instance: instance, Tenant: "acme", Emitter: em,
		Heartbeat: gateway.HeartbeatConfig{Interval: 100 * time.Millisecond, TTL: 10 * time.Second}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { g.Close() })
	if err := g.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	return g
}

// TestHealthPageTruncated: when the API's limit cuts the producers of
// the person's tenants, the page says that not every one is listed.
func TestHealthPageTruncated(t *testing.T) {
	f := newFixtureWith(t, nil, func(c *api.Config) { c.MaxProducers = 2 })
	carol := f.signIn(t, "carol", "carol-secret")
	status, body := get(t, carol, f.srv.URL+"/console/health")
	if status != 200 || !strings.Contains(body, `id="producers-truncated"`) || !strings.Contains(body, "Not every producer is listed") ||
		strings.Count(body, `<tr data-state="recent">`)+strings.Count(body, `<tr data-state="stale">`) != 2 {
		t.Fatalf("carol's health page, the API's limit 2: %d %.6000s", status, body[max(0, strings.Index(body, "processes-heading")):])
	}
}
