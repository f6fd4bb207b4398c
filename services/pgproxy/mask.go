package pgproxy

import (
	"context"
	"fmt"
	"strings"
	"sync"

	"github.com/jackc/pgx/v5/pgproto3"

	"github.com/auditledger/auditledger/events"
)

// block records a statement stopped by a deny rule.
func (s *session) block(ctx context.Context, sql string, rule *DenyRule) error {
	_, err := s.record(ctx, events.CommandBlocked, map[string]any{
		"statement": sql, "statement_sha256": sha256Hex(sql), "kind": statementKind(sql),
		"rule": rule.ID, "reason": rule.Reason,
	})
	return err
}

// blockSQL is what the server runs instead of a denied statement: it
// raises the policy error in the statement's place, so the client sees it
// in order, and a transaction is aborted as by any failed statement.
func blockSQL(rule *DenyRule) string {
	msg := strings.ReplaceAll(fmt.Sprintf("blocked by policy rule %s: %s", rule.ID, rule.Reason), "'", "''")
	return "DO $auditledger$BEGIN RAISE EXCEPTION USING ERRCODE = '42501', MESSAGE = '" +
		strings.ReplaceAll(msg, "$auditledger$", "") + "'; END$auditledger$"
}

func (s *session) columnsOf(m *pgproto3.RowDescription) []column {
	cols := make([]column, len(m.Fields))
	names := make([]string, len(m.Fields))
	for i, f := range m.Fields {
		names[i] = string(f.Name)
		cols[i] = column{name: names[i], text: textTypes[f.DataTypeOID]}
	}
	for i, r := range s.p.cfg.Policy.columnRules(names) {
		cols[i].rule = r
	}
	return cols
}

// mask rewrites a row's values in place before it is forwarded or hashed:
// columns matched by name, and text values matched by a detector. A
// matched value of a type that is not text becomes NULL, the one value
// valid for every type in both formats.
func (s *session) mask(c *command, m *pgproto3.DataRow) {
	pol := s.p.cfg.Policy
	if pol == nil || len(pol.Mask) == 0 {
		return
	}
	for i, v := range m.Values {
		if v == nil {
			continue
		}
		var col column
		if i < len(c.columns) {
			col = c.columns[i]
		} else {
			col = column{name: fmt.Sprintf("column%d", i+1), text: true}
		}
		rule := col.rule
		if rule == nil && col.text {
			rule = pol.detectRule(v)
		}
		if rule == nil {
			continue
		}
		if col.text {
			m.Values[i] = pol.apply(rule, v)
		} else {
			m.Values[i] = nil
		}
		if c.masked == nil {
			c.masked = map[maskKey]int{}
		}
		c.masked[maskKey{rule, col.name}]++
	}
}

// maskEvents records one mask.applied per rule and column for the result
// that just completed.
func (s *session) maskEvents(ctx context.Context, c *command) {
	for k, n := range c.masked {
		method := k.rule.Method
		if !s.isText(c, k.column) {
			method = "null"
		}
		if _, err := s.record(ctx, events.MaskApplied, map[string]any{
			"command_id": c.id, "rule_id": k.rule.ID, "rule_version": k.rule.Version,
			"column": k.column, "info_type": k.rule.InfoType, "count": n, "method": method,
		}); err != nil {
			s.p.cfg.Logger.Error("mask.applied not recorded", "command", c.id, "err", err)
		}
	}
	c.masked = nil
}

func (s *session) isText(c *command, name string) bool {
	for _, col := range c.columns {
		if col.name == name {
			return col.text
		}
	}
	return true
}

// describeQueue holds the Describe requests awaiting their RowDescription
// or NoData, in order.
type describeQueue struct {
	mu sync.Mutex
	q  []describeKey
}

type describeKey struct {
	portal bool
	name   string
	stmt   string // for a portal, its statement
}

func describeTarget(m *pgproto3.Describe, portals map[string]portal) describeKey {
	if m.ObjectType == 'P' {
		return describeKey{portal: true, name: m.Name, stmt: portals[m.Name].stmt}
	}
	return describeKey{name: m.Name}
}

func (d *describeQueue) push(k describeKey) { d.mu.Lock(); d.q = append(d.q, k); d.mu.Unlock() }

func (d *describeQueue) reset() { d.mu.Lock(); d.q = d.q[:0]; d.mu.Unlock() }

func (d *describeQueue) pop() (describeKey, bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if len(d.q) == 0 {
		return describeKey{}, false
	}
	k := d.q[0]
	d.q = d.q[1:]
	return k, true
}

// shapes remembers the columns of prepared statements and portals.
type shapes struct {
	mu       sync.Mutex
	byStmt   map[string][]column
	byPortal map[string][]column
}

func (s *shapes) put(k describeKey, cols []column) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if k.portal {
		s.byPortal[k.name] = cols
		s.byStmt[k.stmt] = cols
	} else {
		s.byStmt[k.name] = cols
	}
}

func (s *shapes) get(stmt, portal string) []column {
	s.mu.Lock()
	defer s.mu.Unlock()
	if c, ok := s.byPortal[portal]; ok {
		return c
	}
	return s.byStmt[stmt]
}
