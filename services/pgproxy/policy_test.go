package pgproxy_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/nats-io/nats.go"

	"github.com/auditledger/auditledger/events"
	"github.com/auditledger/auditledger/ledger/bus/emitter"
	"github.com/auditledger/auditledger/ledger/piikeys"
	"github.com/auditledger/auditledger/services/gateway"
	"github.com/auditledger/auditledger/services/pgproxy"
	"github.com/auditledger/auditledger/test/natstest"
)

const testPolicy = `version: 1
mask:
  - id: pii-email
    version: 3
    columns: ["email", "*_email"]
    method: partial
    info_type: EMAIL_ADDRESS
  - id: card-numbers
    detect: [credit_card]
    method: redact
    info_type: CREDIT_CARD_NUMBER
deny:
  - id: no-drop
    kinds: [DROP, TRUNCATE]
    reason: dropping data needs a change ticket
  - id: delete-needs-where
    kinds: [DELETE]
    require_where: true
    reason: DELETE without WHERE
`

func TestPolicyErrorsNameTheLine(t *testing.T) {
	cases := map[string]string{
		"version: 3\n": "version: 3",
		"version: 1\nmask:\n  - id: x\n    method: blur\n    columns: [a]\n":            `line 3: mask rule x: method "blur"`,
		"version: 1\ndeny:\n  - id: d\n    kinds: [DROP]\n":                             "line 3: deny rule needs an id and a reason",
		"version: 1\ndeny:\n  - id: d\n    reason: r\n    pattern: \"(\"\n":             "line 3: deny rule d: pattern",
		"version: 1\nmask:\n  - id: x\n    colums: [a]\n":                               `line 4: unknown field "colums" in a mask rule (did you mean "columns"?)`,
		"version: 1\napprove:\n  - id: a\n    kind: [ALTER]\n":                          `line 4: unknown field "kind" in an approval rule (did you mean "kinds"?)`,
		"version: 1\ndenny:\n  - id: d\n":                                               `line 2: unknown field "denny" in the policy (did you mean "deny"?)`,
		"version: 1\ndeny:\n  - id: d\n    reason: r\n    require_where: maybe\n":       `line 5: "maybe" is not true or false`,
		"version: 1\nmask:\n  - id: x\n    detect: [dna]\n    method: redact\n":         `unknown detector "dna"`,
		"version: 1\napprove:\n  - kinds: [ALTER]\n":                                    "line 3: approval rule needs an id",
		"version: 1\napprove:\n  - id: a\n":                                             "line 3: approval rule a needs kinds or a pattern",
		"version: 1\napprove:\n  - id: a\n    kinds: [ALTER]\n    timeout: 5 minutes\n": `line 5: "5 minutes" is not a duration (such as 30s, 5m or 1h)`,
		"version: 1\napprove:\n  - id: a\n    kinds: [ALTER]\n    timeout: -1m\n":       "timeout -1m0s is negative",
		// A kind no statement has would never match: refused, with the
		// nearest kind it may have meant.
		"version: 1\napprove:\n  - id: a\n    kinds: [ALTR]\n":                   `line 3: approval rule a: statement kind "ALTR" unknown: did you mean "ALTER"?`,
		"version: 1\ndeny:\n  - id: d\n    reason: r\n    kinds: [drop tabel]\n": `statement kind "DROP TABEL" unknown`,
		"version: 1\ndeny:\n  - id: d\n    reason: r\n    kinds: [XYZZYQ]\n":     `statement kind "XYZZYQ" unknown (known kinds: ALTER,`,
	}
	for text, want := range cases {
		if _, err := pgproxy.ParsePolicy("p.yaml", []byte(text)); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("policy %q: %v, want %q", text, err, want)
		}
	}
	if _, err := pgproxy.ParsePolicy("p.yaml", []byte(testPolicy)); err != nil {
		t.Fatal(err)
	}
}

func startWithPolicy(t *testing.T) *fixture { return startWithPolicyText(t, testPolicy) }

