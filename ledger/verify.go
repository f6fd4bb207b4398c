package ledger

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"runtime"
	"slices"
	"strings"
	"time"

	"github.com/auditledger/auditledger/events"
)

// VerifyOptions configures Verify.
type VerifyOptions struct {
	// Verifier checks checkpoint signatures. Nil skips signature checks
	// (proof generation on a trusted store); every other check still runs.
	Verifier *NoteVerifier
	// Since, if set, is an earlier checkpoint the log must extend: the
	// root at its size must equal its root. This detects a rewritten or
	// forked history even when it was signed with the right key.
	Since *Checkpoint
	// Retention, if positive, is the minimum retention the store must
	// enforce on each segment (from its last record's time) sealed before
	// the log records a retention (ledger.retention.changed); from there
	// on, each segment must be locked for the longest recorded retention
	// among the tenants it holds. With RetentionFloor, Retention is a
	// minimum for every segment as well. Stores without an Inspector, or
	// that report no lock, fail this check.
	Retention      time.Duration
	RetentionFloor bool
	// Producers, if set, is the registry of producer keys: every signed
	// record's signature must verify with the key named after its event's
	// source instance, every producer.attested event must verify the same
	// way, and every other event must be covered by an attestation of the
	// producer it names — else Verify fails with an *UnattestedError after
	// checking everything, unless AllowUnattested. Without a registry
	// signatures are counted, not checked.
	Producers       *Producers
	AllowUnattested bool
	// AllowGaps accepts gap records (stream sequences that vanished from
	// AUDIT_EVENTS before they were sealed). Without it Verify checks
	// everything and then fails with a *GapsError listing them.
	AllowGaps bool
	// KeepTree keeps the whole Merkle tree in the report, for proofs.
	KeepTree bool
	// SkipBulk leaves the bulk pieces the events name unread (proof
	// generation, which needs the tree, not every piece's bytes); the
	// pieces are still counted, and their names' form checked.
	SkipBulk bool
	// Progress, if set, is called after each segment.
	Progress func(done, total int)
	// Parallelism bounds concurrent segment reads and hashing. Zero means
	// GOMAXPROCS+2.
	Parallelism int
	// UpTo, if not zero, is the size of a checkpoint of the store: only
	// the log up to it is verified, segments beginning at or after it and
	// checkpoints above it left unread — what a writer appends while its
	// own log is verified (VerifyWhole), not yet there when UpTo was read.
	UpTo uint64
}

// SegmentReport describes one verified segment.
type SegmentReport struct {
	Name        string
	First, End  uint64
	SHA256      Hash
	Protection  *Protection // nil if the store has no Inspector
	RequiredTil time.Time   // zero unless a retention was required
	// Required is the retention the segment needed, and RequiredBy the
	// tenant it is for ("" for VerifyOptions.Retention).
	Required   time.Duration
	RequiredBy string
}

