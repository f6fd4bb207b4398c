package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/auditledger/auditledger/events"
	"github.com/auditledger/auditledger/events/eventstest"
	"github.com/auditledger/auditledger/internal/oidcdev"
	"github.com/auditledger/auditledger/ledger"
	"github.com/auditledger/auditledger/ledger/bus/emitter"
	"github.com/auditledger/auditledger/ledger/storeurl"
	"github.com/auditledger/auditledger/ledger/writer"
	"github.com/auditledger/auditledger/services/identity"
	"github.com/auditledger/auditledger/test/natstest"
	"github.com/auditledger/auditledger/test/testnet"
	"github.com/auditledger/auditledger/test/versitygw"
)

// sealedOfType reads the log's events of type typ.
func sealedOfType(t *testing.T, store ledger.SegmentStore, typ events.Type) ([]*events.Event, error) {
	var out []*events.Event
	err := ledger.ReadRecords(t.Context(), store, 0, func(_ uint64, rec []byte) error {
		r, err := ledger.ParseRecord(rec)
		if err != nil {
			return err
		}
		ev, err := events.Parse(r.Event)
		if err == nil && ev.Type == typ {
			out = append(out, ev)
		}
		return err
	})
	return out, err
}

// TestLegalHoldOnS3: the whole path on versitygw with a 2-second
// retention. A hold is recorded on the bus before it is applied (with the
// bus unreachable nothing is applied); the held segment outlives its
// retention; verify lists the hold with its event; the release is recorded
// and sealed too, and then the segment can be deleted.
func TestLegalHoldOnS3(t *testing.T) {
	ctx := t.Context()
	gw := versitygw.Start(t)
	t.Setenv("AWS_ACCESS_KEY_ID", versitygw.AccessKey)
	t.Setenv("AWS_SECRET_ACCESS_KEY", versitygw.SecretKey)
	t.Setenv("AWS_SESSION_TOKEN", "")
	t.Setenv("AUDITLEDGER_OPERATOR", "")
	t.Setenv("AUDITLEDGER_TOKEN", "")
	storeURL := fmt.Sprintf("s3://%s/log?endpoint=%s&insecure=1&retention=2s", gw.Bucket(t), gw.Endpoint)
	store, err := storeurl.Open(ctx, storeURL)
	if err != nil {
		t.Fatal(err)
	}
	inspector := store.Store.(ledger.Inspector)
	deleter := store.Store.(ledger.Deleter)

	srv := natstest.Start(t)
	_, js := srv.Connect(t)
	skey, vkey, _ := ledger.GenerateKey(nil, "legalhold.test/log")
	signer, _ := ledger.NewNoteSigner(skey)
	wctx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() {
		done <- writer.Run(wctx, writer.Config{JetStream: js, Store: store.Store, Signer: signer, Retention: store.Retention,
			BatchSize: 5, MaxWait: 20 * time.Millisecond, LeaseTTL: time.Second, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	}()
	t.Cleanup(func() { stop(); <-done })
	em, err := emitter.New(emitter.Config{JetStream: js})
	if err != nil {
		t.Fatal(err)
	}
	defer em.Close()
	for i := range 12 {
		if _, err := em.Emit(ctx, eventstest.Command(fmt.Sprintf("ev-%d", i), "")); err != nil {
			t.Fatal(err)
		}
	}
	natstest.CheckFor(t, 30*time.Second, 20*time.Millisecond, func() error {
		evs, err := sealedOfType(t, store.Store, events.CommandExecuted)
		if err == nil && len(evs) != 12 {
			err = fmt.Errorf("%d events sealed, want 12", len(evs))
		}
		return err
	})
	spans, err := ledger.Spans(ctx, store.Store, 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	seg := spans[0].Segment

	// The bus unreachable: the command fails, says so, and holds nothing.
	closed := fmt.Sprintf("nats://127.0.0.1:%d", testnet.Port(t))
	out, errs, code := runCLI(t, "legal-hold", "set", "--store", storeURL, "--from", "0", "--to", "0", "--reason", "case 7", "--operator", "alice", "--nats", closed)
	if code == 0 || !strings.Contains(errs, "nothing was applied") {
		t.Fatalf("legal-hold set with the bus down: exit %d\n%s%s", code, out, errs)
	}
	if p, err := inspector.Inspect(ctx, seg); err != nil || p.LegalHold {
		t.Fatalf("after a refused legal-hold set: %+v, %v", p, err)
	}

	// The operator named by address: recorded by pseudonym (the writer
	// refuses an address in clear, so recorded it must be).
	out, errs, code = runCLI(t, "legal-hold", "set", "--store", storeURL, "--from", "0", "--to", "0", "--reason", "case 7", "--operator", "alice.operator@example.com", "--nats", srv.ClientURL())
	if code != 0 || !strings.Contains(out, "recorded legal_hold.set") || !strings.Contains(out, seg) {
		t.Fatalf("legal-hold set: exit %d\n%s%s", code, out, errs)
	}
	for _, name := range []string{seg, spans[0].Checkpoint} {
		if p, err := inspector.Inspect(ctx, name); err != nil || !p.LegalHold {
			t.Fatalf("%s after legal-hold set: %+v, %v", name, p, err)
		}
	}
	out, _, code = runCLI(t, "legal-hold", "status", "--store", storeURL, "--held")
	if code != 0 || !strings.Contains(out, seg+"  records 0..") || !strings.Contains(out, "1 of ") {
		t.Fatalf("legal-hold status: exit %d\n%s", code, out)
	}

	// Its retention ends (polled on the object itself); the hold keeps it.
	natstest.CheckFor(t, time.Minute, 100*time.Millisecond, func() error {
		p, err := inspector.Inspect(ctx, seg)
		if err == nil && !time.Now().After(p.RetainUntil) {
			err = fmt.Errorf("%s locked until %s", seg, p.RetainUntil)
		}
		return err
	})
	if err := deleter.Delete(ctx, seg); !errors.Is(err, ledger.ErrProtected) {
		t.Fatalf("deleting a held segment after its retention: %v, want ErrProtected", err)
	}

	// verify lists the hold, with the sealed event that records it.
	natstest.CheckFor(t, 30*time.Second, 20*time.Millisecond, func() error {
		evs, err := sealedOfType(t, store.Store, events.LegalHoldSet)
		if err == nil && len(evs) != 1 {
			err = fmt.Errorf("%d legal_hold.set events sealed, want 1", len(evs))
		}
		if err == nil && !strings.HasPrefix(evs[0].Actor.Subject, "pseudonym:") {
			t.Fatalf("legal_hold.set recorded its operator as %q, want a pseudonym", evs[0].Actor.Subject)
		}
		return err
	})
	out, errs, code = runCLI(t, "verify", "--store", storeURL, "--vkey", vkey)
	if code != 0 || !strings.Contains(out, "legal hold   "+seg) || !strings.Contains(out, "legal_hold.set at record ") || !strings.Contains(out, "case 7") {
		t.Fatalf("verify: exit %d\n%s%s", code, out, errs)
	}

	// The release is by a person with an OIDC token: a wrong one changes
	// nothing, the right one is recorded under its subject.
	idp, err := oidcdev.Listen("127.0.0.1:0", oidcdev.Config{Audience: "auditledger", Users: []oidcdev.User{{Name: "carol", Secret: "carol-secret"}}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { idp.Close() })
	token, err := identity.ClientCredentialsToken(ctx, idp.Issuer, "carol", "carol-secret")
	if err != nil {
		t.Fatal(err)
	}
	out, errs, code = runCLI(t, "legal-hold", "release", "--store", storeURL, "--from", "0", "--to", "0", "--reason", "case 7 closed", "--token", token+"x", "--oidc-issuer", idp.Issuer, "--nats", srv.ClientURL())
	if code == 0 || !strings.Contains(errs, "--token") {
		t.Fatalf("legal-hold release with a forged token: exit %d\n%s%s", code, out, errs)
	}
	if p, err := inspector.Inspect(ctx, seg); err != nil || !p.LegalHold {
		t.Fatalf("after a refused release: %+v, %v", p, err)
	}
	out, errs, code = runCLI(t, "legal-hold", "release", "--store", storeURL, "--from", "0", "--to", "0", "--reason", "case 7 closed", "--token", token, "--oidc-issuer", idp.Issuer, "--nats", srv.ClientURL())
	if code != 0 || !strings.Contains(out, "recorded legal_hold.released") {
		t.Fatalf("legal-hold release: exit %d\n%s%s", code, out, errs)
	}
	var released []*events.Event
	natstest.CheckFor(t, 30*time.Second, 20*time.Millisecond, func() error {
		released, err = sealedOfType(t, store.Store, events.LegalHoldReleased)
		if err == nil && len(released) != 1 {
			err = fmt.Errorf("%d legal_hold.released events sealed, want 1", len(released))
		}
		return err
	})
	var hold ledger.LegalHold
	if err := json.Unmarshal(released[0].Payload, &hold); err != nil {
		t.Fatal(err)
	}
	if released[0].Actor.Subject != "carol" || released[0].Actor.Issuer != idp.Issuer || hold.Reason != "case 7 closed" || hold.From != 0 || hold.To != 0 ||
		len(hold.Objects) != 2 || hold.Objects[0] != seg || hold.Objects[1] != spans[0].Checkpoint {
		t.Fatalf("sealed release: actor %+v, payload %+v", released[0].Actor, hold)
	}
	if err := deleter.Delete(ctx, seg); err != nil {
		t.Fatalf("deleting the segment once released and past its retention: %v", err)
	}
}
