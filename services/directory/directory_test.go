package directory_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/auditledger/auditledger/events"
	"github.com/auditledger/auditledger/internal/oidcdev"
	"github.com/auditledger/auditledger/ledger"
	"github.com/auditledger/auditledger/ledger/bus"
	"github.com/auditledger/auditledger/ledger/bus/emitter"
	"github.com/auditledger/auditledger/ledger/file"
	"github.com/auditledger/auditledger/ledger/ingest"
	"github.com/auditledger/auditledger/ledger/piikeys"
	"github.com/auditledger/auditledger/services/directory"
	"github.com/auditledger/auditledger/test/natstest"
)

// counting counts the requests a client sends.
type counting struct{ n atomic.Int64 }

func (c *counting) RoundTrip(r *http.Request) (*http.Response, error) {
	c.n.Add(1)
	return http.DefaultTransport.RoundTrip(r)
}

var users = []oidcdev.User{
	{Name: "alice", Secret: "a", Groups: []string{"dba", "tenant:acme"}},
	{Name: "bob", Secret: "b", Groups: []string{"approver"}},
	{Name: "carol", Secret: "c", Groups: []string{"auditor", "dba"}},
	{Name: "dana@example.com", Secret: "d", Email: "dana@example.com", Groups: []string{"dba"}},
	{Name: "agent", Secret: "e", Groups: []string{"agents"}, Machine: true},
}

