// Package file is the local-directory segment store: each object is a
// read-only file, written to a temporary file, fsynced, linked into place
// without replacing anything, and made durable by fsyncing its directory.
//
// It cannot enforce retention: anyone with write access to the directory can
// delete files. The verifier detects that; S3 with Object Lock prevents it.
//
// A legal hold is a marker file under .legal-hold/ (the object's name
// below it), which the store's own Delete honours; Inspect reports it.
package file

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/auditledger/auditledger/ledger"
)

var (
	_ ledger.SegmentStore = (*Store)(nil)
	_ ledger.Inspector    = (*Store)(nil)
	_ ledger.LegalHolder  = (*Store)(nil)
	_ ledger.Deleter      = (*Store)(nil)
)

const (
	tmpPrefix = ".tmp-"
	// holdDir holds one empty marker file per object under legal hold.
	holdDir = ".legal-hold"
)

// Store is a segment store in a local directory.
type Store struct {
	dir string
}

// New opens (creating if needed) a store rooted at dir.
func New(dir string) (*Store, error) {
	abs, err := absDir(dir)
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(abs, 0o755); err != nil {
		return nil, fmt.Errorf("file store: %w", err)
	}
	return &Store{dir: abs}, nil
}

// Open opens the existing store rooted at dir, for reading: a reader must
// not create the store it was asked to check.
func Open(dir string) (*Store, error) {
	abs, err := absDir(dir)
	if err != nil {
		return nil, err
	}
	fi, err := os.Stat(abs)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return nil, fmt.Errorf("file store %s does not exist (is the path right?)", abs)
	case err != nil:
		return nil, fmt.Errorf("file store: %w", err)
	case !fi.IsDir():
		return nil, fmt.Errorf("file store %s is not a directory", abs)
	}
	return &Store{dir: abs}, nil
}

// absDir is the absolute path of a store's directory.
func absDir(dir string) (string, error) {
	if dir == "" {
		return "", errors.New("file store: empty directory")
	}
	abs, err := filepath.Abs(dir)
	if err != nil {
		return "", fmt.Errorf("file store: %w", err)
	}
	return abs, nil
}

func (s *Store) String() string { return "file://" + filepath.ToSlash(s.dir) }

// Dir is the store's root directory.
func (s *Store) Dir() string { return s.dir }

func (s *Store) path(name string) (string, error) {
	if name == "" || path.IsAbs(name) || path.Clean(name) != name || strings.HasPrefix(name, "../") || name == ".." {
		return "", fmt.Errorf("file store: invalid object name %q", name)
	}
	if strings.HasPrefix(path.Base(name), tmpPrefix) {
		return "", fmt.Errorf("file store: object name %q uses the reserved prefix %q", name, tmpPrefix)
	}
	if name == holdDir || strings.HasPrefix(name, holdDir+"/") {
		return "", fmt.Errorf("file store: object name %q is in the reserved directory %q", name, holdDir)
	}
	return filepath.Join(s.dir, filepath.FromSlash(name)), nil
}

// Create writes data to a temporary file, fsyncs it, makes it read-only and
// links it to its final name; link(2) fails if the name exists, which makes
// the create exclusive even between processes. The directory is fsynced so
// the new name survives a power loss.
func (s *Store) Create(ctx context.Context, name string, data []byte, _ time.Time) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	p, err := s.path(name)
	if err != nil {
		return err
	}
	dir := filepath.Dir(p)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("file store: %w", err)
	}
	tmp, err := os.CreateTemp(dir, tmpPrefix+"*")
	if err != nil {
		return fmt.Errorf("file store: %w", err)
	}
	defer os.Remove(tmp.Name())
	_, err = tmp.Write(data)
	if err == nil {
		err = tmp.Sync()
	}
	if err == nil {
		err = tmp.Chmod(0o444)
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("file store: write %s: %w", name, err)
	}
	if err := os.Link(tmp.Name(), p); err != nil {
		if errors.Is(err, fs.ErrExist) {
			return fmt.Errorf("file store: %s: %w", name, ledger.ErrExist)
		}
		return fmt.Errorf("file store: %w", err)
	}
	return syncDir(dir)
}

// CheckWritable writes, fsyncs and removes a 64 KiB probe file in the
// store's directory: a writer checks at start that it can seal, rather
// than finding out at its first seal (a read-only mount, a full disk, a
// directory another user owns).
func (s *Store) CheckWritable() error {
	tmp, err := os.CreateTemp(s.dir, tmpPrefix+"probe-*")
	if err != nil {
		return fmt.Errorf("file store %s is not writable: %w", s.dir, err)
	}
	defer os.Remove(tmp.Name())
	_, err = tmp.Write(make([]byte, 64<<10))
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("file store %s is not writable: %w", s.dir, err)
	}
	return nil
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("file store: %w", err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("file store: fsync %s: %w", dir, err)
	}
	return nil
}

