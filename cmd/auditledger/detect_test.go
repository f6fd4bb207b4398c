package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/auditledger/auditledger/ledger"
	"github.com/auditledger/auditledger/ledger/bus"
	"github.com/auditledger/auditledger/ledger/file"
	"github.com/auditledger/auditledger/test/natstest"
)

// detectLines are events for append and emit: two clean ones around
// three that hold values a detector finds, a card number in a statement,
// an e-mail address in a member name, and the actor's e-mail in clear
// under an escaped member name.
const (
	detectCard  = "4539 1488 0343 6467"
	detectEmail = "emit.canary.5c1e@example.org"
)

func detectLines() string {
	evAs := func(id, actor, payload string) string {
		return `{"version":1,"id":"` + id + `","type":"command.executed","time":"2026-12-06T12:00:00Z","tenant":"acme","source":{"kind":"postgres-proxy","instance":"p1"},` +
			`"actor":{"issuer":"https://idp.example","subject":"alice",` + actor + `"kind":"human"},"payload":` + payload + `}`
	}
	ev := func(id, payload string) string { return evAs(id, "", payload) }
	return strings.Join([]string{
		ev("ok-1", `{"statement":"SELECT 1"}`),
		ev("pii-1", `{"statement":"SELECT * FROM cards WHERE number = '`+detectCard+`'"}`),
		ev("pii-2", `{"headers":{"`+detectEmail+`":"v"}}`),
		evAs("pii-3", `"em\u0061il":"`+strings.Replace(detectEmail, "@", ".actor@", 1)+`",`, `{"statement":"SELECT 3"}`),
		ev("ok-2", `{"statement":"SELECT 2"}`),
	}, "\n") + "\n"
}

var detectReasons = []string{
	`line 2: rejected: event "pii-1" holds a value the credit_card detector finds at payload.statement`,
	`line 3: rejected: event "pii-2" holds a value the email detector finds at payload.headers["[REDACTED:email]"]`,
	`line 4: rejected: event "pii-3" holds a value the email detector finds at actor.email`,
}

func noDetectedValue(t *testing.T, what string, b []byte) {
	t.Helper()
	for _, v := range []string{detectCard, strings.ReplaceAll(detectCard, " ", ""), "03436467", detectEmail, "emit.canary"} {
		if bytes.Contains(b, []byte(v)) {
			t.Errorf("%s holds %q:\n%s", what, v, b)
		}
	}
}

// TestAppendRejectsDetectedValues: append seals the clean lines only; the
// others are reported by line, event and detector, never by value, and
// the --rejected file keeps their reason without their bytes.
func TestAppendRejectsDetectedValues(t *testing.T) {
	dir := t.TempDir()
	ctx := context.Background()
	if err := run(ctx, []string{"keys", "generate", "--out", dir + "/k"}, nil, &bytes.Buffer{}, &bytes.Buffer{}); err != nil {
		t.Fatal(err)
	}
	var stderr bytes.Buffer
	rejectedFile := filepath.Join(dir, "rejected.jsonl")
	err := run(ctx, []string{"append", "--store", dir + "/s", "--key", dir + "/k/ledger.key", "--rejected", rejectedFile}, strings.NewReader(detectLines()), &bytes.Buffer{}, &stderr)
	if err == nil || !strings.Contains(err.Error(), "3 of 5 lines rejected") {
		t.Fatalf("append: %v\n%s", err, stderr.String())
	}
	for _, want := range detectReasons {
		if !strings.Contains(stderr.String(), want) {
			t.Errorf("stderr lacks %q:\n%s", want, stderr.String())
		}
	}
	noDetectedValue(t, "stderr", stderr.Bytes())
	kept, err := os.ReadFile(rejectedFile)
	if err != nil || strings.Count(string(kept), "\n") != 3 || strings.Contains(string(kept), `"raw"`) {
		t.Errorf("--rejected file (%v):\n%s", err, kept)
	}
	noDetectedValue(t, "the --rejected file", kept)
	st, _ := file.Open(dir + "/s")
	var sealed bytes.Buffer
	n := 0
	ledger.ReadRecords(ctx, st, 0, func(i uint64, rec []byte) error { sealed.Write(rec); n++; return nil })
	if n != 2 {
		t.Errorf("the log holds %d records, want the 2 clean events", n)
	}
	noDetectedValue(t, "the log", sealed.Bytes())
}

// TestEmitRejectsDetectedValues: emit sends the clean lines only; the
// others never reach the bus, and are reported by line, event and
// detector, never by value.
func TestEmitRejectsDetectedValues(t *testing.T) {
	srv := natstest.Start(t)
	_, js := srv.Connect(t)
	if err := bus.EnsureStreams(t.Context(), js, bus.StreamOptions{}); err != nil {
		t.Fatal(err)
	}
	var stdout, stderr bytes.Buffer
	err := run(t.Context(), []string{"emit", "--nats", srv.ClientURL(), "--ids"}, strings.NewReader(detectLines()), &stdout, &stderr)
	if err == nil || !strings.Contains(err.Error(), "3 lines rejected") {
		t.Fatalf("emit: %v\n%s", err, stderr.String())
	}
	for _, want := range detectReasons {
		if !strings.Contains(stderr.String(), want) {
			t.Errorf("stderr lacks %q:\n%s", want, stderr.String())
		}
	}
	noDetectedValue(t, "stderr", stderr.Bytes())
	if stdout.String() != "ok-1\nok-2\n" {
		t.Errorf("stored ids %q, want the clean events'", stdout.String())
	}
	var stored bytes.Buffer
	for _, e := range natstest.Events(t, js, "") {
		stored.Write(e.Raw)
	}
	if c := strings.Count(stored.String(), `"id":"`); c != 2 {
		t.Errorf("AUDIT_EVENTS holds %d events, want 2", c)
	}
	noDetectedValue(t, "AUDIT_EVENTS", stored.Bytes())
}
