package compliance_test

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/auditledger/auditledger/compliance"
)

// ev writes one event as the ledger seals it (the members the checks
// read).
func ev(id, typ, session, subject, kind, payload string) []byte {
	return fmt.Appendf(nil, `{"version":1,"id":%q,"type":%q,"time":"2026-12-01T10:00:00Z","tenant":"acme","source":{"kind":"postgres-proxy","instance":"p"},"actor":{"issuer":"https://idp","subject":%q,"kind":%q},"session_id":%q,"payload":%s}`,
		id, typ, subject, kind, session, payload)
}

// evAt writes one event of tenant at a time, its actor with groups.
func evAt(id, typ, tenant, at, session, subject, kind, groups, payload string) []byte {
	return fmt.Appendf(nil, `{"version":1,"id":%q,"type":%q,"time":%q,"tenant":%q,"source":{"kind":"api","instance":"p"},"actor":{"issuer":"https://idp","subject":%q,"kind":%q,"groups":%s},"session_id":%q,"payload":%s}`,
		id, typ, at, tenant, subject, kind, groups, session, payload)
}

// A log of the README's version-1 policy (DDL held for dba only): alice
// (dba) waits for bob; carol (not dba) runs DDL unheld; dave approves his
// own; one refusal names no rule; one read returns e-mails unmasked; one
// request expires; one session runs DDL under an access grant.
func assertLog() []compliance.Observed {
	evs := [][]byte{
		ev("e0", "approval.requested", "s1", "alice", "human", `{"approval_id":"apr-1","statement_sha256":"aa","rule":"ddl"}`),
		ev("e1", "approval.granted", "s1", "bob", "human", `{"approval_id":"apr-1","statement_sha256":"aa","session_id":"s1","requester":{"issuer":"https://idp","subject":"alice"}}`),
		ev("e2", "command.executed", "s1", "alice", "human", `{"statement":"ALTER TABLE t ADD c int","statement_sha256":"aa","kind":"ALTER"}`),
		ev("e3", "command.executed", "s2", "carol", "human", `{"statement":"CREATE TABLE x (id int)","statement_sha256":"bb","kind":"create"}`),
		ev("e4", "approval.requested", "s3", "dave", "human", `{"approval_id":"apr-2","statement_sha256":"cc","rule":"ddl"}`),
		ev("e5", "approval.granted", "s3", "dave", "human", `{"approval_id":"apr-2","statement_sha256":"cc","session_id":"s3","requester":{"issuer":"https://idp","subject":"dave"}}`),
		ev("e6", "command.executed", "s3", "dave", "human", `{"statement":"DROP TABLE y","statement_sha256":"cc","kind":"DROP"}`),
		ev("e7", "command.blocked", "s2", "carol", "human", `{"statement":"DROP TABLE z","kind":"DROP","rule":" ","reason":"no"}`),
		ev("e8", "command.blocked", "s2", "carol", "human", `{"statement":"DROP TABLE z","kind":"DROP","rule":"no-drop","reason":"no"}`),
		ev("e9", "command.executed", "s2", "carol", "human", `{"statement":"SELECT Email FROM customers","kind":"SELECT"}`),
		ev("e10", "response.digest", "s2", "carol", "human", `{"command_id":"e9","rows":2}`),
		ev("e11", "command.executed", "s1", "alice", "human", `{"statement":"SELECT email FROM customers","kind":"SELECT"}`),
		ev("e12", "mask.applied", "s1", "alice", "human", `{"command_id":"e11","column":"email","rule_id":"m"}`),
		ev("e13", "response.digest", "s1", "alice", "human", `{"command_id":"e11","rows":1}`),
		ev("e14", "approval.requested", "s4", "erin", "human", `{"approval_id":"apr-3","statement_sha256":"dd","rule":"ddl"}`),
		ev("e15", "approval.expired", "", "approvals", "machine", `{"approval_id":"apr-3","statement_sha256":"dd"}`),
		ev("e16", "access.granted", "", "bob", "human", `{"access_id":"acc-1","grant":"just-in-time","requester":{"issuer":"https://idp","subject":"frank"},"not_before":"2026-12-01T09:00:00Z","not_after":"2026-12-01T11:00:00Z"}`),
		ev("e17", "session.started", "s5", "frank", "human", `{"access_id":"acc-1"}`),
		ev("e18", "command.executed", "s5", "frank", "human", `{"statement":"TRUNCATE t","statement_sha256":"ee","kind":"TRUNCATE"}`),
		// The ledger's clock: synchronised, then not, then with too large
		// an error; a clock status in a tenant's events is not the log's.
		evAt("c1", "ledger.clock.status", "_ledger", "2026-12-01T10:00:00Z", "", "writer", "machine", "[]", `{"synchronised":true,"maxerror_us":1000,"esterror_us":10,"status":1,"source":"ntp.example","host":"h1"}`),
		evAt("c2", "ledger.clock.status", "_ledger", "2026-12-01T11:00:00Z", "", "writer", "machine", "[]", `{"synchronised":false,"maxerror_us":16000000,"esterror_us":16000000,"status":64,"host":"h1"}`),
		evAt("c3", "ledger.clock.status", "_ledger", "2026-12-01T12:00:00Z", "", "writer", "machine", "[]", `{"synchronised":true,"maxerror_us":500000,"esterror_us":10,"status":1,"host":"h1"}`),
		evAt("c4", "ledger.clock.status", "acme", "2026-12-01T12:00:00Z", "", "writer", "machine", "[]", `{"synchronised":false,"maxerror_us":1,"host":"h1"}`),
		// The directory: a listing from tokens is not the provider's; a
		// SCIM listing counts once its last part is in.
		evAt("d0", "identity.snapshot", "acme", "2026-12-01T12:00:00Z", "", "directory", "machine", "[]", `{"snapshot":"s0","part":1,"parts":1,"source":"tokens","members":[{"subject":"mallory","active":true,"kind":"human","groups":["dba"]}]}`),
		evAt("d1", "identity.snapshot", "acme", "2026-12-01T12:00:00Z", "", "directory", "machine", "[]", `{"snapshot":"s1","part":1,"parts":2,"source":"scim","members":[{"subject":"alice","active":true,"kind":"human","groups":["dba"]},{"subject":"gina","active":false,"kind":"human","groups":[]}]}`),
		evAt("d2", "session.started", "acme", "2026-12-01T12:00:01Z", "s6", "alice", "human", `["dba"]`, `{}`),
		evAt("d3", "identity.snapshot", "acme", "2026-12-01T12:00:00Z", "", "directory", "machine", "[]", `{"snapshot":"s1","part":2,"parts":2,"source":"scim","members":[{"subject":"carol","active":true,"kind":"human","groups":["auditor"]}]}`),
		evAt("d4", "session.started", "acme", "2026-12-01T12:01:00Z", "s7", "alice", "human", `["dba","admin"]`, `{}`),
		evAt("d5", "session.started", "acme", "2026-12-01T12:02:00Z", "s8", "carol", "human", `["auditor"]`, `{}`),
		evAt("d6", "session.started", "acme", "2026-12-01T12:03:00Z", "s9", "gina", "human", `[]`, `{}`),
		evAt("d7", "session.started", "acme", "2026-12-01T12:04:00Z", "s10", "mallory", "human", `["dba"]`, `{}`),
		evAt("d8", "session.started", "acme", "2026-12-01T12:05:00Z", "s11", "agent", "machine", `[]`, `{}`),
		// Reviews of the audit data: a gap of 15 days; a machine's read is
		// not a review.
		evAt("r1", "audit.accessed", "acme", "2026-12-01T10:00:00Z", "", "carol", "human", `["auditor"]`, `{"resource":"events","method":"GET","path":"/v1/events"}`),
		evAt("r2", "audit.accessed", "acme", "2026-12-05T10:00:00Z", "", "carol", "human", `["auditor"]`, `{"method":"GET","path":"/v1/sessions"}`),
		evAt("r3", "audit.accessed", "acme", "2026-12-20T10:00:00Z", "", "siem", "machine", `[]`, `{"resource":"events"}`),
		evAt("r4", "audit.accessed", "acme", "2026-12-20T10:00:00Z", "", "carol", "human", `["auditor"]`, `{"resource":"events"}`),
	}
	out := make([]compliance.Observed, len(evs))
	for i, e := range evs {
		out[i] = compliance.Observed{Index: uint64(100 + i), Event: e}
	}
	return out
}

