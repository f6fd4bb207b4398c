package pgproxy

import (
	"fmt"
	"slices"
	"testing"
	"time"
)

func TestAnalyzeClassifies(t *testing.T) {
	for sql, want := range map[string][]string{
		"/**/DROP/**/TABLE t":                                        {"DROP"},
		"SELECT 1; DROP TABLE t":                                     {"SELECT", "DROP"},
		"WITH d AS (DELETE FROM t RETURNING *) SELECT 1 FROM d":      {"SELECT", "DELETE"},
		"EXPLAIN ANALYZE UPDATE t SET a = 1":                         {"EXPLAIN", "EXPLAIN ANALYZE", "UPDATE"},
		"CREATE FUNCTION f() RETURNS int LANGUAGE sql AS 'SELECT 1'": {"CREATE", "CREATE FUNCTION"},
		"COPY t TO STDOUT":                                           {"COPY", "COPY TO", "COPY TO STDOUT"},
		"ALTER TABLE t ADD c int":                                    {"ALTER"},
	} {
		a := analyze(sql)
		for _, k := range want {
			if !a.has(k) {
				t.Errorf("%q: kinds %v lack %s", sql, a.kinds, k)
			}
		}
	}
	for sql, noWhere := range map[string]bool{
		"DELETE FROM t":                                true,
		"DELETE FROM t WHERE true":                     true,
		"DELETE FROM t WHERE 1 = 1 OR false":           true,
		"DELETE FROM t WHERE $1":                       true,
		"DELETE FROM t WHERE id = 1":                   false,
		"DELETE FROM t WHERE id IN (SELECT id FROM u)": false,
	} {
		if got := analyze(sql).noWhere["DELETE"]; got != noWhere {
			t.Errorf("%q: no WHERE %v, want %v", sql, got, noWhere)
		}
	}
}

// BenchmarkAnalyze measures parsing and classifying one pgbench TPC-B
// statement: a cache miss (a new text each time) and a hit. It reports
// p50 and p99 per statement.
func BenchmarkAnalyze(b *testing.B) {
	const stmt = "UPDATE pgbench_accounts SET abalance = abalance + %d WHERE aid = %d;"
	for _, mode := range []string{"miss", "hit"} {
		b.Run(mode, func(b *testing.B) {
			lat := make([]time.Duration, 0, b.N)
			for i := range b.N {
				sql := fmt.Sprintf(stmt, 1, 1)
				if mode == "miss" {
					sql = fmt.Sprintf(stmt, i, i)
				}
				start := time.Now()
				analyze(sql)
				lat = append(lat, time.Since(start))
			}
			slices.Sort(lat)
			b.ReportMetric(float64(lat[len(lat)/2].Nanoseconds())/1e3, "p50-µs")
			b.ReportMetric(float64(lat[len(lat)*99/100].Nanoseconds())/1e3, "p99-µs")
		})
	}
}