// Report is the result of a successful Verify.
type Report struct {
	Store       string
	Origin      string
	Size        uint64
	Root        Hash
	Latest      *Checkpoint
	Checkpoints int
	Segments    []SegmentReport
	FirstTime   time.Time
	LastTime    time.Time
	Warnings    []string
	Tree        *Tree // when KeepTree
	// Chain is the chain value after the last record.
	Chain Hash
	// LastSource is the highest source stream sequence in the log.
	LastSource uint64
	// SignaturesChecked is false when no Verifier was given.
	SignaturesChecked bool
	// Gaps are the gap records in the log, in order; Rejected counts the
	// records of events that failed validation.
	Gaps     []Gap
	Rejected int
	// Signed counts the records that carry a producer signature (checked
	// when VerifyOptions.Producers was given).
	Signed int
	// With VerifyOptions.Producers: the events covered by an attestation
	// of their producer, and those that are not.
	Attested   int
	Unattested []Unattested
	// Retention is the retention the log's records last recorded (nil:
	// none), RetentionChanges how many ledger.retention.changed records
	// it holds.
	Retention        *Retention
	RetentionChanges int
	// Legacy counts the records whose events are in a legacy form
	// (events.Legacy) a verifier accepts in records sealed before the
	// writer refused it (docs/FORMAT.md §1), by form.
	Legacy map[string]int
	// Holds are the segments the store reports under legal hold, with
	// the event recording each hold (warnings name any mismatch).
	Holds []HeldSegment
	// Erasure reports the sealed fields and the erasures of data
	// subjects the log records (ledger/erasure.go).
	Erasure ErasureReport
	// Bulk counts the bulk pieces the log's events name (docs/FORMAT.md
	// §1.7), each checked once in the store, and BulkBytes their objects'
	// bytes.
	Bulk      int
	BulkBytes int64
	// UnnamedBulk lists the objects under bulk/ that no record names
	// (docs/FORMAT.md §7), sorted: a warning, not a failure, as a writer
	// stopped after copying a piece whose event it then rejected leaves
	// one; any other was put there by someone else.
	UnnamedBulk []string
}

// Unattested is an event no attestation of its producer covers: the
// producer is not registered, or stopped before it attested the event
// (a crash), or someone else published it.
type Unattested struct {
	Index    uint64
	Instance string
}

// UnattestedError is Verify's result for an intact log some of whose
// events no attestation of their producer covers. It unwraps to
// ErrUnattested.
type UnattestedError struct{ Events []Unattested }

func (e *UnattestedError) Error() string {
	first := e.Events[0]
	return fmt.Sprintf("%d event(s) not attested by the producer they name; the first: record %d, source instance %q", len(e.Events), first.Index, first.Instance)
}

func (e *UnattestedError) Unwrap() error { return ErrUnattested }

// GapsError is Verify's result for a log that is intact but records
// stream sequences that vanished before they were sealed. It unwraps to
// ErrGaps.
type GapsError struct {
	Gaps []Gap
}

func (e *GapsError) Error() string {
	var n uint64
	for _, g := range e.Gaps {
		n += g.LastSeq - g.FirstSeq + 1
	}
	first := e.Gaps[0]
	return fmt.Sprintf("the log records %d gap(s), %d stream sequence(s) that vanished from AUDIT_EVENTS before they were sealed; the first: sequences %d..%d, record %d, noticed %s (%s)",
		len(e.Gaps), n, first.FirstSeq, first.LastSeq, first.Index, first.NoticedAt.Format(time.RFC3339), first.Reason)
}

func (e *GapsError) Unwrap() error { return ErrGaps }

