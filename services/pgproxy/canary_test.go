package pgproxy_test

import (
	"bytes"
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/auditledger/auditledger/services/gateway/gatewaytest"
)

// Card numbers and e-mails sent through the proxy — in a WHERE clause, a
// bind parameter (recorded, by the policy), an IN list, a dollar-quoted
// string, comments, two literals joined by || and a failing cast whose
// error quotes the value —
// reach none of the bus's streams, as typed or as digits only, although
// the policy names no detector: the recording rule is always on.
func TestCanaryValuesNeverReachTheBus(t *testing.T) {
	card, card2, card3, card4 := gatewaytest.Card(t), gatewaytest.Card(t), gatewaytest.Card(t), gatewaytest.Card(t)
	email, email2 := gatewaytest.Email(t, "canary"), gatewaytest.Email(t, "other")
	f := startWithPolicyText(t, "version: 1\nparameters: record\n")
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
		// Split across two literals: neither half is a card number.
		{fmt.Sprintf("SELECT count(*) FROM people WHERE card = '%s' || '%s'", card4[:9], card4[9:]), []any{simple}},
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
	stored := gatewaytest.BusBytes(t, f.js)
	if !bytes.Contains(stored, []byte("[REDACTED:credit_card]")) || !bytes.Contains(stored, []byte("[REDACTED:email]")) {
		t.Fatalf("no placeholder on the bus: the statements were not recorded?\n%s", stored)
	}
	gatewaytest.CheckAbsent(t, stored, card, card2, card3, card4, card4[:9], card4[10:], email, email2)
}

// A statement held for approval is requested, decided and recorded by
// its scrubbed text — in the approvals bucket too — and on a grant the
// very statement the client sent runs, its values intact.
func TestCanaryHeldStatement(t *testing.T) {
	f := startOIDC(t, approvalPolicy)
	card, email := gatewaytest.Card(t), gatewaytest.Email(t, "held")
	direct := f.direct(t)
	if _, err := direct.Exec(t.Context(), "CREATE TABLE orders (id int)"); err != nil {
		t.Fatal(err)
	}
	stmt := fmt.Sprintf("ALTER TABLE orders ADD COLUMN card text DEFAULT '%s' -- asked by %s", card, email)
	cmd := f.psqlAs(t, "alice", stmt)
	var out strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	r := f.pending(t)
	if want := "ALTER TABLE orders ADD COLUMN card text DEFAULT '[REDACTED:credit_card]' -- asked by [REDACTED:email]"; r.Statement != want {
		t.Errorf("held statement %q, want %q", r.Statement, want)
	}
	if _, err := f.broker.Decide(t.Context(), r.ID, f.actor(t, "bob"), true, "reviewed"); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Fatalf("psql after approval: %v\n%s", err, out.String())
	}
	var def string
	if err := direct.QueryRow(t.Context(), "INSERT INTO orders (id) VALUES (1) RETURNING card").Scan(&def); err != nil || def != card {
		t.Fatalf("the statement that ran set the default %q (%v), want the card number as sent", def, err)
	}
	f.checkPairs(t)
	gatewaytest.CheckAbsent(t, gatewaytest.BusBytes(t, f.js), card, email)
}