// Get reads an object.
func (s *Store) Get(ctx context.Context, name string) ([]byte, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	p, err := s.path(name)
	if err != nil {
		return nil, err
	}
	b, err := os.ReadFile(p)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("file store: %s: %w", name, ledger.ErrNotExist)
	}
	if err != nil {
		return nil, fmt.Errorf("file store: %w", err)
	}
	return b, nil
}

// List returns the objects whose names start with prefix, skipping
// temporary files left by a crash during Create.
func (s *Store) List(ctx context.Context, prefix string) ([]string, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	var names []string
	err := filepath.WalkDir(s.dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(s.dir, p)
		rel = filepath.ToSlash(rel)
		if d.IsDir() {
			if rel == holdDir {
				return filepath.SkipDir // hold markers are not objects
			}
			// Descend only into directories that can hold matches.
			if rel != "." && !strings.HasPrefix(rel+"/", prefix) && !strings.HasPrefix(prefix, rel+"/") {
				return filepath.SkipDir
			}
			return nil
		}
		if strings.HasPrefix(d.Name(), tmpPrefix) || !strings.HasPrefix(rel, prefix) {
			return nil
		}
		names = append(names, rel)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("file store: list %q: %w", prefix, err)
	}
	slices.Sort(names)
	return names, nil
}

// Inspect reports whether the file is still read-only. A writable sealed
// file is a warning, not proof of tampering: the hashes decide that.
func (s *Store) Inspect(ctx context.Context, name string) (ledger.Protection, error) {
	p, err := s.path(name)
	if err != nil {
		return ledger.Protection{}, err
	}
	fi, err := os.Stat(p)
	if err != nil {
		return ledger.Protection{}, fmt.Errorf("file store: %w", err)
	}
	held, err := s.held(name)
	if err != nil {
		return ledger.Protection{}, err
	}
	prot := ledger.Protection{Mode: "read-only file", LegalHold: held}
	if fi.Mode().Perm()&0o222 != 0 {
		prot.Mode = "writable file"
		prot.Warnings = append(prot.Warnings, fmt.Sprintf("file is writable (mode %04o); sealed files are created read-only", fi.Mode().Perm()))
	}
	return prot, nil
}

// holdPath is the marker file of name's legal hold.
func (s *Store) holdPath(name string) string {
	return filepath.Join(s.dir, holdDir, filepath.FromSlash(name))
}

func (s *Store) held(name string) (bool, error) {
	_, err := os.Stat(s.holdPath(name))
	switch {
	case err == nil:
		return true, nil
	case errors.Is(err, fs.ErrNotExist):
		return false, nil
	}
	return false, fmt.Errorf("file store: legal hold of %s: %w", name, err)
}

// SetLegalHold creates (on) or removes (off) name's hold marker, durably.
func (s *Store) SetLegalHold(ctx context.Context, name string, on bool) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	p, err := s.path(name)
	if err != nil {
		return err
	}
	if _, err := os.Stat(p); errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("file store: legal hold on %s: %w", name, ledger.ErrNotExist)
	} else if err != nil {
		return fmt.Errorf("file store: %w", err)
	}
	marker := s.holdPath(name)
	dir := filepath.Dir(marker)
	if !on {
		if err := os.Remove(marker); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("file store: release legal hold on %s: %w", name, err)
		}
		if _, err := os.Stat(dir); errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		return syncDir(dir)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("file store: legal hold on %s: %w", name, err)
	}
	f, err := os.OpenFile(marker, os.O_CREATE|os.O_WRONLY, 0o444)
	if err == nil {
		err = f.Sync()
		if cerr := f.Close(); err == nil {
			err = cerr
		}
	}
	if err != nil {
		return fmt.Errorf("file store: legal hold on %s: %w", name, err)
	}
	return syncDir(dir)
}

// Delete removes name unless a legal hold marker protects it. (The store
// cannot enforce retention; anyone with write access to the directory can
// remove files without it, which verify then reports.)
func (s *Store) Delete(ctx context.Context, name string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	p, err := s.path(name)
	if err != nil {
		return err
	}
	held, err := s.held(name)
	if err != nil {
		return err
	}
	if held {
		return fmt.Errorf("file store: delete %s: %w: under legal hold (%s)", name, ledger.ErrProtected, filepath.ToSlash(filepath.Join(holdDir, name)))
	}
	if err := os.Remove(p); errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("file store: delete %s: %w", name, ledger.ErrNotExist)
	} else if err != nil {
		return fmt.Errorf("file store: delete %s: %w", name, err)
	}
	return syncDir(filepath.Dir(p))
}
