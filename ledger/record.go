package ledger

import (
	"crypto/sha256"
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
	// RecordVersionBound is a tenant-bound record: its leaf covers the
	// header, the hash of the event's tenant and the event's digest, and
	// the event follows outside the leaf's input — so the record can be
	// shown without its event (redacted) and still hash to its leaf, and a
	// reader can tell one tenant's records from the others' without seeing
	// them (docs/FORMAT.md §2.4). What the writer seals.
	RecordVersionBound = 0x03
	// RecordVersionBoundSigned is a tenant-bound record with the
	// producer's signature of the event.
	RecordVersionBoundSigned = 0x04
)

// RecordHeaderSize is the fixed part of a version-1 record before the
// event bytes; RecordSignedHeaderSize that of a version-2 record.
const (
	RecordHeaderSize       = 1 + 8 + 8 + 8
	RecordSignedHeaderSize = RecordHeaderSize + ProducerSigSize
	// boundSize is what a bound record adds: tenant hash and event digest.
	boundSize = 2 * HashSize
)

// MaxRecordSize bounds a record: the largest header plus the largest event.
const MaxRecordSize = RecordSignedHeaderSize + boundSize + events.MaxSize

// Record is one log entry. Its encoding (see docs/FORMAT.md) is what the
// leaf hash covers — all of it for versions 1 and 2, all but the event for
// the bound versions 3 and 4; verifiers hash the stored bytes, never a
// re-encoding.
//
//	offset  size  field
//	0       1     version, 0x01 (0x02: signed; 0x03: bound; 0x04: bound and signed)
//	1       8     index, uint64 big-endian
//	9       8     time the ledger sequenced it, int64 big-endian Unix nanoseconds
//	17      8     source: JetStream stream sequence of the event, 0 for direct appends
//	25      68    versions 0x02 and 0x04 only: the producer's signature (ProducerSig)
//	        32    versions 0x03 and 0x04 only: TenantHash(the event's tenant)
//	        32    versions 0x03 and 0x04 only: SHA-256 of the event bytes
//	        n     the event, JSON, exactly as accepted (absent from a redacted bound record)
type Record struct {
	Index  uint64
	Time   time.Time
	Source uint64
	// Producer is the producer's signature of Event, nil for an unsigned
	// record.
	Producer *ProducerSig
	// Bound makes a version 3 (or 4) record: Tenant and Digest are in its
	// leaf, the event is not.
	Bound bool
	// Tenant is TenantHash of the event's tenant (bound records).
	Tenant Hash
	// Digest is SHA-256 of the event (bound records; AppendBinary computes
	// it from Event).
	Digest Hash
	// Event is nil in a redacted bound record.
	Event []byte
}

// TenantHash is what a bound record holds for its event's tenant:
// SHA-256("auditledger tenant\x00" ‖ tenant). A reader who knows a tenant's
// name recognises its records; names of the others are not shown (though
// a short list of guesses can be tried against them).
func TenantHash(tenant string) Hash {
	h := sha256.New()
	h.Write([]byte("auditledger tenant\x00"))
	h.Write([]byte(tenant))
	var out Hash
	h.Sum(out[:0])
	return out
}

// Redacted reports whether r is a bound record shown without its event.
func (r *Record) Redacted() bool { return r.Bound && r.Event == nil }

// headerSize is the length of everything before the event.
func (r *Record) headerSize() int {
	n := RecordHeaderSize
	if r.Producer != nil {
		n = RecordSignedHeaderSize
	}
	if r.Bound {
		n += boundSize
	}
	return n
}

// size is the encoded length of r.
func (r *Record) size() int { return r.headerSize() + len(r.Event) }

