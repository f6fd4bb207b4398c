package emitter

import "fmt"

// CrashAt makes the spool panic with Crash at the named step (as a
// process killed there would stop), until it is called again; "" clears
// it. Steps: see crashPoint's callers.
func CrashAt(step string) {
	if step == "" {
		crashHook.Store(nil)
		return
	}
	f := func(s string) {
		if s == step {
			panic(Crash{Step: s})
		}
	}
	crashHook.Store(&f)
}

// Crash is what CrashAt panics with.
type Crash struct{ Step string }

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
