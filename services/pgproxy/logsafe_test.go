package pgproxy_test

import (
	"bytes"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/auditledger/auditledger/ledger/bus/emitter"
	"github.com/auditledger/auditledger/services/pgproxy"
	"github.com/auditledger/auditledger/test/natstest"
)

// lockedBuffer is a log destination the test reads while the proxy writes.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// TestProcessLogHoldsNoPersonalValues: a database name the client chose
// that is an e-mail address, refused because the proxy does not serve it,
// reaches the process log as its placeholder only.
func TestProcessLogHoldsNoPersonalValues(t *testing.T) {
	var logs lockedBuffer
	srv := natstest.Start(t)
	_, js := srv.Connect(t, nats.MaxReconnects(-1))
	em, err := emitter.New(emitter.Config{JetStream: js, Timeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	f := serve(t, srv, js, em, pgproxy.Config{Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	url := strings.Replace(f.url("alice", "alice-secret"), "/"+f.db+"?", "/jane.roe@example.com?", 1)
	if out, err := psql(t, url, "SELECT 1"); err == nil || !strings.Contains(out, "is not one this proxy serves") {
		t.Fatalf("another database: %v\n%s", err, out)
	}
	natstest.CheckFor(t, 5*time.Second, 20*time.Millisecond, func() error {
		if !strings.Contains(logs.String(), "session ended") {
			return errNotYet
		}
		return nil
	})
	if l := logs.String(); strings.Contains(l, "jane.roe") || !strings.Contains(l, "[REDACTED:email]") {
		t.Errorf("the process log:\n%s", l)
	}
}

var errNotYet = errorString("not logged yet")

type errorString string

func (e errorString) Error() string { return string(e) }
