package ledger

import (
	"encoding/binary"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/auditledger/auditledger/events"
)

// RecordVersion is the first byte of every record.
const RecordVersion = 0x01

// RecordHeaderSize is the fixed part of a record before the event bytes.
const RecordHeaderSize = 1 + 8 + 8 + 8

// MaxRecordSize bounds a record: the header plus the largest event.
const MaxRecordSize = RecordHeaderSize + events.MaxSize

// Record is one log entry. Its encoding (see docs/FORMAT.md) is what the
// leaf hash covers; verifiers hash the stored bytes, never a re-encoding.
//
//	offset  size  field
//	0       1     version, 0x01
//	1       8     index, uint64 big-endian
//	9       8     time the ledger sequenced it, int64 big-endian Unix nanoseconds
//	17      8     source: JetStream stream sequence of the event, 0 for direct appends
//	25      n     the event, JSON, exactly as accepted
type Record struct {
	Index  uint64
	Time   time.Time
	Source uint64
	Event  []byte
}

// AppendBinary appends the encoding of r to b.
func (r *Record) AppendBinary(b []byte) []byte {
	b = append(b, RecordVersion)
	b = binary.BigEndian.AppendUint64(b, r.Index)
	b = binary.BigEndian.AppendUint64(b, uint64(r.Time.UnixNano()))
	b = binary.BigEndian.AppendUint64(b, r.Source)
	return append(b, r.Event...)
}

// ParseRecord decodes a record. Event aliases b.
func ParseRecord(b []byte) (Record, error) {
	if len(b) < RecordHeaderSize+2 { // the smallest event is "{}"
		return Record{}, fmt.Errorf("%w: record is %d bytes, shorter than its header and an event", ErrMalformed, len(b))
	}
	if len(b) > MaxRecordSize {
		return Record{}, fmt.Errorf("%w: record is %d bytes, the limit is %d", ErrMalformed, len(b), MaxRecordSize)
	}
	if b[0] != RecordVersion {
		return Record{}, fmt.Errorf("%w: record version %#x, want %#x", ErrMalformed, b[0], RecordVersion)
	}
	return Record{
		Index:  binary.BigEndian.Uint64(b[1:]),
		Time:   time.Unix(0, int64(binary.BigEndian.Uint64(b[9:]))).UTC(),
		Source: binary.BigEndian.Uint64(b[17:]),
		Event:  b[RecordHeaderSize:],
	}, nil
}

// Object names inside a store. Zero padding makes lexical order index order.
const (
	SegmentPrefix    = "segments/"
	CheckpointPrefix = "checkpoints/"
	segmentSuffix    = ".seg"
)

// SegmentName is the object name of the segment whose first record is first.
func SegmentName(first uint64) string {
	return fmt.Sprintf("%s%020d%s", SegmentPrefix, first, segmentSuffix)
}

// CheckpointName is the object name of the checkpoint at tree size size.
func CheckpointName(size uint64) string {
	return fmt.Sprintf("%s%020d", CheckpointPrefix, size)
}

// parseObjectNumber extracts the number from a segment or checkpoint name.
func parseObjectNumber(name, prefix, suffix string) (uint64, bool) {
	s, ok := strings.CutPrefix(name, prefix)
	if !ok {
		return 0, false
	}
	s, ok = strings.CutSuffix(s, suffix)
	if !ok || len(s) != 20 {
		return 0, false
	}
	n, err := strconv.ParseUint(s, 10, 64)
	return n, err == nil
}
