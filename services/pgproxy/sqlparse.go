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
	// reads lists what the results read other than as a bare column
	// (outputReads): the columns computed with, and whole rows.
	reads []outRead
	// renames lists the names a column takes on its way to a result
	// (SELECT email AS e in a subquery, cards t(a, b, e)): a computed read
	// of e is a read of email.
	renames []rename
	// compared lists the columns compared with, or assigned, constants
	// (valuePairs): the recording replaces those constants when a mask
	// rule names the column.
	compared []string
	// paramCols maps bind parameters ($n) to the columns they are
	// compared with or assigned to; those columns are in compared too.
	paramCols map[int32][]string
	// pairs are the valuePairs without their offsets, for maskedParams
	// (which follows the names linked to a masked column); their names
	// are in compared too.
	pairs []valuePair
	// textSQL lists the calls of functions that run a query given as
	// text or read whole tables (textSQLFuncs).
	textSQL []string
	// argCalls lists, lower case and without duplicates, the functions
	// called with a column reference or a subquery among their arguments.
	argCalls []string
	// refs lists, lower case, the last name of every column reference
	// anywhere in the text; "*" stands for t.*, * and a whole row (a
	// relation's name used as a value).
	refs []string
	// renamed lists what ALTER … RENAME renames: columns and attributes
	// (ALTER TABLE t RENAME COLUMN a TO b, ALTER TYPE … RENAME
	// ATTRIBUTE) by their old name, and relations (ALTER TABLE, VIEW,
	// MATERIALIZED VIEW or FOREIGN TABLE … RENAME TO) with column "".
	renamed []renamedObj
}

// renamedObj is one object an ALTER … RENAME renames.
type renamedObj struct {
	schema, rel, column string
}

// textSQLFuncs run SQL given as a string, or return whole tables, schemas
// or databases, in a result the parse tree does not show the columns of.
var textSQLFuncs = map[string]bool{
	"query_to_xml": true, "query_to_xmlschema": true, "query_to_xml_and_xmlschema": true,
	"table_to_xml": true, "table_to_xmlschema": true, "table_to_xml_and_xmlschema": true,
	"schema_to_xml": true, "schema_to_xmlschema": true, "schema_to_xml_and_xmlschema": true,
	"database_to_xml": true, "database_to_xmlschema": true, "database_to_xml_and_xmlschema": true,
	"cursor_to_xml": true, "cursor_to_xmlschema": true,
	"dblink": true, "dblink_exec": true, "dblink_send_query": true, "dblink_get_result": true, "dblink_open": true, "dblink_fetch": true,
}

func (a *analysis) has(kind string) bool { return a.kinds[kind] }

// kindNames maps parse-tree statement types to their kinds; types not
// listed take the first word of their name (AlterTableStmt: ALTER).
var kindNames = map[string][]string{
	"SelectStmt":              {"SELECT"},
	"InsertStmt":              {"INSERT"},
	"UpdateStmt":              {"UPDATE"},
	"DeleteStmt":              {"DELETE"},
	"MergeStmt":               {"MERGE"},
	"DoStmt":                  {"DO"},
	"CallStmt":                {"CALL"},
	"RuleStmt":                {"CREATE", "CREATE RULE"},
	"CreateTrigStmt":          {"CREATE", "CREATE TRIGGER"},
	"CreateEventTrigStmt":     {"CREATE", "CREATE EVENT TRIGGER"},
	"IndexStmt":               {"CREATE", "CREATE INDEX"},
	"ViewStmt":                {"CREATE", "CREATE VIEW"},
	"CreateTableAsStmt":       {"CREATE", "CREATE TABLE AS"},
	"ImportForeignSchemaStmt": {"IMPORT", "CREATE"}, // creates a foreign table for each one it imports
	"RenameStmt":              {"ALTER"},
	"AlterFunctionStmt":       {"ALTER", "ALTER FUNCTION"}, // procedures and routines too
	"VariableSetStmt":         {"SET"},
	"VariableShowStmt":        {"SHOW"},
	"TransactionStmt":         {"TRANSACTION"},
	"GrantRoleStmt":           {"GRANT"},
	"ExplainStmt":             {"EXPLAIN"},
	"PrepareStmt":             {"PREPARE"},
	"ExecuteStmt":             {"EXECUTE"},
	"DeallocateStmt":          {"DEALLOCATE"},
	"CreateStmt":              {"CREATE", "CREATE TABLE"},
	"CreateRoleStmt":          {"CREATE", "CREATE ROLE"},
	"AlterRoleStmt":           {"ALTER", "ALTER ROLE"},
	"DropRoleStmt":            {"DROP", "DROP ROLE"},
	"CreateSchemaStmt":        {"CREATE", "CREATE SCHEMA"},
	"CreateExtensionStmt":     {"CREATE", "CREATE EXTENSION"},
	"AlterSystemStmt":         {"ALTER", "ALTER SYSTEM"},
	"CreatedbStmt":            {"CREATE", "CREATE DATABASE"},
	"DropdbStmt":              {"DROP", "DROP DATABASE"},
	"CompositeTypeStmt":       {"CREATE", "CREATE TYPE"},
	"CreateEnumStmt":          {"CREATE", "CREATE TYPE"},
	"CreateRangeStmt":         {"CREATE", "CREATE TYPE"},
	"DefineStmt":              {"CREATE"}, // CREATE AGGREGATE, OPERATOR, TYPE, COLLATION, TEXT SEARCH …
	"ConstraintsSetStmt":      {"SET"},
	"CheckPointStmt":          {"CHECKPOINT"},
	"ReplicaIdentityStmt":     {"ALTER"},
	"SecLabelStmt":            {"SECURITY LABEL"},
	// Not statements of their own: the wrapper of every top-level one,
	// and PL/pgSQL's assignment.
	"RawStmt":      nil,
	"PLAssignStmt": nil,
}

