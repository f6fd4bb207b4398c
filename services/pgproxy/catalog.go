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
	conn := c.conns[db]
	if conn == nil || conn.IsClosed() {
		cfg := c.up.Copy()
		cfg.Database = db
		cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		var err error
		conn, err = pgconn.ConnectConfig(cctx, cfg)
		cancel()
		if err != nil {
			return "", fmt.Errorf("catalog connection to %s: %w", db, err)
		}
		c.conns[db] = conn
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

// close closes the catalog's connections.
func (c *catalog) close() {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, conn := range c.conns {
		conn.Close(context.Background())
	}
	clear(c.conns)
}