func startWithPolicyText(t *testing.T, text string) *fixture {
	t.Helper()
	pol, err := pgproxy.ParsePolicy("test", []byte(text))
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
	// Data straight into the database, not through the proxy.
	direct := f.direct(t)
	if _, err := direct.Exec(t.Context(), `CREATE TABLE customers (id int, email text, backup_email varchar(100), note text, age int);
		INSERT INTO customers VALUES (1, 'alice@example.com', 'al@backup.example', '4111 1111 1111 1111', 31), (2, 'bob@example.com', NULL, 'no card', 44)`); err != nil {
		t.Fatal(err)
	}
	return f
}

var secrets = []string{"alice@example.com", "bob@example.com", "al@backup.example", "4111 1111 1111 1111"}

func TestMaskingInResultsAndNeverInEvents(t *testing.T) {
	f := startWithPolicy(t)
	out, err := psql(t, f.url("alice", "alice-secret"), "SELECT id, email, backup_email, note, age FROM customers ORDER BY id")
	if err != nil {
		t.Fatalf("psql: %v\n%s", err, out)
	}
	if want := "1|a***@example.com|a***@backup.example|[REDACTED]|31\n2|b***@example.com||no card|44"; strings.TrimSpace(out) != want {
		t.Fatalf("psql got\n%s\nwant\n%s", out, want)
	}
	// pgx: extended protocol, binary results, a prepared statement.
	conn, err := pgx.Connect(t.Context(), f.url("alice", "alice-secret"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(t.Context())
	var email, note string
	var age int
	if err := conn.QueryRow(t.Context(), "SELECT email, note, age FROM customers WHERE id = $1", 1).Scan(&email, &note, &age); err != nil {
		t.Fatal(err)
	}
	if email != "a***@example.com" || note != "[REDACTED]" || age != 31 {
		t.Fatalf("pgx got %q %q %d", email, note, age)
	}
	f.checkPairs(t)
	masks := 0
	for _, r := range f.eventsOf(t) {
		raw, _ := r.ev.Marshal()
		for _, s := range secrets {
			if strings.Contains(string(raw), s) {
				t.Errorf("event %s (%s) contains the unmasked %q", r.ev.ID, r.ev.Type, s)
			}
		}
		if r.ev.Type == events.MaskApplied {
			masks++
			if r.payload["rule_id"] == "pii-email" && r.payload["rule_version"].(float64) != 3 {
				t.Errorf("mask event %v", r.payload)
			}
		}
	}
	// psql: email ×2 rows, backup_email ×1, note ×1 → 3 events; pgx: 2.
	if masks != 5 {
		t.Errorf("%d mask.applied events, want 5", masks)
	}
}

func TestDenyRulesNeverReachTheServer(t *testing.T) {
	f := startWithPolicy(t)
	out, err := psql(t, f.url("alice", "alice-secret"), "DROP TABLE customers")
	if err == nil || !strings.Contains(out, "blocked by policy rule no-drop: dropping data needs a change ticket") {
		t.Fatalf("DROP: %v\n%s", err, out)
	}
	conn, err := pgx.Connect(t.Context(), f.url("alice", "alice-secret"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(t.Context())
	if _, err := conn.Exec(t.Context(), "DELETE FROM customers"); err == nil || !strings.Contains(err.Error(), "delete-needs-where") {
		t.Fatalf("DELETE without WHERE (extended): %v", err)
	}
	tag, err := conn.Exec(t.Context(), "DELETE FROM customers WHERE id = $1", 2)
	if err != nil || tag.RowsAffected() != 1 {
		t.Fatalf("DELETE with WHERE: %v %v", tag, err)
	}
	// Checked on the server: the table is there, with one row left.
	direct, _ := pgx.Connect(t.Context(), pg.DSN(f.db))
	defer direct.Close(t.Context())
	var n int
	if err := direct.QueryRow(t.Context(), "SELECT count(*) FROM customers").Scan(&n); err != nil || n != 1 {
		t.Fatalf("server side: %d rows, %v", n, err)
	}
	blocked := 0
	for _, r := range f.eventsOf(t) {
		if r.ev.Type == events.CommandBlocked {
			blocked++
		}
		if r.ev.Type == events.CommandExecuted && strings.HasPrefix(r.payload["statement"].(string), "DROP") {
			t.Errorf("a blocked statement was recorded as executed")
		}
	}
	if blocked != 2 {
		t.Fatalf("%d command.blocked events, want 2", blocked)
	}
	f.checkPairs(t)
}

func TestCopyRecordedAndCopyOutRefusedWhenMasking(t *testing.T) {
	f := startWithPolicy(t)
	url := f.url("alice", "alice-secret")
	out, err := psql(t, url, "CREATE TABLE people (id int, email text)")
	if err != nil {
		t.Fatal(err, out)
	}
	cmd := exec.Command("psql", "-X", "-v", "ON_ERROR_STOP=1", "-c", `\copy people FROM STDIN`, url)
	cmd.Stdin = strings.NewReader("1\tann@example.com\n2\tben@example.com\n")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("COPY FROM STDIN: %v\n%s", err, out)
	}
	out, err = psql(t, url, `\copy people TO STDOUT`)
	if err == nil || !strings.Contains(out, "COPY TO STDOUT is not masked") || strings.Contains(out, "ann@example.com") {
		t.Fatalf("COPY TO STDOUT with masking on: %v\n%s", err, out)
	}
	f.checkPairs(t)
	var copyIn map[string]any
	for _, r := range f.eventsOf(t) {
		if r.ev.Type == events.ResponseDigest && r.payload["command_tag"] == "COPY 2" {
			copyIn, _ = r.payload["copy_in"].(map[string]any)
		}
	}
	data := "1\tann@example.com\n2\tben@example.com\n"
	key, err := f.keys.TenantKey(t.Context(), "acme")
	if err != nil {
		t.Fatal(err)
	}
	// Keyed (docs/FORMAT.md §1.5): the data may hold personal data.
	want := gateway.KeyedDigest(key, gateway.CopyLabel, []byte(data))
	if copyIn == nil || copyIn["bytes"].(float64) != float64(len(data)) || copyIn["hmac"] != want || copyIn["sha256"] != nil {
		t.Errorf("COPY FROM digest: %v (want %d bytes, hmac %s)", copyIn, len(data), want)
	}
	unkeyed := sha256.Sum256([]byte(data))
	for _, st := range natstest.Events(t, f.js, "") {
		if strings.Contains(string(st.Raw), hex.EncodeToString(unkeyed[:])) {
			t.Errorf("event %s holds the unkeyed SHA-256 of the COPY data", st.Event.ID)
		}
	}
}

func TestCopyOutDigestWithoutMasking(t *testing.T) {
	f := start(t)
	url := f.url("alice", "alice-secret")
	out, err := psql(t, url, "CREATE TABLE n (i int)", "INSERT INTO n SELECT generate_series(1, 5)", `\copy n TO STDOUT`)
	if err != nil || !strings.Contains(out, "1\n2\n3\n4\n5") {
		t.Fatalf("COPY TO STDOUT: %v\n%s", err, out)
	}
	f.checkPairs(t)
	found := false
	for _, r := range f.eventsOf(t) {
		if r.ev.Type == events.ResponseDigest && r.payload["command_tag"] == "COPY 5" {
			found = r.payload["rows"].(float64) == 5
		}
	}
	if !found {
		t.Error("no digest of the 5 copied rows")
	}
}

func TestParameterRecording(t *testing.T) {
	const card = "4111 1111 1111 1111"
	// param is a parameter's keyed digest under tenant acme's key.
	param := func(key []byte, v string) string { return gateway.KeyedDigest(key, gateway.ParamLabel, []byte(v)) }
	for _, c := range []struct {
		mode string
		want func(key []byte) []any
	}{
		{"omit", func([]byte) []any { return nil }},
		// pgx sends the int4 in binary (recorded by keyed digest), the
		// text as text, the card masked by the policy's rule.
		{"record", func(k []byte) []any { return []any{param(k, "\x00\x00\x00\x07"), "[REDACTED]", nil, "plain"} }},
		// Every value by its keyed digest: an unkeyed one of a card
		// number could be guessed back.
		{"hash", func(k []byte) []any {
			return []any{param(k, "\x00\x00\x00\x07"), param(k, card), nil, param(k, "plain")}
		}},
	} {
		t.Run(c.mode, func(t *testing.T) {
			f := startWithPolicyText(t, strings.Replace(testPolicy, "version: 1\n", "version: 1\nparameters: "+c.mode+"\n", 1))
			conn, err := pgx.Connect(t.Context(), f.url("alice", "alice-secret"))
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close(context.Background())
			var n int
			if err := conn.QueryRow(t.Context(), "SELECT count(*) FROM customers WHERE id <> $1 AND note <> $2 AND email IS DISTINCT FROM $3 AND note <> $4", 7, card, nil, "plain").Scan(&n); err != nil {
				t.Fatal(err)
			}
			var params map[string]any
			var red []any
			for _, r := range f.eventsOf(t) {
				if r.ev.Type == events.CommandExecuted && strings.Contains(r.payload["statement"].(string), "$3") {
					params = r.payload["parameters"].(map[string]any)
					red, _ = r.payload["redacted"].([]any)
				}
				if strings.Contains(string(r.ev.Payload), card) || strings.Contains(string(r.ev.Payload), "sha256:") {
					t.Errorf("a card number or an unkeyed digest is in event %s: %s", r.ev.Type, r.ev.Payload)
				}
			}
			if params["recorded"] != c.mode || params["count"].(float64) != 4 {
				t.Fatalf("parameters %v", params)
			}
			key, err := f.keys.TenantKey(t.Context(), "acme")
			if err != nil {
				t.Fatal(err)
			}
			got, _ := params["values"].([]any)
			if fmt.Sprint(got) != fmt.Sprint(c.want(key)) {
				t.Errorf("values %v, want %v", got, c.want(key))
			}
			// The card number bound, digested or masked, is found by its
			// search digest all the same.
			wantRed := "[]"
			if c.mode != "omit" {
				wantRed = fmt.Sprintf("[map[count:1 detector:credit_card matches:[%s] path:/parameters/values/1]]", piikeys.MatchDigest(key, card))
			}
			if fmt.Sprint(red) != wantRed && !(c.mode == "omit" && red == nil) {
				t.Errorf("redacted %v, want %s", red, wantRed)
			}
		})
	}
}

// TestBinaryIntParameterFound: a card number bound as a binary int8 is
// recorded by keyed digest, and found by its search digest as the number
// it is, like a numeric constant in the text.
func TestBinaryIntParameterFound(t *testing.T) {
	f := startWithPolicyText(t, strings.Replace(testPolicy, "version: 1\n", "version: 1\nparameters: record\n", 1))
	conn, err := pgx.Connect(t.Context(), f.url("alice", "alice-secret"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	var n int
	if err := conn.QueryRow(t.Context(), "SELECT count(*) FROM customers WHERE id::bigint <> $1::bigint", int64(4111111111111111)).Scan(&n); err != nil {
		t.Fatal(err)
	}
	key, err := f.keys.TenantKey(t.Context(), "acme")
	if err != nil {
		t.Fatal(err)
	}
	want := fmt.Sprintf("[map[count:1 detector:credit_card matches:[%s] path:/parameters/values/0]]", piikeys.MatchDigest(key, "4111111111111111"))
	for _, r := range f.eventsOf(t) {
		if r.ev.Type == events.CommandExecuted && strings.Contains(r.payload["statement"].(string), "$1::bigint") {
			if red, _ := r.payload["redacted"].([]any); fmt.Sprint(red) != want {
				t.Fatalf("redacted %v, want %s", red, want)
			}
			return
		}
	}
	t.Fatal("no command.executed for the statement")
}

func sha256Hex(s string) string {
	h := sha256.Sum256([]byte(s))
	return hex.EncodeToString(h[:])
}

// TestLongStatements: a statement up to the limit runs and is recorded
// whole; a longer one (which could hide a trailing DROP past any cut) is
// refused, and recorded as refused by its start and digest.
func TestLongStatements(t *testing.T) {
	f := start(t)
	long := func(n int, tail string) string {
		var b strings.Builder
		// Words, not numbers: a statement's numbers are judged joined,
		// and a run of them (4001, 4002, 4003, 4004) may be read as a
		// card number and replaced, the text then no longer as sent.
		b.WriteString("SELECT count(*) FROM (VALUES ('v0')")
		for i := 1; b.Len() < n; i++ {
			fmt.Fprintf(&b, ",('v%d')", i)
		}
		b.WriteString(") v" + tail)
		return b.String()
	}
	ok := long(pgproxy.MaxStatement-200, "")
	if out, err := psql(t, f.url("alice", "alice-secret"), ok); err != nil {
		t.Fatalf("a %d-byte statement: %v\n%s", len(ok), err, out)
	}
	tooLong := long(100<<10, "; CREATE TABLE smuggled (x int)")
	out, err := psql(t, f.url("alice", "alice-secret"), tooLong)
	if err == nil || !strings.Contains(out, "forwards statements of at most") {
		t.Fatalf("a %d-byte statement: %v\n%s", len(tooLong), err, out)
	}
	direct, _ := pgx.Connect(t.Context(), pg.DSN(f.db))
	defer direct.Close(t.Context())
	var exists bool
	direct.QueryRow(t.Context(), "SELECT to_regclass('smuggled') IS NOT NULL").Scan(&exists)
	if exists {
		t.Fatal("the statement past the limit ran")
	}
	var executed, blocked int
	for _, r := range f.eventsOf(t) {
		switch r.ev.Type {
		case events.CommandExecuted:
			executed++
			if r.payload["statement"] != ok || r.payload["statement_truncated"] != nil {
				t.Errorf("a statement that ran is not recorded whole (%v bytes)", r.payload["statement_bytes"])
			}
		case events.CommandBlocked:
			blocked++
			if r.payload["statement_sha256"] != sha256Hex(tooLong) || r.payload["statement_truncated"] != true {
				t.Errorf("the refused statement is recorded as %v", r.payload)
			}
		}
	}
	if executed != 1 || blocked != 1 {
		t.Fatalf("%d executed, %d refused; want 1 and 1", executed, blocked)
	}
}

// TestErrorTextsMasked: a value the server quotes in an error or notice
// (here an e-mail address it could not convert) is masked by the policy's
// detectors before the client or the ledger sees it.
func TestErrorTextsMasked(t *testing.T) {
	f := startWithPolicyText(t, `version: 1
mask:
  - id: emails
    detect: [email]
    method: redact
`)
	const secret = "alice.smith@example.com"
	// The address is in the database, put there directly; the client
	// through the proxy never types it.
	direct, err := pgx.Connect(t.Context(), pg.DSN(f.db))
	if err != nil {
		t.Fatal(err)
	}
	// A function the server already holds raises a notice quoting it (a
	// DO is refused while a mask rule applies: builtin-unjudgeable).
	if _, err := direct.Exec(t.Context(), "CREATE TABLE people (note text); INSERT INTO people VALUES ('"+secret+"'); "+
		"CREATE FUNCTION mailing() RETURNS void LANGUAGE plpgsql AS $$ BEGIN RAISE NOTICE 'mailing %', (SELECT note FROM people); END $$"); err != nil {
		t.Fatal(err)
	}
	direct.Close(t.Context())
	c, err := pgx.Connect(t.Context(), f.url("alice", "alice-secret"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close(t.Context())
	var n int
	err = c.QueryRow(t.Context(), "SELECT note::int FROM people").Scan(&n)
	if err == nil || strings.Contains(err.Error(), secret) || !strings.Contains(err.Error(), "[REDACTED]") {
		t.Fatalf("the client got: %v", err)
	}
	var notices []string
	ncfg, _ := pgx.ParseConfig(f.url("alice", "alice-secret"))
	ncfg.OnNotice = func(_ *pgconn.PgConn, n *pgconn.Notice) { notices = append(notices, n.Message) }
	nconn, err := pgx.ConnectConfig(t.Context(), ncfg)
	if err != nil {
		t.Fatal(err)
	}
	defer nconn.Close(t.Context())
	if _, err := nconn.Exec(t.Context(), "SELECT mailing()"); err != nil {
		t.Fatal(err)
	}
	if len(notices) != 1 || strings.Contains(notices[0], secret) {
		t.Fatalf("notices: %q", notices)
	}
	for _, r := range f.eventsOf(t) {
		if b, _ := json.Marshal(r.ev); strings.Contains(string(b), secret) {
			t.Fatalf("%s event holds the address unmasked: %s", r.ev.Type, b)
		}
	}
}
