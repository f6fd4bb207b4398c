package ledger

import (
	"bytes"
	"encoding/json"
	"slices"
	"strings"

	"github.com/auditledger/auditledger/events"
)

// Sealed fields and their erasure (docs/FORMAT.md §1.6, §2.4). Erasing a
// data subject destroys their key outside the log; nothing in the log
// changes. What the log shows of it: an erasure.performed event naming the
// subject's pseudonym, and the sealed fields that name the same
// pseudonym, which no key opens any more.

// SealedField is one sealed field of an event in the log.
type SealedField struct {
	Index     uint64 // the record's ledger index
	Field     string // "actor.email"
	Pseudonym string
}

// Erasure is an erasure event in the log.
type Erasure struct {
	Index     uint64
	Type      events.Type // erasure.requested or erasure.performed
	Pseudonym string
	Fields    []string
}

// ErasureReport is what Verify found of sealed fields and erasures.
type ErasureReport struct {
	// Sealed counts the sealed fields in the log.
	Sealed int
	// Performed are the erasure.performed events, in log order.
	Performed []Erasure
	// Incomplete are erasure.requested events with no erasure.performed
	// of the same pseudonym after them: the key may or may not have been
	// destroyed (the erasure stopped between the two), and erasing again
	// completes the record.
	Incomplete []Erasure
	// Erased are the sealed fields whose pseudonym an erasure.performed
	// names: no key opens them. A field sealed after the erasure under
	// the destroyed key (a gateway's cached key) is among them.
	Erased []SealedField
}

// erasureState collects sealed fields and erasure events while Verify
// reads the log.
type erasureState struct {
	rep    ErasureReport
	fields []SealedField
}

var (
	sealedMarker  = []byte(`"` + events.SealedPrefix)
	erasureMarker = []byte(`"erasure.`)
)

// noteSegment notes the sealed fields and erasures of a verified
// segment's records.
func (es *erasureState) noteSegment(seg *Segment) {
	for i, raw := range seg.Records {
		if !bytes.Contains(raw, sealedMarker) && !bytes.Contains(raw, erasureMarker) {
			continue
		}
		if r, err := ParseRecord(raw); err == nil {
			es.note(seg.First+uint64(i), r.Event)
		}
	}
}

// note reads one record's event; only events that hold a sealed field or
// an erasure are decoded.
func (es *erasureState) note(idx uint64, event []byte) {
	sealed, erasure := bytes.Contains(event, sealedMarker), bytes.Contains(event, erasureMarker)
	if !sealed && !erasure {
		return
	}
	var ev struct {
		Type  events.Type `json:"type"`
		Actor struct {
			Email string `json:"email"`
		} `json:"actor"`
		Payload struct {
			Pseudonym string   `json:"pseudonym"`
			Fields    []string `json:"fields"`
		} `json:"payload"`
	}
	if json.Unmarshal(event, &ev) != nil {
		return // Verify has checked every event decodes; a system record is not one of these
	}
	if p, ok := SealedPseudonym(ev.Actor.Email); ok {
		es.rep.Sealed++
		es.fields = append(es.fields, SealedField{Index: idx, Field: "actor.email", Pseudonym: p})
	}
	switch ev.Type {
	case events.ErasureRequested, events.ErasurePerformed:
		if ev.Payload.Pseudonym == "" {
			return
		}
		e := Erasure{Index: idx, Type: ev.Type, Pseudonym: ev.Payload.Pseudonym, Fields: ev.Payload.Fields}
		if ev.Type == events.ErasurePerformed {
			es.rep.Performed = append(es.rep.Performed, e)
		} else {
			es.rep.Incomplete = append(es.rep.Incomplete, e)
		}
	}
}

// report finishes the report once the whole log was read.
func (es *erasureState) report() ErasureReport {
	done := map[string]uint64{} // pseudonym → index of its last erasure.performed
	for _, e := range es.rep.Performed {
		done[e.Pseudonym] = e.Index
	}
	es.rep.Incomplete = slices.DeleteFunc(es.rep.Incomplete, func(e Erasure) bool {
		at, ok := done[e.Pseudonym]
		return ok && at > e.Index
	})
	for _, f := range es.fields {
		if _, ok := done[f.Pseudonym]; ok {
			es.rep.Erased = append(es.rep.Erased, f)
		}
	}
	return es.rep
}

// SealedPseudonym returns the pseudonym a sealed field names; ok is false
// for a value that is not one (docs/FORMAT.md §1.6).
func SealedPseudonym(v string) (string, bool) {
	rest, ok := strings.CutPrefix(v, events.SealedPrefix)
	if !ok {
		return "", false
	}
	p, _, ok := strings.Cut(rest, ".")
	if !ok || len(p) != 32 || strings.Trim(p, "0123456789abcdef") != "" {
		return "", false
	}
	return p, true
}
