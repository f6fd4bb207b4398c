package projections_test

import (
	"fmt"
	"strings"
	"testing"

	"github.com/auditledger/auditledger/ledger"
)

// The commands view pairs each command with its result's digest: the
// keyed one ("hmac", docs/FORMAT.md §1.5), or the unkeyed "sha256" of a
// record written before results were keyed.
func TestCommandsViewResultDigest(t *testing.T) {
	f := newFixture(t)
	ev := func(id, typ, payload string, seq int) ledger.Entry {
		return ledger.Entry{Event: fmt.Appendf(nil, `{"version":1,"id":%q,"type":%q,"time":"2026-11-26T12:00:00Z","tenant":"acme","source":{"kind":"postgres-proxy","instance":"p1"},"actor":{"issuer":"https://idp.example","subject":"alice","kind":"human"},"session_id":"s1","session_seq":%d,"target":{"kind":"postgres","name":"orders"},"payload":%s}`,
			id, typ, seq, payload)}
	}
	keyed := "hmac:" + strings.Repeat("ab", 32)
	old := strings.Repeat("cd", 32)
	if _, err := f.log.Append(t.Context(), []ledger.Entry{
		ev("s1.1", "command.executed", `{"statement":"SELECT 1"}`, 1),
		ev("s1.2", "response.digest", `{"command_id":"s1.1","rows":1,"bytes":11,"hmac":"`+keyed+`"}`, 2),
		ev("s1.3", "command.executed", `{"statement":"SELECT 2"}`, 3),
		ev("s1.4", "response.digest", `{"command_id":"s1.3","rows":1,"bytes":11,"sha256":"`+old+`"}`, 4),
	}); err != nil {
		t.Fatal(err)
	}
	f.project(t)
	got := map[string]string{}
	rows, err := f.cfg.DB.Query(t.Context(), `SELECT id, coalesce(result_digest, '') FROM commands`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	for rows.Next() {
		var id, d string
		if err := rows.Scan(&id, &d); err != nil {
			t.Fatal(err)
		}
		got[id] = d
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || got["s1.1"] != keyed || got["s1.3"] != old {
		t.Errorf("result digests %v, want s1.1 %s and s1.3 %s", got, keyed, old)
	}
}
