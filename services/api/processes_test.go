package api_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/auditledger/auditledger/events"
	"github.com/auditledger/auditledger/ledger"
	"github.com/auditledger/auditledger/ledger/bus"
	"github.com/auditledger/auditledger/services/api"
	"github.com/auditledger/auditledger/test/natstest"
)

func (f *readFixture) processes(t *testing.T, query, token string) (int, api.ProcessesReport, api.Problem) {
	t.Helper()
	code, _, body := f.get(t, "/v1/processes"+query, token)
	var rep api.ProcessesReport
	var p api.Problem
	if code == 200 {
		if err := json.Unmarshal([]byte(body), &rep); err != nil {
			t.Fatalf("GET /v1/processes%s: %v: %s", query, err, body)
		}
	} else {
		json.Unmarshal([]byte(body), &p)
	}
	return code, rep, p
}

// GET /v1/processes: the producers heard from (of the caller's tenants
// only, chosen before the limit counts, truncated said), flagged stale
// past stale_after; with a bus, read with the API's own bus credentials,
// each writer's lease and each forwarder's consumer (pulling, or stale
// when nothing pulls), for a scope over every tenant only — withheld, and
// said so, from a tenant's auditor; refusals and the record of each read.
func TestProcesses(t *testing.T) {
	// globex: three producers, more than the limit below.
	var more []ledger.Entry
	for i := range 3 {
		more = append(more, ledger.Entry{Event: fmt.Appendf(nil, `{"version":1,"id":"gx-%d","type":"command.executed","time":"2026-11-26T12:01:00Z","tenant":"globex","source":{"kind":"http-proxy","instance":"g%d"},"actor":{"issuer":"https://idp.example","subject":"gus","kind":"human"},"payload":{}}`, i, i)})
	}
	f := newReadFixture(t, more...)
	carol, gina, olga := f.tokens["carol"], f.tokens["gina"], f.tokens["olga"]

	code, rep, p := f.processes(t, "", carol)
	if code != 200 || len(rep.Producers) != 1 || rep.Producers[0].Kind != "postgres-proxy" || rep.Producers[0].Instance != "p1" ||
		fmt.Sprint(rep.Producers[0].Tenants) != "[acme]" || rep.Producers[0].Index != 39 || rep.Producers[0].State != "recent" {
		t.Fatalf("carol's processes: %d %+v %v", code, rep, p)
	}
	if rep.Writers != nil || rep.Forwarders != nil || rep.Projectors != nil || rep.LogSize != nil || !strings.Contains(rep.Withheld, "scope over every tenant") ||
		!strings.Contains(rep.Bus, "no bus") || rep.Truncated || rep.Producers[0].Liveness != "none" || rep.Producers[0].Heartbeat != nil {
		t.Errorf("carol (acme): %+v, want writers, forwarders and projectors withheld, said so, and no liveness without a bus, said so", rep)
	}
	if code, rep, _ := f.processes(t, "", olga); code != 200 || rep.Bus == "" || rep.Writers == nil || len(rep.Writers) != 0 || len(rep.Forwarders) != 0 || rep.Withheld != "" || len(rep.Producers) != 4 ||
		len(rep.Projectors) != 1 || rep.Projectors[0].Size == 0 || rep.Projectors[0].State != "unknown" || rep.Projectors[0].Lag != nil || rep.LogSize != nil {
		t.Errorf("olga (every tenant) without a bus: %d %+v, want the reason, no writer or forwarder, four producers, the projector with its lag unknown", code, rep)
	}
	if code, rep, _ := f.processes(t, "", gina); code != 200 || len(rep.Producers) != 3 || rep.Producers[0].Instance != "g0" || rep.Writers != nil || rep.Withheld == "" {
		t.Errorf("gina (globex): %d %+v, want globex's three producers only", code, rep)
	}
	for _, c := range []struct {
		name, query, token string
		code               int
		param              string
	}{
		{"no role", "", f.tokens["alice"], 403, ""},
		{"no tenant", "", f.tokens["uma"], 403, ""},
		{"no token", "", "", 401, ""},
		{"bad stale_after", "?stale_after=soon", carol, 400, "stale_after"},
		{"stale_after too short", "?stale_after=1ms", carol, 400, "stale_after"},
		{"unknown parameter", "?tenant=acme", carol, 400, "tenant"},
	} {
		if code, rep, p := f.processes(t, c.query, c.token); code != c.code || p.Param != c.param || len(rep.Producers) != 0 {
			t.Errorf("%s: %d %+v %+v, want %d naming %q", c.name, code, p, rep.Producers, c.code, c.param)
		}
	}
	// Quiet for longer than stale_after: flagged.
	natstest.CheckFor(t, 30*time.Second, 100*time.Millisecond, func() error {
		if _, rep, _ := f.processes(t, "?stale_after=1s", carol); len(rep.Producers) != 1 || rep.Producers[0].State != "stale" {
			return fmt.Errorf("producers %+v, want p1 stale", rep.Producers)
		}
		return nil
	})
	natstest.CheckFor(t, 10*time.Second, 50*time.Millisecond, func() error {
		for _, s := range f.stream() {
			if s.Event.Type == events.AuditAccessed && s.Payload["resource"] == "processes" && s.Event.Actor.Subject == "carol" &&
				s.Event.Tenant == "acme" && fmt.Sprint(s.Payload["producers"]) == "[postgres-proxy/p1]" && s.Payload["withheld"] == "writers, forwarders, projectors" && s.Payload["writers"] == nil {
				return nil
			}
		}
		return fmt.Errorf("no audit.accessed of carol's processes under acme")
	})

	// The bus, as the API's credentials read it.
	ns := natstest.StartSecure(t)
	_, admin := ns.Connect(t)
	if err := bus.EnsureStreams(t.Context(), admin, bus.StreamOptions{}); err != nil {
		t.Fatal(err)
	}
	kv, err := admin.CreateOrUpdateKeyValue(t.Context(), jetstream.KeyValueConfig{Bucket: bus.LeaseBucket, TTL: time.Hour, History: 1})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := kv.Create(t.Context(), "ledger", []byte("writer-1")); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{bus.ForwarderDurable("syslog"), bus.ForwarderDurable("hec"), "projector"} {
		if _, err := admin.CreateOrUpdateConsumer(t.Context(), bus.LedgerStream, jetstream.ConsumerConfig{Durable: name, AckPolicy: jetstream.AckExplicitPolicy}); err != nil {
			t.Fatal(err)
		}
	}
	// syslog's forwarder pulls (its own credentials); hec's does not.
	_, fjs := ns.ConnectAs(t, bus.Forwarder("syslog"))
	c, err := fjs.Consumer(t.Context(), bus.LedgerStream, bus.ForwarderDurable("syslog"))
	if err != nil {
		t.Fatal(err)
	}
	cc, err := c.Consume(func(m jetstream.Msg) { m.Ack() })
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cc.Stop)
	apiJS := f.serveWithBus(t, ns)
	natstest.CheckFor(t, 30*time.Second, 100*time.Millisecond, func() error {
		code, rep, p := f.processes(t, "", olga)
		if code != 200 {
			t.Fatalf("with a bus: %d %+v", code, p)
		}
		if rep.Bus != "" {
			return fmt.Errorf("bus error: %s", rep.Bus)
		}
		if rep.LogSize == nil || *rep.LogSize != 0 || len(rep.Projectors) != 1 || rep.Projectors[0].State != "current" {
			return fmt.Errorf("log size %v, projectors %+v, want 0 (nothing published) and the projector current", rep.LogSize, rep.Projectors)
		}
		if len(rep.Writers) != 1 || rep.Writers[0].Log != "ledger" || rep.Writers[0].Instance != "writer-1" || rep.Writers[0].State != "holding" || rep.Writers[0].TTL != 3600 {
			return fmt.Errorf("writers %+v", rep.Writers)
		}
		got := ""
		for _, fw := range rep.Forwarders {
			got += fw.Name + ":" + fw.State + ";"
		}
		if got != "forward-hec:stale;forward-syslog:pulling;" {
			return fmt.Errorf("forwarders %s (%+v)", got, rep.Forwarders)
		}
		return nil
	})
	// What olga was served of the bus is recorded under the API's own
	// tenant; globex's producers under globex.
	natstest.CheckFor(t, 10*time.Second, 50*time.Millisecond, func() error {
		var own, globex bool
		for _, s := range f.stream() {
			if s.Event.Type != events.AuditAccessed || s.Payload["resource"] != "processes" || s.Event.Actor.Subject != "olga" {
				continue
			}
			own = own || s.Event.Tenant == "ops" && fmt.Sprint(s.Payload["writers"]) == "[ledger=writer-1]" &&
				fmt.Sprint(s.Payload["forwarders"]) == "[forward-hec forward-syslog]" && fmt.Sprint(s.Payload["projectors"]) == "[default]"
			globex = globex || s.Event.Tenant == "globex" && fmt.Sprint(s.Payload["producers"]) == "[http-proxy/g0 http-proxy/g1 http-proxy/g2]" && s.Payload["writers"] == nil
		}
		if !own || !globex {
			return fmt.Errorf("olga's reads recorded: under ops with the bus %v, under globex %v", own, globex)
		}
		return nil
	})
	// A scoped auditor, with a bus: nothing of it, and withheld said.
	if code, rep, _ := f.processes(t, "", carol); code != 200 || rep.Writers != nil || rep.Forwarders != nil || rep.Projectors != nil || rep.Withheld == "" || rep.Bus != "" || len(rep.Producers) != 1 {
		t.Errorf("carol with a bus: %d %+v, want writers and forwarders withheld", code, rep)
	}
	// The API's credentials read; they change nothing (the bus refuses,
	// and the client sees no answer before its deadline).
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Second)
	defer cancel()
	if err := apiJS.DeleteConsumer(ctx, bus.LedgerStream, bus.ForwarderDurable("hec")); err == nil {
		t.Errorf("the API deleted a forwarder's consumer")
	}
	if _, err := admin.Consumer(t.Context(), bus.LedgerStream, bus.ForwarderDurable("hec")); err != nil {
		t.Errorf("hec's consumer after the API's attempt: %v", err)
	}
	ctx, cancel = context.WithTimeout(t.Context(), 2*time.Second)
	defer cancel()
	if _, err := apiJS.Publish(ctx, "$KV."+bus.LeaseBucket+".ledger", []byte("api")); err == nil {
		t.Errorf("the API wrote the writer's lease")
	}
	if e, err := kv.Get(t.Context(), "ledger"); err != nil || string(e.Value()) != "writer-1" {
		t.Errorf("the lease after the API's attempt: %v %v", e, err)
	}
}

