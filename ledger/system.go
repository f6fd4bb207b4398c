package ledger

import (
	"bytes"
	"encoding/json"
	"fmt"
	"time"

	"github.com/auditledger/auditledger/events"
)

// The writer accounts for every stream sequence of AUDIT_EVENTS: each is
// sealed as its event, or as a ledger.rejected record (the event failed
// validation), or is covered by a ledger.gap record (it was missing from
// the stream when the writer reached it). So along the log the non-zero
// sources are contiguous — each the previous one, for the events of one
// batch message, or the next — and a verifier proves that nothing was
// skipped without a record saying so.
//
// These system records hold version-1 events that the writer builds
// itself, encoded with "type" as the first member, so a verifier
// recognises one by its first bytes (SystemPrefix) without decoding every
// event; producers may not publish ledger.* types.

// SystemPrefix begins the event of every record the writer adds itself.
const SystemPrefix = `{"type":"ledger.`

// SystemTenant is the tenant of system records: they belong to the log,
// not to one tenant.
const SystemTenant = "_ledger"

// Gap is a run of stream sequences missing from AUDIT_EVENTS when the
// writer reached them.
type Gap struct {
	FirstSeq uint64 `json:"first_seq"`
	LastSeq  uint64 `json:"last_seq"`
	Count    uint64 `json:"count"`
	// NoticedAt is when the writer found them missing.
	NoticedAt time.Time `json:"noticed_at"`
	// Stream is what AUDIT_EVENTS reported at that moment.
	Stream StreamState `json:"stream"`
	Reason string      `json:"reason"`
	// Index is the gap record's position in the log (not encoded).
	Index uint64 `json:"-"`
}

// StreamState is what the stream said about itself when a gap was noticed.
type StreamState struct {
	FirstSeq   uint64 `json:"first_seq"`
	LastSeq    uint64 `json:"last_seq"`
	Msgs       uint64 `json:"msgs"`
	NumDeleted int    `json:"num_deleted"`
}

// Rejection is an event that failed validation.
type Rejection struct {
	Seq uint64 `json:"seq"`
	// Part is the event's line in a batch message, from 1; zero (and not
	// encoded) for a message holding one event, or a batch rejected whole.
	Part    int    `json:"part,omitempty"`
	Subject string `json:"subject"`
	Reason  string `json:"reason"`
	// SHA256 (hex) and Bytes describe the rejected message exactly as
	// published; AUDIT_REJECTED keeps the bytes. SHA256 is empty (and not
	// encoded) for a message holding a value a detector finds: its bytes
	// are kept nowhere, so a digest of them would serve only to confirm
	// guesses at the value (a card number in an event of a known shape
	// falls to ~10⁹ of them).
	SHA256 string `json:"sha256,omitempty"`
	Bytes  int    `json:"bytes"`
}

// systemEvent is the envelope of system records, in encoding order.
type systemEvent struct {
	Type    events.Type   `json:"type"`
	Version int           `json:"version"`
	ID      string        `json:"id"`
	Time    string        `json:"time"`
	Tenant  string        `json:"tenant"`
	Source  events.Source `json:"source"`
	Actor   events.Actor  `json:"actor"`
	Payload any           `json:"payload"`
}

// maxReason bounds the reason text kept in a system record.
const maxReason = 1024

func systemRecord(origin string, t events.Type, id string, at time.Time, payload any) ([]byte, error) {
	return systemRecordFor(origin, SystemTenant, t, id, at, payload)
}

// systemRecordFor is systemRecord for a record that concerns one tenant.
func systemRecordFor(origin, tenant string, t events.Type, id string, at time.Time, payload any) ([]byte, error) {
	b, err := json.Marshal(systemEvent{
		Type: t, Version: events.Version, ID: id, Time: at.UTC().Format(time.RFC3339Nano), Tenant: tenant,
		Source:  events.Source{Kind: "ledger", Instance: origin},
		Actor:   events.Actor{Issuer: "auditledger", Subject: "ledger", Kind: events.Machine},
		Payload: payload,
	})
	if err != nil {
		return nil, err
	}
	if _, err := events.Parse(b); err != nil {
		return nil, fmt.Errorf("ledger: system record %s: %w", id, err)
	}
	return b, nil
}

// GapEntry is the entry recording g; its source is g.LastSeq.
func GapEntry(origin string, g Gap) (Entry, error) {
	g.Count = g.LastSeq - g.FirstSeq + 1
	if len(g.Reason) > maxReason {
		g.Reason = g.Reason[:maxReason]
	}
	b, err := systemRecord(origin, events.LedgerGap, fmt.Sprintf("ledger/gap/%d-%d", g.FirstSeq, g.LastSeq), g.NoticedAt, g)
	if err != nil {
		return Entry{}, err
	}
	return Entry{Event: b, Source: g.LastSeq}, nil
}

// RejectedEntry is the entry recording r; its source is r.Seq.
func RejectedEntry(origin string, r Rejection, at time.Time) (Entry, error) {
	if len(r.Reason) > maxReason {
		r.Reason = r.Reason[:maxReason]
	}
	if len(r.Subject) > 256 {
		r.Subject = r.Subject[:256]
	}
	id := fmt.Sprintf("ledger/rejected/%d", r.Seq)
	if r.Part > 0 {
		id += fmt.Sprintf(".%d", r.Part)
	}
	b, err := systemRecord(origin, events.LedgerRejected, id, at, r)
	if err != nil {
		return Entry{}, err
	}
	return Entry{Event: b, Source: r.Seq}, nil
}