// Verify checks a whole store: every segment's framing, every record's
// index and leaf, the hash chain, the tree root in each trailer and in every
// checkpoint, every checkpoint's signature, that no record is missing and
// that every record is covered by a signed checkpoint; and, where the store
// can tell, that no segment is hidden or shadowed and each is locked long
// enough. It stops at the first failure, returned as a *VerifyError (or
// wrapped I/O error) naming what failed.
func Verify(ctx context.Context, store SegmentStore, opts VerifyOptions) (*Report, error) {
	rep := &Report{Store: store.String(), SignaturesChecked: opts.Verifier != nil}
	segNames, err := store.List(ctx, SegmentPrefix)
	if err != nil {
		return nil, fmt.Errorf("list segments: %w", err)
	}
	cpNames, err := store.List(ctx, CheckpointPrefix)
	if err != nil {
		return nil, fmt.Errorf("list checkpoints: %w", err)
	}
	// Every object under the two prefixes must be named as one (§4); an
	// object outside them is not part of the log, and is not read.
	for _, n := range segNames {
		if _, ok := parseObjectNumber(n, SegmentPrefix, segmentSuffix); !ok {
			return nil, verr(n, -1, "unexpected object among segments", SegmentPrefix+"<20-digit first index>"+segmentSuffix, n)
		}
	}
	bulkNames, err := store.List(ctx, BulkPrefix)
	if err != nil {
		return nil, fmt.Errorf("list bulk pieces: %w", err)
	}
	for _, n := range bulkNames {
		if _, ok := bulkNameOf(n); !ok {
			return nil, verr(n, -1, "unexpected object among bulk pieces", BulkPrefix+"<64 lower-case hex digits>", n)
		}
	}
	var sizes []uint64
	cpName := map[uint64]string{}
	for _, n := range cpNames {
		size, ok := parseObjectNumber(n, CheckpointPrefix, "")
		if !ok {
			return nil, verr(n, -1, "unexpected object among checkpoints", "checkpoints/<20-digit size>", n)
		}
		sizes = append(sizes, size)
		cpName[size] = n
	}
	slices.Sort(sizes)
	if opts.UpTo > 0 {
		segNames = slices.DeleteFunc(segNames, func(n string) bool {
			first, _ := parseObjectNumber(n, SegmentPrefix, segmentSuffix)
			return first >= opts.UpTo
		})
		sizes = slices.DeleteFunc(sizes, func(size uint64) bool { return size > opts.UpTo })
	}
	if len(segNames) == 0 && len(sizes) == 0 {
		return nil, fmt.Errorf("%w: %s holds no segments and no checkpoints: not a ledger store, or an empty one", ErrNotExist, store)
	}
	rep.Checkpoints = len(sizes)

	st := &logState{producers: opts.Producers}
	if opts.KeepTree {
		st.tree = NewTree()
	}
	// Checkpoints and the --since checkpoint are checked when the stream
	// of records reaches their size.
	checks := slices.Clone(sizes)
	if opts.Since != nil && opts.Since.Size > 0 {
		checks = append(checks, opts.Since.Size)
		slices.Sort(checks)
		checks = slices.Compact(checks)
	}
	var origin string
	checkAt := func(size uint64) error {
		root := st.root()
		if opts.Since != nil && opts.Since.Size == size && opts.Since.Root != root {
			return verr("", int64(size)-1, fmt.Sprintf("log is not consistent with the --since checkpoint at size %d (history rewritten or forked)", size),
				opts.Since.Root.Base64(), root.Base64())
		}
		if name, ok := cpName[size]; ok {
			cp, err := readCheckpoint(ctx, store, name, opts.Verifier)
			if err != nil {
				return err
			}
			if origin == "" {
				origin = cp.Origin
			} else if cp.Origin != origin {
				return verr(name, -1, "checkpoint origin", origin, cp.Origin)
			}
			if cp.Size != size {
				return verr(name, -1, "checkpoint size differs from its name", fmt.Sprint(size), fmt.Sprint(cp.Size))
			}
			if cp.Root != root {
				return verr(name, int64(size)-1, fmt.Sprintf("checkpoint root at size %d", size), root.Base64(), cp.Root.Base64())
			}
			rep.Latest = cp
		}
		checks = checks[1:]
		if len(checks) > 0 {
			st.want = checks[0]
		}
		return nil
	}
	if len(checks) > 0 {
		st.want = checks[0]
		st.atSize = checkAt
		// A checkpoint of the empty tree is checked before any record.
		if checks[0] == 0 {
			if err := checkAt(0); err != nil {
				return nil, err
			}
		}
	}

	var erasures erasureState
	inspector, _ := store.(Inspector)
	bulkSeen := map[string]bool{}
	var holdNotes []holdNote
	ctx, cancel := context.WithCancel(ctx)
	defer cancel() // stops the fetchers on an early return
	fetcher := fetchSegments(ctx, store, segNames, opts.Parallelism)
	for i, name := range segNames {
		r, err := fetcher.Next(ctx)
		if err != nil {
			return nil, err
		}
		if r.err != nil {
			var fe *SegmentFormatError
			if errors.As(r.err, &fe) {
				return nil, verr(name, -1, "segment does not parse: "+fe.Error(), "", "")
			}
			return nil, fmt.Errorf("read %s: %w", name, r.err)
		}
		seg := r.seg
		if i == 0 {
			if len(seg.Records) > 0 {
				if rec, err := ParseRecord(seg.Records[0]); err == nil {
					rep.FirstTime = rec.Time
				}
			}
		}
		if err := st.apply(name, seg, r.leaves); err != nil {
			return nil, err
		}
		erasures.add(r.notes)
		// The bytes are the ones the chain and the signed roots commit to;
		// they must still be events every reader can decode.
		if r.badErr != nil {
			return nil, verr(name, int64(seg.First)+int64(r.bad), "record body is not a valid event", "a version-1 event (docs/FORMAT.md §1)", r.badErr.Error())
		}
		if _, ok := cpName[seg.End()]; !ok {
			return nil, verr(name, int64(seg.End())-1, fmt.Sprintf("no checkpoint at the segment's end (size %d): every seal signs one", seg.End()),
				CheckpointName(seg.End()), "nothing")
		}
		sr := SegmentReport{Name: name, First: seg.First, End: seg.End(), SHA256: r.digest}
		if inspector != nil {
			p, err := inspector.Inspect(ctx, name)
			if err != nil {
				return nil, fmt.Errorf("inspect %s: %w", name, err)
			}
			sr.Protection = &p
			if len(p.Problems) > 0 {
				return nil, verr(name, -1, "segment object tampered with in the store: "+p.Problems[0], "", "")
			}
			for _, w := range p.Warnings {
				rep.Warnings = append(rep.Warnings, name+": "+w)
			}
		}
		holdNotes = append(holdNotes, r.holds...)
		rep.Warnings = append(rep.Warnings, r.warnings...)
		rep.RetentionChanges += r.retentionChanges
		for form, n := range r.legacy {
			if rep.Legacy == nil {
				rep.Legacy = map[string]int{}
			}
			rep.Legacy[form] += n
		}
		if st.retention == nil || opts.RetentionFloor {
			sr.Required = opts.Retention
		}
		if st.retention != nil {
			// The retention in force when the segment was sealed: the
			// writer records a change before the first segment it
			// applies to, and never within one.
			for _, t := range r.tenants {
				if d := st.retention.For(t); d > sr.Required {
					sr.Required, sr.RequiredBy = d, t
				}
			}
		}
		if sr.Required > 0 {
			sr.RequiredTil = RetainUntil(time.Unix(0, st.lastTime), sr.Required)
			switch {
			case sr.Protection == nil || !sr.Protection.Locked:
				return nil, verr(name, -1, "retention lock", fmt.Sprintf("locked until at least %s", sr.RequiredTil.Format(time.RFC3339)), "no lock (this store cannot enforce retention)")
			case sr.Protection.Mode != "COMPLIANCE":
				return nil, verr(name, -1, "object lock mode", "COMPLIANCE", sr.Protection.Mode)
			case sr.Protection.RetainUntil.Before(sr.RequiredTil):
				check := "object lock retain-until date"
				if sr.RequiredBy != "" {
					check += fmt.Sprintf(" (the retention recorded for tenant %q, the longest among the segment's tenants, is %s from its last record)", sr.RequiredBy, sr.Required)
				}
				return nil, verr(name, -1, check, "at least "+sr.RequiredTil.Format(time.RFC3339), sr.Protection.RetainUntil.Format(time.RFC3339))
			}
		}
		for _, b := range r.bulk {
			if bulkSeen[b.name] {
				continue // checked with the first segment naming it
			}
			bulkSeen[b.name] = true
			if !opts.SkipBulk {
				if err := verifyBulk(ctx, store, inspector, sr, b); err != nil {
					return nil, err
				}
			}
			rep.Bulk++
			rep.BulkBytes += b.size
		}
		rep.Segments = append(rep.Segments, sr)
		if opts.Progress != nil {
			opts.Progress(i+1, len(segNames))
		}
	}
	for _, n := range bulkNames {
		if name, _ := bulkNameOf(n); !bulkSeen[name] {
			rep.UnnamedBulk = append(rep.UnnamedBulk, n)
		}
	}
	if len(rep.UnnamedBulk) > 0 {
		slices.Sort(rep.UnnamedBulk)
		rep.Warnings = append(rep.Warnings, unnamedBulkWarning(rep.UnnamedBulk))
	}
	rep.Size, rep.Root, rep.Chain, rep.LastSource, rep.Tree = st.size, st.root(), st.chain, st.lastSource, st.tree
	if st.size > 0 {
		rep.LastTime = time.Unix(0, st.lastTime).UTC()
	}
	if n := len(sizes); n > 0 && sizes[n-1] > st.size {
		return nil, verr(cpName[sizes[n-1]], int64(st.size), fmt.Sprintf("checkpoint size %d exceeds the records in the store (records %d..%d missing: segment deleted or truncated?)", sizes[n-1], st.size, sizes[n-1]-1),
			fmt.Sprintf("%d records", sizes[n-1]), fmt.Sprintf("%d", st.size))
	}
	if opts.Since != nil && opts.Since.Size > st.size {
		return nil, verr("", int64(st.size), "log is shorter than the --since checkpoint (truncated)", fmt.Sprintf("at least %d records", opts.Since.Size), fmt.Sprint(st.size))
	}
	if st.size > 0 && (rep.Latest == nil || rep.Latest.Size != st.size) {
		signed := uint64(0)
		if rep.Latest != nil {
			signed = rep.Latest.Size
		}
		return nil, verr("", int64(signed), fmt.Sprintf("records %d..%d are not covered by a signed checkpoint", signed, st.size-1), fmt.Sprintf("a checkpoint at size %d", st.size), "none")
	}
	if rep.Latest == nil {
		// Only empty checkpoints: a store with no records.
		cp, err := readCheckpoint(ctx, store, cpName[0], opts.Verifier)
		if err != nil {
			return nil, err
		}
		rep.Latest = cp
	}
	if rep.Latest != nil {
		rep.Origin = rep.Latest.Origin
	}
	rep.Gaps, rep.Rejected, rep.Signed, rep.Retention = st.gaps, st.rejected, st.signed, st.retention
	checkHolds(rep, holdNotes)
	rep.Erasure = erasures.report()
	if opts.Producers != nil {
		rep.Attested, rep.Unattested = st.unattested()
	}
	if len(rep.Gaps) > 0 && !opts.AllowGaps {
		return rep, &GapsError{Gaps: rep.Gaps}
	}
	if len(rep.Unattested) > 0 && !opts.AllowUnattested {
		return rep, &UnattestedError{Events: rep.Unattested}
	}
	return rep, nil
}

