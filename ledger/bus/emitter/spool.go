package emitter

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// spool is an append-only file of events waiting for the bus, drained in
// order. The log file, spool.log, starts with a header naming its
// generation (magic ‖ generation u64 ‖ CRC-32C u32); each entry after it
// is length (u32) ‖ CRC-32C (u32) ‖ event bytes. The position of the first
// undelivered entry is kept in spool.pos with the generation of the log it
// refers to (generation u64 ‖ offset u64 ‖ CRC-32C u32). Both are fsynced
// before anything is reported as spooled or delivered, so a crash loses
// nothing.
//
// Opening recovers from damage rather than trusting the file: it reads
// every entry whose checksum holds, resynchronising past bytes that do not
// frame an entry (a flipped bit, a cut, a torn append, garbage), so one bad
// entry never costs the intact ones after it. Unreadable bytes are copied
// to a quarantine file and reported (SpoolDamage), never silently cut.
// Damage the drainer meets later is handled the same way.
//
// Recovery rewrites the log with the intact, undelivered entries under the
// next generation (one rename), then resets the position. The generation
// makes every crash point safe: a position for the previous generation is
// one whose log was rewritten from it on, so delivery starts at the first
// entry; a position for any other generation, or one that does not fall
// on an entry, is distrusted: delivery starts from the first entry, and
// the bus drops what it already stored by event id (its duplicate window).
// A log without a header (written before generations) is generation 0,
// with an 8-byte position file, and is rewritten on open.
type spool struct {
	mu      sync.Mutex
	f       *os.File
	dir     string
	posPath string
	gen     uint64
	pos     int64 // first undelivered entry
	end     int64 // end of the last complete entry
	damage  []SpoolDamage
	// resumed: the previous run crashed while rewriting the log, which
	// was then delivered from its first entry.
	resumed bool
	// journal: every event goes through the spool (Config.Journal). The
	// position is then kept on disk at most every journalPosEvery, and
	// the log emptied only once drained past journalRotate bytes: three
	// fsyncs each time the drainer caught up cost more than the journal
	// saves. A position that lags after a crash delivers some events
	// again; the bus, or the writer, keeps each once by its id.
	journal   bool
	persisted time.Time // when the position was last written
}

// The journal's bounds (spool.journal).
const (
	journalPosEvery = 200 * time.Millisecond
	journalRotate   = 16 << 20
)

// SpoolDamage is a region of the spool file that held no readable entry
// when the spool was opened or drained.
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

// The log's header. The magic's first byte is never that of an entry
// (whose length is below maxEntry), so a log from before generations is
// told apart.
const (
	logMagic = "ALSPOOL1"
	hdrSize  = 20
	posSize  = 20
)

func header(gen uint64) []byte {
	b := append([]byte(logMagic), make([]byte, 8)...)
	binary.BigEndian.PutUint64(b[8:], gen)
	return binary.BigEndian.AppendUint32(b, crc32.Checksum(b, crcTable))
}

// parseHeader reports the generation of the log b and the header's size:
// a log without a header is generation 0; ok is false for a header that
// is damaged.
func parseHeader(b []byte) (gen uint64, size int, ok bool) {
	if len(b) < len(logMagic) || string(b[:len(logMagic)]) != logMagic {
		return 0, 0, true
	}
	if len(b) < hdrSize || crc32.Checksum(b[:16], crcTable) != binary.BigEndian.Uint32(b[16:]) {
		return 0, 0, false
	}
	return binary.BigEndian.Uint64(b[8:]), hdrSize, true
}

func encodePos(gen uint64, pos int64) []byte {
	b := make([]byte, 16, posSize)
	binary.BigEndian.PutUint64(b, gen)
	binary.BigEndian.PutUint64(b[8:], uint64(pos))
	return binary.BigEndian.AppendUint32(b, crc32.Checksum(b, crcTable))
}

