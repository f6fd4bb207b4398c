package pgproxy

import (
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/auditledger/auditledger/events/detect"
	"github.com/auditledger/auditledger/services/gateway"
)

// pgbenchStatements returns n statements of each of pgbench's built-in
// scripts at scale 10, as pgbench sends them over the simple protocol:
// its variables replaced by random numbers in its ranges (aid 1–1,000,000,
// tid 1–100, bid 1–10, delta −5,000–5,000).
func pgbenchStatements(n int) map[string][]string {
	r := rand.New(rand.NewPCG(1, 2))
	out := map[string][]string{}
	for range n {
		aid, tid, bid, delta := 1+r.IntN(1000000), 1+r.IntN(100), 1+r.IntN(10), r.IntN(10001)-5000
		add := func(name, format string, a ...any) { out[name] = append(out[name], fmt.Sprintf(format, a...)) }
		add("select-only", "SELECT abalance FROM pgbench_accounts WHERE aid = %d;", aid)
		add("begin", "BEGIN;")
		add("update-accounts", "UPDATE pgbench_accounts SET abalance = abalance + %d WHERE aid = %d;", delta, aid)
		add("update-tellers", "UPDATE pgbench_tellers SET tbalance = tbalance + %d WHERE tid = %d;", delta, tid)
		add("update-branches", "UPDATE pgbench_branches SET bbalance = bbalance + %d WHERE bid = %d;", delta, bid)
		add("insert-history", "INSERT INTO pgbench_history (tid, bid, aid, delta, mtime) VALUES (%d, %d, %d, %d, CURRENT_TIMESTAMP);", tid, bid, aid, delta)
		add("end", "END;")
	}
	return out
}

var pgbenchScripts = []string{"select-only", "begin", "update-accounts", "update-tellers", "update-branches", "insert-history", "end"}

// BenchmarkRedactSQLPgbench: redactSQL on each of pgbench's statements
// with random numbers (no policy), the statements that hold no personal
// data — the common case the proxy records. %replaced is the share of
// statements recorded with a placeholder: the numbers of an INSERT into
// pgbench_history, joined, are now and then a Luhn-valid chain.
func BenchmarkRedactSQLPgbench(b *testing.B) {
	stmts := pgbenchStatements(4096)
	for _, name := range pgbenchScripts {
		b.Run(name, func(b *testing.B) {
			s := stmts[name]
			b.ReportAllocs()
			i, changed := 0, 0
			for b.Loop() {
				sql := s[i%len(s)]
				if out, _ := redactSQL(sql, nil); out != sql {
					changed++
				}
				i++
			}
			b.ReportMetric(float64(changed)/float64(i)*100, "%replaced")
		})
	}
}

// BenchmarkRedactSQLPgbenchRecord: the whole record of each statement as
// the proxy builds it and the gateway core encodes it — statementFields
// (redactSQL, the whole text scrubbed, digest, kind), the payload's
// recording rule (gateway.EncodePayload) and the writer's judge of the
// event (detect.InEvent), what every pgbench statement costs in the
// detectors end to end.
func BenchmarkRedactSQLPgbenchRecord(b *testing.B) {
	stmts := pgbenchStatements(4096)
	for _, name := range pgbenchScripts {
		b.Run(name, func(b *testing.B) {
			s := stmts[name]
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				p := statementFields(s[i%len(s)], nil)
				p["protocol"] = "simple"
				body, err := gateway.EncodePayload(p, nil)
				if err != nil {
					b.Fatal(err)
				}
				doc := append(append([]byte(`{"payload":`), body...), '}')
				if _, found, _ := detect.InEvent(doc); found {
					b.Fatalf("the writer finds a value in %s", body)
				}
				i++
			}
		})
	}
}
