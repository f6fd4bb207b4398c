package policy_test

import (
	"bytes"
	"strings"
	"testing"

	"github.com/auditledger/auditledger/services/httpproxy"
	"github.com/auditledger/auditledger/services/pgproxy"
	"github.com/auditledger/auditledger/services/policy"
)

// readme is the README's example policy, as version 1 reads it: DDL is
// held for members of dba, and everyone outside dba runs it unheld.
const readme = `# held DDL
version: 1
approve:
  - id: ddl
    kinds: [ALTER, CREATE, DROP]
    groups: [dba]   # who
    timeout: 10m
`

const ddl = "ALTER TABLE orders ADD COLUMN note text"

func TestMigrateHoldsEveryonesDDL(t *testing.T) {
	out, notes, err := policy.Migrate("policy.yaml", []byte(readme), false)
	if err != nil {
		t.Fatal(err)
	}
	want := `# held DDL
version: 2
approve:
  - id: ddl
    kinds: [ALTER, CREATE, DROP]
    # version 1 exempted everyone outside dba; to keep that: exempt: {outside_groups: [dba]}
    timeout: 10m
`
	if string(out) != want {
		t.Errorf("migrated:\n%s\nwant:\n%s", out, want)
	}
	if len(notes) != 1 || !strings.HasPrefix(notes[0], "approval rule ddl: version 1 exempted everyone outside dba; migrated, the rule applies to them too") {
		t.Errorf("notes %q", notes)
	}
	p, err := pgproxy.ParsePolicy("policy.yaml", out)
	if err != nil {
		t.Fatal(err)
	}
	for _, who := range []struct {
		user   string
		groups []string
	}{{"ann", []string{"dba"}}, {"bob", []string{"developers"}}, {"carol", nil}} {
		if r := p.For(who.user, who.groups).NeedsApproval(ddl); r == nil || r.ID != "ddl" {
			t.Errorf("%s in %v: DDL not held by the migrated policy", who.user, who.groups)
		}
	}
}

func TestMigrateKeepingExemptions(t *testing.T) {
	out, notes, err := policy.Migrate("policy.yaml", []byte(readme), true)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(out), "    exempt: {outside_groups: [dba]} # who\n") || len(notes) != 0 {
		t.Errorf("migrated with --keep-exemptions:\n%s\nnotes %q", out, notes)
	}
	v1, err := pgproxy.ParsePolicy("v1", []byte(readme))
	if err != nil {
		t.Fatal(err)
	}
	v2, err := pgproxy.ParsePolicy("v2", out)
	if err != nil {
		t.Fatal(err)
	}
	if len(v2.Omissions) != 0 {
		t.Errorf("version 2 reports omissions: %v", v2.Omissions)
	}
	for _, groups := range [][]string{{"dba"}, {"developers"}, nil} {
		a, b := v1.For("u", groups).NeedsApproval(ddl), v2.For("u", groups).NeedsApproval(ddl)
		if (a == nil) != (b == nil) {
			t.Errorf("groups %v: version 1 holds %v, version 2 %v", groups, a != nil, b != nil)
		}
	}
}

func TestMigrateHTTPAndRefusals(t *testing.T) {
	const v1 = "version: 1\napprove:\n  - {id: deploys, methods: [POST], paths: [/deploy], groups: [developers, sre]}\n"
	out, notes, err := policy.Migrate("h.yaml", []byte(v1), false)
	if err != nil {
		t.Fatal(err)
	}
	want := "version: 2\napprove:\n  # version 1 exempted everyone outside developers, sre; to keep that: exempt: {outside_groups: [developers, sre]}\n  - {id: deploys, methods: [POST], paths: [/deploy]}\n"
	if string(out) != want || len(notes) != 1 {
		t.Errorf("migrated:\n%s\nwant:\n%s\nnotes %q", out, want, notes)
	}
	if p, err := httpproxy.ParsePolicy("h.yaml", out); err != nil || p.For("x", nil).NeedsApproval("POST", "/deploy") == nil {
		t.Errorf("the migrated HTTP policy does not hold everyone's deploy: %v", err)
	}
	if _, _, err := policy.Migrate("h.yaml", out, false); err == nil || !strings.Contains(err.Error(), "version 2: not a version-1 policy") {
		t.Errorf("migrating version 2: %v", err)
	}
	if _, _, err := policy.Migrate("bad.yaml", []byte("version: 1\napprove:\n  - id: a\n"), false); err == nil || !strings.Contains(err.Error(), "policy bad.yaml: line 3") {
		t.Errorf("migrating a broken file: %v", err)
	}
}