// assertPeriod is assertLog's period: from the start of its first day to
// two days after its last review.
var assertPeriod = compliance.Period{From: time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC), To: time.Date(2026, 12, 22, 0, 0, 0, 0, time.UTC)}

func TestAssertionsFindExceptions(t *testing.T) {
	fw, err := compliance.Load("iso27001-2022")
	if err != nil {
		t.Fatal(err)
	}
	got, err := compliance.Assert(fw.Expectations, nil, assertPeriod, assertLog())
	if err != nil {
		t.Fatal(err)
	}
	// index:exception per control, in index order ("-" for none).
	want := map[string]string{
		"5.3": "100:- 104:" + compliance.ExDecidedByRequest + " 114:-",
		// frank's grant was recorded by a proxy, not the API: it covers
		// nothing, and the exception says why
		"8.2":  "102:- 103:" + compliance.ExNoGrant + " 106:" + compliance.ExNoGrant + " 118:" + compliance.ExUnverifiedGrant + " (index 116): " + compliance.WhyNotAPI,
		"8.3":  "107:" + compliance.ExNoRule + " 108:-",
		"8.11": "109:" + compliance.ExUnmasked + " 111:-",
		"8.32": "102:- 103:" + compliance.ExNoApproval + " 106:" + compliance.ExSelfApproved + " 118:" + compliance.ExNoApproval,
		"8.17": "119:- 120:" + compliance.ExClockUnsynced + " 121:" + compliance.ExClockError + " (500000 us > 250000 us)",
		"5.15": "117:" + compliance.ExNoListing + " 125:" + compliance.ExNoListing + " 127:- 128:- 129:" + compliance.ExInactive + " 130:" + compliance.ExNotListed,
		"5.18": "117:" + compliance.ExNoListing + " 125:" + compliance.ExNoListing + " 127:" + compliance.ExExtraGroups + ": admin 128:- 129:" + compliance.ExInactive + " 130:" + compliance.ExNotListed,
		"8.16": "132:- 133:- 135:" + compliance.ExReviewLate,
		// no verification record given: none covered the range (a row of
		// no event), and 8.15 had nothing to test
		"5.33": "0:" + compliance.ExNoVerification,
		"8.15": "",
	}
	results := map[string]string{}
	for c := range want {
		results[c] = compliance.Exceptions
	}
	results["8.15"] = compliance.NotObserved
	if len(got) != len(want) {
		t.Fatalf("%d assertions, want %d", len(got), len(want))
	}
	for _, a := range got {
		var rows []string
		for _, r := range a.Rows {
			ex := r.Exception
			if ex == "" {
				ex = "-"
			}
			rows = append(rows, fmt.Sprintf("%d:%s", r.Index, ex))
		}
		if g := strings.Join(rows, " "); g != want[a.Control] {
			t.Errorf("%s (%s):\n got %s\nwant %s", a.Control, a.Check, g, want[a.Control])
		}
		if a.Result != results[a.Control] {
			t.Errorf("%s: result %q, want %q", a.Control, a.Result, results[a.Control])
		}
	}
	// The expired request shows as expired, not approved by "approvals";
	// the exception names the event, session and actor as recorded.
	for _, r := range got[0].Rows {
		if r.Index == 114 && r.Item != "expired: no one decided" {
			t.Errorf("the expired request reads %q", r.Item)
		}
		if r.Index == 104 && (r.SessionID != "s3" || r.Actor != "dave" || r.Evidence == nil || *r.Evidence != 105) {
			t.Errorf("the self-approval row %+v", r)
		}
	}
	// What each row says it tested, and the event it rests on.
	items := map[string]string{}
	for _, a := range got {
		for _, r := range a.Rows {
			ev := "-"
			if r.Evidence != nil {
				ev = fmt.Sprint(*r.Evidence)
			}
			items[fmt.Sprintf("%s/%d", a.Control, r.Index)] = r.Item + " @" + ev
		}
	}
	for k, v := range map[string]string{
		"8.17/119": "synchronised=true maxerror_us=1000 source=ntp.example host=h1 @-",
		"8.17/120": "synchronised=false maxerror_us=16000000 source= host=h1 @-",
		"5.15/117": "no listing @-", "5.15/127": "listed, active @124", "5.15/128": "listed, active @126",
		"5.15/129": "listed, inactive @124", "5.15/130": "not listed @126",
		"5.18/127": "groups: dba,admin @124", "5.18/128": "groups: auditor @126",
		"8.16/132": "events @-", "8.16/133": "GET /v1/sessions @-",
	} {
		if items[k] != v {
			t.Errorf("%s: %q, want %q", k, items[k], v)
		}
	}
	// Nothing happened, in a period shorter than the reviews' bound: not
	// observed, never effective; but a log no verification covered is
	// an exception of 5.33 whatever happened.
	none, _ := compliance.Assert(fw.Expectations, nil, compliance.Period{From: assertPeriod.From, To: assertPeriod.From.Add(7 * 24 * time.Hour)}, nil)
	for _, a := range none {
		if a.Control == "5.33" {
			if a.Result != compliance.Exceptions {
				t.Errorf("5.33 with no verification: %s", a.Result)
			}
			continue
		}
		if a.Result != compliance.NotObserved {
			t.Errorf("%s with no events: %s", a.Control, a.Result)
		}
	}
}