// parsePos reads a position file: ok is false if it is unreadable.
func parsePos(p []byte) (gen uint64, pos int64, ok bool) {
	switch {
	case len(p) == 8: // from before generations
		return 0, int64(binary.BigEndian.Uint64(p)), true
	case len(p) == posSize && crc32.Checksum(p[:16], crcTable) == binary.BigEndian.Uint32(p[16:]):
		return binary.BigEndian.Uint64(p), int64(binary.BigEndian.Uint64(p[8:])), true
	}
	return 0, 0, false
}

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

// scan finds the intact entries of b from off and the regions between them.
func scan(b []byte, off int) (frames, damaged []region) {
	for off < len(b) {
		if n, ok := frameAt(b, off); ok {
			frames = append(frames, region{off, n})
			off += n
			continue
		}
		start := off
		off = nextFrame(b, off+1)
		damaged = append(damaged, region{start, off - start})
	}
	return frames, damaged
}

// nextFrame is the offset of the first intact entry in b at or after off,
// or len(b).
func nextFrame(b []byte, off int) int {
	for ; off < len(b); off++ {
		if _, ok := frameAt(b, off); ok {
			return off
		}
	}
	return len(b)
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
	s := &spool{f: f, dir: dir, posPath: filepath.Join(dir, "spool.pos")}
	b, err := os.ReadFile(path)
	if err != nil {
		f.Close()
		return nil, err
	}
	logGen, hdr, hdrOK := parseHeader(b)
	var posGen uint64
	var pos int64
	posFound, posOK, posCurrent := false, true, false
	if p, err := os.ReadFile(s.posPath); err == nil {
		posGen, pos, posOK = parsePos(p)
		posFound, posCurrent = posOK, posOK && len(p) == posSize
	} else if !errors.Is(err, os.ErrNotExist) {
		posOK = false // unreadable: deliver everything
	}
	stored := pos
	// A damaged header is scanned as damage like any other bytes.
	frames, damaged := scan(b, hdr)
	if !hdrOK {
		posOK = false // which generation the position refers to is unknown
	}
	switch {
	case !posFound:
		pos = int64(hdr) // nothing delivered yet
	case posGen+1 == logGen && hdrOK:
		// A crash after the log was rewritten from the position on, and
		// before the position was reset: its first entry is next.
		pos, s.resumed = int64(hdr), true
	case posGen != logGen:
		posOK = false
	case pos > int64(len(b)) && len(frames) == 0:
		pos = int64(hdr) // a crash between emptying the log and resetting the position
	case pos == int64(hdr) && hdr > 0, pos == 0 && hdr == 0, pos == int64(len(b)):
	default:
		// The position must fall on an entry; otherwise it is damaged and
		// nothing it says is trusted.
		on := false
		for _, fr := range frames {
			on = on || int64(fr.off) == pos
		}
		posOK = posOK && on
	}
	if !posOK {
		s.damage = append(s.damage, SpoolDamage{Offset: -1, Quarantine: s.posPath})
		pos = int64(hdr)
	}
	if posOK {
		// Bytes before the position held entries already delivered:
		// whatever became of them loses nothing, and the log is emptied
		// once drained.
		damaged = slices.DeleteFunc(damaged, func(d region) bool { return int64(d.off+d.n) <= pos })
	}
	if len(damaged) == 0 && posOK && hdr > 0 {
		s.gen, s.pos, s.end = logGen, pos, int64(len(b))
		if !posCurrent || posGen != logGen || pos != stored {
			if err := writeFileSync(s.posPath, encodePos(s.gen, s.pos)); err != nil {
				f.Close()
				return nil, fmt.Errorf("spool: resetting %s: %w", s.posPath, err)
			}
		}
		return s, nil
	}
	// Keep what cannot be read, then rewrite the log under the next
	// generation with the intact, undelivered entries only.
	stamp := time.Now().UTC().Format("20060102T150405.000000000")
	for i, d := range damaged {
		q := filepath.Join(dir, fmt.Sprintf("spool.damaged.%s.%d", stamp, i))
		if err := writeFileSync(q, b[d.off:d.off+d.n]); err != nil {
			f.Close()
			return nil, fmt.Errorf("spool: quarantining %d unreadable bytes at offset %d: %w", d.n, d.off, err)
		}
		s.damage = append(s.damage, SpoolDamage{Offset: int64(d.off), Length: int64(d.n), Quarantine: q, Tail: d.off+d.n == len(b)})
	}
	crashPoint("quarantined")
	s.gen = max(logGen, posGen) + 1
	keep := header(s.gen)
	for _, fr := range frames {
		if int64(fr.off) >= pos {
			keep = append(keep, b[fr.off:fr.off+fr.n]...)
		}
	}
	if err := writeFileSync(path, keep); err != nil {
		f.Close()
		return nil, fmt.Errorf("spool: rewriting %s: %w", path, err)
	}
	crashPoint("log-renamed")
	if err := writeFileSync(s.posPath, encodePos(s.gen, hdrSize)); err != nil {
		f.Close()
		return nil, fmt.Errorf("spool: resetting %s: %w", s.posPath, err)
	}
	crashPoint("pos-reset")
	f.Close()
	if s.f, err = os.OpenFile(path, os.O_RDWR, 0o600); err != nil {
		return nil, err
	}
	s.pos, s.end = hdrSize, int64(len(keep))
	return s, nil
}

