package evidence

import (
	"archive/zip"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"

	"github.com/auditledger/auditledger/events"
	"github.com/auditledger/auditledger/ledger"
	"github.com/auditledger/auditledger/projections"
)

// Full verifications in a bundle (FORMAT §12): the writer's
// ledger.verification records sealed after the range and before the
// newest checkpoint (legal_holds.as_of), each whole with its inclusion
// proof there, as legal holds are shipped. 5.33's and 8.15's assertions
// and tables are derived from them (compliance log-verified, log-intact;
// §12.3), and context/verifications.json lists them for a reader.

const (
	// VerificationsFile holds the verification records, one line each
	// as in legal-holds.jsonl.
	VerificationsFile = "log/verifications.jsonl"
	// VerificationsContextFile lists what they hold, derived from them.
	VerificationsContextFile = "context/verifications.json"
)

// verificationControls are the controls the verification records
// support.
var verificationControls = []string{"5.33", "8.15"}

// Verifications is the manifest's account of the verification records;
// absent from bundles built before they were carried.
type Verifications struct {
	// Records is how many lines log/verifications.jsonl has.
	Records int `json:"records"`
}

// VerificationSeen is one verification record: its index, its sealing
// time and its payload.
type VerificationSeen struct {
	Index    uint64    `json:"index"`
	SealedAt time.Time `json:"sealed_at"`
	ledger.Verification
}

// VerificationsContext is context/verifications.json.
type VerificationsContext struct {
	Verifications []VerificationSeen `json:"verifications"`
}

// The members of a verification record's payload, of each of its gaps
// and of its failure (FORMAT §2.1), named exactly.
var (
	verificationMembers = []string{"started", "finished", "size", "root", "ok", "gaps", "failure"}
	gapMembers          = []string{"index", "first_seq", "last_seq"}
	failureMembers      = []string{"object", "index", "error"}
)

// exactMembers refuses a payload with a member, at any depth, that is
// not one of FORMAT's by its exact name: encoding/json alone would take
// "OK" for "ok". A value of the wrong kind is left to the decoder.
func exactMembers(payload []byte) error {
	only := func(raw []byte, names []string, where string) (map[string]json.RawMessage, error) {
		var m map[string]json.RawMessage
		if json.Unmarshal(raw, &m) != nil {
			return nil, nil
		}
		for name := range m {
			if !slices.Contains(names, name) {
				return nil, fmt.Errorf("member %q%s is not one of %s (%s)", name, where, strings.Join(names, ", "), events.LedgerVerification)
			}
		}
		return m, nil
	}
	m, err := only(payload, verificationMembers, "")
	if err != nil {
		return err
	}
	var gaps []json.RawMessage
	if json.Unmarshal(m["gaps"], &gaps) == nil {
		for i, g := range gaps {
			if _, err := only(g, gapMembers, fmt.Sprintf(" of gaps[%d]", i)); err != nil {
				return err
			}
		}
	}
	if f, ok := m["failure"]; ok {
		if _, err := only(f, failureMembers, " of failure"); err != nil {
			return err
		}
	}
	return nil
}

// verificationPrefix begins the event of every verification record: the
// writer builds it with "type" first (FORMAT §2.1).
var verificationPrefix = []byte(`{"type":"` + string(events.LedgerVerification) + `",`)

// verificationOf checks that r is a verification record the writer
// sealed — whole, bound to the log's own tenant, standing for no stream
// sequence, a system record of type ledger.verification whose source and
// actor are the ledger's — and returns what it holds.
func verificationOf(idx uint64, r ledger.Record) (VerificationSeen, error) {
	v := VerificationSeen{Index: idx, SealedAt: r.Time.UTC()}
	if !r.Bound || r.Redacted() || r.Tenant != ledgerTenant {
		return v, errors.New("not a whole record bound to the log's own tenant")
	}
	if r.Source != 0 || !bytes.HasPrefix(r.Event, verificationPrefix) {
		return v, fmt.Errorf("not a %s record the writer sealed (a system record of source 0)", events.LedgerVerification)
	}
	var e struct {
		Tenant string        `json:"tenant"`
		Source events.Source `json:"source"`
		Actor  events.Actor  `json:"actor"`
	}
	if err := json.Unmarshal(r.Event, &e); err != nil {
		return v, err
	}
	if e.Tenant != ledger.SystemTenant || e.Source.Kind != "ledger" || e.Actor.Issuer != "auditledger" || e.Actor.Subject != "ledger" || e.Actor.Kind != events.Machine {
		return v, fmt.Errorf("a %s of tenant %q, source %q, actor %s/%s: not the writer's", events.LedgerVerification, e.Tenant, e.Source.Kind, e.Actor.Issuer, e.Actor.Subject)
	}
	var p struct {
		Payload json.RawMessage `json:"payload"`
	}
	if err := json.Unmarshal(r.Event, &p); err != nil {
		return v, err
	}
	// Exactly these members, by their exact names: encoding/json alone
	// would take "OK" for "ok" (FORMAT §2.1: these members and no other).
	if err := exactMembers(p.Payload); err != nil {
		return v, fmt.Errorf("payload: %w", err)
	}
	dec := json.NewDecoder(bytes.NewReader(p.Payload))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&v.Verification); err != nil {
		return v, fmt.Errorf("payload: %w", err)
	}
	if v.Gaps == nil {
		return v, errors.New("payload: no gaps member")
	}
	return v, nil
}

