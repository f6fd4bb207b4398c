package gateway

import (
	"bytes"
	"encoding/json"
	"testing"
)

// marshalPayload must give json.Marshal's bytes: the differential check
// over payloads shaped as gateways record them, and a fuzz target over
// strings of any bytes.
func TestMarshalPayloadIsJSONMarshal(t *testing.T) {
	type ref struct {
		Version int    `json:"version"`
		SHA256  string `json:"sha256"`
	}
	payloads := []map[string]any{
		{},
		{"statement": "SELECT * FROM t WHERE a < 1 AND b > 2 & c", "statement_sha256": "ab", "kind": "SELECT", "protocol": "simple"},
		{"parameters": map[string]any{"count": 2, "recorded": "none", "values": []any{"x", nil, int64(-3), true, []string{"a"}}}},
		{"rows": int64(12), "bytes": int64(3400), "command_tag": "SELECT 12", "hmac": "hmac:00", "suspended": true},
		{"function_oid": uint32(4294967295), "arguments": 0, "n": int32(-7), "u": uint64(1 << 63)},
		{"policy": ref{Version: 2, SHA256: "ff"}, "redacted": []Redaction{{Path: "/statement", Detector: "email", Count: 1}}},
		{"nil map": map[string]any(nil), "nil slice": []any(nil), "nil strings": []string(nil), "float": 1.5e-7, "empty": ""},
		{"controls": "\x00\x01\b\f\n\r\t\x1f\x7f", "html": "<script>&amp;</script>", "quotes": `"\`},
		{"utf8": "héllo — ✓ 𝄞", "bad": "a\xffb\xc3(c\xed\xa0\x80", "seps": "x\u2028y\u2029z"},
		{"ünïcode kéy <&>": "v", "b": map[string]any{"z": 1, "a": []any{map[string]any{"y": "q"}}}},
	}
	for _, p := range payloads {
		want, werr := json.Marshal(p)
		got, gerr := marshalPayload(p)
		if (werr != nil) != (gerr != nil) || !bytes.Equal(got, want) {
			t.Errorf("payload %v:\n got %s (%v)\nwant %s (%v)", p, got, gerr, want, werr)
		}
	}
	// Without the judged texts (restClean): the bytes of a copy
	// without them, a judged text at depth kept.
	for _, p := range payloads {
		with := map[string]any{"statement": Judged{text: "SELECT 1", clean: true}, "a_judged": Judged{text: "x"}}
		for k, v := range p {
			with[k] = v
		}
		with["nested"] = map[string]any{"j": Judged{text: "deep"}}
		rest := map[string]any{}
		for k, v := range with {
			if !isJudged(v) {
				rest[k] = v
			}
		}
		want, werr := json.Marshal(rest)
		got, gerr := appendObjectWithout(nil, with, isJudged)
		if (werr != nil) != (gerr != nil) || !bytes.Equal(got, want) {
			t.Errorf("payload %v without its judged texts:\n got %s (%v)\nwant %s (%v)", with, got, gerr, want, werr)
		}
	}
	// A value json.Marshal refuses is refused here too.
	if _, err := marshalPayload(map[string]any{"c": make(chan int)}); err == nil {
		t.Error("a channel in a payload was encoded")
	}
}

func FuzzMarshalPayload(f *testing.F) {
	for _, s := range []string{"", "plain", "<>&", "\x00\x1f\x7f", "\xff\xfe", "\u2028\u2029", "é𝄞", `"\`} {
		f.Add(s, s+"k", int64(len(s)))
	}
	f.Fuzz(func(t *testing.T, s, k string, n int64) {
		p := map[string]any{k: s, "n": n, "nested": map[string]any{s: []any{s, n, k == s}}, "list": []string{s, k}}
		want, _ := json.Marshal(p)
		got, err := marshalPayload(p)
		if err != nil || !bytes.Equal(got, want) {
			t.Fatalf("got %q (%v), want %q", got, err, want)
		}
	})
}
