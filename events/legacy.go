package events

import (
	"bytes"

	"github.com/go-json-experiment/json/jsontext"
)

// LegacySessionSeqZero is the legacy form releases before 2026-12-07
// wrote into events outside a session (producer.attested, audit.accessed,
// evidence.exported, policy.loaded …): "session_seq":0 without a
// session_id. The schema forbids it (session_seq is at least 1 and
// requires session_id); docs/FORMAT.md §1 lists it as accepted in records
// sealed before, so logs already written keep verifying, while the writer
// refuses it in any event it seals now and producers never write it.
const LegacySessionSeqZero = `"session_seq":0 without session_id (the legacy form of events outside a session, accepted only in records sealed before)`

// Legacy reports the legacy form b, an event Parse accepted, is in, or ""
// when it is in the current form.
func Legacy(b []byte) string {
	return legacy(b)
}

// LegacyOf is Legacy(b) for an event b that Parse (or ParseShared)
// decoded to ev, without reading b again when ev shows its form: an
// event with a session_id is never in a legacy form, and only one
// without may hold "session_seq":0 (the writer checks every event, and
// most are in a session).
func LegacyOf(ev *Event, b []byte) string {
	if ev.SessionID != "" {
		return ""
	}
	return legacy(b)
}

func legacy(b []byte) string {
	if !bytes.Contains(b, []byte(`"session_seq"`)) {
		return ""
	}
	d := jsontext.NewDecoder(bytes.NewReader(b))
	if tok, err := d.ReadToken(); err != nil || tok.Kind() != '{' {
		return ""
	}
	var seqZero, session bool
	for d.PeekKind() == '"' {
		tok, err := d.ReadToken()
		if err != nil {
			return ""
		}
		name := tok.String()
		v, err := d.ReadValue()
		if err != nil {
			return ""
		}
		switch name {
		case "session_seq":
			seqZero = string(v) == "0"
		case "session_id":
			session = true
		}
	}
	if seqZero && !session {
		return LegacySessionSeqZero
	}
	return ""
}
