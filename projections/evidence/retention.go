package evidence

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"time"

	"github.com/auditledger/auditledger/events"
	"github.com/auditledger/auditledger/ledger"
)

// RetentionLine is one line of log/retention.jsonl: a retention record
// (ledger.retention.changed) of the bundle's tenant or of the default,
// sealed before the range, whole, with its inclusion proof in the tree at
// the range's first index (the start checkpoint). Those sealed in the
// range are in log/records.bin (FORMAT §12).
type RetentionLine struct {
	Index  uint64   `json:"index"`
	Record string   `json:"record"` // the record's bytes, base64
	Proof  []string `json:"proof"`  // base64 hashes, RFC 9162 §2.1.3
}

// retentionEvent is what a verifier reads of a retention record's event.
type retentionEvent struct {
	Type    events.Type            `json:"type"`
	Tenant  string                 `json:"tenant"`
	Payload ledger.RetentionChange `json:"payload"`
}

// retentionFor reports whether event is a retention record that sets the
// retention of tenant (payload tenant = tenant, event tenant = tenant) or
// the default (payload tenant "*", event tenant _ledger), and the change.
// An event that is a retention record but fits neither shape returns an
// error when it is bound to tenant or to _ledger.
func retentionFor(event []byte, tenant string) (*ledger.RetentionChange, error) {
	if !bytes.HasPrefix(event, []byte(`{"type":"`+string(events.LedgerRetentionChanged)+`"`)) {
		return nil, nil
	}
	var e retentionEvent
	if err := json.Unmarshal(event, &e); err != nil {
		return nil, fmt.Errorf("a retention record that does not parse: %v", err)
	}
	c := e.Payload
	switch {
	case c.NewSeconds < 0:
		return nil, fmt.Errorf("a retention record with new_seconds %d", c.NewSeconds)
	case e.Tenant == ledger.SystemTenant && c.Tenant == ledger.DefaultTenant:
		return &c, nil
	case e.Tenant == tenant && c.Tenant == tenant:
		return &c, nil
	case e.Tenant == tenant || e.Tenant == ledger.SystemTenant:
		return nil, fmt.Errorf("a retention record of tenant %q whose payload concerns tenant %q (FORMAT §2.1)", e.Tenant, c.Tenant)
	}
	return nil, nil
}

// retentionFold folds the tenant's retention records in log order into
// the retention in force for it (its own, else the default) after each.
type retentionFold struct {
	// own and def are the tenant's own retention and the default as
	// folded so far; ownSet when the tenant has its own.
	own, def time.Duration
	ownSet   bool
	last     uint64 // the index of the last record folded, +1 (0: none)
	points   []retentionPoint
}

// retentionPoint: from the record at Index on, the tenant's retention is
// D.
type retentionPoint struct {
	Index uint64
	D     time.Duration
}

func (f *retentionFold) note(idx uint64, c *ledger.RetentionChange) error {
	if idx+1 <= f.last {
		return fmt.Errorf("retention record %d after record %d: out of order", idx, f.last-1)
	}
	f.last = idx + 1
	d := time.Duration(c.NewSeconds) * time.Second
	if c.Tenant == ledger.DefaultTenant {
		f.def = d
	} else {
		f.own, f.ownSet = d, d != 0
	}
	eff := f.def
	if f.ownSet {
		eff = f.own
	}
	f.points = append(f.points, retentionPoint{Index: idx, D: eff})
	return nil
}

// at is the tenant's retention in force for a segment ending at tree
// size end: the last change sealed before end (the writer seals a change
// before the first segment it applies to, §4.1); false before any.
func (f *retentionFold) at(end uint64) (time.Duration, uint64, bool) {
	i := sort.Search(len(f.points), func(i int) bool { return f.points[i].Index >= end })
	if i == 0 {
		return 0, 0, false
	}
	p := f.points[i-1]
	return p.D, p.Index, true
}

// parseRetentionLine checks one line of log/retention.jsonl against the
// start root and returns its record.
func parseRetentionLine(line []byte, first uint64, startRoot ledger.Hash) (uint64, ledger.Record, error) {
	return parseProvenLine(line, first, startRoot, "the start checkpoint", func(idx uint64, r ledger.Record) error {
		if idx >= first {
			return fmt.Errorf("index %d is not before the range (%d): records of the range are in %s", idx, first, RecordsFile)
		}
		if !r.Bound || r.Redacted() {
			return errors.New("not a whole bound record")
		}
		return nil
	})
}

// parseProvenLine reads a line of log/retention.jsonl or
// log/legal-holds.jsonl (RetentionLine): its record, whose index is the
// line's, passes check, and is included in the tree of size at root (the
// checkpoint named where).
func parseProvenLine(line []byte, size uint64, root ledger.Hash, where string, check func(uint64, ledger.Record) error) (uint64, ledger.Record, error) {
	var l RetentionLine
	dec := json.NewDecoder(bytes.NewReader(line))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&l); err != nil {
		return 0, ledger.Record{}, err
	}
	raw, err := base64.StdEncoding.Strict().DecodeString(l.Record)
	if err != nil {
		return l.Index, ledger.Record{}, fmt.Errorf("record: %v", err)
	}
	r, err := ledger.ParseRecord(raw)
	if err != nil {
		return l.Index, r, err
	}
	if r.Index != l.Index {
		return l.Index, r, fmt.Errorf("the line says index %d, its record is %d", l.Index, r.Index)
	}
	if err := check(l.Index, r); err != nil {
		return l.Index, r, err
	}
	proof := make([]ledger.Hash, len(l.Proof))
	for i, s := range l.Proof {
		h, err := base64.StdEncoding.Strict().DecodeString(s)
		if err != nil || len(h) != ledger.HashSize {
			return l.Index, r, fmt.Errorf("proof hash %q", s)
		}
		proof[i] = ledger.Hash(h)
	}
	if err := ledger.VerifyInclusion(ledger.LeafHash(raw), l.Index, size, proof, root); err != nil {
		return l.Index, r, fmt.Errorf("not in the tree at %s: %v", where, err)
	}
	return l.Index, r, nil
}

// checkRetentionBinding checks that a whole retention record's tenant
// hash is its event's tenant's.
func checkRetentionBinding(r ledger.Record) error {
	t, err := events.PeekTenant(r.Event)
	if err != nil {
		return err
	}
	if ledger.TenantHash(t) != r.Tenant {
		return fmt.Errorf("the record is bound to another tenant than its event's (%q)", t)
	}
	return nil
}

// seen is the report's line for the record just folded.
func (f *retentionFold) seen(idx uint64, c *ledger.RetentionChange) RetentionSeen {
	return RetentionSeen{Index: idx, Tenant: c.Tenant, New: c.New, InForce: f.points[len(f.points)-1].D}
}
