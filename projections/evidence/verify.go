package evidence

import (
	"archive/zip"
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/auditledger/auditledger/compliance"
	"github.com/auditledger/auditledger/events"
	"github.com/auditledger/auditledger/ledger"
)

// VerifyOptions says what to trust. Both keys are the ones the auditor
// got from the operator, outside the bundle: Verify refuses to start
// without either, unless TrustBundleKeys says to use the bundle's own
// copies for those missing — and then the report's UnverifiedOrigin is
// set, since whoever built the bundle chose the keys it is checked with.
type VerifyOptions struct {
	LogVerifier    *ledger.NoteVerifier
	AllowedSigners []ssh.PublicKey
	// GrantVerifier is the key that signs access grants (the API's
	// approvals.vkey), as the operator published it: the assertions
	// check grants' signatures with it (privileged-sessions-granted).
	// Needed only when a grant's signature is to be checked: Verify
	// fails naming the record when it is and no key is given.
	GrantVerifier *ledger.NoteVerifier
	// TrustBundleKeys uses keys/log.vkey, keys/allowed_signers and
	// keys/grant.vkey for the keys not given; the result is then of
	// unverified origin.
	TrustBundleKeys bool
	// AllowUnlocked accepts segments the store did not report locked in
	// COMPLIANCE mode (a local development store), with a warning.
	AllowUnlocked bool
	// Retention, if set, is how long after its sealing each segment must
	// stay locked, whatever the log records: a minimum the auditor
	// demands. The tenant's own retention, as the bundle's retention
	// records give it, is checked in any case.
	Retention time.Duration
	Now       func() time.Time
}

// Report is what a verification found.
type Report struct {
	Manifest *Manifest
	// UnverifiedOrigin: a key was taken from the bundle itself
	// (TrustBundleKeys), so the checks prove the bundle consistent, not
	// that the operator's log and exporter made it.
	UnverifiedOrigin bool
	Segments         []Segment
	Warnings         []string
	// Sealed and Erased count the sealed fields of the tenant's events,
	// and those the manifest names erased (checked against the events).
	Sealed, Erased int
	// Retention lists the retention records folded for the tenant, in
	// log order: its own and the default's, before and in the range.
	Retention []RetentionSeen
	// Required is, per segment of Segments, the retention the tenant's
	// records in it required (0: none recorded, or none of its records).
	Required []time.Duration
	// Held names the segments the legal-hold records leave held.
	Held []string
	// Rederived is how many assertions were re-derived with the
	// summaries, OSCAL results and report (check 11); 0 when they were
	// not (see Warnings).
	Rederived int
	// Tables is how many control tables were re-derived from the records
	// (check 11); Vouched names those queried on the projection, which
	// rest on the evidence key alone.
	Tables  int
	Vouched []string
}

// RetentionSeen is one retention record the verifier folded.
type RetentionSeen struct {
	Index uint64
	// Tenant is the bundle's tenant, or "*" for the default.
	Tenant string
	New    string // as the record says it: "2555d", "default", "none"
	// InForce is the tenant's retention from this record on.
	InForce time.Duration
}

// VerifyError names the file, and the record where there is one, of the
// first check that failed.
type VerifyError struct {
	File  string
	Index *uint64
	Err   error
}

func (e *VerifyError) Error() string {
	if e.Index != nil {
		return fmt.Sprintf("%s: index %d: %v", e.File, *e.Index, e.Err)
	}
	return fmt.Sprintf("%s: %v", e.File, e.Err)
}

func (e *VerifyError) Unwrap() error { return e.Err }

// ErrKeysRequired: Verify was given neither the operator's keys nor
// TrustBundleKeys.
var ErrKeysRequired = errors.New("evidence: the operator's keys are required")

// grantKey is the key the assertions check grants' signatures with: the
// operator's (opts.GrantVerifier), else with TrustBundleKeys the bundle's
// keys/grant.vkey (the result then of unverified origin), else none. The
// bundle's copy must be the manifest's grant_vkey; when it is not the
// operator's key, a warning says so (the re-derivation decides whether
// that changes a row).
func grantKey(files map[string]*zip.File, m *Manifest, opts VerifyOptions, rep *Report) (compliance.GrantKey, error) {
	var shipped string
	if files[GrantKeyFile] != nil {
		b, err := readZip(files, GrantKeyFile, 4096)
		if err != nil {
			return nil, err
		}
		if shipped = strings.TrimSpace(string(b)); shipped != m.GrantVKey {
			return nil, failf(GrantKeyFile, "is not the manifest's grant_vkey %q", m.GrantVKey)
		}
	} else if m.GrantVKey != "" {
		return nil, failf(GrantKeyFile, "missing, while the manifest names grant_vkey %q", m.GrantVKey)
	}
	if v := opts.GrantVerifier; v != nil {
		if shipped != "" && shipped != v.String() {
			rep.Warnings = append(rep.Warnings, fmt.Sprintf("the bundle was built with the grant key %s (keys/grant.vkey), not the one given (%s): the assertions were re-derived with the one given", shipped, v.String()))
		}
		return v.OpenNote, nil
	}
	if !opts.TrustBundleKeys || shipped == "" {
		return nil, nil
	}
	v, err := ledger.NewNoteVerifier(shipped)
	if err != nil {
		return nil, failf(GrantKeyFile, "%v", err)
	}
	rep.UnverifiedOrigin = true
	rep.Warnings = append(rep.Warnings, "unverified origin: access grants' signatures were checked with the bundle's own keys/grant.vkey, which whoever built it chose: give --grant-vkey with the grant key the operator published")
	return v.OpenNote, nil
}

