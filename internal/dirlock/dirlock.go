// Package dirlock takes a directory's exclusive lock for one process: a
// flock on a lock file that holds the holder's PID. The kernel drops the
// lock when the process dies, so a killed process leaves no stale lock,
// only the file, which the next holder reuses. dev's data directory, the
// writer's index and a gateway's state directory are each locked this
// way.
package dirlock

import (
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"syscall"
)

// InUseError says that another process holds the lock.
type InUseError struct {
	Path string // the lock file
	PID  int    // the holder's, as it wrote it; 0 if unreadable
}

func (e *InUseError) Error() string {
	return fmt.Sprintf("%s is held by another process (pid %d)", e.Path, e.PID)
}

// Lock takes the exclusive lock on the file at path (created if need be)
// and writes this process's PID into it. release gives it up; so does the
// process's end. A lock another process holds is an *InUseError.
func Lock(path string) (release func(), err error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, err
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		b := make([]byte, 32)
		n, _ := f.ReadAt(b, 0)
		f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			pid, _ := strconv.Atoi(strings.TrimSpace(string(b[:n])))
			return nil, &InUseError{Path: path, PID: pid}
		}
		return nil, fmt.Errorf("locking %s: %w", path, err)
	}
	if err := f.Truncate(0); err == nil {
		f.WriteAt([]byte(strconv.Itoa(os.Getpid())+"\n"), 0)
	}
	return func() { f.Close() }, nil
}
