package evidence

import (
	"archive/zip"
	"bufio"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"golang.org/x/crypto/ssh"

	"github.com/auditledger/auditledger/compliance"
	"github.com/auditledger/auditledger/events"
	"github.com/auditledger/auditledger/internal/eventscan"
	"github.com/auditledger/auditledger/ledger"
	"github.com/auditledger/auditledger/projections"
)

// Config says what to build.
type Config struct {
	// DB is the projection (projections.Run keeps it), read through a
	// projections.Reader.
	DB        *pgxpool.Pool
	Framework *compliance.Framework
	Tenant    string
	From, To  time.Time
	// Signer signs the manifest (an Ed25519 SSH key the operator holds,
	// not the log's checkpoint key); Principal names it in
	// keys/allowed_signers.
	Signer    ssh.Signer
	Principal string
	// LogVKey is the log's checkpoint verifier key, shipped in keys/.
	LogVKey string
	// GrantVKey is the key that signs access grants (the API's
	// approvals.vkey), shipped in keys/grant.vkey: privileged-sessions-
	// granted counts a grant only when its signature verifies with it.
	// Empty: the build fails if a grant's signature is to be checked.
	GrantVKey string
	// Generator names the program and version that built the bundle.
	Generator string
	// RequestedBy is who asked for it (required): the manifest names them.
	RequestedBy Requester
	// BundleID names the bundle: 32 hex digits; random when empty.
	BundleID string
	// Progress, if set, is told the records written of the range's total.
	Progress func(done, total uint64)
	// SampleRows caps each control query's rows in its CSV (default 1000).
	SampleRows int
	Now        func() time.Time
	// Store, if set, is read for each segment's legal hold and for the
	// lock and legal hold of the checkpoint signed at its end (it must be
	// a ledger.Inspector). Nil: the bundle carries the legal-hold records
	// and what they leave held, not what the store reports.
	Store ledger.SegmentStore
	// Expectations, if set, is the operator's expectations file (the form
	// of compliance/data/<framework>/expectations.yaml) the controls are
	// tested against instead of the framework's.
	Expectations []byte
}

// ErrNoLog is returned when the projection holds no sealed records yet.
var ErrNoLog = errors.New("evidence: the projection holds no checkpoint yet: nothing is sealed, or the projector has not caught up")

// Build writes the bundle for cfg to w as a zip stream and returns its
// manifest. It holds one record at a time in memory (and one control
// query's rows, up to SampleRows), and what the expectations' checks keep
// of the events they read (compliance.Asserter: a few members each, of the
// statements they cover).
func Build(ctx context.Context, cfg Config, w io.Writer) (*Manifest, error) {
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.SampleRows == 0 {
		cfg.SampleRows = 1000
	}
	if cfg.RequestedBy.Issuer == "" || cfg.RequestedBy.Subject == "" {
		return nil, errors.New("evidence: the requester is required: the manifest names who asked for the bundle")
	}
	if cfg.Tenant == "" || !cfg.From.Before(cfg.To) {
		return nil, fmt.Errorf("evidence: want a tenant and a period whose start is before its end (got %q, %s to %s)", cfg.Tenant, cfg.From.Format(time.RFC3339), cfg.To.Format(time.RFC3339))
	}
	b := &builder{cfg: cfg, read: projections.NewReader(cfg.DB), zw: zip.NewWriter(w), census: newCensus()}
	b.operatorExpectations = cfg.Expectations != nil
	var err error
	if b.expected, cfg.Expectations, err = expectationsFor(cfg.Framework, cfg.Expectations); err != nil {
		return nil, err
	}
	b.cfg.Expectations = cfg.Expectations
	if b.expected.Legacy() {
		return nil, fmt.Errorf("evidence: the expectations file is of version 1, whose privileged-sessions-granted took any access.granted record as a grant, whoever published it: declare version: %d (FORMAT §12.1)", compliance.ExpectationsVersion)
	}
	if b.expected.LegacyReviews() {
		return nil, fmt.Errorf("evidence: the expectations file is of version %d, whose audit-reviewed tested only the time between two reviews, not the time from the period's start to the first review nor from the last review to its end: declare version: %d (FORMAT §12.1)", b.expected.Version, compliance.ExpectationsVersion)
	}
	if b.expected.LegacyRefusals() {
		return nil, fmt.Errorf("evidence: the expectations file is of version %d, whose refusals-name-rule tested every command.blocked, the API's refusals and a gateway's refusals no rule decides included: declare version: %d (FORMAT §12.1)", b.expected.Version, compliance.ExpectationsVersion)
	}
	var grants compliance.GrantKey
	if cfg.GrantVKey != "" {
		v, err := ledger.NewNoteVerifier(strings.TrimSpace(cfg.GrantVKey))
		if err != nil {
			return nil, fmt.Errorf("evidence: the grant key: %w", err)
		}
		b.cfg.GrantVKey, grants = v.String(), v.OpenNote
	}
	b.asserter = compliance.NewAsserter(b.expected, grants)
	if b.tables, err = newTables(derivedOf(cfg.Framework)); err != nil {
		return nil, err
	}
	if err := b.build(ctx); err != nil {
		return nil, err
	}
	return &b.m, nil
}

