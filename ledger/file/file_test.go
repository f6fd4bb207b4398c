package file_test

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/auditledger/auditledger/ledger"
	"github.com/auditledger/auditledger/ledger/file"
	"github.com/auditledger/auditledger/ledger/storetest"
)

func TestContract(t *testing.T) {
	storetest.Run(t, func(t *testing.T) ledger.SegmentStore {
		s, err := file.New(t.TempDir())
		if err != nil {
			t.Fatal(err)
		}
		return s
	}, 0)
}

func TestSealedFilesReadOnlyAndTempIgnored(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	s, _ := file.New(dir)
	if err := s.Create(ctx, "segments/a", []byte("x"), time.Time{}); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(filepath.Join(dir, "segments", "a"))
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o444 {
		t.Fatalf("sealed file mode %04o, want 0444", fi.Mode().Perm())
	}
	// A temp file left by a crash mid-Create is not an object.
	os.WriteFile(filepath.Join(dir, "segments", ".tmp-123"), []byte("partial"), 0o644)
	names, _ := s.List(ctx, "segments/")
	if len(names) != 1 {
		t.Fatalf("List = %q, want only segments/a", names)
	}
	if err := s.Create(ctx, "../escape", []byte("x"), time.Time{}); err == nil || !strings.Contains(err.Error(), "invalid object name") {
		t.Fatalf("escaping name: %v", err)
	}
}

// CheckWritable finds a store the writer cannot seal to at start: here a
// directory made read-only (immutable, for root, which ignores modes).
func TestCheckWritable(t *testing.T) {
	dir := t.TempDir()
	s, err := file.New(dir)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.CheckWritable(); err != nil {
		t.Fatalf("a fresh store: %v", err)
	}
	if names, _ := os.ReadDir(dir); len(names) != 0 {
		t.Fatalf("the probe left %v behind", names)
	}
	readOnly(t, dir)
	if err := s.CheckWritable(); err == nil || !strings.Contains(err.Error(), "is not writable") || !strings.Contains(err.Error(), dir) {
		t.Fatalf("a read-only store: %v, want it named as not writable", err)
	}
}

// readOnly makes dir unwritable for this process until the test ends.
func readOnly(t *testing.T, dir string) {
	t.Helper()
	if os.Geteuid() != 0 {
		os.Chmod(dir, 0o555)
		t.Cleanup(func() { os.Chmod(dir, 0o755) })
		return
	}
	if out, err := exec.Command("chattr", "+i", dir).CombinedOutput(); err != nil {
		t.Fatalf("chattr +i (root ignores file modes; the immutable flag makes the directory read-only): %v %s", err, out)
	}
	t.Cleanup(func() { exec.Command("chattr", "-i", dir).Run() })
}