// verifySigned checks that sig is an SSH signature of data, in the
// bundle's namespace, by one of signers.
func verifySigned(file string, sig, data []byte, signers []ssh.PublicKey) error {
	key, err := SSHVerify(sig, data, Namespace)
	if err != nil {
		return failf(file, "%v", err)
	}
	for _, k := range signers {
		if bytes.Equal(k.Marshal(), key.Marshal()) {
			return nil
		}
	}
	return failf(file, "signed by %s, which the allowed signers do not hold", ssh.FingerprintSHA256(key))
}

func failf(file string, format string, args ...any) error {
	return &VerifyError{File: file, Err: fmt.Errorf(format, args...)}
}

func failAt(file string, idx uint64, format string, args ...any) error {
	return &VerifyError{File: file, Index: &idx, Err: fmt.Errorf(format, args...)}
}

// Verify checks a bundle offline, in the order of docs/FORMAT.md §12, and
// returns the first failure. It streams the records and events: memory
// does not grow with the bundle.
func Verify(r io.ReaderAt, size int64, opts VerifyOptions) (*Report, error) {
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if !opts.TrustBundleKeys {
		var missing []string
		if opts.LogVerifier == nil {
			missing = append(missing, "the log's verifier key (--vkey)")
		}
		if len(opts.AllowedSigners) == 0 {
			missing = append(missing, "the evidence signer key (--allowed-signers)")
		}
		if len(missing) > 0 {
			return nil, fmt.Errorf("%w: give %s as the operator published them, outside the bundle; the keys inside it are the builder's choice (--trust-bundle-keys uses them, and the result is of unverified origin)", ErrKeysRequired, strings.Join(missing, " and "))
		}
	}
	zr, err := zip.NewReader(r, size)
	if err != nil {
		return nil, failf("bundle", "not a zip file: %v", err)
	}
	files := map[string]*zip.File{}
	for _, f := range zr.File {
		if files[f.Name] != nil {
			return nil, failf(f.Name, "appears twice in the zip")
		}
		files[f.Name] = f
	}
	read := func(name string, max int64) ([]byte, error) { return readZip(files, name, max) }

	// 1. The manifest and its signature.
	manifest, err := read(ManifestFile, 64<<20)
	if err != nil {
		return nil, err
	}
	var m Manifest
	dec := json.NewDecoder(bytes.NewReader(manifest))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&m); err != nil {
		return nil, failf(ManifestFile, "%v", err)
	}
	if m.Format != Format && m.Format != FormatV1 {
		return nil, failf(ManifestFile, "format %q, want %q", m.Format, Format)
	}
	rep := &Report{Manifest: &m}
	if m.Format == FormatV1 {
		rep.Warnings = append(rep.Warnings, "a bundle of the first layout ("+FormatV1+"): its SHA256SUMS is not signed, so only this verifier, not ssh-keygen and sha256sum alone, proves its files")
	}
	sig, err := read(SignatureFile, 64<<10)
	if err != nil {
		return nil, err
	}
	signers := opts.AllowedSigners
	if len(signers) == 0 {
		rep.UnverifiedOrigin = true
		b, err := read(SignersFile, 64<<10)
		if err != nil {
			return nil, err
		}
		if signers, err = ParseAllowedSigners(b); err != nil {
			return nil, failf(SignersFile, "%v", err)
		}
		rep.Warnings = append(rep.Warnings, "unverified origin: the signatures were checked against the bundle's own keys/allowed_signers, which whoever built it chose: give --allowed-signers with the key the operator published")
	}
	if err := verifySigned(SignatureFile, sig, manifest, signers); err != nil {
		return nil, err
	}

	// 2. Every file is the one the manifest lists, SHA256SUMS agrees, and
	// nothing else is in the zip.
	listed := map[string]File{}
	for _, f := range m.Files {
		if _, dup := listed[f.Path]; dup {
			return nil, failf(ManifestFile, "lists %s twice", f.Path)
		}
		listed[f.Path] = f
	}
	for name := range files {
		switch name {
		case ManifestFile, SignatureFile, SumsFile:
			continue
		case SumsSigFile:
			if m.Format != FormatV1 {
				continue
			}
		}
		if _, ok := listed[name]; !ok {
			return nil, failf(name, "in the zip but not in the manifest")
		}
	}
	for _, f := range m.Files {
		zf := files[f.Path]
		if zf == nil {
			return nil, failf(f.Path, "listed in the manifest, missing from the zip")
		}
		rc, err := zf.Open()
		if err != nil {
			return nil, failf(f.Path, "%v", err)
		}
		h := sha256.New()
		n, err := io.Copy(h, rc)
		rc.Close()
		if err != nil {
			return nil, failf(f.Path, "%v", err)
		}
		if n != f.Size || hex.EncodeToString(h.Sum(nil)) != f.SHA256 {
			return nil, failf(f.Path, "does not match the manifest (%d bytes, SHA-256 %x; the manifest says %d bytes, %s): changed after signing", n, h.Sum(nil), f.Size, f.SHA256)
		}
	}
	sums, err := read(SumsFile, 64<<20)
	if err != nil {
		return nil, err
	}
	// SHA256SUMS is exactly what the builder writes: every listed file,
	// then the manifest and (since FormatV1) its signature, in that order;
	// and it is signed with the same key.
	mh, sh := sha256.Sum256(manifest), sha256.Sum256(sig)
	tail := []File{{Path: ManifestFile, SHA256: hex.EncodeToString(mh[:])}}
	if m.Format != FormatV1 {
		tail = append(tail, File{Path: SignatureFile, SHA256: hex.EncodeToString(sh[:])})
	}
	wantSums := sumsOf(append(slices.Clone(m.Files), tail...))
	if string(sums) != wantSums {
		got, want := strings.Split(string(sums), "\n"), strings.Split(wantSums, "\n")
		for i := range max(len(got), len(want)) {
			if i >= len(got) || i >= len(want) || got[i] != want[i] {
				g := "(nothing)"
				if i < len(got) {
					g = fmt.Sprintf("%q", got[i])
				}
				return nil, failf(SumsFile, "does not match the manifest: line %d is %s, the manifest gives %q", i+1, g, want[min(i, len(want)-1)])
			}
		}
	}
	if m.Format != FormatV1 {
		ssig, err := read(SumsSigFile, 64<<10)
		if err != nil {
			return nil, err
		}
		if err := verifySigned(SumsSigFile, ssig, sums, signers); err != nil {
			return nil, err
		}
	}

	// 3. The checkpoints.
	v := opts.LogVerifier
	if v == nil {
		b, err := read(LogKeyFile, 4096)
		if err != nil {
			return nil, err
		}
		if v, err = ledger.NewNoteVerifier(strings.TrimSpace(string(b))); err != nil {
			return nil, failf(LogKeyFile, "%v", err)
		}
		rep.UnverifiedOrigin = true
		rep.Warnings = append(rep.Warnings, "unverified origin: the checkpoints were checked with the bundle's own keys/log.vkey, which whoever built it chose: give --vkey with the log's verifier key the operator published")
	}
	open := func(name string, size uint64) (*ledger.Checkpoint, error) {
		b, err := read(name, 64<<10)
		if err != nil {
			return nil, err
		}
		cp, err := ledger.OpenCheckpoint(b, v)
		if err != nil {
			return nil, failf(name, "%v", err)
		}
		if cp.Size != size {
			return nil, failf(name, "a checkpoint of tree size %d, but the range says %d", cp.Size, size)
		}
		return cp, nil
	}
	end, err := open(EndCheckpoint, m.Range.End)
	if err != nil {
		return nil, err
	}
	startRoot := ledger.EmptyRoot
	if m.Range.First > 0 {
		start, err := open(StartCheckpoint, m.Range.First)
		if err != nil {
			return nil, err
		}
		startRoot = start.Root
	} else if files[StartCheckpoint] != nil {
		return nil, failf(StartCheckpoint, "present, but the range starts at the empty tree")
	}

	// 4. The consistency proof between them.
	cb, err := read(ConsistencyFile, 64<<10)
	if err != nil {
		return nil, err
	}
	cons, err := ledger.ParseConsistencyProof(cb)
	if err != nil {
		return nil, failf(ConsistencyFile, "%v", err)
	}
	if cons.Old != m.Range.First || cons.New != m.Range.End {
		return nil, failf(ConsistencyFile, "a proof from %d to %d, the range is %d to %d", cons.Old, cons.New, m.Range.First, m.Range.End)
	}
	if err := ledger.VerifyConsistency(cons.Old, cons.New, cons.Hashes, startRoot, end.Root); err != nil {
		return nil, failf(ConsistencyFile, "does not prove the end checkpoint extends the start checkpoint: %v", err)
	}

	// 5. The compact range before the range: the start root.
	pb, err := read(PrefixFile, 64<<10)
	if err != nil {
		return nil, err
	}
	cr, err := parsePrefix(pb)
	if err != nil {
		return nil, failf(PrefixFile, "%v", err)
	}
	if cr.Size() != m.Range.First || cr.Root() != startRoot {
		return nil, failf(PrefixFile, "does not give the start checkpoint's root at size %d", m.Range.First)
	}

	// The segments are read now, so the records can note which hold the
	// tenant's; they are checked last (step 8).
	sb, err := read(SegmentsFile, 256<<20)
	if err != nil {
		return nil, err
	}
	if err := json.Unmarshal(sb, &rep.Segments); err != nil {
		return nil, failf(SegmentsFile, "%v", err)
	}

	// 6. The tenant's and the default's retention records before the
	// range, each proven in the start tree.
	fold := &retentionFold{}
	rb, err := read(RetentionFile, 64<<20)
	if err != nil {
		return nil, err
	}
	if len(rb) > 0 {
		for i, line := range bytes.Split(bytes.TrimSuffix(rb, []byte("\n")), []byte("\n")) {
			idx, r, err := parseRetentionLine(line, m.Range.First, startRoot)
			if err == nil {
				err = checkRetentionBinding(r)
			}
			var c *ledger.RetentionChange
			if err == nil {
				c, err = retentionFor(r.Event, m.Tenant)
				if err == nil && c == nil {
					err = fmt.Errorf("not a retention record of tenant %q or of the default", m.Tenant)
				}
			}
			if err == nil {
				err = fold.note(idx, c)
			}
			if err != nil {
				return nil, failf(RetentionFile, "line %d (index %d): %v", i+1, idx, err)
			}
			rep.Retention = append(rep.Retention, fold.seen(idx, c))
		}
	}

	// 7. Every record of the range, the tenant's events beside them.
	sealed := newSealedCheck(&m)
	holds := make([]bool, len(rep.Segments))
	derived := newContext(m.Tenant)
	grants, err := grantKey(files, &m, opts, rep)
	if err != nil {
		return nil, err
	}
	der, err := newDerivation(files, &m, grants)
	if err != nil {
		return nil, err
	}
	n, err := verifyRecords(files, &m, cr, sealed, derived, der.note, func(idx uint64, at time.Time) error {
		return checkSealedAt(rep, idx, at)
	}, func(idx uint64, c *ledger.RetentionChange) error {
		if c == nil {
			// One of the tenant's records: mark the segment holding it.
			i := sort.Search(len(rep.Segments), func(i int) bool { return rep.Segments[i].Size > idx })
			if i < len(holds) {
				holds[i] = true
			}
			return nil
		}
		if err := fold.note(idx, c); err != nil {
			return err
		}
		rep.Retention = append(rep.Retention, fold.seen(idx, c))
		return nil
	})
	if err != nil {
		return nil, err
	}
	if err := sealed.done(); err != nil {
		return nil, err
	}
	rep.Sealed, rep.Erased = sealed.count, sealed.erased
	if cr.Root() != end.Root {
		return nil, failf(RecordsFile, "the records do not give the end checkpoint's root: a record was changed, removed or added")
	}
	if n != m.Events {
		return nil, failf(ManifestFile, "says %d events, the records hold %d of the tenant's", m.Events, n)
	}
	// The context, re-derived from the records: byte for byte what the
	// bundle holds (a bundle built before it carried none is warned of).
	if files[PoliciesFile] == nil && files[IdentitiesFile] == nil && files[ClockFile] == nil {
		rep.Warnings = append(rep.Warnings, "the bundle carries no context/ (built before bundles did): the policies, identity snapshots and clock status are in events.jsonl and auditledger verify --store")
	} else {
		for path, want := range derived.files() {
			got, err := read(path, 64<<20)
			if err != nil {
				return nil, err
			}
			if !bytes.Equal(got, want) {
				return nil, failf(path, "differs from what the range's records give (re-derived by the verifier): the context was changed")
			}
		}
	}

	// 8. The segments: they cover the range, locked write-once, each
	// holding the tenant's records for the tenant's retention.
	if err := checkSegments(rep, opts, fold, holds); err != nil {
		return nil, err
	}

	// 9. The legal holds: the records, proven in the newest checkpoint at
	// building, and what they and the store say of each segment.
	if m.LegalHolds == nil {
		rep.Warnings = append(rep.Warnings, "the bundle carries no legal-hold records (built before bundles did): auditledger verify --store reports legal holds")
		if err := der.check(files, rep); err != nil {
			return nil, err
		}
		return rep, nil
	}
	lh := m.LegalHolds
	if lh.AsOf < m.Range.End {
		return nil, failf(ManifestFile, "legal_holds.as_of %d is before the range's end %d", lh.AsOf, m.Range.End)
	}
	latest, err := open(LatestCheckpoint, lh.AsOf)
	if err != nil {
		return nil, err
	}
	lb, err := read(LatestConsistencyFile, 64<<10)
	if err != nil {
		return nil, err
	}
	lcons, err := ledger.ParseConsistencyProof(lb)
	if err != nil {
		return nil, failf(LatestConsistencyFile, "%v", err)
	}
	if lcons.Old != m.Range.End || lcons.New != lh.AsOf {
		return nil, failf(LatestConsistencyFile, "a proof from %d to %d, want %d (the range's end) to %d (legal_holds.as_of)", lcons.Old, lcons.New, m.Range.End, lh.AsOf)
	}
	if err := ledger.VerifyConsistency(lcons.Old, lcons.New, lcons.Hashes, end.Root, latest.Root); err != nil {
		return nil, failf(LatestConsistencyFile, "does not prove %s extends the end checkpoint: %v", LatestCheckpoint, err)
	}
	hb, err := read(LegalHoldsFile, 64<<20)
	if err != nil {
		return nil, err
	}
	hf := &holdFold{}
	if len(hb) > 0 {
		for i, line := range bytes.Split(bytes.TrimSuffix(hb, []byte("\n")), []byte("\n")) {
			idx, p, err := parseLegalHoldLine(line, m.Range.First, m.Range.End, lh.AsOf, latest.Root)
			if err == nil && len(hf.holds) > 0 && idx <= hf.holds[len(hf.holds)-1].index {
				err = fmt.Errorf("after index %d: out of order", hf.holds[len(hf.holds)-1].index)
			}
			if err != nil {
				return nil, failf(LegalHoldsFile, "line %d (index %d): %v", i+1, idx, err)
			}
			hf.holds = append(hf.holds, p)
		}
	}
	if len(hf.holds) != lh.Records {
		return nil, failf(ManifestFile, "legal_holds.records says %d, %s has %d", lh.Records, LegalHoldsFile, len(hf.holds))
	}
	if err := checkHolds(rep, opts, hf); err != nil {
		return nil, err
	}
	// The writer's full verifications sealed after the range, proven in
	// the same newest checkpoint: 5.33 and 8.15 are derived from them.
	if err := der.noteVerifications(files, &m, latest.Root, rep); err != nil {
		return nil, err
	}
	// 11. The assertions, the summaries, the OSCAL results and the
	// report, re-derived from the bundle's own events.
	if err := der.check(files, rep); err != nil {
		return nil, err
	}
	return rep, nil
}