type builder struct {
	cfg  Config
	read *projections.Reader
	zw   *zip.Writer
	m    Manifest
	// files supporting each control, as the manifest lists them
	controlsOf map[string][]string
	// erased: the tenant's erased pseudonyms, each with the index of its
	// erasure.performed event
	erased map[string]uint64
	sealed SealedFields
	// context derives context/ from the records written (context.go).
	context *contextOf
	// what the assertions read: the tenant's events a check may read, the
	// census of identities, the segments
	asserter *compliance.Asserter
	tables   *tableSet
	census   *identityCensus
	scan     eventscan.Event // the event being read
	line     []byte          // the line of events.jsonl being written
	segs     []Segment
	verifs   []VerificationSeen // the verification records shipped
	expected *compliance.Expectations
	// operatorExpectations: the requester gave the expectations
	operatorExpectations bool
}

// add writes one file, hashing it as it goes.
func (b *builder) add(path string, controls []string, write func(io.Writer) error) error {
	zf, err := b.zw.CreateHeader(&zip.FileHeader{Name: path, Method: zip.Deflate, Modified: b.m.Created})
	if err != nil {
		return err
	}
	h := sha256.New()
	cw := &countingWriter{w: io.MultiWriter(zf, h)}
	bw := bufio.NewWriterSize(cw, 64<<10)
	if err := write(bw); err != nil {
		return fmt.Errorf("evidence: writing %s: %w", path, err)
	}
	if err := bw.Flush(); err != nil {
		return err
	}
	b.m.Files = append(b.m.Files, File{Path: path, Size: cw.n, SHA256: hex.EncodeToString(h.Sum(nil)), Controls: controls})
	return nil
}

func (b *builder) addBytes(path string, controls []string, data []byte) error {
	return b.add(path, controls, func(w io.Writer) error { _, err := w.Write(data); return err })
}

type countingWriter struct {
	w io.Writer
	n int64
}

func (c *countingWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}

// The controls the log's own files support.
var (
	logControls    = []string{"8.15", "5.28", "5.33"}
	eventsControls = []string{"8.15", "5.28"}
)

