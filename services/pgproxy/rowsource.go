package pgproxy

import (
	"strings"

	pg "github.com/pganalyze/pg_query_go/v6"
	"google.golang.org/protobuf/reflect/protoreflect"
)

// relRef names a relation as a statement writes it: schema empty when
// the name is not qualified.
type relRef struct{ schema, name string }

func (r relRef) String() string {
	if r.schema == "" {
		return r.name
	}
	return r.schema + "." + r.name
}

// rowSources tells which relations the rows a name stands for in a
// statement may come from: a table or view (by its name or alias), a CTE
// or subquery (every relation it reads, CTEs followed), a join with an
// alias (both sides). Names are not scoped: a name used for several FROM
// items stands for all of them, which errs towards refusing. A function
// in FROM (or XMLTABLE, JSON_TABLE) has rows the catalog does not
// describe: opaque.
type rowSources struct {
	ctes   map[string]*pg.Node
	byName map[string]*source
	all    source // every relation of the statement, for *
}

type source struct {
	rels   []relRef
	opaque bool
}

func (s *source) add(o source) {
	s.rels = append(s.rels, o.rels...)
	s.opaque = s.opaque || o.opaque
}

func newRowSources(tree *pg.ParseResult) *rowSources {
	rs := &rowSources{ctes: map[string]*pg.Node{}, byName: map[string]*source{}}
	for _, raw := range tree.Stmts {
		if raw.Stmt == nil {
			continue
		}
		visit(raw.Stmt.ProtoReflect(), func(m protoreflect.Message) bool {
			if c, ok := m.Interface().(*pg.CommonTableExpr); ok {
				rs.ctes[strings.ToLower(c.Ctename)] = c.Ctequery
			}
			return true
		})
	}
	name := func(n string, src source) {
		n = strings.ToLower(n)
		if rs.byName[n] == nil {
			rs.byName[n] = &source{}
		}
		rs.byName[n].add(src)
	}
	for _, raw := range tree.Stmts {
		if raw.Stmt == nil {
			continue
		}
		rs.all.add(rs.of(raw.Stmt, map[string]bool{}))
		visit(raw.Stmt.ProtoReflect(), func(m protoreflect.Message) bool {
			switch x := m.Interface().(type) {
			case *pg.RangeVar:
				src := rs.rangeVar(x, map[string]bool{})
				name(x.Relname, src)
				if x.Alias != nil {
					name(x.Alias.Aliasname, src)
				}
			case *pg.RangeSubselect:
				if x.Alias != nil {
					name(x.Alias.Aliasname, rs.of(x.Subquery, map[string]bool{}))
				}
			case *pg.JoinExpr:
				if x.Alias != nil {
					src := rs.of(x.Larg, map[string]bool{})
					src.add(rs.of(x.Rarg, map[string]bool{}))
					name(x.Alias.Aliasname, src)
				}
			case *pg.RangeFunction:
				if x.Alias != nil {
					name(x.Alias.Aliasname, source{opaque: true})
				}
			case *pg.RangeTableFunc:
				if x.Alias != nil {
					name(x.Alias.Aliasname, source{opaque: true})
				}
			case *pg.JsonTable:
				if x.Alias != nil {
					name(x.Alias.Aliasname, source{opaque: true})
				}
			case *pg.CommonTableExpr:
				name(x.Ctename, rs.of(x.Ctequery, map[string]bool{}))
			}
			return true
		})
	}
	return rs
}

// rangeVar is the source of a relation named in FROM: a CTE of that
// name, or the relation.
func (rs *rowSources) rangeVar(rv *pg.RangeVar, seen map[string]bool) source {
	n := strings.ToLower(rv.Relname)
	if q, ok := rs.ctes[n]; ok && rv.Schemaname == "" {
		if seen[n] {
			return source{} // a recursive CTE's own rows
		}
		seen[n] = true
		return rs.of(q, seen)
	}
	return source{rels: []relRef{{schema: rv.Schemaname, name: rv.Relname}}}
}

// of is every relation read below n, CTEs followed.
func (rs *rowSources) of(n *pg.Node, seen map[string]bool) source {
	var out source
	if n == nil {
		return out
	}
	visit(n.ProtoReflect(), func(m protoreflect.Message) bool {
		switch x := m.Interface().(type) {
		case *pg.RangeVar:
			out.add(rs.rangeVar(x, seen))
		case *pg.RangeFunction, *pg.RangeTableFunc, *pg.JsonTable:
			out.opaque = true
		}
		return true
	})
	return out
}

// resolve returns the relations a whole-row reference may hold rows of:
// "*" all of the statement's, "t.*" and "t" those of t.
func (rs *rowSources) resolve(col string) ([]relRef, bool) {
	if col == "*" {
		return rs.all.rels, rs.all.opaque
	}
	src := rs.byName[strings.ToLower(strings.TrimSuffix(col, ".*"))]
	if src == nil {
		return nil, true
	}
	return src.rels, src.opaque
}
