// Package bus is the contract every part of auditledger shares on NATS
// JetStream: stream, bucket and subject names, message headers, the
// streams' configuration, and which bus role may do what.
//
// Producers (proxies, emit), the ledger writer, the API and readers
// (projectors, forwarders, SIEM consumers) all import it; none of them
// imports another's implementation for these names.
package bus

import (
	"context"
	"encoding/binary"
	"fmt"
	"slices"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/auditledger/auditledger/events"
)

// Streams, subjects and key-value buckets.
const (
	EventsStream   = "AUDIT_EVENTS"
	EventsSubjects = "audit.events.>"
	LedgerStream   = "AUDIT_LEDGER"
	LedgerSubjects = "audit.ledger.>"
	// LedgerRecordsSubject carries sealed records in chunks (FORMAT.md §9).
	LedgerRecordsSubject = "audit.ledger.records"
	// LiveSubjects carry each sealed record as a plain NATS message,
	// stored by no stream of ours (FORMAT.md §9).
	LiveSubjects  = "audit.live.>"
	RejectStream  = "AUDIT_REJECTED"
	RejectSubject = "audit.rejected"
	// LeaseBucket holds the single-writer lease of each log.
	LeaseBucket = "AUDIT_LEDGER_LEASES"
	// ApprovalsBucket holds approval requests and their decisions.
	ApprovalsBucket = "AUDIT_APPROVALS"
	// AccessBucket holds just-in-time access requests and their signed
	// grants; gateways watch it to admit and end sessions.
	AccessBucket = "AUDIT_ACCESS"
	// PIIKeysBucket holds the keys that keep personal data out of the
	// log: each tenant's search-digest key and each data subject's field
	// key (ledger/piikeys). It is never sealed; erasing a subject erases
	// its key here.
	PIIKeysBucket = "AUDIT_PII_KEYS"
	// BulkStream carries bulk pieces (docs/FORMAT.md §1.7) from the
	// gateways to the writer, which copies each beside the segment that
	// names it and then deletes it here.
	BulkStream   = "AUDIT_BULK"
	BulkSubjects = "audit.bulk.>"
)

// BulkSubject is where a producer publishes the bulk piece name:
// audit.bulk.<producer token>.<name>.
func BulkSubject(instance, name string) string {
	return BulkTokenSubject(ProducerToken(instance), name)
}

// BulkTokenSubject is BulkSubject for a producer token (the token of the
// subject an event arrived on): where the writer looks the piece up.
func BulkTokenSubject(token, name string) string {
	return "audit.bulk." + token + "." + name
}

// Headers on AUDIT_LEDGER and AUDIT_REJECTED messages, and the producer's
// signature on AUDIT_EVENTS messages.
const (
	// HeaderSignature carries a producer's signature of the event to the
	// ledger writer (docs/FORMAT.md, "Producer signatures").
	HeaderSignature     = "Auditledger-Producer-Sig"
	HeaderIndex         = "Auditledger-Index"
	HeaderLeaf          = "Auditledger-Leaf"
	HeaderCount         = "Auditledger-Count"
	HeaderReason        = "Auditledger-Reason"
	HeaderSourceSeq     = "Auditledger-Source-Seq"
	HeaderSourceSubject = "Auditledger-Source-Subject"
	// HeaderSourcePart is the line of a rejected event in its batch.
	HeaderSourcePart = "Auditledger-Source-Part"
)

// StreamOptions configures the streams EnsureStreams creates.
type StreamOptions struct {
	// Replicas per stream; zero means 1. Production clusters use 3.
	Replicas int
	// Duplicates is the window in which JetStream drops a second publish
	// with the same Nats-Msg-Id; zero means 10 minutes.
	Duplicates time.Duration
	// Memory selects memory storage (tests of the bus itself only).
	Memory bool
	// AllowDelete leaves purging allowed on AUDIT_EVENTS. Only tests that
	// show what the writer does when events disappear set it: JetStream
	// never lets a stream go back from deny to allow.
	AllowDelete bool
	// BulkMaxPieces is how many pieces AUDIT_BULK holds at most; zero
	// means DefaultBulkMaxPieces.
	BulkMaxPieces int64
}

// DefaultBulkMaxPieces bounds AUDIT_BULK at 16,384 pieces (8 GiB at most):
// the writer deletes each piece once the segment naming it is stored, so
// the stream holds what is in flight; pieces no event names (any producer
// credential may publish under its own token) cannot fill the bus's disk.
// A piece refused past the bound is recorded as a binary chunk (FORMAT
// §1.7). A count, not a byte limit: JetStream reserves a stream's byte
// limit on the store when the stream is made.
const DefaultBulkMaxPieces = 16384

// BulkMaxAge is how long AUDIT_BULK keeps a piece (docs/FORMAT.md §1.7).
const BulkMaxAge = 7 * 24 * time.Hour

// BulkMaxMsgSize bounds an AUDIT_BULK message: the object of a full piece
// (512 KiB and a nonce and a tag) with room for headers.
const BulkMaxMsgSize = 512<<10 + 28 + 4<<10