func (b *builder) build(ctx context.Context) error {
	cfg := b.cfg
	if cfg.BundleID == "" {
		var id [16]byte
		rand.Read(id[:])
		cfg.BundleID = hex.EncodeToString(id[:])
	}
	fw := cfg.Framework
	b.m = Manifest{Format: Format, BundleID: cfg.BundleID, Tenant: cfg.Tenant,
		Period:    Period{From: cfg.From.UTC(), To: cfg.To.UTC()},
		Framework: Framework{ID: fw.Catalog.ID, Version: fw.Catalog.Version, MappingVersion: fw.Mapping.Version},
		Generator: cfg.Generator, RequestedBy: &cfg.RequestedBy, Created: cfg.Now().UTC().Truncate(time.Second)}

	// The range: from the last checkpoint sealed before the period to the
	// last sealed before its end.
	sp, err := b.read.SpanOf(ctx, cfg.From, cfg.To)
	if err != nil {
		return fmt.Errorf("evidence: %w", err)
	}
	if sp.Latest == 0 {
		return ErrNoLog
	}
	b.m.Range.Open = sp.Open
	if sp.End.Size == 0 {
		return fmt.Errorf("evidence: nothing was sealed before %s", cfg.To.Format(time.RFC3339))
	}
	a, z := sp.Start.Size, sp.End.Size
	b.m.Range.First, b.m.Range.End = a, z
	startNote, endNote, origin := sp.Start.Note, sp.End.Note, sp.Origin
	if a < z {
		fs, ls := sp.FirstSealed, sp.LastSealed
		b.m.Range.FirstSealed, b.m.Range.LastSealed = &fs, &ls
	}
	b.m.Log = LogInfo{Origin: origin, VKey: strings.TrimSpace(cfg.LogVKey)}
	if cfg.Principal == "" {
		cfg.Principal = "evidence@" + origin
	}
	b.m.Signer = cfg.Principal

	// Keys: the log's verifier key and the bundle signer's, to compare
	// with the copies the auditor got from the operator.
	if err := b.addBytes(LogKeyFile, logControls, []byte(b.m.Log.VKey+"\n")); err != nil {
		return err
	}
	if err := b.addBytes(SignersFile, []string{"5.28"}, AllowedSigners(cfg.Principal, cfg.Signer.PublicKey())); err != nil {
		return err
	}
	if cfg.GrantVKey != "" {
		b.m.GrantVKey = cfg.GrantVKey
		if err := b.addBytes(GrantKeyFile, grantControls(b.expected), []byte(cfg.GrantVKey+"\n")); err != nil {
			return err
		}
	}
	// The two checkpoints, the consistency proof between them, and the
	// compact range of the tree before the range.
	if a > 0 {
		if err := b.addBytes(StartCheckpoint, logControls, []byte(startNote)); err != nil {
			return err
		}
	}
	if err := b.addBytes(EndCheckpoint, logControls, []byte(endNote)); err != nil {
		return err
	}
	cons, err := b.read.ConsistencyProof(ctx, a, z)
	if err != nil {
		return fmt.Errorf("evidence: consistency proof %d→%d: %w", a, z, err)
	}
	if err := b.addBytes(ConsistencyFile, logControls, (&ledger.ConsistencyProofText{Old: a, New: z, Hashes: cons}).Marshal()); err != nil {
		return err
	}
	prefix, err := b.read.PrefixHashes(ctx, a)
	if err != nil {
		return fmt.Errorf("evidence: the tree before index %d: %w", a, err)
	}
	if err := b.addBytes(PrefixFile, logControls, marshalPrefix(a, prefix)); err != nil {
		return err
	}
	if err := b.add(RetentionFile, []string{"5.33", "8.15"}, func(w io.Writer) error { return b.retention(ctx, w, a) }); err != nil {
		return err
	}
	b.context = newContext(cfg.Tenant)
	if err := b.add(RecordsFile, logControls, func(w io.Writer) error { return b.records(ctx, w, a, z) }); err != nil {
		return err
	}
	erasures, err := b.read.Erasures(ctx, cfg.Tenant, sp.Latest)
	if err != nil {
		return fmt.Errorf("evidence: %w", err)
	}
	b.erased = map[string]uint64{}
	for _, e := range erasures {
		b.erased[e.Pseudonym] = e.Index
	}
	b.sealed.ErasuresAsOf = sp.Latest
	if err := b.add(EventsFile, eventsControls, func(w io.Writer) error { return b.events(ctx, w, a, z) }); err != nil {
		return err
	}
	if b.sealed.Count > 0 {
		b.m.SealedFields = &b.sealed
	}
	// The context, from the records just written.
	ctxFiles := b.context.files()
	for _, f := range []struct {
		path     string
		controls []string
	}{{PoliciesFile, policiesControls}, {IdentitiesFile, identitiesControls}, {ClockFile, clockControls}} {
		if err := b.addBytes(f.path, f.controls, ctxFiles[f.path]); err != nil {
			return err
		}
	}
	// The legal holds, proven in the newest checkpoint: a hold set after
	// the period still concerns it.
	latest, err := b.read.CheckpointAt(ctx, sp.Latest)
	if err != nil {
		return fmt.Errorf("evidence: the newest checkpoint: %w", err)
	}
	if err := b.addBytes(LatestCheckpoint, logControls, []byte(latest.Note)); err != nil {
		return err
	}
	lcons, err := b.read.ConsistencyProof(ctx, z, sp.Latest)
	if err != nil {
		return fmt.Errorf("evidence: consistency proof %d→%d: %w", z, sp.Latest, err)
	}
	if err := b.addBytes(LatestConsistencyFile, logControls, (&ledger.ConsistencyProofText{Old: z, New: sp.Latest, Hashes: lcons}).Marshal()); err != nil {
		return err
	}
	b.m.LegalHolds = &LegalHolds{AsOf: sp.Latest, Held: []string{}}
	holds := &holdFold{}
	if err := b.add(LegalHoldsFile, []string{"5.33", "8.15"}, func(w io.Writer) error { return b.legalHolds(ctx, w, a, z, sp.Latest, holds) }); err != nil {
		return err
	}
	if err := b.add(SegmentsFile, []string{"5.33", "8.15"}, func(w io.Writer) error { return b.segments(ctx, w, a, z, holds) }); err != nil {
		return err
	}
	// The full verifications of the log sealed after the range, proven
	// in the newest checkpoint: 5.33 and 8.15 are derived from them.
	vf := &verificationFold{}
	if err := b.add(VerificationsFile, verificationControls, func(w io.Writer) error { return b.verifications(ctx, w, z, sp.Latest, vf) }); err != nil {
		return err
	}
	b.m.Verifications = &Verifications{Records: len(vf.seen)}
	vctx, err := vf.file()
	if err != nil {
		return err
	}
	if err := b.addBytes(VerificationsContextFile, verificationControls, vctx); err != nil {
		return err
	}
	for i, v := range vf.seen {
		if err := b.asserter.AddVerification(v.Index, vf.raw[i]); err != nil {
			return err
		}
	}
	b.verifs = vf.seen
	if cfg.Expectations != nil {
		src := "default"
		if b.operatorExpectations {
			src = "operator"
		}
		b.m.Expectations = &Expectations{Path: ExpectationsFile, SHA256: sha256Hex(cfg.Expectations), Source: src}
		if err := b.addBytes(ExpectationsFile, nil, cfg.Expectations); err != nil {
			return err
		}
	}
	if err := b.controls(ctx, a, z); err != nil {
		return err
	}
	if err := b.addBytes(VerifyFile, nil, verifyGuide(&b.m)); err != nil {
		return err
	}
	// The manifest lists every file so far and is signed; SHA256SUMS
	// lists them, the manifest and its signature, and is signed too: the
	// manifest's signature is what auditledger checks, SHA256SUMS's is
	// what ssh-keygen and sha256sum alone check, and either covers every
	// file (§12).
	manifest, err := json.MarshalIndent(&b.m, "", "  ")
	if err != nil {
		return err
	}
	manifest = append(manifest, '\n')
	files := b.m.Files
	if err := b.addBytes(ManifestFile, nil, manifest); err != nil {
		return err
	}
	sig, err := SSHSign(cfg.Signer, Namespace, manifest)
	if err != nil {
		return fmt.Errorf("evidence: signing the manifest: %w", err)
	}
	if err := b.addBytes(SignatureFile, nil, sig); err != nil {
		return err
	}
	sums := []byte(sumsOf(b.m.Files))
	if err := b.addBytes(SumsFile, nil, sums); err != nil {
		return err
	}
	sumsSig, err := SSHSign(cfg.Signer, Namespace, sums)
	if err != nil {
		return fmt.Errorf("evidence: signing SHA256SUMS: %w", err)
	}
	if err := b.addBytes(SumsSigFile, nil, sumsSig); err != nil {
		return err
	}
	b.m.Files = files
	return b.zw.Close()
}

