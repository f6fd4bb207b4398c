package compliance_test

import (
	"fmt"
	"strings"
	"testing"

	"github.com/auditledger/auditledger/compliance"
)

// refusal writes one command.blocked of source kind src.
func refusal(id, src, payload string) []byte {
	return fmt.Appendf(nil, `{"version":1,"id":%q,"type":"command.blocked","time":"2026-12-01T10:00:00Z","tenant":"acme","source":{"kind":%q,"instance":"i"},"actor":{"issuer":"https://idp","subject":"carol","kind":"human"},"payload":%s}`,
		id, src, payload)
}

// refusalsLog holds every kind of refusal the product records: the API's
// (a self-approval, a scope refusal), a gateway's refusals no rule decides
// (a statement too long to record whole, a forwarding), a just-in-time
// access refusal naming its access rule and one recorded before access
// refusals named it, deny rules' refusals naming theirs, and a deny
// rule's refusal with a blank or null rule.
func refusalsLog() []compliance.Observed {
	evs := [][]byte{
		refusal("self", "api", `{"reason":"approvals: a requester may not approve their own request"}`),
		refusal("scope", "api", `{"reason":"out of scope: tenant globex","scope":"acme"}`),
		refusal("long", "postgres-proxy", `{"statement":"SELECT 1","kind":"SELECT","reason":"statement of 40000 bytes refused: the audit proxy forwards statements of at most 32768 bytes"}`),
		refusal("fwd", "ssh-proxy", `{"protocol":"ssh","kind":"forwarding remote","statement":"forwarding remote","reason":"remote forwarding (ssh -R) is not relayed by the gateway"}`),
		refusal("jit", "postgres-proxy", `{"reason":"access refused: no grant","access_required":true,"rule":"orders-db"}`),
		refusal("jit-old", "postgres-proxy", `{"reason":"access refused: no grant","access_required":true}`),
		refusal("deny", "postgres-proxy", `{"statement":"DROP TABLE t","kind":"DROP","rule":"no-drop","reason":"no"}`),
		refusal("blank", "postgres-proxy", `{"statement":"DROP TABLE t","kind":"DROP","rule":"  ","reason":"no"}`),
		refusal("null", "kube-gateway", `{"statement":"delete pods x","rule":null,"reason":"no"}`),
		refusal("number", "http-proxy", `{"statement":"DELETE /x","rule":7,"reason":"no"}`),
		// access_required other than JSON true is not an access refusal
		refusal("not-true", "postgres-proxy", `{"reason":"r","access_required":"true"}`),
	}
	out := make([]compliance.Observed, len(evs))
	for i, e := range evs {
		out[i] = compliance.Observed{Index: uint64(200 + i), Event: e}
	}
	return out
}

func refusalRows(t *testing.T, version int) string {
	t.Helper()
	x, err := compliance.ParseExpectations("x.yaml", fmt.Appendf(nil, "version: %d\ncontrols:\n  - control: \"8.3\"\n    check: refusals-name-rule\n    statement: s\n", version))
	if err != nil {
		t.Fatal(err)
	}
	if got := x.LegacyRefusals(); got != (version < 5) {
		t.Errorf("version %d: LegacyRefusals %v", version, got)
	}
	got, err := compliance.Assert(x, nil, assertPeriod, refusalsLog())
	if err != nil {
		t.Fatal(err)
	}
	var rows []string
	for _, r := range got[0].Rows {
		ex := "-"
		if r.Exception != "" {
			ex = "X"
		}
		rows = append(rows, fmt.Sprintf("%d:%s:%s", r.Index, r.Item, ex))
	}
	return strings.Join(rows, " ")
}

// 8.3 from version 5 tests the refusals a policy rule decided: the API's
// refusals (a self-approval among them) and a gateway's refusals no rule
// decides are outside its population, a just-in-time access refusal
// naming its access rule meets it, and one that names none, or a deny
// rule's refusal with a blank rule, is an exception. Versions before 5
// test every command.blocked, as bundles built with them were.
func TestRefusalsDecidedByARule(t *testing.T) {
	if got, want := refusalRows(t, 5), "204:orders-db:- 205::X 206:no-drop:- 207::X 208::X 209::X"; got != want {
		t.Errorf("version 5:\n got %s\nwant %s", got, want)
	}
	if got, want := refusalRows(t, 4), "200::X 201::X 202::X 203::X 204:orders-db:- 205::X 206:no-drop:- 207::X 208::X 209::X 210::X"; got != want {
		t.Errorf("version 4:\n got %s\nwant %s", got, want)
	}
	if refusalRows(t, 1) != refusalRows(t, 4) {
		t.Error("versions 1 and 4 differ in refusals-name-rule")
	}
}

// The events decoded by encoding/json (not the plain form eventscan
// reads: an escaped member name) are judged the same.
func TestRefusalsDecidedByARuleDecoded(t *testing.T) {
	x, err := compliance.ParseExpectations("x.yaml", []byte("version: 5\ncontrols:\n  - control: \"8.3\"\n    check: refusals-name-rule\n    statement: s\n"))
	if err != nil {
		t.Fatal(err)
	}
	evs := refusalsLog()
	for i := range evs {
		evs[i].Event = []byte(strings.Replace(string(evs[i].Event), `"version":1`, `"versio\u006e":1`, 1))
	}
	got, err := compliance.Assert(x, nil, assertPeriod, evs)
	if err != nil {
		t.Fatal(err)
	}
	var idx []string
	for _, r := range got[0].Rows {
		idx = append(idx, fmt.Sprint(r.Index))
	}
	if g := strings.Join(idx, " "); g != "204 205 206 207 208 209" {
		t.Errorf("decoded: rows %s", g)
	}
}
