package pgproxy_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"fmt"
	"math/big"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/auditledger/auditledger/ledger/bus/emitter"
	"github.com/auditledger/auditledger/services/pgproxy"
	"github.com/auditledger/auditledger/test/natstest"
)

// canaryCard is a Luhn-valid card number unique to one test, written in
// groups of four ("4xxx xxxx xxxx xxxx").
func canaryCard(t *testing.T) string {
	t.Helper()
	d := make([]int, 15)
	d[0] = 4
	for i := 1; i < 15; i++ {
		n, err := rand.Int(rand.Reader, big.NewInt(10))
		if err != nil {
			t.Fatal(err)
		}
		d[i] = int(n.Int64())
	}
	sum := 0
	for i := range d { // from the right, the check digit's neighbour doubles
		v := d[14-i]
		if i%2 == 0 {
			if v *= 2; v > 9 {
				v -= 9
			}
		}
		sum += v
	}
	d = append(d, (10-sum%10)%10)
	var b strings.Builder
	for i, v := range d {
		if i > 0 && i%4 == 0 {
			b.WriteByte(' ')
		}
		fmt.Fprint(&b, v)
	}
	return b.String()
}

// busBytes reads every message the bus stores, in every stream, raw.
func busBytes(t *testing.T, js jetstream.JetStream) []byte {
	t.Helper()
	var all []byte
	names := js.StreamNames(t.Context())
	for name := range names.Name() {
		s, err := js.Stream(t.Context(), name)
		if err != nil {
			t.Fatal(err)
		}
		info, err := s.Info(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		for seq := info.State.FirstSeq; info.State.Msgs > 0 && seq <= info.State.LastSeq; seq++ {
			m, err := s.GetMsg(t.Context(), seq)
			if err != nil {
				continue // deleted
			}
			all = append(append(all, m.Data...), '\n')
		}
	}
	if err := names.Err(); err != nil {
		t.Fatal(err)
	}
	return all
}

// Card numbers and e-mails sent through the proxy — in a WHERE clause, a
// bind parameter (recorded, by the policy), an IN list, a dollar-quoted
// string, comments and a failing cast whose error quotes the value —
// reach none of the bus's streams, as typed or as digits only, although
// the policy names no detector: the recording rule is always on.
func TestCanaryValuesNeverReachTheBus(t *testing.T) {
	card, card2, card3 := canaryCard(t), canaryCard(t), canaryCard(t)
	var rnd [6]byte
	rand.Read(rnd[:])
	email := fmt.Sprintf("canary.%x@example.org", rnd)
	email2 := fmt.Sprintf("other.%x@example.net", rnd)
	pol, err := pgproxy.ParsePolicy("canary", []byte("version: 1\nparameters: record\n"))
	if err != nil {
		t.Fatal(err)
	}
	srv := natstest.Start(t)
	_, js := srv.Connect(t, nats.MaxReconnects(-1))
	em, err := emitter.New(emitter.Config{JetStream: js, Timeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	f := serve(t, srv, js, em, pgproxy.Config{Policy: pol})
	if _, err := f.direct(t).Exec(t.Context(), `CREATE TABLE people (email text, card text)`); err != nil {
		t.Fatal(err)
	}
	conn, err := pgx.Connect(t.Context(), f.url("alice", "alice-secret"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	simple := pgx.QueryExecModeSimpleProtocol
	for _, q := range []struct {
		sql  string
		args []any
	}{
		{fmt.Sprintf("SELECT count(*) FROM people WHERE card = '%s' OR email = '%s'", card, email), []any{simple}},
		{"SELECT count(*) FROM people WHERE card = $1 OR email = $2", []any{strings.ReplaceAll(card2, " ", ""), email2}},
		{fmt.Sprintf("SELECT count(*) FROM people WHERE email IN ('nobody@x', '%s', E'%s')", email2, email), nil},
		{fmt.Sprintf("SELECT count(*) FROM people WHERE card = $q$%s$q$", strings.ReplaceAll(card3, " ", "-")), nil},
		{fmt.Sprintf("SELECT count(*) FROM people -- asked by %s\n WHERE card <> /* %s */ 'x'", email, card3), []any{simple}},
		{fmt.Sprintf("SELECT count(*) FROM people WHERE card = %s::text", strings.ReplaceAll(card, " ", "")), []any{simple}},
	} {
		var n int
		if err := conn.QueryRow(t.Context(), q.sql, q.args...).Scan(&n); err != nil {
			t.Fatalf("%s: %v", q.sql, err)
		}
	}
	// The server's error quotes the value it could not convert.
	if _, err := conn.Exec(t.Context(), fmt.Sprintf("SELECT '%s'::int", strings.ReplaceAll(card2, " ", "")), simple); err == nil {
		t.Fatal("a card number cast to int did not fail")
	}
	f.checkPairs(t)
	stored := busBytes(t, js)
	if !bytes.Contains(stored, []byte("[REDACTED:credit_card]")) || !bytes.Contains(stored, []byte("[REDACTED:email]")) {
		t.Fatalf("no placeholder on the bus: the statements were not recorded?\n%s", stored)
	}
	for _, v := range []string{card, card2, card3, email, email2} {
		for _, form := range []string{v, strings.ReplaceAll(v, " ", ""), strings.ReplaceAll(v, " ", "-")} {
			if i := bytes.Index(stored, []byte(form)); i >= 0 {
				t.Errorf("the bus stores %q: …%s…", form, stored[max(0, i-200):min(len(stored), i+100)])
			}
		}
	}
}