// sumsOf is SHA256SUMS for files: one line each, in order, as sha256sum
// writes them.
func sumsOf(files []File) string {
	var s strings.Builder
	for _, f := range files {
		fmt.Fprintf(&s, "%s  %s\n", f.SHA256, f.Path)
	}
	return s.String()
}

// marshalPrefix writes the compact range of the tree before the range:
// "size N", then one base64 hash per line, largest subtree first.
func marshalPrefix(size uint64, hashes []ledger.Hash) []byte {
	out := fmt.Appendf(nil, "auditledger compact range v1\nsize %d\n", size)
	for _, h := range hashes {
		out = append(out, h.Base64()+"\n"...)
	}
	return out
}

// records writes every record of [a, z): the tenant's whole, the others'
// redacted to their leaf input (§2.4), each framed by its u32 length.
func (b *builder) records(ctx context.Context, w io.Writer, a, z uint64) error {
	next := a
	var frame [4]byte
	err := b.read.Records(ctx, a, z, "", func(e *projections.Event) error {
		if e.Index != next {
			return fmt.Errorf("the projection lacks record %d (has %d next): rebuild it", next, e.Index)
		}
		rec := e.Record()
		whole := true
		switch {
		case e.Tenant == b.cfg.Tenant:
			b.m.Events++
		case isDefaultRetention(e):
			// Shown whole: the tenant's retention may be the default.
			whole = false // not context
		case e.Tenant == ledger.SystemTenant && isClockStatus(e.Event):
			// Shown whole: the clock the records' times come from.
		default:
			whole = false
			var err error
			if rec, err = ledger.Redact(rec); err != nil {
				return fmt.Errorf("record %d cannot be shown without its event, so one tenant's completeness cannot be proven over a range holding it (records sealed before bound records, FORMAT §2.4): %w", e.Index, err)
			}
		}
		if whole {
			r, err := ledger.ParseRecord(rec)
			if err != nil {
				return fmt.Errorf("record %d: %w", e.Index, err)
			}
			if err := b.context.note(e.Index, r.Time, e.Event); err != nil {
				return err
			}
			if e.Tenant != b.cfg.Tenant {
				// A clock status: tested by 8.17's expectation (the
				// tenant's events are, as events.jsonl is written).
				if err := b.asserter.Add(e.Index, e.Event); err != nil {
					return err
				}
				b.tables.note(e.Index, r.Time, e.Event, true)
			}
		}
		binary.BigEndian.PutUint32(frame[:], uint32(len(rec)))
		if _, err := w.Write(frame[:]); err != nil {
			return err
		}
		if _, err := w.Write(rec); err != nil {
			return err
		}
		next++
		if b.cfg.Progress != nil && (next%4096 == 0 || next == z) {
			b.cfg.Progress(next-a, z-a)
		}
		return nil
	})
	if err != nil {
		return err
	}
	if next != z {
		return fmt.Errorf("the projection holds records up to %d, the range ends at %d: let the projector catch up", next, z)
	}
	return nil
}