// checkHolds checks each segment's legal hold against the legal-hold
// records (hf), and, when the bundle was built with the store, against
// what the store reported for the segment and the checkpoint at its end,
// whose lock is checked as the segment's is.
func checkHolds(rep *Report, opts VerifyOptions, hf *holdFold) error {
	lh := rep.Manifest.LegalHolds
	now := opts.Now()
	var held, unlocked, stray []string
	for _, s := range rep.Segments {
		h, by, ok := hf.at(s.First, s.Size)
		if s.LegalHold != h || (s.LegalHoldBy == nil) == ok || ok && *s.LegalHoldBy != by {
			want := "no legal-hold record concerns it"
			if ok {
				want = fmt.Sprintf("record %d leaves legal_hold %v", by, h)
			}
			return failf(SegmentsFile, "%s: legal_hold %v (by %s), but %s", s.Name, s.LegalHold, indexOrNone(s.LegalHoldBy), want)
		}
		if h {
			held = append(held, s.Name)
		}
		if lh.Store == "" {
			continue
		}
		if s.StoreLegalHold == nil || s.Checkpoint == nil {
			return failf(SegmentsFile, "%s: the bundle was built with store %s, but the segment has no store_legal_hold or checkpoint", s.Name, lh.Store)
		}
		if s.Checkpoint.Name != ledger.CheckpointName(s.Size) {
			return failf(SegmentsFile, "%s: checkpoint %s, want %s (the checkpoint signed at its end)", s.Name, s.Checkpoint.Name, ledger.CheckpointName(s.Size))
		}
		switch {
		case h && !*s.StoreLegalHold:
			return failf(SegmentsFile, "%s: legal_hold.set at record %d holds it, but the store reported it not under legal hold", s.Name, by)
		case h && !s.Checkpoint.LegalHold:
			return failf(SegmentsFile, "%s: legal_hold.set at record %d holds it and its checkpoint %s, but the store reported the checkpoint not under legal hold", s.Name, by, s.Checkpoint.Name)
		case !h && (*s.StoreLegalHold || s.Checkpoint.LegalHold):
			stray = append(stray, s.Name)
		}
		cp := Segment{Name: s.Checkpoint.Name + " (of " + s.Name + ")", LockMode: s.Checkpoint.LockMode, RetainUntil: s.Checkpoint.RetainUntil}
		if !cp.Locked(now) {
			msg := cp.notLocked()
			if !opts.AllowUnlocked {
				return failf(SegmentsFile, "%s", msg)
			}
			unlocked = append(unlocked, msg)
		}
	}
	if strings.Join(held, "\n") != strings.Join(lh.Held, "\n") {
		return failf(ManifestFile, "legal_holds.held names %v, the legal-hold records hold %v", lh.Held, held)
	}
	rep.Held = held
	if len(stray) > 0 {
		rep.Warnings = append(rep.Warnings, fmt.Sprintf("%d segment(s) under a legal hold the log does not record as set (released, or set without its record), e.g. %s", len(stray), stray[0]))
	}
	if len(unlocked) > 0 {
		rep.Warnings = append(rep.Warnings, fmt.Sprintf("%d checkpoint(s) of the segments not write-once-locked (accepted: allow-unlocked); the first: %s", len(unlocked), unlocked[0]))
	}
	if lh.Store == "" && len(held) > 0 {
		rep.Warnings = append(rep.Warnings, fmt.Sprintf("%d segment(s) held by the log's legal-hold records; the bundle was built without the store, so whether the store holds them is not in it: auditledger legal-hold status --store reports it", len(held)))
	}
	return nil
}

