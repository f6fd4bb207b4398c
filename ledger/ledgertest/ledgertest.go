// Package ledgertest makes keys for tests.
package ledgertest

import (
	"testing"

	"github.com/auditledger/auditledger/ledger"
)

// Signer is a fresh signed-note key named name.
func Signer(t testing.TB, name string) *ledger.NoteSigner {
	t.Helper()
	skey, _, err := ledger.GenerateKey(nil, name)
	if err != nil {
		t.Fatal(err)
	}
	s, err := ledger.NewNoteSigner(skey)
	if err != nil {
		t.Fatal(err)
	}
	return s
}
