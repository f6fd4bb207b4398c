package siem_test

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"log/slog"
	"net/http/httptest"
	"os"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/auditledger/auditledger/events"
	"github.com/auditledger/auditledger/services/siem"
	"github.com/auditledger/auditledger/test/natstest"
	"github.com/auditledger/auditledger/test/rsyslogtest"
	"github.com/auditledger/auditledger/test/siemtest"
)

// writer runs the real ledger writer on an in-process NATS server: events
// emitted are sealed and published on AUDIT_LEDGER, as in production.
func writer(t *testing.T) (jetstream.JetStream, func(from, n int)) {
	t.Helper()
	_, js, emit := writerOn(t)
	return js, emit
}

// writerOn is writer, with the NATS server for more connections.
func writerOn(t *testing.T) (*natstest.Server, jetstream.JetStream, func(from, n int)) {
	t.Helper()
	ns, js, em := siemtest.Writer(t)
	return ns, js, func(from, n int) {
		for i := from; i < from+n; i++ {
			tenant := "acme"
			if i%5 == 4 {
				tenant = "globex"
			}
			ev := &events.Event{Version: 1, ID: fmt.Sprintf("ev-%d", i), Type: events.CommandExecuted, Time: time.Now().UTC(), Tenant: tenant,
				Source: events.Source{Kind: "postgres-proxy", Instance: "p1"}, Actor: events.Actor{Issuer: "https://idp", Subject: "alice", Kind: events.Human},
				Payload: []byte(fmt.Sprintf(`{"statement":"SELECT %d","kind":"SELECT"}`, i))}
			if _, err := em.Emit(t.Context(), ev); err != nil {
				t.Fatal(err)
			}
		}
	}
}

