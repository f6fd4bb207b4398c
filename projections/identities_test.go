package projections_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/auditledger/auditledger/ledger"
	"github.com/auditledger/auditledger/projections"
)

// TestIdentitiesSeen: the identities of one issuer that acted in a tenant
// since a time, each with every group its events' tokens named — another
// tenant's, another issuer's and older events left out; an identity
// without groups listed with none.
func TestIdentitiesSeen(t *testing.T) {
	f := newFixture(t)
	ev := func(i int, tenant, issuer, subject, kind, groups, at string) ledger.Entry {
		g := ""
		if groups != "" {
			g = `,"groups":` + groups
		}
		return ledger.Entry{Event: fmt.Appendf(nil, `{"version":1,"id":"ev-%d","type":"session.started","time":%q,"tenant":%q,"source":{"kind":"postgres-proxy","instance":"p1"},"actor":{"issuer":%q,"subject":%q%s,"kind":%q},"session_id":"s%d","session_seq":1,"payload":{}}`,
			i, at, tenant, issuer, subject, g, kind, i)}
	}
	const idp, now, old = "https://idp.example", "2026-12-07T10:00:00Z", "2026-12-01T10:00:00Z"
	if _, err := f.log.Append(t.Context(), []ledger.Entry{
		ev(0, "acme", idp, "alice", "human", `["dba","tenant:acme"]`, now),
		ev(1, "acme", idp, "alice", "human", `["auditor"]`, now),
		ev(2, "acme", idp, "bob", "human", `["approver"]`, old), // before since
		ev(3, "globex", idp, "gus", "human", `["dba"]`, now),    // another tenant
		ev(4, "acme", "https://other.example", "eve", "human", `["dba"]`, now),
		ev(5, "acme", idp, "agent", "machine", "", now),
	}); err != nil {
		t.Fatal(err)
	}
	f.project(t)
	seen, err := projections.NewReader(f.cfg.DB).IdentitiesSeen(t.Context(), "acme", idp, time.Date(2026, 12, 6, 0, 0, 0, 0, time.UTC))
	if err != nil {
		t.Fatal(err)
	}
	want := "[{agent machine []} {alice human [auditor dba tenant:acme]}]"
	if got := fmt.Sprint(seen); got != want {
		t.Errorf("seen %s, want %s", got, want)
	}
}