// RetainUntil is the retain-until date a segment whose last record has the
// given time must carry: time + retention, rounded up to whole seconds (S3
// keeps retention dates at second precision).
func RetainUntil(last time.Time, retention time.Duration) time.Time {
	t := last.Add(retention).UTC()
	if r := t.Truncate(time.Second); !r.Equal(t) {
		return r.Add(time.Second)
	}
	return t
}

func readCheckpoint(ctx context.Context, store SegmentStore, name string, v *NoteVerifier) (*Checkpoint, error) {
	b, err := store.Get(ctx, name)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", name, err)
	}
	if v == nil {
		cp, err := ParseCheckpointBody(b)
		if err != nil {
			return nil, verr(name, -1, "checkpoint does not parse: "+err.Error(), "", "")
		}
		cp.Signed = b
		return cp, nil
	}
	cp, err := OpenCheckpoint(b, v)
	var other *OtherSignersError
	switch {
	case errors.As(err, &other):
		return nil, verr(name, -1, fmt.Sprintf("checkpoint signed by %s, not by the key given (%s): is that this log's verifier key? "+
			"(If it is, the checkpoint was replaced)", strings.Join(other.Signers, ", "), other.Want), "", "")
	case err != nil:
		return nil, verr(name, -1, "checkpoint signature (replaced or forged checkpoint?): "+err.Error(), "", "")
	}
	return cp, nil
}

