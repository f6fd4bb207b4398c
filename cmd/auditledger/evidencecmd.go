package main

import (
	"archive/zip"
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	osuser "os/user"
	"path/filepath"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/nats-io/nats.go"
	"github.com/spf13/cobra"
	"golang.org/x/crypto/ssh"

	"github.com/auditledger/auditledger/cmd/auditledger/internal/cli"
	"github.com/auditledger/auditledger/compliance"
	"github.com/auditledger/auditledger/events"
	"github.com/auditledger/auditledger/ledger"
	"github.com/auditledger/auditledger/ledger/bus"
	"github.com/auditledger/auditledger/ledger/storeurl"
	"github.com/auditledger/auditledger/projections"
	"github.com/auditledger/auditledger/projections/evidence"
)

// evidenceBuild writes a signed evidence bundle from the projection.
func evidenceBuild(c *cobra.Command) cli.Run {
	fs := cli.Describe(c, "evidence build --tenant T --from DATE --to DATE --out FILE --key SSHKEY --vkey KEY [--grant-vkey KEY] [--nats URL] [--nkey FILE | --creds FILE] [--operator NAME] [--framework ID] [--database URL] [--store URL] [--expectations FILE]",
		"Builds an evidence bundle (docs/FORMAT.md §12): one zip holding the tenant's\nevents of the period with what proves them complete and unchanged in the\nsigned log (the start and end checkpoints, the consistency proof between\nthem, every record of the range — other tenants' redacted), the segments'\nlocks, a folder per control with its rows, queries and counts and, for\neach control with a declared expectation (--expectations, default the\nframework's expectations.yaml), the population tested, its exceptions and a\nresult (effective, exceptions found, not observed), OSCAL assessment\nresults with findings, a report opening with the exceptions (index.html)\nand VERIFY.md; its manifest is\nsigned with an SSH key, so an auditor checks it offline with `auditledger\nevidence verify` or with ssh-keygen -Y verify and sha256sum -c. The rows\ncome from the projection ($AUDITLEDGER_DATABASE_URL unless --database).\nDATE is RFC 3339 or YYYY-MM-DD (midnight UTC); the period is [--from, --to).\n\nGrants: a privileged session counts as granted (8.2) only under an\naccess.granted the API published whose signature verifies with the grant key\n(--grant-vkey, the API's approvals.vkey), shipped in keys/grant.vkey; without\nit the build fails when a grant's signature is to be checked.\n\nLegal holds: the legal_hold.set and legal_hold.released records of the range\n(also those sealed after the period, up to the newest checkpoint, proven in it)\nand which segments they leave held; with --store, also each segment's legal\nhold and the lock and legal hold of the checkpoint signed at its end, as the\nstore reports them now.\n\nChain of custody: the manifest names who asked (requested_by: issuer\nauditledger-admin, subject --operator) and the tool and version (generator);\nthe build is recorded as evidence.exported (bundle id, tenant, period, range,\nthe zip's SHA-256 and size) on the bus as the admin role, and the file is\nwritten under --out only once the bus has stored that event: a bundle whose\nexport cannot be recorded is not released.")
	tenant := fs.String("tenant", "", "the tenant")
	framework := fs.String("framework", compliance.Default, "control framework: "+strings.Join(compliance.Frameworks, ", "))
	from := fs.String("from", "", "start of the period (included)")
	to := fs.String("to", "", "end of the period (excluded)")
	out := fs.String("out", "", "the bundle file to write (.zip)")
	keyFile := fs.String("key", "", "the evidence signing key: an Ed25519 OpenSSH private key (ssh-keygen -t ed25519); not the log's checkpoint key")
	principal := fs.String("principal", "", "the signer's name in keys/allowed_signers (default evidence@ORIGIN)")
	vkeyArg := fs.String("vkey", "", "the log's verifier key, or its file (shipped in keys/log.vkey)")
	grantVKey := fs.String("grant-vkey", "", "the key access grants are signed with: the API's verifier key approvals.vkey, or its file (shipped in keys/grant.vkey); needed when a privileged session claims a grant")
	database := fs.String("database", "", "postgres:// URL of the projection database (default $AUDITLEDGER_DATABASE_URL)")
	storeURL := fs.String("store", "", "the segment store, read for the legal holds and locks of the segments and their checkpoints (optional)")
	natsURL := fs.String("nats", nats.DefaultURL, "NATS server URL, to record the export")
	nkey := fs.String("nkey", "", "NATS nkey seed file of the admin bus role (auditledger keys nats: admin.nk; dev: auditledger-data/nats-keys/admin.nk)")
	creds := fs.String("creds", "", "NATS JWT credentials file of an admin user (decentralized auth), instead of --nkey")
	operator := fs.String("operator", "", "who asks for the bundle, as the manifest and the export's record name them (default: the OS user @ the host name)")
	expectFile := fs.String("expectations", "", "the expectations each control is tested against, a file in the form of compliance/data/<framework>/expectations.yaml (default: the framework's); the bundle carries it and the manifest its SHA-256")
	return func(ctx context.Context, args []string, _ io.Reader, stdout, stderr io.Writer) error {
		if *database == "" {
			*database = os.Getenv("AUDITLEDGER_DATABASE_URL")
		}
		if err := cli.Required(fs, "tenant", "from", "to", "out", "key", "vkey"); err != nil {
			return err
		}
		if *database == "" {
			return errors.New("evidence build: give --database or set AUDITLEDGER_DATABASE_URL")
		}
		start, err := parseDate("from", *from)
		if err != nil {
			return err
		}
		end, err := parseDate("to", *to)
		if err != nil {
			return err
		}
		if !start.Before(end) {
			return fmt.Errorf("evidence build: --from %s is not before --to %s", start.Format(time.RFC3339), end.Format(time.RFC3339))
		}
		fw, err := compliance.Load(*framework)
		if err != nil {
			return fmt.Errorf("evidence build: --framework: %w", err)
		}
		var expectations []byte
		if *expectFile != "" {
			if expectations, err = os.ReadFile(*expectFile); err != nil {
				return fmt.Errorf("evidence build: --expectations: %w", err)
			}
			if _, err := compliance.ParseExpectations(*expectFile, expectations); err != nil {
				return fmt.Errorf("evidence build: --expectations: %w", err)
			}
		}
		signer, err := loadEvidenceKey(*keyFile)
		if err != nil {
			return err
		}
		v, err := loadVerifier(*vkeyArg)
		if err != nil {
			return err
		}
		var grants string
		if *grantVKey != "" {
			gv, err := loadVerifier(*grantVKey)
			if err != nil {
				return fmt.Errorf("evidence build: --grant-vkey: %w", err)
			}
			grants = gv.String()
		}
		db, err := pgxpool.New(ctx, *database)
		if err != nil {
			return fmt.Errorf("evidence build: --database: %w", err)
		}
		defer db.Close()
		// The bus first: a bundle whose export cannot be recorded is not
		// built.
		by := operatorName(*operator)
		rec, err := dialRecorder(ctx, stderr, "auditledger-evidence", *natsURL, *nkey, *creds, bus.Admin)
		if err != nil {
			return fmt.Errorf("evidence build: the bus, to record the export: %w", err)
		}
		defer rec.close()
		var store ledger.SegmentStore
		if *storeURL != "" {
			st, err := storeurl.OpenExisting(ctx, *storeURL)
			if err != nil {
				return fmt.Errorf("evidence build: --store: %w", err)
			}
			store = st.Store
		}
		// Written beside the target and renamed at the end: a failure leaves
		// no half bundle under the name.
		tmp, err := os.CreateTemp(filepath.Dir(*out), ".evidence-*.zip")
		if err != nil {
			return fmt.Errorf("evidence build: --out: %w", err)
		}
		defer os.Remove(tmp.Name())
		defer tmp.Close()
		// The manifest names the requester as the ledger records the
		// actor: an operator named by e-mail address by pseudonym, since a
		// signed bundle, once handed out, cannot be erased.
		asked, err := rec.recordedActor(ctx, *tenant, events.Actor{Issuer: cliIssuer, Subject: by, Kind: events.Human})
		if err != nil {
			return fmt.Errorf("evidence build: the requester: %w", err)
		}
		began := time.Now()
		h := sha256.New()
		set, finish := countProgress(stderr, 0, "building")
		var total uint64
		m, err := evidence.Build(ctx, evidence.Config{DB: db, Framework: fw, Tenant: *tenant, From: start, To: end,
			Signer: signer, Principal: *principal, LogVKey: v.String(), GrantVKey: grants, Generator: versionString(), Store: store,
			RequestedBy: evidence.Requester{Issuer: asked.Issuer, Subject: asked.Subject}, Expectations: expectations,
			Progress: func(done, all uint64) {
				if total == 0 {
					total = all
					set, finish = countProgress(stderr, int64(all), "building")
				}
				set(int64(done))
			}}, io.MultiWriter(tmp, h))
		finish()
		if err != nil {
			return fmt.Errorf("evidence build: %w", err)
		}
		if err := tmp.Sync(); err != nil {
			return err
		}
		info, _ := tmp.Stat()
		if err := tmp.Close(); err != nil {
			return err
		}
		// The export is in the log, under the bundle's tenant, before the
		// file is released under its name.
		payload, _ := json.Marshal(map[string]any{"bundle_id": m.BundleID, "tenant": m.Tenant, "framework": m.Framework.ID, "mapping_version": m.Framework.MappingVersion,
			"from": m.Period.From.Format(time.RFC3339), "to": m.Period.To.Format(time.RFC3339), "first_index": m.Range.First, "end_index": m.Range.End,
			"events": m.Events, "sha256": hex.EncodeToString(h.Sum(nil)), "bytes": info.Size(), "generator": m.Generator, "by": by})
		ev := &events.Event{Version: events.Version, ID: "evidence/" + m.BundleID, Type: events.EvidenceExported, Time: time.Now().UTC(), Tenant: m.Tenant,
			Source: events.Source{Kind: "cli", Instance: bus.AdminInstance},
			Actor:  events.Actor{Issuer: cliIssuer, Subject: by, Kind: events.Human},
			Target: &events.Target{Kind: "auditledger-evidence", Name: m.BundleID}, Payload: payload}
		if err := rec.record(ctx, ev, time.Minute); err != nil {
			return fmt.Errorf("evidence build: the export could not be recorded, so the bundle is not released: %w", err)
		}
		if err := os.Rename(tmp.Name(), *out); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "wrote %s (%d bytes) in %v: bundle %s, tenant %s, ledger indexes %d to %d, %d events; %s\n",
			*out, info.Size(), time.Since(began).Round(time.Millisecond), m.BundleID, m.Tenant, m.Range.First, m.Range.End, m.Events, resultCounts(m))
		if m.Range.Open {
			fmt.Fprintf(stdout, "note: nothing was sealed after %s yet, so events of the period may still come\n", end.Format(time.RFC3339))
		}
		if note, err := verificationNote(ctx, db, *out); err != nil {
			return fmt.Errorf("evidence build: wrote %s; %w", *out, err)
		} else if note != "" {
			fmt.Fprintln(stdout, note)
		}
		printCheckCommand(stdout, *out, *vkeyArg, *keyFile, *grantVKey)
		return nil
	}
}