// isDefaultRetention reports whether e is a retention record of the
// default, which a bundle shows whole: the tenant's retention may be it.
func isDefaultRetention(e *projections.Event) bool {
	if e.Tenant != ledger.SystemTenant {
		return false
	}
	c, err := retentionFor(e.Event, "")
	return err == nil && c != nil && c.Tenant == ledger.DefaultTenant
}

// retention writes log/retention.jsonl: the tenant's and the default's
// retention records sealed before a, each with its inclusion proof at
// tree size a.
func (b *builder) retention(ctx context.Context, w io.Writer, a uint64) error {
	if a == 0 {
		return nil
	}
	f := projections.EventFilter{Types: []events.Type{events.LedgerRetentionChanged}, Tenants: []string{b.cfg.Tenant, ledger.SystemTenant}, Limit: projections.MaxPage}
	for {
		page, err := b.read.Events(ctx, f)
		if err != nil {
			return fmt.Errorf("the retention records: %w", err)
		}
		for i := range page.Events {
			e := &page.Events[i]
			if e.Index >= a {
				return nil
			}
			c, err := retentionFor(e.Event, b.cfg.Tenant)
			if err != nil {
				return fmt.Errorf("record %d: %w", e.Index, err)
			}
			if c == nil {
				continue
			}
			if err := b.provenLine(ctx, w, e, a); err != nil {
				return err
			}
		}
		if page.Next == "" {
			return nil
		}
		f.After = page.Next
	}
}