// The limit counts the caller's tenants' producers only: acme's one is
// listed though globex has more than the limit; a list cut says so.
func TestProcessesLimit(t *testing.T) {
	var more []ledger.Entry
	for i := range 3 {
		more = append(more, ledger.Entry{Event: fmt.Appendf(nil, `{"version":1,"id":"gx-%d","type":"command.executed","time":"2026-11-26T12:01:00Z","tenant":"globex","source":{"kind":"http-proxy","instance":"g%d"},"actor":{"issuer":"https://idp.example","subject":"gus","kind":"human"},"payload":{}}`, i, i)})
	}
	f := newReadFixture(t, more...)
	cfg := f.apiCfg
	cfg.MaxProducers = 2
	h, err := api.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	f.srv = httptest.NewServer(h)
	t.Cleanup(f.srv.Close)
	if code, rep, p := f.processes(t, "", f.tokens["carol"]); code != 200 || rep.Truncated || len(rep.Producers) != 1 || rep.Producers[0].Instance != "p1" {
		t.Errorf("carol (acme), limit 2: %d %+v %+v, want p1, not truncated", code, rep, p)
	}
	if code, rep, p := f.processes(t, "", f.tokens["gina"]); code != 200 || !rep.Truncated || len(rep.Producers) != 2 {
		t.Errorf("gina (globex), limit 2: %d %+v %+v, want two producers, truncated", code, rep, p)
	}
	natstest.CheckFor(t, 10*time.Second, 50*time.Millisecond, func() error {
		for _, s := range f.stream() {
			if s.Event.Type == events.AuditAccessed && s.Payload["resource"] == "processes" && s.Event.Actor.Subject == "gina" && s.Payload["truncated"] == true {
				return nil
			}
		}
		return fmt.Errorf("no audit.accessed of gina's cut list saying truncated")
	})
}

// serveWithBus serves the API anew with ns as its bus, connected as the
// API's own role (what it reads of the other processes), and returns
// that connection.
func (f *readFixture) serveWithBus(t *testing.T, ns *natstest.Server) jetstream.JetStream {
	t.Helper()
	_, apiJS := ns.ConnectAs(t, bus.API)
	cfg := f.apiCfg
	cfg.Bus = apiJS
	h, err := api.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	f.srv = httptest.NewServer(h)
	t.Cleanup(f.srv.Close)
	return apiJS
}