// verificationNote explains a bundle's 5.33 exception of no verification
// (compliance.ExNoVerification): when the writer verifies the log, and
// when the newest verification it sealed was — so that a new log's first
// bundle, built before its first verification, says why. Empty when the
// bundle at path has no such exception.
func verificationNote(ctx context.Context, db *pgxpool.Pool, path string) (string, error) {
	zr, err := zip.OpenReader(path)
	if err != nil {
		return "", err
	}
	defer zr.Close()
	f, err := zr.Open("controls/5.33/assertion.csv")
	if err != nil {
		return "", nil // no assertion of 5.33 in this framework
	}
	b, err := io.ReadAll(f)
	f.Close()
	if err != nil {
		return "", fmt.Errorf("reading 5.33's assertion: %w", err)
	}
	if !strings.Contains(string(b), ","+compliance.ExNoVerification+"\n") {
		return "", nil
	}
	const when = "the writer verifies the whole log when it starts on a log that holds records and every ledger.verify_every (24h by default) after; on a new log, first one ledger.verify_every after the writer started"
	read := projections.NewReader(db)
	filter := projections.EventFilter{Types: []events.Type{events.LedgerVerification}, Tenants: []string{ledger.SystemTenant}, Limit: projections.MaxPage}
	var newest *projections.Event
	for {
		page, err := read.Events(ctx, filter)
		if err != nil {
			return "", fmt.Errorf("the newest verification record: %w", err)
		}
		if n := len(page.Events); n > 0 {
			newest = &page.Events[n-1]
		}
		if page.Next == "" {
			break
		}
		filter.After = page.Next
	}
	last := "none is sealed yet"
	if newest != nil {
		last = fmt.Sprintf("the newest was sealed at %s (ledger index %d), so the next comes one ledger.verify_every after it", newest.SealedAt.UTC().Format(time.RFC3339), newest.Index)
	}
	return fmt.Sprintf("note: 5.33 has an exception because no verification sealed yet covers the period's end: %s; %s. Build the bundle again once one is sealed.", when, last), nil
}

