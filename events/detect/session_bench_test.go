package detect

import (
	"fmt"
	"testing"
	"time"
)

// sessionEvents are n events of one PostgreSQL session as the gateway
// records a pgbench select-only run (a command.executed and the
// response.digest of its result in turn), each with its own id, time,
// statement and command_id: what recurs from event to event is what
// recurs in a session.
func sessionEvents(n int) [][]byte {
	at := time.Date(2026, 12, 8, 0, 58, 18, 0, time.UTC)
	out := make([][]byte, 0, n)
	for i := range n {
		env := fmt.Sprintf(`{"version":1,"id":"08d3b8cae0685b0e.%d","type":"%%s","time":"%s","tenant":"acme","source":{"kind":"postgres-proxy","instance":"pg-1","version":"0.9.0"},"actor":{"issuer":"static-users","subject":"bench","kind":"human","dev_identity":true},"session_id":"08d3b8cae0685b0e","session_seq":%d,"target":{"kind":"postgres","name":"bench","host":"127.0.0.1:5497","database":"bench"},"payload":`,
			i+2, at.Add(time.Duration(i)*137*time.Microsecond).Format(time.RFC3339Nano), i+2)
		if i%2 == 0 {
			out = append(out, fmt.Appendf(nil, env+`{"kind":"select","protocol":"simple","statement":"SELECT abalance FROM pgbench_accounts WHERE aid = %d;","statement_sha256":"%064x"}}`, "command.executed", 1+(i*7919)%1000000, i))
		} else {
			out = append(out, fmt.Appendf(nil, env+`{"bytes":36,"command_id":"08d3b8cae0685b0e.%d","rows":1,"sha256":"%064x","tag":"SELECT 1"}}`, "response.digest", i+1, i))
		}
	}
	return out
}

// BenchmarkInEventSession: the writer's judge (CheckEvent) of the events
// of one select-only PostgreSQL session, per event; "memo" as the writer
// judges them, "no-memo" without the texts judged clean before.
func BenchmarkInEventSession(b *testing.B) {
	evs := sessionEvents(4096)
	for _, off := range []bool{false, true} {
		name := "memo"
		if off {
			name = "no-memo"
		}
		b.Run(name, func(b *testing.B) {
			cleanTexts.off = off
			defer func() { cleanTexts.off = false }()
			i := 0
			for b.Loop() {
				if err := CheckEvent(evs[i%len(evs)]); err != nil {
					b.Fatal(err)
				}
				i++
			}
		})
	}
}
