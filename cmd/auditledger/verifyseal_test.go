package main

import (
	"bytes"
	"context"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// verify run while a writer seals: the store can be read between a
// segment and the checkpoint stored after it (the README runs verify
// beside a running dev). verify waits for that checkpoint when the newest
// segment lacks it, and verifies again; a store at rest without it still
// fails, naming it.
func TestVerifyDuringASeal(t *testing.T) {
	dir, sample := keysAndSample(t)
	ctx := context.Background()
	lines := bytes.SplitAfter(bytes.TrimSpace(sample), []byte("\n"))
	store := filepath.Join(dir, "s")
	for _, part := range [][][]byte{lines[:6], lines[6:]} { // two seals
		if err := run(ctx, []string{"append", "--store", store, "--key", dir + "/k/ledger.key"}, bytes.NewReader(bytes.Join(part, nil)), io.Discard, io.Discard); err != nil {
			t.Fatal(err)
		}
	}
	cps, err := filepath.Glob(filepath.Join(store, "checkpoints", "*"))
	if err != nil || len(cps) < 2 {
		t.Fatalf("checkpoints %v (%v): want one per seal", cps, err)
	}
	newest := cps[len(cps)-1]
	cp, err := os.ReadFile(newest)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(newest); err != nil {
		t.Fatal(err)
	}
	vkey := dir + "/k/ledger.vkey"

	// The writer stores the checkpoint once verify has read the store
	// without it.
	sealWaitStarts = func() {
		go func() {
			time.Sleep(100 * time.Millisecond)
			if err := os.WriteFile(newest, cp, 0o444); err != nil {
				t.Error(err)
			}
		}()
	}
	out, errs, code := runCLI(t, "verify", "--store", store, "--vkey", vkey)
	sealWaitStarts = nil
	if code != 0 || !strings.HasPrefix(out, "OK") || !strings.Contains(errs, "a seal was under way") {
		t.Fatalf("verify during a seal: exit %d\n%s\n%s", code, out, errs)
	}

	// At rest, the checkpoint gone: a failure that names it.
	if err := os.Remove(newest); err != nil {
		t.Fatal(err)
	}
	out, errs, code = runCLI(t, "verify", "--store", store, "--vkey", vkey)
	if code != 1 || !strings.Contains(out, "no checkpoint at the segment's end") || strings.Contains(errs, "under way") {
		t.Fatalf("verify of a store at rest without its newest checkpoint: exit %d\n%s\n%s", code, out, errs)
	}
}