// AppendBinary appends the encoding of r to b.
func (r *Record) AppendBinary(b []byte) []byte {
	v := byte(RecordVersion)
	switch {
	case r.Bound && r.Producer != nil:
		v = RecordVersionBoundSigned
	case r.Bound:
		v = RecordVersionBound
	case r.Producer != nil:
		v = RecordVersionSigned
	}
	b = append(b, v)
	b = binary.BigEndian.AppendUint64(b, r.Index)
	b = binary.BigEndian.AppendUint64(b, uint64(r.Time.UnixNano()))
	b = binary.BigEndian.AppendUint64(b, r.Source)
	if r.Producer != nil {
		b = r.Producer.appendBinary(b)
	}
	if r.Bound {
		b = append(b, r.Tenant[:]...)
		if r.Event != nil {
			r.Digest = sha256.Sum256(r.Event)
		}
		b = append(b, r.Digest[:]...)
	}
	return append(b, r.Event...)
}

// ParseRecord decodes a record. Event aliases b. A bound record whose
// event does not match its digest is malformed; one without its event is
// a redacted record (Redacted).
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
	v := b[0]
	if v < RecordVersion || v > RecordVersionBoundSigned {
		return Record{}, fmt.Errorf("%w: record version %#x, want %#x to %#x", ErrMalformed, v, RecordVersion, RecordVersionBoundSigned)
	}
	r.Bound = v == RecordVersionBound || v == RecordVersionBoundSigned
	rest := b[RecordHeaderSize:]
	if v == RecordVersionSigned || v == RecordVersionBoundSigned {
		if len(rest) < ProducerSigSize {
			return Record{}, fmt.Errorf("%w: signed record is %d bytes, shorter than its header", ErrMalformed, len(b))
		}
		r.Producer = parseProducerSig(rest[:ProducerSigSize])
		rest = rest[ProducerSigSize:]
	}
	if !r.Bound {
		if len(rest) < 2 {
			return Record{}, fmt.Errorf("%w: record is %d bytes, shorter than its header and an event", ErrMalformed, len(b))
		}
		if len(rest) > events.MaxSize {
			return Record{}, fmt.Errorf("%w: record %d: an event of %d bytes, the limit is %d", ErrMalformed, r.Index, len(rest), events.MaxSize)
		}
		r.Event = rest
		return r, nil
	}
	if len(rest) < boundSize {
		return Record{}, fmt.Errorf("%w: bound record is %d bytes, shorter than its header", ErrMalformed, len(b))
	}
	copy(r.Tenant[:], rest)
	copy(r.Digest[:], rest[HashSize:])
	rest = rest[boundSize:]
	switch {
	case len(rest) == 0:
		// redacted: the leaf's input alone
	case len(rest) < 2 || len(rest) > events.MaxSize:
		return Record{}, fmt.Errorf("%w: record %d: an event of %d bytes, not 2 to %d", ErrMalformed, r.Index, len(rest), events.MaxSize)
	case Hash(sha256.Sum256(rest)) != r.Digest:
		return Record{}, fmt.Errorf("%w: record %d: its event does not match the digest the record commits to", ErrMalformed, r.Index)
	default:
		r.Event = rest
	}
	return r, nil
}

// LeafInput is the part of an encoded record its leaf hash covers: all of
// it, or for a bound record everything but the event.
func LeafInput(record []byte) []byte {
	if len(record) > 0 && (record[0] == RecordVersionBound || record[0] == RecordVersionBoundSigned) {
		n := RecordHeaderSize + boundSize
		if record[0] == RecordVersionBoundSigned {
			n += ProducerSigSize
		}
		if len(record) >= n {
			return record[:n]
		}
	}
	return record
}

// Redact returns a bound record without its event: what a reader may be
// shown of another tenant's record. It still hashes to the same leaf.
func Redact(record []byte) ([]byte, error) {
	r, err := ParseRecord(record)
	if err != nil {
		return nil, err
	}
	if !r.Bound {
		return nil, fmt.Errorf("%w: record %d is version %#x: only bound records (§2.4) can be redacted", ErrMalformed, r.Index, record[0])
	}
	return LeafInput(record), nil
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