type fetched struct {
	seg    *Segment
	leaves []Hash
	digest Hash
	err    error
	// bad is the first record whose event is not a valid version-1
	// event (badErr says why), checked with the hashing.
	bad    int
	badErr error
	// tenants are the tenants of the segment's events, each once; holds
	// its legal hold events; retentionChanges its retention records.
	tenants          []string
	holds            []holdNote
	retentionChanges int
	legacy           map[string]int
	warnings         []string
	// notes are its sealed fields and erasures (erasure.go).
	notes segmentNotes
	// bulk are the bulk pieces its events name, in record order.
	bulk []bulkRef
}

// bulkRef is a bulk piece a record's event names.
type bulkRef struct {
	index uint64
	name  string
	size  int64
}

// verifyBulk checks the piece b that a record of segment sr names
// (docs/FORMAT.md §7): bulk/<name> exists, of its size, its SHA-256 its
// name, and where the store reports locks and locks the segment, locked
// as the segment is, COMPLIANCE until at least its retain-until date.
func verifyBulk(ctx context.Context, store SegmentStore, inspector Inspector, sr SegmentReport, b bulkRef) error {
	name := BulkObjectName(b.name)
	data, err := store.Get(ctx, name)
	if errors.Is(err, ErrNotExist) {
		return verr(name, int64(b.index), "bulk piece the event names is not in the store", fmt.Sprintf("%s of %d bytes", name, b.size), "nothing")
	}
	if err != nil {
		return fmt.Errorf("read %s (named by record %d): %w", name, b.index, err)
	}
	if int64(len(data)) != b.size {
		return verr(name, int64(b.index), "bulk piece size", fmt.Sprintf("%d bytes", b.size), fmt.Sprintf("%d bytes", len(data)))
	}
	if got := sha256Hex(data); got != b.name {
		return verr(name, int64(b.index), "bulk piece SHA-256 (its name)", b.name, got)
	}
	if inspector == nil {
		return nil
	}
	p, err := inspector.Inspect(ctx, name)
	if err != nil {
		return fmt.Errorf("inspect %s (named by record %d): %w", name, b.index, err)
	}
	if len(p.Problems) > 0 {
		return verr(name, int64(b.index), "bulk piece tampered with in the store: "+p.Problems[0], "", "")
	}
	seg := sr.Protection
	if seg == nil || !seg.Locked {
		return nil // the store locks nothing (a local store): nothing to compare
	}
	want := seg.RetainUntil
	if sr.RequiredTil.After(want) {
		want = sr.RequiredTil
	}
	switch {
	case !p.Locked:
		return verr(name, int64(b.index), fmt.Sprintf("bulk piece lock (as %s, the first segment naming it)", sr.Name), "locked COMPLIANCE until at least "+want.Format(time.RFC3339), "no lock")
	case p.Mode != "COMPLIANCE":
		return verr(name, int64(b.index), "bulk piece object lock mode", "COMPLIANCE", p.Mode)
	case p.RetainUntil.Before(want.Truncate(time.Second)):
		return verr(name, int64(b.index), fmt.Sprintf("bulk piece retain-until date (that of %s, the first segment naming it)", sr.Name), "at least "+want.Format(time.RFC3339), p.RetainUntil.Format(time.RFC3339))
	}
	return nil
}

