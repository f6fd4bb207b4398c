package gateway

import (
	"encoding/json"
	"testing"

	"github.com/auditledger/auditledger/ledger/piikeys"
)

func benchPayload() map[string]any {
	return map[string]any{"statement": "UPDATE pgbench_accounts SET abalance = abalance + -4273 WHERE aid = 81234;",
		"statement_sha256": "9f2c4e7d1a0b3c5e8f6a2d4b7c9e1f3a5b7d9c2e4f6a8b0d2c4e6f8a0b2c4d6e", "kind": "UPDATE", "protocol": "simple",
		"policy": map[string]any{"version": 2, "sha256": "0f2c4e7d1a0b3c5e8f6a2d4b7c9e1f3a5b7d9c2e4f6a8b0d2c4e6f8a0b2c4d6e"}}
}

func BenchmarkEncodePayload(b *testing.B) {
	for b.Loop() {
		if _, err := encodePayload(benchPayload(), nil); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkMarshalOnly(b *testing.B) {
	for b.Loop() {
		if _, err := json.Marshal(benchPayload()); err != nil {
			b.Fatal(err)
		}
	}
}

// benchCardPayload is a statement whose literals hold a card number and
// an e-mail address: what the recording rule replaces.
func benchCardPayload() map[string]any {
	p := benchPayload()
	p["statement"] = "UPDATE customers SET card = '4111 1111 1111 1111', email = 'jane.doe@example.com' WHERE id = 81234;"
	return p
}

// BenchmarkScrubClean: a payload with nothing to replace (the common case).
func BenchmarkScrubClean(b *testing.B) {
	for b.Loop() {
		if _, err := encodePayload(benchPayload(), nil); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkScrubCard: a payload with two values to replace.
func BenchmarkScrubCard(b *testing.B) {
	for b.Loop() {
		if _, err := encodePayload(benchCardPayload(), nil); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkScrubCardKeyed: the same, each value recorded as its keyed
// digest (the key as the store caches it).
func BenchmarkScrubCardKeyed(b *testing.B) {
	key := make([]byte, 32)
	digest := func(v string) string { return piikeys.MatchDigest(key, v) }
	for b.Loop() {
		if _, err := encodePayload(benchCardPayload(), digest); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkScrubCleanKeyed: a clean payload with a key store: no digest
// is made, and the key is not read.
func BenchmarkScrubCleanKeyed(b *testing.B) {
	key := make([]byte, 32)
	digest := func(v string) string { return piikeys.MatchDigest(key, v) }
	for b.Loop() {
		if _, err := encodePayload(benchPayload(), digest); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkMarshalPayload: the encoding alone (marshalPayload) of the
// payload BenchmarkScrubClean records, so that the difference between
// the two is what the recording rule's checks cost.
func BenchmarkMarshalPayload(b *testing.B) {
	for b.Loop() {
		if _, err := marshalPayload(benchPayload()); err != nil {
			b.Fatal(err)
		}
	}
}
