package emitter

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"os"
	"path/filepath"
	"sync"
)

// spool is an append-only file of events waiting for the bus, drained in
// order. Each entry is length (u32) ‖ CRC-32C (u32) ‖ event bytes; the
// offset of the first undelivered entry is kept in a second file. Both are
// fsynced before anything is reported as spooled or delivered, so a crash
// loses nothing; a torn last entry (crash mid-append, never reported as
// spooled) is cut off on open.
type spool struct {
	mu      sync.Mutex
	f       *os.File
	posPath string
	pos     int64 // first undelivered entry
	end     int64 // end of the last complete entry
}

var crcTable = crc32.MakeTable(crc32.Castagnoli)

func openSpool(dir string) (*spool, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	f, err := os.OpenFile(filepath.Join(dir, "spool.log"), os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, err
	}
	s := &spool{f: f, posPath: filepath.Join(dir, "spool.pos")}
	if b, err := os.ReadFile(s.posPath); err == nil && len(b) == 8 {
		s.pos = int64(binary.BigEndian.Uint64(b))
	}
	if fi, err := f.Stat(); err != nil {
		return nil, err
	} else if s.pos > fi.Size() {
		s.pos = 0 // a crash between emptying the file and zeroing the position
	}
	// Find the end of the last complete entry.
	off := s.pos
	for {
		_, n, err := s.readAt(off)
		if err != nil {
			break
		}
		off += n
	}
	s.end = off
	if err := f.Truncate(s.end); err != nil {
		return nil, err
	}
	return s, nil
}

func (s *spool) readAt(off int64) ([]byte, int64, error) {
	var h [8]byte
	if _, err := s.f.ReadAt(h[:], off); err != nil {
		return nil, 0, err
	}
	n := binary.BigEndian.Uint32(h[:4])
	if n > 1<<20 {
		return nil, 0, errors.New("spool: entry length out of range")
	}
	data := make([]byte, n)
	if _, err := s.f.ReadAt(data, off+8); err != nil {
		return nil, 0, err
	}
	if crc32.Checksum(data, crcTable) != binary.BigEndian.Uint32(h[4:]) {
		return nil, 0, errors.New("spool: checksum mismatch")
	}
	return data, 8 + int64(n), nil
}

// append adds an event durably.
func (s *spool) append(data []byte) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	b := make([]byte, 8, 8+len(data))
	binary.BigEndian.PutUint32(b, uint32(len(data)))
	binary.BigEndian.PutUint32(b[4:], crc32.Checksum(data, crcTable))
	b = append(b, data...)
	if _, err := s.f.WriteAt(b, s.end); err != nil {
		return fmt.Errorf("spool: %w", err)
	}
	if err := s.f.Sync(); err != nil {
		return fmt.Errorf("spool: %w", err)
	}
	s.end += int64(len(b))
	return nil
}

// empty reports whether every spooled event was delivered.
func (s *spool) empty() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.pos >= s.end
}

// peek returns up to max undelivered events and the offset after them.
func (s *spool) peek(max int) ([][]byte, int64, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out [][]byte
	off := s.pos
	for off < s.end && len(out) < max {
		data, n, err := s.readAt(off)
		if err != nil {
			return nil, 0, err
		}
		out = append(out, data)
		off += n
	}
	return out, off, nil
}

// advance records that everything before off was delivered. When the
// spool is drained the file is emptied.
func (s *spool) advance(off int64) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if off >= s.end {
		// Drained: reset. Order matters for a crash in between: the
		// position is zeroed only after the file is.
		if err := s.f.Truncate(0); err != nil {
			return err
		}
		if err := s.f.Sync(); err != nil {
			return err
		}
		s.pos, s.end = 0, 0
		return writeFileSync(s.posPath, make([]byte, 8))
	}
	var b [8]byte
	binary.BigEndian.PutUint64(b[:], uint64(off))
	if err := writeFileSync(s.posPath, b[:]); err != nil {
		return err
	}
	s.pos = off
	return nil
}

func writeFileSync(path string, b []byte) error {
	tmp := path + ".tmp"
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return err
	}
	if _, err := f.Write(b); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

func (s *spool) close() error { return s.f.Close() }
