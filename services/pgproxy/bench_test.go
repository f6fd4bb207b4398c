package pgproxy

import (
	"fmt"
	"slices"
	"testing"
	"time"
)

const benchPolicy = `version: 1
mask:
  - id: pii
    columns: [email, card]
    detect: [credit_card]
    method: redact
deny:
  - id: no-drop
    kinds: [DROP, TRUNCATE]
    reason: dropping data needs a change ticket
`

// BenchmarkPolicySelect measures what the proxy does for a simple SELECT
// under a policy that masks columns: the judgement (Denied, with its
// analysis of what the result reads) and the recorded text
// (statementFields). same-text repeats one statement; new-literals
// changes its constants each time, as applications do. It reports p50
// and p99 per statement, steadier than the mean on a busy machine.
func BenchmarkPolicySelect(b *testing.B) {
	pol, err := ParsePolicy("bench", []byte(benchPolicy))
	if err != nil {
		b.Fatal(err)
	}
	for _, mode := range []string{"same-text", "new-literals"} {
		b.Run(mode, func(b *testing.B) {
			lat := make([]time.Duration, 0, b.N)
			for i := range b.N {
				sql := "SELECT id, email, note FROM customers WHERE id = 1 ORDER BY id"
				if mode == "new-literals" {
					sql = fmt.Sprintf("SELECT id, email, note FROM customers WHERE id = %d ORDER BY id", i)
				}
				start := time.Now()
				if r := pol.Denied(sql); r != nil {
					b.Fatal(r.ID)
				}
				benchRecord(pol, sql)
				lat = append(lat, time.Since(start))
			}
			slices.Sort(lat)
			b.ReportMetric(float64(lat[len(lat)/2].Nanoseconds())/1e3, "p50-µs")
			b.ReportMetric(float64(lat[len(lat)*99/100].Nanoseconds())/1e3, "p99-µs")
		})
	}
}
