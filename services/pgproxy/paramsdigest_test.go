package pgproxy

import (
	"encoding/binary"
	"strings"
	"testing"

	"github.com/auditledger/auditledger/services/gateway"
)

// TestParamsDigestWithoutKeyIsNone: a card number bound as a binary int8
// passes no detector, so an unkeyed digest over the parameters could be
// guessed back (about 10⁹ candidates). Without the key the approval text
// carries no digest; with it, the keyed one of docs/FORMAT.md §1.5.
func TestParamsDigestWithoutKeyIsNone(t *testing.T) {
	card := binary.BigEndian.AppendUint64(nil, 4012888888881881)
	params := [][]byte{card, []byte("x")}
	if got := paramsDigest(params, nil); got != NoKeyParams || strings.Contains(got, "sha256") {
		t.Errorf("without the key: %q, want %q", got, NoKeyParams)
	}
	key := make([]byte, 32)
	keyed := func(label string, b []byte) string { return gateway.KeyedDigest(key, label, b) }
	want := gateway.KeyedDigest(key, ParamsLabel, append(append([]byte("8:"), card...), "1:x"...))
	if got := paramsDigest(params, keyed); got != want {
		t.Errorf("with the key: %q, want %q", got, want)
	}
}
