package pgproxy_test

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgproto3"
	"github.com/nats-io/nats.go"

	"github.com/auditledger/auditledger/events"
	"github.com/auditledger/auditledger/ledger/bus/emitter"
	"github.com/auditledger/auditledger/ledger/piikeys"
	"github.com/auditledger/auditledger/services/gateway"
	"github.com/auditledger/auditledger/services/pgproxy"
	"github.com/auditledger/auditledger/test/natstest"
)

// TestDigestIsOverTheWireRows checks the response.digest contract of
// docs/FORMAT.md from the client's side: a raw protocol client digests
// the DataRow messages it receives under the tenant's search key and
// finds the same HMAC in the ledger.
func TestDigestIsOverTheWireRows(t *testing.T) {
	f := start(t)
	conn, err := net.Dial("tcp", f.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	fe := pgproto3.NewFrontend(conn, conn)
	fe.Send(&pgproto3.StartupMessage{ProtocolVersion: pgproto3.ProtocolVersionNumber, Parameters: map[string]string{"user": "alice", "database": f.db}})
	fe.Flush()
	receiveUntil := func(stop func(pgproto3.BackendMessage) bool) []pgproto3.BackendMessage {
		var msgs []pgproto3.BackendMessage
		for {
			m, err := fe.Receive()
			if err != nil {
				t.Fatal(err)
			}
			switch m := m.(type) {
			case *pgproto3.AuthenticationCleartextPassword:
				fe.Send(&pgproto3.PasswordMessage{Password: "alice-secret"})
				fe.Flush()
				continue
			case *pgproto3.ErrorResponse:
				t.Fatalf("server error: %s", m.Message)
			case *pgproto3.DataRow:
				// Receive reuses the message: keep its encoding.
				b, _ := m.Encode(nil)
				msgs = append(msgs, &pgproto3.CopyData{Data: b})
			}
			if stop(m) {
				return msgs
			}
		}
	}
	isReady := func(m pgproto3.BackendMessage) bool { _, ok := m.(*pgproto3.ReadyForQuery); return ok }
	receiveUntil(isReady)
	fe.Send(&pgproto3.Query{String: "SELECT g, 'row ' || g, NULL::text FROM generate_series(1, 50) g"})
	fe.Flush()
	rows := receiveUntil(isReady)
	key, err := f.keys.TenantKey(t.Context(), "acme")
	if err != nil {
		t.Fatal(err)
	}
	var all []byte
	for _, r := range rows {
		all = append(all, r.(*pgproto3.CopyData).Data...)
	}
	n, want := len(all), gateway.KeyedDigest(key, gateway.ResponseLabel, all)
	fe.Send(&pgproto3.Terminate{})
	fe.Flush()

	f.checkPairs(t)
	for _, r := range f.eventsOf(t) {
		if r.ev.Type == events.ResponseDigest && r.payload["command_tag"] == "SELECT 50" {
			if r.payload["hmac"] != want || r.payload["sha256"] != nil || r.payload["bytes"].(float64) != float64(n) || r.payload["rows"].(float64) != 50 {
				t.Fatalf("digest %v; the client computed %s over %d bytes", r.payload, want, n)
			}
			return
		}
	}
	t.Fatal("no digest for the SELECT")
}

// TestOneRowResultHasNoUnkeyedDigest: a result of one row holding a card
// number is a dictionary away from an unkeyed digest of it (an issuer
// prefix and the Luhn digit leave about 10⁹ candidates). Neither the
// SHA-256 of the DataRow message the client received nor that of the
// value may appear in any recorded event; the keyed digest does.
func TestOneRowResultHasNoUnkeyedDigest(t *testing.T) {
	f := start(t)
	const card = "4012888888881881"
	db := f.direct(t)
	if _, err := db.Exec(t.Context(), "CREATE TABLE cards (pan text); INSERT INTO cards VALUES ('"+card+"')"); err != nil {
		t.Fatal(err)
	}
	if out, err := psql(t, f.url("alice", "alice-secret"), "SELECT pan FROM cards"); err != nil || strings.TrimSpace(out) != card {
		t.Fatalf("psql through the proxy: %v\n%s", err, out)
	}
	f.checkPairs(t)
	row, _ := (&pgproto3.DataRow{Values: [][]byte{[]byte(card)}}).Encode(nil)
	key, err := f.keys.TenantKey(t.Context(), "acme")
	if err != nil {
		t.Fatal(err)
	}
	unkeyed := map[string]string{"the DataRow message": sum(row), "the value": sum([]byte(card))}
	found := false
	for _, st := range natstest.Events(t, f.js, "") {
		for what, s := range unkeyed {
			if bytes.Contains(bytes.ToLower(st.Raw), []byte(s)) {
				t.Errorf("event %s holds the unkeyed SHA-256 of %s: %s", st.Event.ID, what, st.Raw)
			}
		}
		if st.Event.Type == events.ResponseDigest && st.Payload["command_tag"] == "SELECT 1" {
			found = true
			if want := gateway.KeyedDigest(key, gateway.ResponseLabel, row); st.Payload["hmac"] != want || len(st.Payload) != 5 {
				t.Errorf("digest %v, want hmac %s and no other digest", st.Payload, want)
			}
		}
	}
	if !found {
		t.Fatal("no digest for the SELECT")
	}
}

func sum(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

// A key store that does not answer leaves results without a digest — an
// unkeyed one never stands in — and the statements run and are recorded.
func TestResultWithoutKeyHasNoDigest(t *testing.T) {
	srv := natstest.Start(t)
	_, js := srv.Connect(t, nats.MaxReconnects(-1))
	em, err := emitter.New(emitter.Config{JetStream: js, Timeout: time.Second, Retries: 1})
	if err != nil {
		t.Fatal(err)
	}
	other := natstest.Start(t) // the key store's bus, stopped below
	_, kjs := other.Connect(t)
	keys, err := piikeys.Open(t.Context(), kjs, 1)
	if err != nil {
		t.Fatal(err)
	}
	other.Shutdown()
	f := serve(t, srv, js, em, pgproxy.Config{Target: "orders", Keys: keys})
	const card = "4012888888881881"
	if _, err := f.direct(t).Exec(t.Context(), "CREATE TABLE cards (pan text); INSERT INTO cards VALUES ('"+card+"')"); err != nil {
		t.Fatal(err)
	}
	if out, err := psql(t, f.url("alice", "alice-secret"), "SELECT pan FROM cards", "SELECT 2"); err != nil || strings.Fields(out)[0] != card {
		t.Fatalf("psql through the proxy: %v\n%s", err, out)
	}
	f.checkPairs(t)
	row, _ := (&pgproto3.DataRow{Values: [][]byte{[]byte(card)}}).Encode(nil)
	digests := 0
	for _, st := range natstest.Events(t, f.js, "") {
		if bytes.Contains(st.Raw, []byte(sum(row))) || bytes.Contains(st.Raw, []byte(sum([]byte(card)))) {
			t.Errorf("event %s holds an unkeyed digest of the result: %s", st.Event.ID, st.Raw)
		}
		if st.Event.Type == events.ResponseDigest {
			digests++
			if st.Payload["hmac"] != nil || st.Payload["sha256"] != nil {
				t.Errorf("digest without the key: %v", st.Payload)
			}
		}
	}
	if digests != 2 {
		t.Errorf("%d response.digest events, want 2", digests)
	}
}
