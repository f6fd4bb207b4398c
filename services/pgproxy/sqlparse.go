package pgproxy

import (
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"
	"unicode"

	"github.com/auditledger/auditledger/internal/yamlstrict"
	pg "github.com/pganalyze/pg_query_go/v6"
	"google.golang.org/protobuf/reflect/protoreflect"
)

// Policy decisions are made on PostgreSQL's own parse tree (pg_query, the
// server's parser as a library), never on keywords: comments, casing,
// several statements in one string, statements nested in CTEs, EXPLAIN
// ANALYZE, PREPARE, COPY, CREATE RULE or CREATE TABLE AS all show up as
// the statements they are.

// analysis is what the policy needs to know about a query string.
type analysis struct {
	// kinds holds the kind of every statement in the string, nested ones
	// included: the first keyword (DELETE, DROP, CREATE, ...) and, for
	// statements that run code or data out, a more specific kind too
	// (CREATE FUNCTION, CREATE RULE, COPY TO STDOUT, ...).
	kinds map[string]bool
	// noWhere holds the kinds (DELETE, UPDATE) of statements without a
	// WHERE clause that refers to a row: none, or a constant one such as
	// WHERE true or WHERE 1 = 1.
	noWhere map[string]bool
	err     error // the parser's refusal
	// SQL-level prepared statements: names this string PREPAREs,
	// EXECUTEs and DEALLOCATEs (deallocAll for DEALLOCATE ALL).
	prepares, executes, deallocates []string
	deallocAll                      bool
	// computed lists the columns that result expressions compute with —
	// anything in a SELECT list other than a bare column reference.
	computed []string
}

func (a *analysis) has(kind string) bool { return a.kinds[kind] }

// kindNames maps parse-tree statement types to their kinds; types not
// listed take the first word of their name (AlterTableStmt: ALTER).
var kindNames = map[string][]string{
	"SelectStmt":          {"SELECT"},
	"InsertStmt":          {"INSERT"},
	"UpdateStmt":          {"UPDATE"},
	"DeleteStmt":          {"DELETE"},
	"MergeStmt":           {"MERGE"},
	"DoStmt":              {"DO"},
	"CallStmt":            {"CALL"},
	"RuleStmt":            {"CREATE", "CREATE RULE"},
	"CreateTrigStmt":      {"CREATE", "CREATE TRIGGER"},
	"CreateEventTrigStmt": {"CREATE", "CREATE EVENT TRIGGER"},
	"IndexStmt":           {"CREATE", "CREATE INDEX"},
	"ViewStmt":            {"CREATE", "CREATE VIEW"},
	"CreateTableAsStmt":   {"CREATE", "CREATE TABLE AS"},
	"RenameStmt":          {"ALTER"},
	"AlterFunctionStmt":   {"ALTER", "ALTER FUNCTION"}, // procedures and routines too
	"VariableSetStmt":     {"SET"},
	"VariableShowStmt":    {"SHOW"},
	"TransactionStmt":     {"TRANSACTION"},
	"GrantRoleStmt":       {"GRANT"},
	"ExplainStmt":         {"EXPLAIN"},
	"PrepareStmt":         {"PREPARE"},
	"ExecuteStmt":         {"EXECUTE"},
	"DeallocateStmt":      {"DEALLOCATE"},
	"CreateStmt":          {"CREATE", "CREATE TABLE"},
	"CreateRoleStmt":      {"CREATE", "CREATE ROLE"},
	"AlterRoleStmt":       {"ALTER", "ALTER ROLE"},
	"DropRoleStmt":        {"DROP", "DROP ROLE"},
	"CreateSchemaStmt":    {"CREATE", "CREATE SCHEMA"},
	"CreateExtensionStmt": {"CREATE", "CREATE EXTENSION"},
	"AlterSystemStmt":     {"ALTER", "ALTER SYSTEM"},
	"CreatedbStmt":        {"CREATE", "CREATE DATABASE"},
	"DropdbStmt":          {"DROP", "DROP DATABASE"},
	"CompositeTypeStmt":   {"CREATE", "CREATE TYPE"},
	"CreateEnumStmt":      {"CREATE", "CREATE TYPE"},
	"CreateRangeStmt":     {"CREATE", "CREATE TYPE"},
	"DefineStmt":          {"CREATE"}, // CREATE AGGREGATE, OPERATOR, TYPE, COLLATION, TEXT SEARCH …
	"ConstraintsSetStmt":  {"SET"},
	"CheckPointStmt":      {"CHECKPOINT"},
	"ReplicaIdentityStmt": {"ALTER"},
	"SecLabelStmt":        {"SECURITY LABEL"},
	// Not statements of their own: the wrapper of every top-level one,
	// and PL/pgSQL's assignment.
	"RawStmt":      nil,
	"PLAssignStmt": nil,
}

