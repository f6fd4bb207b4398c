package ledger

import (
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

// MaxErasedIndexes bounds the indexes ErasedFields lists, so that
// verifying a log of any size holds a bounded report per data subject.
const MaxErasedIndexes = 100

// ErasedFields are the sealed fields of one field name under one erased
// pseudonym.
type ErasedFields struct {
	Pseudonym string
	Field     string
	Count     int
	// Indexes are the ledger indexes of the first MaxErasedIndexes.
	Indexes []uint64
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
	// names, by pseudonym and field: no key opens them. A field sealed
	// after the erasure under the destroyed key (a gateway's cached key)
	// is among them.
	Erased []ErasedFields
}

// ErasedCount is how many sealed fields are erased.
func (r *ErasureReport) ErasedCount() int {
	n := 0
	for _, e := range r.Erased {
		n += e.Count
	}
	return n
}

// segmentNotes are the sealed fields and erasure events of one segment,
// noted while its events are validated (in parallel, by the fetchers).
type segmentNotes struct {
	sealed   []SealedField
	erasures []Erasure
}

// note notes what ev, at ledger index idx, holds.
func (n *segmentNotes) note(idx uint64, ev *events.Event) {
	if p, ok := SealedPseudonym(ev.Actor.Email); ok {
		n.sealed = append(n.sealed, SealedField{Index: idx, Field: "actor.email", Pseudonym: p})
	}
	if ev.Type != events.ErasureRequested && ev.Type != events.ErasurePerformed {
		return
	}
	var pl struct {
		Pseudonym string   `json:"pseudonym"`
		Fields    []string `json:"fields"`
	}
	if json.Unmarshal(ev.Payload, &pl) == nil && pl.Pseudonym != "" {
		n.erasures = append(n.erasures, Erasure{Index: idx, Type: ev.Type, Pseudonym: pl.Pseudonym, Fields: pl.Fields})
	}
}

// erasureState gathers the segments' notes, in log order, keeping per
// pseudonym and field a count and the first indexes.
type erasureState struct {
	rep    ErasureReport
	fields map[[2]string]*ErasedFields
	order  [][2]string
}

func (es *erasureState) add(n segmentNotes) {
	if es.fields == nil {
		es.fields = map[[2]string]*ErasedFields{}
	}
	for _, f := range n.sealed {
		es.rep.Sealed++
		k := [2]string{f.Pseudonym, f.Field}
		e := es.fields[k]
		if e == nil {
			e = &ErasedFields{Pseudonym: f.Pseudonym, Field: f.Field}
			es.fields[k] = e
			es.order = append(es.order, k)
		}
		e.Count++
		if len(e.Indexes) < MaxErasedIndexes {
			e.Indexes = append(e.Indexes, f.Index)
		}
	}
	for _, e := range n.erasures {
		if e.Type == events.ErasurePerformed {
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
	for _, k := range es.order {
		if _, ok := done[k[0]]; ok {
			es.rep.Erased = append(es.rep.Erased, *es.fields[k])
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