// provenLine writes e's record whole as a line of retention.jsonl or
// legal-holds.jsonl (RetentionLine), with its inclusion proof at size.
func (b *builder) provenLine(ctx context.Context, w io.Writer, e *projections.Event, size uint64) error {
	proof, err := b.read.InclusionProof(ctx, e.Index, size)
	if err != nil {
		return fmt.Errorf("record %d: inclusion proof at size %d: %w", e.Index, size, err)
	}
	l := RetentionLine{Index: e.Index, Record: base64.StdEncoding.EncodeToString(e.Record()), Proof: make([]string, len(proof))}
	for j, h := range proof {
		l.Proof[j] = h.Base64()
	}
	line, err := json.Marshal(&l)
	if err != nil {
		return err
	}
	_, err = w.Write(append(line, '\n'))
	return err
}

// appendEventLine appends the line of events.jsonl of the tenant's
// record idx (without its line end): {"index":…,"leaf":"…","sealed_at":
// "…","event":…}, the leaf in lower-case hex, sealed_at in RFC 3339 with
// nanoseconds, UTC, the event's bytes as sealed.
func appendEventLine(dst []byte, idx uint64, leaf ledger.Hash, sealed time.Time, event []byte) []byte {
	dst = append(dst, `{"index":`...)
	dst = strconv.AppendUint(dst, idx, 10)
	dst = append(dst, `,"leaf":"`...)
	dst = hex.AppendEncode(dst, leaf[:])
	dst = append(dst, `","sealed_at":"`...)
	dst = sealed.UTC().AppendFormat(dst, time.RFC3339Nano)
	dst = append(dst, `","event":`...)
	dst = append(dst, event...)
	return append(dst, '}')
}

