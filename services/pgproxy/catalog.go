package pgproxy

import (
	"context"
	"fmt"
	"strconv"
	"sync"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
)

// catalog names the table column behind a result column — PostgreSQL
// reports its table OID and attribute number in RowDescription — so a mask
// rule on a column applies whatever the query calls it (SELECT email AS
// e). It asks the target with the proxy's own credentials, on one
// connection per database, and remembers the answers.
type catalog struct {
	up    *pgconn.Config
	mu    sync.Mutex
	conns map[string]*pgconn.PgConn
	names map[catalogKey]string
	// volatility caches, per database, whether functions are volatile
	// (volatile.go).
	volatility map[catalogKey]map[string]bool
}

type catalogKey struct {
	db    string
	table uint32
	att   uint16
}

func newCatalog(up *pgconn.Config) *catalog {
	return &catalog{up: up, conns: map[string]*pgconn.PgConn{}, names: map[catalogKey]string{}}
}

// name returns the name of attribute att of table in database db.
func (c *catalog) name(ctx context.Context, db string, table uint32, att uint16) (string, error) {
	k := catalogKey{db, table, att}
	c.mu.Lock()
	defer c.mu.Unlock()
	if n, ok := c.names[k]; ok {
		return n, nil
	}
	conn, err := c.conn(ctx, db)
	if err != nil {
		return "", err
	}
	qctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	res := conn.ExecParams(qctx, "SELECT attname FROM pg_catalog.pg_attribute WHERE attrelid = $1 AND attnum = $2",
		[][]byte{[]byte(strconv.FormatUint(uint64(table), 10)), []byte(strconv.Itoa(int(att)))}, nil, nil, nil).Read()
	if res.Err != nil {
		return "", res.Err
	}
	if len(res.Rows) != 1 {
		return "", fmt.Errorf("no attribute %d of relation %d", att, table)
	}
	n := string(res.Rows[0][0])
	c.names[k] = n
	return n, nil
}

// conn returns the catalog's connection to db, opening it if need be;
// c.mu is held.
func (c *catalog) conn(ctx context.Context, db string) (*pgconn.PgConn, error) {
	conn := c.conns[db]
	if conn != nil && !conn.IsClosed() {
		return conn, nil
	}
	cfg := c.up.Copy()
	cfg.Database = db
	cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	conn, err := pgconn.ConnectConfig(cctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("catalog connection to %s: %w", db, err)
	}
	c.conns[db] = conn
	return conn, nil
}

// relationColumns is what whole-row reads and relation renames are
// judged by: the columns of every relation of the name (in any schema
// when the name is not qualified, so the session's search_path does not
// matter), and for a view or materialized view, those of the relations
// its query reads, followed through views; the attributes of
// composite-typed columns (and of arrays of them) count as its columns
// too. Error rows say why it cannot tell: no relation of that name (one
// created in a transaction still
// open, a function's rows), or a relation being altered (an exclusive
// lock held) in a transaction still open, whose columns are not yet
// those the catalog shows; and for a name not qualified, a relation
// created in a transaction still open (an exclusive lock on a relation
// the catalog does not show yet), which may take that name first in its
// session's search_path (a temporary table does).
const relationColumns = `WITH RECURSIVE rels(oid) AS (
	SELECT c.oid FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
	WHERE c.relname = $1 AND ($2 = '' OR n.nspname = $2)
	UNION
	SELECT next.oid FROM rels, LATERAL (
		SELECT d.refobjid FROM pg_catalog.pg_rewrite w
		JOIN pg_catalog.pg_depend d ON d.classid = 'pg_catalog.pg_rewrite'::regclass AND d.objid = w.oid
			AND d.refclassid = 'pg_catalog.pg_class'::regclass AND d.refobjid <> rels.oid
		WHERE w.ev_class = rels.oid
		UNION ALL
		SELECT coalesce(nullif(t.typrelid, 0), e.typrelid) FROM pg_catalog.pg_attribute a
		JOIN pg_catalog.pg_type t ON t.oid = a.atttypid
		LEFT JOIN pg_catalog.pg_type e ON e.oid = t.typelem
		WHERE a.attrelid = rels.oid AND a.attnum > 0 AND NOT a.attisdropped AND (t.typrelid <> 0 OR e.typrelid <> 0)
	) next(oid)
)
SELECT 'column', a.attname::text FROM rels JOIN pg_catalog.pg_attribute a ON a.attrelid = rels.oid AND a.attnum > 0 AND NOT a.attisdropped
UNION ALL
SELECT 'missing', '' WHERE NOT EXISTS (SELECT 1 FROM rels)
UNION ALL
SELECT 'altered', l.pid::text FROM rels JOIN pg_catalog.pg_locks l ON l.relation = rels.oid AND l.mode = 'AccessExclusiveLock'
	AND l.database = (SELECT oid FROM pg_catalog.pg_database WHERE datname = current_database())
UNION ALL
SELECT 'uncommitted', l.pid::text FROM pg_catalog.pg_locks l
WHERE $2 = '' AND l.locktype = 'relation' AND l.mode = 'AccessExclusiveLock'
	AND l.database = (SELECT oid FROM pg_catalog.pg_database WHERE datname = current_database())
	AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_class c WHERE c.oid = l.relation)`

// columns returns the columns of relation rel in database db
// (relationColumns), or why it cannot tell. Asked at every statement that
// needs it, not remembered: a relation can gain a column at any time.
func (c *catalog) columns(ctx context.Context, db string, rel relRef) ([]string, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	conn, err := c.conn(ctx, db)
	if err != nil {
		return nil, err
	}
	qctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	res := conn.ExecParams(qctx, relationColumns, [][]byte{[]byte(rel.name), []byte(rel.schema)}, nil, nil, nil).Read()
	if res.Err != nil {
		return nil, res.Err
	}
	var cols []string
	for _, row := range res.Rows {
		switch string(row[0]) {
		case "missing":
			return nil, fmt.Errorf("no relation %s in the catalog", rel)
		case "altered":
			return nil, fmt.Errorf("relation %s is being altered in a transaction still open", rel)
		case "uncommitted":
			return nil, fmt.Errorf("a relation is being created in a transaction still open, and could be the %s a search_path finds first", rel)
		}
		cols = append(cols, string(row[1]))
	}
	return cols, nil
}

// close closes the catalog's connections.
func (c *catalog) close() {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, conn := range c.conns {
		conn.Close(context.Background())
	}
	clear(c.conns)
}