const explained = `version: 2
mask:
  - id: email
    columns: [email]
    method: partial
    exempt: {groups: [support]}
deny:
  - id: no-drop
    kinds: [DROP]
    reason: dropping needs a ticket
approve:
  - id: ddl
    kinds: [ALTER, CREATE]
    exempt: {users: [migrator]}
`

func TestExplain(t *testing.T) {
	p, err := policy.Read("p.yaml", []byte(explained))
	if err != nil {
		t.Fatal(err)
	}
	var b bytes.Buffer
	if err := policy.Print(&b, p, []policy.Who{
		{Groups: []string{"support"}, Label: "group support"},
		{User: "migrator", Label: "user migrator"},
	}); err != nil {
		t.Fatal(err)
	}
	got := b.String()
	_, got, _ = strings.Cut(got, "\n") // the first line names the digest
	want := `
group support:
  refused  deny rule no-drop: kinds: DROP (dropping needs a ticket)
  refused  deny rule builtin-unjudgeable: kinds: DO (code whose effect the gateway cannot see; refused unless an approval rule naming its kind holds it; CREATE FUNCTION, CREATE PROCEDURE, ALTER FUNCTION, CREATE TRIGGER, CREATE EVENT TRIGGER, CREATE RULE held instead where such a rule matches)
  held     approval rule ddl: kinds: ALTER, CREATE (timeout 5m0s)
  allowed  deny rule builtin-copy-out-unmasked: kinds: COPY TO STDOUT (built in: applies only while results are masked)
  allowed  deny rule builtin-masked-columns-bare: results that read a masked column other than bare, whole rows, query_to_xml and the like (built in: applies only while a mask rule with columns applies)
  unmasked mask rule email: columns: email (exempt: {groups: [support]})
  unheld   everything else

user migrator:
  refused  deny rule no-drop: kinds: DROP (dropping needs a ticket)
  refused  deny rule builtin-copy-out-unmasked: kinds: COPY TO STDOUT (COPY TO STDOUT is not masked, and this policy masks results; use SELECT)
  refused  deny rule builtin-unjudgeable: kinds: DO, CREATE FUNCTION, CREATE PROCEDURE, ALTER FUNCTION, CREATE TRIGGER, CREATE EVENT TRIGGER, CREATE RULE (code whose effect the gateway cannot see; refused unless an approval rule naming its kind holds it)
  refused  deny rule builtin-masked-columns-bare: results that read a masked column other than bare, whole rows, query_to_xml and the like (a computed value is not masked; select the column as it is)
  masked   mask rule email: columns: email (method partial)
  unheld   approval rule ddl: kinds: ALTER, CREATE (exempt: {users: [migrator]})
  unheld   everything else
`
	if got != want {
		t.Errorf("explain:\n%s\nwant:\n%s", got, want)
	}
}

// The PostgreSQL gateway's built-in refusal of statements whose effect it
// cannot see, as explain lists it where an approval rule names CREATE and
// ALTER: only DO is refused outright.
const (
	unjudgeable        = "deny rule builtin-unjudgeable: kinds: DO"
	refusedUnjudgeable = "  refused  deny rule builtin-unjudgeable: kinds: DO (code whose effect the gateway cannot see; refused unless an approval rule naming its kind holds it; CREATE FUNCTION, CREATE PROCEDURE, ALTER FUNCTION, CREATE TRIGGER, CREATE EVENT TRIGGER, CREATE RULE held instead where such a rule matches)\n"
)

