package main

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
)

// lockFile is the name of a data directory's lock file.
const lockFile = "auditledger.lock"

// DirInUseError says that another process holds a directory's lock.
type DirInUseError struct {
	Dir string
	PID int // the holder's, as it wrote it; 0 if unreadable
}

func (e *DirInUseError) Error() string {
	who := "another process"
	if e.PID > 0 {
		who = "another auditledger (pid " + strconv.Itoa(e.PID) + ")"
	}
	return fmt.Sprintf("the data directory %s is in use by %s: stop that one, or give another directory", e.Dir, who)
}

// lockDir takes dir's exclusive lock (flock on DIR/auditledger.lock, which
// holds the holder's PID) for as long as the process runs, or until
// release is called. The kernel drops the lock when the process dies, so a
// killed dev leaves no stale lock behind: only the file, which the next
// one reuses.
func lockDir(dir string) (release func(), err error) {
	path := filepath.Join(dir, lockFile)
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("locking the data directory: %w", err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		b := make([]byte, 32)
		n, _ := f.ReadAt(b, 0)
		f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			pid, _ := strconv.Atoi(strings.TrimSpace(string(b[:n])))
			return nil, &DirInUseError{Dir: dir, PID: pid}
		}
		return nil, fmt.Errorf("locking the data directory %s: %w", dir, err)
	}
	if err := f.Truncate(0); err == nil {
		f.WriteAt([]byte(strconv.Itoa(os.Getpid())+"\n"), 0)
	}
	return func() { f.Close() }, nil
}
