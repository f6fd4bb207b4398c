package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestPolicyCommands(t *testing.T) {
	dir := t.TempDir()
	v1 := filepath.Join(dir, "policy.yaml")
	if err := os.WriteFile(v1, []byte("version: 1\napprove:\n  - id: ddl\n    kinds: [ALTER, CREATE, DROP]\n    groups: [dba]\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	v2 := filepath.Join(dir, "v2.yaml")
	var stdout, stderr bytes.Buffer
	if err := run(context.Background(), []string{"policy", "migrate", v1, "-o", v2}, nil, &stdout, &stderr); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(stderr.String(), "policy migrate: approval rule ddl: version 1 exempted everyone outside dba") {
		t.Errorf("stderr: %q", stderr.String())
	}
	stdout.Reset()
	if err := run(context.Background(), []string{"policy", "explain", "--policy", v2, "--user", "bob", "--group", "developers"}, nil, &stdout, &stderr); err != nil {
		t.Fatal(err)
	}
	// The held DDL, and the PostgreSQL gateway's refusal of DO, which no
	// rule of the file names (docs/POLICY.md: what the gateway cannot judge).
	if want := "\nuser bob in group developers:\n  refused  deny rule builtin-unjudgeable: kinds: DO (" +
		"code whose effect the gateway cannot see; refused unless an approval rule naming its kind holds it; " +
		"CREATE FUNCTION, CREATE PROCEDURE, ALTER FUNCTION, CREATE TRIGGER, CREATE EVENT TRIGGER, CREATE RULE held instead where such a rule matches)\n" +
		"  held     approval rule ddl: kinds: ALTER, CREATE, DROP (timeout 5m0s)\n  unheld   everything else\n"; !strings.HasSuffix(stdout.String(), want) {
		t.Errorf("explain:\n%s\nwant it to end:\n%s", stdout.String(), want)
	}
	if err := run(context.Background(), []string{"policy", "migrate"}, nil, &stdout, &stderr); err == nil || err.Error() != "policy migrate: name the policy FILE (see -h)" {
		t.Errorf("without FILE: %v", err)
	}
}