// TestSnapshotOverSCIM: the development provider's SCIM service, read
// page by page over HTTP, becomes identity.snapshot events that the
// writer seals (real NATS, a real writer, the key store): identities as
// actors are recorded — an e-mail subject as its pseudonym, no address
// anywhere — each group with its members' count and digest, and the log
// verifies.
func TestSnapshotOverSCIM(t *testing.T) {
	ctx := t.Context()
	idp, err := oidcdev.Listen("127.0.0.1:0", oidcdev.Config{Audience: "auditledger", Users: users, SCIMToken: "scim-secret", SCIMPageSize: 2})
	if err != nil {
		t.Fatal(err)
	}
	defer idp.Close()
	rt := &counting{}
	c := &directory.SCIM{BaseURL: idp.Issuer + "/scim/v2", Token: "scim-secret", PageSize: 10, Client: &http.Client{Transport: rt}}

	// A wrong token is refused, and the error says so.
	bad := *c
	bad.Token = "wrong"
	if _, err := directory.FromSCIM(ctx, &bad, directory.SubjectUserName); !errors.Is(err, directory.ErrSCIM) || !strings.Contains(err.Error(), "HTTP 401") {
		t.Fatalf("a wrong token: %v", err)
	}
	rt.n.Store(0)

	srv := natstest.Start(t)
	_, js := srv.Connect(t)
	if err := bus.EnsureStreams(ctx, js, bus.StreamOptions{}); err != nil {
		t.Fatal(err)
	}
	keys, err := piikeys.Open(ctx, js, 1)
	if err != nil {
		t.Fatal(err)
	}
	em, err := emitter.New(emitter.Config{JetStream: js})
	if err != nil {
		t.Fatal(err)
	}
	store, _ := file.New(t.TempDir())
	skey, _, _ := ledger.GenerateKey(nil, "directory.test/log")
	signer, _ := ledger.NewNoteSigner(skey)
	wctx, stop := context.WithCancel(context.Background())
	l, err := ledger.Open(wctx, ledger.Config{Store: store, Signer: signer})
	if err != nil {
		t.Fatal(err)
	}
	in, err := ingest.New(wctx, ingest.Config{JetStream: js, Log: l, Store: store, MaxWait: 20 * time.Millisecond, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	wg.Go(func() { in.Run(wctx) })
	defer func() { stop(); wg.Wait() }()

	const issuer = "https://idp.example"
	r := &directory.Recorder{
		Read: func(ctx context.Context) (*directory.Snapshot, error) {
			return directory.FromSCIM(ctx, c, directory.SubjectUserName)
		},
		Emit: func(ctx context.Context, ev *events.Event) error { _, err := em.Emit(ctx, ev); return err },
		Keys: keys, Tenant: "acme", Issuer: issuer, Source: events.Source{Kind: "api", Instance: "api-1"}, Logger: slog.New(slog.DiscardHandler),
	}
	evs, err := r.Once(ctx)
	if err != nil {
		t.Fatal(err)
	}
	// 5 users and 6 groups in pages of 2: 3 + 3 requests.
	if n := rt.n.Load(); n != 6 {
		t.Errorf("%d SCIM requests, want 6 (pages of 2)", n)
	}
	if len(evs) != 1 {
		t.Fatalf("%d events, want 1", len(evs))
	}
	natstest.CheckFor(t, 20*time.Second, 20*time.Millisecond, func() error {
		if l.Size() < 1 {
			return fmt.Errorf("sealed %d", l.Size())
		}
		return nil
	})
	var sealed []byte
	ledger.ReadRecords(ctx, store, 0, func(i uint64, rec []byte) error {
		rr, _ := ledger.ParseRecord(rec)
		if ev, err := events.Parse(rr.Event); err == nil && ev.Type == events.IdentitySnapshot {
			sealed = rr.Event
		} else {
			t.Errorf("record %d: %v %s", i, err, rr.Event)
		}
		return nil
	})
	if sealed == nil {
		t.Fatal("no identity.snapshot sealed")
	}
	if bytes.Contains(sealed, []byte("@")) {
		t.Errorf("an address in the sealed snapshot: %s", sealed)
	}
	ev, _ := events.Parse(sealed)
	var p struct {
		Source, Issuer, Endpoint string
		Users, Active, Part      int
		Parts                    int
		ListingSHA256            string `json:"listing_sha256"`
		Members                  []struct {
			Subject string
			Active  bool
			Kind    string
			Groups  []string
		}
		Groups []struct {
			Name          string
			Members       int
			MembersSHA256 string `json:"members_sha256"`
		}
	}
	if err := json.Unmarshal(ev.Payload, &p); err != nil {
		t.Fatal(err)
	}
	pseudonym, err := keys.Pseudonym(ctx, "acme", issuer, "dana@example.com")
	if err != nil {
		t.Fatal(err)
	}
	var listing strings.Builder
	subjects := map[string]string{}
	for _, m := range p.Members {
		fmt.Fprintf(&listing, "%s\t%t\t%s\t%s\n", m.Subject, m.Active, m.Kind, strings.Join(m.Groups, ","))
		subjects[m.Subject] = strings.Join(m.Groups, ",") + "/" + m.Kind
	}
	want := map[string]string{"agent": "agents/machine", "alice": "dba,tenant:acme/human", "bob": "approver/human", "carol": "auditor,dba/human",
		"pseudonym:" + pseudonym: "dba/human"}
	if fmt.Sprint(subjects) != fmt.Sprint(want) || p.Users != 5 || p.Active != 5 || p.Source != "scim" || p.Parts != 1 {
		t.Errorf("members %v (users %d, active %d, source %s, parts %d), want %v", subjects, p.Users, p.Active, p.Source, p.Parts, want)
	}
	if h := sha256.Sum256([]byte(listing.String())); p.ListingSHA256 != hex.EncodeToString(h[:]) {
		t.Errorf("listing_sha256 %s is not the listing's", p.ListingSHA256)
	}
	for _, g := range p.Groups {
		if g.Name != "dba" {
			continue
		}
		dba := []string{"alice", "carol", "pseudonym:" + pseudonym}
		h := sha256.Sum256([]byte(strings.Join(dba, "\n") + "\n"))
		if g.Members != 3 || g.MembersSHA256 != hex.EncodeToString(h[:]) {
			t.Errorf("group dba: %+v, want 3 members hashing to %x", g, h)
		}
	}
	if _, err := ledger.Verify(ctx, store, ledger.VerifyOptions{Verifier: signer.Verifier()}); err != nil {
		t.Fatalf("verify: %v", err)
	}
}