func TestExplainVersion1ListsOmissions(t *testing.T) {
	p, err := policy.Read("policy.yaml", []byte(readme))
	if err != nil {
		t.Fatal(err)
	}
	var b bytes.Buffer
	if err := policy.Print(&b, p, policy.Everyone(p)); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"exemption by omission: approval rule ddl applies only to members of dba; everyone else is exempt\n",
		"\ngroup dba:\n" + refusedUnjudgeable + "  held     approval rule ddl: kinds: ALTER, CREATE, DROP (timeout 10m0s)\n  unheld   everything else\n",
		// No rule applies: neither does the refusal of what rules cannot judge.
		"\nanyone in none of dba:\n  allowed  " + unjudgeable + " (built in: applies only while a deny, approval or mask rule applies)\n" +
			"  unheld   approval rule ddl: kinds: ALTER, CREATE, DROP (exempt: {outside_groups: [dba]}, by omission in version 1)\n",
	} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("explain:\n%s\nwant it to contain:\n%s", b.String(), want)
		}
	}
}

func TestMigrateBlockListKeepsItsComments(t *testing.T) {
	const v1 = "version: 1\napprove:\n  - id: ddl\n    kinds: [ALTER]\n    groups:\n      - dba # the DBAs\n      - ops\n"
	out, _, err := policy.Migrate("p.yaml", []byte(v1), true)
	if err != nil {
		t.Fatal(err)
	}
	want := "version: 2\napprove:\n  - id: ddl\n    kinds: [ALTER]\n    exempt:\n      outside_groups:\n        - dba # the DBAs\n        - ops\n"
	if string(out) != want {
		t.Errorf("migrated:\n%s\nwant:\n%s", out, want)
	}
}

func TestExplainHTTPForEveryone(t *testing.T) {
	p, err := policy.Read("h.yaml", []byte(`version: 2
deny:
  - {id: no-admin, paths: ["/admin/**"], reason: no, exempt: {users: [ops-bot]}}
approve:
  - {id: deploys, methods: [POST], paths: [/deploy], exempt: {groups: [sre]}}
`))
	if err != nil {
		t.Fatal(err)
	}
	var b bytes.Buffer
	if err := policy.Print(&b, p, policy.Everyone(p)); err != nil {
		t.Fatal(err)
	}
	_, got, _ := strings.Cut(b.String(), "\n")
	want := `
group sre:
  refused  deny rule no-admin: paths: /admin/** (no)
  unheld   approval rule deploys: methods: POST; paths: /deploy (exempt: {groups: [sre]})
  unheld   everything else

user ops-bot (in none of the groups above):
  held     approval rule deploys: methods: POST; paths: /deploy (timeout 5m0s)
  allowed  deny rule no-admin: paths: /admin/** (exempt: {users: [ops-bot]})
  unheld   everything else

anyone in none of sre:
  refused  deny rule no-admin: paths: /admin/** (no)
  held     approval rule deploys: methods: POST; paths: /deploy (timeout 5m0s)
  unheld   everything else
`
	if p.Gateway != policy.HTTP || got != want {
		t.Errorf("%s gateway, explain:\n%s\nwant:\n%s", p.Gateway, got, want)
	}
}

// A Kubernetes gateway's file is read by its own parser, and explain
// shows its built-in refusal of secrets and who its allow rules let read
// them.
func TestExplainKubernetes(t *testing.T) {
	p, err := policy.Read("kube.yaml", []byte(`version: 2
deny:
  - {id: keep-namespaces, verbs: [delete], resources: [namespaces], reason: change process}
approve:
  - {id: bindings, verbs: [create], api_groups: [rbac.authorization.k8s.io], resources: [clusterrolebindings], exempt: {groups: [platform]}}
allow:
  - {id: sre-secrets, resources: [secrets], exempt: {outside_groups: [sre]}}
`))
	if err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	if err := policy.Print(&b, p, []policy.Who{{Groups: []string{"sre"}, Label: "group sre"}, {Label: "anyone"}}); err != nil {
		t.Fatal(err)
	}
	got := b.String()
	for _, want := range []string{
		"kubernetes gateway",
		"group sre:\n  refused  deny rule keep-namespaces: verbs: delete; resources: namespaces (change process)\n  refused  deny rule builtin-secrets: requests to secrets other than create",
		"  allowed  allow rule sre-secrets: resources: secrets (lets the requests it matches read secrets)",
		"anyone:",
		"  no allow allow rule sre-secrets: resources: secrets (exempt: {outside_groups: [sre]})",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("explain:\n%s\nwant %q", got, want)
		}
	}
	if p.Gateway != policy.Kubernetes {
		t.Errorf("gateway %s", p.Gateway)
	}
}