func indexOrNone(i *uint64) string {
	if i == nil {
		return "none"
	}
	return strconv.FormatUint(*i, 10)
}

// ledgerTenant is the tenant hash of the log's own records.
var ledgerTenant = ledger.TenantHash(ledger.SystemTenant)

func parsePrefix(b []byte) (*ledger.CompactRange, error) {
	lines := strings.Split(strings.TrimSuffix(string(b), "\n"), "\n")
	if len(lines) < 2 || lines[0] != "auditledger compact range v1" || !strings.HasPrefix(lines[1], "size ") {
		return nil, errors.New("not a compact range (want \"auditledger compact range v1\", \"size N\", then the hashes)")
	}
	size, err := strconv.ParseUint(strings.TrimPrefix(lines[1], "size "), 10, 64)
	if err != nil {
		return nil, err
	}
	var hashes []ledger.Hash
	for _, l := range lines[2:] {
		raw, err := base64.StdEncoding.Strict().DecodeString(l)
		if err != nil || len(raw) != ledger.HashSize {
			return nil, fmt.Errorf("hash %q", l)
		}
		hashes = append(hashes, ledger.Hash(raw))
	}
	return ledger.NewCompactRange(size, hashes)
}

// verifyRecords reads log/records.bin and events.jsonl side by side: each
// record of the range in order, its leaf appended to cr; the tenant's
// whole, with the matching line of events.jsonl; the others redacted and
// bound to another tenant. It returns how many of the tenant's it saw.
//
// seen is told each of the tenant's events and each clock status record.
// note is told each of the tenant's records (c nil) and each retention
// record of the tenant or the default (c set), in index order. The
// default's are the only records of another tenant shown whole.
func verifyRecords(files map[string]*zip.File, m *Manifest, cr *ledger.CompactRange, sealed *sealedCheck, derived *contextOf, seen func(idx uint64, at time.Time, event []byte, system bool), sealedAt func(idx uint64, at time.Time) error, note func(idx uint64, c *ledger.RetentionChange) error) (int, error) {
	rf, ef := files[RecordsFile], files[EventsFile]
	if rf == nil {
		return 0, failf(RecordsFile, "missing from the bundle")
	}
	if ef == nil {
		return 0, failf(EventsFile, "missing from the bundle")
	}
	rrc, err := rf.Open()
	if err != nil {
		return 0, failf(RecordsFile, "%v", err)
	}
	defer rrc.Close()
	erc, err := ef.Open()
	if err != nil {
		return 0, failf(EventsFile, "%v", err)
	}
	defer erc.Close()
	records := bufio.NewReaderSize(rrc, 256<<10)
	lines := bufio.NewScanner(erc)
	lines.Buffer(make([]byte, 0, 64<<10), ledger.MaxRecordSize*2)
	tenant := ledger.TenantHash(m.Tenant)
	var frame [4]byte
	buf := make([]byte, 0, 4096)
	var want []byte // the line the builder writes
	count := 0
	line := 0
	for idx := m.Range.First; idx < m.Range.End; idx++ {
		if _, err := io.ReadFull(records, frame[:]); err != nil {
			return count, failAt(RecordsFile, idx, "missing: the file ends before the range does (%v)", err)
		}
		size := binary.BigEndian.Uint32(frame[:])
		if size > ledger.MaxRecordSize {
			return count, failAt(RecordsFile, idx, "a record of %d bytes", size)
		}
		if int(size) > cap(buf) {
			buf = make([]byte, 0, size)
		}
		buf = buf[:size]
		if _, err := io.ReadFull(records, buf); err != nil {
			return count, failAt(RecordsFile, idx, "cut short: %v", err)
		}
		r, err := ledger.ParseRecord(buf)
		if err != nil {
			return count, failAt(RecordsFile, idx, "%v", err)
		}
		if r.Index != idx {
			return count, failAt(RecordsFile, idx, "holds record %d here: records removed, added or reordered", r.Index)
		}
		if !r.Bound {
			return count, failAt(RecordsFile, idx, "version %#x records cannot prove one tenant's completeness (FORMAT §2.4)", buf[0])
		}
		if err := sealedAt(idx, r.Time); err != nil {
			return count, err
		}
		leaf := ledger.LeafHash(buf)
		cr.Append(leaf)
		if r.Tenant != tenant {
			if r.Redacted() {
				continue
			}
			// The default's retention records (tenant _ledger) are
			// shown whole: the tenant's retention may be the default;
			// and the log's clock status records, the context of the
			// records' times.
			if r.Tenant == ledgerTenant && isClockStatus(r.Event) {
				if t, err := events.PeekTenant(r.Event); err != nil || t != ledger.SystemTenant {
					return count, failAt(RecordsFile, idx, "a clock status record of tenant %q bound to the log's own records", t)
				}
				if err := derived.note(idx, r.Time, r.Event); err != nil {
					return count, failAt(RecordsFile, idx, "%v", err)
				}
				seen(idx, r.Time, r.Event, true)
				continue
			}
			if r.Tenant == ledgerTenant {
				if c, err := retentionFor(r.Event, m.Tenant); err == nil && c != nil && c.Tenant == ledger.DefaultTenant {
					if err := checkRetentionBinding(r); err != nil {
						return count, failAt(RecordsFile, idx, "%v", err)
					}
					if err := note(idx, c); err != nil {
						return count, failAt(RecordsFile, idx, "%v", err)
					}
					continue
				}
			}
			return count, failAt(RecordsFile, idx, "an event of another tenant is in the bundle: other tenants' records must be redacted (but the default's retention records)")
		}
		if r.Redacted() {
			return count, failAt(RecordsFile, idx, "the tenant's record is redacted: its event was withheld")
		}
		if t, err := events.PeekTenant(r.Event); err != nil || t != m.Tenant {
			return count, failAt(RecordsFile, idx, "the event's tenant is %q, not %q", t, m.Tenant)
		}
		if err := derived.note(idx, r.Time, r.Event); err != nil {
			return count, failAt(RecordsFile, idx, "%v", err)
		}
		count++
		// Its line in events.jsonl.
		line++
		if !lines.Scan() {
			return count, failAt(EventsFile, idx, "no line for the tenant's record (the file has %d lines): an event was removed", line-1)
		}
		// The line the builder writes for the record (appendEventLine) is
		// the record's: each member below is what the record says (its
		// event, which the context read above, a JSON object). Any other
		// line is decoded and compared member by member.
		want = appendEventLine(want[:0], idx, leaf, r.Time, r.Event)
		if !bytes.Equal(lines.Bytes(), want) || len(r.Event) < 2 || r.Event[0] != '{' || r.Event[len(r.Event)-1] != '}' || r.Time.UTC().Year() < 0 || r.Time.UTC().Year() > 9999 {
			if err := checkEventLine(lines.Bytes(), line, idx, leaf, r.Event, r.Time); err != nil {
				return count, err
			}
		}
		sealed.note(idx, r.Event)
		seen(idx, r.Time, r.Event, false)
		if err := note(idx, nil); err != nil {
			return count, failAt(RecordsFile, idx, "%v", err)
		}
		c, err := retentionFor(r.Event, m.Tenant)
		if err == nil && c != nil {
			err = note(idx, c)
		}
		if err != nil {
			return count, failAt(RecordsFile, idx, "%v", err)
		}
	}
	if extra, err := records.Peek(1); len(extra) > 0 || err == nil {
		return count, failAt(RecordsFile, m.Range.End, "records after the range's end: added")
	}
	if lines.Scan() {
		return count, failf(EventsFile, "line %d: more lines than the tenant has records in the range: an event was added (%.80s)", line+1, lines.Text())
	}
	if err := lines.Err(); err != nil {
		return count, failf(EventsFile, "%v", err)
	}
	return count, nil
}