// segmentFetcher reads, parses and hashes segments concurrently and hands
// them out in order. At most parallelism segments are fetched ahead of the
// consumer, so memory stays bounded however fast the reads are.
type segmentFetcher struct {
	results []chan fetched
	tokens  chan struct{}
	next    int
}

func fetchSegments(ctx context.Context, store SegmentStore, names []string, parallelism int) *segmentFetcher {
	if parallelism <= 0 {
		parallelism = runtime.GOMAXPROCS(0) + 2
	}
	f := &segmentFetcher{results: make([]chan fetched, len(names)), tokens: make(chan struct{}, parallelism)}
	for i := range f.results {
		f.results[i] = make(chan fetched, 1)
	}
	for range parallelism {
		f.tokens <- struct{}{}
	}
	go func() {
		for i, name := range names {
			select {
			case <-f.tokens:
			case <-ctx.Done():
				return
			}
			go func() {
				var r fetched
				data, err := store.Get(ctx, name)
				if err == nil {
					r.digest = sha256.Sum256(data)
					r.seg, err = ParseSegment(data)
				}
				if err == nil {
					r.leaves = leafHashes(r.seg)
					r.bad, r.badErr = r.scanEvents()
				}
				r.err = err
				f.results[i] <- r
			}()
		}
	}()
	return f
}

