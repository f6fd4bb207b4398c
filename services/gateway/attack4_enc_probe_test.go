package gateway_test

import (
	"strings"
	"testing"

	"github.com/auditledger/auditledger/events"
	"github.com/auditledger/auditledger/services/gateway"
)

func TestAttack4EncProbe(t *testing.T) {
	long := strings.Repeat("a", 2040)
	cases := map[string]map[string]any{
		"clean ctl":      {"statement": events.Clean("echo 4111\x1f1111\x1f1111\x1f1111", 2048)},
		"clean nl":       {"statement": events.Clean("echo 4111\n1111\n1111\n1111", 2048)},
		"clean trunc":    {"statement": events.Clean(long+" 4111111111111111", 2048)},
		"kube query":     {"query": "command=echo&command=4111&command=1111&command=1111&command=1111&stdin=true"},
		"kube query2":    {"query": "command=sh&command=-c&command=echo+4111111+111111111"},
		"obj members":    {"body": map[string]any{"data": map[string]any{"a": "4111 1111", "b": "1111 1111"}}},
		"env values":     {"body": map[string]any{"env": []any{map[string]any{"name": "A", "value": "41111111"}, map[string]any{"name": "B", "value": "11111111"}}}},
		"email parts":    {"body": map[string]any{"user": "jane.roe", "domain": "example.com", "x": "jane.roe@"}},
		"zw digits":      {"s": "4111\u200b1111\u200b1111\u200b1111"},
		"zwj email":      {"s": "jane\u200d@example.com"},
		"soft hyphen":    {"s": "4111\u00ad1111\u00ad1111\u00ad1111"},
		"arabic digits":  {"s": "٤١١١١١١١١١١١١١١١"},
		"devanagari":     {"s": "४१११११११११११११११"},
		"html ent dec":   {"s": "jane&#64;example.com"},
		"html ent named": {"s": "jane&commat;example.com"},
		"html hex":       {"s": "&#x34;&#x31;&#x31;&#x31;&#x31;&#x31;&#x31;&#x31;&#x31;&#x31;&#x31;&#x31;&#x31;&#x31;&#x31;&#x31;"},
		"qp split":       {"s": "4111111=\r\n111111111"},
		"mixed b64":      {"s": "NDExMSAxMTExIDExMTEgMTExMQ"},
		"fullwidth at":   {"s": "jane＠example.com"},
		"small at":       {"s": "jane﹫example.com"},
		"ssn":            {"s": "078-05-1120"},
		"iban sp":        {"s": "DE89 3704 0044 0532 0130 00"},
		"aws key":        {"s": "AKIAIOSFODNN7EXAMPLE"},
		"gh token":       {"s": "ghp_1234567890abcdefghijABCDEFGHIJ123456"},
		"jwt":            {"s": "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U"},
		"b64 json":       {"s": "eyJjYXJkIjoiNDExMTExMTExMTExMTExMSJ9"},
		"url b64":        {"s": "eyJjYXJkIjoiNDExMSAxMTExIDExMTEgMTExMSJ9"},
		"ansi in json":   {"s": "4111\x1b[0m1111\x1b[0m1111\x1b[0m1111"},
		"clean ansi":     {"s": events.Clean("4111\x1b[0m1111\x1b[0m1111\x1b[0m1111", 2048)},
		"bracketed":      {"s": events.Clean("\x1b[200~4111 1111 1111 1111\x1b[201~", 2048)},
		"cr ovr":         {"s": events.Clean("4111 1111 xxxx\r4111 1111 1111 1111", 2048)},
		"bs":             {"s": events.Clean("4111 1111 1111 1112\b1", 2048)},
		"uesc":           {"s": `4111\u00201111\u00201111\u00201111`},
		"tel":            {"s": "+44 20 7946 0958"},
		"tel2":           {"s": "+1 (415) 555-2671"},
	}
	for name, p := range cases {
		out, err := gateway.EncodePayload(p, []byte("k"))
		if err != nil {
			t.Logf("%s: error %v", name, err)
			continue
		}
		s := string(out)
		if !strings.Contains(s, "REDACTED") {
			t.Errorf("%s: nothing found: %s", name, s)
		}
	}
}
