package projections_test

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/auditledger/auditledger/compliance"
	"github.com/auditledger/auditledger/ledger"
	"github.com/auditledger/auditledger/projections"
)

// GrantRecords reads a tenant's access.granted records of every form and
// its ssh.certificate.issued records, with who published them, before the
// time given and in ledger order; GrantActivities names each grant's
// approvers, its first revocation and the sessions it admitted (and no
// other session); the 5.18 query lists the sign-offs.
func TestGrantRecords(t *testing.T) {
	f := newFixture(t)
	n := 0
	ev := func(typ, tenant, subject, session, payload string) ledger.Entry {
		n++
		sess := ""
		if session != "" {
			sess = fmt.Sprintf(`"session_id":%q,"session_seq":1,`, session)
		}
		return ledger.Entry{Event: fmt.Appendf(nil, `{"version":1,"id":"ev-%d","type":%q,"time":"2026-11-26T12:00:%02dZ","tenant":%q,"source":{"kind":"api","instance":"a1"},"actor":{"issuer":"https://idp.example","subject":%q,"kind":"human"},%s"target":{"kind":"access","name":"orders"},"payload":%s}`,
			n, typ, n, tenant, subject, sess, payload)}
	}
	grant := func(id, holder, from, to string, bg bool) string {
		return fmt.Sprintf(`{"access_id":%q,"rule":"prod","status":"approved","target":"orders","requester":{"issuer":"https://idp.example","subject":%q},"grant":"just-in-time","approvals":1,"not_before":%q,"not_after":%q,"break_glass":%t}`, id, holder, from, to, bg)
	}
	es := []ledger.Entry{
		ev("access.approved", "acme", "rita", "", `{"access_id":"a1","target":"orders"}`),
		ev("access.granted", "acme", "rita", "", grant("a1", "alice", "2026-11-26T12:00:00Z", "2026-11-26T14:00:00Z", false)),
		ev("session.started", "acme", "alice", "s1", `{"access_id":"a1"}`),
		ev("session.started", "acme", "alice", "s2", `{"access_id":"a1"}`),
		ev("session.started", "acme", "alice", "s3", `{}`),
		ev("access.granted", "acme", "bob", "", grant("a2", "bob", "2026-11-26T13:00:00Z", "2026-11-26T13:30:00Z", true)),
		ev("access.revoked", "acme", "bob", "", `{"access_id":"a2","target":"orders"}`),
		ev("access.granted", "acme", "rita", "", grant("a3", "carol", "2026-11-20T13:00:00Z", "2026-11-20T14:00:00Z", false)),
		ev("access.granted", "globex", "gus", "", grant("g1", "gus", "2026-11-26T12:00:00Z", "2026-11-26T14:00:00Z", false)),
		ev("access.granted", "acme", "mallory", "", `{"access_id":"bad","grant":"just-in-time","target":"orders","not_before":"soon","not_after":"later"}`),
		// The SSH gateway's certificate issuance, in its legacy form and
		// its own type.
		ev("access.granted", "acme", "alice", "", `{"grant":"ssh-user-certificate","serial":"12","key_id":"alice","principals":["alice"],"valid_before":"2026-11-26T20:00:00Z"}`),
		ev("ssh.certificate.issued", "acme", "alice", "", `{"serial":"13","key_id":"alice","principals":["alice"],"valid_before":"2026-11-26T20:00:00Z"}`),
		ev("access.reviewed", "acme", "carol", "", `{"tenant":"acme","from":"2026-11-26T00:00:00Z","to":"2026-11-27T00:00:00Z","grants":2,"holders":2,"unverified":1,"sessions":2,"break_glass":1,"listing_sha256":"ab","reason":"ok","by":"carol"}`),
	}
	if _, err := f.log.Append(t.Context(), es); err != nil {
		t.Fatal(err)
	}
	f.project(t)
	rd := projections.NewReader(f.cfg.DB)
	recs, err := rd.GrantRecords(t.Context(), "acme", time.Date(2026, 11, 26, 12, 0, 14, 0, time.UTC))
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, r := range recs {
		var p struct {
			AccessID string `json:"access_id"`
			Serial   string `json:"serial"`
		}
		if err := json.Unmarshal(r.Payload, &p); err != nil {
			t.Fatal(err)
		}
		got = append(got, fmt.Sprintf("%d %s %s/%s %s %s%s", r.Index, r.Type, r.SourceKind, r.SourceInstance, r.ActorSubject, p.AccessID, p.Serial))
	}
	want := []string{"1 access.granted api/a1 rita a1", "5 access.granted api/a1 bob a2", "7 access.granted api/a1 rita a3",
		"9 access.granted api/a1 mallory bad", "10 access.granted api/a1 alice 12", "11 ssh.certificate.issued api/a1 alice 13"}
	if !slices.Equal(got, want) {
		t.Errorf("grant records:\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if early, err := rd.GrantRecords(t.Context(), "acme", time.Date(2026, 11, 26, 12, 0, 7, 0, time.UTC)); err != nil || len(early) != 2 {
		t.Errorf("records before 12:00:07: %d, %v; want a1 and a2", len(early), err)
	}
	acts, err := rd.GrantActivities(t.Context(), "acme", []string{"a1", "a2", "none"})
	if err != nil {
		t.Fatal(err)
	}
	if a1 := acts["a1"]; a1.Sessions != 2 || !slices.Equal(a1.Approvers, []string{"rita"}) || !a1.Revoked.IsZero() {
		t.Errorf("a1: %+v", a1)
	}
	if a2 := acts["a2"]; a2.Sessions != 0 || len(a2.Approvers) != 0 || !a2.Revoked.Equal(time.Date(2026, 11, 26, 12, 0, 7, 0, time.UTC)) {
		t.Errorf("a2: %+v", a2)
	}
	if none := acts["none"]; none.Sessions != 0 || len(none.Approvers) != 0 {
		t.Errorf("an id without records: %+v", none)
	}
	// Evidence bundles show the sign-off under 5.18, in a table derived
	// from the records (FORMAT §12.3; projections/evidence tests it).
	fw, err := compliance.Load("iso27001-2022")
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, c := range fw.Mapping.Controls {
		for _, q := range c.Queries {
			if c.Control == "5.18" && q.Name == "access_reviews" {
				found = q.Derived
			}
		}
	}
	if !found {
		t.Error("no access_reviews table derived under 5.18")
	}
}
