package compliance

import (
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/auditledger/auditledger/events"
)

// Full verifications of the log (FORMAT §2.1 ledger.verification, §12.1
// log-verified and log-intact): the writer's sealed record of each, not a
// table of the projection, so that an auditor derives 5.33 and 8.15 from
// records proven in the log. A bundle carries the verification records
// sealed after its range (log/verifications.jsonl, proven at
// legal_holds.as_of); only those the verifier proved are given to
// AddVerification — an event of that type among the tenant's events
// (events.jsonl) is never one.

// verification is what the checks read of a ledger.verification record.
type verification struct {
	idx      uint64
	Started  time.Time `json:"started"`
	Finished time.Time `json:"finished"`
	Size     uint64    `json:"size"`
	OK       bool      `json:"ok"`
	Gaps     []struct {
		Index    uint64 `json:"index"`
		FirstSeq uint64 `json:"first_seq"`
		LastSeq  uint64 `json:"last_seq"`
	} `json:"gaps"`
	Failure *struct {
		Index *uint64 `json:"index"`
		Error string  `json:"error"`
	} `json:"failure"`
}

// AddVerification notes one ledger.verification record (its index and
// its event's exact bytes) the caller proved in the log; they must come
// in index order. A record of another type, or one that does not parse,
// is an error.
func (a *Asserter) AddVerification(idx uint64, raw []byte) error {
	var e struct {
		Type    events.Type  `json:"type"`
		Payload verification `json:"payload"`
	}
	if err := json.Unmarshal(raw, &e); err != nil {
		return fmt.Errorf("compliance: verification record %d: %w", idx, err)
	}
	if e.Type != events.LedgerVerification {
		return fmt.Errorf("compliance: record %d is a %s, not a %s", idx, e.Type, events.LedgerVerification)
	}
	e.Payload.idx = idx
	a.verifs = append(a.verifs, e.Payload)
	return nil
}

// Exceptions of log-verified and log-intact.
const (
	ExNoVerification = "no full verification of the log after the period covered its records"
	ExLogNotWhole    = "the verification found the log not whole"
	ExRangeNotWhole  = "the verification found the period's records not whole"
)

// covering are the verifications that covered the range: of at least
// p.End records, so every record of the period was among those checked.
func (a *Asserter) covering(p Period) []verification {
	var out []verification
	for _, v := range a.verifs {
		if v.Size >= p.End {
			out = append(out, v)
		}
	}
	return out
}

func (v *verification) row() Row {
	return Row{Index: v.idx, Type: string(events.LedgerVerification),
		Item: fmt.Sprintf("size=%d ok=%t started=%s finished=%s", v.Size, v.OK, utc(v.Started), utc(v.Finished))}
}

// findings is what v found, as an exception's detail: the gap records
// with index in [from, to), then the failed check when it failed at an
// index below to or at none; "" when it found none of them.
func (v *verification) findings(from, to uint64) string {
	var gaps []string
	for _, g := range v.Gaps {
		if g.Index >= from && g.Index < to {
			gaps = append(gaps, strconv.FormatUint(g.Index, 10))
		}
	}
	var parts []string
	if len(gaps) > 0 {
		parts = append(parts, "gap records "+strings.Join(gaps, ","))
	}
	if f := v.Failure; f != nil && (f.Index == nil || *f.Index < to) {
		parts = append(parts, "failed: "+f.Error)
	}
	return strings.Join(parts, "; ")
}

// logVerified tests that a full verification covered the period's
// records, and that each that did found the whole log sound: one row per
// covering verification, an exception when it found a gap anywhere or
// failed a check; a row of no event when none covered the range.
func (a *Asserter) logVerified(p Period) []Row {
	var rows []Row
	for _, v := range a.covering(p) {
		r := v.row()
		if !v.OK {
			d := v.findings(0, ^uint64(0))
			if d == "" {
				d = "not ok"
			}
			r.Exception = ExLogNotWhole + ": " + d
		}
		rows = append(rows, r)
	}
	if len(rows) == 0 {
		rows = append(rows, Row{NoEvent: true, Item: fmt.Sprintf("no verification of size >= %d", p.End), Exception: ExNoVerification})
	}
	return rows
}

// logIntact tests that no covering verification found a gap record among
// the period's records [p.First, p.End) or failed a check at or before
// them: one row per covering verification; none (not observed) when no
// verification covered the range.
func (a *Asserter) logIntact(p Period) []Row {
	var rows []Row
	for _, v := range a.covering(p) {
		r := v.row()
		if d := v.findings(p.First, p.End); d != "" {
			r.Exception = ExRangeNotWhole + ": " + d
		}
		rows = append(rows, r)
	}
	return rows
}
