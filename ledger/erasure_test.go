package ledger_test

import (
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/auditledger/auditledger/ledger"
)

func sealedEvent(id, pseudonym string) []byte {
	return fmt.Appendf(nil, `{"version":1,"id":%q,"type":"command.executed","time":"2026-11-26T12:00:00Z","tenant":"acme","source":{"kind":"postgres-proxy","instance":"p1"},"actor":{"issuer":"https://idp.example","subject":"alice","email":"pii1.%s.%s","kind":"human"},"payload":{"statement":"SELECT 1"}}`,
		id, pseudonym, strings.Repeat("A", 40))
}

func erasureEvent(id, typ, pseudonym string) []byte {
	return fmt.Appendf(nil, `{"version":1,"id":%q,"type":%q,"time":"2026-11-26T12:00:00Z","tenant":"acme","source":{"kind":"cli","instance":"auditledger-admin"},"actor":{"issuer":"auditledger-admin","subject":"ops@host","kind":"human"},"payload":{"pseudonym":%q,"fields":["actor.email"],"reason":"request 42","by":"ops@host"}}`,
		id, typ, pseudonym)
}

// Verify names the sealed fields whose subject an erasure.performed
// names, and the erasures that were requested but never recorded as
// performed; the log itself passes unchanged.
func TestVerifyReportsErasedFields(t *testing.T) {
	s := goldenKey(t)
	l, st := newLog(t, t.TempDir(), s)
	p1, p2, p3 := strings.Repeat("1", 32), strings.Repeat("2", 32), strings.Repeat("3", 32)
	batches := [][][]byte{
		{sealedEvent("a", p1), sealedEvent("b", p2), event(1)},
		{erasureEvent("r1", "erasure.requested", p1), erasureEvent("x1", "erasure.performed", p1)},
		{sealedEvent("c", p1), erasureEvent("r3", "erasure.requested", p3), sealedEvent("d", p3)},
	}
	for _, b := range batches {
		var es []ledger.Entry
		for _, ev := range b {
			es = append(es, ledger.Entry{Event: ev})
		}
		if _, err := l.Append(t.Context(), es); err != nil {
			t.Fatal(err)
		}
	}
	rep, err := ledger.Verify(t.Context(), st, ledger.VerifyOptions{Verifier: s.Verifier()})
	if err != nil {
		t.Fatal(err)
	}
	er := rep.Erasure
	if er.Sealed != 4 {
		t.Errorf("%d sealed fields, want 4", er.Sealed)
	}
	if len(er.Performed) != 1 || er.Performed[0].Pseudonym != p1 || er.Performed[0].Index != 4 || !slices.Equal(er.Performed[0].Fields, []string{"actor.email"}) {
		t.Errorf("performed: %+v", er.Performed)
	}
	// Index 0 (before the erasure) and 5 (sealed after it under the
	// destroyed key) are erased; p2's field is not, p3's erasure is
	// incomplete.
	want := []ledger.ErasedFields{{Pseudonym: p1, Field: "actor.email", Count: 2, Indexes: []uint64{0, 5}}}
	if len(er.Erased) != 1 || er.Erased[0].Pseudonym != p1 || er.Erased[0].Count != 2 || !slices.Equal(er.Erased[0].Indexes, want[0].Indexes) || er.ErasedCount() != 2 {
		t.Errorf("erased %+v, want %+v", er.Erased, want)
	}
	if len(er.Incomplete) != 1 || er.Incomplete[0].Pseudonym != p3 || er.Incomplete[0].Index != 6 {
		t.Errorf("incomplete: %+v", er.Incomplete)
	}
}
