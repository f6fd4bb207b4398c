package pgproxy_test

import (
	"crypto/sha256"
	"encoding/hex"
	"net"
	"testing"

	"github.com/jackc/pgx/v5/pgproto3"

	"github.com/auditledger/auditledger/events"
)

// TestDigestIsOverTheWireRows checks the response.digest contract of
// docs/FORMAT.md from the client's side: a raw protocol client hashes the
// DataRow messages it receives and finds the same SHA-256 in the ledger.
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
	h := sha256.New()
	n := 0
	for _, r := range rows {
		b := r.(*pgproto3.CopyData).Data
		h.Write(b)
		n += len(b)
	}
	want := hex.EncodeToString(h.Sum(nil))
	fe.Send(&pgproto3.Terminate{})
	fe.Flush()

	f.checkPairs(t)
	for _, r := range f.eventsOf(t) {
		if r.ev.Type == events.ResponseDigest && r.payload["command_tag"] == "SELECT 50" {
			if r.payload["sha256"] != want || r.payload["bytes"].(float64) != float64(n) || r.payload["rows"].(float64) != 50 {
				t.Fatalf("digest %v; the client computed %s over %d bytes", r.payload, want, n)
			}
			return
		}
	}
	t.Fatal("no digest for the SELECT")
}
