package api_test

import (
	"fmt"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/auditledger/auditledger/events"
	"github.com/auditledger/auditledger/ledger/bus"
	"github.com/auditledger/auditledger/ledger/bus/emitter"
	"github.com/auditledger/auditledger/services/api"
	"github.com/auditledger/auditledger/services/gateway"
	"github.com/auditledger/auditledger/test/natstest"
)

// quietGateway starts a gateway that records nothing (no policy, no
// traffic) on its own producer credentials, beating every interval with
// ttl; it returns the gateway and its bus connection.
func quietGateway(t *testing.T, ns *natstest.Server, name, kind, instance, tenant string, interval, ttl time.Duration) (*gateway.Gateway, *nats.Conn) {
	t.Helper()
	nc, js := ns.ConnectAs(t, bus.Producer(instance))
	em, err := emitter.New(emitter.Config{JetStream: js, Timeout: 2 * time.Second, Retries: 1})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { em.Close() })
	g, err := gateway.New(gateway.Config{Name: name, Kind: kind, Instance: instance, Tenant: tenant, Emitter: em,
		Heartbeat: gateway.HeartbeatConfig{Interval: interval, TTL: ttl}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { g.Close() })
	if err := g.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	return g, nc
}

func producerRow(rep api.ProcessesReport, kind, instance string) *api.ProducerState {
	for i, p := range rep.Producers {
		if p.Kind == kind && p.Instance == instance {
			return &rep.Producers[i]
		}
	}
	return nil
}

