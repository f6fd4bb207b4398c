package test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nkeys"

	"github.com/auditledger/auditledger/events"
	"github.com/auditledger/auditledger/events/eventstest"
	"github.com/auditledger/auditledger/ledger"
	"github.com/auditledger/auditledger/ledger/bus"
	"github.com/auditledger/auditledger/ledger/bus/emitter"
	"github.com/auditledger/auditledger/ledger/bus/nkeyauth"
	"github.com/auditledger/auditledger/ledger/file"
	"github.com/auditledger/auditledger/ledger/ledgertest"
	"github.com/auditledger/auditledger/ledger/piikeys"
	"github.com/auditledger/auditledger/ledger/writer"
	"github.com/auditledger/auditledger/services/approvals"
	"github.com/auditledger/auditledger/test/natstest"
)

// violations collects the permission violations NATS reports to one
// connection, so a refusal is known to be the server's authorization and
// not some other failure.
type violations struct {
	mu   sync.Mutex
	errs []string
	more chan struct{} // closed at the next violation
}

func (v *violations) handler(_ *nats.Conn, _ *nats.Subscription, err error) {
	if errors.Is(err, nats.ErrPermissionViolation) {
		v.mu.Lock()
		v.errs = append(v.errs, err.Error())
		if v.more != nil {
			close(v.more)
			v.more = nil
		}
		v.mu.Unlock()
	}
}

// count is the number of violations reported so far.
func (v *violations) count() int {
	v.mu.Lock()
	defer v.mu.Unlock()
	return len(v.errs)
}

// await waits until a violation naming subject is among those reported
// after the first from, or ctx ends, and says whether one was.
func (v *violations) await(ctx context.Context, from int, subject string) bool {
	for {
		v.mu.Lock()
		for _, e := range v.errs[from:] {
			if strings.Contains(e, `"`+subject+`"`) {
				v.mu.Unlock()
				return true
			}
		}
		if v.more == nil {
			v.more = make(chan struct{})
		}
		more := v.more
		v.mu.Unlock()
		select {
		case <-more:
		case <-ctx.Done():
			return false
		}
	}
}

// refused sends the request an attacker would send on nc (whose error
// handler is v's) and fails the test unless the server refuses it with a
// permission violation naming subject and never answers it. The request
// is given up once the violation is reported: a publish the server
// refused reaches no responder, so no answer can follow.
func refused(t *testing.T, nc *nats.Conn, v *violations, what, subject, data string) {
	t.Helper()
	from := v.count()
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	seen := make(chan bool, 1)
	go func() {
		ok := v.await(ctx, from, subject)
		cancel() // ends the request
		seen <- ok
	}()
	msg, err := nc.RequestWithContext(ctx, subject, []byte(data))
	if err == nil {
		t.Fatalf("%s: the server answered %q", what, msg.Data)
	}
	if !<-seen {
		t.Fatalf("%s failed (%v) without a permission violation for %s", what, err, subject)
	}
}