// verificationFold collects the verification records as they are
// written or checked, in index order.
type verificationFold struct {
	seen []VerificationSeen
	raw  [][]byte // each record's event
}

func (f *verificationFold) note(v VerificationSeen, event []byte) {
	f.seen = append(f.seen, v)
	f.raw = append(f.raw, event)
}

// file is context/verifications.json.
func (f *verificationFold) file() ([]byte, error) {
	c := VerificationsContext{Verifications: f.seen}
	if c.Verifications == nil {
		c.Verifications = []VerificationSeen{}
	}
	b, err := json.MarshalIndent(&c, "", "  ")
	return append(b, '\n'), err
}

// verifications writes log/verifications.jsonl: the verification records
// with index in [z, asOf), with proofs at asOf, and folds them.
func (b *builder) verifications(ctx context.Context, w io.Writer, z, asOf uint64, fold *verificationFold) error {
	return b.systemRecords(ctx, "verification", []events.Type{events.LedgerVerification}, asOf, func(e *projections.Event) error {
		if e.Index < z {
			return nil
		}
		r, err := ledger.ParseRecord(e.Record())
		if err != nil {
			return fmt.Errorf("record %d: %w", e.Index, err)
		}
		v, err := verificationOf(e.Index, r)
		if err != nil {
			return nil // not the writer's: it does not count, and is not shipped
		}
		if err := b.provenLine(ctx, w, e, asOf); err != nil {
			return err
		}
		fold.note(v, e.Event)
		return nil
	})
}

// parseVerificationLine checks one line of log/verifications.jsonl: a
// verification record the writer sealed (verificationOf) with index in
// [end, asOf), proven in the tree at asOf.
func parseVerificationLine(line []byte, end, asOf uint64, root ledger.Hash) (VerificationSeen, ledger.Record, error) {
	var v VerificationSeen
	idx, r, err := parseProvenLine(line, asOf, root, LatestCheckpoint, func(idx uint64, r ledger.Record) error {
		if idx < end || idx >= asOf {
			return fmt.Errorf("index %d is not in [range.end %d, legal_holds.as_of %d)", idx, end, asOf)
		}
		var err error
		v, err = verificationOf(idx, r)
		return err
	})
	v.Index = idx
	return v, r, err
}

// covering are the verification records whose size covers the range:
// every record of it was among those they checked.
func (in *tableIn) covering() []VerificationSeen {
	var out []VerificationSeen
	for _, v := range in.verifs {
		if v.Size >= in.end {
			out = append(out, v)
		}
	}
	return out
}

// nanos writes t as the tables write times: RFC 3339 in UTC to the
// nanosecond, trailing zeros dropped.
func nanos(t time.Time) string { return t.UTC().Format(time.RFC3339Nano) }

// noteVerifications checks log/verifications.jsonl (check 10): each line
// a verification record the writer sealed, with index in [range.end,
// legal_holds.as_of), proven at as_of (root); indexes increase;
// verifications.records is their number; and context/verifications.json
// is what they give, byte for byte. The records go to the assertions and
// tables. A bundle built before it carried them is warned of.
func (d *derivation) noteVerifications(files map[string]*zip.File, m *Manifest, root ledger.Hash, rep *Report) error {
	if m.Verifications == nil {
		if files[VerificationsFile] != nil || files[VerificationsContextFile] != nil {
			return failf(ManifestFile, "no verifications member, while the bundle holds %s", VerificationsFile)
		}
		rep.Warnings = append(rep.Warnings, "the bundle carries no verification records (built before bundles did): 5.33's verification rests on the evidence key alone")
		return nil
	}
	b, err := readZip(files, VerificationsFile, 64<<20)
	if err != nil {
		return err
	}
	fold := &verificationFold{}
	if len(b) > 0 {
		for i, line := range bytes.Split(bytes.TrimSuffix(b, []byte("\n")), []byte("\n")) {
			v, r, err := parseVerificationLine(line, m.Range.End, m.LegalHolds.AsOf, root)
			if err == nil && len(fold.seen) > 0 && v.Index <= fold.seen[len(fold.seen)-1].Index {
				err = fmt.Errorf("after index %d: out of order", fold.seen[len(fold.seen)-1].Index)
			}
			if err != nil {
				return failAt(VerificationsFile, v.Index, "line %d: %v", i+1, err)
			}
			fold.note(v, r.Event)
		}
	}
	if len(fold.seen) != m.Verifications.Records {
		return failf(ManifestFile, "verifications.records says %d, %s has %d", m.Verifications.Records, VerificationsFile, len(fold.seen))
	}
	want, err := fold.file()
	if err != nil {
		return err
	}
	got, err := readZip(files, VerificationsContextFile, 64<<20)
	if err != nil {
		return err
	}
	if !bytes.Equal(got, want) {
		return failf(VerificationsContextFile, "differs from what %s gives (re-derived by the verifier)", VerificationsFile)
	}
	d.verifs = fold.seen
	if d.asserter != nil {
		for i, v := range fold.seen {
			if err := d.asserter.AddVerification(v.Index, fold.raw[i]); err != nil {
				return failAt(VerificationsFile, v.Index, "%v", err)
			}
		}
	}
	return nil
}
