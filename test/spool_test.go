package test

import (
	"bytes"
	be "encoding/binary"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/auditledger/auditledger/events/eventstest"
	"github.com/auditledger/auditledger/ledger/bus"
	"github.com/auditledger/auditledger/test/natstest"
)

// TestEmitSpoolDamagedWhileWaiting: `auditledger emit --spool` spools
// its events while the bus is down and waits for it; the spool is damaged
// meanwhile. When the bus returns, emit delivers every intact event, says
// where the damage was, and exits 1 (it used to deliver part of the spool
// and then hang, saying nothing).
func TestEmitSpoolDamagedWhileWaiting(t *testing.T) {
	natsDir, keysDir, spoolDir := t.TempDir(), t.TempDir(), t.TempDir()
	srv := natstest.StartSecureIn(t, natsDir, -1, keysDir)
	port := srv.Addr().(*net.TCPAddr).Port
	_, js := srv.Connect(t)
	if err := bus.EnsureStreams(t.Context(), js, bus.StreamOptions{}); err != nil {
		t.Fatal(err)
	}
	srv.Shutdown()
	srv.WaitForShutdown()

	var in bytes.Buffer
	for i := range 40 {
		raw, _ := eventstest.Command(fmt.Sprintf("spooled-%03d", i), "").Marshal()
		in.Write(append(raw, '\n'))
	}
	cmd := exec.Command(binary, "emit", "--nats", srv.ClientURL(), "--nkey", filepath.Join(keysDir, "proxy.nk"), "--spool", spoolDir)
	cmd.Stdin = &in
	var stderr spoolOutput
	cmd.Stdout, cmd.Stderr = &stderr, &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() { cmd.Process.Kill() })
	natstest.CheckFor(t, 60*time.Second, 50*time.Millisecond, func() error {
		if !strings.Contains(stderr.String(), "waiting for NATS to deliver the spool") {
			return errors.New("emit is not waiting for the bus yet")
		}
		return nil
	})

	// Damage entry 10 in place: the log's header, then length-prefixed
	// entries (docs: the spool's files).
	logPath := filepath.Join(spoolDir, "spool.log")
	b, err := os.ReadFile(logPath)
	if err != nil {
		t.Fatal(err)
	}
	var offs []int
	start := 0
	if bytes.HasPrefix(b, []byte("ALSPOOL1")) {
		start = 20
	}
	for off := start; off+8 <= len(b); off += 8 + int(be.BigEndian.Uint32(b[off:])) {
		offs = append(offs, off)
	}
	if len(offs) != 40 {
		t.Fatalf("%d entries in the spool, want 40", len(offs))
	}
	// The spool keeps events in the order they were stored, which need
	// not be the order given: read which event entry 10 holds.
	damaged := regexp.MustCompile(`spooled-\d{3}`).Find(b[offs[10]:offs[11]])
	if damaged == nil {
		t.Fatalf("entry 10 holds no event of this test: %q", b[offs[10]:offs[11]])
	}
	f, err := os.OpenFile(logPath, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteAt([]byte{b[offs[10]+20] ^ 0x40}, int64(offs[10]+20)); err != nil {
		t.Fatal(err)
	}
	f.Close()

	_, js = natstest.StartSecureIn(t, natsDir, port, keysDir).Connect(t)
	select {
	case err = <-exited:
	case <-time.After(120 * time.Second):
		t.Fatalf("emit did not exit after the bus returned; it said:\n%s", stderr.String())
	}
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 1 {
		t.Fatalf("emit: %v, want exit status 1; it said:\n%s", err, stderr.String())
	}
	if want := fmt.Sprintf("spool damaged while draining: unreadable bytes at offset %d", offs[10]); !strings.Contains(stderr.String(), want) {
		t.Errorf("emit did not say %q; it said:\n%s", want, stderr.String())
	}
	ids := map[string]int{}
	for _, s := range natstest.Events(t, js, "") {
		ids[s.Event.ID]++
	}
	for i := range 40 {
		id := fmt.Sprintf("spooled-%03d", i)
		if n := ids[id]; (n == 1) != (id != string(damaged)) {
			t.Errorf("event %s stored %d times (the damaged entry held %s)", id, n, damaged)
		}
	}
}

type spoolOutput struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (w *spoolOutput) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.b.Write(p)
}

func (w *spoolOutput) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.b.String()
}