// scanEvents finds the first record of the segment whose body is not a
// valid version-1 event (§1): a record signed into the log must still be
// an event every reader can decode. On the way it notes the tenants, the
// legal hold events and the retention records, and each event's sealed
// fields and erasures (erasure.go).
func (f *fetched) scanEvents() (int, error) {
	for i, raw := range f.seg.Records {
		r, err := ParseRecord(raw)
		if err != nil {
			return -1, nil // reported in order by the state checks
		}
		if r.Redacted() {
			return i, errors.New("the record is redacted: its event is not in the store")
		}
		ev, err := events.Parse(r.Event)
		if err != nil {
			return i, err
		}
		if b, err := events.BulkOf(ev); err != nil {
			return i, err
		} else if b != nil {
			f.bulk = append(f.bulk, bulkRef{index: f.seg.First + uint64(i), name: b.Object, size: b.Size})
		}
		if r.Bound && TenantHash(ev.Tenant) != r.Tenant {
			return i, fmt.Errorf("the record is bound to another tenant than its event's (%q)", ev.Tenant)
		}
		if !slices.Contains(f.tenants, ev.Tenant) {
			f.tenants = append(f.tenants, ev.Tenant)
		}
		f.notes.note(f.seg.First+uint64(i), ev)
		if form := events.LegacyOf(ev, r.Event); form != "" {
			if f.legacy == nil {
				f.legacy = map[string]int{}
			}
			f.legacy[form]++
		}
		switch ev.Type {
		case events.LegalHoldSet, events.LegalHoldReleased:
			// Any producer may publish one: a payload that does not parse is
			// worth a warning, and must not make an intact log unverifiable.
			var h LegalHold
			if err := json.Unmarshal(ev.Payload, &h); err != nil {
				f.warnings = append(f.warnings, fmt.Sprintf("record %d: %s payload does not parse, so it names no segment: %v", r.Index, ev.Type, err))
				continue
			}
			f.holds = append(f.holds, holdNote{index: r.Index, set: ev.Type == events.LegalHoldSet, hold: h})
		case events.LedgerRetentionChanged:
			f.retentionChanges++
		}
	}
	return -1, nil
}

// Next returns the next segment in order.
func (f *segmentFetcher) Next(ctx context.Context) (fetched, error) {
	select {
	case r := <-f.results[f.next]:
		f.next++
		f.tokens <- struct{}{}
		return r, nil
	case <-ctx.Done():
		return fetched{}, ctx.Err()
	}
}

// unnamedBulkWarning says which objects under bulk/ no record names
// (the first 20 of them).
func unnamedBulkWarning(names []string) string {
	list := names
	more := ""
	if len(list) > 20 {
		list, more = list[:20], fmt.Sprintf(" and %d more", len(names)-20)
	}
	return fmt.Sprintf("%d object(s) under %s that no record names: %s%s (a writer stopped after copying a piece whose event it then rejected leaves one; anything else was put there by someone else: read what it holds)",
		len(names), BulkPrefix, strings.Join(list, ", "), more)
}
