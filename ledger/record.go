package ledger

import (
	"encoding/binary"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/auditledger/auditledger/events"
)

// Record versions: the first byte of every record.
const (
	// RecordVersion is a record without a producer signature.
	RecordVersion = 0x01
	// RecordVersionSigned carries the producer's signature of the event.
	RecordVersionSigned = 0x02
)

// RecordHeaderSize is the fixed part of a version-1 record before the
// event bytes; RecordSignedHeaderSize that of a version-2 record.
const (
	RecordHeaderSize       = 1 + 8 + 8 + 8
	RecordSignedHeaderSize = RecordHeaderSize + ProducerSigSize
)

// MaxRecordSize bounds a record: the larger header plus the largest event.
const MaxRecordSize = RecordSignedHeaderSize + events.MaxSize

// Record is one log entry. Its encoding (see docs/FORMAT.md) is what the
// leaf hash covers; verifiers hash the stored bytes, never a re-encoding.
//
//	offset  size  field
//	0       1     version, 0x01 (or 0x02: signed)
//	1       8     index, uint64 big-endian
//	9       8     time the ledger sequenced it, int64 big-endian Unix nanoseconds
//	17      8     source: JetStream stream sequence of the event, 0 for direct appends
//	25      68    version 0x02 only: the producer's signature (ProducerSig)
//	25|93   n     the event, JSON, exactly as accepted
type Record struct {
	Index  uint64
	Time   time.Time
	Source uint64
	// Producer is the producer's signature of Event, nil for an unsigned
	// (version 1) record.
	Producer *ProducerSig
	Event    []byte
}

// size is the encoded length of r.
func (r *Record) size() int {
	if r.Producer != nil {
		return RecordSignedHeaderSize + len(r.Event)
	}
	return RecordHeaderSize + len(r.Event)
}

// AppendBinary appends the encoding of r to b.
func (r *Record) AppendBinary(b []byte) []byte {
	v := byte(RecordVersion)
	if r.Producer != nil {
		v = RecordVersionSigned
	}
	b = append(b, v)
	b = binary.BigEndian.AppendUint64(b, r.Index)
	b = binary.BigEndian.AppendUint64(b, uint64(r.Time.UnixNano()))
	b = binary.BigEndian.AppendUint64(b, r.Source)
	if r.Producer != nil {
		b = r.Producer.appendBinary(b)
	}
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
	r := Record{
		Index:  binary.BigEndian.Uint64(b[1:]),
		Time:   time.Unix(0, int64(binary.BigEndian.Uint64(b[9:]))).UTC(),
		Source: binary.BigEndian.Uint64(b[17:]),
	}
	switch b[0] {
	case RecordVersion:
		r.Event = b[RecordHeaderSize:]
	case RecordVersionSigned:
		if len(b) < RecordSignedHeaderSize+2 {
			return Record{}, fmt.Errorf("%w: signed record is %d bytes, shorter than its header and an event", ErrMalformed, len(b))
		}
		r.Producer = parseProducerSig(b[RecordHeaderSize:RecordSignedHeaderSize])
		r.Event = b[RecordSignedHeaderSize:]
	default:
		return Record{}, fmt.Errorf("%w: record version %#x, want %#x or %#x", ErrMalformed, b[0], RecordVersion, RecordVersionSigned)
	}
	return r, nil
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
