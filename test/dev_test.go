package test

import (
	"bufio"
	"fmt"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/auditledger/auditledger/test/natstest"
)

// TestDevReadme runs what the README shows: `auditledger dev` on fresh
// state, then emit the sample events and verify the log.
func TestDevReadme(t *testing.T) {
	data := t.TempDir()
	cmd := exec.Command(binary, "dev", "--data", data, "--nats-port", "-1", "--http", "127.0.0.1:0")
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { cmd.Process.Kill(); cmd.Wait() }()
	urlRe := regexp.MustCompile(`NATS \(JetStream\)\s+(nats://\S+)`)
	lines := make(chan string, 100)
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
	}()
	var url string
	timeout := time.After(60 * time.Second)
	for url == "" {
		select {
		case l, ok := <-lines:
			if !ok {
				t.Fatalf("dev exited before printing its banner:\n%s", stderr.String())
			}
			if m := urlRe.FindStringSubmatch(l); m != nil {
				url = m[1]
			}
		case <-timeout:
			t.Fatalf("no banner after 60s:\n%s", stderr.String())
		}
	}
	sample := mustReadSample(t)
	r := mustRun(t, sample, nil, "emit", "--nats", url)
	if !strings.Contains(r.stderr, "emitted 12 events stored by JetStream") {
		t.Fatalf("emit: %s", r.stderr)
	}
	vkey := filepath.Join(data, "keys", "ledger.vkey")
	store := filepath.Join(data, "store")
	natstest.CheckFor(t, 30*time.Second, 100*time.Millisecond, func() error {
		v := run(t, nil, nil, "verify", "--store", store, "--vkey", vkey)
		if v.code != 0 || !strings.Contains(v.stdout, "records      12 in") {
			return fmt.Errorf("verify: exit %d\n%s", v.code, v.stdout)
		}
		return nil
	})
	// Ctrl-C (SIGTERM here) stops it cleanly.
	cmd.Process.Signal(syscall.SIGTERM)
	if err := cmd.Wait(); err != nil {
		t.Fatalf("dev did not stop cleanly: %v\n%s", err, stderr.String())
	}
}
