package main

import (
	"errors"
	"fmt"
	"path/filepath"
	"strconv"

	"github.com/auditledger/auditledger/internal/dirlock"
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
	release, err = dirlock.Lock(filepath.Join(dir, lockFile))
	var inUse *dirlock.InUseError
	switch {
	case errors.As(err, &inUse):
		return nil, &DirInUseError{Dir: dir, PID: inUse.PID}
	case err != nil:
		return nil, fmt.Errorf("locking the data directory %s: %w", dir, err)
	}
	return release, nil
}
