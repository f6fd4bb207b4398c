package test

import (
	"encoding/json"
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
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

// The projection's schema (projections/migrations) is read and written by
// the projections package alone, as river keeps its SQL behind its driver:
// the API, the evidence builder and the console call projections.Reader.
// Other SQL is another matter and allowed where it is: a gateway querying
// its upstream's catalog, the development PostgreSQL launcher, benchmarks.
var projectionSQLAllowed = []string{
	"projections/",
	"services/pgproxy/catalog.go",
	"internal/devpg/",
	"cmd/auditledger/bench", // cmd/auditledger/bench*.go
	"cmd/auditledger/internal/bench/",
}

func TestOnlyProjectionsQueriesTheProjection(t *testing.T) {
	find := projectionSQLFinder(t)
	// The detector sees the reader's own queries, or it sees nothing.
	if len(find(t, "../projections/read.go")) == 0 {
		t.Fatal("no projection SQL found in projections/read.go: the detector is broken")
	}
	root := ".."
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel := filepath.ToSlash(strings.TrimPrefix(path, root+string(filepath.Separator)))
		if d.IsDir() {
			if n := d.Name(); path != root && (strings.HasPrefix(n, ".") || n == "testdata" || n == "vendor" || n == "node_modules") {
				return filepath.SkipDir
			}
			return nil
		}
		if !strings.HasSuffix(rel, ".go") || strings.HasSuffix(rel, "_test.go") {
			return nil
		}
		for _, a := range projectionSQLAllowed {
			if strings.HasPrefix(rel, a) {
				return nil
			}
		}
		for _, f := range find(t, path) {
			t.Errorf("%s:%d: %s on the projection schema: move it into projections (a projections.Reader method)", rel, f.line, f.what)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

type sqlFinding struct {
	line int
	what string
}

// projectionSQLFinder returns a function listing, in one Go file, the
// SQL that names a table or view of the projection's migrations.
func projectionSQLFinder(t *testing.T) func(*testing.T, string) []sqlFinding {
	tables := projectionTables(t)
	if len(tables) == 0 {
		t.Fatal("no table or view found in projections/migrations")
	}
	// A table or view named where SQL names relations: after FROM, JOIN,
	// INTO, UPDATE, TRUNCATE, ANALYZE, COPY or TABLE, quoted or not,
	// schema-qualified or not. The keyword in capitals, as this code
	// writes SQL, or in any case after a SELECT: prose ("seals them into
	// segments") is not SQL.
	relation := `\s+(?:only\s+)?(?:"?public"?\.)?"?(` + strings.Join(tables, "|") + `)\b`
	sqlRefs := []*regexp.Regexp{
		regexp.MustCompile(`\b(?:FROM|JOIN|INTO|UPDATE|TRUNCATE|ANALYZE|COPY|TABLE)` + relation),
		regexp.MustCompile(`(?is)\bselect\b.*\b(?:from|join)` + relation),
		regexp.MustCompile(`(?i)\b(?:insert\s+into|delete\s+from|truncate(?:\s+table)?)` + relation),
	}
	isTable := map[string]bool{}
	for _, n := range tables {
		isTable[n] = true
	}
	return func(t *testing.T, path string) []sqlFinding {
		fset := token.NewFileSet()
		f, err := parser.ParseFile(fset, path, nil, parser.SkipObjectResolution)
		if err != nil {
			t.Fatal(err)
		}
		var out []sqlFinding
		reported := map[int]bool{}
		report := func(pos token.Pos, what string) {
			if line := fset.Position(pos).Line; !reported[line] {
				reported[line] = true
				out = append(out, sqlFinding{line, what})
			}
		}
		ast.Inspect(f, func(n ast.Node) bool {
			switch n := n.(type) {
			case *ast.BinaryExpr, *ast.BasicLit:
				// A string, or a concatenation of strings and other
				// expressions (each of these standing in as "?").
				if s, ok := literalText(n.(ast.Expr)); ok {
					for _, re := range sqlRefs {
						if m := re.FindStringSubmatch(s); m != nil {
							report(n.Pos(), fmt.Sprintf("SQL naming %q", m[1]))
							break
						}
					}
					return false
				}
			case *ast.CompositeLit:
				// pgx.Identifier{"events"}, as CopyFrom takes it.
				if sel, ok := n.Type.(*ast.SelectorExpr); ok && sel.Sel.Name == "Identifier" {
					for _, e := range n.Elts {
						if s, ok := literalText(e); ok && isTable[s] {
							report(e.Pos(), fmt.Sprintf("the identifier %q", s))
						}
					}
				}
			}
			return true
		})
		return out
	}
}

// literalText is the text of a string literal or of a + chain holding at
// least one, other operands read as "?".
func literalText(e ast.Expr) (string, bool) {
	switch e := e.(type) {
	case *ast.BasicLit:
		if e.Kind != token.STRING {
			return "", false
		}
		s, err := strconv.Unquote(e.Value)
		return s, err == nil
	case *ast.ParenExpr:
		return literalText(e.X)
	case *ast.BinaryExpr:
		if e.Op != token.ADD {
			return "", false
		}
		x, okx := literalText(e.X)
		y, oky := literalText(e.Y)
		if !okx && !oky {
			return "", false
		}
		if !okx {
			x = "?"
		}
		if !oky {
			y = "?"
		}
		return x + y, true
	}
	return "", false
}

// projectionTables are the tables and views the migrations create.
func projectionTables(t *testing.T) []string {
	files, err := filepath.Glob("../projections/migrations/*.sql")
	if err != nil {
		t.Fatal(err)
	}
	create := regexp.MustCompile(`(?i)\bCREATE\s+(?:OR\s+REPLACE\s+)?(?:TABLE|(?:MATERIALIZED\s+)?VIEW)\s+(?:IF\s+NOT\s+EXISTS\s+)?"?(\w+)`)
	var out []string
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range create.FindAllStringSubmatch(string(b), -1) {
			out = append(out, strings.ToLower(m[1]))
		}
	}
	return out
}
