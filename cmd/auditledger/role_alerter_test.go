package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// The alerter's rules are checked when serve reads its configuration,
// before anything connects: the error names the rule and its field, and a
// destination's secret URL is read from the variable it names.
func TestAlerterConfigChecked(t *testing.T) {
	t.Setenv("AUDITLEDGER_ALERT_CHAT_URL", "https://hooks.example.com/services/T/B/secret")
	base := "roles: [alerter]\nalerter:\n  destinations:\n    - {name: chat, kind: slack, url_env: AUDITLEDGER_ALERT_CHAT_URL}\n  rules:\n"
	load := func(rules string) error {
		p := filepath.Join(t.TempDir(), "c.yaml")
		os.WriteFile(p, []byte(base+rules), 0o644)
		_, err := loadServeConfig(p, func(string) string { return "" })
		return err
	}
	if err := load("    - {id: blocked, match: {types: [command.blocked]}, to: [chat]}\n"); err != nil {
		t.Fatal(err)
	}
	for rules, want := range map[string]string{
		"    - {id: blocked, match: {types: [command.blocked]}, rate: {count: 5, within: 1m, key: user}, to: [chat]}\n": `alerter.rules[0] (blocked).rate.key: "user" is not a field`,
		"    - {id: blocked, match: {types: [command.blokced]}, to: [chat]}\n":                                          `alerter.rules[0] (blocked).match.types[0] "command.blokced": not an event type of this release`,
		"    - {id: blocked, match: {types: [command.blocked]}, to: [pager]}\n":                                         `alerter.rules[0] (blocked).to[0] "pager": no destination of that name`,
		"    - {id: blocked, match: {tpyes: [command.blocked]}, to: [chat]}\n":                                          `tpyes`,
		"": `alerter.rules: none given`,
	} {
		if err := load(rules); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("want %q, got %v", want, err)
		}
	}
	if err := checkEnvNames([]string{"AUDITLEDGER_ALERT_CHAT_URL=x"}); err != nil {
		t.Errorf("a destination's variable refused: %v", err)
	}
}
