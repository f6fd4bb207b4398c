package writer_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/auditledger/auditledger/events"
	"github.com/auditledger/auditledger/events/eventstest"
	"github.com/auditledger/auditledger/internal/health"
	"github.com/auditledger/auditledger/ledger"
	"github.com/auditledger/auditledger/ledger/bus"
	"github.com/auditledger/auditledger/ledger/bus/emitter"
	"github.com/auditledger/auditledger/ledger/file"
	"github.com/auditledger/auditledger/ledger/s3"
	"github.com/auditledger/auditledger/ledger/writer"
	"github.com/auditledger/auditledger/test/natstest"
	"github.com/auditledger/auditledger/test/testnet"
	"github.com/auditledger/auditledger/test/versitygw"
)

func event(i int) *events.Event { return eventstest.Command(fmt.Sprintf("ev-%d", i), "") }

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

type runningWriter struct {
	cancel  context.CancelFunc
	done    chan error
	metrics *health.Health
}

func startWriter(t *testing.T, js jetstream.JetStream, store ledger.SegmentStore, signer *ledger.NoteSigner, retention time.Duration) *runningWriter {
	ctx, cancel := context.WithCancel(context.Background())
	w := &runningWriter{cancel: cancel, done: make(chan error, 1), metrics: &health.Health{}}
	go func() {
		w.done <- writer.Run(ctx, writer.Config{
			JetStream: js, Store: store, Signer: signer, Retention: retention,
			BatchSize: 200, MaxWait: 20 * time.Millisecond, LeaseTTL: time.Second,
			Logger: quiet, Health: w.metrics,
		})
	}()
	t.Cleanup(w.stop)
	return w
}

func (w *runningWriter) stop() {
	if w.cancel != nil {
		w.cancel()
		<-w.done
		w.cancel = nil
	}
}

func (w *runningWriter) isWriter() bool {
	rec := httptest.NewRecorder()
	w.metrics.Handler().ServeHTTP(rec, httptest.NewRequest("GET", "/readyz", nil))
	return strings.Contains(rec.Body.String(), "writer")
}