// The analyses are cached twice: by statement text, and by the parse
// tree's fingerprint (pg_query's hash of the tree without constant
// values, comments or locations), which the server's parser computes in a
// fifth of the time of a full parse to Go. Statements that differ only in
// their literals — most of what applications send — share a fingerprint,
// and what the policy looks at (statement types, whether a WHERE mentions
// a column, COPY's target, EXPLAIN's options) is part of the tree the
// fingerprint covers.
var parseCache = struct {
	sync.Mutex
	byText map[string]*analysis
	byTree map[uint64]*analysis
}{byText: map[string]*analysis{}, byTree: map[uint64]*analysis{}}

const parseCacheSize = 4096

// analyze parses sql and classifies every statement in it.
func analyze(sql string) *analysis {
	parseCache.Lock()
	a, ok := parseCache.byText[sql]
	parseCache.Unlock()
	if ok {
		return a
	}
	fp, fperr := pg.FingerprintToUInt64(sql)
	if fperr == nil {
		parseCache.Lock()
		a, ok = parseCache.byTree[fp]
		parseCache.Unlock()
	}
	if !ok {
		a = parse(sql)
	}
	parseCache.Lock()
	if len(parseCache.byText) >= parseCacheSize {
		clear(parseCache.byText) // simple and bounded; statements come back soon enough
	}
	parseCache.byText[sql] = a
	// Fingerprints ignore the names of prepared statements (and digits in
	// names): analyses that hold names are cached by text only.
	if fperr == nil && a.err == nil && len(a.prepares)+len(a.executes)+len(a.deallocates)+len(a.computed) == 0 && !a.deallocAll {
		if len(parseCache.byTree) >= parseCacheSize {
			clear(parseCache.byTree)
		}
		parseCache.byTree[fp] = a
	}
	parseCache.Unlock()
	return a
}

func parse(sql string) *analysis {
	a := &analysis{kinds: map[string]bool{}, noWhere: map[string]bool{}}
	tree, err := pg.Parse(sql)
	if err != nil {
		a.err = err
		return a
	}
	for _, raw := range tree.Stmts {
		if raw.Stmt != nil {
			a.walk(raw.Stmt.ProtoReflect())
		}
	}
	if len(tree.Stmts) == 0 {
		a.kinds[""] = true // an empty query
	}
	return a
}

// visit calls f on m and every message below it, depth first, until f
// returns false.
func visit(m protoreflect.Message, f func(protoreflect.Message) bool) bool {
	if !f(m) {
		return false
	}
	more := true
	m.Range(func(fd protoreflect.FieldDescriptor, v protoreflect.Value) bool {
		switch {
		case fd.IsList() && fd.Message() != nil:
			l := v.List()
			for i := 0; i < l.Len() && more; i++ {
				more = visit(l.Get(i).Message(), f)
			}
		case fd.Message() != nil && !fd.IsMap():
			more = visit(v.Message(), f)
		}
		return more
	})
	return more
}

// walk notes every statement in the tree below m.
func (a *analysis) walk(m protoreflect.Message) {
	visit(m, func(m protoreflect.Message) bool {
		if name := string(m.Descriptor().Name()); strings.HasSuffix(name, "Stmt") {
			a.note(name, m.Interface())
		}
		return true
	})
}