// cliIssuer is the issuer of identities the CLI records: operators named
// by --operator or by the OS.
const cliIssuer = "auditledger-admin"

// operatorName is who runs a command, as recorded: name, else the OS
// user @ the host name.
func operatorName(name string) string {
	if name != "" {
		return name
	}
	user := "unknown"
	if u, err := osuser.Current(); err == nil {
		user = u.Username
	}
	host, _ := os.Hostname()
	return user + "@" + host
}

// printCheckCommand prints an `evidence verify` command that works on the
// bundle just built: with the files given when they are files (the key's
// allowed_signers beside it, as keys evidence and dev write it), and with
// --allow-unlocked, and why, when the store did not lock the segments
// write-once (a local store such as dev's).
func printCheckCommand(w io.Writer, bundle, vkeyArg, keyFile, grantVKey string) {
	vkey, signers := "LOG.vkey", "FILE"
	if st, err := os.Stat(vkeyArg); err == nil && st.Mode().IsRegular() {
		vkey = vkeyArg
	}
	if p := filepath.Join(filepath.Dir(keyFile), "allowed_signers"); keyFile != "" {
		if st, err := os.Stat(p); err == nil && st.Mode().IsRegular() {
			signers = p
		}
	}
	cmd := fmt.Sprintf("auditledger evidence verify %s --vkey %s --allowed-signers %s", bundle, vkey, signers)
	if grantVKey != "" {
		grants := "APPROVALS.vkey"
		if st, err := os.Stat(grantVKey); err == nil && st.Mode().IsRegular() {
			grants = grantVKey
		}
		cmd += " --grant-vkey " + grants
	}
	unlocked, total, err := unlockedSegments(bundle)
	switch {
	case err != nil:
		fmt.Fprintf(w, "check it: %s\n(could not read the bundle's segments to say whether --allow-unlocked is needed: %v)\n", cmd, err)
	case unlocked > 0:
		fmt.Fprintf(w, "check it: %s --allow-unlocked\n(--allow-unlocked because %d of the %d segments are not write-once-locked: the store has no Object Lock, as a local store such as dev's; on a locked store leave it out)\n", cmd, unlocked, total)
	default:
		fmt.Fprintf(w, "check it: %s\n", cmd)
	}
}

