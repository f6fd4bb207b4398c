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
		"CREATE TABLE t (a int)":                                     {"CREATE", "CREATE TABLE"},
		"CREATE DATABASE d":                                          {"CREATE", "CREATE DATABASE"},
		"DROP DATABASE d":                                            {"DROP", "DROP DATABASE"},
		"CREATE EXTENSION e":                                         {"CREATE", "CREATE EXTENSION"},
		"ALTER SYSTEM SET work_mem = '1GB'":                          {"ALTER", "ALTER SYSTEM"},
		"CREATE ROLE r":                                              {"CREATE", "CREATE ROLE"},
		"REVOKE SELECT ON t FROM u":                                  {"GRANT", "REVOKE"},
		"REVOKE r FROM u":                                            {"GRANT", "REVOKE"},
		"CREATE TYPE c AS (a int)":                                   {"CREATE", "CREATE TYPE"},
		"CHECKPOINT":                                                 {"CHECKPOINT"},
	} {
		a := analyze(sql)
		for _, k := range want {
			if !a.has(k) {
				t.Errorf("%q: kinds %v lack %s", sql, a.kinds, k)
			}
			// A rule may name every kind the analysis notes.
			if !slices.Contains(Kinds(), k) {
				t.Errorf("kind %s, noted for %q, is not among the kinds a policy may name", k, sql)
			}
		}
		if a.has("RAW") {
			t.Errorf("%q: the statement wrapper counted as a kind", sql)
		}
	}
	if analyze("GRANT SELECT ON t TO u").has("REVOKE") {
		t.Error("GRANT borrowed REVOKE's analysis")
	}
	// The tree cache must not let a statement borrow the analysis of one
	// that differs where the policy looks.
	for _, pair := range [][2]string{
		{"COPY t TO '/tmp/x'", "COPY TO STDOUT"},
		{"EXPLAIN DELETE FROM t", "EXPLAIN ANALYZE"},
		{"CREATE FUNCTION f() RETURNS int LANGUAGE sql AS 'x'", "CREATE PROCEDURE"},
	} {
		analyze(pair[0])
	}
	for sql, kind := range map[string]string{
		"COPY t TO STDOUT":                         "COPY TO STDOUT",
		"EXPLAIN ANALYZE DELETE FROM t":            "EXPLAIN ANALYZE",
		"CREATE PROCEDURE f() LANGUAGE sql AS 'x'": "CREATE PROCEDURE",
	} {
		if !analyze(sql).has(kind) {
			t.Errorf("%q after a similar statement: kinds %v lack %s", sql, analyze(sql).kinds, kind)
		}
	}
	analyze("DELETE FROM t WHERE id = 1")
	if !analyze("DELETE FROM t WHERE true").noWhere["DELETE"] {
		t.Error("WHERE true borrowed the analysis of WHERE id = 1")
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

// BenchmarkAnalyze measures parsing and classifying one statement: a new
// tree (a full parse), new literals in a known tree (the fingerprint
// cache), and a text seen before. It reports p50 and p99 per statement.
func BenchmarkAnalyze(b *testing.B) {
	for _, mode := range []string{"new-tree", "new-literals", "same-text"} {
		b.Run(mode, func(b *testing.B) {
			lat := make([]time.Duration, 0, b.N)
			for i := range b.N {
				var sql string
				switch mode {
				case "new-tree": // a column name the parser has not seen (letters: the fingerprint ignores digits in names)
					sql = fmt.Sprintf("UPDATE pgbench_accounts SET abalance = abalance + 1 WHERE %s = 1;", letters(i))
				case "new-literals":
					sql = fmt.Sprintf("UPDATE pgbench_accounts SET abalance = abalance + %d WHERE aid = %d;", i, i)
				default:
					sql = "UPDATE pgbench_accounts SET abalance = abalance + 1 WHERE aid = 1;"
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

func letters(i int) string {
	b := []byte{'x'}
	for ; i > 0; i /= 26 {
		b = append(b, byte('a'+i%26))
	}
	return string(b)
}

// The output analysis: what a result reads of a masked column other than
// bare is refused; what only chooses or orders rows is not.
func TestMaskedReads(t *testing.T) {
	pol, err := ParsePolicy("p", []byte("version: 1\nmask:\n  - id: m\n    columns: [email]\n    method: redact\n"))
	if err != nil {
		t.Fatal(err)
	}
	for sql, refused := range map[string]bool{
		"SELECT email FROM c": false,
		"SELECT c.email AS e, id FROM c WHERE lower(email) LIKE 'a%' ORDER BY email":                          false,
		"SELECT id FROM c WHERE id IN (SELECT id FROM c WHERE reverse(email) = 'x')":                          false,
		"SELECT id FROM c JOIN d ON lower(c.email) = d.e GROUP BY id HAVING max(email) > 'a'":                 false,
		"SELECT id FROM c WINDOW w AS (PARTITION BY email)":                                                   false,
		"EXPLAIN SELECT email FROM c":                                                                         false,
		"CREATE TABLE x AS SELECT * FROM d":                                                                   true,
		"SELECT count(DISTINCT email) FROM c":                                                                 false,
		"SELECT lower(email) FROM c":                                                                          true,
		"SELECT id FROM c UNION SELECT email FROM c":                                                          true,
		"WITH RECURSIVE r AS (SELECT email FROM c UNION SELECT email FROM r) SELECT * FROM r":                 true,
		"INSERT INTO x SELECT email FROM c":                                                                   true,
		"INSERT INTO x SELECT * FROM c":                                                                       true,
		"CREATE TABLE x AS SELECT email AS e FROM c":                                                          true,
		"CREATE VIEW v AS SELECT email AS e FROM c":                                                           true,
		"SELECT email INTO x FROM c":                                                                          true,
		"MERGE INTO x USING c ON x.id = c.id WHEN MATCHED THEN DO NOTHING RETURNING upper(c.email)":           true,
		"DELETE FROM c WHERE id = 1 RETURNING c":                                                              true,
		"EXPLAIN ANALYZE SELECT reverse(email) FROM c":                                                        true,
		"PREPARE p AS SELECT reverse(email) FROM c":                                                           true,
		"SELECT (SELECT max(email) FROM c)":                                                                   true,
		"SELECT row_to_json(x) FROM (SELECT email FROM c) x":                                                  true,
		"UPDATE c SET note = email WHERE id = 1":                                                              true,
		"UPDATE c SET note = n.x FROM (SELECT reverse(email) AS x FROM c) n":                                  true,
		"UPDATE c SET email = lower(email) WHERE id = 1":                                                      false,
		"INSERT INTO c (id) VALUES (1) ON CONFLICT (id) DO UPDATE SET note = EXCLUDED.email":                  true,
		"MERGE INTO d USING c ON d.id = c.id WHEN MATCHED THEN UPDATE SET note = c.email":                     true,
		"MERGE INTO d USING c ON d.id = c.id WHEN NOT MATCHED THEN INSERT (id, note) VALUES (c.id, c.email)":  true,
		"MERGE INTO d USING c ON d.id = c.id WHEN NOT MATCHED THEN INSERT (id, email) VALUES (c.id, c.email)": false,
		"SELECT lower(e) FROM (SELECT email AS e FROM c) s":                                                   true,
		"SELECT lower(x.f) FROM (SELECT e AS f FROM (SELECT email AS e FROM c) s) x":                          true,
		"WITH x AS (SELECT email AS e FROM c) SELECT reverse(e) FROM x":                                       true,
		"WITH x(e) AS (SELECT email FROM c) SELECT reverse(e) FROM x":                                         true,
		"SELECT reverse(e) FROM c AS t(i, e)":                                                                 true,
		"SELECT reverse(s.e) FROM (SELECT email FROM c) s(e)":                                                 true,
		"SELECT lower(n) FROM (SELECT note AS n FROM c) s":                                                    false,
		"SELECT e FROM (SELECT email AS e FROM c) s":                                                          false,
		"SELECT email AS e FROM c FULL JOIN d USING (email)":                                                  true,
		"SELECT email AS e FROM c JOIN d USING (email)":                                                       false,
		"SELECT cursor_to_xml('k', 1, false, false, '')":                                                      true,
	} {
		r := pol.Denied(sql)
		if (r != nil) != refused || r != nil && r.ID != "builtin-masked-columns-bare" {
			t.Errorf("%q: refused by %v, want refused %v", sql, r, refused)
		}
	}
}
