package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/auditledger/auditledger/events"
	"github.com/auditledger/auditledger/events/eventstest"
	"github.com/auditledger/auditledger/ledger"
	"github.com/auditledger/auditledger/ledger/bus"
	"github.com/auditledger/auditledger/ledger/bus/emitter"
	"github.com/auditledger/auditledger/ledger/piikeys"
	"github.com/auditledger/auditledger/ledger/storeurl"
	"github.com/auditledger/auditledger/ledger/writer"
	"github.com/auditledger/auditledger/test/natstest"
	"github.com/auditledger/auditledger/test/versitygw"
)

// TestBulkPiecesOnS3: on versitygw with Object Lock, the writer copies
// each bulk piece a session.output names (published as a gateway does:
// sealed with piikeys.SealBulk, on AUDIT_BULK under its producer token)
// to bulk/<name>, locked COMPLIANCE at least as long as the segment
// naming it; verify checks and counts them; legal-hold set and release
// cover them and list them in the event; and a piece stored before with
// an earlier lock (a writer stopped before its segment) has its lock
// extended to the segment's when it is copied again.
func TestBulkPiecesOnS3(t *testing.T) {
	ctx := t.Context()
	gw := versitygw.Start(t)
	t.Setenv("AWS_ACCESS_KEY_ID", versitygw.AccessKey)
	t.Setenv("AWS_SECRET_ACCESS_KEY", versitygw.SecretKey)
	t.Setenv("AWS_SESSION_TOKEN", "")
	t.Setenv("AUDITLEDGER_OPERATOR", "")
	t.Setenv("AUDITLEDGER_TOKEN", "")
	storeURL := fmt.Sprintf("s3://%s/log?endpoint=%s&insecure=1&retention=1h", gw.Bucket(t), gw.Endpoint)
	store, err := storeurl.Open(ctx, storeURL)
	if err != nil {
		t.Fatal(err)
	}
	inspector := store.Store.(ledger.Inspector)

	srv := natstest.Start(t)
	_, js := srv.Connect(t)
	skey, vkey, _ := ledger.GenerateKey(nil, "bulk.test/log")
	signer, _ := ledger.NewNoteSigner(skey)
	wctx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() {
		done <- writer.Run(wctx, writer.Config{JetStream: js, Store: store.Store, Signer: signer, Retention: store.Retention,
			BatchSize: 50, MaxWait: 20 * time.Millisecond, LeaseTTL: time.Second, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	}()
	t.Cleanup(func() { stop(); <-done })
	natstest.CheckFor(t, 20*time.Second, 20*time.Millisecond, func() error {
		_, err := js.Stream(ctx, bus.BulkStream)
		return err
	})
	keys, err := piikeys.Open(ctx, js, 1)
	if err != nil {
		t.Fatal(err)
	}
	em, err := emitter.New(emitter.Config{JetStream: js})
	if err != nil {
		t.Fatal(err)
	}
	defer em.Close()
	var names []string
	for i, text := range []string{"first piece\n", "second piece\n"} {
		place := piikeys.BulkPlace{Tenant: "acme", Session: "ssh-7", Stream: "stdout", Offset: int64(i * 100)}
		object, pseudonym, err := keys.SealBulk(ctx, "https://idp.example", "alice", place, []byte(text))
		if err != nil {
			t.Fatal(err)
		}
		name := piikeys.BulkName(object)
		m := nats.NewMsg(bus.BulkSubject("t1", name))
		m.Data = object
		m.Header.Set(nats.MsgIdHdr, name)
		if _, err := js.PublishMsg(ctx, m); err != nil {
			t.Fatal(err)
		}
		names = append(names, name)
		ev := eventstest.Command(fmt.Sprintf("ssh-7.%d", i+1), "")
		ev.Type, ev.SessionID, ev.SessionSeq = events.SessionOutput, "ssh-7", uint64(i+1)
		ev.Payload, _ = json.Marshal(map[string]any{"stream": "stdout", "offset": place.Offset, "bytes": len(text),
			"bulk": map[string]any{"object": name, "pseudonym": pseudonym, "size": len(object)}})
		if res, err := em.Emit(ctx, ev); err != nil || res.Stored(false) != nil {
			t.Fatalf("emit %s: %v", ev.ID, err)
		}
	}
	natstest.CheckFor(t, 30*time.Second, 20*time.Millisecond, func() error {
		evs, err := sealedOfType(t, store.Store, events.SessionOutput)
		if err == nil && len(evs) != 2 {
			err = fmt.Errorf("%d session.output events sealed, want 2", len(evs))
		}
		return err
	})
	spans, err := ledger.Spans(ctx, store.Store, 0, ledger.ToEnd)
	if err != nil {
		t.Fatal(err)
	}
	// Each piece is locked as the first segment naming it.
	var segLock time.Time
	for _, s := range spans {
		if objs, err := ledger.SpanBulk(ctx, store.Store, s); err == nil && len(objs) > 0 {
			p, err := inspector.Inspect(ctx, s.Segment)
			if err != nil {
				t.Fatal(err)
			}
			segLock = p.RetainUntil
			break
		}
	}
	if segLock.IsZero() {
		t.Fatal("no segment names a bulk piece")
	}
	for _, n := range names {
		p, err := inspector.Inspect(ctx, ledger.BulkObjectName(n))
		if err != nil || !p.Locked || p.Mode != "COMPLIANCE" || p.RetainUntil.Before(segLock) {
			t.Fatalf("bulk/%s: %+v, %v; want locked COMPLIANCE until at least %s", n, p, err, segLock)
		}
	}
	out, errs, code := runCLI(t, "verify", "--store", storeURL, "--vkey", vkey, "--retention", "1h")
	if code != 0 || !strings.Contains(out, "bulk pieces  2 (") {
		t.Fatalf("verify: exit %d\n%s%s", code, out, errs)
	}

	// A legal hold over the log covers the pieces and lists them.
	out, errs, code = runCLI(t, "legal-hold", "set", "--store", storeURL, "--from", "0", "--to", fmt.Sprint(spans[len(spans)-1].End-1),
		"--reason", "case 9", "--operator", "alice", "--nats", srv.ClientURL())
	if code != 0 || !strings.Contains(out, "bulk piece(s)") {
		t.Fatalf("legal-hold set: exit %d\n%s%s", code, out, errs)
	}
	for _, n := range names {
		if p, err := inspector.Inspect(ctx, ledger.BulkObjectName(n)); err != nil || !p.LegalHold {
			t.Fatalf("bulk/%s after legal-hold set: %+v, %v", n, p, err)
		}
	}
	var sets []*events.Event
	natstest.CheckFor(t, 30*time.Second, 20*time.Millisecond, func() error {
		sets, err = sealedOfType(t, store.Store, events.LegalHoldSet)
		if err == nil && len(sets) != 1 {
			err = fmt.Errorf("%d legal_hold.set events sealed, want 1", len(sets))
		}
		return err
	})
	var hold ledger.LegalHold
	if err := json.Unmarshal(sets[0].Payload, &hold); err != nil {
		t.Fatal(err)
	}
	if hold.BulkPieces != len(names) {
		t.Fatalf("legal_hold.set bulk_pieces %d, want %d", hold.BulkPieces, len(names))
	}
	for _, o := range hold.Objects {
		if strings.HasPrefix(o, "bulk/") {
			t.Fatalf("legal_hold.set lists a piece among its objects: %v (the segments name them)", hold.Objects)
		}
	}
	out, errs, code = runCLI(t, "legal-hold", "release", "--store", storeURL, "--from", "0", "--to", fmt.Sprint(spans[len(spans)-1].End-1),
		"--reason", "case 9 closed", "--operator", "alice", "--nats", srv.ClientURL())
	if code != 0 {
		t.Fatalf("legal-hold release: exit %d\n%s%s", code, out, errs)
	}
	for _, n := range names {
		if p, err := inspector.Inspect(ctx, ledger.BulkObjectName(n)); err != nil || p.LegalHold {
			t.Fatalf("bulk/%s after legal-hold release: %+v, %v", n, p, err)
		}
	}

	// A piece copied by a seal that did not finish, locked until an
	// earlier date, is locked until the later seal's date when copied
	// again.
	object := []byte("an object copied before a crash, 28 bytes or more")
	piece := ledger.BulkPiece{Name: piikeys.BulkName(object), Size: int64(len(object)), Read: func(context.Context) ([]byte, error) { return object, nil }}
	early, late := time.Now().Add(10*time.Minute).Truncate(time.Second), time.Now().Add(2*time.Hour).Truncate(time.Second)
	if err := ledger.StoreBulk(ctx, store.Store, piece, early); err != nil {
		t.Fatal(err)
	}
	if err := ledger.StoreBulk(ctx, store.Store, piece, late); err != nil {
		t.Fatalf("copying a piece again with a later lock: %v", err)
	}
	if p, err := inspector.Inspect(ctx, ledger.BulkObjectName(piece.Name)); err != nil || p.RetainUntil.Before(late) || p.Mode != "COMPLIANCE" {
		t.Fatalf("the piece copied again: %+v, %v; want locked COMPLIANCE until at least %s", p, err, late)
	}
	// Other bytes under its name fail.
	bad := piece
	bad.Read = func(context.Context) ([]byte, error) { return append([]byte{}, object[1:]...), nil }
	if err := ledger.StoreBulk(ctx, store.Store, bad, late); err == nil {
		t.Fatal("a piece whose bytes are not its name's was stored")
	}
}
