package test

import (
	"sync"
	"testing"

	"github.com/auditledger/auditledger/test/pgtest"
)

// One PostgreSQL server is the target database of every test that needs
// one, started by the first of them (initdb and a start cost seconds
// each on busy cores); each test works in a database of its own
// (pgtest's NewDatabase). TestMain stops it.
var shared struct {
	once sync.Once
	pg   *pgtest.Server
	err  error
}

// targetPostgres returns the shared server, starting it the first time;
// a server that cannot start fails the test.
func targetPostgres(t *testing.T) *pgtest.Server {
	t.Helper()
	shared.once.Do(func() { shared.pg, shared.err = pgtest.Start() })
	if shared.err != nil {
		t.Fatalf("PostgreSQL: %v", shared.err)
	}
	return shared.pg
}

// stopTargetPostgres stops the shared server, if a test started it.
func stopTargetPostgres() {
	if shared.pg != nil {
		shared.pg.Stop()
	}
}
