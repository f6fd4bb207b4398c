package test

import (
	"fmt"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/auditledger/auditledger/events"
	"github.com/auditledger/auditledger/test/natstest"
)

// TestProxySIGTERMMidPgbench: SIGTERM to the PostgreSQL proxy while
// pgbench (TPC-B) runs through it. Every statement that reached the
// database has its command.executed and its response.digest in the
// sealed log: each committed transaction left a row in pgbench_history,
// and the log holds at least as many completed history INSERTs, each with
// its digest; no command is without one.
func TestProxySIGTERMMidPgbench(t *testing.T) {
	pg := targetPostgres(t)
	db := pg.NewDatabase(t)
	pg.InitPgbench(t, db)
	l := startLedger(t)
	js := l.js
	proxy, addr := startProxyPostgres(t, l.srv, pg.DSN(db))
	host, port, _ := strings.Cut(addr, ":")
	bench := exec.Command("pgbench", "-n", "-c", "4", "-T", "30", "-h", host, "-p", port, "-U", "alice", db)
	bench.Env = append(bench.Environ(), "PGPASSWORD=alice-secret", "PGSSLMODE=disable")
	benchOut := &lockedBuffer{}
	bench.Stdout, bench.Stderr = benchOut, benchOut
	if err := bench.Start(); err != nil {
		t.Fatal(err)
	}
	conn, err := pgx.Connect(t.Context(), pg.DSN(db))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(t.Context())
	history := func() int {
		var n int
		if err := conn.QueryRow(t.Context(), "SELECT count(*) FROM pgbench_history").Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	natstest.CheckFor(t, 30*time.Second, 20*time.Millisecond, func() error {
		if n := history(); n < 200 {
			return fmt.Errorf("%d transactions so far", n)
		}
		return nil
	})
	proxy.Process.Signal(syscall.SIGTERM)
	if err := proxy.Wait(); err != nil {
		t.Fatalf("proxy did not stop cleanly on SIGTERM: %v", err)
	}
	bench.Wait() // its connections were ended
	committed := history()
	waitDrained(t, js, 30*time.Second)

	commands := map[string]string{}
	digests := map[string]map[string]any{}
	for _, s := range l.verifiedEvents(t) {
		switch s.Event.Type {
		case events.CommandExecuted:
			commands[s.Event.ID], _ = s.Payload["statement"].(string)
		case events.ResponseDigest:
			id, _ := s.Payload["command_id"].(string)
			digests[id] = s.Payload
		}
	}
	inserts, interrupted := 0, 0
	for id, stmt := range commands {
		d, ok := digests[id]
		if !ok {
			t.Errorf("command %s (%q) has no response.digest in the log", id, stmt)
			continue
		}
		if _, ok := d["interrupted"]; ok {
			interrupted++
		}
		if strings.HasPrefix(stmt, "INSERT INTO pgbench_history") && d["command_tag"] == "INSERT 0 1" {
			inserts++
		}
	}
	t.Logf("%d transactions committed, %d commands sealed, %d history inserts completed, %d digests marked interrupted",
		committed, len(commands), inserts, interrupted)
	if inserts < committed {
		t.Fatalf("%d transactions committed in the database, but only %d completed history inserts in the log", committed, inserts)
	}
}