// systemRecordOf decodes the system record in event, if it is one.
func systemRecordOf(event []byte) (t events.Type, payload json.RawMessage, ok bool, err error) {
	if !bytes.HasPrefix(event, []byte(SystemPrefix)) {
		return "", nil, false, nil
	}
	var e struct {
		Type    events.Type     `json:"type"`
		Payload json.RawMessage `json:"payload"`
	}
	if err := json.Unmarshal(event, &e); err != nil {
		return "", nil, true, err
	}
	return e.Type, e.Payload, true, nil
}

// checkSource applies the contiguity rule to one record with a non-zero
// source: it must be the next stream sequence, a rejection of it, or a
// gap record covering the run that starts there — or, for an event or a
// rejection, the same sequence as the record before it in the same
// segment: the next event of one batch message, whose events are always
// sealed together.
func (st *logState) checkSource(name string, idx uint64, r Record) error {
	want := st.lastSource + 1
	t, payload, sys, err := systemRecordOf(r.Event)
	if err != nil {
		return verr(name, int64(idx), "system record does not parse", "a ledger.* event", err.Error())
	}
	switch {
	case sys && t == events.LedgerGap:
		var g Gap
		if err := json.Unmarshal(payload, &g); err != nil {
			return verr(name, int64(idx), "gap record payload", "first_seq, last_seq", err.Error())
		}
		if g.FirstSeq != want || g.LastSeq != r.Source || g.LastSeq < g.FirstSeq {
			return verr(name, int64(idx), "gap record does not cover the next stream sequences",
				fmt.Sprintf("a gap from %d ending at the record's source %d", want, r.Source), fmt.Sprintf("%d..%d", g.FirstSeq, g.LastSeq))
		}
		g.Index = idx
		st.gaps = append(st.gaps, g)
		return nil
	case sys && t == events.LedgerRejected:
		if err := rejectionOfSource(payload, r.Event, r.Source); err != nil {
			return verr(name, int64(idx), "rejection record is not tied to its source", fmt.Sprintf("seq and id naming stream sequence %d", r.Source), err.Error())
		}
		st.rejected++
	case sys:
		return verr(name, int64(idx), "system record type", "ledger.gap or ledger.rejected", string(t))
	}
	if r.Source != want {
		if r.Source == st.lastSource && st.lastSourceSeg == name {
			return nil // the next event of the same batch message
		}
		if r.Source <= st.lastSource {
			return verr(name, int64(idx), "source stream sequence not increasing (duplicate or reordered event)",
				fmt.Sprintf("greater than %d", st.lastSource), fmt.Sprint(r.Source))
		}
		return verr(name, int64(idx), fmt.Sprintf("stream sequences %d..%d skipped with no gap record", want, r.Source-1),
			fmt.Sprintf("source %d", want), fmt.Sprint(r.Source))
	}
	return nil
}

// rejectionOfSource checks that a ledger.rejected record names the stream
// sequence it stands for: its payload's seq is the record's source, and
// its id is ledger/rejected/<seq>, or ledger/rejected/<seq>.<part> with
// the payload's part (§2.1). A record that did not would let one stream
// sequence be accounted for by the rejection of another.
func rejectionOfSource(payload json.RawMessage, event []byte, source uint64) error {
	var rej Rejection
	if err := json.Unmarshal(payload, &rej); err != nil {
		return fmt.Errorf("payload: %w", err)
	}
	var e struct {
		ID string `json:"id"`
	}
	if err := json.Unmarshal(event, &e); err != nil {
		return fmt.Errorf("event: %w", err)
	}
	want := fmt.Sprintf("ledger/rejected/%d", rej.Seq)
	if rej.Part > 0 {
		want += fmt.Sprintf(".%d", rej.Part)
	}
	switch {
	case rej.Seq != source:
		return fmt.Errorf("payload seq %d, record source %d", rej.Seq, source)
	case e.ID != want:
		return fmt.Errorf("id %q, want %q for seq %d part %d", e.ID, want, rej.Seq, rej.Part)
	}
	return nil
}

// noteDirect checks a record that stands for no stream sequence (source
// 0): a system record among them is one the writer adds on its own —
// ledger.retention.changed, ledger.clock.status or ledger.verification —
// never a gap or a
// rejection (which stand for sequences), nor a type no writer records
// (ledger.segment.sealed). Other events appended directly are accepted.
func (st *logState) noteDirect(name string, idx uint64, r Record) error {
	t, _, sys, err := systemRecordOf(r.Event)
	switch {
	case !sys:
		return nil
	case err != nil:
		return verr(name, int64(idx), "system record does not parse", "a ledger.* event", err.Error())
	case t == events.LedgerRetentionChanged:
		return st.noteRetention(name, idx, r)
	case t == events.LedgerClockStatus, t == events.LedgerVerification:
		return nil
	}
	return verr(name, int64(idx), "system record type with source 0 (one standing for no stream sequence)",
		"ledger.retention.changed, ledger.clock.status or ledger.verification", string(t))
}
