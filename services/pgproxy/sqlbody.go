package pgproxy

import (
	"encoding/json"
	"slices"
	"strings"

	pg_query "github.com/pganalyze/pg_query_go/v6"
	"google.golang.org/protobuf/reflect/protoreflect"

	"github.com/auditledger/auditledger/events/detect"
	"github.com/auditledger/auditledger/services/gateway"
)

// Code inside a statement — the body of DO and of CREATE FUNCTION or
// PROCEDURE, the string an EXECUTE runs, the query given to dblink or
// query_to_xml — is a string constant to the statement's parser. Its
// literals are judged as the code reads them: SQL with the statement
// rules, PL/pgSQL with PL/pgSQL's own parser (the SQL statements and
// expressions it embeds, the variables a literal reaches a masked column
// through). What cannot be judged so has every literal replaced.

// unjudgedLiteral names, in a placeholder, a constant replaced because
// the code around it could not be judged: a body that does not parse,
// an EXECUTE of a string built at run time, a language the gateway does
// not read, while a mask rule names columns.
const unjudgedLiteral = "unjudged_literal"

// maxCodeDepth bounds how deep code inside code is judged; deeper code
// is judged as unjudged.
const maxCodeDepth = 6

// codeLang is the language of a string constant holding code, and for a
// PL/pgSQL function body, the CREATE statement that declares it (its
// parameters and return type shape what the body may say).
type codeLang struct {
	lang string // "sql", "plpgsql" or another language
	stmt string
}

// code returns the language of token t of sql when it holds code.
func (r tokenRules) code(sql string, t *pg_query.ScanToken) (codeLang, bool) {
	if t.Token != pg_query.Token_SCONST && t.Token != pg_query.Token_USCONST {
		return codeLang{}, false
	}
	if l, ok := r.codeAt[t.Start]; ok {
		return l, true
	}
	l, ok := r.codeRaw[sql[t.Start:t.End]]
	return l, ok
}

func (r tokenRules) isCode(sql string, t *pg_query.ScanToken) bool {
	_, ok := r.code(sql, t)
	return ok
}

// isConst reports whether a token is a constant: a string (dollar-quoted,
// E, U&, B and X forms included) or a number.
func isConst(tok pg_query.Token) bool {
	switch tok {
	case pg_query.Token_SCONST, pg_query.Token_USCONST, pg_query.Token_BCONST, pg_query.Token_XCONST,
		pg_query.Token_ICONST, pg_query.Token_FCONST:
		return true
	}
	return false
}

// isSign reports whether a token may be the sign of a numeric constant.
func isSign(tok pg_query.Token) bool {
	return tok == pg_query.Token_Op || tok == pg_query.Token_ASCII_45 || tok == pg_query.Token_ASCII_43
}

// quotedName reports whether token t of sql is a quoted identifier
// ("Jane Roe", not U&"…", whose escapes the recording does not decode).
func quotedName(sql string, t *pg_query.ScanToken) bool {
	return t.Token == pg_query.Token_IDENT && int(t.End) <= len(sql) && t.End-t.Start >= 2 && sql[t.Start] == '"' && sql[t.End-1] == '"'
}

// literalValue is the string a string constant's token stands for, as
// PostgreSQL reads it (a U&'…' string with its default escape); ok is
// false for a form it does not read.
func literalValue(tok string) (string, bool) {
	pre, inner, post := splitLiteral(tok)
	if post == "" {
		return "", false
	}
	if strings.HasPrefix(pre, "$") {
		return inner, true
	}
	v, _ := joinContinued(inner)
	v = strings.ReplaceAll(v, "''", "'")
	switch strings.ToUpper(strings.TrimSuffix(pre, "'")) {
	case "", "N":
	case "E":
		v = decodeE(v)
	case "U&":
		v = decodeU(v, '\\')
	default:
		return "", false
	}
	return v, true
}