// unlockedSegments counts the bundle's segments not locked write-once now.
func unlockedSegments(bundle string) (unlocked, total int, err error) {
	zr, err := zip.OpenReader(bundle)
	if err != nil {
		return 0, 0, err
	}
	defer zr.Close()
	f, err := zr.Open(evidence.SegmentsFile)
	if err != nil {
		return 0, 0, err
	}
	defer f.Close()
	var segs []evidence.Segment
	if err := json.NewDecoder(f).Decode(&segs); err != nil {
		return 0, 0, fmt.Errorf("%s: %w", evidence.SegmentsFile, err)
	}
	now := time.Now()
	for _, s := range segs {
		if !s.Locked(now) {
			unlocked++
		}
	}
	return unlocked, len(segs), nil
}

// evidenceVerify checks a bundle offline.
func evidenceVerify(c *cobra.Command) cli.Run {
	fs := cli.Describe(c, "evidence verify FILE --vkey KEY --allowed-signers FILE [--grant-vkey KEY] [--allow-unlocked] [--retention D] | --trust-bundle-keys",
		"Checks an evidence bundle offline, in order: the manifest's SSH signature,\nevery file's size and SHA-256 (and SHA256SUMS), the start and end checkpoints'\nsignatures, the consistency proof between them, the records of the range\nfrom the tree before it to both roots (so none of the tenant's is missing\nand none of another tenant's is shown), each event against its record,\nand that each segment holding the range is locked write-once; it\nre-derives every control's assertion from the events and renders every\nsummary, the OSCAL results and index.html again, failing on any\ndifference. The\ntenant's retention is taken from the log itself: the bundle carries the\ntenant's and the default's ledger.retention.changed records (those before\nthe range with inclusion proofs), and each segment holding the tenant's\nrecords must be locked until its sealing plus the tenant's retention in\nforce then; a failure names the segment and the retention expected.\n--retention adds a minimum for every segment. Prints each control's\nresult; exits 1 naming the first file or event that fails. Both keys are\nrequired, as the operator published them outside the bundle: the log's\nverifier key (--vkey) and the evidence signer key (--allowed-signers); the\ncopies in the bundle's keys/ are whoever built it's choice. The grant key\n(--grant-vkey, the API's approvals.vkey) is needed when a privileged session\nclaims an access grant: 8.2 counts the grant only if its signature verifies\nwith it; without it such a bundle fails, naming the record.\n--trust-bundle-keys uses those copies for the keys not given: the result\nis then printed as UNVERIFIED ORIGIN and the command exits 1 even when\nevery check passes. Legal holds: the bundle's\nlegal_hold.set and legal_hold.released records are proven in its newest\ncheckpoint, which must extend the end checkpoint; each segment's legal hold\nmust be what they leave, and, when the bundle was built with the store, the\nstore must have reported every held segment and its checkpoint under legal\nhold, each checkpoint locked as its segment is.")
	vkeyArg := fs.String("vkey", "", "the log's verifier key, or its file")
	signersFile := fs.String("allowed-signers", "", "an allowed_signers file (ssh-keygen(1)) holding the evidence signing key")
	grantVKey := fs.String("grant-vkey", "", grantVKeyUsage)
	allowUnlocked := fs.Bool("allow-unlocked", false, "accept segments not locked in COMPLIANCE mode (a local development store), with a warning")
	retention := fs.Duration("retention", 0, "also require each segment locked at least this long after its sealing, whatever the log records, e.g. 61320h (7 years)")
	trustBundle := fs.Bool("trust-bundle-keys", false, "check with the bundle's own keys/ for the keys not given: the result is of unverified origin and exits 1")
	// The bundle comes before or after the flags.
	c.Args = cli.AtMostOne
	return func(ctx context.Context, args []string, _ io.Reader, stdout, stderr io.Writer) error {
		var bundle string
		if len(args) == 1 {
			bundle = args[0]
		}
		if bundle == "" {
			return errors.New("evidence verify: give the bundle file (see -h)")
		}
		if !*trustBundle && (*vkeyArg == "" || *signersFile == "") {
			return cli.Usagef("evidence verify: give both of the operator's keys, obtained outside the bundle: --vkey (the log's verifier key) and --allowed-signers (the evidence signer key); the bundle's own keys/ are whoever built it's choice (--trust-bundle-keys checks with them and reports an unverified origin)")
		}
		opts := evidence.VerifyOptions{AllowUnlocked: *allowUnlocked, Retention: *retention, TrustBundleKeys: *trustBundle}
		if *vkeyArg != "" {
			v, err := loadVerifier(*vkeyArg)
			if err != nil {
				return err
			}
			opts.LogVerifier = v
		}
		if err := loadGrantKey(&opts, *grantVKey); err != nil {
			return err
		}
		if *signersFile != "" {
			b, err := os.ReadFile(*signersFile)
			if err != nil {
				return fmt.Errorf("evidence verify: --allowed-signers: %w", err)
			}
			if opts.AllowedSigners, err = evidence.ParseAllowedSigners(b); err != nil {
				return fmt.Errorf("evidence verify: --allowed-signers: %w", err)
			}
		}
		f, err := os.Open(bundle)
		if err != nil {
			return err
		}
		defer f.Close()
		info, err := f.Stat()
		if err != nil {
			return err
		}
		rep, err := evidence.Verify(f, info.Size(), opts)
		if err != nil {
			fmt.Fprintf(stdout, "FAIL  %s\n  %v\n", bundle, err)
			return cli.Failed(fmt.Errorf("the bundle does not verify"))
		}
		m := rep.Manifest
		verdict := "OK   "
		if rep.UnverifiedOrigin {
			verdict = "UNVERIFIED ORIGIN"
		}
		fmt.Fprintf(stdout, "%s %s\n  bundle     %s, built %s by %s\n  tenant     %s, %s to %s\n  framework  %s %s, mapping v%d\n  log        %s, indexes %d to %d (checkpoints, consistency proof and every record checked), %d of the tenant's events\n  segments   %d\n",
			verdict, bundle, m.BundleID, m.Created.Format(time.RFC3339), m.Generator, m.Tenant, m.Period.From.Format(time.RFC3339), m.Period.To.Format(time.RFC3339),
			m.Framework.ID, m.Framework.Version, m.Framework.MappingVersion, m.Log.Origin, m.Range.First, m.Range.End, m.Events, len(rep.Segments))
		if rep.Sealed > 0 {
			fmt.Fprintf(stdout, "  sealed     %d sealed field(s) (never opened in the bundle), %d erased: no key opens them\n", rep.Sealed, rep.Erased)
		}
		for _, r := range rep.Retention {
			who := "tenant " + m.Tenant
			if r.Tenant == "*" {
				who = "the default"
			}
			fmt.Fprintf(stdout, "  retention  record %d sets %s to %s: %s for the tenant from then on\n", r.Index, who, r.New, r.InForce)
		}
		var required int
		for _, d := range rep.Required {
			if d > 0 {
				required++
			}
		}
		if required > 0 {
			fmt.Fprintf(stdout, "  locks      %d segment(s) holding the tenant's records locked for its retention in force when sealed\n", required)
		}
		if lh := m.LegalHolds; lh != nil {
			store := "the store was not read"
			if lh.Store != "" {
				store = "the store (" + lh.Store + ") agrees, checkpoints' locks checked"
			}
			fmt.Fprintf(stdout, "  holds      %d legal-hold record(s) up to index %d; %d segment(s) held; %s\n", lh.Records, lh.AsOf, len(rep.Held), store)
			for _, name := range rep.Held {
				fmt.Fprintf(stdout, "  held       %s\n", name)
			}
		}
		if v := m.Verifications; v != nil {
			fmt.Fprintf(stdout, "  verified   %d full verification record(s) the writer sealed after the range, each proven in the newest checkpoint\n", v.Records)
		}
		if rep.Tables > 0 {
			fmt.Fprintf(stdout, "  tables     %d control table(s) re-derived from the records: the same\n", rep.Tables)
		}
		if len(rep.Vouched) > 0 {
			fmt.Fprintf(stdout, "  vouched    %d table(s) queried on the projection, not re-derived (they rest on the evidence key alone): %s\n", len(rep.Vouched), strings.Join(rep.Vouched, ", "))
		}
		if rep.Rederived > 0 {
			fmt.Fprintf(stdout, "  derived    %d assertion(s), every summary, the OSCAL results and index.html re-derived from the events: the same\n", rep.Rederived)
		}
		for _, c := range m.Controls {
			res := c.Result()
			if a := c.Assertion; a != nil && a.Result != compliance.NotObserved {
				res = fmt.Sprintf("%s (%d tested, %d exceptions)", res, a.Population, a.Exceptions)
			}
			fmt.Fprintf(stdout, "  %-6s %-45s %s\n", c.ID, c.Title, res)
		}
		for _, w := range m.Warnings {
			fmt.Fprintf(stdout, "  WARNING: %s\n", w)
		}
		for _, w := range rep.Warnings {
			fmt.Fprintf(stdout, "  warning: %s\n", w)
		}
		if rep.UnverifiedOrigin {
			return cli.Failed(errors.New("unverified origin: the bundle is consistent with keys it carries itself, which proves nothing of who made it; give --vkey, --allowed-signers and --grant-vkey as the operator published them"))
		}
		return nil
	}
}