func (a *analysis) note(name string, msg any) {
	kinds, ok := kindNames[name]
	if !ok {
		kinds = []string{firstWord(strings.TrimSuffix(name, "Stmt"))}
	}
	for _, k := range kinds {
		a.kinds[k] = true
	}
	switch s := msg.(type) {
	case *pg.DeleteStmt:
		if !refersToRows(s.WhereClause) {
			a.noWhere["DELETE"] = true
		}
	case *pg.UpdateStmt:
		if !refersToRows(s.WhereClause) {
			a.noWhere["UPDATE"] = true
		}
	case *pg.CreateFunctionStmt:
		if s.IsProcedure {
			a.kinds["CREATE PROCEDURE"] = true
		} else {
			a.kinds["CREATE FUNCTION"] = true
		}
	case *pg.CopyStmt:
		if s.IsFrom {
			a.kinds["COPY FROM"] = true
		} else {
			a.kinds["COPY TO"] = true
			if s.Filename == "" && !s.IsProgram {
				a.kinds["COPY TO STDOUT"] = true
			}
		}
		if s.IsProgram {
			a.kinds["COPY PROGRAM"] = true
		}
	case *pg.SelectStmt:
		for _, t := range s.TargetList {
			rt := t.GetResTarget()
			if rt == nil || rt.Val == nil || rt.Val.GetColumnRef() != nil {
				continue // a bare column: masked as it is
			}
			a.computed = append(a.computed, columnsIn(rt.Val.ProtoReflect())...)
		}
	case *pg.PrepareStmt:
		a.prepares = append(a.prepares, s.Name)
	case *pg.ExecuteStmt:
		a.executes = append(a.executes, s.Name)
	case *pg.DeallocateStmt:
		if s.Name == "" {
			a.deallocAll = true
		} else {
			a.deallocates = append(a.deallocates, s.Name)
		}
	case *pg.GrantStmt:
		if !s.IsGrant {
			a.kinds["REVOKE"] = true
		}
	case *pg.GrantRoleStmt:
		if !s.IsGrant {
			a.kinds["REVOKE"] = true
		}
	case *pg.ExplainStmt:
		for _, o := range s.Options {
			if d := o.GetDefElem(); d != nil && d.Defname == "analyze" {
				a.kinds["EXPLAIN ANALYZE"] = true
			}
		}
	}
}

// columnsIn lists the last name of every column referenced below m.
func columnsIn(m protoreflect.Message) []string {
	var out []string
	visit(m, func(m protoreflect.Message) bool {
		if cr, ok := m.Interface().(*pg.ColumnRef); ok {
			if n := len(cr.Fields); n > 0 {
				if s := cr.Fields[n-1].GetString_(); s != nil {
					out = append(out, s.Sval)
				}
			}
		}
		return true
	})
	return out
}

// refersToRows reports whether a WHERE clause depends on the row: it
// mentions a column somewhere. WHERE true, WHERE 1 = 1 or WHERE now() >
// '2000-01-01' do not, and count as no WHERE at all.
func refersToRows(where *pg.Node) bool {
	if where == nil {
		return false
	}
	found := false
	visit(where.ProtoReflect(), func(m protoreflect.Message) bool {
		found = m.Descriptor().Name() == "ColumnRef"
		return !found
	})
	return found
}

// firstWord upper-cases the first word of a CamelCase name.
func firstWord(s string) string {
	for i, r := range s {
		if i > 0 && unicode.IsUpper(r) {
			return strings.ToUpper(s[:i])
		}
	}
	return strings.ToUpper(s)
}

// errUnparsable wraps the parser's refusal for a refusal message.
func errUnparsable(err error) string {
	return fmt.Sprintf("the statement could not be parsed (%v); it is refused because this policy has rules that could apply to it", err)
}

// Kinds lists every statement kind a rule can name: what the analysis
// notes for some parse tree, derived from PostgreSQL's own statement
// types, so a policy naming anything else is refused rather than left to
// match nothing.
func Kinds() []string {
	kindsOnce.Do(func() {
		set := map[string]bool{"CREATE PROCEDURE": true, "CREATE FUNCTION": true, "COPY FROM": true, "COPY TO": true,
			"COPY TO STDOUT": true, "COPY PROGRAM": true, "EXPLAIN ANALYZE": true, "REVOKE": true}
		msgs := pg.File_pg_query_proto.Messages()
		for i := range msgs.Len() {
			name := string(msgs.Get(i).Name())
			if !strings.HasSuffix(name, "Stmt") {
				continue
			}
			kinds, ok := kindNames[name]
			if !ok {
				kinds = []string{firstWord(strings.TrimSuffix(name, "Stmt"))}
			}
			for _, k := range kinds {
				set[k] = true
			}
		}
		delete(set, "") // no rule names the empty query
		allKinds = slices.Sorted(maps.Keys(set))
	})
	return allKinds
}

var (
	kindsOnce sync.Once
	allKinds  []string
)

// checkKind refuses a kind no statement has, suggesting the nearest one.
func checkKind(k string) error {
	known := Kinds()
	if slices.Contains(known, k) {
		return nil
	}
	if near := yamlstrict.Nearest(k, known); near != "" {
		return fmt.Errorf("statement kind %q unknown: did you mean %q? (known kinds: %s)", k, near, strings.Join(known, ", "))
	}
	return fmt.Errorf("statement kind %q unknown (known kinds: %s)", k, strings.Join(known, ", "))
}