// The webhook forwarder delivers every sealed record of its tenant, signed,
// across an outage of the receiver; an event the receiver refuses is
// parked with its reason while the others go on.
func TestWebhookForwarder(t *testing.T) {
	js, emit := writer(t)
	rcv := siemtest.NewWebhook([]byte("s3cret"))
	rcv.Poison = "ev-7"
	srv := httptest.NewServer(rcv)
	defer srv.Close()
	parked := t.TempDir() + "/parked.jsonl"
	f, err := siem.New(siem.Config{Name: "hook", JetStream: js, Destination: &siem.Webhook{URL: srv.URL, Secret: rcv.Secret},
		Filter: siem.Filter{Tenants: []string{"acme"}}, Batch: 20, RetryLater: time.Second, Parked: parked, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- f.Run(ctx) }()
	emit(0, 100)
	// acme's 80 events, but the refused one.
	natstest.CheckFor(t, 30*time.Second, 50*time.Millisecond, func() error {
		if n := len(rcv.Got()); n != 79 {
			return fmt.Errorf("%d of 79 events delivered", n)
		}
		return nil
	})
	rcv.Down(true)
	emit(100, 50)
	time.Sleep(500 * time.Millisecond) // the forwarder meets the outage and retries
	rcv.Down(false)
	natstest.CheckFor(t, 60*time.Second, 50*time.Millisecond, func() error {
		if n := len(rcv.Got()); n != 119 {
			return fmt.Errorf("%d of 119 events delivered after the outage", n)
		}
		return nil
	})
	cancel()
	<-done
	if rcv.BadSigs != 0 {
		t.Errorf("%d requests with a bad signature", rcv.BadSigs)
	}
	b, err := os.ReadFile(parked)
	if err != nil || strings.Count(string(b), "\n") != 1 || !strings.Contains(string(b), `"event_id":"ev-7"`) || !strings.Contains(string(b), "refuses ev-7") {
		t.Errorf("parked: %v\n%s", err, b)
	}
	for id := range rcv.Got() {
		if strings.HasPrefix(id, "ev-") {
			var n int
			fmt.Sscanf(id, "ev-%d", &n)
			if n%5 == 4 {
				t.Errorf("%s of another tenant was forwarded", id)
			}
		}
	}
}

// A signature over another body, or an old timestamp, is refused.
func TestWebhookSignature(t *testing.T) {
	secret, body := []byte("k"), []byte(`[{"index":1}]`)
	now := time.Now()
	sig := siem.Sign(secret, now.Unix(), body)
	if err := siem.CheckSignature(secret, fmt.Sprint(now.Unix()), sig, body, now, time.Minute); err != nil {
		t.Fatal(err)
	}
	if err := siem.CheckSignature(secret, fmt.Sprint(now.Unix()), sig, []byte(`[{"index":2}]`), now, time.Minute); err == nil {
		t.Error("another body verified")
	}
	if err := siem.CheckSignature(secret, fmt.Sprint(now.Unix()), sig, body, now.Add(10*time.Minute), 5*time.Minute); err == nil || !strings.Contains(err.Error(), "replay") {
		t.Errorf("an old request: %v", err)
	}
}

// The HEC forwarder with indexer acknowledgement delivers every event
// exactly once (no event indexed twice, without deduplication) across an
// outage of the collector; an event the collector refuses is parked.
func TestHECForwarder(t *testing.T) {
	js, emit := writer(t)
	rcv := siemtest.NewHEC("00000000-0000-0000-0000-000000000001")
	rcv.Poison = "ev-12"
	count := func() (distinct, total int) {
		for _, n := range rcv.Got() {
			distinct, total = distinct+1, total+n
		}
		return
	}
	srv := httptest.NewServer(rcv)
	defer srv.Close()
	f, err := siem.New(siem.Config{Name: "hec", JetStream: js, Format: siem.OCSF, Batch: 25, RetryLater: time.Second,
		Destination: &siem.HEC{URL: srv.URL, Token: rcv.Token, Ack: true, SourceType: "ocsf"}, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- f.Run(ctx) }()
	emit(0, 60)
	natstest.CheckFor(t, 30*time.Second, 50*time.Millisecond, func() error {
		if n, _ := count(); n != 59 {
			return fmt.Errorf("%d of 59 events indexed", n)
		}
		return nil
	})
	rcv.Down(true)
	emit(60, 40)
	time.Sleep(500 * time.Millisecond)
	rcv.Down(false)
	natstest.CheckFor(t, 60*time.Second, 50*time.Millisecond, func() error {
		if n, _ := count(); n != 99 {
			return fmt.Errorf("%d of 99 events indexed after the outage", n)
		}
		return nil
	})
	cancel()
	<-done
	if distinct, total := count(); distinct != total || rcv.NoAuth != 0 {
		t.Errorf("%d events indexed %d times (%d requests without the token): want each exactly once", distinct, total, rcv.NoAuth)
	}
	if rcv.Got()["ev-12"] != 0 {
		t.Errorf("the refused event was indexed")
	}
}

// The syslog forwarder delivers every event to Debian's rsyslogd over TLS
// (RFC 5425 octet counting), across a stop and a start of rsyslogd; each
// message carries the ledger's coordinates in its structured data.
func TestSyslogForwarderToRsyslog(t *testing.T) {
	js, emit := writer(t)
	rs := rsyslogtest.Start(t)
	f, err := siem.New(siem.Config{Name: "syslog", JetStream: js, Format: siem.CEF, Batch: 30, RetryLater: time.Second,
		Destination: &siem.Syslog{Addr: rs.Addr, TLS: &tls.Config{RootCAs: rs.RootCAs}}, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- f.Run(ctx) }()
	ids := func() map[string]int {
		got := map[string]int{}
		re := regexp.MustCompile(`\[auditledger@32473 index="\d+" leaf="[0-9a-f]{64}" id="([^"]+)" tenant="[a-z]+"\] CEF:0\|auditledger\|`)
		for _, l := range rs.Lines() {
			if m := re.FindStringSubmatch(l); m != nil {
				got[m[1]]++
			}
		}
		return got
	}
	emit(0, 50)
	natstest.CheckFor(t, 30*time.Second, 50*time.Millisecond, func() error {
		if n := len(ids()); n != 50 {
			return fmt.Errorf("rsyslogd wrote %d of 50 events", n)
		}
		return nil
	})
	rs.Stop()
	emit(50, 50)
	time.Sleep(500 * time.Millisecond) // the forwarder finds rsyslogd gone, and retries
	rs.Start(t)
	natstest.CheckFor(t, 60*time.Second, 100*time.Millisecond, func() error {
		if n := len(ids()); n != 100 {
			return fmt.Errorf("rsyslogd wrote %d of 100 events after its restart", n)
		}
		return nil
	})
	cancel()
	<-done
	if l := rs.Lines()[0]; !strings.HasPrefix(l, "command.executed [auditledger@32473 index=\"0\"") {
		t.Errorf("first line: %s", l)
	}
}

// A destination that fails (syslog with a certificate it cannot trust:
// every TLS handshake fails) does not stall the forwarders beside it, and
// its failures show in its metrics.
func TestAFailingDestinationDoesNotStallTheOthers(t *testing.T) {
	js, emit := writer(t)
	rs := rsyslogtest.Start(t)
	hec := siemtest.NewHEC("tok")
	hsrv := httptest.NewServer(hec)
	defer hsrv.Close()
	reg := prometheus.NewRegistry()
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	bad, err := siem.New(siem.Config{Name: "syslog-untrusted", JetStream: js, Registry: reg, Logger: quiet, RetryLater: time.Second,
		Destination: &siem.Syslog{Addr: rs.Addr, TLS: &tls.Config{RootCAs: x509.NewCertPool()}}})
	if err != nil {
		t.Fatal(err)
	}
	good, err := siem.New(siem.Config{Name: "hec", JetStream: js, Registry: reg, Logger: quiet, Format: siem.OCSF,
		Destination: &siem.HEC{URL: hsrv.URL, Token: "tok", Ack: true}})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	var wg sync.WaitGroup
	wg.Go(func() { bad.Run(ctx) })
	wg.Go(func() { good.Run(ctx) })
	emit(0, 40)
	natstest.CheckFor(t, 30*time.Second, 50*time.Millisecond, func() error {
		if n := len(hec.Got()); n != 40 {
			return fmt.Errorf("the collector has %d of 40", n)
		}
		return nil
	})
	natstest.CheckFor(t, 30*time.Second, 50*time.Millisecond, func() error {
		failed := metric(t, reg, "auditledger_forwarder_failed_total", "syslog-untrusted")
		// The collector indexes a batch at the first ack query about it;
		// the forwarder counts it delivered when a later query says so.
		if delivered := metric(t, reg, "auditledger_forwarder_delivered_total", "hec"); failed < 2 || delivered != 40 {
			return fmt.Errorf("failed_total %v of the untrusted syslog, delivered_total %v of hec", failed, delivered)
		}
		return nil
	})
	cancel()
	wg.Wait()
	if d := metric(t, reg, "auditledger_forwarder_delivered_total", "syslog-untrusted"); d != 0 {
		t.Errorf("the untrusted syslog delivered %v", d)
	}
	if rs.Lines()[0] != "" {
		t.Errorf("rsyslogd received over a handshake that should have failed: %q", rs.Lines()[0])
	}
}

// metric reads one forwarder's counter from a registry.
func metric(t *testing.T, reg *prometheus.Registry, name, forwarder string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "forwarder" && l.GetValue() == forwarder {
					return m.GetCounter().GetValue()
				}
			}
		}
	}
	return -1
}