// TestBusLeastPrivilege: on a bus that requires each role's nkey, an
// unauthenticated client is refused, and each role's credentials trying
// every other role's work — deleting or purging AUDIT_EVENTS, taking the
// writer lease, writing the approvals bucket, publishing a record on
// AUDIT_LEDGER, consuming the events — are refused by the server, while
// each role's own work goes on. The log is unchanged by all of it.
func TestBusLeastPrivilege(t *testing.T) {
	srv := natstest.StartSecure(t, "t1", "pg-2")
	_, ljs := srv.ConnectAs(t, bus.Ledger)
	store, _ := file.New(t.TempDir())
	skey, vkey, _ := ledger.GenerateKey(nil, "bus.test/log")
	signer, _ := ledger.NewNoteSigner(skey)
	ctx, stop := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- writer.Run(ctx, writer.Config{JetStream: ljs, Store: store, Signer: signer,
			BatchSize: 100, MaxWait: 10 * time.Millisecond, LeaseTTL: 2 * time.Second, Logger: slog.New(slog.NewTextHandler(testLog{t}, nil))})
	}()
	defer func() { stop(); <-done }()
	_, pjs := srv.ConnectAs(t, bus.Proxy)
	natstest.CheckFor(t, 20*time.Second, 20*time.Millisecond, func() error {
		_, err := pjs.Stream(t.Context(), bus.EventsStream)
		return err
	})
	// The API creates the approvals bucket; proxies may only use it.
	_, ajs := srv.ConnectAs(t, bus.API)
	aem, _ := emitter.New(emitter.Config{JetStream: ajs})
	defer aem.Close()
	if _, err := approvals.New(t.Context(), approvals.Config{JetStream: ajs, Emitter: aem, Create: true, Signer: ledgertest.Signer(t, "api.test/approvals"), Source: events.Source{Kind: "api", Instance: "t"}}); err != nil {
		t.Fatalf("api creates the approvals bucket: %v", err)
	}

	// A proxy may make the personal-data keys bucket and a tenant's key;
	// the API and the ledger open it.
	pkeys, err := piikeys.Open(t.Context(), pjs, 1)
	if err != nil {
		t.Fatalf("proxy opens the personal-data keys bucket: %v", err)
	}
	if _, err := pkeys.TenantKey(t.Context(), "acme"); err != nil {
		t.Fatalf("proxy makes a tenant's search key: %v", err)
	}
	for _, js := range []jetstream.JetStream{ajs, ljs} {
		if _, err := piikeys.Open(t.Context(), js, 1); err != nil {
			t.Fatalf("opening the personal-data keys bucket: %v", err)
		}
	}

	// Each role does its own work: a proxy publishes events, the writer
	// seals them, a reader reads the sealed records.
	em, _ := emitter.New(emitter.Config{JetStream: pjs})
	defer em.Close()
	for i := range 10 {
		res, _ := em.Emit(t.Context(), eventstest.Command(fmt.Sprintf("bus-%d", i), ""))
		if err := res.Stored(false); err != nil {
			t.Fatalf("proxy role publishes an event: %v", err)
		}
	}
	// The producer t1 (the source instance of these events) publishes
	// with its own credentials.
	_, t1js := srv.ConnectAs(t, bus.Producer("t1"))
	t1em, _ := emitter.New(emitter.Config{JetStream: t1js})
	defer t1em.Close()
	for i := 10; i < 20; i++ {
		res, _ := t1em.Emit(t.Context(), eventstest.Command(fmt.Sprintf("bus-%d", i), ""))
		if err := res.Stored(false); err != nil {
			t.Fatalf("producer t1 publishes its event: %v", err)
		}
	}
	// On its own subject, an event whose body claims another producer is
	// stored by the bus but rejected by the writer.
	claim := eventstest.Command("claims-pg-2", "")
	claim.Source.Instance = "pg-2"
	claimRaw, _ := claim.Marshal()
	if _, err := t1js.Publish(t.Context(), bus.Subject(claim.Tenant, claim.Type, "t1"), claimRaw); err != nil {
		t.Fatal(err)
	}
	// In its own batch, likewise: the writer checks every event's producer.
	ok := eventstest.Command("batched-t1", "")
	okRaw, _ := ok.Marshal()
	if _, err := t1js.Publish(t.Context(), bus.BatchSubject("t1"), bus.AppendBatch(bus.AppendBatch(nil, okRaw), claimRaw)); err != nil {
		t.Fatal(err)
	}
	// A bulk piece under its own token, and the session.output naming it
	// (docs/FORMAT.md §1.7); the writer reads the piece, copies it to
	// the store and deletes it from AUDIT_BULK. A second piece no event
	// names stays there: the API reads it, as readers of pieces not yet
	// sealed do.
	t1keys, err := piikeys.Open(t.Context(), t1js, 1)
	if err != nil {
		t.Fatal(err)
	}
	var pieceNames []string
	var bulkEvent *events.Event
	for i, text := range []string{"bulk output\n", "a piece no event names\n"} {
		place := piikeys.BulkPlace{Tenant: "acme", Session: "ssh-9", Stream: "stdout", Offset: int64(i * 100)}
		object, pseudonym, err := t1keys.SealBulk(t.Context(), "https://idp.example", "alice", place, []byte(text))
		if err != nil {
			t.Fatal(err)
		}
		name := piikeys.BulkName(object)
		m := nats.NewMsg(bus.BulkSubject("t1", name))
		m.Data = object
		m.Header.Set(nats.MsgIdHdr, name)
		if _, err := t1js.PublishMsg(t.Context(), m); err != nil {
			t.Fatalf("producer t1 publishes a bulk piece under its own token: %v", err)
		}
		pieceNames = append(pieceNames, name)
		if i == 0 {
			bulkEvent = eventstest.Command("bus-bulk", "")
			bulkEvent.Type, bulkEvent.SessionID, bulkEvent.SessionSeq = events.SessionOutput, "ssh-9", 1
			bulkEvent.Payload, _ = json.Marshal(map[string]any{"stream": "stdout", "offset": 0, "bytes": len(text),
				"bulk": map[string]any{"object": name, "pseudonym": pseudonym, "size": len(object)}})
		}
	}
	if res, _ := t1em.Emit(t.Context(), bulkEvent); res.Stored(false) != nil {
		t.Fatalf("producer t1 publishes its session.output naming a piece: %v", res.Stored(false))
	}
	natstest.CheckFor(t, 20*time.Second, 20*time.Millisecond, func() error {
		if n := logSize(t, store); n != 24 { // 21 events, a rejection, a batch of an event and a rejection
			return fmt.Errorf("sealed %d of 24", n)
		}
		return nil
	})
	if _, err := store.Get(t.Context(), ledger.BulkObjectName(pieceNames[0])); err != nil {
		t.Fatalf("the writer did not copy the piece to the store: %v", err)
	}
	if bs, err := ajs.Stream(t.Context(), bus.BulkStream); err != nil {
		t.Fatalf("the API looks up %s: %v", bus.BulkStream, err)
	} else if m, err := bs.GetLastMsgForSubject(t.Context(), bus.BulkSubject("t1", pieceNames[1])); err != nil || piikeys.BulkName(m.Data) != pieceNames[1] {
		t.Fatalf("the API reads a piece not yet sealed: %v", err)
	}
	natstest.CheckFor(t, 20*time.Second, 20*time.Millisecond, func() error {
		bs, _ := ljs.Stream(t.Context(), bus.BulkStream)
		info, err := bs.Info(t.Context())
		if err == nil && info.State.Msgs != 1 {
			err = fmt.Errorf("%s holds %d pieces, want the one no event names", bus.BulkStream, info.State.Msgs)
		}
		return err
	})
	_, admin := srv.Connect(t)
	rs, _ := admin.Stream(t.Context(), bus.RejectStream)
	if m, err := rs.GetMsg(t.Context(), 1); err != nil || !strings.Contains(m.Header.Get(bus.HeaderReason), "source instance say") {
		t.Fatalf("the writer did not reject t1's event claiming pg-2: %v", err)
	}
	if m, err := rs.GetMsg(t.Context(), 2); err != nil || !strings.Contains(m.Header.Get(bus.HeaderReason), `its source instance "pg-2"`) {
		t.Fatalf("the writer did not reject t1's batched event claiming pg-2: %v", err)
	}
	_, rjs := srv.ConnectAs(t, bus.Reader)
	if _, err := rjs.Stream(t.Context(), bus.LedgerStream); err != nil {
		t.Fatalf("reader role looks up AUDIT_LEDGER: %v", err)
	}
	rcons, err := rjs.OrderedConsumer(t.Context(), bus.LedgerStream, jetstream.OrderedConsumerConfig{})
	if err != nil {
		t.Fatalf("reader role consumes AUDIT_LEDGER: %v", err)
	}
	if m, err := rcons.Next(jetstream.FetchMaxWait(5 * time.Second)); err != nil || m.Headers().Get(bus.HeaderIndex) != "0" {
		t.Fatalf("reader role reads the first sealed record: %v", err)
	}

	// No credentials, or a key the server does not know: refused.
	if nc, err := nats.Connect(srv.ClientURL()); !errors.Is(err, nats.ErrAuthorization) {
		if nc != nil {
			nc.Close()
		}
		t.Fatalf("anonymous connection: got %v, want an authorization violation", err)
	}
	stranger, _ := nkeys.CreateUser()
	seed, _ := stranger.Seed()
	strangerFile := filepath.Join(t.TempDir(), "stranger.nk")
	if err := os.WriteFile(strangerFile, seed, 0o600); err != nil {
		t.Fatal(err)
	}
	opt, _ := nats.NkeyOptionFromSeed(strangerFile)
	if nc, err := nats.Connect(srv.ClientURL(), opt); !errors.Is(err, nats.ErrAuthorization) {
		if nc != nil {
			nc.Close()
		}
		t.Fatalf("unknown nkey: got %v, want an authorization violation", err)
	}

	// What each role must not do, as the raw JetStream API requests an
	// attacker would send.
	type attempt struct {
		name    string
		subject string
		data    string
		skip    bus.Principal // the one role this is its own work
	}
	attempts := []attempt{
		{"delete AUDIT_EVENTS", "$JS.API.STREAM.DELETE.AUDIT_EVENTS", "", ""},
		{"purge AUDIT_EVENTS", "$JS.API.STREAM.PURGE.AUDIT_EVENTS", "{}", ""},
		// The writer erases an event holding a detector's match once its
		// rejection is sealed; no other role deletes one.
		{"delete an event", "$JS.API.STREAM.MSG.DELETE.AUDIT_EVENTS", `{"seq":1}`, bus.Ledger},
		{"delete a sealed record", "$JS.API.STREAM.MSG.DELETE.AUDIT_LEDGER", `{"seq":1}`, ""},
		{"delete AUDIT_LEDGER", "$JS.API.STREAM.DELETE.AUDIT_LEDGER", "", ""},
		{"take the writer lease", "$KV.AUDIT_LEDGER_LEASES.ledger", "intruder", bus.Ledger},
		{"publish a sealed record", "audit.ledger.acme.command.executed", `{"forged":true}`, bus.Ledger},
		{"publish a rejection", bus.RejectSubject, `{}`, bus.Ledger},
		{"consume the events", "$JS.API.CONSUMER.CREATE.AUDIT_EVENTS.x", `{"stream_name":"AUDIT_EVENTS","config":{"name":"x","ack_policy":"none"}}`, bus.Ledger},
		{"change the events stream", "$JS.API.STREAM.UPDATE.AUDIT_EVENTS", `{"name":"AUDIT_EVENTS","subjects":["audit.events.>"],"max_msgs":1}`, bus.Ledger},
		{"create the approvals bucket", "$JS.API.STREAM.CREATE.KV_AUDIT_APPROVALS", `{"name":"KV_AUDIT_APPROVALS"}`, bus.API},
		{"create the access bucket", "$JS.API.STREAM.CREATE.KV_" + bus.AccessBucket, `{"name":"KV_AUDIT_ACCESS"}`, bus.API},
		{"delete an access grant from the history", "$JS.API.STREAM.MSG.DELETE.KV_" + bus.AccessBucket, `{"seq":1}`, ""},
		// The personal-data keys: nobody but an operator erases one, and
		// nobody turns the bucket's erasure off.
		{"erase a personal-data key", "$JS.API.STREAM.MSG.DELETE.KV_" + bus.PIIKeysBucket, `{"seq":1}`, ""},
		{"change the personal-data keys bucket", "$JS.API.STREAM.UPDATE.KV_" + bus.PIIKeysBucket, `{"name":"KV_AUDIT_PII_KEYS","deny_delete":true}`, ""},
		// Heartbeats: producers may create the bucket, nobody change it.
		{"change the heartbeat bucket", "$JS.API.STREAM.UPDATE.KV_" + bus.HeartbeatBucket, `{"name":"KV_AUDIT_HEARTBEATS","max_age":1}`, ""},
		// Erasures, subject holds and legal holds are the admin's own
		// records: no other credential publishes as their producers.
		{"publish as the admin's erase command", bus.Subject("acme", events.ErasurePerformed, bus.AdminInstance), `{}`, ""},
		{"publish a batch as the admin's erase command", bus.BatchSubject(bus.AdminInstance), "{}\n", ""},
		{"publish as the admin's legal-hold command", bus.Subject(ledger.SystemTenant, events.LegalHoldSet, bus.LegalHoldInstance), `{}`, ""},
		// Bulk pieces: only the writer deletes one (once copied beside
		// its segment); nobody purges or removes the stream.
		{"purge AUDIT_BULK", "$JS.API.STREAM.PURGE." + bus.BulkStream, "{}", ""},
		{"delete AUDIT_BULK", "$JS.API.STREAM.DELETE." + bus.BulkStream, "", ""},
		{"delete a bulk piece", "$JS.API.STREAM.MSG.DELETE." + bus.BulkStream, `{"seq":1}`, bus.Ledger},
		{"change the bulk stream", "$JS.API.STREAM.UPDATE." + bus.BulkStream, `{"name":"AUDIT_BULK","subjects":["audit.bulk.>"],"max_age":1}`, bus.Ledger},
	}
	readKeys := []attempt{
		{"read a personal-data key", "$JS.API.DIRECT.GET.KV_" + bus.PIIKeysBucket, `{"last_by_subj":"$KV.AUDIT_PII_KEYS.tenant.x"}`, ""},
		{"write a personal-data key", "$KV." + bus.PIIKeysBucket + ".tenant.x", `{}`, ""},
	}
	// A producer publishes only as itself: an event claiming producer
	// pg-2 goes to a subject the t1 credentials may not publish on.
	forged := eventstest.Command("forged-1", "")
	forged.Source.Instance = "pg-2"
	forgedRaw, _ := forged.Marshal()
	roleOnly := map[bus.Principal][]attempt{
		bus.Producer("t1"): {
			{"publish an event as another producer", bus.Subject(forged.Tenant, forged.Type, "pg-2"), string(forgedRaw), ""},
			{"publish a bulk piece as another producer", bus.BulkSubject("pg-2", strings.Repeat("ab", 32)), "piece", ""},
			{"publish a bulk piece outside a producer's subjects", "audit.bulk." + strings.Repeat("ab", 32), "piece", ""},
			{"publish a batch as another producer", bus.BatchSubject("pg-2"), string(forgedRaw) + "\n", ""},
			{"write the lease", "$KV.AUDIT_LEDGER_LEASES.ledger", "x", ""},
			{"put another producer's heartbeat", "$KV." + bus.HeartbeatBucket + "." + bus.HeartbeatKey("postgres-proxy", "pg-2"), `{}`, ""},
		},
		bus.API: {{"put a gateway's heartbeat", "$KV." + bus.HeartbeatBucket + "." + bus.HeartbeatKey("postgres-proxy", "t1"), `{}`, ""}},
		bus.Reader: {{"write the approvals bucket", "$KV.AUDIT_APPROVALS.apr-forged", `{"status":"granted"}`, ""},
			{"read a bulk piece", "$JS.API.DIRECT.GET." + bus.BulkStream, `{"seq":1}`, ""},
			{"publish a bulk piece", bus.BulkSubject("t1", strings.Repeat("ab", 32)), "piece", ""},
			{"write the access bucket", "$KV." + bus.AccessBucket + ".acc-forged", `{"status":"approved"}`, ""},
			{"publish an event", "audit.events.acme.command.executed", `{}`, ""},
			{"publish a batch", bus.BatchSubject("t1"), "{}\n", ""},
			readKeys[0], readKeys[1],
			{"put a gateway's heartbeat", "$KV." + bus.HeartbeatBucket + "." + bus.HeartbeatKey("postgres-proxy", "t1"), `{}`, ""}},
		bus.Ledger: {{"write the approvals bucket", "$KV.AUDIT_APPROVALS.apr-forged", `{"status":"granted"}`, ""},
			{"publish a bulk piece", bus.BulkSubject("t1", strings.Repeat("ab", 32)), "piece", ""},
			{"write the access bucket", "$KV." + bus.AccessBucket + ".acc-forged", `{"status":"approved"}`, ""},
			{"publish an event", "audit.events.acme.command.executed", `{}`, ""}},
	}
	for _, role := range []bus.Principal{bus.Ledger, bus.API, bus.Proxy, bus.Reader, bus.Producer("t1")} {
		var v violations
		nc, _ := srv.ConnectAs(t, role, nats.ErrorHandler(v.handler))
		for _, a := range append(attempts, roleOnly[role]...) {
			if a.skip == role {
				continue
			}
			t.Run(string(role)+"/"+a.name, func(t *testing.T) {
				refused(t, nc, &v, a.name+" as "+string(role), a.subject, a.data)
			})
		}
	}

	// The streams themselves refuse edits, whatever the credentials (but
	// for erasing one event, which the permissions keep to the writer).
	es, _ := admin.Stream(t.Context(), bus.EventsStream)
	if err := es.Purge(t.Context()); err == nil || !strings.Contains(err.Error(), "not permitted") {
		t.Fatalf("admin purging AUDIT_EVENTS: %v, want the stream's refusal", err)
	}
	cfg := es.CachedInfo().Config
	cfg.DenyPurge = false
	if _, err := admin.UpdateStream(t.Context(), cfg); err == nil {
		t.Fatal("admin lifted deny_purge on AUDIT_EVENTS")
	}
	ls, _ := admin.Stream(t.Context(), bus.LedgerStream)
	if err := ls.DeleteMsg(t.Context(), 1); err == nil || !strings.Contains(err.Error(), "not permitted") {
		t.Fatalf("admin deleting a sealed record: %v, want the stream's refusal", err)
	}
	info, _ := es.Info(t.Context())
	if info.State.Msgs != 23 {
		t.Fatalf("AUDIT_EVENTS holds %d messages, want the 23 published", info.State.Msgs)
	}
	bs, _ := admin.Stream(t.Context(), bus.BulkStream)
	if err := bs.Purge(t.Context()); err == nil || !strings.Contains(err.Error(), "not permitted") {
		t.Fatalf("admin purging AUDIT_BULK: %v, want the stream's refusal", err)
	}
	if info, _ := bs.Info(t.Context()); info.State.Msgs != 1 {
		t.Fatalf("AUDIT_BULK holds %d pieces after the attempts, want 1", info.State.Msgs)
	}

	// Nothing reached the log but the 22 events and the 2 rejections.
	rep, err := ledger.Verify(t.Context(), store, ledger.VerifyOptions{Verifier: mustVerifier(t, vkey)})
	if err != nil || rep.Size != 24 || rep.Rejected != 2 || rep.Bulk != 1 {
		t.Fatalf("log after the attempts: %+v, %v; want 22 events (one naming a bulk piece) and 2 rejections, verified", rep, err)
	}
}