// The analyses are cached twice: by statement text, and by its shape:
// the text with its constants replaced by $1, $2, … (pg_query's
// normalization), which the server's parser computes in a twentieth of
// the time of a full parse to Go. Statements that differ only in their
// literals — most of what applications send — share a shape, and what
// the policy looks at (statement types, whether a WHERE mentions a
// column, names of columns, relations and aliases, COPY's target,
// EXPLAIN's options) is part of it. (Not the tree's fingerprint: it
// ignores aliases and the names a SELECT list gives its columns, so
// SELECT x FROM t x and SELECT x FROM t y, or two subqueries that swap
// the names of a masked and an unmasked column, would share an analysis.)
var parseCache = struct {
	sync.Mutex
	byText  map[string]*analysis
	byShape map[string]*analysis
}{byText: map[string]*analysis{}, byShape: map[string]*analysis{}}

const parseCacheSize = 4096

// analyze parses sql and classifies every statement in it.
func analyze(sql string) *analysis {
	parseCache.Lock()
	a, ok := parseCache.byText[sql]
	parseCache.Unlock()
	if ok {
		return a
	}
	// A shape does not tell a bind parameter from a constant (name = $1,
	// name = 'x' both read name = $1): a text that may hold one is
	// neither looked up nor kept by its shape, as its analysis has to
	// know its parameters.
	shape, err := "", error(nil)
	if !strings.Contains(sql, "$") {
		shape, err = pg.Normalize(sql)
	}
	if shape != "" && err == nil {
		parseCache.Lock()
		a, ok = parseCache.byShape[shape]
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
	if shape != "" && err == nil && a.err == nil {
		if len(parseCache.byShape) >= parseCacheSize {
			clear(parseCache.byShape)
		}
		parseCache.byShape[shape] = a
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
	// One walk notes the statements, and what the result and recording
	// analyses need to know first: names of relations, functions that
	// run text as SQL, whether any column or constant is there at all.
	rels := map[string]bool{}
	var columns, consts bool
	var single []string  // one-name column references: a column, or a whole row
	var stored []outRead // columns a stored expression or a side channel reads
	for _, raw := range tree.Stmts {
		if raw.Stmt == nil {
			continue
		}
		visit(raw.Stmt.ProtoReflect(), func(m protoreflect.Message) bool {
			switch n := m.Interface().(type) {
			case *pg.ColumnRef:
				columns = true
				if k := len(n.Fields); k > 0 {
					switch last := n.Fields[k-1]; {
					case last.GetAStar() != nil:
						a.refs = append(a.refs, "*")
					case k == 1:
						single = append(single, strings.ToLower(last.GetString_().GetSval()))
					default:
						a.refs = append(a.refs, strings.ToLower(last.GetString_().GetSval()))
					}
				}
			case *pg.A_Const, *pg.ParamRef:
				consts = true
			case *pg.RangeVar:
				rels[strings.ToLower(n.Relname)] = true
			case *pg.Alias:
				rels[strings.ToLower(n.Aliasname)] = true
			case *pg.CommonTableExpr:
				rels[strings.ToLower(n.Ctename)] = true
			case *pg.FuncCall:
				if textSQLFuncs[funcName(n)] {
					a.textSQL = append(a.textSQL, funcName(n))
				}
				if name := funcName(n); !slices.Contains(a.argCalls, name) && slices.ContainsFunc(n.Args, readsRows) {
					a.argCalls = append(a.argCalls, name)
				}
				if sideChannelFuncs[funcName(n)] {
					for _, arg := range n.Args {
						stored = append(stored, exprColumns(arg, "", funcName(n))...)
					}
				}
			case *pg.ColumnDef:
				for _, c := range n.Constraints {
					if g := c.GetConstraint(); g != nil && g.Contype == pg.ConstrType_CONSTR_GENERATED {
						stored = append(stored, exprColumns(g.RawExpr, n.Colname, "")...)
					}
				}
			case *pg.AlterTableCmd:
				switch n.Subtype {
				case pg.AlterTableType_AT_SetExpression:
					stored = append(stored, exprColumns(n.Def, n.Name, "")...)
				case pg.AlterTableType_AT_AlterColumnType:
					stored = append(stored, exprColumns(n.Def.GetColumnDef().GetRawDefault(), n.Name, "")...)
				}
			default:
				if name := string(m.Descriptor().Name()); strings.HasSuffix(name, "Stmt") {
					a.note(name, n)
				}
			}
			return true
		})
	}
	for _, n := range single {
		if rels[n] {
			a.refs = append(a.refs, "*")
		}
		a.refs = append(a.refs, n)
	}
	if columns {
		a.reads, a.renames = outputReads(tree, rels)
	}
	for _, rd := range stored {
		rd.whole = rd.whole || rels[strings.ToLower(rd.col)]
		a.reads = append(a.reads, rd)
	}
	var src *rowSources
	for i := range a.reads {
		if rd := &a.reads[i]; rd.whole {
			if src == nil {
				src = newRowSources(tree)
			}
			rd.rels, rd.opaque = src.resolve(rd.col)
		}
	}
	if consts || columns { // columns: a name may stand where a value is expected
		for _, vp := range valuePairs(tree) {
			a.compared = append(a.compared, vp.cols...)
			a.compared = append(a.compared, vp.peers...)
			a.pairs = append(a.pairs, valuePair{cols: vp.cols, params: vp.params, peers: vp.peers})
			for _, n := range vp.params {
				if a.paramCols == nil {
					a.paramCols = map[int32][]string{}
				}
				a.paramCols[n] = append(a.paramCols[n], vp.cols...)
			}
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

func (a *analysis) note(name string, msg any) {
	kinds, ok := kindNames[name]
	if !ok {
		kinds = []string{firstWord(strings.TrimSuffix(name, "Stmt"))}
	}
	for _, k := range kinds {
		a.kinds[k] = true
	}
	switch s := msg.(type) {
	case *pg.RenameStmt:
		rel := s.GetRelation().GetRelname()
		switch s.RenameType {
		case pg.ObjectType_OBJECT_COLUMN, pg.ObjectType_OBJECT_ATTRIBUTE:
			a.renamed = append(a.renamed, renamedObj{rel: rel, column: s.Subname})
		case pg.ObjectType_OBJECT_TABLE, pg.ObjectType_OBJECT_VIEW, pg.ObjectType_OBJECT_MATVIEW, pg.ObjectType_OBJECT_FOREIGN_TABLE:
			a.renamed = append(a.renamed, renamedObj{schema: s.GetRelation().GetSchemaname(), rel: rel})
		}
	case *pg.DeleteStmt:
		if !refersToRows(s.WhereClause) {
			a.noWhere["DELETE"] = true
		}
	case *pg.UpdateStmt:
		if !refersToRows(s.WhereClause) {
			a.noWhere["UPDATE"] = true
		}
	case *pg.SelectStmt:
		// SELECT … INTO creates a table, as CREATE TABLE AS does.
		if s.IntoClause != nil {
			a.kinds["CREATE"], a.kinds["CREATE TABLE AS"] = true, true
		}
	case *pg.InsertStmt:
		// ON CONFLICT DO UPDATE updates the rows the inserted ones
		// conflict with: a VALUES list names them one by one, a query
		// may name every row of the table.
		if oc := s.OnConflictClause; oc != nil && oc.Action == pg.OnConflictAction_ONCONFLICT_UPDATE {
			a.kinds["UPDATE"] = true
			values := s.SelectStmt == nil || len(s.SelectStmt.GetSelectStmt().GetValuesLists()) > 0
			if !values && !refersToRows(oc.WhereClause) {
				a.noWhere["UPDATE"] = true
			}
		}
	case *pg.MergeStmt:
		// Each action is judged as the statement it performs, on the
		// rows the join and its own condition select.
		for _, n := range s.MergeWhenClauses {
			c := n.GetMergeWhenClause()
			if c == nil {
				continue
			}
			kind := ""
			switch c.CommandType {
			case pg.CmdType_CMD_DELETE:
				kind = "DELETE"
			case pg.CmdType_CMD_UPDATE:
				kind = "UPDATE"
			case pg.CmdType_CMD_INSERT:
				kind = "INSERT"
			default:
				continue
			}
			a.kinds[kind] = true
			// WHEN NOT MATCHED BY SOURCE acts on the target rows the join
			// does not select: only its own condition names rows.
			join := s.JoinCondition
			if c.MatchKind == pg.MergeMatchKind_MERGE_WHEN_NOT_MATCHED_BY_SOURCE {
				join = nil
			}
			if kind != "INSERT" && !refersToRows(join) && !refersToRows(c.Condition) {
				a.noWhere[kind] = true
			}
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

// columnsIn lists the last name of every column referenced below m, the
// fields taken from a row ((c).name: name), and "*" for a whole row
// (t.*).
func columnsIn(m protoreflect.Message) []string {
	if m == nil {
		return nil
	}
	var out []string
	visit(m, func(m protoreflect.Message) bool {
		switch x := m.Interface().(type) {
		case *pg.ColumnRef:
			if n := len(x.Fields); n > 0 {
				if s := x.Fields[n-1].GetString_(); s != nil {
					out = append(out, s.Sval)
				} else if x.Fields[n-1].GetAStar() != nil {
					out = append(out, anyColumn)
				}
			}
		case *pg.A_Indirection:
			for _, f := range x.Indirection {
				if s := f.GetString_(); s != nil {
					out = append(out, s.Sval)
				} else if f.GetAStar() != nil {
					out = append(out, anyColumn)
				}
			}
		}
		return true
	})
	return out
}

// anyColumn stands, among the columns a constant is written against, for
// any column of a row: a whole row compared with it (c = ROW(…),
// to_jsonb(c)->>'name' = …), an INSERT or MERGE without a column list, the
// arguments of EXECUTE of a prepared statement. It counts as masked
// while a mask rule names columns.
const anyColumn = "*"

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

// outRead is something a statement's results read other than as a bare
// column the server reports the origin of: a column computed with (col),
// or a whole row (whole, naming the relation, or "*").
type outRead struct {
	col   string
	whole bool
	into  string // the column an UPDATE SET or MERGE writes it into
	// via names the function with a side channel (set_config) whose
	// argument reads the column.
	via string
	// For a whole row: the relations whose rows it may hold (rowSources),
	// and whether it may hold rows of something else (a function's, or a
	// name not found), which cannot be looked up.
	rels   []relRef
	opaque bool
}

// sideChannelFuncs keep or send what their arguments hold where a later
// statement, or the session's parameters, can read it back unmasked:
// set_config and current_setting, a sequence's value, a large object, a
// logical decoding message, an advisory lock's key (pg_locks shows it to
// every session), a restore point's, replication slot's or origin's name.
var sideChannelFuncs = map[string]bool{
	"set_config": true, "setval": true,
	"lo_from_bytea": true, "lo_put": true, "lowrite": true,
	"pg_logical_emit_message": true,
	"pg_advisory_lock":        true, "pg_advisory_lock_shared": true, "pg_advisory_xact_lock": true, "pg_advisory_xact_lock_shared": true,
	"pg_try_advisory_lock": true, "pg_try_advisory_lock_shared": true, "pg_try_advisory_xact_lock": true, "pg_try_advisory_xact_lock_shared": true,
	"pg_create_restore_point": true, "pg_replication_origin_create": true,
	"pg_create_logical_replication_slot": true, "pg_create_physical_replication_slot": true,
}

// exprColumns lists the columns expr refers to as reads written into
// column into (empty: none) or passed to function via; a reference that
// ends in * is a whole row.
func exprColumns(expr *pg.Node, into, via string) []outRead {
	if expr == nil {
		return nil
	}
	var out []outRead
	visit(expr.ProtoReflect(), func(m protoreflect.Message) bool {
		if c, ok := m.Interface().(*pg.ColumnRef); ok && len(c.Fields) > 0 {
			last := c.Fields[len(c.Fields)-1]
			if last.GetAStar() != nil {
				out = append(out, outRead{col: "*", whole: true, into: into, via: via})
			} else {
				out = append(out, outRead{col: last.GetString_().GetSval(), into: into, via: via})
			}
		}
		return true
	})
	return out
}

// outputReads lists what the results of the statements in tree read in
// a form that masking by column cannot follow: every column inside an
// expression of an output position (a SELECT list, RETURNING, VALUES, a
// function in FROM), whole-row references (row_to_json(t), t.*, SELECT t),
// and — in a set operation or a statement whose rows go into a table or
// view, where the server reports no origin — bare columns and * too.
// Output positions are those of the top-level statements and of what
// feeds them: subqueries in FROM, CTEs, set operations, the query of a
// cursor, PREPARE, EXPLAIN, CREATE TABLE AS and CREATE VIEW. WHERE, JOIN
// ON, GROUP BY, HAVING, ORDER BY and window definitions are not walked:
// reading a column there does not put its value in a result. Inside an
// output expression everything is walked, subqueries' WHERE clauses too:
// what cannot be told apart is counted.
func outputReads(tree *pg.ParseResult, rels map[string]bool) ([]outRead, []rename) {
	w := &outWalker{rels: rels}
	for _, raw := range tree.Stmts {
		if raw.Stmt != nil {
			w.stmt(raw.Stmt, true)
		}
	}
	return w.reads, w.renames
}

type outWalker struct {
	rels    map[string]bool // every relation, alias and CTE name in the text, lower case
	reads   []outRead
	renames []rename
}

// rename says a column named from is read under the name to; from "*"
// means any column (a positional alias list: cards AS t(a, b, e)).
type rename struct{ from, to string }

// stmt walks a statement whose rows reach a result. bare says whether a
// bare column there keeps its origin (the server reports the table column
// behind it, so it is masked by that column's rule).
func (w *outWalker) stmt(n *pg.Node, bare bool) {
	if n == nil {
		return
	}
	switch x := n.Node.(type) {
	case *pg.Node_SelectStmt:
		w.sel(x.SelectStmt, bare)
	case *pg.Node_InsertStmt:
		w.with(x.InsertStmt.WithClause, bare)
		w.stmt(x.InsertStmt.SelectStmt, false) // rows go into a table
		if oc := x.InsertStmt.OnConflictClause; oc != nil {
			w.set(oc.TargetList)
		}
		w.targets(x.InsertStmt.ReturningList, bare)
	case *pg.Node_UpdateStmt:
		w.with(x.UpdateStmt.WithClause, bare)
		w.from(x.UpdateStmt.FromClause, bare)
		w.set(x.UpdateStmt.TargetList)
		w.targets(x.UpdateStmt.ReturningList, bare)
	case *pg.Node_DeleteStmt:
		w.with(x.DeleteStmt.WithClause, bare)
		w.from(x.DeleteStmt.UsingClause, bare)
		w.targets(x.DeleteStmt.ReturningList, bare)
	case *pg.Node_MergeStmt:
		w.with(x.MergeStmt.WithClause, bare)
		w.from([]*pg.Node{x.MergeStmt.SourceRelation}, bare)
		for _, n := range x.MergeStmt.MergeWhenClauses {
			c := n.GetMergeWhenClause()
			if c == nil {
				continue
			}
			if len(c.Values) == 0 {
				w.set(c.TargetList) // UPDATE SET
				continue
			}
			for i, v := range c.Values { // INSERT (cols) VALUES
				into := ""
				if i < len(c.TargetList) {
					into = c.TargetList[i].GetResTarget().GetName()
				}
				w.exprInto(v, into)
			}
		}
		w.targets(x.MergeStmt.ReturningList, bare)
	case *pg.Node_CreateTableAsStmt:
		w.stmt(x.CreateTableAsStmt.Query, false)
	case *pg.Node_ViewStmt:
		w.stmt(x.ViewStmt.Query, false)
	default:
		// Any other statement (EXPLAIN, DECLARE CURSOR, PREPARE, COPY,
		// CREATE RULE, CREATE SCHEMA …): the statements inside it are
		// walked as if their rows reached a result.
		prune(n.ProtoReflect(), func(m protoreflect.Message) bool {
			if m.Interface() == n {
				return true
			}
			switch m.Interface().(type) {
			case *pg.SelectStmt, *pg.InsertStmt, *pg.UpdateStmt, *pg.DeleteStmt, *pg.MergeStmt, *pg.CreateTableAsStmt, *pg.ViewStmt:
				w.stmt(wrap(m.Interface()), bare)
				return false
			}
			return true
		})
	}
}

// wrap turns a statement message back into a Node.
func wrap(msg any) *pg.Node {
	switch x := msg.(type) {
	case *pg.SelectStmt:
		return &pg.Node{Node: &pg.Node_SelectStmt{SelectStmt: x}}
	case *pg.InsertStmt:
		return &pg.Node{Node: &pg.Node_InsertStmt{InsertStmt: x}}
	case *pg.UpdateStmt:
		return &pg.Node{Node: &pg.Node_UpdateStmt{UpdateStmt: x}}
	case *pg.DeleteStmt:
		return &pg.Node{Node: &pg.Node_DeleteStmt{DeleteStmt: x}}
	case *pg.MergeStmt:
		return &pg.Node{Node: &pg.Node_MergeStmt{MergeStmt: x}}
	case *pg.CreateTableAsStmt:
		return &pg.Node{Node: &pg.Node_CreateTableAsStmt{CreateTableAsStmt: x}}
	case *pg.ViewStmt:
		return &pg.Node{Node: &pg.Node_ViewStmt{ViewStmt: x}}
	}
	return nil
}

func (w *outWalker) sel(s *pg.SelectStmt, bare bool) {
	if s == nil {
		return
	}
	w.with(s.WithClause, bare)
	if s.Op > pg.SetOperation_SETOP_NONE {
		// A set operation's columns have no origin: its branches' bare
		// columns are not masked by theirs.
		w.sel(s.Larg, false)
		w.sel(s.Rarg, false)
		return
	}
	if s.IntoClause != nil {
		bare = false // SELECT … INTO: rows go into a table
	}
	for _, row := range s.ValuesLists {
		w.expr(row)
	}
	w.from(s.FromClause, bare)
	if fullMerge(s.FromClause) {
		// The merged column of a FULL JOIN USING (or NATURAL) is a
		// COALESCE: the server reports no origin for it.
		bare = false
	}
	w.targets(s.TargetList, bare)
}

func (w *outWalker) with(c *pg.WithClause, bare bool) {
	if c == nil {
		return
	}
	for _, n := range c.Ctes {
		if cte := n.GetCommonTableExpr(); cte != nil {
			w.stmt(cte.Ctequery, bare)
			w.aliases(cte.Aliascolnames)
		}
	}
}

// from walks FROM items: subqueries feed the result, a join's ON does not;
// a function's arguments are computed into its rows.
func (w *outWalker) from(items []*pg.Node, bare bool) {
	for _, n := range items {
		if n == nil {
			continue
		}
		// Column aliases of a FROM item rename its columns by position.
		visit(n.ProtoReflect(), func(m protoreflect.Message) bool {
			if al, ok := m.Interface().(*pg.Alias); ok {
				w.aliases(al.Colnames)
			}
			return true
		})
		switch x := n.Node.(type) {
		case *pg.Node_RangeVar:
		case *pg.Node_RangeSubselect:
			w.stmt(x.RangeSubselect.Subquery, bare)
		case *pg.Node_JoinExpr:
			w.from([]*pg.Node{x.JoinExpr.Larg, x.JoinExpr.Rarg}, bare)
		case *pg.Node_RangeTableSample:
			w.from([]*pg.Node{x.RangeTableSample.Relation}, bare)
		default: // functions, XMLTABLE, JSON_TABLE …
			w.expr(n)
		}
	}
}

// targets walks a SELECT or RETURNING list.
func (w *outWalker) targets(list []*pg.Node, bare bool) {
	for _, t := range list {
		rt := t.GetResTarget()
		if rt == nil || rt.Val == nil {
			continue
		}
		if cr := rt.Val.GetColumnRef(); cr != nil {
			w.column(cr, bare)
			if col := cr.Fields[len(cr.Fields)-1].GetString_().GetSval(); rt.Name != "" && col != "" && !strings.EqualFold(rt.Name, col) {
				w.renames = append(w.renames, rename{strings.ToLower(col), strings.ToLower(rt.Name)})
			}
			continue
		}
		if fc := rt.Val.GetFuncCall(); fc != nil && fc.Over == nil && funcName(fc) == "count" {
			continue // a count reveals no value of what it counts
		}
		w.expr(rt.Val)
	}
}

// fullMerge reports whether a FROM list has a FULL JOIN with USING or
// NATURAL, at any depth of its joins.
func fullMerge(items []*pg.Node) bool {
	for _, n := range items {
		if j := n.GetJoinExpr(); j != nil {
			if j.Jointype == pg.JoinType_JOIN_FULL && (len(j.UsingClause) > 0 || j.IsNatural) || fullMerge([]*pg.Node{j.Larg, j.Rarg}) {
				return true
			}
		}
	}
	return false
}

// aliases notes positional column names: any column may take them.
func (w *outWalker) aliases(names []*pg.Node) {
	for _, n := range names {
		if s := n.GetString_(); s != nil {
			w.renames = append(w.renames, rename{"*", strings.ToLower(s.Sval)})
		}
	}
}

// column notes a column reference standing alone in an output list.
func (w *outWalker) column(cr *pg.ColumnRef, bare bool) {
	n := len(cr.Fields)
	if n == 0 {
		return
	}
	last := cr.Fields[n-1]
	switch {
	case last.GetAStar() != nil:
		// * and t.* are expanded into the table's columns, each masked
		// by its own rule — where they keep their origin.
		if !bare {
			w.reads = append(w.reads, outRead{col: starName(cr), whole: true})
		}
	case n == 1 && w.rels[strings.ToLower(last.GetString_().GetSval())]:
		// SELECT t FROM t: the whole row, as one composite value.
		w.reads = append(w.reads, outRead{col: last.GetString_().GetSval(), whole: true})
	case !bare:
		w.reads = append(w.reads, outRead{col: last.GetString_().GetSval()})
	}
}

// set notes what UPDATE SET (or ON CONFLICT DO UPDATE SET) writes into
// each column: a masked value copied into a column no rule names would be
// read back unmasked.
func (w *outWalker) set(targets []*pg.Node) {
	for _, t := range targets {
		if rt := t.GetResTarget(); rt != nil {
			w.exprInto(rt.Val, rt.Name)
		}
	}
}

// exprInto notes what an expression written into column into reads.
func (w *outWalker) exprInto(n *pg.Node, into string) {
	from := len(w.reads)
	w.expr(n)
	for i := from; i < len(w.reads); i++ {
		w.reads[i].into = into
	}
}

// expr notes every column and whole row read inside an expression.
func (w *outWalker) expr(n *pg.Node) {
	if n == nil {
		return
	}
	visit(n.ProtoReflect(), func(m protoreflect.Message) bool {
		if ind, ok := m.Interface().(*pg.A_Indirection); ok {
			// (comp).email: a field of a composite value is read as a
			// column of its name.
			for _, f := range ind.Indirection {
				if s := f.GetString_(); s != nil {
					w.reads = append(w.reads, outRead{col: s.Sval})
				}
			}
			return true
		}
		cr, ok := m.Interface().(*pg.ColumnRef)
		if !ok || len(cr.Fields) == 0 {
			return true
		}
		last := cr.Fields[len(cr.Fields)-1]
		switch name := last.GetString_().GetSval(); {
		case last.GetAStar() != nil:
			w.reads = append(w.reads, outRead{col: starName(cr), whole: true})
		case len(cr.Fields) == 1 && w.rels[strings.ToLower(name)]:
			w.reads = append(w.reads, outRead{col: name, whole: true})
			w.reads = append(w.reads, outRead{col: name}) // or a column of that name
		default:
			w.reads = append(w.reads, outRead{col: name})
		}
		return true
	})
}

// starName names what * or t.* expands: the relation, or "*".
func starName(cr *pg.ColumnRef) string {
	if len(cr.Fields) > 1 {
		if s := cr.Fields[len(cr.Fields)-2].GetString_(); s != nil {
			return s.Sval + ".*"
		}
	}
	return "*"
}

// funcName is the last part of a function's name, lower case.
func funcName(fc *pg.FuncCall) string {
	if n := len(fc.Funcname); n > 0 {
		return strings.ToLower(fc.Funcname[n-1].GetString_().GetSval())
	}
	return ""
}

// prune calls f on m and the messages below it, depth first, skipping
// the messages below any for which f returns false.
func prune(m protoreflect.Message, f func(protoreflect.Message) bool) {
	if !f(m) {
		return
	}
	m.Range(func(fd protoreflect.FieldDescriptor, v protoreflect.Value) bool {
		switch {
		case fd.IsList() && fd.Message() != nil:
			l := v.List()
			for i := 0; i < l.Len(); i++ {
				prune(l.Get(i).Message(), f)
			}
		case fd.Message() != nil && !fd.IsMap():
			prune(v.Message(), f)
		}
		return true
	})
}

// valuePair is a constant written against columns: compared with them
// (email = 'x', card IN (…), card LIKE '4111%', CASE card WHEN …, a
// function of the column and a string), or assigned to one (UPDATE SET,
// INSERT (cols) VALUES, ON CONFLICT DO UPDATE SET, a SELECT list item's
// alias, a column of a VALUES list or subquery named by an alias list).
// locs are the constants' offsets in the text; peers are the names on
// the constants' side (name = x): a constant written against a peer of
// a masked column counts as written against the column (linkedMasked).
type valuePair struct {
	cols   []string
	locs   []int32
	params []int32 // bind parameters ($n) in the constants' place
	peers  []string
}

// valuePairs lists every valuePair in the tree.
func valuePairs(tree *pg.ParseResult) []valuePair {
	// A name of a relation, alias or CTE standing alone is a whole row.
	rels := map[string]bool{}
	for _, raw := range tree.Stmts {
		if raw.Stmt == nil {
			continue
		}
		visit(raw.Stmt.ProtoReflect(), func(m protoreflect.Message) bool {
			switch n := m.Interface().(type) {
			case *pg.RangeVar:
				rels[strings.ToLower(n.Relname)] = true
			case *pg.Alias:
				rels[strings.ToLower(n.Aliasname)] = true
			case *pg.CommonTableExpr:
				rels[strings.ToLower(n.Ctename)] = true
			}
			return true
		})
	}
	columnsIn := func(m protoreflect.Message) []string {
		cols := columnsIn(m)
		for _, c := range cols {
			if rels[strings.ToLower(c)] {
				return append(cols, anyColumn)
			}
		}
		return cols
	}
	var out []valuePair
	add := func(cols []string, val *pg.Node, stringsOnly bool) {
		locs, params, peers := constsIn(val, stringsOnly), paramsIn(val), columnsIn(nodeMsg(val))
		// A name standing alone is in locs too: a quoted one there is
		// likely a value in the wrong quotes (name = "Jane Roe"), which
		// the recording replaces as a constant (scrubTokens).
		locs = append(locs, namesIn(val)...)
		if len(cols) > 0 && len(locs)+len(params)+len(peers) > 0 {
			out = append(out, valuePair{cols, locs, params, peers})
		}
	}
	// everything: every constant below n counts as written against any
	// column.
	everything := func(n *pg.Node) {
		add([]string{anyColumn}, n, false)
	}
	assign := func(targets []*pg.Node) {
		for _, t := range targets {
			if rt := t.GetResTarget(); rt != nil && rt.Name != "" {
				add([]string{rt.Name}, rt.Val, false)
			}
		}
	}
	// positional names the columns of a row source by an alias list:
	// (VALUES ('Zelda')) v(x), (SELECT 'Zelda') v(x), WITH v(x) AS ….
	positional := func(q *pg.Node, names []string) {
		for _, row := range rowItems(q.GetSelectStmt()) {
			for i, item := range row {
				if i < len(names) {
					add([]string{names[i]}, item, false)
				}
			}
		}
	}
	strs := func(ns []*pg.Node) []string {
		var out []string
		for _, n := range ns {
			out = append(out, n.GetString_().GetSval())
		}
		return out
	}
	for _, raw := range tree.Stmts {
		if raw.Stmt == nil {
			continue
		}
		visit(raw.Stmt.ProtoReflect(), func(m protoreflect.Message) bool {
			switch x := m.Interface().(type) {
			case *pg.A_Expr:
				add(columnsIn(nodeMsg(x.Lexpr)), x.Rexpr, false)
				add(columnsIn(nodeMsg(x.Rexpr)), x.Lexpr, false)
			case *pg.SubLink:
				add(columnsIn(nodeMsg(x.Testexpr)), x.Subselect, false)
			case *pg.CaseExpr:
				if cols := columnsIn(nodeMsg(x.Arg)); len(cols) > 0 {
					for _, cw := range x.Args {
						if w := cw.GetCaseWhen(); w != nil {
							add(cols, w.Expr, false)
						}
					}
				}
			case *pg.FuncCall:
				if textSQLFuncs[funcName(x)] {
					// A query built from pieces (query_to_xml(format(…),
					// …)): what it compares cannot be told.
					for _, a := range x.Args {
						if a.GetAConst() == nil {
							everything(a)
						}
					}
				}
				var cols []string
				var locs, params []int32
				for _, a := range x.Args {
					if c := columnsIn(nodeMsg(a)); len(c) > 0 {
						cols = append(cols, c...)
					} else {
						locs = append(locs, constsIn(a, true)...)
						params = append(params, paramsIn(a)...)
					}
				}
				if len(cols) > 0 && len(locs)+len(params) > 0 {
					out = append(out, valuePair{cols: cols, locs: locs, params: params})
				}
				if len(cols) > 1 {
					out = append(out, valuePair{cols: cols[:1], peers: cols[1:]})
				}
			case *pg.SelectStmt:
				assign(x.TargetList)
			case *pg.RangeSubselect:
				if x.Alias != nil {
					positional(x.Subquery, strs(x.Alias.Colnames))
				}
			case *pg.CommonTableExpr:
				positional(x.Ctequery, strs(x.Aliascolnames))
			case *pg.RangeFunction, *pg.RangeTableFunc, *pg.JsonTable:
				// A function's rows in FROM: its constants are linked to
				// every name its columns take (unnest(ARRAY['…']) u(n),
				// json_to_recordset('…') x(n text), XMLTABLE, JSON_TABLE).
				if names := fromFuncNames(m); len(names) > 0 {
					add(names, wrapFrom(m.Interface()), false)
				}
			case *pg.MergeWhenClause:
				switch {
				case len(x.Values) == 0:
					assign(x.TargetList) // UPDATE SET
				case len(x.TargetList) == 0:
					for _, v := range x.Values {
						everything(v) // INSERT VALUES without a column list
					}
				default:
					for i, v := range x.Values {
						if i < len(x.TargetList) {
							add([]string{x.TargetList[i].GetResTarget().GetName()}, v, false)
						}
					}
				}
			case *pg.FunctionParameter:
				// A parameter's default: the body compares the parameter,
				// which the statement's tree does not link to it.
				everything(x.Defexpr)
			case *pg.ExecuteStmt:
				// EXECUTE p('…'): the prepared statement's text is not
				// this one's.
				for _, p := range x.Params {
					everything(p)
				}
			case *pg.ColumnDef:
				// A column's default: DEFAULT 'Zelda' on a masked column.
				for _, c := range x.Constraints {
					if k := c.GetConstraint(); k != nil && k.Contype == pg.ConstrType_CONSTR_DEFAULT {
						add([]string{x.Colname}, k.RawExpr, false)
					}
				}
				add([]string{x.Colname}, x.RawDefault, false)
			case *pg.AlterTableCmd:
				if x.Subtype == pg.AlterTableType_AT_ColumnDefault {
					add([]string{x.Name}, x.Def, false)
				}
			case *pg.UpdateStmt:
				assign(x.TargetList)
			case *pg.OnConflictClause:
				assign(x.TargetList)
			case *pg.InsertStmt:
				if len(x.Cols) == 0 {
					// No column list: the values go into the table's
					// columns by position, which the text does not name.
					everything(x.SelectStmt)
					break
				}
				var cols []string
				for _, c := range x.Cols {
					cols = append(cols, c.GetResTarget().GetName())
				}
				positional(x.SelectStmt, cols)
			}
			return true
		})
	}
	return out
}

// fromFuncNames lists the names the columns of a function in FROM take:
// its alias, the alias's column names, a column definition list's, the
// COLUMNS of XMLTABLE and JSON_TABLE, and without an alias, the
// function's own name.
func fromFuncNames(m protoreflect.Message) []string {
	var out []string
	alias := func(a *pg.Alias) {
		if a != nil {
			out = append(out, a.Aliasname)
			for _, c := range a.Colnames {
				out = append(out, c.GetString_().GetSval())
			}
		}
	}
	coldefs := func(ns []*pg.Node) {
		for _, n := range ns {
			if d := n.GetColumnDef(); d != nil {
				out = append(out, d.Colname)
			}
			if d := n.GetRangeTableFuncCol(); d != nil {
				out = append(out, d.Colname)
			}
			if d := n.GetJsonTableColumn(); d != nil {
				out = append(out, d.Name)
			}
		}
	}
	switch x := m.Interface().(type) {
	case *pg.RangeFunction:
		alias(x.Alias)
		coldefs(x.Coldeflist)
		if x.Alias == nil {
			visit(m, func(m protoreflect.Message) bool {
				if fc, ok := m.Interface().(*pg.FuncCall); ok {
					out = append(out, funcName(fc))
				}
				return true
			})
		}
	case *pg.RangeTableFunc:
		alias(x.Alias)
		coldefs(x.Columns)
	case *pg.JsonTable:
		alias(x.Alias)
		coldefs(x.Columns)
	}
	return out
}

// wrapFrom turns a FROM item's message back into a Node.
func wrapFrom(msg any) *pg.Node {
	switch x := msg.(type) {
	case *pg.RangeFunction:
		return &pg.Node{Node: &pg.Node_RangeFunction{RangeFunction: x}}
	case *pg.RangeTableFunc:
		return &pg.Node{Node: &pg.Node_RangeTableFunc{RangeTableFunc: x}}
	case *pg.JsonTable:
		return &pg.Node{Node: &pg.Node_JsonTable{JsonTable: x}}
	}
	return nil
}

// rowItems lists, row by row, the items a SELECT returns by position:
// each VALUES row, the SELECT list, and those of every branch of a set
// operation.
func rowItems(sel *pg.SelectStmt) [][]*pg.Node {
	if sel == nil {
		return nil
	}
	if sel.Op != pg.SetOperation_SETOP_NONE {
		return append(rowItems(sel.Larg), rowItems(sel.Rarg)...)
	}
	var out [][]*pg.Node
	for _, row := range sel.ValuesLists {
		out = append(out, row.GetList().GetItems())
	}
	if len(sel.TargetList) > 0 {
		var items []*pg.Node
		for _, t := range sel.TargetList {
			items = append(items, t.GetResTarget().GetVal())
		}
		out = append(out, items)
	}
	return out
}

// linkedMasked reports, for each pair, whether its constants are written
// against a column a mask rule of pol names: directly, or through names
// compared or assigned together with one (x in name = x AND x =
// 'Zelda', a VALUES column or an alias compared with one, a PL/pgSQL
// variable). Names are matched by their last part, letter case ignored:
// two columns of one name in different tables count as one, which errs
// towards replacing.
//
// extra names count as masked too.
func linkedMasked(pairs []valuePair, pol *Policy, extra ...string) []bool {
	parent := map[string]string{}
	var find func(string) string
	find = func(n string) string {
		p, ok := parent[n]
		if !ok || p == n {
			return n
		}
		r := find(p)
		parent[n] = r
		return r
	}
	union := func(a, b string) {
		if ra, rb := find(a), find(b); ra != rb {
			parent[ra] = rb
		}
	}
	for _, vp := range pairs {
		names := append(slices.Clone(vp.cols), vp.peers...)
		for _, n := range names[1:] {
			union(strings.ToLower(names[0]), strings.ToLower(n))
		}
	}
	masked := map[string]bool{}
	for _, n := range extra {
		masked[find(strings.ToLower(n))] = true
	}
	for _, vp := range pairs {
		for _, n := range append(slices.Clone(vp.cols), vp.peers...) {
			if n == anyColumn && pol.hasColumnRules() || pol.columnRules([]string{n})[0] != nil {
				masked[find(strings.ToLower(n))] = true
			}
		}
	}
	out := make([]bool, len(pairs))
	for i, vp := range pairs {
		out[i] = slices.ContainsFunc(vp.cols, func(c string) bool { return masked[find(strings.ToLower(c))] })
	}
	return out
}

func nodeMsg(n *pg.Node) protoreflect.Message {
	if n == nil {
		return nil
	}
	return n.ProtoReflect()
}

// namesIn returns the offsets of the one-part column references below n.
func namesIn(n *pg.Node) []int32 {
	if n == nil {
		return nil
	}
	var out []int32
	visit(n.ProtoReflect(), func(m protoreflect.Message) bool {
		if c, ok := m.Interface().(*pg.ColumnRef); ok && len(c.Fields) == 1 && c.Fields[0].GetString_() != nil {
			out = append(out, c.Location)
		}
		return true
	})
	return out
}

// paramsIn returns the numbers of the bind parameters below n.
func paramsIn(n *pg.Node) []int32 {
	if n == nil {
		return nil
	}
	var out []int32
	visit(n.ProtoReflect(), func(m protoreflect.Message) bool {
		if p, ok := m.Interface().(*pg.ParamRef); ok {
			out = append(out, p.Number)
		}
		return true
	})
	return out
}

// constsIn returns the offsets of the constants below n (strings only,
// when stringsOnly), NULL and booleans left out.
func constsIn(n *pg.Node, stringsOnly bool) []int32 {
	if n == nil {
		return nil
	}
	var out []int32
	visit(n.ProtoReflect(), func(m protoreflect.Message) bool {
		c, ok := m.Interface().(*pg.A_Const)
		if !ok || c.Isnull || c.GetBoolval() != nil {
			return true
		}
		if c.GetSval() != nil || c.GetBsval() != nil || !stringsOnly {
			out = append(out, c.Location)
		}
		return true
	})
	return out
}

// canonicalCache holds canonicalText's answers by statement text.
var canonicalCache = struct {
	sync.Mutex
	m map[string]string
}{m: map[string]string{}}

// canonicalText is sql as the server's parser reads it, written back
// (pg_query's deparser): identifiers unquoted where they need no quotes
// and with their escapes decoded (U&"pg\005fsleep" is pg_sleep),
// comments left out, keywords and spacing made uniform, string constants
// written plainly. ok is false when the text parses but cannot be
// written back: a pattern rule then matches, failing closed. Text that
// does not parse has no canonical form (ok, ""): such statements are
// refused before any rule is looked at.
func canonicalText(sql string) (string, bool) {
	canonicalCache.Lock()
	c, hit := canonicalCache.m[sql]
	canonicalCache.Unlock()
	if hit {
		return c, true
	}
	tree, err := pg.Parse(sql)
	if err != nil {
		return "", true
	}
	c, err = pg.Deparse(tree)
	if err != nil {
		return "", false
	}
	canonicalCache.Lock()
	if len(canonicalCache.m) >= parseCacheSize {
		clear(canonicalCache.m)
	}
	canonicalCache.m[sql] = c
	canonicalCache.Unlock()
	return c, true
}

// readsRows reports whether an expression holds a column reference or a
// subquery.
func readsRows(n *pg.Node) bool {
	if n == nil {
		return false
	}
	found := false
	visit(n.ProtoReflect(), func(m protoreflect.Message) bool {
		switch m.Interface().(type) {
		case *pg.ColumnRef, *pg.SubLink:
			found = true
		}
		return !found
	})
	return found
}
