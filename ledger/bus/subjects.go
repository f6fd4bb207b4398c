package bus

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"strings"

	"github.com/auditledger/auditledger/events"
)

// Group commit on the bus: a producer stores many events with one
// JetStream message — one acknowledgement and, with sync_interval always,
// one fsync — on the subject BatchSubject(instance). Its body is the
// events as JSON lines: each event's bytes, exactly as the producer
// encoded them, followed by one newline (0x0A). An event whose encoding
// contains a newline byte is never put in a batch (JSON needs none: a
// newline inside a string is escaped). See docs/FORMAT.md §1.2.

// BatchSubjects is the subject filter of every batch.
const BatchSubjects = "audit.batch.>"

// BatchSubject is where the producer named instance publishes batches.
func BatchSubject(instance string) string { return "audit.batch." + ProducerToken(instance) }

// BatchProducer returns the producer token of a batch subject.
func BatchProducer(subject string) (token string, ok bool) {
	token, ok = strings.CutPrefix(subject, "audit.batch.")
	return token, ok && token != ""
}

// MaxBatchBytes bounds a batch's body, under NATS's default max_payload
// of 1 MiB with room for headers.
const MaxBatchBytes = 1000 << 10

// Batchable reports whether an encoded event may go in a batch.
func Batchable(raw []byte) bool { return bytes.IndexByte(raw, '\n') < 0 }

// AppendBatch appends one batchable event to a batch body.
func AppendBatch(body, raw []byte) []byte {
	body = append(body, raw...)
	return append(body, '\n')
}

// ErrBatchFraming: a batch body that is not JSON lines.
var ErrBatchFraming = errors.New("batch is not events as JSON lines, each ending in a newline")

// SplitBatch returns the events of a batch body, sharing its memory.
func SplitBatch(body []byte) ([][]byte, error) {
	if len(body) == 0 || body[len(body)-1] != '\n' {
		return nil, ErrBatchFraming
	}
	parts := make([][]byte, 0, bytes.Count(body, []byte{'\n'}))
	for len(body) > 0 {
		i := bytes.IndexByte(body, '\n')
		parts = append(parts, body[:i:i])
		body = body[i+1:]
	}
	return parts, nil
}

// BatchID is the Nats-Msg-Id of a batch of the given event ids: the same
// events in the same order make the same id, so a retried batch is stored
// once within the stream's duplicate window.
func BatchID(ids []string) string {
	h := sha256.New()
	for _, id := range ids {
		h.Write([]byte(id))
		h.Write([]byte{0})
	}
	return "batch/" + hex.EncodeToString(h.Sum(nil)[:16])
}

// Subject is the NATS subject an event is published on:
// audit.events.<tenant>.<type>.<producer>, where producer is
// ProducerToken of the event's source instance. Bus permissions let each
// producer's credentials publish only under its own token, so the subject
// — which the writer checks against the event — proves which producer
// published it.
func Subject(tenant string, t events.Type, instance string) string {
	return "audit.events." + tenant + "." + string(t) + "." + ProducerToken(instance)
}

// ProducerToken is the subject token that names a producer: its source
// instance when that is 1–64 letters, digits, '-' or '_', else "x-" and
// the first 16 hex digits of the instance's SHA-256.
func ProducerToken(instance string) string {
	ok := len(instance) > 0 && len(instance) <= 64
	for i := 0; ok && i < len(instance); i++ {
		c := instance[i]
		ok = c == '-' || c == '_' || c >= '0' && c <= '9' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z'
	}
	if ok {
		return instance
	}
	h := sha256.Sum256([]byte(instance))
	return "x-" + hex.EncodeToString(h[:8])
}

// AdminInstance and LegalHoldInstance are the source instances of the
// admin's own commands: erase and subject hold|release record as
// AdminInstance, legal-hold set|release as LegalHoldInstance. Only the
// admin principal may publish under their producer tokens (every other
// principal is denied them, ReservedDeny), and the writer refuses the
// types they record from any other instance (RecordedOnlyBy): a gateway
// or API credential cannot make verify or an evidence bundle report a
// field erased, a subject held or a segment under legal hold.
const (
	AdminInstance     = "auditledger-admin"
	LegalHoldInstance = "auditledger-legal-hold"
)

// RecordedOnlyBy returns the one source instance that may record events
// of type t, when there is one.
func RecordedOnlyBy(t events.Type) (string, bool) {
	switch t {
	case events.ErasureRequested, events.ErasurePerformed, events.ErasureRefused,
		events.SubjectHoldSet, events.SubjectHoldReleased:
		return AdminInstance, true
	case events.LegalHoldSet, events.LegalHoldReleased:
		return LegalHoldInstance, true
	}
	return "", false
}

// ReservedDeny is the subjects of the admin's own producer tokens, denied
// to every principal but the admin.
var ReservedDeny = []string{
	"audit.events.*.*.*." + AdminInstance, "audit.events.*.*.*.*." + AdminInstance, "audit.batch." + AdminInstance,
	"audit.events.*.*.*." + LegalHoldInstance, "audit.events.*.*.*.*." + LegalHoldInstance, "audit.batch." + LegalHoldInstance,
	"audit.bulk." + AdminInstance + ".*", "audit.bulk." + LegalHoldInstance + ".*",
}