func logSize(t *testing.T, store ledger.SegmentStore) uint64 {
	t.Helper()
	rep, err := ledger.Verify(t.Context(), store, ledger.VerifyOptions{})
	if err != nil {
		return 0
	}
	return rep.Size
}

func mustVerifier(t *testing.T, vkey string) *ledger.NoteVerifier {
	t.Helper()
	v, err := ledger.NewNoteVerifier(vkey)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// TestDeletedEventBecomesGapRecord: an operator with admin rights deletes
// events that wait to be sealed (the streams deny it once the writer has
// set them up; here they were made without the denial, as a stream of an
// earlier release would be). The writer seals a gap record naming them,
// `verify` fails listing the gap, and passes only with --allow-gaps.
func TestDeletedEventBecomesGapRecord(t *testing.T) {
	srv := natstest.StartSecure(t)
	_, admin := srv.Connect(t)
	if err := bus.EnsureStreams(t.Context(), admin, bus.StreamOptions{AllowDelete: true}); err != nil {
		t.Fatal(err)
	}
	_, pjs := srv.ConnectAs(t, bus.Proxy)
	em, _ := emitter.New(emitter.Config{JetStream: pjs})
	defer em.Close()
	for i := range 8 {
		res, _ := em.Emit(t.Context(), eventstest.Command(fmt.Sprintf("gap-%d", i), ""))
		if err := res.Stored(false); err != nil {
			t.Fatal(err)
		}
	}
	es, _ := admin.Stream(t.Context(), bus.EventsStream)
	for _, seq := range []uint64{3, 4} {
		if err := es.DeleteMsg(t.Context(), seq); err != nil {
			t.Fatalf("admin deletes event %d before the writer runs: %v", seq, err)
		}
	}
	keys, storeDir := t.TempDir(), t.TempDir()
	mustRun(t, nil, nil, "keys", "generate", "--out", keys)
	startServe(t, serveConfig(t, srv, storeDir, filepath.Join(keys, "ledger.key")))
	vkey := filepath.Join(keys, "ledger.vkey")
	natstest.CheckFor(t, 30*time.Second, 50*time.Millisecond, func() error {
		r := run(t, nil, nil, "verify", "--store", storeDir, "--vkey", vkey, "--allow-gaps")
		if n := contextRecords(t, storeDir); r.code != 0 || n < 1 || !strings.Contains(r.stdout, fmt.Sprintf("records      %d in", 7+n)) {
			return fmt.Errorf("verify --allow-gaps: exit %d\n%s", r.code, r.stdout)
		}
		return nil
	})
	// The gap follows the events 1 and 2, after the clock status the
	// writer sealed when it took the log.
	r := run(t, nil, nil, "verify", "--store", storeDir, "--vkey", vkey)
	if n := contextRecords(t, storeDir); r.code != 1 || !strings.Contains(r.stdout, fmt.Sprintf("stream sequences 3..4 (2) at record %d", 2+n)) {
		t.Fatalf("verify without --allow-gaps: exit %d, want 1 listing the gap\n%s", r.code, r.stdout)
	}
	r = run(t, nil, nil, "verify", "--store", storeDir, "--vkey", vkey, "--allow-gaps")
	if !strings.Contains(r.stdout, "1 gap(s), accepted by --allow-gaps") || !strings.Contains(r.stdout, "stream sequences 3..4") {
		t.Fatalf("verify --allow-gaps does not list the gap:\n%s", r.stdout)
	}
	// The writer's set-up turned the purge denial on, for good (one event
	// may still be deleted: the writer's erasure of a detector's match).
	if err := es.Purge(t.Context()); err == nil {
		t.Fatal("AUDIT_EVENTS could still be purged after the writer set up the streams")
	}
}

// TestForwarderConsumersArePrivate: each forwarder has its own bus
// principal with rights on its own durable consumer only. The reader's
// credential — and another forwarder's — cannot delete, recreate, update,
// pause, pull from or acknowledge a forwarder's consumer, by any form of
// the JetStream API, while the forwarder goes on delivering every record
// and the reader still follows AUDIT_LEDGER with consumers of its own.
func TestForwarderConsumersArePrivate(t *testing.T) {
	srv := natstest.StartSecure(t)
	_, admin := srv.Connect(t)
	if err := bus.EnsureStreams(t.Context(), admin, bus.StreamOptions{}); err != nil {
		t.Fatal(err)
	}
	_, ljs := srv.ConnectAs(t, bus.Ledger)
	publish := func(from, n int) {
		for i := from; i < from+n; i++ {
			m := nats.NewMsg(bus.LedgerRecordsSubject)
			m.Header.Set(bus.HeaderIndex, fmt.Sprint(i))
			m.Data = bus.AppendRecords(nil, [][]byte{[]byte(fmt.Sprintf("record %d", i))})
			if _, err := ljs.PublishMsg(t.Context(), m); err != nil {
				t.Fatal(err)
			}
		}
	}
	publish(0, 4)

	// The syslog forwarder's consumer, made as siem.Forwarder makes it.
	durable := bus.ForwarderDurable("syslog")
	_, fjs := srv.ConnectAs(t, bus.Forwarder("syslog"))
	cfg := jetstream.ConsumerConfig{Durable: durable, FilterSubject: bus.LedgerRecordsSubject, AckPolicy: jetstream.AckExplicitPolicy,
		DeliverPolicy: jetstream.DeliverAllPolicy, MaxAckPending: 1, AckWait: 15 * time.Second, MaxDeliver: -1}
	cons, err := fjs.CreateOrUpdateConsumer(t.Context(), bus.LedgerStream, cfg)
	if err != nil {
		t.Fatalf("the syslog forwarder creates its consumer: %v", err)
	}
	// The forwarder holds record 0 unacknowledged: its ack subject is
	// what an intruder would acknowledge it on.
	held, err := cons.Fetch(1, jetstream.FetchMaxWait(20*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	var first jetstream.Msg
	for m := range held.Messages() {
		first = m
	}
	if first == nil || first.Headers().Get(bus.HeaderIndex) != "0" {
		t.Fatalf("the forwarder did not get record 0: %v", held.Error())
	}
	before, err := admin.Consumer(t.Context(), bus.LedgerStream, durable)
	if err != nil {
		t.Fatal(err)
	}
	binfo, _ := before.Info(t.Context())

	stream := bus.LedgerStream
	cfgJSON := func(extra string) string {
		return fmt.Sprintf(`{"stream_name":%q,"config":{"durable_name":%q,"name":%q,"deliver_policy":"new","ack_policy":"none","filter_subject":%q%s}}`,
			stream, durable, durable, bus.LedgerRecordsSubject, extra)
	}
	attempts := []struct{ name, subject, data string }{
		{"delete it", "$JS.API.CONSUMER.DELETE." + stream + "." + durable, ""},
		{"recreate it", "$JS.API.CONSUMER.CREATE." + stream + "." + durable + "." + bus.LedgerRecordsSubject, cfgJSON("")},
		{"recreate it without a filter in the subject", "$JS.API.CONSUMER.CREATE." + stream + "." + durable, cfgJSON("")},
		{"recreate it (legacy durable)", "$JS.API.CONSUMER.DURABLE.CREATE." + stream + "." + durable, cfgJSON("")},
		{"make it ephemeral, named in the body", "$JS.API.CONSUMER.CREATE." + stream,
			fmt.Sprintf(`{"stream_name":%q,"config":{"name":%q,"deliver_policy":"all","ack_policy":"explicit","filter_subject":%q,"inactive_threshold":1000000000,"max_ack_pending":1,"ack_wait":15000000000,"max_deliver":-1}}`, stream, durable, bus.LedgerRecordsSubject)},
		{"pause it", "$JS.API.CONSUMER.PAUSE." + stream + "." + durable, `{"pause_until":"2999-01-01T00:00:00Z"}`},
		{"pull from it", "$JS.API.CONSUMER.MSG.NEXT." + stream + "." + durable, `{"batch":1,"expires":1000000000}`},
		{"read its state", "$JS.API.CONSUMER.INFO." + stream + "." + durable, ""},
		{"acknowledge its record", first.Reply(), "+ACK"},
	}
	for _, role := range []bus.Principal{bus.Reader, bus.Forwarder("hec"), bus.API} {
		var v violations
		nc, _ := srv.ConnectAs(t, role, nats.ErrorHandler(v.handler))
		for _, a := range attempts {
			if role == bus.API && a.name == "read its state" {
				continue // the API reads it for the console's health page (GET /v1/processes)
			}
			t.Run(string(role)+"/"+a.name, func(t *testing.T) {
				refused(t, nc, &v, a.name+" as "+string(role), a.subject, a.data)
			})
		}
	}

	// The consumer is the one the forwarder made, where it was.
	after, err := admin.Consumer(t.Context(), bus.LedgerStream, durable)
	if err != nil {
		t.Fatalf("the forwarder's consumer is gone: %v", err)
	}
	ainfo, _ := after.Info(t.Context())
	if !ainfo.Created.Equal(binfo.Created) || ainfo.Config.InactiveThreshold != 0 || ainfo.Config.Durable != durable ||
		ainfo.Config.DeliverPolicy != jetstream.DeliverAllPolicy || ainfo.Paused || ainfo.AckFloor.Stream != binfo.AckFloor.Stream || ainfo.Delivered.Stream != binfo.Delivered.Stream {
		t.Fatalf("the forwarder's consumer changed:\nbefore %+v\nafter  %+v", binfo, ainfo)
	}

	// The forwarder delivers every record, those sealed meanwhile too.
	if err := first.DoubleAck(t.Context()); err != nil {
		t.Fatalf("the forwarder acknowledges its record: %v", err)
	}
	publish(4, 4)
	for want := 1; want < 8; want++ {
		b, err := cons.Fetch(1, jetstream.FetchMaxWait(20*time.Second))
		if err != nil {
			t.Fatal(err)
		}
		got := ""
		for m := range b.Messages() {
			got = m.Headers().Get(bus.HeaderIndex)
			if err := m.DoubleAck(t.Context()); err != nil {
				t.Fatal(err)
			}
		}
		if got != fmt.Sprint(want) {
			t.Fatalf("the forwarder got record %q, want %d (%v)", got, want, b.Error())
		}
	}

	// The reader follows AUDIT_LEDGER as tail does, and with a durable
	// consumer of its own, as the nats CLI's does (docs/SIEM.md).
	_, rjs := srv.ConnectAs(t, bus.Reader)
	oc, err := rjs.OrderedConsumer(t.Context(), bus.LedgerStream, jetstream.OrderedConsumerConfig{FilterSubjects: []string{bus.LedgerRecordsSubject}})
	if err != nil {
		t.Fatalf("the reader follows AUDIT_LEDGER: %v", err)
	}
	if m, err := oc.Next(jetstream.FetchMaxWait(20 * time.Second)); err != nil || m.Headers().Get(bus.HeaderIndex) != "0" {
		t.Fatalf("the reader reads the first record: %v", err)
	}
	own, err := rjs.CreateOrUpdateConsumer(t.Context(), bus.LedgerStream, jetstream.ConsumerConfig{Durable: "siem-cli", AckPolicy: jetstream.AckExplicitPolicy})
	if err != nil {
		t.Fatalf("the reader makes a durable consumer of its own: %v", err)
	}
	if m, err := own.Next(jetstream.FetchMaxWait(20 * time.Second)); err != nil || m.Ack() != nil {
		t.Fatalf("the reader reads and acknowledges with its own consumer: %v", err)
	}
}

// TestEmitRefusedCredentialEndsAtOnce: emit given a credential that may
// not publish the events — the reader's, or another producer's — ends at
// once, without retrying, saying which bus role it used and which
// publish right that role lacks; the proxy role's credential stores them.
func TestEmitRefusedCredentialEndsAtOnce(t *testing.T) {
	srv := natstest.StartSecure(t, "t1")
	_, admin := srv.Connect(t)
	if err := bus.EnsureStreams(t.Context(), admin, bus.StreamOptions{}); err != nil {
		t.Fatal(err)
	}
	lines := eventLines(0, 2) // from producer instance p1
	for _, role := range []bus.Principal{bus.Reader, bus.Producer("t1")} {
		seed := nkeyauth.SeedFile(srv.KeysDir, role)
		r := run(t, lines, nil, "emit", "--nats", srv.ClientURL(), "--nkey", seed)
		if r.code != 1 {
			t.Fatalf("emit as %s: exit %d, want 1\n%s", role, r.code, r.stderr)
		}
		want := fmt.Sprintf("NATS refused bus role %s (seed %s): the credential lacks publish rights on audit.", role, seed)
		if !strings.Contains(r.stderr, want) || strings.Contains(r.stderr, "after 6 tries") {
			t.Errorf("emit as %s: stderr lacks %q, or shows retries:\n%s", role, want, r.stderr)
		}
		if strings.Contains(r.stderr, "bus_role=proxy") || strings.Contains(r.stderr, `bus_role="proxy`) {
			t.Errorf("emit as %s logs the proxy role:\n%s", role, r.stderr)
		}
	}
	r := run(t, lines, nil, "emit", "--nats", srv.ClientURL(), "--nkey", nkeyauth.SeedFile(srv.KeysDir, bus.Proxy))
	if r.code != 0 || !strings.Contains(r.stderr, "emitted 2 events stored") {
		t.Fatalf("emit as proxy: exit %d\n%s", r.code, r.stderr)
	}
}

// TestNoCredentialPurgesABucket: a put with a Nats-Rollup header purges
// every key of a bucket that allows rollups, and any credential that may
// put one key may send one. The buckets whose keys others may put — the
// personal-data keys (every tenant's search key, every subject's field
// key), the approvals, the grants, the heartbeats — refuse rollups,
// whoever sends them, and keep their keys; a personal-data keys bucket
// made by an earlier release (rollups allowed) is changed when the
// admin opens it.
func TestNoCredentialPurgesABucket(t *testing.T) {
	srv := natstest.StartSecure(t, "t1")
	_, ajs := srv.ConnectAs(t, bus.API)
	aem, _ := emitter.New(emitter.Config{JetStream: ajs})
	defer aem.Close()
	if _, err := approvals.New(t.Context(), approvals.Config{JetStream: ajs, Emitter: aem, Create: true, Signer: ledgertest.Signer(t, "api.test/approvals"), Source: events.Source{Kind: "api", Instance: "t"}}); err != nil {
		t.Fatal(err)
	}
	_, pjs := srv.ConnectAs(t, bus.Producer("t1"))
	keys, err := piikeys.Open(t.Context(), pjs, 1)
	if err != nil {
		t.Fatal(err)
	}
	before, err := keys.TenantKey(t.Context(), "acme")
	if err != nil {
		t.Fatal(err)
	}
	hb, err := bus.CreateKeyValue(t.Context(), pjs, bus.HeartbeatBucketConfig())
	if err != nil {
		t.Fatal(err)
	}
	own := bus.HeartbeatKey("postgres-proxy", "t1")
	if _, err := hb.Put(t.Context(), own, []byte(`{}`)); err != nil {
		t.Fatal(err)
	}
	akv, _ := ajs.KeyValue(t.Context(), approvals.Bucket)
	if _, err := akv.Put(t.Context(), "apr-kept", []byte(`{}`)); err != nil {
		t.Fatal(err)
	}
	// A bulk piece waiting on AUDIT_BULK: a rollup on a piece's subject
	// would purge the stream's other pieces.
	_, admin := srv.Connect(t)
	if err := bus.EnsureStreams(t.Context(), admin, bus.StreamOptions{}); err != nil {
		t.Fatal(err)
	}
	piece := bus.BulkSubject("t1", strings.Repeat("cd", 32))
	if _, err := pjs.Publish(t.Context(), piece, []byte("a piece waiting for the writer")); err != nil {
		t.Fatal(err)
	}
	for _, who := range []bus.Principal{bus.Producer("t1"), bus.Proxy, bus.API} {
		_, js := srv.ConnectAs(t, who)
		for _, subject := range []string{"$KV." + bus.PIIKeysBucket + ".tenant.zz", "$KV." + approvals.Bucket + ".apr-zz", "$KV." + bus.HeartbeatBucket + "." + own,
			bus.BulkSubject("t1", strings.Repeat("ef", 32))} {
			m := nats.NewMsg(subject)
			m.Data = []byte(`{}`)
			m.Header.Set("Nats-Rollup", "all")
			ctx, cancel := context.WithTimeout(t.Context(), 2*time.Second) // a publish the permissions refuse gets no answer
			_, err := js.PublishMsg(ctx, m)
			cancel()
			if err == nil {
				t.Errorf("%s: a rollup on %s was taken", who, subject)
			}
		}
	}
	keys2, err := piikeys.Open(t.Context(), pjs, 1)
	if err != nil {
		t.Fatal(err)
	}
	if after, err := keys2.TenantKey(t.Context(), "acme"); err != nil || string(after) != string(before) {
		t.Fatalf("the tenant's search key after the rollups: changed %v, %v", string(after) != string(before), err)
	}
	if _, err := akv.Get(t.Context(), "apr-kept"); err != nil {
		t.Fatalf("an approval after the rollups: %v", err)
	}
	if bs, err := admin.Stream(t.Context(), bus.BulkStream); err != nil {
		t.Fatal(err)
	} else if _, err := bs.GetLastMsgForSubject(t.Context(), piece); err != nil {
		t.Fatalf("a bulk piece after the rollups: %v", err)
	}
	if hkv, err := admin.KeyValue(t.Context(), bus.HeartbeatBucket); err != nil {
		t.Fatal(err)
	} else if _, err := hkv.Get(t.Context(), own); err != nil {
		t.Fatalf("a heartbeat after the rollups: %v", err)
	}

	// A bucket of an earlier release: the admin's open turns rollups off.
	st, _ := admin.Stream(t.Context(), "KV_"+bus.PIIKeysBucket)
	cfg := st.CachedInfo().Config
	cfg.AllowRollup = true
	if _, err := admin.UpdateStream(t.Context(), cfg); err != nil {
		t.Fatal(err)
	}
	if _, err := piikeys.Open(t.Context(), pjs, 1); err == nil || !strings.Contains(err.Error(), "keys pii") {
		t.Fatalf("a producer opening a bucket that allows rollups: %v, want a refusal naming keys pii", err)
	}
	if _, err := piikeys.Open(t.Context(), admin, 1); err != nil {
		t.Fatal(err)
	}
	if info, _ := st.Info(t.Context()); info.Config.AllowRollup {
		t.Fatal("the admin's open left rollups allowed")
	}
}
