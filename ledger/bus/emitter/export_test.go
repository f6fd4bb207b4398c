package emitter

import (
	"fmt"
	"runtime"
	"sync/atomic"
)

// CrashAt stops the goroutine that reaches the named step of the spool
// (runtime.Goexit), as a process killed there would stop, and records the
// step for Crashed; "" clears it. Steps: see crashPoint's callers.
func CrashAt(step string) {
	if step == "" {
		crashHook.Store(nil)
		return
	}
	crashed.Store(nil)
	f := func(s string) {
		if s == step {
			crashed.Store(&s)
			runtime.Goexit()
		}
	}
	crashHook.Store(&f)
}

var crashed atomic.Pointer[string]

// Crashed is the step CrashAt stopped a goroutine at, or "".
func Crashed() string {
	if s := crashed.Load(); s != nil {
		return *s
	}
	return ""
}

// SpoolEntries lists the offsets of the intact entries in dir's spool.
func SpoolEntries(dir string) ([]int64, string, error) {
	s, err := openSpool(dir)
	if err != nil {
		return nil, "", err
	}
	defer s.close()
	var offs []int64
	for off := s.pos; off < s.end; {
		_, n, err := s.readAt(off)
		if err != nil {
			return nil, "", fmt.Errorf("entry at %d: %w", off, err)
		}
		offs = append(offs, off)
		off += n
	}
	return offs, s.f.Name(), nil
}

// SpoolDelivered marks the first n entries of dir's spool delivered, as
// the drainer does once the bus has stored them.
func SpoolDelivered(dir string, n int) error {
	s, err := openSpool(dir)
	if err != nil {
		return err
	}
	defer s.close()
	_, next, _, err := s.peek(n)
	if err != nil {
		return err
	}
	return s.advance(next)
}