// events writes the tenant's events of [a, z) as JSON lines, each event's
// bytes exactly as sealed.
func (b *builder) events(ctx context.Context, w io.Writer, a, z uint64) error {
	return b.read.Records(ctx, a, z, b.cfg.Tenant, func(e *projections.Event) error {
		// The sealing time from the record itself: the column keeps
		// microseconds, the record nanoseconds.
		r, err := ledger.ParseRecord(e.Record())
		if err != nil {
			return fmt.Errorf("record %d: %w", e.Index, err)
		}
		// One reading of the event for every check.
		scanned := b.scan.Scan(e.Event)
		for _, f := range sealedInScanned(e.Index, e.Event, &b.scan, scanned) {
			b.sealed.Count++
			if by, ok := b.erased[f.Pseudonym]; ok {
				b.sealed.Erased = append(b.sealed.Erased, ErasedField{Index: f.Index, Field: f.Field, Pseudonym: f.Pseudonym, ErasedBy: by})
			}
		}
		b.census.noteScanned(e.Event, &b.scan, scanned)
		if scanned {
			err = b.asserter.AddScanned(e.Index, e.Event, &b.scan)
		} else {
			err = b.asserter.Add(e.Index, e.Event)
		}
		if err != nil {
			return err
		}
		b.tables.noteScanned(e.Index, r.Time, e.Event, &b.scan, scanned, false)
		b.line = append(appendEventLine(b.line[:0], e.Index, e.Leaf, r.Time, e.Event), '\n')
		_, err = w.Write(b.line)
		return err
	})
}

func (b *builder) segments(ctx context.Context, w io.Writer, a, z uint64, holds *holdFold) error {
	segs, err := b.read.Segments(ctx, a, z)
	if err != nil {
		return err
	}
	var inspector ledger.Inspector
	if b.cfg.Store != nil {
		var ok bool
		if inspector, ok = b.cfg.Store.(ledger.Inspector); !ok {
			return fmt.Errorf("%s cannot report legal holds and locks", b.cfg.Store)
		}
		b.m.LegalHolds.Store = b.cfg.Store.String()
	}
	list := make([]Segment, len(segs))
	for i, s := range segs {
		list[i] = Segment{Name: s.Name, First: s.First, Size: s.Size, SHA256: hex.EncodeToString(s.SHA256), Version: s.Version,
			LockMode: s.LockMode, RetainUntil: s.RetainUntil, Sealed: s.Sealed}
		if held, by, ok := holds.at(s.First, s.Size); ok {
			list[i].LegalHold, list[i].LegalHoldBy = held, &by
			if held {
				b.m.LegalHolds.Held = append(b.m.LegalHolds.Held, s.Name)
			}
		}
		if inspector == nil {
			continue
		}
		seg, err := objectLock(ctx, inspector, s.Name)
		if err != nil {
			return err
		}
		cp, err := objectLock(ctx, inspector, ledger.CheckpointName(s.Size))
		if err != nil {
			return err
		}
		list[i].StoreLegalHold, list[i].Checkpoint = &seg.LegalHold, &cp
	}
	b.segs = list
	out, err := json.MarshalIndent(list, "", "  ")
	if err != nil {
		return err
	}
	_, err = w.Write(append(out, '\n'))
	return err
}

