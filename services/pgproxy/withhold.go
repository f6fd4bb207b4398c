package pgproxy

import (
	"fmt"
	"strings"

	"github.com/jackc/pgx/v5/pgproto3"
)

// A statement that reads a column a mask rule names anywhere — in WHERE
// too — can make the server put that column's value in an error or a
// notice in any form: quoted (which scrubError withholds), or as a bare
// number ("index 1881888888882104 out of valid range", the card
// reversed) or a character code. So while such a statement runs, the
// text of its errors and notices is replaced with a fixed message naming
// the SQLSTATE and the rule, unless the error is of a class whose texts
// name objects rather than values (safeErrorClasses); those are still
// scrubbed (quoted parts withheld, detail, hint and context replaced).

// safeErrorClasses are the SQLSTATE classes whose messages name
// objects, privileges or the session's state, not values read from rows:
// connection (08), integrity constraints (23, whose values are in DETAIL),
// transaction state (25), rollback (40), syntax and access (42, quoted
// names withheld), resources (53) and operator intervention (57).
var safeErrorClasses = map[string]bool{"08": true, "23": true, "25": true, "40": true, "42": true, "53": true, "57": true}

// maskedReference returns the first mask rule naming a column one of
// texts (a statement, and what its EXECUTEs run) refers to anywhere, or
// the first column rule when it refers to a whole row or *; nil when
// none does.
func (p *Policy) maskedReference(texts ...string) *MaskRule {
	if !p.hasColumnRules() {
		return nil
	}
	for _, sql := range texts {
		if r := p.maskedRef(analyze(sql)); r != nil {
			return r
		}
	}
	return nil
}

func (p *Policy) maskedRef(a *analysis) *MaskRule {
	if a.err != nil {
		return nil
	}
	for _, c := range a.refs {
		if c == "*" {
			for i := range p.Mask {
				if len(p.Mask[i].Columns) > 0 {
					return &p.Mask[i]
				}
			}
		}
		if r := p.columnRules([]string{c})[0]; r != nil {
			return r
		}
	}
	return nil
}

// withholdFromMasked replaces the texts of e, an error or notice of a
// statement that refers to a column rule masks (c.maskRef), unless its
// SQLSTATE class is a safe one. n counts the fields replaced.
func withholdFromMasked(c *command, e *pgproto3.ErrorResponse) (n int) {
	if c == nil || c.maskRef == nil || len(e.Code) >= 2 && safeErrorClasses[e.Code[:2]] {
		return 0
	}
	msg := fmt.Sprintf("the server's message (SQLSTATE %s) is withheld: the statement reads a column mask rule %s masks (%s), and the message may carry its values",
		e.Code, c.maskRef.ID, strings.Join(c.maskRef.Columns, ", "))
	for _, f := range []*string{&e.Message, &e.Detail, &e.Hint, &e.Where, &e.InternalQuery, &e.ColumnName, &e.DataTypeName, &e.ConstraintName} {
		if *f != "" {
			n++
		}
	}
	e.Message, e.Detail, e.Hint, e.Where, e.InternalQuery = msg, "", "", "", ""
	e.Position, e.InternalPosition = 0, 0
	return n
}