// checkEventLine checks line number line of events.jsonl, b, against the
// tenant's record idx: its leaf hash, event and sealing time.
func checkEventLine(b []byte, line int, idx uint64, leaf ledger.Hash, event []byte, at time.Time) error {
	var l struct {
		Index  uint64          `json:"index"`
		Leaf   string          `json:"leaf"`
		Sealed time.Time       `json:"sealed_at"`
		Event  json.RawMessage `json:"event"`
	}
	if err := json.Unmarshal(b, &l); err != nil {
		return failf(EventsFile, "line %d: %v", line, err)
	}
	switch {
	case l.Index != idx:
		return failf(EventsFile, "line %d is index %d, the tenant's next record is %d: an event was added or removed", line, l.Index, idx)
	case l.Leaf != hex.EncodeToString(leaf[:]):
		return failAt(EventsFile, idx, "line %d: leaf %s, the record's is %x", line, l.Leaf, leaf)
	case !bytes.Equal(l.Event, event):
		return failAt(EventsFile, idx, "line %d: the event differs from the sealed record's", line)
	case !l.Sealed.Equal(at):
		return failAt(EventsFile, idx, "line %d: sealed_at %s, the record says %s", line, l.Sealed.Format(time.RFC3339Nano), at.Format(time.RFC3339Nano))
	}
	return nil
}

