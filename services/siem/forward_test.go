package siem_test

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/auditledger/auditledger/events"
	"github.com/auditledger/auditledger/events/emitter"
	"github.com/auditledger/auditledger/ledger"
	"github.com/auditledger/auditledger/ledger/bus"
	"github.com/auditledger/auditledger/ledger/file"
	"github.com/auditledger/auditledger/ledger/ingest"
	"github.com/auditledger/auditledger/services/siem"
	"github.com/auditledger/auditledger/test/natstest"
	"github.com/auditledger/auditledger/test/rsyslogtest"
)

// writer runs the real ledger writer on an in-process NATS server: events
// emitted are sealed and published on AUDIT_LEDGER, as in production.
func writer(t *testing.T) (jetstream.JetStream, func(from, n int)) {
	t.Helper()
	ns := natstest.Start(t)
	_, js := ns.Connect(t)
	if err := bus.EnsureStreams(t.Context(), js, bus.StreamOptions{}); err != nil {
		t.Fatal(err)
	}
	store, _ := file.New(t.TempDir())
	skey, _, _ := ledger.GenerateKey(nil, "siem.test/log")
	signer, _ := ledger.NewNoteSigner(skey)
	l, err := ledger.Open(t.Context(), ledger.Config{Store: store, Signer: signer})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	in, err := ingest.New(ctx, ingest.Config{JetStream: js, Log: l, Store: store, BatchSize: 50, MaxWait: 10 * time.Millisecond, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	wg.Go(func() { in.Run(ctx) })
	t.Cleanup(func() { cancel(); wg.Wait() })
	em, _ := emitter.New(emitter.Config{JetStream: js})
	t.Cleanup(func() { em.Close() })
	return js, func(from, n int) {
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

// receiver is a webhook endpoint that checks each request's signature,
// can be told to fail for a while or to refuse one event, and keeps what
// it accepted by event id.
type receiver struct {
	mu       sync.Mutex
	got      map[string]int
	down     bool
	poison   string
	badSigs  int
	requests int
	secret   []byte
}

func (r *receiver) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	body, _ := io.ReadAll(req.Body)
	r.mu.Lock()
	defer r.mu.Unlock()
	r.requests++
	if err := siem.CheckSignature(r.secret, req.Header.Get(siem.HeaderTimestamp), req.Header.Get(siem.HeaderSignature), body, time.Now(), 5*time.Minute); err != nil {
		r.badSigs++
		http.Error(w, err.Error(), http.StatusUnauthorized)
		return
	}
	if r.down {
		http.Error(w, "down for maintenance", http.StatusServiceUnavailable)
		return
	}
	var batch []struct {
		Index uint64       `json:"index"`
		Event events.Event `json:"event"`
	}
	if err := json.Unmarshal(body, &batch); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	for _, b := range batch {
		if b.Event.ID == r.poison {
			http.Error(w, "this receiver refuses "+r.poison, http.StatusBadRequest)
			return
		}
	}
	for _, b := range batch {
		r.got[b.Event.ID]++
	}
}

func (r *receiver) count() (distinct int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.got)
}

// The webhook forwarder delivers every sealed record of its tenant, signed,
// across an outage of the receiver; an event the receiver refuses is
// parked with its reason while the others go on.
func TestWebhookForwarder(t *testing.T) {
	js, emit := writer(t)
	rcv := &receiver{got: map[string]int{}, secret: []byte("s3cret"), poison: "ev-7"}
	srv := httptest.NewServer(rcv)
	defer srv.Close()
	parked := t.TempDir() + "/parked.jsonl"
	f, err := siem.New(siem.Config{Name: "hook", JetStream: js, Destination: &siem.Webhook{URL: srv.URL, Secret: rcv.secret},
		Tenants: []string{"acme"}, Batch: 20, RetryLater: time.Second, Parked: parked, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- f.Run(ctx) }()
	emit(0, 100)
	// acme's 80 events, but the refused one.
	natstest.CheckFor(t, 30*time.Second, 50*time.Millisecond, func() error {
		if n := rcv.count(); n != 79 {
			return fmt.Errorf("%d of 79 events delivered", n)
		}
		return nil
	})
	rcv.mu.Lock()
	rcv.down = true
	rcv.mu.Unlock()
	emit(100, 50)
	time.Sleep(500 * time.Millisecond) // the forwarder meets the outage and retries
	rcv.mu.Lock()
	rcv.down = false
	rcv.mu.Unlock()
	natstest.CheckFor(t, 60*time.Second, 50*time.Millisecond, func() error {
		if n := rcv.count(); n != 119 {
			return fmt.Errorf("%d of 119 events delivered after the outage", n)
		}
		return nil
	})
	cancel()
	<-done
	if rcv.badSigs != 0 {
		t.Errorf("%d requests with a bad signature", rcv.badSigs)
	}
	b, err := os.ReadFile(parked)
	if err != nil || strings.Count(string(b), "\n") != 1 || !strings.Contains(string(b), `"event_id":"ev-7"`) || !strings.Contains(string(b), "refuses ev-7") {
		t.Errorf("parked: %v\n%s", err, b)
	}
	for id := range rcv.got {
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

// hecReceiver follows Splunk's documented HTTP Event Collector protocol:
// "Authorization: Splunk TOKEN", batches of event objects on
// /services/collector/event, an ackId per request when a channel is
// given, indexing a moment later, and /services/collector/ack answering
// which ackIds are indexed. It can be down (503, code 9) and refuses an
// event with code 6 (invalid data format).
type hecReceiver struct {
	mu      sync.Mutex
	token   string
	got     map[string]int // indexed, by event id
	pending map[int64][]string
	nextAck int64
	down    bool
	poison  string
	noAuth  int
}

func (h *hecReceiver) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h.mu.Lock()
	defer h.mu.Unlock()
	reply := func(code int, body string) { w.WriteHeader(code); io.WriteString(w, body) }
	if r.Header.Get("Authorization") != "Splunk "+h.token {
		h.noAuth++
		reply(401, `{"text":"Token is required","code":2}`)
		return
	}
	switch r.URL.Path {
	case "/services/collector/ack":
		var q struct{ Acks []int64 }
		json.NewDecoder(r.Body).Decode(&q)
		out := map[string]bool{}
		for _, id := range q.Acks {
			ids, waiting := h.pending[id]
			if waiting { // indexed now: the next query says so
				for _, e := range ids {
					h.got[e]++
				}
				delete(h.pending, id)
			}
			out[fmt.Sprint(id)] = !waiting && id < h.nextAck
		}
		b, _ := json.Marshal(map[string]any{"acks": out})
		reply(200, string(b))
	case "/services/collector/event":
		if h.down {
			reply(503, `{"text":"Server is busy","code":9}`)
			return
		}
		dec := json.NewDecoder(r.Body)
		var ids []string
		for dec.More() {
			var e struct {
				Event  json.RawMessage `json:"event"`
				Fields map[string]any  `json:"fields"`
				Time   float64         `json:"time"`
			}
			if err := dec.Decode(&e); err != nil || len(e.Event) == 0 {
				reply(400, `{"text":"Invalid data format","code":6,"invalid-event-number":`+fmt.Sprint(len(ids))+`}`)
				return
			}
			id, _ := e.Fields["event_id"].(string)
			if id == h.poison {
				reply(400, `{"text":"Invalid data format","code":6,"invalid-event-number":`+fmt.Sprint(len(ids))+`}`)
				return
			}
			ids = append(ids, id)
		}
		if r.Header.Get("X-Splunk-Request-Channel") == "" {
			for _, id := range ids {
				h.got[id]++
			}
			reply(200, `{"text":"Success","code":0}`)
			return
		}
		id := h.nextAck
		h.nextAck++
		h.pending[id] = ids
		reply(200, fmt.Sprintf(`{"text":"Success","code":0,"ackId":%d}`, id))
	default:
		reply(404, `{"text":"The requested URL was not found on this server.","code":404}`)
	}
}

func (h *hecReceiver) counts() (distinct, total int) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, n := range h.got {
		total += n
	}
	return len(h.got), total
}

// The HEC forwarder with indexer acknowledgement delivers every event
// exactly once (no event indexed twice, without deduplication) across an
// outage of the collector; an event the collector refuses is parked.
func TestHECForwarder(t *testing.T) {
	js, emit := writer(t)
	rcv := &hecReceiver{token: "00000000-0000-0000-0000-000000000001", got: map[string]int{}, pending: map[int64][]string{}, poison: "ev-12"}
	srv := httptest.NewServer(rcv)
	defer srv.Close()
	f, err := siem.New(siem.Config{Name: "hec", JetStream: js, Format: siem.OCSF, Batch: 25, RetryLater: time.Second,
		Destination: &siem.HEC{URL: srv.URL, Token: rcv.token, Ack: true, SourceType: "ocsf"}, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- f.Run(ctx) }()
	emit(0, 60)
	natstest.CheckFor(t, 30*time.Second, 50*time.Millisecond, func() error {
		if n, _ := rcv.counts(); n != 59 {
			return fmt.Errorf("%d of 59 events indexed", n)
		}
		return nil
	})
	rcv.mu.Lock()
	rcv.down = true
	rcv.mu.Unlock()
	emit(60, 40)
	time.Sleep(500 * time.Millisecond)
	rcv.mu.Lock()
	rcv.down = false
	rcv.mu.Unlock()
	natstest.CheckFor(t, 60*time.Second, 50*time.Millisecond, func() error {
		if n, _ := rcv.counts(); n != 99 {
			return fmt.Errorf("%d of 99 events indexed after the outage", n)
		}
		return nil
	})
	cancel()
	<-done
	if distinct, total := rcv.counts(); distinct != total || rcv.noAuth != 0 {
		t.Errorf("%d events indexed %d times (%d requests without the token): want each exactly once", distinct, total, rcv.noAuth)
	}
	if rcv.got["ev-12"] != 0 {
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
