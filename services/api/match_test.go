package api_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/auditledger/auditledger/events"
	"github.com/auditledger/auditledger/ledger"
	"github.com/auditledger/auditledger/ledger/piikeys"
	"github.com/auditledger/auditledger/projections"
	"github.com/auditledger/auditledger/services/api"
)

func (f *readFixture) postJSON(t *testing.T, path, token string, body any) (int, string) {
	t.Helper()
	b, _ := json.Marshal(body)
	return f.post(t, path, token, string(b))
}

// An auditor finds the events that recorded a card number by the number
// itself, typed with other spacing, within their scope only; a digest
// made under another tenant's key finds nothing; and the search is
// recorded with the digest, never the number.
func TestMatchEvents(t *testing.T) {
	f := newReadFixture(t)
	ctx := t.Context()
	const card = "4111 1111 1111 1111"
	acmeKey, err := f.keys.TenantKey(ctx, "acme")
	if err != nil {
		t.Fatal(err)
	}
	globexKey, err := f.keys.TenantKey(ctx, "globex")
	if err != nil {
		t.Fatal(err)
	}
	ev := func(id, tenant, digest string) ledger.Entry {
		return ledger.Entry{Event: fmt.Appendf(nil, `{"version":1,"id":%q,"type":"command.executed","time":"2026-11-26T12:02:00Z","tenant":%q,"source":{"kind":"postgres-proxy","instance":"p1"},"actor":{"issuer":"https://idp.example","subject":"alice","kind":"human"},"target":{"kind":"postgres","name":"orders"},"payload":{"statement":"SELECT * FROM cards WHERE pan = '[REDACTED:credit_card]'","redacted":[{"path":"/statement","detector":"credit_card","count":1,"matches":[%q]}]}}`,
			id, tenant, digest)}
	}
	if _, err := f.log.Append(ctx, []ledger.Entry{
		ev("m-acme", "acme", piikeys.MatchDigest(acmeKey, card)),                   // index 40
		ev("m-globex", "globex", piikeys.MatchDigest(globexKey, card)),             // 41
		ev("m-other", "acme", piikeys.MatchDigest(acmeKey, "5500 0000 0000 0004")), // 42
		ev("m-wrongkey", "acme", piikeys.MatchDigest(globexKey, card)),             // 43: not under acme's key
	}); err != nil {
		t.Fatal(err)
	}
	for {
		applied, err := projections.Step(ctx, f.cfg)
		if err != nil {
			t.Fatal(err)
		}
		if !applied {
			break
		}
	}
	search := func(who string, req api.MatchRequest) (int, []uint64, api.MatchPage) {
		t.Helper()
		code, body := f.postJSON(t, "/v1/events/match", f.tokens[who], req)
		var page api.MatchPage
		if code == 200 {
			if err := json.Unmarshal([]byte(body), &page); err != nil {
				t.Fatal(err)
			}
		}
		var idx []uint64
		for _, e := range page.Events {
			idx = append(idx, e.Index)
		}
		return code, idx, page
	}
	for _, c := range []struct {
		who, value, tenant string
		code               int
		want               []uint64
	}{
		{"carol", "4111-1111-1111-1111", "", 200, []uint64{40}}, // acme only, whatever the spacing
		{"carol", "4111111111111111", "acme", 200, []uint64{40}},
		{"gina", " 4111 1111 1111 1111 ", "", 200, []uint64{41}}, // globex only
		{"olga", "4111.1111.1111.1111", "", 200, []uint64{40, 41}},
		{"milo", card, "globex", 200, []uint64{41}},
		{"carol", "4111 1111 1111 1112", "", 200, nil},
		{"carol", card, "globex", 403, nil}, // out of scope
		{"uma", card, "", 403, nil},         // no tenant at all
		{"alice", card, "", 403, nil},       // no auditor role
	} {
		code, got, _ := search(c.who, api.MatchRequest{Value: c.value, Tenant: c.tenant})
		if code != c.code || !slices.Equal(got, c.want) {
			t.Errorf("%s searching %q (tenant %q): %d %v; want %d %v", c.who, c.value, c.tenant, code, got, c.code, c.want)
		}
	}
	_, _, page := search("carol", api.MatchRequest{Value: card})
	if len(page.Events) != 1 || !slices.Equal(page.Events[0].Matched, []api.MatchPlace{{Path: "/statement", Detector: "credit_card"}}) {
		t.Errorf("where: %+v", page.Events)
	}

	// Bad values are refused without being quoted back.
	for _, v := range []string{"", "   ", strings.Repeat("4111 ", 60), "4111\x00"} {
		code, body := f.postJSON(t, "/v1/events/match", f.tokens["carol"], api.MatchRequest{Value: v})
		if code != 400 || (strings.TrimSpace(v) != "" && strings.Contains(body, "4111")) {
			t.Errorf("value %q: %d %s; want 400 naming no value", v, code, body)
		}
	}

	// The searches are in the log under each tenant searched, with that
	// tenant's digest, and no form of the number anywhere.
	var digests []string
	for _, s := range f.stream() {
		for _, form := range []string{"4111111111111111", "4111 1111", "4111-1111", "4111.1111", "4111 1111 1111 1112"} {
			if bytes.Contains(s.Raw, []byte(form)) {
				t.Errorf("the API's own event %s holds the value: %s", s.Event.ID, s.Raw)
			}
		}
		if s.Event.Type != events.AuditAccessed {
			continue
		}
		if fl, _ := s.Payload["filters"].(map[string]any); fl != nil {
			if d, ok := fl["match_digest"].(string); ok {
				digests = append(digests, s.Event.Tenant+" "+d)
			}
		}
	}
	acme, globex := "acme "+piikeys.MatchDigest(acmeKey, card), "globex "+piikeys.MatchDigest(globexKey, card)
	for _, want := range []string{acme, globex} {
		if !slices.Contains(digests, want) {
			t.Errorf("no audit.accessed with %s; have %v", want, digests)
		}
	}
}
