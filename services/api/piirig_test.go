package api_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/auditledger/auditledger/events"
	"github.com/auditledger/auditledger/internal/oidcdev"
	"github.com/auditledger/auditledger/ledger"
	"github.com/auditledger/auditledger/ledger/bus"
	"github.com/auditledger/auditledger/ledger/bus/emitter"
	"github.com/auditledger/auditledger/ledger/file"
	"github.com/auditledger/auditledger/ledger/ingest"
	"github.com/auditledger/auditledger/ledger/ledgertest"
	"github.com/auditledger/auditledger/ledger/piikeys"
	"github.com/auditledger/auditledger/projections"
	"github.com/auditledger/auditledger/services/api"
	"github.com/auditledger/auditledger/services/approvals"
	"github.com/auditledger/auditledger/services/gateway"
	"github.com/auditledger/auditledger/services/identity"
	"github.com/auditledger/auditledger/test/natstest"
	"github.com/auditledger/auditledger/test/pgtest"
)

// piiRig is the whole path of personal data, of real parts: an OIDC
// issuer with users, a JetStream server, the key store as the API and a
// gateway (tenant acme) each open it, the ledger's writer sealing into a
// file store, a PostgreSQL projection of the log, and the API over it.
type piiRig struct {
	idp             *oidcdev.Server
	auth            identity.Authenticator
	tok             map[string]string // by user name
	js              jetstream.JetStream
	em              *emitter.Emitter
	apiBroker       *approvals.Broker
	apiKeys, gwKeys *piikeys.Store
	gw              *gateway.Gateway
	log             *ledger.Log
	db              *pgxpool.Pool
	pcfg            projections.Config
	srv             *httptest.Server
}

func newPIIRig(t *testing.T, users []oidcdev.User) *piiRig {
	t.Helper()
	x := &piiRig{tok: map[string]string{}}
	idp, err := oidcdev.Listen("127.0.0.1:0", oidcdev.Config{Audience: "auditledger", Users: users})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { idp.Close() })
	x.idp = idp
	v, err := identity.NewOIDC(t.Context(), identity.OIDCConfig{Issuer: idp.Issuer, Audience: "auditledger"})
	if err != nil {
		t.Fatal(err)
	}
	x.auth = v
	for _, u := range users {
		if x.tok[u.Name], err = identity.ClientCredentialsToken(t.Context(), idp.Issuer, u.Name, u.Secret); err != nil {
			t.Fatal(err)
		}
	}

	_, js := natstest.Start(t).Connect(t)
	x.js = js
	if err := bus.EnsureStreams(t.Context(), js, bus.StreamOptions{}); err != nil {
		t.Fatal(err)
	}
	if x.em, err = emitter.New(emitter.Config{JetStream: js, Timeout: 5 * time.Second}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { x.em.Close() })
	signer := ledgertest.Signer(t, "api.test/approvals")
	if x.apiBroker, err = approvals.New(t.Context(), approvals.Config{JetStream: js, Create: true, Signer: signer, Emitter: x.em, Source: events.Source{Kind: "api", Instance: "t"}}); err != nil {
		t.Fatal(err)
	}
	gwBroker, err := approvals.New(t.Context(), approvals.Config{JetStream: js, Verifier: signer.Verifier(), Emitter: x.em, Source: events.Source{Kind: "test-gateway", Instance: "g1"}})
	if err != nil {
		t.Fatal(err)
	}
	// The API and the gateway each open the key store, as their roles do.
	if x.apiKeys, err = piikeys.Open(t.Context(), js, 1); err != nil {
		t.Fatal(err)
	}
	if x.gwKeys, err = piikeys.Open(t.Context(), js, 1); err != nil {
		t.Fatal(err)
	}

	// The writer seals what the bus holds into the log; the projection
	// reads the log.
	store, _ := file.New(t.TempDir())
	logSigner := ledgertest.Signer(t, "api.test/log")
	if x.log, err = ledger.Open(t.Context(), ledger.Config{Store: store, Signer: logSigner}); err != nil {
		t.Fatal(err)
	}
	in, err := ingest.New(t.Context(), ingest.Config{JetStream: js, Log: x.log, Store: store, BatchSize: 50, MaxWait: 10 * time.Millisecond,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	ctx, stop := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- in.Run(ctx) }()
	t.Cleanup(func() { stop(); <-done })
	pg := pgtest.StartT(t)
	if x.db, err = pgxpool.New(t.Context(), pg.DSN(pg.NewDatabase(t))); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(x.db.Close)
	if err := projections.Migrate(t.Context(), x.db); err != nil {
		t.Fatal(err)
	}
	x.pcfg = projections.Config{DB: x.db, Store: store, Verifier: logSigner.Verifier()}

	h, err := api.New(api.Config{Auth: v, Approvals: x.apiBroker, Emitter: x.em, DB: x.db, Tenant: "ops", Keys: x.apiKeys})
	if err != nil {
		t.Fatal(err)
	}
	x.srv = httptest.NewServer(h)
	t.Cleanup(x.srv.Close)

	if x.gw, err = gateway.New(gateway.Config{Name: "testgw", Kind: "test-gateway", Tenant: "acme", Emitter: x.em, Keys: x.gwKeys, Approvals: gwBroker}); err != nil {
		t.Fatal(err)
	}
	if err := x.gw.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	return x
}