// controls derives each control's tables over [a, z) from the sealed
// records and writes its folder: summary.md and each table as CSV.
func (b *builder) controls(ctx context.Context, a, z uint64) error {
	fw := b.cfg.Framework
	for _, ev := range fw.Mapping.Controls {
		ctl, _ := fw.Catalog.Control(ev.Control)
		c := Control{ID: ev.Control, Title: ctl.Title, Counts: map[string]int{}}
		dir := "controls/" + ev.Control + "/"
		type result struct {
			q      compliance.Query
			n      int
			capped bool
		}
		var results []result
		for _, q := range ev.Queries {
			// Every table is derived from the sealed records (FORMAT
			// §12.3): compliance.Load refuses a mapping query that is
			// not, so the projection is never queried for evidence.
			if !q.Derived {
				return fmt.Errorf("evidence: control %s, query %s: not derived from the records; this version builds no table from the projection", ev.Control, q.Name)
			}
			if b.tables.err != nil {
				return fmt.Errorf("evidence: deriving the tables: %w", b.tables.err)
			}
			data, n, capped := b.tables.csv(ev.Control+"/"+q.Name, &tableIn{segs: b.segs, erased: erasedSet(b.m.SealedFields), verifs: b.verifs, first: a, end: z})
			if err := b.addBytes(dir+q.Name+".csv", []string{ev.Control}, data); err != nil {
				return err
			}
			c.Counts[q.Name] = n
			c.Observed = c.Observed || n > 0
			c.Files = append(c.Files, dir+q.Name+".csv")
			c.Derived = append(c.Derived, q.Name)
			results = append(results, result{q, n, capped})
		}
		for _, r := range results {
			if r.capped {
				c.Capped = append(c.Capped, r.q.Name)
			}
		}
		b.m.Controls = append(b.m.Controls, c)
	}
	slices.SortStableFunc(b.m.Controls, func(x, y Control) int { return compareControlIDs(x.ID, y.ID) })

	// The assertions: each expectation tested against the tenant's events.
	asserts := b.asserter.Assertions(assertedPeriod(&b.m))
	if idx, needed := b.asserter.GrantKeyNeeded(); needed {
		return fmt.Errorf("evidence: the access.granted at index %d claims to grant a privileged session, and its signature can be checked only with the grant key: give it (evidence build --grant-vkey, the API's approvals.vkey)", idx)
	}
	for i := range asserts {
		a := &asserts[i]
		j := slices.IndexFunc(b.m.Controls, func(c Control) bool { return c.ID == a.Control })
		c := &b.m.Controls[j]
		c.Assertion = controlAssertion(a)
		if err := b.addBytes(c.Assertion.File, []string{c.ID}, assertionCSV(a)); err != nil {
			return err
		}
		c.Files = append(c.Files, c.Assertion.File)
	}
	for i := range b.m.Controls {
		c := &b.m.Controls[i]
		c.Files = append(c.Files, "controls/"+c.ID+"/summary.md")
	}
	b.m.Warnings = warningsOf(&b.m, b.census, b.segs, b.verifs)
	derived, err := derivedFiles(&b.m, fw, asserts)
	if err != nil {
		return err
	}
	for _, c := range b.m.Controls {
		p := "controls/" + c.ID + "/summary.md"
		if err := b.addBytes(p, []string{c.ID}, derived[p]); err != nil {
			return err
		}
	}
	if err := b.addBytes(OSCALFile, nil, derived[OSCALFile]); err != nil {
		return err
	}
	return b.addBytes(ReportFile, nil, derived[ReportFile])
}

// grantControls are the controls x tests with privileged-sessions-granted:
// those the grant key supports.
func grantControls(x *compliance.Expectations) []string {
	var out []string
	for _, e := range x.Controls {
		if e.Check == compliance.CheckPrivilegedGranted {
			out = append(out, e.Control)
		}
	}
	return out
}

// expectationsFor returns the expectations a bundle of fw is built with:
// the operator's file when given, else the framework's. Every control
// they name must be one the framework's mapping draws evidence for.
func expectationsFor(fw *compliance.Framework, operator []byte) (*compliance.Expectations, []byte, error) {
	if operator == nil {
		if fw.Expectations == nil {
			return &compliance.Expectations{Version: 1}, nil, nil
		}
		return fw.Expectations, fw.ExpectationsFile, nil
	}
	x, err := compliance.ParseExpectations("the expectations file", operator)
	if err != nil {
		return nil, nil, fmt.Errorf("evidence: %w", err)
	}
	for _, e := range x.Controls {
		if _, ok := fw.Evidence(e.Control); !ok {
			return nil, nil, fmt.Errorf("evidence: the expectations file names control %s, which the %s mapping draws no evidence for", e.Control, fw.Catalog.ID)
		}
	}
	return x, operator, nil
}

// compareControlIDs orders "5.3" before "5.15" before "8.2".
func compareControlIDs(x, y string) int {
	var xa, xb, ya, yb int
	fmt.Sscanf(x, "%d.%d", &xa, &xb)
	fmt.Sscanf(y, "%d.%d", &ya, &yb)
	if xa != ya {
		return xa - ya
	}
	return xb - yb
}