// grantVKeyUsage is the --grant-vkey of verify and sample.
const grantVKeyUsage = "the key access grants are signed with, as the operator published it: the API's verifier key approvals.vkey, or its file; needed when a privileged session claims a grant (8.2)"

// loadGrantKey sets opts' grant key from --grant-vkey, if given.
func loadGrantKey(opts *evidence.VerifyOptions, arg string) error {
	if arg == "" {
		return nil
	}
	v, err := loadVerifier(arg)
	if err != nil {
		return fmt.Errorf("--grant-vkey: %w", err)
	}
	opts.GrantVerifier = v
	return nil
}

// resultCounts says how many controls had each result.
func resultCounts(m *evidence.Manifest) string {
	n := map[string]int{}
	var order []string
	exceptions := 0
	for _, c := range m.Controls {
		r := c.Result()
		if n[r] == 0 {
			order = append(order, r)
		}
		n[r]++
		if c.Assertion != nil {
			exceptions += c.Assertion.Exceptions
		}
	}
	var parts []string
	for _, r := range order {
		parts = append(parts, fmt.Sprintf("%d %s", n[r], r))
	}
	return fmt.Sprintf("controls: %s; %d exception(s)", strings.Join(parts, ", "), exceptions)
}

// evidenceSample draws a reproducible sample of a control's population.
func evidenceSample(c *cobra.Command) cli.Run {
	fs := cli.Describe(c, "evidence sample FILE --control ID --seed N --size K --vkey KEY --allowed-signers FILE [--grant-vkey KEY] [--allow-unlocked] [--trust-bundle-keys]",
		"Verifies an evidence bundle as `evidence verify` does, then draws a\nreproducible sample of one control's assertion population (its\nassertion.csv): the K members whose key SHA-256(\"auditledger sample v1\" 0x00\nSEED 0x00 CONTROL 0x00 INDEX) is smallest (docs/FORMAT.md §12.2), in index\norder — the same bundle, control, seed and size always give the same items.\nPrints JSON: each item's row, its whole record and the record's RFC 9162\ninclusion proof at the bundle's end checkpoint (also printed), so each can be\nchecked offline.")
	control := fs.String("control", "", "the control whose population is sampled, e.g. 8.32")
	seed := fs.Uint64("seed", 0, "the seed (an auditor's choice: the same seed draws the same items)")
	size := fs.Int("size", 25, "how many items")
	vkeyArg := fs.String("vkey", "", "the log's verifier key, or its file")
	signersFile := fs.String("allowed-signers", "", "an allowed_signers file (ssh-keygen(1)) holding the evidence signing key")
	grantVKey := fs.String("grant-vkey", "", grantVKeyUsage)
	allowUnlocked := fs.Bool("allow-unlocked", false, "accept segments not locked in COMPLIANCE mode (a local development store), with a warning")
	trustBundle := fs.Bool("trust-bundle-keys", false, "check with the bundle's own keys/ for the keys not given: exits 1 after printing the sample")
	c.Args = cli.AtMostOne
	return func(ctx context.Context, args []string, _ io.Reader, stdout, stderr io.Writer) error {
		if len(args) != 1 {
			return errors.New("evidence sample: give the bundle file (see -h)")
		}
		if err := cli.Required(fs, "control", "seed"); err != nil {
			return err
		}
		if !*trustBundle && (*vkeyArg == "" || *signersFile == "") {
			return cli.Usagef("evidence sample: give both of the operator's keys, obtained outside the bundle: --vkey and --allowed-signers (or --trust-bundle-keys)")
		}
		opts := evidence.VerifyOptions{AllowUnlocked: *allowUnlocked, TrustBundleKeys: *trustBundle}
		if *vkeyArg != "" {
			v, err := loadVerifier(*vkeyArg)
			if err != nil {
				return err
			}
			opts.LogVerifier = v
		}
		if err := loadGrantKey(&opts, *grantVKey); err != nil {
			return err
		}
		if *signersFile != "" {
			b, err := os.ReadFile(*signersFile)
			if err != nil {
				return fmt.Errorf("evidence sample: --allowed-signers: %w", err)
			}
			if opts.AllowedSigners, err = evidence.ParseAllowedSigners(b); err != nil {
				return fmt.Errorf("evidence sample: --allowed-signers: %w", err)
			}
		}
		f, err := os.Open(args[0])
		if err != nil {
			return err
		}
		defer f.Close()
		info, err := f.Stat()
		if err != nil {
			return err
		}
		s, rep, err := evidence.DrawSample(f, info.Size(), opts, *control, *seed, *size)
		if err != nil {
			return fmt.Errorf("evidence sample: %w", err)
		}
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(s); err != nil {
			return err
		}
		if rep.UnverifiedOrigin {
			return cli.Failed(errors.New("unverified origin: the bundle was checked with keys it carries itself"))
		}
		return nil
	}
}