// The operator's expectations replace the defaults: without
// approvals_cover, an approved change outside a grant is an exception.
func TestOperatorExpectations(t *testing.T) {
	x, err := compliance.ParseExpectations("mine.yaml", []byte(`version: 2
controls:
  - control: "8.2"
    check: privileged-sessions-granted
    statement: Every privileged session ran under a grant.
    kinds: [ALTER, CREATE, DROP, TRUNCATE]
`))
	if err != nil {
		t.Fatal(err)
	}
	got, err := compliance.Assert(x, nil, assertPeriod, assertLog())
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 || got[0].Exceptions != 4 {
		t.Errorf("8.2 without approvals_cover: %+v", got)
	}
	for _, bad := range []string{
		"version: 1\ncontrols:\n  - control: \"8.2\"\n    check: privileged-sessions-granted\n    statement: s\n",
		"version: 1\ncontrols:\n  - control: \"8.2\"\n    check: everything-fine\n    statement: s\n",
		"version: 1\ncontrols:\n  - control: \"8.11\"\n    check: columns-masked\n    statement: s\n    colums: [email]\n",
		"version: 6\ncontrols: []\n",
		"version: 3\ncontrols:\n  - control: \"5.33\"\n    check: log-verified\n    statement: s\n",
		"version: 0\ncontrols: []\n",
		"version: 1\ncontrols:\n  - control: \"8.17\"\n    check: clock-synchronised\n    statement: s\n",
		"version: 1\ncontrols:\n  - control: \"8.16\"\n    check: audit-reviewed\n    statement: s\n    every_days: 0\n",
	} {
		if _, err := compliance.ParseExpectations("bad.yaml", []byte(bad)); err == nil {
			t.Errorf("accepted:\n%s", bad)
		}
	}
}
