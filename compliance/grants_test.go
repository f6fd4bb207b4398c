package compliance_test

import (
	"crypto/rand"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/auditledger/auditledger/compliance"
	"github.com/auditledger/auditledger/events"
	"github.com/auditledger/auditledger/ledger"
)

// grantKeys are the API's grant key and another.
func grantKeys(t *testing.T) (api, other *ledger.NoteSigner) {
	t.Helper()
	mk := func(name string) *ledger.NoteSigner {
		skey, _, err := ledger.GenerateKey(rand.Reader, name)
		if err != nil {
			t.Fatal(err)
		}
		s, err := ledger.NewNoteSigner(skey)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	return mk("approvals"), mk("approvals")
}

// grantEvent writes an access.granted of tenant acme, published by source
// kind src, for subject's session, its window [10:00, 11:00) unless
// window says otherwise; signer signs the grant text (nil: no signature),
// after edit changes what it signs.
func grantEvent(t *testing.T, id, src, grant, subject string, signer *ledger.NoteSigner, edit func(*events.Grant)) []byte {
	t.Helper()
	g := events.Grant{ID: id, Tenant: "acme", Rule: "prod-ddl", Requester: events.Actor{Issuer: "https://idp", Subject: subject},
		Target: "orders", NotBefore: time.Date(2026, 12, 1, 9, 30, 0, 0, time.UTC), NotAfter: time.Date(2026, 12, 1, 11, 0, 0, 0, time.UTC)}
	sig := ""
	if signer != nil {
		signed := g
		if edit != nil {
			edit(&signed)
		}
		note, err := signer.SignNote(events.GrantText(signed))
		if err != nil {
			t.Fatal(err)
		}
		sig = string(note)
	}
	payload, _ := json.Marshal(map[string]any{"access_id": id, "grant": grant, "rule": g.Rule, "target": g.Target, "status": "approved",
		"requester":  map[string]string{"issuer": g.Requester.Issuer, "subject": subject},
		"not_before": g.NotBefore, "not_after": g.NotAfter, "signature": sig})
	return fmt.Appendf(nil, `{"version":1,"id":"access/%s/granted","type":"access.granted","time":"2026-12-01T09:30:00Z","tenant":"acme","source":{"kind":%q,"instance":"x-1"},"actor":{"issuer":"https://idp","subject":"bob","kind":"human"},"target":{"kind":"access","name":"orders"},"payload":%s}`,
		id, src, payload)
}

// privilegedSession is a session of subject under grant id that runs one
// DDL statement no one approved.
func privilegedSession(session, subject, id string) [][]byte {
	return [][]byte{
		fmt.Appendf(nil, `{"version":1,"id":"%s-start","type":"session.started","time":"2026-12-01T10:00:00Z","tenant":"acme","source":{"kind":"postgres-proxy","instance":"p"},"actor":{"issuer":"https://idp","subject":%q,"kind":"human"},"session_id":%q,"payload":{"access_id":%q}}`, session, subject, session, id),
		fmt.Appendf(nil, `{"version":1,"id":"%s-ddl","type":"command.executed","time":"2026-12-01T10:01:00Z","tenant":"acme","source":{"kind":"postgres-proxy","instance":"p"},"actor":{"issuer":"https://idp","subject":%q,"kind":"human"},"session_id":%q,"payload":{"statement":"DROP TABLE t","statement_sha256":"%s","kind":"DROP"}}`, session, subject, session, strings.Repeat("a", 64)),
	}
}

// A privileged session is covered only by the API's signed grant: a
// record anyone else published, unsigned, signed over another window or
// with another key, or an SSH certificate's record under access.granted,
// covers nothing, and the exception says which record and why. Without
// the grant key no signature is taken on trust.
func TestPrivilegedSessionsOnlySignedGrants(t *testing.T) {
	api, other := grantKeys(t)
	var log [][]byte
	add := func(evs ...[]byte) { log = append(log, evs...) }
	// Index 100 on: each case a grant record then its session (3 events).
	add(grantEvent(t, "acc-ok", "api", "just-in-time", "alice", api, nil))
	add(privilegedSession("s-ok", "alice", "acc-ok")...)
	add(grantEvent(t, "acc-emit", "emit", "just-in-time", "alice", api, nil))
	add(privilegedSession("s-emit", "alice", "acc-emit")...)
	add(grantEvent(t, "acc-unsigned", "api", "just-in-time", "alice", nil, nil))
	add(privilegedSession("s-unsigned", "alice", "acc-unsigned")...)
	add(grantEvent(t, "acc-window", "api", "just-in-time", "alice", api, func(g *events.Grant) { g.NotBefore = g.NotBefore.Add(time.Hour) }))
	add(privilegedSession("s-window", "alice", "acc-window")...)
	add(grantEvent(t, "acc-key", "api", "just-in-time", "alice", other, nil))
	add(privilegedSession("s-key", "alice", "acc-key")...)
	add(grantEvent(t, "acc-ssh", "api", "ssh-user-certificate", "alice", api, nil))
	add(privilegedSession("s-ssh", "alice", "acc-ssh")...)
	add(grantEvent(t, "acc-other", "api", "other", "alice", api, nil))
	add(privilegedSession("s-other", "alice", "acc-other")...)
	// a signed grant of carol's does not cover mallory's session
	add(grantEvent(t, "acc-carol", "api", "just-in-time", "carol", api, nil))
	add(privilegedSession("s-mallory", "mallory", "acc-carol")...)
	// a session naming no recorded grant
	add(privilegedSession("s-none", "alice", "acc-none")...)
	obs := make([]compliance.Observed, len(log))
	for i, e := range log {
		obs[i] = compliance.Observed{Index: uint64(100 + i), Event: e}
	}
	x, err := compliance.ParseExpectations("x.yaml", []byte("version: 2\ncontrols:\n  - control: \"8.2\"\n    check: privileged-sessions-granted\n    statement: s\n    kinds: [DROP]\n"))
	if err != nil {
		t.Fatal(err)
	}
	unverified := func(idx int, why string) string {
		return fmt.Sprintf("%s (index %d): %s", compliance.ExUnverifiedGrant, idx, why)
	}
	want := []string{
		"102 @100 -",
		"105 - " + unverified(103, compliance.WhyNotAPI),
		"108 - " + unverified(106, compliance.WhyNoSignature),
		"111 - " + unverified(109, compliance.WhyBadSignature),
		"114 - " + unverified(112, compliance.WhyBadSignature),
		"117 - " + unverified(115, compliance.WhySSHCertificate),
		"120 - " + unverified(118, compliance.WhyNotJustInTime),
		"123 - " + compliance.ExNoGrant,
		"125 - " + compliance.ExNoGrant,
	}
	rows := func(a []compliance.Assertion) []string {
		var out []string
		for _, r := range a[0].Rows {
			ev, ex := "-", r.Exception
			if r.Evidence != nil {
				ev = fmt.Sprintf("@%d", *r.Evidence)
			}
			if ex == "" {
				ex = "-"
			}
			out = append(out, fmt.Sprintf("%d %s %s", r.Index, ev, ex))
		}
		return out
	}
	key := api.Verifier()
	period := compliance.Period{From: time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC), To: time.Date(2026, 12, 2, 0, 0, 0, 0, time.UTC)}
	a := compliance.NewAsserter(x, key.OpenNote)
	for _, o := range obs {
		if err := a.Add(o.Index, o.Event); err != nil {
			t.Fatal(err)
		}
	}
	if got := rows(a.Assertions(period)); strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("with the API's grant key:\n got %s\nwant %s", strings.Join(got, "\n     "), strings.Join(want, "\n     "))
	}
	if _, needed := a.GrantKeyNeeded(); needed {
		t.Error("the key was given, yet reported needed")
	}

	// Without a key: the signed grant is not taken on trust either, and
	// the first record whose signature was to be checked is named.
	b := compliance.NewAsserter(x, nil)
	for _, o := range obs {
		b.Add(o.Index, o.Event)
	}
	got := rows(b.Assertions(period))
	if got[0] != "102 - "+unverified(100, compliance.WhyNoKey) {
		t.Errorf("without a grant key, the signed grant: %s", got[0])
	}
	if idx, needed := b.GrantKeyNeeded(); !needed || idx != 100 {
		t.Errorf("GrantKeyNeeded = %d, %t; want 100, true", idx, needed)
	}

	// Two records of one grant: only the first counts.
	twice := append(append([][]byte{}, log[0], log[0]), privilegedSession("s-twice", "alice", "acc-ok")...)
	obs2 := make([]compliance.Observed, len(twice))
	for i, e := range twice {
		obs2[i] = compliance.Observed{Index: uint64(200 + i), Event: e}
	}
	as, _ := compliance.Assert(x, key.OpenNote, period, obs2)
	if got := rows(as); len(got) != 1 || got[0] != "203 @200 -" {
		t.Errorf("a grant recorded twice: %v", got)
	}

	// Expectations of version 1 keep their rule: any record naming the
	// grant covers the session (how bundles built with them were derived).
	x.Version = 1
	if !x.Legacy() {
		t.Error("version 1 with privileged-sessions-granted is not Legacy")
	}
	as, _ = compliance.Assert(x, nil, period, obs)
	if got := rows(as); got[1] != "105 @103 -" || got[2] != "108 @106 -" {
		t.Errorf("version 1's rule: %v", got)
	}
}

// The grant text a signature is checked over is FORMAT §13's, byte for
// byte.
func TestGrantTextIsFormats(t *testing.T) {
	got := events.GrantText(events.Grant{ID: "acc-…", Tenant: "acme", Rule: "prod-db", Requester: events.Actor{Issuer: "…", Subject: "alice"},
		Target: "orders", NotBefore: time.Date(2026, 12, 7, 9, 0, 0, 0, time.UTC), NotAfter: time.Date(2026, 12, 7, 11, 0, 0, 0, time.UTC)})
	want := `{"kind":"auditledger access grant v1","id":"acc-…","tenant":"acme","rule":"prod-db","requester":{"issuer":"…","subject":"alice"},"target":"orders","not_before":"2026-12-07T09:00:00Z","not_after":"2026-12-07T11:00:00Z","break_glass":false}` + "\n"
	if string(got) != want {
		t.Errorf("grant text\n got %s\nwant %s", got, want)
	}
}
