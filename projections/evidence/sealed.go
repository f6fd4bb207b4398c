package evidence

import (
	"bytes"
	"encoding/json"

	"github.com/auditledger/auditledger/events"
	"github.com/auditledger/auditledger/internal/eventscan"
	"github.com/auditledger/auditledger/ledger"
)

// Sealed fields in a bundle (docs/FORMAT.md §1.6, §12): events.jsonl
// carries them as sealed, never opened, so a bundle holds no personal data
// and outlives any erasure; the manifest names those whose data subject
// was erased by the time the bundle was built.

// SealedFields reports the tenant's sealed fields in the range.
type SealedFields struct {
	// Count is how many sealed fields the tenant's events in the range hold.
	Count int `json:"count"`
	// Erased are those whose subject's key was destroyed: no key opens
	// them. The bundle still verifies: nothing sealed changed.
	Erased []ErasedField `json:"erased,omitempty"`
	// ErasuresAsOf is the log size up to which erasure.performed events
	// were looked for (the newest checkpoint when the bundle was built).
	ErasuresAsOf uint64 `json:"erasures_as_of"`
}

// ErasedField is one erased sealed field.
type ErasedField struct {
	Index     uint64 `json:"index"` // the event's ledger index
	Field     string `json:"field"` // "actor.email"
	Pseudonym string `json:"pseudonym"`
	// ErasedBy is the ledger index of the erasure.performed event.
	ErasedBy uint64 `json:"erased_by"`
}

// Shown in a control's CSV in place of a sealed value.
const (
	erasedCell = "(erased)"
	sealedCell = "(sealed)"
)

var sealedMarker = []byte(`"` + events.SealedPrefix)

// sealedIn returns the sealed fields of one event.
func sealedIn(idx uint64, event []byte) []ledger.SealedField {
	if !bytes.Contains(event, sealedMarker) {
		return nil
	}
	var scan eventscan.Event
	return sealedInScanned(idx, event, &scan, scan.Scan(event))
}

// sealedInScanned is sealedIn given the event as eventscan read it
// (scanned false: encoding/json decodes it).
func sealedInScanned(idx uint64, event []byte, scan *eventscan.Event, scanned bool) []ledger.SealedField {
	if !bytes.Contains(event, sealedMarker) {
		return nil
	}
	if scanned {
		if p, ok := ledger.SealedPseudonym(scan.Str(eventscan.ActorEmail)); ok {
			return []ledger.SealedField{{Index: idx, Field: "actor.email", Pseudonym: p}}
		}
		return nil
	}
	var ev struct {
		Actor struct {
			Email string `json:"email"`
		} `json:"actor"`
	}
	if json.Unmarshal(event, &ev) != nil {
		return nil
	}
	if p, ok := ledger.SealedPseudonym(ev.Actor.Email); ok {
		return []ledger.SealedField{{Index: idx, Field: "actor.email", Pseudonym: p}}
	}
	return nil
}

// sealedCheck compares the sealed fields events.jsonl holds with what
// the manifest says of them, one event at a time (memory grows with the
// erased fields listed, not with the bundle).
type sealedCheck struct {
	m             *Manifest
	count, erased int
	listed        map[string]bool     // erased pseudonyms
	want          map[ErasedField]int // listed erased fields not yet seen
}

func newSealedCheck(m *Manifest) *sealedCheck {
	c := &sealedCheck{m: m, listed: map[string]bool{}, want: map[ErasedField]int{}}
	if m.SealedFields != nil {
		for _, e := range m.SealedFields.Erased {
			c.listed[e.Pseudonym] = true
			c.want[ErasedField{Index: e.Index, Field: e.Field, Pseudonym: e.Pseudonym}]++
		}
	}
	return c
}

func (c *sealedCheck) note(idx uint64, event []byte) {
	for _, f := range sealedIn(idx, event) {
		c.count++
		if c.listed[f.Pseudonym] {
			c.erased++
			delete(c.want, ErasedField{Index: f.Index, Field: f.Field, Pseudonym: f.Pseudonym})
		}
	}
}

func (c *sealedCheck) done() error {
	sf := c.m.SealedFields
	switch {
	case sf == nil && c.count > 0:
		return failf(ManifestFile, "reports no sealed fields, the tenant's events hold %d", c.count)
	case sf == nil:
		return nil
	case sf.Count != c.count:
		return failf(ManifestFile, "says %d sealed fields, the tenant's events hold %d", sf.Count, c.count)
	}
	for e := range c.want {
		return failAt(ManifestFile, e.Index, "names %s of pseudonym %s erased, but the event there holds no such sealed field", e.Field, e.Pseudonym)
	}
	if c.erased != len(sf.Erased) {
		return failf(ManifestFile, "names %d erased fields, the tenant's events hold %d sealed under the erased pseudonyms", len(sf.Erased), c.erased)
	}
	return nil
}

// erasedSet is the pseudonyms the manifest lists erased.
func erasedSet(sf *SealedFields) map[string]bool {
	out := map[string]bool{}
	if sf != nil {
		for _, e := range sf.Erased {
			out[e.Pseudonym] = true
		}
	}
	return out
}
