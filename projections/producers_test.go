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
		ps, truncated, err := r.Producers(t.Context(), tenants, projections.MaxProducers)
		if err != nil || truncated {
			t.Fatal(truncated, err)
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

// A limit counts only the tenants asked for: another tenant's producers,
// more than the limit, never push out theirs; a list the limit cuts says
// so.
func TestProducersLimit(t *testing.T) {
	f := newFixture(t)
	var es []ledger.Entry
	for i := range 6 {
		// globex's six producers sort before and after acme's.
		es = append(es, ledger.Entry{Event: fmt.Appendf(nil, `{"version":1,"id":"g%d","type":"command.executed","time":"2026-11-26T10:00:00Z","tenant":"globex","source":{"kind":"http-proxy","instance":"gw-%d"},"actor":{"issuer":"https://idp.example","subject":"dave","kind":"human"},"payload":{}}`, i, i)})
	}
	for _, inst := range []string{"gw-2", "gw-9"} {
		es = append(es, ledger.Entry{Event: fmt.Appendf(nil, `{"version":1,"id":"a-%s","type":"command.executed","time":"2026-11-26T10:00:00Z","tenant":"acme","source":{"kind":"http-proxy","instance":%q},"actor":{"issuer":"https://idp.example","subject":"dave","kind":"human"},"payload":{}}`, inst, inst)})
	}
	if _, err := f.log.Append(t.Context(), es); err != nil {
		t.Fatal(err)
	}
	f.project(t)
	r := projections.NewReader(f.cfg.DB)
	show := func(tenants []string, limit int) string {
		t.Helper()
		ps, truncated, err := r.Producers(t.Context(), tenants, limit)
		if err != nil {
			t.Fatal(err)
		}
		s := fmt.Sprint(truncated, ":")
		for _, p := range ps {
			s += fmt.Sprintf("%s/%s;", p.Instance, p.Tenant)
		}
		return s
	}
	for _, c := range []struct {
		tenants []string
		limit   int
		want    string
	}{
		{[]string{"acme"}, 3, "false:gw-2/acme;gw-9/acme;"},
		{[]string{"acme"}, 2, "false:gw-2/acme;gw-9/acme;"},
		{[]string{"acme"}, 1, "true:gw-2/acme;"},
		{[]string{"acme", "globex"}, 3, "true:gw-0/globex;gw-2/acme;gw-9/acme;"},
		{[]string{"globex"}, 6, "false:gw-0/globex;gw-1/globex;gw-2/globex;gw-3/globex;gw-4/globex;gw-5/globex;"},
		{[]string{"globex"}, 5, "true:gw-0/globex;gw-1/globex;gw-2/globex;gw-3/globex;gw-4/globex;"},
		{nil, 8, "false:gw-0/globex;gw-1/globex;gw-2/acme;gw-2/globex;gw-3/globex;gw-4/globex;gw-5/globex;gw-9/acme;"},
		{nil, 3, "true:gw-0/globex;gw-2/acme;gw-9/acme;"},
	} {
		if got := show(c.tenants, c.limit); got != c.want {
			t.Errorf("%v, limit %d: %s, want %s", c.tenants, c.limit, got, c.want)
		}
	}
	if _, _, err := r.Producers(t.Context(), nil, 0); err == nil {
		t.Errorf("limit 0: no error")
	}
}
