package detect_test

import (
	"encoding/json"
	"testing"

	"github.com/auditledger/auditledger/events/detect"
)

// InEventScrubbed reads again only what Scrub does not read: in events
// whose strings Scrub finds nothing in, it finds what InEvent finds —
// numbers, adjacent scalars, digest shapes out of place, hex words.
func TestInEventScrubbedAgrees(t *testing.T) {
	digest := "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
	payloads := []any{
		map[string]any{"data": "aGVsbG8gd29ybGQ=", "n": 4111111111111111},                         // a card as a number
		map[string]any{"parts": []any{"4111", "1111", "1111", "1111"}},                            // adjacent scalars
		map[string]any{"parts": []any{4111, 1111, 1111, 1111}},                                    // adjacent numbers
		map[string]any{"note": digest},                                                            // a digest's shape out of place
		map[string]any{"sha256": digest, "hmac": "hmac:" + digest},                                // digests in place
		map[string]any{"id": "4111111111111111abcdef"},                                            // plain text Scrub reads
		map[string]any{"text": "nothing to see here", "k": []any{"a", 1, "b"}, "t": true},         // clean
		map[string]any{"word": "deadbeef4111111111111111"},                                        // hex word
		map[string]any{"nested": map[string]any{"x": []any{map[string]any{"y": "1234"}, "5678"}}}, // nested scalars
	}
	extras := 0 // found by what only the writer's judge reads
	for _, p := range payloads {
		body, _ := json.Marshal(map[string]any{"payload": p})
		m1, f1, e1 := detect.InEvent(body)
		m2, f2, e2 := detect.InEventScrubbed(body)
		// Scrub reads the strings: where it finds something there, the
		// precondition does not hold and the readings may differ.
		scrubFinds := false
		var walk func(any)
		walk = func(v any) {
			switch x := v.(type) {
			case string:
				if _, c := detect.Scrub(x); len(c) > 0 && !detect.IsDigest(x) {
					scrubFinds = true
				}
			case []any:
				for _, e := range x {
					walk(e)
				}
			case map[string]any:
				for k, e := range x {
					walk(k)
					walk(e)
				}
			}
		}
		walk(p)
		if scrubFinds {
			if !f1 {
				t.Errorf("%s: Scrub finds something InEvent does not", body)
			}
			continue
		}
		if f1 {
			extras++
		}
		if f1 != f2 || m1 != m2 || (e1 == nil) != (e2 == nil) {
			t.Errorf("%s: InEvent %v %v %v, InEventScrubbed %v %v %v", body, m1, f1, e1, m2, f2, e2)
		}
	}
	if extras < 3 {
		t.Errorf("only %d payloads hold what Scrub alone misses: the test reads too little", extras)
	}
}

// PayloadCheck says a walk stopped at a string only where one holds an
// escape or may hold a value: never for a number or for the scalars of
// an array read together.
func TestPayloadCheckCandidate(t *testing.T) {
	for _, c := range []struct {
		payload          string
		clean, candidate bool
	}{
		{`{"a":"plain words","n":1}`, true, false},
		{`{"a":"jane@example.com"}`, false, true},
		{`{"a":"tab\there"}`, false, true},
		{`{"n":4111111111111111}`, false, false},
		{`{"parts":["4111","1111","1111","1111"]}`, false, false},
		{`{"4111 1111 1111 1111":1}`, false, true},
	} {
		clean, candidate := detect.PayloadCheck([]byte(c.payload))
		if clean != c.clean || candidate != c.candidate || detect.PayloadClean([]byte(c.payload)) != clean {
			t.Errorf("%s: clean %v, candidate %v; want %v, %v", c.payload, clean, candidate, c.clean, c.candidate)
		}
	}
}
