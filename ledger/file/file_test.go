package file_test

import (
	"context"
	"os"
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