// checkSealedAt binds the manifest's period and sealing times, and each
// segment's sealed, to the records' own times (signed by the checkpoints):
// every record of the range was sealed in [period.from, period.to) — the
// range holds the period's records and no other (FORMAT §12, The range);
// range.first_sealed and last_sealed are the first and last record's
// time, and a segment's sealed the time of its records, each to the
// microsecond (truncated: they are read from the projection, which keeps
// microseconds).
func checkSealedAt(rep *Report, idx uint64, at time.Time) error {
	m := rep.Manifest
	at = at.UTC()
	if at.Before(m.Period.From) || !at.Before(m.Period.To) {
		return failAt(RecordsFile, idx, "sealed at %s, outside the period %s to %s: the range is not the period's", at.Format(time.RFC3339Nano),
			m.Period.From.Format(time.RFC3339Nano), m.Period.To.Format(time.RFC3339Nano))
	}
	us := at.Truncate(time.Microsecond)
	if idx == m.Range.First && (m.Range.FirstSealed == nil || !m.Range.FirstSealed.Equal(us)) {
		return failf(ManifestFile, "range.first_sealed %v, record %d was sealed at %s", m.Range.FirstSealed, idx, us.Format(time.RFC3339Nano))
	}
	if idx+1 == m.Range.End && (m.Range.LastSealed == nil || !m.Range.LastSealed.Equal(us)) {
		return failf(ManifestFile, "range.last_sealed %v, record %d was sealed at %s", m.Range.LastSealed, idx, us.Format(time.RFC3339Nano))
	}
	i := sort.Search(len(rep.Segments), func(i int) bool { return rep.Segments[i].Size > idx })
	if i < len(rep.Segments) && rep.Segments[i].First <= idx && !rep.Segments[i].Sealed.Equal(us) {
		s := rep.Segments[i]
		return failf(SegmentsFile, "%s says sealed %s, its record %d was sealed at %s: the time its retention is counted from is not the log's", s.Name,
			s.Sealed.Format(time.RFC3339Nano), idx, us.Format(time.RFC3339Nano))
	}
	return nil
}

