package pgproxy_test

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/auditledger/auditledger/events"

	"github.com/auditledger/auditledger/services/internal/policyfile"
	"github.com/auditledger/auditledger/services/pgproxy"
	"github.com/auditledger/auditledger/services/policy"
)

// readmeV1 is the README's example: it means "hold DDL", and in version 1
// it holds DDL only for members of dba.
const readmeV1 = "version: 1\napprove:\n  - id: ddl\n    kinds: [ALTER, CREATE, DROP]\n    groups: [dba]\n"

func TestVersion1ReportsItsExemptionByOmission(t *testing.T) {
	p, err := pgproxy.ParsePolicy("policy.yaml", []byte(readmeV1))
	if err != nil {
		t.Fatal(err)
	}
	want := []policyfile.Omission{{Rule: "ddl", Kind: policyfile.KindApprove, Groups: []string{"dba"}}}
	if len(p.Omissions) != 1 || p.Omissions[0].Rule != want[0].Rule || p.Omissions[0].Kind != want[0].Kind || strings.Join(p.Omissions[0].Groups, ",") != "dba" {
		t.Errorf("omissions %+v, want %+v", p.Omissions, want)
	}
	if p.Source.Version != 1 || p.Source.File != "policy.yaml" || len(p.Source.SHA256) != 64 {
		t.Errorf("source %+v", p.Source)
	}
	// What version 1 enforces, unchanged: dba held, everyone else not.
	if p.For("ann", []string{"dba"}).NeedsApproval("ALTER TABLE t ADD c int") == nil {
		t.Error("a dba's DDL is not held")
	}
	if r := p.For("bob", []string{"dev"}).NeedsApproval("ALTER TABLE t ADD c int"); r != nil {
		t.Errorf("version 1 changed: bob's DDL held by %s", r.ID)
	}
}

func TestVersion2RulesApplyToEveryoneNotExempt(t *testing.T) {
	const v2 = `version: 2
mask:
  - id: email
    columns: [email]
    method: redact
    exempt: {groups: [support]}
deny:
  - id: no-drop
    kinds: [DROP]
    reason: no
    exempt: {users: [ops-bot]}
approve:
  - id: ddl
    kinds: [ALTER, CREATE, DROP]
    exempt: {outside_groups: [dba]}
  - id: truncate
    kinds: [TRUNCATE]
`
	p, err := pgproxy.ParsePolicy("p.yaml", []byte(v2))
	if err != nil {
		t.Fatal(err)
	}
	if len(p.Omissions) != 0 || p.Source.Version != 2 {
		t.Errorf("a version-2 file: omissions %v, source %+v", p.Omissions, p.Source)
	}
	type who struct {
		user   string
		groups []string
	}
	ann, bob, bot, sue := who{"ann", []string{"dba"}}, who{"bob", nil}, who{"ops-bot", []string{"dba"}}, who{"sue", []string{"support"}}
	for _, c := range []struct {
		who     who
		sql     string
		denied  string
		held    string
		masking bool
	}{
		{ann, "DROP TABLE t", "no-drop", "ddl", true},
		{bot, "DROP TABLE t", "", "ddl", true},
		{ann, "ALTER TABLE t ADD c int", "", "ddl", true},
		{bob, "ALTER TABLE t ADD c int", "", "", true},
		{bob, "TRUNCATE t", "", "truncate", true},
		{sue, "SELECT email FROM t", "", "", false},
	} {
		v := p.For(c.who.user, c.who.groups)
		if r := v.Denied(c.sql); r == nil && c.denied != "" || r != nil && r.ID != c.denied {
			t.Errorf("%s %q: denied by %v, want %q", c.who.user, c.sql, r, c.denied)
		}
		if r := v.NeedsApproval(c.sql); r == nil && c.held != "" || r != nil && r.ID != c.held {
			t.Errorf("%s %q: held by %v, want %q", c.who.user, c.sql, r, c.held)
		}
		if got := len(v.Mask) > 0; got != c.masking {
			t.Errorf("%s: masked %v, want %v", c.who.user, got, c.masking)
		}
	}
	// COPY TO STDOUT is refused while results are masked, and only then.
	if r := p.For("bob", nil).Denied("COPY t TO STDOUT"); r == nil {
		t.Error("COPY TO STDOUT passes for bob, whose results are masked")
	}
	if r := p.For("sue", []string{"support"}).Denied("COPY t TO STDOUT"); r != nil {
		t.Errorf("COPY TO STDOUT refused for sue, exempt from every mask rule: %s", r.ID)
	}
	// Without For every rule applies: the safe side.
	if r := p.NeedsApproval("ALTER TABLE t ADD c int"); r == nil {
		t.Error("the whole policy does not hold DDL")
	}
}

