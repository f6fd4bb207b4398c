package ledger

import (
	"bytes"
	"encoding/binary"
	"fmt"
)

// Segment layout (all integers big-endian; see docs/FORMAT.md):
//
//	header   "AUDLSEG1" | first index u64 | count u32 | chain before first (32)
//	records  count × ( length u32 | record bytes )
//	trailer  chain after last (32) | tree root at size first+count (32) | "AUDLEND1"
//
// Every header and trailer field is recomputed by a verifier from the
// records and the previous segment, so no byte of a segment goes unchecked.
var (
	segmentMagic = []byte("AUDLSEG1")
	segmentEnd   = []byte("AUDLEND1")
)

const (
	segmentHeaderSize  = 8 + 8 + 4 + HashSize
	segmentTrailerSize = 2*HashSize + 8
	// MaxSegmentRecords bounds the record count of one segment.
	MaxSegmentRecords = 1 << 24
)

// Segment is a parsed segment. Records alias the parsed buffer.
type Segment struct {
	First     uint64
	PrevChain Hash
	Records   [][]byte
	Chain     Hash // chain value after the last record
	Root      Hash // tree root at size First+len(Records)
}

// End is the index after the last record, which is the tree size once the
// segment is sealed.
func (s *Segment) End() uint64 { return s.First + uint64(len(s.Records)) }

// Encode serializes s.
func (s *Segment) Encode() []byte {
	n := segmentHeaderSize + segmentTrailerSize
	for _, r := range s.Records {
		n += 4 + len(r)
	}
	b := make([]byte, 0, n)
	b = append(b, segmentMagic...)
	b = binary.BigEndian.AppendUint64(b, s.First)
	b = binary.BigEndian.AppendUint32(b, uint32(len(s.Records)))
	b = append(b, s.PrevChain[:]...)
	for _, r := range s.Records {
		b = binary.BigEndian.AppendUint32(b, uint32(len(r)))
		b = append(b, r...)
	}
	return s.appendTrailer(b)
}

// encodeRecords lays out a segment's header and records in one buffer with
// room for the trailer, so sealing copies each event once. The returned
// segment's Records alias the buffer; finish it with appendTrailer.
func encodeRecords(first uint64, prev Hash, recs []Record) (*Segment, []byte) {
	n := segmentHeaderSize + segmentTrailerSize
	for i := range recs {
		n += 4 + recs[i].size()
	}
	b := make([]byte, 0, n)
	b = append(b, segmentMagic...)
	b = binary.BigEndian.AppendUint64(b, first)
	b = binary.BigEndian.AppendUint32(b, uint32(len(recs)))
	b = append(b, prev[:]...)
	seg := &Segment{First: first, PrevChain: prev, Records: make([][]byte, len(recs))}
	for i := range recs {
		b = binary.BigEndian.AppendUint32(b, uint32(recs[i].size()))
		start := len(b)
		b = recs[i].AppendBinary(b)
		seg.Records[i] = b[start:len(b):len(b)]
	}
	return seg, b
}

// appendTrailer completes a buffer from encodeRecords.
func (s *Segment) appendTrailer(b []byte) []byte {
	b = append(b, s.Chain[:]...)
	b = append(b, s.Root[:]...)
	return append(b, segmentEnd...)
}

// SegmentFormatError locates a structural defect in a segment.
type SegmentFormatError struct {
	Offset int
	Reason string
}

func (e *SegmentFormatError) Error() string {
	return fmt.Sprintf("byte %d: %s", e.Offset, e.Reason)
}

func (e *SegmentFormatError) Unwrap() error { return ErrMalformed }

// ParseSegment checks the framing of a segment and splits it into records.
// It does not hash anything; Verify and Open check the contents.
func ParseSegment(b []byte) (*Segment, error) {
	bad := func(off int, format string, args ...any) error {
		return &SegmentFormatError{Offset: off, Reason: fmt.Sprintf(format, args...)}
	}
	if len(b) < segmentHeaderSize+segmentTrailerSize {
		return nil, bad(len(b), "segment truncated: %d bytes, shorter than header and trailer", len(b))
	}
	if !bytes.Equal(b[:8], segmentMagic) {
		return nil, bad(0, "magic %q, want %q", b[:8], segmentMagic)
	}
	s := &Segment{First: binary.BigEndian.Uint64(b[8:])}
	count := binary.BigEndian.Uint32(b[16:])
	if count == 0 || count > MaxSegmentRecords {
		return nil, bad(16, "record count %d out of range 1..%d", count, MaxSegmentRecords)
	}
	copy(s.PrevChain[:], b[20:])
	s.Records = make([][]byte, 0, count)
	off := segmentHeaderSize
	end := len(b) - segmentTrailerSize
	for i := uint32(0); i < count; i++ {
		if off+4 > end {
			return nil, bad(off, "segment truncated: record %d of %d (index %d) missing", i+1, count, s.First+uint64(i))
		}
		n := int(binary.BigEndian.Uint32(b[off:]))
		if n > MaxRecordSize || off+4+n > end {
			return nil, bad(off, "record %d of %d (index %d): length %d runs past the records area (segment truncated or corrupt)", i+1, count, s.First+uint64(i), n)
		}
		s.Records = append(s.Records, b[off+4:off+4+n:off+4+n])
		off += 4 + n
	}
	if off != end {
		return nil, bad(off, "%d unexpected bytes after record %d", end-off, count)
	}
	copy(s.Chain[:], b[end:])
	copy(s.Root[:], b[end+HashSize:])
	if !bytes.Equal(b[end+2*HashSize:], segmentEnd) {
		return nil, bad(end+2*HashSize, "end marker %q, want %q (segment truncated?)", b[end+2*HashSize:], segmentEnd)
	}
	return s, nil
}