// encodeLiteral writes v as a string constant of the kind pre opens.
func encodeLiteral(pre, v, post string) string {
	switch p := strings.ToUpper(pre); {
	case strings.HasPrefix(pre, "$"):
		if !strings.Contains(v, pre) {
			return pre + v + post
		}
		return "'" + strings.ReplaceAll(v, "'", "''") + "'"
	case p == "E'":
		return pre + strings.ReplaceAll(strings.ReplaceAll(v, `\`, `\\`), "'", "''") + "'"
	case p == "'" || p == "N'":
		return pre + strings.ReplaceAll(v, "'", "''") + "'"
	}
	return "'" + strings.ReplaceAll(v, "'", "''") + "'"
}

// withheldFrom is a text the scanner cannot read, recorded while its
// constants had to be replaced: kept up to its first quote, the rest
// withheld.
func withheldFrom(sql string, found *[]gateway.Finding) string {
	i := strings.IndexAny(sql, `'$"`)
	if i < 0 {
		return sql
	}
	*found = append(*found, gateway.Finding{Detector: unjudgedLiteral, Value: sql[i:]})
	gateway.ScrubFound(sql[i:], found)
	return sql[:i] + detect.Placeholder(unjudgedLiteral)
}

// judgeCode returns code v as recorded, and the values replaced.
func judgeCode(v string, l codeLang, pol *Policy, depth int) (string, []gateway.Finding) {
	switch {
	case depth > maxCodeDepth:
		return unjudged(v, pol, depth)
	case l.lang == "sql":
		return redactText(v, pol, depth)
	case l.lang == "plpgsql":
		return redactPlpgsql(v, l.stmt, pol, depth)
	case pol.hasColumnRules():
		// A language the gateway does not read: its strings may be
		// quoted in ways PostgreSQL's scanner does not delimit, so the
		// body is withheld whole.
		return detect.Placeholder(unjudgedLiteral), []gateway.Finding{{Detector: unjudgedLiteral, Value: v}}
	}
	return v, nil
}

// unjudged records code whose literals cannot be judged: while a mask
// rule names columns, every literal replaced; otherwise as the
// detectors judge it.
func unjudged(v string, pol *Policy, depth int) (string, []gateway.Finding) {
	return scrubTokens(v, pol, depth, tokenRules{all: pol.hasColumnRules()})
}

// codeStrings returns the offsets of the string constants of sql that
// hold code, with their language: the bodies of DO and CREATE FUNCTION
// or PROCEDURE (not those of C or internal functions, which name
// symbols), and constant arguments of the functions that run a query
// given as text (textSQLFuncs).
func codeStrings(sql string) map[int32]codeLang {
	tree, err := pg_query.Parse(sql)
	if err != nil {
		return nil
	}
	out := map[int32]codeLang{}
	for _, raw := range tree.Stmts {
		if raw.Stmt == nil {
			continue
		}
		stmt := sql[raw.StmtLocation:]
		if raw.StmtLen > 0 && int(raw.StmtLocation+raw.StmtLen) <= len(sql) {
			stmt = sql[raw.StmtLocation : raw.StmtLocation+raw.StmtLen]
		}
		visit(raw.Stmt.ProtoReflect(), func(m protoreflect.Message) bool {
			switch x := m.Interface().(type) {
			case *pg_query.DoStmt:
				lang, at := "plpgsql", int32(-1)
				for _, a := range x.Args {
					switch d := a.GetDefElem(); d.GetDefname() {
					case "language":
						lang = strings.ToLower(d.GetArg().GetString_().GetSval())
					case "as":
						at = d.ArgLocation
					}
				}
				if at >= 0 {
					out[at] = codeLang{lang: lang}
				}
			case *pg_query.CreateFunctionStmt:
				lang, at, n := "sql", int32(-1), 0
				for _, o := range x.Options {
					switch d := o.GetDefElem(); d.GetDefname() {
					case "language":
						lang = strings.ToLower(d.GetArg().GetString_().GetSval())
					case "as":
						at, n = d.ArgLocation, len(d.GetArg().GetList().GetItems())
					}
				}
				if at >= 0 && n == 1 && lang != "c" && lang != "internal" {
					out[at] = codeLang{lang: lang, stmt: stmt}
				}
			case *pg_query.FuncCall:
				if textSQLFuncs[funcName(x)] {
					for _, a := range x.Args {
						if c := a.GetAConst(); c != nil && c.GetSval() != nil {
							out[c.Location] = codeLang{lang: "sql"}
						}
					}
				}
			}
			return true
		})
	}
	return out
}

// plNode is a node of PL/pgSQL's parse tree as pg_query writes it in JSON.
type plNode = map[string]any

// redactPlpgsql records a PL/pgSQL body: its literals judged on
// PL/pgSQL's parse tree. stmt is the CREATE FUNCTION or PROCEDURE that
// declares the body, empty for a DO block. Each SQL statement and
// expression the body embeds is parsed; a constant written against a
// masked column there, or against a variable linked to one (assigned
// the constant, compared with the column), is replaced wherever the
// body writes it; a constant string expression the detectors find a
// value in is replaced as at top level; an EXECUTE of a constant string
// is judged as SQL. While a mask rule names columns, a body that does
// not parse, or an EXECUTE of a string built at run time, has every
// literal replaced.
func redactPlpgsql(body, stmt string, pol *Policy, depth int) (string, []gateway.Finding) {
	if !pol.hasColumnRules() && !foldHint(body) && !containsFold(body, "execute") {
		return scrubTokens(body, pol, depth, tokenRules{})
	}
	if stmt == "" {
		tag := "$auditledger_do$"
		for strings.Contains(body, tag) {
			tag = "$x" + tag[1:]
		}
		stmt = "CREATE FUNCTION auditledger_do() RETURNS void LANGUAGE plpgsql AS " + tag + body + tag
	}
	js, err := pg_query.ParsePlPgSqlToJSON(stmt)
	var fns []plNode
	if err == nil {
		err = json.Unmarshal([]byte(js), &fns)
	}
	if err != nil || len(fns) != 1 {
		return unjudged(body, pol, depth)
	}
	j := &plJudge{pol: pol, r: tokenRules{forcedRaw: map[string]string{}, codeRaw: map[string]codeLang{}}}
	fn, _ := fns[0]["PLpgSQL_function"].(plNode)
	j.datums, _ = fn["datums"].([]any)
	j.walk(fn, "", "", nil)
	if j.failed {
		return unjudged(body, pol, depth)
	}
	for i, masked := range linkedMasked(j.pairs, pol, j.maskedNames...) {
		if masked {
			for _, raw := range j.raws[i] {
				j.r.forcedRaw[raw] = maskedColumn
			}
		}
	}
	return scrubTokens(body, pol, depth, j.r)
}

// plJudge gathers, over a PL/pgSQL parse tree, what redactPlpgsql
// replaces.
type plJudge struct {
	pol         *Policy
	datums      []any
	r           tokenRules
	pairs       []valuePair
	raws        [][]string // the constants of each pair, as the body writes them
	maskedNames []string   // variables a masked value is bound to (EXECUTE … USING)
	failed      bool       // an expression could not be judged
}

// walk visits node, in the statement of type stmt (PLpgSQL_stmt_…) that
// assigns to targets, under field name field.
func (j *plJudge) walk(node any, stmt, field string, targets []string) {
	switch x := node.(type) {
	case []any:
		for _, v := range x {
			j.walk(v, stmt, field, targets)
		}
	case plNode:
		for k, v := range x {
			switch {
			case k == "PLpgSQL_expr":
				e, _ := v.(plNode)
				q, _ := e["query"].(string)
				mode, _ := e["parseMode"].(float64)
				j.expr(q, int(mode), stmt, field, targets)
			case strings.HasPrefix(k, "PLpgSQL_stmt_") || k == "PLpgSQL_var":
				m, _ := v.(plNode)
				j.walk(v, k, "", j.targets(k, m))
			default:
				j.walk(v, stmt, k, targets)
			}
		}
	}
}

// targets names the variables a statement or declaration assigns to.
func (j *plJudge) targets(kind string, m plNode) []string {
	var out []string
	if kind == "PLpgSQL_var" {
		if n, ok := m["refname"].(string); ok {
			out = append(out, n)
		}
		return out
	}
	for _, k := range []string{"varno", "t_varno"} { // t_varno: CASE's value
		if v, ok := m[k].(float64); ok {
			out = append(out, j.datumNames(int(v))...)
		}
	}
	if v, ok := m["curvar"].(float64); ok && int(v) >= 0 && int(v) < len(j.datums) {
		// OPEN c(args): the arguments go to the cursor's parameters.
		d, _ := j.datums[int(v)].(plNode)
		c, _ := d["PLpgSQL_var"].(plNode)
		if row, ok := c["cursor_explicit_argrow"].(float64); ok {
			out = append(out, j.datumNames(int(row))...)
		}
	}
	for _, f := range []string{"target", "var", "row"} {
		var names func(any)
		names = func(n any) {
			switch x := n.(type) {
			case []any:
				for _, v := range x {
					names(v)
				}
			case plNode:
				for k, v := range x {
					if s, ok := v.(string); ok && (k == "refname" || k == "name") {
						out = append(out, s)
					} else {
						names(v)
					}
				}
			}
		}
		names(m[f])
	}
	return out
}

// datumNames names datum n: a variable, or the fields of a row.
func (j *plJudge) datumNames(n int) []string {
	if n < 0 || n >= len(j.datums) {
		return nil
	}
	d, _ := j.datums[n].(plNode)
	var out []string
	for _, v := range d {
		m, _ := v.(plNode)
		if s, ok := m["refname"].(string); ok {
			out = append(out, s)
		}
		if s, ok := m["fieldname"].(string); ok {
			out = append(out, s) // NEW.name: a field of a record
		}
		fs, _ := m["fields"].([]any)
		for _, f := range fs {
			if fm, ok := f.(plNode); ok {
				if s, ok := fm["name"].(string); ok {
					out = append(out, s)
				}
			}
		}
	}
	return out
}

// PL/pgSQL's parse modes of an expression (RawParseMode).
const (
	plStatement = 0
	plExpr      = 2
)

// expr judges one expression or statement q of the body.
func (j *plJudge) expr(q string, mode int, stmt, field string, targets []string) {
	text := q
	switch {
	case mode == plStatement:
	case mode == plExpr:
		text = "SELECT " + q
	default: // an assignment: target := expression
		toks, err := pg_query.Scan(q)
		if err != nil {
			j.failed = true
			return
		}
		at := -1
		for _, t := range toks.Tokens {
			if t.Token == pg_query.Token_COLON_EQUALS || t.Token == pg_query.Token_ASCII_61 {
				at = int(t.End)
				break
			}
		}
		if at < 0 || at > len(q) {
			j.failed = true
			return
		}
		text = "SELECT " + q[at:]
	}
	tree, err := pg_query.Parse(text)
	if err != nil {
		j.failed = true
		return
	}
	toks, err := pg_query.Scan(text)
	if err != nil {
		j.failed = true
		return
	}
	// raw returns the constants at the offsets, as text writes them.
	raw := func(locs []int32) []string {
		var out []string
		for k, t := range toks.Tokens {
			if !slices.Contains(locs, t.Start) {
				continue
			}
			if isSign(t.Token) && k+1 < len(toks.Tokens) {
				t = toks.Tokens[k+1] // a sign: the constant follows
			}
			if !isConst(t.Token) && !quotedName(text, t) {
				continue // a column's name
			}
			if int(t.End) <= len(text) {
				out = append(out, text[t.Start:t.End])
			}
		}
		return out
	}
	dynamic := field == "dynquery" || field == "query" && (stmt == "PLpgSQL_stmt_dynexecute" || stmt == "PLpgSQL_stmt_dynfors")
	if dynamic {
		// EXECUTE of a constant string is the SQL it holds; of anything
		// else, a string built at run time.
		var sel *pg_query.SelectStmt
		if len(tree.Stmts) == 1 {
			sel = tree.Stmts[0].GetStmt().GetSelectStmt()
		}
		if sel == nil || len(sel.TargetList) != 1 {
			j.failed = j.pol.hasColumnRules()
			return
		}
		v := sel.TargetList[0].GetResTarget().GetVal()
		for v.GetTypeCast() != nil {
			v = v.GetTypeCast().Arg
		}
		c := v.GetAConst()
		if c == nil || c.GetSval() == nil {
			j.failed = j.pol.hasColumnRules()
			return
		}
		for _, s := range raw([]int32{c.Location}) {
			j.r.codeRaw[s] = codeLang{lang: "sql"}
			// Parameters bound to a masked column (USING): their
			// expressions count as written against it.
			if mp := maskedParams(c.GetSval().Sval, j.pol); len(mp) > 0 {
				j.maskedNames = append(j.maskedNames, "$using")
			}
		}
		return
	}
	if field == "params" && (stmt == "PLpgSQL_stmt_dynexecute" || stmt == "PLpgSQL_stmt_dynfors" || stmt == "PLpgSQL_stmt_open") {
		// An EXECUTE's USING list: each counts as bound to any masked
		// parameter of the string (maskedNames).
		var locs []int32
		var cols []string
		for _, s := range tree.Stmts {
			locs = append(locs, constsIn(s.Stmt, false)...)
			cols = append(cols, columnsIn(s.Stmt.ProtoReflect())...)
		}
		j.pairs = append(j.pairs, valuePair{cols: []string{"$using"}, peers: cols})
		j.raws = append(j.raws, raw(locs))
	}
	for _, vp := range valuePairs(tree) {
		j.pairs = append(j.pairs, valuePair{cols: vp.cols, peers: vp.peers})
		j.raws = append(j.raws, raw(vp.locs))
	}
	if len(targets) > 0 {
		// Assigned to variables (:=, DEFAULT, CASE's value): every
		// constant and name of the expression is linked to them; by a
		// statement (SELECT … INTO, FOR … IN, RETURNING … INTO), those of
		// the items it returns.
		var locs []int32
		var cols []string
		for _, s := range tree.Stmts {
			out := []*pg_query.Node{s.Stmt}
			if mode == plStatement {
				out = returned(s.Stmt)
			}
			for _, n := range out {
				locs = append(locs, constsIn(n, false)...)
				cols = append(cols, columnsIn(nodeMsg(n))...)
			}
		}
		j.pairs = append(j.pairs, valuePair{cols: targets, peers: cols})
		j.raws = append(j.raws, raw(locs))
	}
	fold := map[int32]string{}
	j.r.whole = append(j.r.whole, foldRedactions(tree, fold)...)
	for at, d := range fold {
		for _, s := range raw([]int32{at}) {
			if _, ok := j.r.forcedRaw[s]; !ok {
				j.r.forcedRaw[s] = d
			}
		}
	}
	for at, l := range codeStrings(text) {
		for _, s := range raw([]int32{at}) {
			j.r.codeRaw[s] = l
		}
	}
}

// returned lists what a statement returns into variables: a SELECT's
// list (each branch of a set operation, VALUES rows), a RETURNING list;
// for any other statement, the statement.
func returned(n *pg_query.Node) []*pg_query.Node {
	var out []*pg_query.Node
	var sel func(s *pg_query.SelectStmt)
	sel = func(s *pg_query.SelectStmt) {
		if s == nil {
			return
		}
		if s.Op != pg_query.SetOperation_SETOP_NONE {
			sel(s.Larg)
			sel(s.Rarg)
			return
		}
		out = append(out, s.TargetList...)
		out = append(out, s.ValuesLists...)
	}
	switch x := n.Node.(type) {
	case *pg_query.Node_SelectStmt:
		sel(x.SelectStmt)
	case *pg_query.Node_InsertStmt:
		out = x.InsertStmt.ReturningList
	case *pg_query.Node_UpdateStmt:
		out = x.UpdateStmt.ReturningList
	case *pg_query.Node_DeleteStmt:
		out = x.DeleteStmt.ReturningList
	case *pg_query.Node_MergeStmt:
		out = x.MergeStmt.ReturningList
	default:
		out = []*pg_query.Node{n}
	}
	return out
}