// errUnreadable: the bytes at an offset do not frame an intact entry.
var errUnreadable = errors.New("spool: no intact entry")

func (s *spool) readAt(off int64) ([]byte, int64, error) {
	var h [8]byte
	if _, err := s.f.ReadAt(h[:], off); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, 0, fmt.Errorf("%w: cut short", errUnreadable)
		}
		return nil, 0, err
	}
	n := binary.BigEndian.Uint32(h[:4])
	if n < 2 || n > maxEntry || off+8+int64(n) > s.end {
		return nil, 0, fmt.Errorf("%w: entry length %d out of range", errUnreadable, n)
	}
	data := make([]byte, n)
	if _, err := s.f.ReadAt(data, off+8); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, 0, fmt.Errorf("%w: cut short", errUnreadable)
		}
		return nil, 0, err
	}
	if data[0] != '{' || crc32.Checksum(data, crcTable) != binary.BigEndian.Uint32(h[4:]) {
		return nil, 0, fmt.Errorf("%w: checksum mismatch", errUnreadable)
	}
	return data, 8 + int64(n), nil
}

// append adds an event durably.
func (s *spool) append(data []byte) error { return s.appendAll([][]byte{data}) }

// appendAll adds events durably, in order, with one write and one fsync
// (a group commit): when it returns nil every one of them is on disk.
func (s *spool) appendAll(datas [][]byte) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for _, d := range datas {
		n += 8 + len(d)
	}
	b := make([]byte, 0, n)
	for _, data := range datas {
		b = binary.BigEndian.AppendUint32(b, uint32(len(data)))
		b = binary.BigEndian.AppendUint32(b, crc32.Checksum(data, crcTable))
		b = append(b, data...)
	}
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

// entry is one spooled event and where it is in the log.
type entry struct {
	off  int64
	data []byte
}

// peek returns up to max undelivered entries, in order, and the offset
// after them. It stops before bytes that hold no intact entry: bad is
// their offset, or -1. err is an error reading the file.
func (s *spool) peek(max int) (out []entry, next, bad int64, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	off := s.pos
	for off < s.end && len(out) < max {
		data, n, err := s.readAt(off)
		if errors.Is(err, errUnreadable) {
			return out, off, off, nil
		}
		if err != nil {
			return nil, 0, -1, fmt.Errorf("spool: reading offset %d: %w", off, err)
		}
		out = append(out, entry{off, data})
		off += n
	}
	return out, off, -1, nil
}