// checkSegments checks that the segments cover the range, each locked
// write-once until after the retention: --retention for every segment,
// and the tenant's retention in force when it was sealed for each segment
// holding the tenant's records (holds).
func checkSegments(rep *Report, opts VerifyOptions, fold *retentionFold, holds []bool) error {
	m := rep.Manifest
	next := m.Range.First
	now := opts.Now()
	var unlocked []string
	unchecked := 0
	rep.Required = make([]time.Duration, len(rep.Segments))
	for i, s := range rep.Segments {
		if s.First > next || s.Size <= next {
			return failf(SegmentsFile, "%s covers %d to %d: the segments do not cover the range from %d", s.Name, s.First, s.Size, next)
		}
		next = s.Size
		locked := s.Locked(now)
		if opts.Retention > 0 && locked && s.RetainUntil.Before(s.Sealed.Add(opts.Retention)) {
			return failf(SegmentsFile, "%s is locked until %s, less than the retention (%s after its sealing, %s)", s.Name,
				s.RetainUntil.Format(time.RFC3339), opts.Retention, s.Sealed.Add(opts.Retention).Format(time.RFC3339))
		}
		d, at, ok := fold.at(s.Size)
		if holds[i] && !ok && opts.Retention == 0 && locked {
			unchecked++
		}
		if ok && holds[i] && d > 0 {
			rep.Required[i] = d
			until := ledger.RetainUntil(s.Sealed, d)
			if locked && s.RetainUntil.Before(until) {
				return failf(SegmentsFile, "%s is locked until %s, less than tenant %s's retention in force when it was sealed (%s, retention record %d): it holds the tenant's records and must be locked until at least %s",
					s.Name, s.RetainUntil.Format(time.RFC3339), m.Tenant, d, at, until.Format(time.RFC3339))
			}
		}
		if !locked {
			msg := s.notLocked()
			if !opts.AllowUnlocked {
				return failf(SegmentsFile, "%s", msg)
			}
			unlocked = append(unlocked, msg)
		}
	}
	if m.Range.First < m.Range.End && next < m.Range.End {
		return failf(SegmentsFile, "the segments end at %d, the range at %d", next, m.Range.End)
	}
	if unchecked > 0 {
		rep.Warnings = append(rep.Warnings, fmt.Sprintf("%d segment(s) holding the tenant's records were sealed before the log recorded any retention for it, and no --retention was given: how long they are locked was not checked (give the retention required, e.g. --retention 61320h)", unchecked))
	}
	// Accepted: one line for them all (a local store has hundreds), with
	// the first as the example.
	switch len(unlocked) {
	case 0:
	case 1:
		rep.Warnings = append(rep.Warnings, "1 segment is not write-once-locked (accepted: allow-unlocked): "+unlocked[0])
	default:
		rep.Warnings = append(rep.Warnings, fmt.Sprintf("%d of %d segments are not write-once-locked (accepted: allow-unlocked; a local store such as dev's); the first: %s",
			len(unlocked), len(rep.Segments), unlocked[0]))
	}
	return nil
}

// Locked reports whether the segment is locked write-once in COMPLIANCE
// mode at now, as the store reported it when the bundle was built.
func (s Segment) Locked(now time.Time) bool {
	return s.LockMode == "COMPLIANCE" && s.RetainUntil != nil && s.RetainUntil.After(now)
}

// notLocked says that the segment (or object) is not locked, and how the
// store reported it.
func (s Segment) notLocked() string {
	until := "none"
	if s.RetainUntil != nil {
		until = s.RetainUntil.Format(time.RFC3339)
	}
	return fmt.Sprintf("%s is not locked write-once in COMPLIANCE mode now (the store reported lock %q, retain-until %s)", s.Name, s.LockMode, until)
}
