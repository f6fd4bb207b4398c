package emitter

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"os"
	"path/filepath"
	"sync"
	"time"
)

// spool is an append-only file of events waiting for the bus, drained in
// order. Each entry is length (u32) ‖ CRC-32C (u32) ‖ event bytes; the
// offset of the first undelivered entry is kept in a second file. Both are
// fsynced before anything is reported as spooled or delivered, so a crash
// loses nothing.
//
// Opening recovers from damage rather than trusting the file: it reads
// every entry whose checksum holds, resynchronising past bytes that do not
// frame an entry (a flipped bit, a cut, a torn append, garbage), so one bad
// entry never costs the intact ones after it. Unreadable bytes are copied
// to a quarantine file and reported (SpoolDamage), never silently cut. A
// position that does not fall on an entry is distrusted: delivery starts
// from the first entry, and the bus drops what it already stored by event
// id (its duplicate window).
type spool struct {
	mu      sync.Mutex
	f       *os.File
	posPath string
	pos     int64 // first undelivered entry
	end     int64 // end of the last complete entry
	damage  []SpoolDamage
}

// SpoolDamage is a region of the spool file that held no readable entry
// when the spool was opened.
type SpoolDamage struct {
	Offset, Length int64
	// Quarantine is the file the region's bytes were copied to.
	Quarantine string
	// Tail is set for a region at the end of the file: possibly an append
	// cut short by a crash, which was then never reported as spooled.
	Tail bool
}

func (d SpoolDamage) String() string {
	what := "unreadable bytes"
	if d.Tail {
		what = "unreadable bytes at the end (an append cut short by a crash, or damage)"
	}
	return fmt.Sprintf("%s at offset %d, %d bytes, kept in %s", what, d.Offset, d.Length, d.Quarantine)
}

var crcTable = crc32.MakeTable(crc32.Castagnoli)

// maxEntry bounds an entry; events are far smaller.
const maxEntry = 1 << 20

// frameAt reports the size of the intact entry at off in b, if there is one.
func frameAt(b []byte, off int) (int, bool) {
	if off+8 > len(b) {
		return 0, false
	}
	n := int(binary.BigEndian.Uint32(b[off:]))
	if n < 2 || n > maxEntry || off+8+n > len(b) || b[off+8] != '{' {
		return 0, false
	}
	if crc32.Checksum(b[off+8:off+8+n], crcTable) != binary.BigEndian.Uint32(b[off+4:]) {
		return 0, false
	}
	return 8 + n, true
}

type region struct{ off, n int }

// scan finds the intact entries of b and the regions between them.
func scan(b []byte) (frames, damaged []region) {
	for off := 0; off < len(b); {
		if n, ok := frameAt(b, off); ok {
			frames = append(frames, region{off, n})
			off += n
			continue
		}
		start := off
		for off++; off < len(b); off++ {
			if _, ok := frameAt(b, off); ok {
				break
			}
		}
		damaged = append(damaged, region{start, off - start})
	}
	return frames, damaged
}

func openSpool(dir string) (*spool, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	path := filepath.Join(dir, "spool.log")
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, err
	}
	s := &spool{f: f, posPath: filepath.Join(dir, "spool.pos")}
	b, err := os.ReadFile(path)
	if err != nil {
		f.Close()
		return nil, err
	}
	var pos int64
	posOK := true
	if p, err := os.ReadFile(s.posPath); err == nil && len(p) == 8 {
		pos = int64(binary.BigEndian.Uint64(p))
	} else if err == nil || !errors.Is(err, os.ErrNotExist) {
		posOK = false // unreadable: deliver everything
	}
	frames, damaged := scan(b)
	// The position must fall on an entry (or the end after a complete
	// drain); otherwise it is damaged and nothing it says is trusted.
	if posOK && pos != 0 && pos != int64(len(b)) {
		posOK = false
		for _, fr := range frames {
			if int64(fr.off) == pos {
				posOK = true
				break
			}
		}
	}
	if pos > int64(len(b)) {
		pos, posOK = 0, true // a crash between emptying the file and zeroing the position
	}
	if !posOK {
		s.damage = append(s.damage, SpoolDamage{Offset: -1, Quarantine: s.posPath})
		pos = 0
	}
	if len(damaged) == 0 && posOK {
		s.pos, s.end = pos, int64(len(b))
		return s, nil
	}
	// Keep what cannot be read, then rewrite the spool with the intact,
	// undelivered entries only.
	stamp := time.Now().UTC().Format("20060102T150405.000000000")
	for i, d := range damaged {
		q := filepath.Join(dir, fmt.Sprintf("spool.damaged.%s.%d", stamp, i))
		if err := writeFileSync(q, b[d.off:d.off+d.n]); err != nil {
			f.Close()
			return nil, fmt.Errorf("spool: quarantining %d unreadable bytes at offset %d: %w", d.n, d.off, err)
		}
		s.damage = append(s.damage, SpoolDamage{Offset: int64(d.off), Length: int64(d.n), Quarantine: q, Tail: d.off+d.n == len(b)})
	}
	var keep []byte
	for _, fr := range frames {
		if int64(fr.off) >= pos {
			keep = append(keep, b[fr.off:fr.off+fr.n]...)
		}
	}
	if err := writeFileSync(path, keep); err != nil {
		f.Close()
		return nil, fmt.Errorf("spool: rewriting %s: %w", path, err)
	}
	if err := writeFileSync(s.posPath, make([]byte, 8)); err != nil {
		f.Close()
		return nil, err
	}
	f.Close()
	if s.f, err = os.OpenFile(path, os.O_RDWR, 0o600); err != nil {
		return nil, err
	}
	s.pos, s.end = 0, int64(len(keep))
	return s, nil
}

func (s *spool) readAt(off int64) ([]byte, int64, error) {
	var h [8]byte
	if _, err := s.f.ReadAt(h[:], off); err != nil {
		return nil, 0, err
	}
	n := binary.BigEndian.Uint32(h[:4])
	if n > maxEntry {
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