// parseDate reads RFC 3339 or a day (midnight UTC).
func parseDate(flag, s string) (time.Time, error) {
	if t, err := time.Parse(time.RFC3339, s); err == nil {
		return t.UTC(), nil
	}
	if t, err := time.Parse("2006-01-02", s); err == nil {
		return t, nil
	}
	return time.Time{}, fmt.Errorf("--%s %q: want RFC 3339 (2026-07-01T00:00:00Z) or a day (2026-07-01)", flag, s)
}

// loadEvidenceKey reads an Ed25519 OpenSSH private key.
func loadEvidenceKey(path string) (ssh.Signer, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("--key: %w", err)
	}
	raw, err := ssh.ParseRawPrivateKey(b)
	if err != nil {
		return nil, fmt.Errorf("--key %s: not an unencrypted OpenSSH private key (ssh-keygen -t ed25519 -N '' -f FILE makes one): %w", path, err)
	}
	var key ed25519.PrivateKey
	switch k := raw.(type) {
	case ed25519.PrivateKey:
		key = k
	case *ed25519.PrivateKey:
		key = *k
	default:
		return nil, fmt.Errorf("--key %s: a %T key; evidence is signed with Ed25519 (ssh-keygen -t ed25519)", path, raw)
	}
	return ssh.NewSignerFromKey(key)
}