// Running gateways that record nothing show alive beside their
// producers (quiet but alive: the records stale, the heartbeat not),
// and one that has recorded nothing yet has a row of its own, to a
// caller whose tenants they serve only; one cut off from the bus goes
// stale once its TTL has passed, one closed shows stopped. Each
// heartbeat shown is named in the read's record. The projector is shown,
// its lag measured against the log's size on the bus.
func TestProcessesHeartbeat(t *testing.T) {
	f := newReadFixture(t)
	carol, gina, olga := f.tokens["carol"], f.tokens["gina"], f.tokens["olga"]
	ns := natstest.StartSecure(t, "p1", "q1", "z1")
	_, admin := ns.Connect(t)
	if err := bus.EnsureStreams(t.Context(), admin, bus.StreamOptions{}); err != nil {
		t.Fatal(err)
	}
	apiJS := f.serveWithBus(t, ns)

	// No gateway has beaten yet: no bucket, no liveness, no error.
	if code, rep, p := f.processes(t, "", carol); code != 200 || rep.Bus != "" || len(rep.Producers) != 1 || rep.Producers[0].Liveness != "none" {
		t.Fatalf("before any heartbeat: %d %+v %+v", code, rep, p)
	}
	// p1 has recorded for acme (the fixture's records); q1 (acme) and
	// z1 (globex) have recorded nothing. The TTL is short, so that the
	// test sees a lost gateway go stale; polls have generous deadlines.
	const interval, ttl = 100 * time.Millisecond, 2 * time.Second
	p1, _ := quietGateway(t, ns, "pgproxy", "postgres-proxy", "p1", "acme", interval, ttl)
	_, q1conn := quietGateway(t, ns, "sshgw", "ssh-proxy", "q1", "acme", interval, ttl)
	quietGateway(t, ns, "httpproxy", "http-proxy", "z1", "globex", interval, ttl)

	natstest.CheckFor(t, 30*time.Second, 50*time.Millisecond, func() error {
		code, rep, p := f.processes(t, "?stale_after=1s", carol)
		if code != 200 || rep.Bus != "" {
			return fmt.Errorf("%d %+v %+v", code, rep, p)
		}
		r := producerRow(rep, "postgres-proxy", "p1")
		if r == nil || r.State != "stale" || r.Liveness != "alive" || r.Heartbeat == nil || r.Heartbeat.Role != "pgproxy" || r.Heartbeat.TTL != 2 ||
			r.Heartbeat.Started.IsZero() || r.Heartbeat.LastSeen.Before(r.Heartbeat.Started.Add(-time.Minute)) {
			return fmt.Errorf("p1 %+v, want quiet (stale records) but alive", r)
		}
		q := producerRow(rep, "ssh-proxy", "q1")
		if q == nil || q.State != "none" || q.Liveness != "alive" || fmt.Sprint(q.Tenants) != "[acme]" || !q.SealedAt.IsZero() {
			return fmt.Errorf("q1 %+v, want alive with no record", q)
		}
		if len(rep.Producers) != 2 {
			return fmt.Errorf("carol sees %+v, want p1 and q1 only (z1 is globex's)", rep.Producers)
		}
		return nil
	})
	if _, rep, _ := f.processes(t, "", gina); len(rep.Producers) != 1 || rep.Producers[0].Instance != "z1" || rep.Producers[0].Liveness != "alive" {
		t.Errorf("gina (globex): %+v, want z1 alive only", rep.Producers)
	}
	natstest.CheckFor(t, 10*time.Second, 50*time.Millisecond, func() error {
		for _, s := range f.stream() {
			if s.Event.Type == events.AuditAccessed && s.Payload["resource"] == "processes" && s.Event.Actor.Subject == "carol" &&
				s.Event.Tenant == "acme" && fmt.Sprint(s.Payload["heartbeats"]) == "[postgres-proxy/p1 ssh-proxy/q1]" {
				return nil
			}
		}
		return fmt.Errorf("no audit.accessed of carol's processes naming the heartbeats shown")
	})

	// q1 loses the bus (as when its host dies): stale once its TTL
	// passes. p1 closes: stopped, said at once.
	q1conn.Close()
	if err := p1.Close(); err != nil {
		t.Fatal(err)
	}
	natstest.CheckFor(t, 60*time.Second, 100*time.Millisecond, func() error {
		_, rep, _ := f.processes(t, "", carol)
		p, q := producerRow(rep, "postgres-proxy", "p1"), producerRow(rep, "ssh-proxy", "q1")
		if p == nil || p.Liveness != "stopped" || q == nil || q.Liveness != "stale" || q.Heartbeat == nil {
			return fmt.Errorf("p1 %+v, q1 %+v, want p1 stopped and q1 stale", p, q)
		}
		return nil
	})

	// The projector: measured against the log's size on the bus. The
	// writer publishes two records past the projection.
	var size uint64
	natstest.CheckFor(t, 10*time.Second, 50*time.Millisecond, func() error {
		_, rep, _ := f.processes(t, "", olga)
		if len(rep.Projectors) != 1 || rep.Projectors[0].Name != "default" || rep.Projectors[0].Size == 0 {
			return fmt.Errorf("projectors %+v", rep.Projectors)
		}
		size = rep.Projectors[0].Size
		return nil
	})
	m := nats.NewMsg(bus.LedgerRecordsSubject)
	m.Header.Set(bus.HeaderIndex, strconv.FormatUint(size, 10))
	m.Header.Set(bus.HeaderCount, "2")
	m.Data = bus.AppendRecords(nil, [][]byte{[]byte("r1"), []byte("r2")})
	if _, err := admin.PublishMsg(t.Context(), m); err != nil {
		t.Fatal(err)
	}
	_, rep, _ := f.processes(t, "", olga)
	if rep.LogSize == nil || *rep.LogSize != size+2 || len(rep.Projectors) != 1 || rep.Projectors[0].Lag == nil || *rep.Projectors[0].Lag != 2 || rep.Projectors[0].State != "applying" {
		t.Errorf("two records behind: log size %v, %+v, want lag 2, applying", rep.LogSize, rep.Projectors)
	}
	// Nothing applied for longer than stale_after: stale.
	natstest.CheckFor(t, 30*time.Second, 100*time.Millisecond, func() error {
		_, rep, _ := f.processes(t, "?stale_after=1s", olga)
		if len(rep.Projectors) != 1 || rep.Projectors[0].State != "stale" {
			return fmt.Errorf("projectors %+v, want stale", rep.Projectors)
		}
		return nil
	})
	// Every heartbeat to olga; the projector named in her read's record.
	_, rep, _ = f.processes(t, "", olga)
	var live []string
	for _, p := range rep.Producers {
		live = append(live, p.Instance+":"+p.Liveness)
	}
	slices.Sort(live)
	if fmt.Sprint(live) != "[p1:stopped q1:stale z1:alive]" {
		t.Errorf("olga's producers %v", live)
	}
	natstest.CheckFor(t, 10*time.Second, 50*time.Millisecond, func() error {
		for _, s := range f.stream() {
			if s.Event.Type == events.AuditAccessed && s.Payload["resource"] == "processes" && s.Event.Actor.Subject == "olga" &&
				fmt.Sprint(s.Payload["projectors"]) == "[default]" {
				return nil
			}
		}
		return fmt.Errorf("no audit.accessed of olga's processes naming the projector")
	})
	// The API's credentials read the heartbeats; they cannot forge one.
	if _, err := apiJS.Publish(t.Context(), "$KV."+bus.HeartbeatBucket+"."+bus.HeartbeatKey("postgres-proxy", "p1"), []byte(`{}`)); err == nil {
		t.Errorf("the API put a gateway's heartbeat")
	}
	if _, err := apiJS.KeyValue(t.Context(), bus.HeartbeatBucket); err != nil {
		t.Errorf("the API opening the heartbeat bucket: %v", err)
	}
}
