package projections_test

import (
	"fmt"
	"testing"

	"github.com/auditledger/auditledger/ledger"
	"github.com/auditledger/auditledger/projections"
)

// Producers lists each producer's newest record per tenant, of the
// tenants asked for only, across segments.
func TestProducers(t *testing.T) {
	f := newFixture(t)
	ev := func(id, tenant, kind, inst, at string) ledger.Entry {
		return ledger.Entry{Event: fmt.Appendf(nil, `{"version":1,"id":%q,"type":"command.executed","time":%q,"tenant":%q,"source":{"kind":%q,"instance":%q},"actor":{"issuer":"https://idp.example","subject":"dave","kind":"human"},"payload":{}}`,
			id, at, tenant, kind, inst)}
	}
	seg := func(es ...ledger.Entry) {
		if _, err := f.log.Append(t.Context(), es); err != nil {
			t.Fatal(err)
		}
	}
	seg(ev("a", "acme", "postgres-proxy", "gw-1", "2026-11-26T10:00:00Z"), ev("b", "globex", "postgres-proxy", "gw-1", "2026-11-26T10:01:00Z"),
		ev("c", "acme", "ssh-proxy", "ssh-1", "2026-11-26T10:02:00Z"))
	seg(ev("d", "acme", "postgres-proxy", "gw-1", "2026-11-26T10:03:00Z"), ev("e", "globex", "http-proxy", "web", "2026-11-26T10:04:00Z"))
	f.project(t)
	r := projections.NewReader(f.cfg.DB)
	show := func(tenants []string) string {
		t.Helper()
		ps, err := r.Producers(t.Context(), tenants)
		if err != nil {
			t.Fatal(err)
		}
		s := ""
		for _, p := range ps {
			s += fmt.Sprintf("%s/%s/%s@%d %s;", p.Kind, p.Instance, p.Tenant, p.Index, p.Time.Format("15:04"))
		}
		return s
	}
	if got, want := show([]string{"acme"}), "postgres-proxy/gw-1/acme@3 10:03;ssh-proxy/ssh-1/acme@2 10:02;"; got != want {
		t.Errorf("acme's producers: %s, want %s", got, want)
	}
	if got, want := show(nil), "http-proxy/web/globex@4 10:04;postgres-proxy/gw-1/acme@3 10:03;postgres-proxy/gw-1/globex@1 10:01;ssh-proxy/ssh-1/acme@2 10:02;"; got != want {
		t.Errorf("every tenant's producers: %s, want %s", got, want)
	}
	if got := show([]string{}); got != "" {
		t.Errorf("no tenant: %s, want none", got)
	}
	if got := show([]string{"initech"}); got != "" {
		t.Errorf("a tenant without records: %s, want none", got)
	}
}
