package main

import (
	"path/filepath"
	"strings"
	"testing"
)

// verify passes a store holding an object under bulk/ that no record
// names, and warns of it by name (docs/FORMAT.md §7: a writer stopped
// after copying a piece whose event it then rejected leaves one).
func TestVerifyWarnsOfUnnamedBulkObjects(t *testing.T) {
	rules := filepath.Join("..", "..", "ledger", "testdata", "rules")
	out, errs, code := runCLI(t, "verify", "--store", filepath.Join(rules, "store-bulk-unnamed"), "--vkey", filepath.Join(rules, "golden.vkey"))
	const unnamed = "bulk/fb17f825850d0db934745b4962bda192b2df8cfcd2adac5f7a8f61129422f0c6"
	if code != 0 || !strings.Contains(out, "warning      1 object(s) under bulk/ that no record names: "+unnamed) {
		t.Fatalf("verify: exit %d\n%s%s", code, out, errs)
	}
	out, errs, code = runCLI(t, "verify", "--store", filepath.Join(rules, "store-bulk"), "--vkey", filepath.Join(rules, "golden.vkey"))
	if code != 0 || strings.Contains(out, "no record names") {
		t.Fatalf("verify of a store without such objects: exit %d\n%s%s", code, out, errs)
	}
}