// skip quarantines the bytes at off that hold no intact entry — n of
// them, or up to the next intact entry if n is 0 — and moves the position
// past them, as opening the spool would. off must be the position.
func (s *spool) skip(off, n int64) (SpoolDamage, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if off != s.pos {
		return SpoolDamage{}, fmt.Errorf("spool: skipping from offset %d, not the position %d", off, s.pos)
	}
	b := make([]byte, s.end-off)
	k, err := s.f.ReadAt(b, off)
	if err != nil && !errors.Is(err, io.EOF) {
		return SpoolDamage{}, fmt.Errorf("spool: reading the damage at offset %d: %w", off, err)
	}
	b = b[:k]
	if n == 0 {
		n = int64(nextFrame(b, 1)) // len(b) if no intact entry follows
	}
	to := off + n
	if n >= int64(len(b)) {
		to = s.end // and past whatever of a log cut short is missing
	}
	d := SpoolDamage{Offset: off, Length: to - off, Tail: to == s.end,
		Quarantine: filepath.Join(s.dir, fmt.Sprintf("spool.damaged.%s.at%d", time.Now().UTC().Format("20060102T150405.000000000"), off))}
	if err := writeFileSync(d.Quarantine, b[:min(int64(len(b)), n)]); err != nil {
		return SpoolDamage{}, fmt.Errorf("spool: quarantining %d unreadable bytes at offset %d: %w", d.Length, off, err)
	}
	crashPoint("damage-quarantined")
	if err := s.advanceLocked(to); err != nil {
		return SpoolDamage{}, err
	}
	s.damage = append(s.damage, d)
	return d, nil
}

// damaged lists the damage found so far.
func (s *spool) damaged() []SpoolDamage {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.damage)
}

// advance records that everything before off was delivered. When the
// spool is drained the log is emptied, keeping its header.
func (s *spool) advance(off int64) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.advanceLocked(off)
}

func (s *spool) advanceLocked(off int64) error {
	if s.journal && (off < s.end || s.end < journalRotate) {
		s.pos = off
		if time.Since(s.persisted) < journalPosEvery {
			return nil
		}
		s.persisted = time.Now()
		if err := writeFileSync(s.posPath, encodePos(s.gen, off)); err != nil {
			return fmt.Errorf("spool: %w", err)
		}
		return nil
	}
	if off >= s.end {
		// Drained: reset. Order matters for a crash in between: the
		// position is reset only after the log is emptied, and a position
		// past the end of an empty log is a reset cut short.
		if err := s.f.Truncate(hdrSize); err != nil {
			return fmt.Errorf("spool: %w", err)
		}
		if err := s.f.Sync(); err != nil {
			return fmt.Errorf("spool: %w", err)
		}
		crashPoint("emptied")
		if err := writeFileSync(s.posPath, encodePos(s.gen, hdrSize)); err != nil {
			return fmt.Errorf("spool: %w", err)
		}
		s.pos, s.end = hdrSize, hdrSize
		return nil
	}
	if err := writeFileSync(s.posPath, encodePos(s.gen, off)); err != nil {
		return fmt.Errorf("spool: %w", err)
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
	if err := os.Rename(tmp, path); err != nil {
		return err
	}
	// The rename must be durable before the next step (the position
	// after the log): sync the directory.
	d, err := os.Open(filepath.Dir(path))
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

func (s *spool) close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.journal {
		// Where delivery stands, so a clean restart delivers nothing
		// twice.
		if err := writeFileSync(s.posPath, encodePos(s.gen, s.pos)); err != nil {
			s.f.Close()
			return fmt.Errorf("spool: %w", err)
		}
	}
	return s.f.Close()
}

// crashHook, set by tests only, is called at named steps of recovery and
// draining, where a crash must lose nothing.
var crashHook atomic.Pointer[func(step string)]

func crashPoint(step string) {
	if f := crashHook.Load(); f != nil {
		(*f)(step)
	}
}
