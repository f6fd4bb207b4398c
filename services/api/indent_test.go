package api

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"
)

// TestIndentJSON: indentJSON writes what json.Encoder's SetIndent("",
// "  ") writes, for values of every JSON kind, empty and nested, strings
// full of punctuation, escapes and raw events, and random documents.
func TestIndentJSON(t *testing.T) {
	check := func(name string, v any) {
		t.Helper()
		var compact, want bytes.Buffer
		enc := json.NewEncoder(&compact)
		enc.SetEscapeHTML(false)
		if err := enc.Encode(v); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		ind := json.NewEncoder(&want)
		ind.SetEscapeHTML(false)
		ind.SetIndent("", "  ")
		ind.Encode(v)
		if got := indentJSON(nil, compact.Bytes()); !bytes.Equal(got, want.Bytes()) {
			t.Fatalf("%s:\n%s\nwant\n%s", name, got, want.Bytes())
		}
	}
	check("null", nil)
	check("number", 12.5)
	check("string", `a "quoted" {brace} [bracket], colon: \ backslash \" end`)
	check("empty object", map[string]any{})
	check("empty array", []any{})
	check("nested empties", map[string]any{"a": []any{}, "b": map[string]any{}, "c": []any{[]any{}, map[string]any{}}})
	check("event", Timeline{Tenant: "acme", SessionID: "s1", Gaps: []Gap{}, Events: []EventResult{{Index: 1, Leaf: "ab",
		Event: json.RawMessage(`{"type":"command.executed","payload":{"statement":"SELECT '{', \"}\" , ':' , '\\\"' < b","rows":[1,2,[]],"x":{}}}`)}}})
	check("unicode and controls", []string{"ünï\u2028code", "tab\tnl\ncr\r", "\x00\x1f", "\\\\", `\"`})
	r := rand.New(rand.NewPCG(1, 2))
	punct := []string{"{", "}", "[", "]", ",", ":", `"`, `\`, " ", "\n", "x", "é"}
	var gen func(depth int) any
	gen = func(depth int) any {
		switch k := r.IntN(7); {
		case depth > 4 || k == 0:
			var b strings.Builder
			for range r.IntN(6) {
				b.WriteString(punct[r.IntN(len(punct))])
			}
			return b.String()
		case k == 1:
			return r.Float64() * 1e6
		case k == 2:
			return r.IntN(2) == 0
		case k == 3:
			return nil
		case k == 4:
			a := make([]any, r.IntN(4))
			for i := range a {
				a[i] = gen(depth + 1)
			}
			return a
		default:
			m := map[string]any{}
			for range r.IntN(4) {
				m[fmt.Sprint(gen(5))] = gen(depth + 1)
			}
			return m
		}
	}
	for i := range 2000 {
		check(fmt.Sprintf("random %d", i), gen(0))
	}
}
