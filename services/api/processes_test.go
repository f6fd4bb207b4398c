package api_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/auditledger/auditledger/events"
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
// only), flagged stale past stale_after; with a bus, read with the API's
// own bus credentials, each writer's lease and each forwarder's consumer
// (pulling, or stale when nothing pulls); refusals and the record of
// each read.
func TestProcesses(t *testing.T) {
	f := newReadFixture(t)
	carol, gina := f.tokens["carol"], f.tokens["gina"]

	code, rep, p := f.processes(t, "", carol)
	if code != 200 || len(rep.Producers) != 1 || rep.Producers[0].Kind != "postgres-proxy" || rep.Producers[0].Instance != "p1" ||
		fmt.Sprint(rep.Producers[0].Tenants) != "[acme]" || rep.Producers[0].Index != 39 || rep.Producers[0].State != "recent" {
		t.Fatalf("carol's processes: %d %+v %v", code, rep, p)
	}
	if rep.Bus == "" || len(rep.Writers) != 0 || len(rep.Forwarders) != 0 {
		t.Errorf("without a bus: %+v, want the reason and no writer or forwarder", rep)
	}
	if code, rep, _ := f.processes(t, "", gina); code != 200 || len(rep.Producers) != 0 {
		t.Errorf("gina (globex) sees acme's producers: %d %+v", code, rep.Producers)
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
				s.Event.Tenant == "acme" && fmt.Sprint(s.Payload["producers"]) == "[postgres-proxy/p1]" {
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
	_, apiJS := ns.ConnectAs(t, bus.API)
	cfg := f.apiCfg
	cfg.Bus = apiJS
	h, err := api.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	f.srv = httptest.NewServer(h)
	t.Cleanup(f.srv.Close)
	natstest.CheckFor(t, 30*time.Second, 100*time.Millisecond, func() error {
		code, rep, p := f.processes(t, "", carol)
		if code != 200 {
			t.Fatalf("with a bus: %d %+v", code, p)
		}
		if rep.Bus != "" {
			return fmt.Errorf("bus error: %s", rep.Bus)
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
