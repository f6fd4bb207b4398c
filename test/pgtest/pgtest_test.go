package pgtest

import (
	"context"
	"os/exec"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"
)

func TestServer(t *testing.T) {
	s, err := Start()
	if err != nil {
		t.Fatal(err)
	}
	defer s.Stop()
	db := s.NewDatabase(t)
	// The real psql client, over TCP with the password.
	cmd := exec.Command("psql", "-X", "-A", "-t", "-c", "SELECT 40 + 2", s.DSN(db))
	out, err := cmd.CombinedOutput()
	if err != nil || strings.TrimSpace(string(out)) != "42" {
		t.Fatalf("psql: %v %s", err, out)
	}
	// Without the password, TCP is refused.
	bad := strings.Replace(s.DSN(db), s.Password, "wrong", 1)
	if c, err := pgx.Connect(context.Background(), bad); err == nil {
		c.Close(context.Background())
		t.Fatal("wrong password accepted")
	}
}
