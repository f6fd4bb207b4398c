package gateway

import (
	"encoding/json"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/auditledger/auditledger/events/detect"
)

// detect.PayloadClean, the one walk that lets a payload through as
// encoded, says so only of payloads the scrub has nothing to read in
// (anyCandidate) and the writer's judge finds nothing in (InEvent on the
// event's payload member): on payloads built of pieces the detectors
// read, in values, member names, arrays and numbers, every payload it
// passes is one both pass, and encodePayload leaves it as marshalled.
func TestPayloadCleanAgrees(t *testing.T) {
	r := rand.New(rand.NewPCG(13, 14))
	pieces := []string{"SELECT", " ", "x", "4111", "1111", "4111111111111111", "jane", "@", "example.com", "+44 20 7946 0958", "123-45-6789",
		"DE89370400440532013000", "AKIAIOSFODNN7EXAMPLE", "\t", "\u2028", "é", "４", "%40", "\\u0040", "2026-12-06T19:41:13.123456789Z",
		strings.Repeat("ab", 32), "hmac:" + strings.Repeat("cd", 32), "4539578763621486" + strings.Repeat("0", 48), "NDExMTExMTExMTExMTExMQ=="}
	text := func() string {
		var sb strings.Builder
		for range 1 + r.IntN(4) {
			sb.WriteString(pieces[r.IntN(len(pieces))])
		}
		return sb.String()
	}
	var value func(depth int) any
	value = func(depth int) any {
		switch k := r.IntN(6); {
		case k == 0 && depth < 3:
			m := map[string]any{}
			for range r.IntN(3) {
				m[text()] = value(depth + 1)
			}
			return m
		case k == 1 && depth < 3:
			var a []any
			for range r.IntN(5) {
				if r.IntN(2) == 0 {
					a = append(a, int64(r.IntN(10)))
				} else {
					a = append(a, value(depth+1))
				}
			}
			return a
		case k == 2:
			return int64(r.Uint64() >> r.IntN(64))
		default:
			return text()
		}
	}
	clean := 0
	for range 20_000 {
		p := map[string]any{"statement": text(), "kind": "SELECT"}
		for range r.IntN(3) {
			p[text()] = value(0)
		}
		if r.IntN(2) == 0 {
			p["statement_sha256"] = strings.Repeat("9f", 32)
		}
		body, err := marshalPayload(p)
		if err != nil {
			t.Fatal(err)
		}
		if !detect.PayloadClean(body) {
			continue
		}
		clean++
		doc, _ := json.Marshal(map[string]json.RawMessage{"payload": body})
		if m, found, err := detect.InEvent(doc); found || err != nil {
			t.Fatalf("PayloadClean(%s), but the writer's judge finds %+v (%v)", body, m, err)
		}
		if anyCandidate(body) {
			t.Fatalf("PayloadClean(%s), but the scrub has something to read", body)
		}
		out, err := encodePayload(p, nil)
		if err != nil || string(out) != string(body) {
			t.Fatalf("PayloadClean(%s), but encodePayload made %s (%v)", body, out, err)
		}
	}
	if clean < 500 || clean > 19_500 {
		t.Fatalf("%d of 20,000 payloads clean: the test proves little", clean)
	}
}