// EnsureStreams creates the four streams, or updates their configuration
// to the current one; it is safe to call at every start.
//
// None of them can be purged, and AUDIT_LEDGER and AUDIT_REJECTED cannot
// have a message deleted: the streams themselves deny it (JetStream's
// deny_delete and deny_purge, which no later update can lift), not only
// the roles' permissions. AUDIT_EVENTS allows deleting one message, for
// one reason: the writer erases an event that holds a value a detector
// finds once it has sealed its rejection (docs/FORMAT.md §2.1), so that
// no copy keeps it; only the ledger role may ask, and a message deleted
// before it is sealed becomes a gap record that verify reports. A stream
// made before this rule keeps denying deletes (no update can lift it):
// the writer then reports each erasure it could not make. Nothing
// expires by age or count, and a stream that reaches a limit an operator
// set refuses new messages (discard new) rather than dropping old ones, so
// the producer sees the refusal and no unsealed event vanishes quietly.
// AUDIT_BULK is the exception to both: the writer deletes each piece
// once the segment naming it is stored, and a piece still there after
// BulkMaxAge (its event never came, or the writer was stopped that long)
// expires; the writer rejects an event whose piece is gone. It holds at
// most BulkMaxPieces pieces, refusing more.
func EnsureStreams(ctx context.Context, js jetstream.JetStream, o StreamOptions) error {
	if o.Replicas == 0 {
		o.Replicas = 1
	}
	if o.Duplicates == 0 {
		o.Duplicates = 10 * time.Minute
	}
	if o.BulkMaxPieces == 0 {
		o.BulkMaxPieces = DefaultBulkMaxPieces
	}
	storage := jetstream.FileStorage
	if o.Memory {
		storage = jetstream.MemoryStorage
	}
	denyEventDeletes := false
	if st, err := js.Stream(ctx, EventsStream); err == nil && st.CachedInfo().Config.DenyDelete {
		denyEventDeletes = true // made before the erasure rule; it cannot change
	}
	for _, cfg := range []jetstream.StreamConfig{
		{Name: EventsStream, Subjects: []string{EventsSubjects, BatchSubjects}, Description: "audit events from producers, one per message or in batches",
			MaxMsgSize: MaxBatchBytes + 16<<10, DenyDelete: denyEventDeletes, DenyPurge: !o.AllowDelete},
		{Name: LedgerStream, Subjects: []string{LedgerSubjects}, Description: "sealed ledger records, for projections and SIEM consumers",
			DenyDelete: true, DenyPurge: true},
		{Name: RejectStream, Subjects: []string{RejectSubject}, Description: "events that failed validation, with the reason",
			DenyDelete: true, DenyPurge: true},
		// A piece waits here for the writer, which copies it beside the
		// segment naming it and then deletes it; one no event names (its
		// gateway killed between the two) goes after BulkMaxAge.
		{Name: BulkStream, Subjects: []string{BulkSubjects}, Description: "bulk pieces (docs/FORMAT.md §1.7) waiting to be copied beside their segments",
			MaxMsgSize: BulkMaxMsgSize, MaxAge: BulkMaxAge, MaxMsgs: o.BulkMaxPieces, DenyPurge: true, AllowDirect: true},
	} {
		cfg.Storage = storage
		cfg.Replicas = o.Replicas
		cfg.Duplicates = o.Duplicates
		cfg.Retention = jetstream.LimitsPolicy
		cfg.Discard = jetstream.DiscardNew
		if st, err := js.Stream(ctx, cfg.Name); err == nil && sameStream(st.CachedInfo().Config, cfg) {
			// Already as wanted: no update. Every role of a process calls
			// this as it starts, and an update racing a consumer's
			// creation on the stream is a data race in nats-server
			// (2.15.2: fileStore.UpdateConfig against ConsumerStore).
			continue
		}
		if _, err := js.CreateOrUpdateStream(ctx, cfg); err != nil {
			return fmt.Errorf("bus: stream %s: %w", cfg.Name, err)
		}
	}
	return nil
}

// sameStream reports whether the stream configuration have holds every
// setting EnsureStreams makes in want.
func sameStream(have, want jetstream.StreamConfig) bool {
	unlimited := func(n int64) int64 { // the server stores no limit as -1
		return max(n, 0)
	}
	return slices.Equal(have.Subjects, want.Subjects) && have.Description == want.Description &&
		unlimited(int64(have.MaxMsgSize)) == unlimited(int64(want.MaxMsgSize)) && have.MaxAge == want.MaxAge &&
		unlimited(have.MaxMsgs) == unlimited(want.MaxMsgs) &&
		have.DenyDelete == want.DenyDelete && have.DenyPurge == want.DenyPurge && have.AllowDirect == want.AllowDirect &&
		have.Storage == want.Storage && have.Replicas == want.Replicas && have.Duplicates == want.Duplicates &&
		have.Retention == want.Retention && have.Discard == want.Discard
}

// LiveSubject is where a sealed record of tenant and type goes live.
func LiveSubject(tenant string, t events.Type) string {
	return "audit.live." + tenant + "." + string(t)
}

// AppendRecords appends records to an AUDIT_LEDGER message body, each
// framed as in a segment: its length as a big-endian uint32, then its
// bytes.
func AppendRecords(body []byte, recs [][]byte) []byte {
	for _, r := range recs {
		body = binary.BigEndian.AppendUint32(body, uint32(len(r)))
		body = append(body, r...)
	}
	return body
}

// SplitRecords returns the records of an AUDIT_LEDGER message body,
// sharing its memory; the first is at the message's Auditledger-Index.
func SplitRecords(body []byte) ([][]byte, error) {
	var recs [][]byte
	for len(body) > 0 {
		if len(body) < 4 || int(binary.BigEndian.Uint32(body)) > len(body)-4 {
			return nil, fmt.Errorf("bus: %s message cut short after %d records", LedgerStream, len(recs))
		}
		n := int(binary.BigEndian.Uint32(body))
		recs = append(recs, body[4:4+n:4+n])
		body = body[4+n:]
	}
	return recs, nil
}