// call sends one request to the API as the holder of token.
func (x *piiRig) call(t *testing.T, method, path, token, body string) (int, string) {
	t.Helper()
	return callAPI(t, x.srv.URL, method, path, token, body)
}

// callAPI sends one request to the API at base, as the holder of token
// when there is one, and returns the status and body.
func callAPI(t *testing.T, base, method, path, token, body string) (int, string) {
	t.Helper()
	req, _ := http.NewRequest(method, base+path, strings.NewReader(body))
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// session starts a gateway session on target orders as the holder of
// token.
func (x *piiRig) session(t *testing.T, token string) *gateway.Session {
	t.Helper()
	actor, err := x.auth.Authenticate(t.Context(), "", token)
	if err != nil {
		t.Fatal(err)
	}
	s := x.gw.Session(events.Target{Kind: "postgres", Name: "orders"})
	s.Authenticated(gateway.Identity{Actor: actor, Method: gateway.OIDCToken})
	if err := s.Start(t.Context(), map[string]any{}); err != nil {
		t.Fatal(err)
	}
	return s
}

// pending waits for the one pending approval request.
func (x *piiRig) pending(t *testing.T) *approvals.Request {
	t.Helper()
	var r *approvals.Request
	natstest.CheckFor(t, 30*time.Second, 20*time.Millisecond, func() error {
		list, err := x.apiBroker.List(t.Context(), approvals.Pending)
		if err != nil || len(list) != 1 {
			return fmt.Errorf("pending: %d, %v", len(list), err)
		}
		r = list[0]
		return nil
	})
	return r
}

// project waits until the log holds every event on the bus, projects
// them, and checks that the writer took them all (none refused for what
// it holds).
func (x *piiRig) project(t *testing.T) {
	t.Helper()
	x.em.Wait()
	want := uint64(len(natstest.Events(t, x.js, "")))
	natstest.CheckFor(t, 60*time.Second, 20*time.Millisecond, func() error {
		if n := x.log.Size(); n < want {
			return fmt.Errorf("the log holds %d records, the bus %d events", n, want)
		}
		return nil
	})
	for {
		applied, err := projections.Step(t.Context(), x.pcfg)
		if err != nil {
			t.Fatal(err)
		}
		if !applied {
			break
		}
	}
	var ids []string
	for _, st := range natstest.Events(t, x.js, "") {
		ids = append(ids, st.Event.ID)
	}
	var n int
	if err := x.db.QueryRow(t.Context(), `SELECT count(*) FROM events WHERE id = ANY($1)`, ids).Scan(&n); err != nil || n != len(ids) {
		t.Fatalf("the projection holds %d of the %d events on the bus (%v)", n, len(ids), err)
	}
}