// checkExactlyOnce verifies the store and that it holds events 0..n-1
// exactly once.
func checkExactlyOnce(t *testing.T, store ledger.SegmentStore, signer *ledger.NoteSigner, n int, retention time.Duration) {
	t.Helper()
	if _, err := ledger.Verify(t.Context(), store, ledger.VerifyOptions{Verifier: signer.Verifier(), Retention: retention}); err != nil {
		t.Fatal(err)
	}
	count := map[string]int{}
	err := ledger.ReadRecords(t.Context(), store, 0, func(_ uint64, rec []byte) error {
		r, _ := ledger.ParseRecord(rec)
		ev, err := events.Parse(r.Event)
		if err == nil {
			count[ev.ID]++
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	for i := range n {
		if c := count[fmt.Sprintf("ev-%d", i)]; c != 1 {
			t.Errorf("event %d sealed %d times", i, c)
		}
	}
	if len(count) != n {
		t.Errorf("log holds %d distinct events, want %d", len(count), n)
	}
}

func newSigner(t *testing.T) *ledger.NoteSigner {
	skey, _, _ := ledger.GenerateKey(nil, "service.test/log")
	s, err := ledger.NewNoteSigner(skey)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func emitRange(t *testing.T, em *emitter.Emitter, from, to int) {
	t.Helper()
	for i := from; i < to; i++ {
		if _, err := em.Emit(t.Context(), event(i)); err != nil {
			t.Fatal(err)
		}
	}
}

// TestTwoWritersHandOver: two ledger processes on one log; only the lease
// holder writes; stopping it hands the log to the other, which continues
// from what the store holds.
func TestTwoWritersHandOver(t *testing.T) {
	srv := natstest.StartSecure(t)
	_, js := srv.ConnectAs(t, bus.Ledger)
	_, pjs := srv.ConnectAs(t, bus.Proxy)
	store, _ := file.New(t.TempDir())
	signer := newSigner(t)
	a := startWriter(t, js, store, signer, 0)
	natstest.CheckFor(t, 10*time.Second, 10*time.Millisecond, func() error {
		if !a.isWriter() {
			return fmt.Errorf("a is not the writer yet")
		}
		return nil
	})
	b := startWriter(t, js, store, signer, 0)
	em, _ := emitter.New(emitter.Config{JetStream: pjs})
	emitRange(t, em, 0, 300)
	if b.isWriter() {
		t.Fatal("two writers at once")
	}
	a.stop() // releases the lease
	emitRange(t, em, 300, 600)
	natstest.CheckFor(t, 20*time.Second, 20*time.Millisecond, func() error {
		if !b.isWriter() {
			return fmt.Errorf("b has not taken over")
		}
		l, err := ledger.Open(t.Context(), ledger.Config{Store: store, Signer: signer})
		if err != nil {
			return err
		}
		if l.Size() != 600 {
			return fmt.Errorf("log size %d, want 600", l.Size())
		}
		return nil
	})
	b.stop()
	checkExactlyOnce(t, store, signer, 600, 0)
}

// TestLeaseOutlivesBusOutage: the bus is down for longer than the lease
// TTL, so the lease key expires meanwhile; but nobody can take it while
// the bus is down, so the writer keeps it. It stops sealing once the lease
// is no longer surely its own (/readyz says so) and, with the bus back,
// takes the expired key again and seals on: one takeover, no loss.
func TestLeaseOutlivesBusOutage(t *testing.T) {
	dir, keys, port := t.TempDir(), t.TempDir(), testnet.Port(t)
	srv := natstest.StartSecureIn(t, dir, port, keys)
	_, js := srv.ConnectAs(t, bus.Ledger, nats.MaxReconnects(-1), nats.ReconnectWait(20*time.Millisecond))
	store, _ := file.New(t.TempDir())
	signer := newSigner(t)
	w := startWriter(t, js, store, signer, 0)
	logSize := func() (uint64, error) {
		l, err := ledger.Open(t.Context(), ledger.Config{Store: store, Signer: signer})
		if err != nil {
			return 0, err
		}
		return l.Size(), nil
	}
	sealed := func(n uint64) func() error {
		return func() error {
			if size, err := logSize(); err != nil || size != n {
				return fmt.Errorf("log size %d (%v), want %d", size, err, n)
			}
			return nil
		}
	}
	_, pjs := srv.ConnectAs(t, bus.Proxy)
	em, _ := emitter.New(emitter.Config{JetStream: pjs})
	emitRange(t, em, 0, 100)
	natstest.CheckFor(t, 30*time.Second, 20*time.Millisecond, sealed(100))

	srv.Shutdown()
	natstest.CheckFor(t, 30*time.Second, 20*time.Millisecond, func() error {
		if code, body := readyz(w); code == http.StatusOK || !strings.Contains(body, "sealing paused") {
			return fmt.Errorf("/readyz with the bus down: %d %s", code, body)
		}
		return nil
	})
	// The fault itself, not a wait for readiness: the bus stays down past
	// the key's expiry (the lease TTL after its last renewal).
	time.Sleep(time.Second)
	srv = natstest.StartSecureIn(t, dir, port, keys)
	_, pjs = srv.ConnectAs(t, bus.Proxy)
	em, _ = emitter.New(emitter.Config{JetStream: pjs})
	emitRange(t, em, 100, 200)
	natstest.CheckFor(t, 60*time.Second, 20*time.Millisecond, sealed(200))
	if code, body := readyz(w); code != http.StatusOK || !strings.Contains(body, "ledger: ready: writer") {
		t.Errorf("/readyz with the bus back: %d %s", code, body)
	}
	if got, lost := metric(w, "auditledger_lease_acquired_total"), metric(w, "auditledger_lease_lost_total"); got != "1" || lost != "0" {
		t.Errorf("lease acquired %s times and lost %s times, want once and never", got, lost)
	}
	w.stop()
	checkExactlyOnce(t, store, signer, 200, 0)
}

// TestLeaseLostToAnotherWriter: a renewal that finds the key naming
// another writer loses the lease at once; the writer stops.
func TestLeaseLostToAnotherWriter(t *testing.T) {
	srv := natstest.StartSecure(t)
	_, js := srv.ConnectAs(t, bus.Ledger)
	store, _ := file.New(t.TempDir())
	w := startWriter(t, js, store, newSigner(t), 0)
	natstest.CheckFor(t, 20*time.Second, 10*time.Millisecond, func() error {
		if !w.isWriter() {
			return fmt.Errorf("not the writer yet")
		}
		return nil
	})
	kv, err := js.KeyValue(t.Context(), bus.LeaseBucket)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := kv.Put(t.Context(), "ledger", []byte("another-writer")); err != nil {
		t.Fatal(err)
	}
	natstest.CheckFor(t, 20*time.Second, 10*time.Millisecond, func() error {
		if lost := metric(w, "auditledger_lease_lost_total"); lost != "1" {
			return fmt.Errorf("auditledger_lease_lost_total %q, want 1", lost)
		}
		return nil
	})
}

// TestS3Outage: with the S3 server down, the writer backs off and
// acknowledges nothing it has not sealed; once S3 returns everything is
// sealed exactly once and every segment is locked.
func TestS3Outage(t *testing.T) {
	srv := natstest.StartSecure(t)
	_, js := srv.ConnectAs(t, bus.Ledger)
	_, pjs := srv.ConnectAs(t, bus.Proxy)
	gw := versitygw.Start(t)
	store, err := s3.New(t.Context(), s3.Config{
		Endpoint: gw.Endpoint, Bucket: gw.Bucket(t), Prefix: "log", Insecure: true,
		AccessKey: versitygw.AccessKey, SecretKey: versitygw.SecretKey,
	})
	if err != nil {
		t.Fatal(err)
	}
	signer := newSigner(t)
	const retention = time.Hour
	w := startWriter(t, js, store, signer, retention)
	em, _ := emitter.New(emitter.Config{JetStream: pjs})
	emitRange(t, em, 0, 100)
	natstest.CheckFor(t, 20*time.Second, 20*time.Millisecond, func() error {
		if got := metric(w, "auditledger_log_size"); got != "100" {
			return fmt.Errorf("log size %s, want 100", got)
		}
		return nil
	})

	gw.Stop()
	emitRange(t, em, 100, 400) // the bus is up: producers carry on
	// The writer retries; the events stay unacknowledged meanwhile.
	cons, _ := js.Consumer(t.Context(), bus.EventsStream, "ledger")
	natstest.CheckFor(t, 20*time.Second, 20*time.Millisecond, func() error {
		if metric(w, "auditledger_seal_retries_total") == "0" {
			return fmt.Errorf("no seal retried yet")
		}
		return nil
	})
	info, _ := cons.Info(t.Context())
	if acked := info.AckFloor.Stream; acked > 100 {
		t.Fatalf("events up to %d acknowledged while S3 was down; only 100 were sealed", acked)
	}
	// Readiness tells the truth: a writer that cannot seal is not ready.
	if code, body := readyz(w); code != http.StatusServiceUnavailable || !strings.Contains(body, "ledger: not ready: sealing fails") {
		t.Fatalf("/readyz while S3 is down: %d %s", code, body)
	}
	if got := metric(w, "auditledger_log_size"); got != "100" {
		t.Fatalf("log grew to %s while S3 was down", got)
	}

	gw.Restart()
	natstest.CheckFor(t, 60*time.Second, 50*time.Millisecond, func() error {
		if got := metric(w, "auditledger_log_size"); got != "400" {
			return fmt.Errorf("log size %s, want 400", got)
		}
		return nil
	})
	if code, body := readyz(w); code != http.StatusOK || !strings.Contains(body, "ledger: ready: writer") {
		t.Fatalf("/readyz once S3 is back: %d %s", code, body)
	}
	w.stop()
	checkExactlyOnce(t, store, signer, 400, retention)
}

func readyz(w *runningWriter) (int, string) {
	rec := httptest.NewRecorder()
	w.metrics.Handler().ServeHTTP(rec, httptest.NewRequest("GET", "/readyz", nil))
	return rec.Code, rec.Body.String()
}

func metric(w *runningWriter, name string) string {
	rec := httptest.NewRecorder()
	w.metrics.Handler().ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	for _, line := range strings.Split(rec.Body.String(), "\n") {
		if v, ok := strings.CutPrefix(line, name+" "); ok {
			return v
		}
	}
	return ""
}

// TestRetentionChangesRecorded: the writer seals the difference between
// its configured retention and the one the log last recorded when it takes
// the log, before any event it seals under the new one; with nothing
// changed it records nothing. Verify then checks each segment against what
// was recorded.
func TestRetentionChangesRecorded(t *testing.T) {
	srv := natstest.StartSecure(t)
	_, js := srv.ConnectAs(t, bus.Ledger)
	_, pjs := srv.ConnectAs(t, bus.Proxy)
	gw := versitygw.Start(t)
	store, err := s3.New(t.Context(), s3.Config{
		Endpoint: gw.Endpoint, Bucket: gw.Bucket(t), Prefix: "log", Insecure: true,
		AccessKey: versitygw.AccessKey, SecretKey: versitygw.SecretKey,
	})
	if err != nil {
		t.Fatal(err)
	}
	signer := newSigner(t)
	em, _ := emitter.New(emitter.Config{JetStream: pjs})
	defer em.Close()
	changes := func() []ledger.RetentionChange {
		t.Helper()
		var out []ledger.RetentionChange
		err := ledger.ReadRecords(t.Context(), store, 0, func(_ uint64, rec []byte) error {
			r, _ := ledger.ParseRecord(rec)
			ev, err := events.Parse(r.Event)
			if err == nil && ev.Type == events.LedgerRetentionChanged {
				var c ledger.RetentionChange
				err = json.Unmarshal(ev.Payload, &c)
				out = append(out, c)
			}
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
		return out
	}
	_, admin := srv.Connect(t)
	run := func(tenants map[string]time.Duration, from, to int) {
		t.Helper()
		ctx, cancel := context.WithCancel(t.Context())
		done := make(chan error, 1)
		go func() {
			done <- writer.Run(ctx, writer.Config{
				JetStream: js, Store: store, Signer: signer, Retention: time.Hour, TenantRetention: tenants,
				RetentionSource: "the test", BatchSize: 200, MaxWait: 20 * time.Millisecond, LeaseTTL: time.Second, Logger: quiet,
			})
		}()
		defer func() { cancel(); <-done }()
		emitRange(t, em, from, to)
		natstest.CheckFor(t, 30*time.Second, 20*time.Millisecond, func() error {
			n, total := 0, 0
			err := ledger.ReadRecords(t.Context(), store, 0, func(_ uint64, rec []byte) error {
				r, _ := ledger.ParseRecord(rec)
				if id, _ := events.PeekID(r.Event); strings.HasPrefix(id, "ev-") {
					n++
				}
				total++
				return nil
			})
			if err == nil && n != to {
				err = fmt.Errorf("%d events sealed, want %d", n, to)
			}
			if size := len(natstest.LedgerRecords(t, admin)); err == nil && size != total {
				err = fmt.Errorf("%d records on %s, want all %d sealed", size, bus.LedgerStream, total)
			}
			return err
		})
	}

	run(map[string]time.Duration{"acme": 2 * time.Hour}, 0, 10)
	got := changes()
	if len(got) != 2 || got[0].Tenant != "*" || got[0].NewSeconds != 3600 || got[1].Tenant != "acme" || got[1].NewSeconds != 7200 || got[1].OldSeconds != 0 ||
		!strings.Contains(got[1].By, "the test") {
		t.Fatalf("first start recorded %+v, want the default (1h) and acme (2h)", got)
	}
	// Sealed like the ledger's other records, they are on AUDIT_LEDGER too.
	onBus := 0
	for _, r := range natstest.LedgerRecords(t, admin) {
		rec, _ := ledger.ParseRecord(r.Record)
		if bytes.HasPrefix(rec.Event, []byte(`{"type":"ledger.retention.changed"`)) {
			onBus++
		}
	}
	if onBus != 2 {
		t.Fatalf("%d retention records on %s, want 2", onBus, bus.LedgerStream)
	}
	run(map[string]time.Duration{"acme": 2 * time.Hour}, 10, 20)
	if n := len(changes()); n != 2 {
		t.Fatalf("a restart with the same retention recorded %d changes in all, want the first 2", n)
	}
	run(map[string]time.Duration{"acme": 3 * time.Hour}, 20, 30)
	got = changes()
	if len(got) != 3 || got[2].Tenant != "acme" || got[2].OldSeconds != 7200 || got[2].NewSeconds != 3*3600 || got[2].Old != "2h0m0s" {
		t.Fatalf("a restart with acme at 3h recorded %+v", got)
	}
	rep, err := ledger.Verify(t.Context(), store, ledger.VerifyOptions{Verifier: signer.Verifier()})
	if err != nil {
		t.Fatal(err)
	}
	last := rep.Segments[len(rep.Segments)-1]
	if rep.RetentionChanges != 3 || last.Required != 3*time.Hour || last.RequiredBy != "acme" {
		t.Fatalf("verify: %d changes; the last segment checked for %s (tenant %q), want 3h (acme)", rep.RetentionChanges, last.Required, last.RequiredBy)
	}
}
