package test

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// append draws a progress bar on a terminal (here a pseudo-terminal made
// by script(1)), and nothing of the kind when stderr is a file or a pipe.
func TestAppendProgressOnATerminal(t *testing.T) {
	dir := t.TempDir()
	keys := filepath.Join(dir, "keys")
	mustRun(t, nil, nil, "keys", "generate", "--out", keys)
	in := filepath.Join(dir, "events.jsonl")
	os.WriteFile(in, eventLines(0, 20000), 0o644)
	typescript := filepath.Join(dir, "typescript")
	cmd := exec.Command("script", "-q", "-e", "-c",
		fmt.Sprintf("%s append --store %s --key %s < %s > /dev/null", binary, filepath.Join(dir, "tty-store"), filepath.Join(keys, "ledger.key"), in), typescript)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("script(1) running append: %v\n%s", err, out)
	}
	screen, _ := os.ReadFile(typescript)
	if !bytes.Contains(screen, []byte("appending")) || !bytes.Contains(screen, []byte("%")) || !bytes.Contains(screen, []byte("appended 20000 events")) {
		t.Errorf("no progress bar on the terminal:\n%q", screen)
	}
	r := run(t, eventLines(0, 20000), nil, "append", "--store", filepath.Join(dir, "pipe-store"), "--key", filepath.Join(keys, "ledger.key"))
	if r.code != 0 || strings.Contains(r.stderr, "appending") {
		t.Errorf("append to a pipe (exit %d) drew a progress bar:\n%s", r.code, r.stderr)
	}
}

// append with nothing to add still prints the log's latest checkpoint —
// the one to keep for verify --since — and says so on an empty log.
func TestAppendEmptyInputPrintsTheCheckpoint(t *testing.T) {
	dir := t.TempDir()
	keys := filepath.Join(dir, "keys")
	mustRun(t, nil, nil, "keys", "generate", "--out", keys)
	store := filepath.Join(dir, "store")
	args := []string{"append", "--store", store, "--key", filepath.Join(keys, "ledger.key")}
	if r := mustRun(t, nil, nil, args...); r.stdout != "" || !strings.Contains(r.stderr, "the log is empty: no checkpoint is signed until it holds an event") {
		t.Errorf("empty input on an empty log: stdout %q, stderr %q", r.stdout, r.stderr)
	}
	first := mustRun(t, eventLines(0, 5), nil, args...)
	again := mustRun(t, nil, nil, args...)
	if again.stdout == "" || again.stdout != first.stdout {
		t.Errorf("empty input on a log of 5: printed %q, want the checkpoint %q", again.stdout, first.stdout)
	}
}
