package test

import (
	"encoding/json"
	"os/exec"
	"strings"
	"testing"
)

const module = "github.com/auditledger/auditledger"

// May each top-level directory import from the others? Dependencies point
// one way: events ← ledger ← projections ← services ← cmd, with compliance
// (data and pure functions) beside events, and internal (process plumbing
// no other program should import: health, strict YAML, the development
// PostgreSQL and OpenID provider) below all of them. Test-only imports
// don't count.
var allowed = map[string][]string{
	"internal":    {},
	"events":      {"internal"},
	"compliance":  {"events", "internal"},
	"ledger":      {"events", "internal"},
	"projections": {"events", "ledger", "compliance", "internal"},
	"services":    {"events", "ledger", "compliance", "projections", "internal"},
	"cmd":         {"events", "ledger", "compliance", "projections", "services", "internal"},
	"test":        {"events", "ledger", "compliance", "projections", "services", "internal"},
}

type pkg struct {
	ImportPath string
	Name       string
	Doc        string
	Imports    []string
}

func listPackages(t *testing.T) []pkg {
	out, err := exec.Command("go", "list", "-json", module+"/...").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	var pkgs []pkg
	dec := json.NewDecoder(strings.NewReader(string(out)))
	for dec.More() {
		var p pkg
		if err := dec.Decode(&p); err != nil {
			t.Fatal(err)
		}
		pkgs = append(pkgs, p)
	}
	return pkgs
}

func top(path string) string {
	rel := strings.TrimPrefix(strings.TrimPrefix(path, module), "/")
	first, _, _ := strings.Cut(rel, "/")
	return first
}

func TestDependenciesPointOneWay(t *testing.T) {
	for _, p := range listPackages(t) {
		from := top(p.ImportPath)
		ok, known := allowed[from]
		if !known {
			t.Errorf("%s: top-level directory %q has no dependency rule", p.ImportPath, from)
			continue
		}
		for _, imp := range p.Imports {
			if !strings.HasPrefix(imp, module+"/") {
				continue
			}
			to := top(imp)
			if to == from {
				continue
			}
			permitted := false
			for _, a := range ok {
				permitted = permitted || a == to
			}
			if !permitted {
				t.Errorf("%s imports %s: %s may import only %v", p.ImportPath, imp, from, ok)
			}
		}
	}
}

func TestEveryPackageDocumented(t *testing.T) {
	for _, p := range listPackages(t) {
		if strings.TrimSpace(p.Doc) == "" {
			t.Errorf("%s has no package comment", p.ImportPath)
		}
	}
}

// The writer seals what producers publish; it shares their bus names
// (ledger/bus) but never their library (ledger/bus/emitter), so nothing
// in how producers batch, spool or sign can change what the writer accepts.
func TestWriterDoesNotImportTheProducerLibrary(t *testing.T) {
	producer := module + "/ledger/bus/emitter"
	writers := []string{module + "/ledger/ingest", module + "/ledger/writer", module + "/ledger"}
	deps := map[string][]string{}
	for _, p := range listPackages(t) {
		deps[p.ImportPath] = p.Imports
	}
	for _, w := range writers {
		seen := map[string]bool{}
		var walk func(string, []string)
		walk = func(p string, path []string) {
			if seen[p] {
				return
			}
			seen[p] = true
			for _, imp := range deps[p] {
				if imp == producer {
					t.Errorf("%s imports the producer library: %s", w, strings.Join(append(path, p, imp), " → "))
				}
				if strings.HasPrefix(imp, module+"/") {
					walk(imp, append(path, p))
				}
			}
		}
		walk(w, nil)
	}
}
