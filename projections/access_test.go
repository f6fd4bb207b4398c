package projections_test

import (
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/auditledger/auditledger/compliance"
	"github.com/auditledger/auditledger/ledger"
	"github.com/auditledger/auditledger/projections"
)

// HeldGrants finds a grant by its window, names its approvers, counts the
// sessions it admitted (and no other session), marks a break-glass grant
// and a revocation, and keeps to its tenant and period.
func TestHeldGrants(t *testing.T) {
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
		ev("access.reviewed", "acme", "carol", "", `{"tenant":"acme","from":"2026-11-26T00:00:00Z","to":"2026-11-27T00:00:00Z","grants":2,"holders":2,"sessions":2,"break_glass":1,"listing_sha256":"ab","reason":"ok","by":"carol"}`),
	}
	if _, err := f.log.Append(t.Context(), es); err != nil {
		t.Fatal(err)
	}
	if err := projections.Migrate(t.Context(), f.cfg.DB); err != nil {
		t.Fatal(err)
	}
	for {
		applied, err := projections.Step(t.Context(), f.cfg)
		if err != nil {
			t.Fatal(err)
		}
		if !applied {
			break
		}
	}
	rd := projections.NewReader(f.cfg.DB)
	from, to := time.Date(2026, 11, 26, 0, 0, 0, 0, time.UTC), time.Date(2026, 11, 27, 0, 0, 0, 0, time.UTC)
	got, err := rd.HeldGrants(t.Context(), "acme", from, to)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 {
		t.Fatalf("%d grants, want a1 and a2: %+v", len(got), got)
	}
	a1, a2 := got[0], got[1]
	if a1.AccessID != "a1" || a1.Holder != "alice" || a1.Target != "orders" || a1.Sessions != 2 || !slices.Equal(a1.Approvers, []string{"rita"}) || a1.BreakGlass || !a1.Ended.IsZero() {
		t.Errorf("a1: %+v", a1)
	}
	if !a1.NotBefore.Equal(time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC)) || !a1.NotAfter.Equal(time.Date(2026, 11, 26, 14, 0, 0, 0, time.UTC)) {
		t.Errorf("a1 window: %v – %v", a1.NotBefore, a1.NotAfter)
	}
	if a2.AccessID != "a2" || a2.Holder != "bob" || !a2.BreakGlass || a2.Sessions != 0 || len(a2.Approvers) != 0 || a2.Ended.IsZero() {
		t.Errorf("a2: %+v", a2)
	}
	// Evidence bundles show the sign-off under 5.18.
	fw, err := compliance.Load("iso27001-2022")
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, c := range fw.Mapping.Controls {
		for _, q := range c.Queries {
			if c.Control != "5.18" || q.Name != "access_reviews" {
				continue
			}
			rows, err := rd.ControlQuery(t.Context(), q.SQL, "acme", 0, uint64(len(es)), 10)
			if err != nil {
				t.Fatal(err)
			}
			if len(rows.Values) != 1 || !slices.Contains(rows.Values[0], "carol") || !slices.Contains(rows.Values[0], "ab") {
				t.Errorf("5.18 access_reviews: %v %v", rows.Columns, rows.Values)
			}
			found = true
		}
	}
	if !found {
		t.Error("no access_reviews query under 5.18")
	}
	if none, err := rd.HeldGrants(t.Context(), "acme", to, to.Add(24*time.Hour)); err != nil || len(none) != 0 {
		t.Errorf("the next day: %+v, %v", none, err)
	}
}
