package compliance

import (
	"strings"
	"testing"

	"github.com/auditledger/auditledger/events"
)

// The data loads and holds together: 93 Annex A controls, the
// correspondences the issue names, and evidence for every control the
// product claims to support.
func TestLoad(t *testing.T) {
	f, err := Load("iso27001-2022")
	if err != nil {
		t.Fatal(err)
	}
	if n := len(f.Catalog.Controls); n != 93 {
		t.Errorf("%d Annex A controls, want 93", n)
	}
	themes := map[byte]int{}
	for _, c := range f.Catalog.Controls {
		themes[c.ID[0]]++
	}
	if themes['5'] != 37 || themes['6'] != 8 || themes['7'] != 14 || themes['8'] != 34 {
		t.Errorf("controls per theme %v, want 37 organizational, 8 people, 14 physical, 34 technological", themes)
	}
	for from, to := range map[string]string{"A.9.2.3": "8.2", "A.12.4.1": "8.15", "A.12.4.2": "8.15", "A.12.4.3": "8.15", "A.12.4.4": "8.17", "A.9.4.1": "8.3"} {
		if got := f.MappedFrom(to); !containsPrefix(got, "iso27001-2013 "+from+" ") {
			t.Errorf("%s should map to %s: %v", from, to, got)
		}
	}
	for _, id := range []string{"CC6.1", "CC6.2", "CC6.3", "CC6.6", "CC6.7", "CC6.8", "CC7.2", "CC7.3", "CC8.1",
		"AU-2", "AU-3", "AU-6", "AU-9(3)", "AU-10", "AU-11", "AU-12", "AU-14", "AC-2", "AC-6(9)", "IA-2", "CM-3"} {
		found := false
		for _, cw := range f.Crosswalks {
			for _, m := range cw.Controls {
				found = found || m.ID == id
			}
		}
		if !found {
			t.Errorf("no crosswalk for %s", id)
		}
	}
	for _, c := range []string{"5.3", "5.15", "5.16", "5.17", "5.18", "5.28", "5.33", "8.2", "8.3", "8.5", "8.11", "8.12", "8.15", "8.16", "8.17", "8.32"} {
		if _, ok := f.Evidence(c); !ok {
			t.Errorf("no evidence mapping for %s", c)
		}
	}
	if !strings.Contains(f.Version(), "iso27001-2022@2022 mapping v1") {
		t.Errorf("version %q", f.Version())
	}
}

func containsPrefix(list []string, prefix string) bool {
	for _, s := range list {
		if strings.HasPrefix(s, prefix) {
			return true
		}
	}
	return false
}

// Broken data is refused with what is wrong.
func TestCheckRefuses(t *testing.T) {
	f, err := Load("iso27001-2022")
	if err != nil {
		t.Fatal(err)
	}
	bad := *f
	bad.Crosswalks = append([]Crosswalk(nil), f.Crosswalks...)
	bad.Crosswalks[0].Controls = append([]Mapped{{Control: Control{ID: "A.0"}, To: []string{"9.9"}, Relationship: Equal}}, bad.Crosswalks[0].Controls...)
	if err := bad.check(); err == nil || !strings.Contains(err.Error(), "9.9, not a control") {
		t.Errorf("a mapping to an unknown control: %v", err)
	}
	bad = *f
	bad.Mapping.Controls = append([]Evidence{{Control: "8.11", Observes: "x", EventTypes: []events.Type{"mask.aplied"}, Queries: f.Mapping.Controls[0].Queries}}, f.Mapping.Controls...)
	if err := bad.check(); err == nil || !strings.Contains(err.Error(), `"mask.aplied" unknown`) {
		t.Errorf("an unknown event type: %v", err)
	}
	if _, err := Load("iso27001-2013"); err == nil || !strings.Contains(err.Error(), "iso27001-2022") {
		t.Errorf("unknown framework: %v", err)
	}
}