func TestVersion2ErrorsNameTheLine(t *testing.T) {
	for text, want := range map[string]string{
		"version: 2\napprove:\n  - id: ddl\n    kinds: [ALTER]\n    groups: [dba]\n":                    "policy p.yaml: line 3: approval rule ddl: groups: is not read in version 2, where a rule applies to everyone; say who is exempt: exempt: {groups: [...]}, or exempt: {outside_groups: [dba]}",
		"version: 1\ndeny:\n  - id: d\n    kinds: [DROP]\n    reason: r\n    exempt: {groups: [dba]}\n": "line 3: deny rule d: exempt: is read from version 2",
		"version: 1\nmask:\n  - id: m\n    columns: [a]\n    method: redact\n    groups: [dba]\n":       "line 3: mask rule m: groups: only approve rules take groups in version 1",
		"version: 2\ndeny:\n  - id: d\n    kinds: [DROP]\n    reason: r\n    exempt: {group: [dba]}\n":  `line 6: unknown field "group"`,
	} {
		if _, err := pgproxy.ParsePolicy("p.yaml", []byte(text)); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("policy %q: %v, want %q", text, err, want)
		}
	}
}

// The README's example migrated to version 2 holds DDL from a requester
// outside dba too, through the proxy and a real database: version 1 let
// etl-bot's CREATE run unheld (TestApprovalHoldsUntilGrantedAndBindsTheText).
func TestMigratedReadmePolicyHoldsDDLOutsideDBA(t *testing.T) {
	v2, _, err := policy.Migrate("policy.yaml", []byte(readmeV1), false)
	if err != nil {
		t.Fatal(err)
	}
	f := startOIDC(t, string(v2))
	cmd := f.psqlAs(t, "etl-bot", "CREATE TABLE scratch (x int)")
	var out strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	r := f.pending(t)
	if r.Rule != "ddl" || r.Requester.Subject != "etl-bot" {
		t.Fatalf("request %+v, want etl-bot's CREATE held by rule ddl", r)
	}
	if _, err := f.broker.Decide(t.Context(), r.ID, f.actor(t, "bob"), false, "not in a release"); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err == nil || !strings.Contains(out.String(), "denied by bob: not in a release") {
		t.Fatalf("denied CREATE: %v\n%s", err, out.String())
	}
	if o, err := f.psqlAs(t, "alice", "SELECT to_regclass('scratch') IS NULL").CombinedOutput(); err != nil || strings.TrimSpace(string(o)) != "t" {
		t.Fatalf("the denied CREATE ran: %v\n%s", err, o)
	}
}

// The README's example loaded as version 1 is on record with the
// exemption it makes by omission: the policy.loaded event the proxy
// stores before it serves names rule ddl and group dba.
func TestReadmePolicyOnRecordWithItsOmission(t *testing.T) {
	f := startOIDC(t, readmeV1)
	if out, err := f.psqlAs(t, "alice", "SELECT 1").CombinedOutput(); err != nil {
		t.Fatalf("psql: %v\n%s", err, out)
	}
	var loaded []recorded
	for _, r := range f.eventsOf(t) {
		if r.ev.Type == events.PolicyLoaded {
			loaded = append(loaded, r)
		}
	}
	if len(loaded) != 1 {
		t.Fatalf("%d policy.loaded events, want 1", len(loaded))
	}
	got, _ := json.Marshal(loaded[0].payload["exemptions_by_omission"])
	if want := `[{"groups":["dba"],"kind":"approve","rule":"ddl"}]`; string(got) != want {
		t.Errorf("exemptions_by_omission %s, want %s", got, want)
	}
	if loaded[0].payload["version"] != float64(1) {
		t.Errorf("version %v, want 1", loaded[0].payload["version"])
	}
}
