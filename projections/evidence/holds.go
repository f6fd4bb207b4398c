package evidence

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/auditledger/auditledger/events"
	"github.com/auditledger/auditledger/ledger"
	"github.com/auditledger/auditledger/projections"
)

// Legal holds in a bundle (FORMAT §12): the legal-hold records of the
// range — set and released, sealed up to the newest checkpoint when the
// bundle was built, each whole with its inclusion proof there — and per
// segment whether they leave it held, and, when the bundle was built with
// the store, the legal hold and lock the store reported for the segment
// and for the checkpoint signed at its end.

// LegalHolds is the manifest's account of legal holds.
type LegalHolds struct {
	// AsOf is the tree size of log/checkpoint-latest: legal-hold records
	// sealed before it are in log/legal-holds.jsonl.
	AsOf uint64 `json:"as_of"`
	// Records is how many lines log/legal-holds.jsonl has.
	Records int `json:"records"`
	// Held names the segments of the range the records leave held.
	Held []string `json:"held"`
	// Store is set when the store was read for the segments' and their
	// checkpoints' legal holds and locks (segments.json store_legal_hold
	// and checkpoint): the store as it describes itself.
	Store string `json:"store,omitempty"`
}

// LegalHoldLine is one line of log/legal-holds.jsonl: a legal_hold.set or
// legal_hold.released record whose range meets the bundle's, whole, with
// its inclusion proof in the tree at legal_holds.as_of.
type LegalHoldLine = RetentionLine

// ObjectLock is an object's protection as the store reported it when the
// bundle was built.
type ObjectLock struct {
	Name        string     `json:"name"`
	LockMode    string     `json:"lock_mode,omitempty"`
	RetainUntil *time.Time `json:"retain_until,omitempty"`
	LegalHold   bool       `json:"legal_hold"`
}

// holdFold folds legal-hold records in index order: for a segment of
// records [first, end), the last record whose range meets it.
type holdFold struct {
	holds []holdPoint
}

type holdPoint struct {
	index    uint64
	set      bool
	from, to uint64 // records from..to, inclusive
}

// at reports whether the segment of records [first, end) is held, and by
// which record (ok false: no record concerns it).
func (f *holdFold) at(first, end uint64) (held bool, by uint64, ok bool) {
	for _, h := range f.holds {
		if h.from < end && h.to >= first {
			held, by, ok = h.set, h.index, true
		}
	}
	return held, by, ok
}

// legalHoldOf returns the type and the hold of a legal-hold record's
// event, or ok false for any other event.
func legalHoldOf(event []byte) (typ events.Type, h ledger.LegalHold, ok bool, err error) {
	var e struct {
		Type    events.Type      `json:"type"`
		Tenant  string           `json:"tenant"`
		Payload ledger.LegalHold `json:"payload"`
	}
	if !bytes.Contains(event, []byte(`"legal_hold.`)) {
		return "", h, false, nil
	}
	if err := json.Unmarshal(event, &e); err != nil {
		return "", h, false, nil
	}
	if e.Type != events.LegalHoldSet && e.Type != events.LegalHoldReleased {
		return "", h, false, nil
	}
	if e.Tenant != ledger.SystemTenant {
		return e.Type, e.Payload, true, fmt.Errorf("a %s event of tenant %q, not %s", e.Type, e.Tenant, ledger.SystemTenant)
	}
	if e.Payload.From > e.Payload.To {
		return e.Type, e.Payload, true, fmt.Errorf("a %s of records %d..%d", e.Type, e.Payload.From, e.Payload.To)
	}
	return e.Type, e.Payload, true, nil
}

// legalHolds writes log/legal-holds.jsonl: the legal-hold records below
// size asOf whose range meets [a, z), with proofs at asOf, and folds them.
func (b *builder) legalHolds(ctx context.Context, w io.Writer, a, z, asOf uint64, fold *holdFold) error {
	if a == z {
		return nil
	}
	return b.systemRecords(ctx, "legal-hold", []events.Type{events.LegalHoldSet, events.LegalHoldReleased}, asOf, func(e *projections.Event) error {
		typ, h, ok, err := legalHoldOf(e.Event)
		if err != nil {
			return fmt.Errorf("record %d: %w", e.Index, err)
		}
		if !ok || h.From >= z || h.To < a {
			return nil
		}
		if err := b.provenLine(ctx, w, e, asOf); err != nil {
			return err
		}
		fold.holds = append(fold.holds, holdPoint{index: e.Index, set: typ == events.LegalHoldSet, from: h.From, to: h.To})
		b.m.LegalHolds.Records++
		return nil
	})
}

// systemRecords calls each for the log's own records of types below
// asOf, in log order (what is shipped with proofs at asOf: legal holds,
// verifications); what names them in an error.
func (b *builder) systemRecords(ctx context.Context, what string, types []events.Type, asOf uint64, each func(*projections.Event) error) error {
	f := projections.EventFilter{Types: types, Tenants: []string{ledger.SystemTenant}, Limit: projections.MaxPage}
	for {
		page, err := b.read.Events(ctx, f)
		if err != nil {
			return fmt.Errorf("the %s records: %w", what, err)
		}
		for i := range page.Events {
			if page.Events[i].Index >= asOf {
				return nil
			}
			if err := each(&page.Events[i]); err != nil {
				return err
			}
		}
		if page.Next == "" {
			return nil
		}
		f.After = page.Next
	}
}

// objectLock is name's protection as the store reports it now.
func objectLock(ctx context.Context, in ledger.Inspector, name string) (ObjectLock, error) {
	p, err := in.Inspect(ctx, name)
	if err != nil {
		return ObjectLock{}, fmt.Errorf("inspecting %s: %w", name, err)
	}
	l := ObjectLock{Name: name, LockMode: p.Mode, LegalHold: p.LegalHold}
	if p.Locked {
		t := p.RetainUntil.UTC()
		l.RetainUntil = &t
	}
	return l, nil
}

// parseLegalHoldLine checks one line of log/legal-holds.jsonl: a whole
// record of the log's own tenant, below asOf and proven in the tree
// there, holding a legal-hold event whose range meets [first, end).
func parseLegalHoldLine(line []byte, first, end, asOf uint64, root ledger.Hash) (uint64, holdPoint, error) {
	var p holdPoint
	idx, _, err := parseProvenLine(line, asOf, root, LatestCheckpoint, func(idx uint64, r ledger.Record) error {
		if idx >= asOf {
			return fmt.Errorf("index %d is not below legal_holds.as_of (%d)", idx, asOf)
		}
		if !r.Bound || r.Redacted() || r.Tenant != ledgerTenant {
			return errors.New("not a whole record bound to the log's own tenant")
		}
		typ, h, ok, err := legalHoldOf(r.Event)
		switch {
		case err != nil:
			return err
		case !ok:
			return errors.New("not a legal_hold.set or legal_hold.released record")
		case h.From >= end || h.To < first:
			return fmt.Errorf("holds records %d..%d, outside the range %d..%d", h.From, h.To, first, end-1)
		}
		p = holdPoint{index: idx, set: typ == events.LegalHoldSet, from: h.From, to: h.To}
		return nil
	})
	return idx, p, err
}
