package detect

import (
	"encoding/json"
	"strings"
	"testing"
)

// A reason as typed may hold anything; what FreeText keeps the writer's
// judge accepts, and holds none of the values.
func TestFreeText(t *testing.T) {
	for _, c := range []struct{ in, gone string }{
		{"ok per jane.doe@example.org", "jane.doe@example.org"},
		{"customer capprovalreasonemail.kavvea@example.org card 4968575613922114 asked", "4968575613922114"},
		{"pager for 4803 5740 1095 1676", "1095 1676"},
		{"refund for c.x@example.com card 4111-1111-1111-1111", "c.x@example.com"},
	} {
		out := FreeText(c.in)
		if strings.Contains(out, c.gone) {
			t.Errorf("FreeText(%q) = %q, still holds %q", c.in, out, c.gone)
		}
		doc, _ := json.Marshal(map[string]map[string]string{"payload": {"reason": out}})
		if m, found, err := InEvent(doc); found || err != nil {
			t.Errorf("FreeText(%q) = %q, which the writer refuses: %v %v", c.in, out, m, err)
		}
	}
	for _, s := range []string{"", "deploy window for INC-1234", "rotate keys after the audit"} {
		if out := FreeText(s); out != s {
			t.Errorf("FreeText(%q) = %q, want it as typed", s, out)
		}
	}
}
