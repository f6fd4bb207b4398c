package pgproxy

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
)

// A statement that refers to a masked column — in WHERE, where reading
// it is allowed — can hand the column's value to a function that keeps
// it where a later statement reads it back unmasked: an advisory lock
// (read back from pg_locks), a sequence, a setting, a large object, a
// notification, another connection (dblink). Such functions are not
// listed one by one: the server's catalog says which functions can have
// side effects (pg_proc.provolatile = 'v'; immutable and stable functions
// cannot change the database's state). While a statement refers to a
// column a mask rule names, it may not call a volatile function with a
// column reference or a subquery among its arguments. The catalog is
// asked with the proxy's own login, once per database and function name;
// every function of that name counts, in any schema, and a name the
// catalog does not know, or a catalog that does not answer, is refused.

// builtinMaskedSideEffect refuses volatile functions given row values
// while a statement refers to a masked column.
const builtinMaskedSideEffect = "builtin-masked-side-effect"

// sideEffects returns the refusal of sql when it refers to a masked
// column and calls a volatile function with row values, or nil.
func (s *session) sideEffects(sql string) *DenyRule {
	r := s.pol.maskedReference(sql)
	if r == nil {
		return nil
	}
	for _, fn := range analyze(sql).argCalls {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		vol, err := s.p.catalog.volatile(ctx, s.db, fn)
		cancel()
		if err != nil {
			s.p.cfg.Logger.Error("cannot read a function's volatility: refusing the statement", "function", fn, "err", err)
			vol = true
		}
		if vol {
			return &DenyRule{ID: builtinMaskedSideEffect, Reason: fmt.Sprintf("the statement refers to a column mask rule %s masks (%s) and gives row values to %s, "+
				"a function that can keep them where a later statement reads them back unmasked (it is volatile, or not known to the catalog); "+
				"call it without the masked column, or in a statement that does not read one", r.ID, strings.Join(r.Columns, ", "), fn)}
		}
	}
	return nil
}

// volatile reports whether any function named name (the last part of
// its name, lower case) in database db is volatile, or none exists.
func (c *catalog) volatile(ctx context.Context, db, name string) (bool, error) {
	k := catalogKey{db: db}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.volatility == nil {
		c.volatility = map[catalogKey]map[string]bool{}
	}
	if v, ok := c.volatility[k][name]; ok {
		return v, nil
	}
	conn := c.conns[db]
	if conn == nil || conn.IsClosed() {
		cfg := c.up.Copy()
		cfg.Database = db
		cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		var err error
		conn, err = pgconn.ConnectConfig(cctx, cfg)
		cancel()
		if err != nil {
			return false, fmt.Errorf("catalog connection to %s: %w", db, err)
		}
		c.conns[db] = conn
	}
	res := conn.ExecParams(ctx, "SELECT coalesce(bool_or(provolatile = 'v'), true) FROM pg_catalog.pg_proc WHERE proname = $1",
		[][]byte{[]byte(name)}, nil, nil, nil).Read()
	if res.Err != nil {
		return false, res.Err
	}
	if len(res.Rows) != 1 {
		return false, fmt.Errorf("volatility of %s: %d rows", name, len(res.Rows))
	}
	v := string(res.Rows[0][0]) == "t"
	if c.volatility[k] == nil {
		c.volatility[k] = map[string]bool{}
	}
	c.volatility[k][name] = v
	return v, nil
}
