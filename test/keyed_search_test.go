package test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/auditledger/auditledger/events"
	"github.com/auditledger/auditledger/ledger/bus"
	"github.com/auditledger/auditledger/ledger/piikeys"
	"github.com/auditledger/auditledger/services/api"
	"github.com/auditledger/auditledger/services/gateway/gatewaytest"
	"github.com/auditledger/auditledger/test/natstest"
)

// A card number in a WHERE clause and another bound as a parameter, sent
// through dev's PostgreSQL proxy with pgx, are recorded as keyed search
// digests under the session tenant's key and nowhere in clear. An auditor
// finds each statement with `query events --match-value`, the number
// typed with other spacing; the digest under another tenant's key is in
// no record; and the sealed record of the search holds its digest, never
// the number.
func TestKeyedSearchThroughTheProxy(t *testing.T) {
	pg := targetPostgres(t)
	db := pg.NewDatabase(t)
	direct, err := pgx.Connect(t.Context(), pg.DSN(db))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := direct.Exec(t.Context(), "CREATE TABLE cards (pan text)"); err != nil {
		t.Fatal(err)
	}
	direct.Close(context.Background())
	policy := filepath.Join(t.TempDir(), "policy.yaml")
	os.WriteFile(policy, []byte("version: 1\nparameters: hash\n"), 0o644)
	d := startDev(t, []string{"AUDITLEDGER_PROXY_UPSTREAM=" + pg.DSN(db)}, "--policy", policy)
	if d.proxy == "" {
		t.Fatal("dev did not start the postgres proxy")
	}
	inWhere, bound := gatewaytest.Card(t), gatewaytest.Card(t)
	conn, err := pgx.Connect(t.Context(), fmt.Sprintf("postgres://alice:%s@%s/%s?sslmode=disable", d.token(t, "alice"), d.proxy, db))
	if err != nil {
		t.Fatal(err)
	}
	var n int
	if err := conn.QueryRow(t.Context(), "SELECT count(*) FROM cards WHERE pan = '"+inWhere+"'", pgx.QueryExecModeSimpleProtocol).Scan(&n); err != nil {
		t.Fatal(err)
	}
	if err := conn.QueryRow(t.Context(), "SELECT count(*) FROM cards WHERE pan = $1 OR pan = '"+inWhere+"'", bound).Scan(&n); err != nil {
		t.Fatal(err)
	}
	conn.Close(context.Background())

	// The auditor types the numbers as a person would, with other spacing.
	carol := []string{"AUDITLEDGER_TOKEN=" + d.token(t, "carol"), "AUDITLEDGER_API=" + d.api}
	search := func(value string, want int) []api.MatchResult {
		t.Helper()
		var got []api.MatchResult
		natstest.CheckFor(t, 30*time.Second, 200*time.Millisecond, func() error {
			r := run(t, nil, carol, "query", "events", "--match-value", value, "--json")
			if r.code != 0 {
				return fmt.Errorf("query events --match-value: exit %d %s", r.code, r.stderr)
			}
			got = nil
			for _, line := range strings.Split(strings.TrimSpace(r.stdout), "\n") {
				if line == "" {
					continue
				}
				var m api.MatchResult
				if err := json.Unmarshal([]byte(line), &m); err != nil {
					return err
				}
				got = append(got, m)
			}
			if len(got) != want {
				return fmt.Errorf("%d events found, want %d:\n%s", len(got), want, r.stdout)
			}
			return nil
		})
		return got
	}
	where := func(m api.MatchResult) string {
		var at []string
		for _, p := range m.Matched {
			at = append(at, p.Path+" "+p.Detector)
		}
		return strings.Join(at, ", ")
	}
	// Written in both statements' text.
	found := search(strings.ReplaceAll(inWhere, " ", "-"), 2)
	for _, m := range found {
		var ev events.Event
		json.Unmarshal(m.Event, &ev)
		if ev.Type != events.CommandExecuted || ev.Actor.Subject != "alice" || where(m) != "/statement credit_card" {
			t.Errorf("found %s by %s at %s; want alice's command.executed, at /statement", ev.Type, ev.Actor.Subject, where(m))
		}
	}
	// Bound as a parameter of the second.
	found = search(strings.ReplaceAll(bound, " ", ""), 1)
	if where(found[0]) != "/parameters/values/0 credit_card" || found[0].Index != search(inWhere, 2)[1].Index {
		t.Errorf("the bound number found at %q in event %d", where(found[0]), found[0].Index)
	}
	// The table names who, when, what target and where.
	r := mustRun(t, nil, carol, "query", "events", "--match-value", bound)
	if !strings.Contains(r.stdout, "FOUND AT") || !strings.Contains(r.stdout, "alice") || !strings.Contains(r.stdout, "/parameters/values/0 (credit_card)") {
		t.Errorf("query events --match-value table:\n%s", r.stdout)
	}
	search("4000 0000 0000 0002", 0)

	// Under another tenant's key the same number digests otherwise, and
	// no record holds that digest.
	nc, err := nats.Connect(d.nats, natstest.RoleOptions(t, filepath.Join(d.data, "nats-keys"), bus.Admin)...)
	if err != nil {
		t.Fatal(err)
	}
	js, _ := jetstream.New(nc)
	keys, err := piikeys.Open(t.Context(), js, 1)
	if err != nil {
		t.Fatal(err)
	}
	var ev events.Event
	json.Unmarshal(found[0].Event, &ev)
	own, err := keys.Match(t.Context(), ev.Tenant, bound)
	if err != nil {
		t.Fatal(err)
	}
	other, err := keys.Match(t.Context(), "globex", bound)
	if err != nil {
		t.Fatal(err)
	}
	nc.Close()

	var all []byte
	searches := 0
	for _, s := range d.drainStopAndRead(t) {
		all = append(append(all, s.Raw...), '\n')
		if s.Event.Type == events.AuditAccessed && s.Event.Actor.Subject == "carol" && strings.Contains(string(s.Raw), "match_digest") {
			searches++
		}
	}
	if !bytes.Contains(all, []byte(own)) || bytes.Contains(all, []byte(other)) {
		t.Errorf("the sealed log holds the digest under tenant %s's key: %v; under globex's: %v", ev.Tenant, bytes.Contains(all, []byte(own)), bytes.Contains(all, []byte(other)))
	}
	if searches == 0 {
		t.Error("no search of carol's is in the sealed log")
	}
	// No written form of either number is sealed: not in the statements,
	// the parameters, nor the records of the searches.
	gatewaytest.CheckAbsent(t, all, inWhere, bound)
}
