package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/auditledger/auditledger/cmd/auditledger/internal/cli"
	"github.com/auditledger/auditledger/ledger"
	"github.com/auditledger/auditledger/ledger/storeurl"
)

func verifyCmd(c *cobra.Command) cli.Run {
	fs := cli.Describe(c, "verify --store URL --vkey KEY [--since CHECKPOINT_FILE]",
		"Checks a whole store offline: every segment's framing, every record's index and\nleaf hash, the hash chain, the Merkle root in every segment trailer and every\ncheckpoint, each checkpoint's signature, that no record is missing, and on S3\nthat no segment is hidden or shadowed and each is locked in COMPLIANCE mode long\nenough: for the longest retention recorded for the tenants it holds (the\nwriter's ledger.retention.changed records), or --retention before any is\nrecorded. Segments under legal hold are listed, and any hold the log has no\nlegal_hold event for (or an event the store shows no hold for) is a warning. With --since, also that the log extends that earlier checkpoint, which\ncatches a rewritten or forked history even if it was re-signed with the right\nkey. Every stream sequence the writer consumed must be accounted for: sealed,\nrecorded as rejected, or inside a gap record; gaps are listed, and fail the\ncheck unless --allow-gaps. Exit 0 with a summary; exit 1 naming the first\nfailure.")
	storeURL := fs.String("store", "", "segment store URL")
	vkeyArg := fs.String("vkey", "", "verifier key (name+hash+base64) or a file holding it")
	since := fs.String("since", "", "file holding an earlier signed checkpoint the log must extend")
	retention := fs.String("retention", "", "minimum lock of every segment (e.g. 7y, 30d), on top of the retention the log records per tenant; default: the store URL's retention (none on a local store) for segments sealed before the log recorded one")
	verbose := fs.Bool("v", false, "list every segment with its digest, version and lock")
	producersFile := fs.String("producers", "", "registry of producer verifier keys (one per line): check every producer signature and attestation, and that every event is attested by the producer it names")
	allowUnattested := fs.Bool("allow-unattested", false, "with --producers, exit 0 when some events are not attested by their producer; they are listed either way")
	allowGaps := fs.Bool("allow-gaps", false, "exit 0 when the log records gaps (stream sequences that vanished before they were sealed); they are listed either way")
	return func(ctx context.Context, args []string, _ io.Reader, stdout, stderr io.Writer) error {
		if err := cli.Required(fs, "store", "vkey"); err != nil {
			return err
		}
		v, err := loadVerifier(*vkeyArg)
		if err != nil {
			return err
		}
		store, err := storeurl.OpenExisting(ctx, *storeURL)
		if err != nil {
			return err
		}
		opts := ledger.VerifyOptions{Verifier: v, Retention: store.Retention, AllowGaps: true, AllowUnattested: true}
		if *retention != "" {
			if opts.Retention, err = storeurl.ParseRetention(*retention); err != nil {
				return fmt.Errorf("verify: --retention: %w", err)
			}
			opts.RetentionFloor = true
		}
		if *producersFile != "" {
			b, err := os.ReadFile(*producersFile)
			if err != nil {
				return fmt.Errorf("verify: --producers: %w", err)
			}
			if opts.Producers, err = ledger.ParseProducers(string(b)); err != nil {
				return fmt.Errorf("verify: --producers %s: %w", *producersFile, err)
			}
		}
		if *since != "" {
			b, err := os.ReadFile(*since)
			if err != nil {
				return fmt.Errorf("verify: --since: %w", err)
			}
			if opts.Since, err = ledger.OpenCheckpoint(b, v); err != nil {
				return fmt.Errorf("verify: --since %s: %w", *since, err)
			}
		}
		var bar *progressBar
		if isTerminal(stderr) {
			bar = &progressBar{w: stderr, label: "verifying segments", start: time.Now()}
			opts.Progress = bar.update
		}
		start := time.Now()
		rep, err := ledger.Verify(ctx, store.Store, opts)
		if cp := sealUnderWay(ctx, store.Store, err); cp != "" {
			// A writer stores a segment, then the checkpoint signed at its
			// end: a store being written can be read between the two.
			fmt.Fprintf(stderr, "a seal was under way (%s stored since): verifying again\n", cp)
			rep, err = ledger.Verify(ctx, store.Store, opts)
		}
		bar.done()
		elapsed := time.Since(start)
		if err != nil {
			fmt.Fprintf(stdout, "FAIL  %s\n  %v\n", store.Store, err)
			return cli.Failed(fmt.Errorf("verification failed"))
		}
		if n := len(rep.Unattested); n > 0 && !*allowUnattested {
			fmt.Fprintf(stdout, "FAIL  %s\n  %v\n", store.Store, &ledger.UnattestedError{Events: rep.Unattested})
			printUnattested(stdout, rep.Unattested)
			fmt.Fprintf(stdout, "  everything else verified; --allow-unattested accepts them\n")
			return cli.Failed(fmt.Errorf("%d event(s) not attested by their producer", n))
		}
		if len(rep.Gaps) > 0 && !*allowGaps {
			fmt.Fprintf(stdout, "FAIL  %s\n  %v\n", store.Store, &ledger.GapsError{Gaps: rep.Gaps})
			printGaps(stdout, rep.Gaps)
			fmt.Fprintf(stdout, "  everything else verified; --allow-gaps accepts a log whose gaps are explained\n")
			return cli.Failed(fmt.Errorf("the log records %d gap(s)", len(rep.Gaps)))
		}
		printReport(stdout, rep, opts, elapsed, *verbose)
		return nil
	}
}

func printGaps(w io.Writer, gaps []ledger.Gap) {
	for _, g := range gaps {
		fmt.Fprintf(w, "  gap          stream sequences %d..%d (%d) at record %d, noticed %s; stream then held %d..%d: %s\n",
			g.FirstSeq, g.LastSeq, g.Count, g.Index, g.NoticedAt.Format(time.RFC3339), g.Stream.FirstSeq, g.Stream.LastSeq, g.Reason)
	}
}

func printReport(w io.Writer, rep *ledger.Report, opts ledger.VerifyOptions, elapsed time.Duration, verbose bool) {
	fmt.Fprintf(w, "OK    %s\n", rep.Store)
	fmt.Fprintf(w, "  origin       %s\n", rep.Origin)
	gaps := "no gaps"
	if len(rep.Gaps) > 0 {
		gaps = fmt.Sprintf("%d gap(s), accepted by --allow-gaps", len(rep.Gaps))
	}
	fmt.Fprintf(w, "  records      %d in %d segments, %d checkpoints, %s", rep.Size, len(rep.Segments), rep.Checkpoints, gaps)
	if rep.Rejected > 0 {
		fmt.Fprintf(w, ", %d rejected event(s) recorded", rep.Rejected)
	}
	fmt.Fprintln(w)
	printGaps(w, rep.Gaps)
	switch {
	case opts.Producers != nil:
		fmt.Fprintf(w, "  producers    %d event(s) attested and %d signed by the producer they name, checked against %d registered key(s); %d not attested\n",
			rep.Attested, rep.Signed, opts.Producers.Len(), len(rep.Unattested))
		printUnattested(w, rep.Unattested)
	case rep.Signed > 0:
		fmt.Fprintf(w, "  producers    %d record(s) carry a producer signature, not checked (give --producers)\n", rep.Signed)
	}
	printErasure(w, rep.Erasure)
	if rep.Bulk > 0 {
		locked := ""
		if slices.ContainsFunc(rep.Segments, func(s ledger.SegmentReport) bool { return s.Protection != nil && s.Protection.Locked }) {
			locked = ", locked at least as the first segment naming it"
		}
		fmt.Fprintf(w, "  bulk pieces  %d (%d bytes) named by the log's events, each in the store as bulk/<name> of its size and SHA-256%s\n",
			rep.Bulk, rep.BulkBytes, locked)
	}
	if rep.Size > 0 {
		fmt.Fprintf(w, "  time range   %s .. %s\n", rep.FirstTime.Format(time.RFC3339), rep.LastTime.Format(time.RFC3339))
	}
	fmt.Fprintf(w, "  root         %s (size %d, signature by %s verified)\n", rep.Root.Base64(), rep.Size, opts.Verifier.Name())
	fmt.Fprintf(w, "  chain head   %s\n", rep.Chain)
	for _, form := range slices.Sorted(maps.Keys(rep.Legacy)) {
		fmt.Fprintf(w, "  legacy form  %d record(s): %s\n", rep.Legacy[form], form)
	}
	if opts.Since != nil {
		fmt.Fprintf(w, "  consistent   with the --since checkpoint at size %d\n", opts.Since.Size)
	}
	printRetention(w, rep, opts)
	for _, warn := range rep.Warnings {
		fmt.Fprintf(w, "  warning      %s\n", warn)
	}
	if verbose {
		fmt.Fprintf(w, "  segments:\n")
		for _, s := range rep.Segments {
			lock := "-"
			if p := s.Protection; p != nil {
				lock = p.Mode
				if p.Locked {
					lock += " until " + p.RetainUntil.Format(time.RFC3339)
				}
				if p.LegalHold {
					lock += " legal hold"
				}
				if p.Version != "" {
					lock += " version " + p.Version
				}
			}
			fmt.Fprintf(w, "    %s  records %d..%d  sha256 %s  %s\n", s.Name, s.First, s.End-1, s.SHA256, lock)
		}
	}
	rate := float64(rep.Size) / elapsed.Seconds()
	fmt.Fprintf(w, "  verified in  %s (%.0f records/s)\n", elapsed.Round(time.Millisecond), rate)
}

// printRetention says what lock every segment was checked for, and which
// are under legal hold.
func printRetention(w io.Writer, rep *ledger.Report, opts ledger.VerifyOptions) {
	var earliest time.Time
	checked := 0
	for _, s := range rep.Segments {
		if s.Required == 0 {
			continue
		}
		checked++
		if u := s.Protection.RetainUntil; earliest.IsZero() || u.Before(earliest) {
			earliest = u
		}
	}
	if checked > 0 {
		which := "every segment"
		if checked < len(rep.Segments) {
			which = fmt.Sprintf("%d of %d segments", checked, len(rep.Segments))
		}
		how := fmt.Sprintf("for at least %s after its last record", opts.Retention)
		if rep.Retention != nil {
			how = fmt.Sprintf("for the longest retention recorded for its tenants (%d change(s) recorded; now: default %s, %d tenant(s) listed)",
				rep.RetentionChanges, rep.Retention.Default, len(rep.Retention.Tenants))
			if opts.RetentionFloor {
				how += fmt.Sprintf(", and at least %s", opts.Retention)
			} else if opts.Retention > 0 {
				how += fmt.Sprintf("; before the first change, at least %s", opts.Retention)
			}
		}
		fmt.Fprintf(w, "  retention    %s locked COMPLIANCE %s; earliest unlock %s\n", which, how, earliest.Format(time.RFC3339))
	}
	for _, h := range rep.Holds {
		by := "no legal_hold.set event records it"
		if h.SetAt >= 0 {
			by = fmt.Sprintf("legal_hold.set at record %d: %s", h.SetAt, h.Reason)
		}
		fmt.Fprintf(w, "  legal hold   %s  records %d..%d  (%s)\n", h.Name, h.First, h.End-1, by)
	}
}

// progressBar draws one updating line on a terminal.
type progressBar struct {
	w     io.Writer
	label string
	start time.Time
	last  time.Time
}

func (p *progressBar) update(done, total int) {
	if time.Since(p.last) < 100*time.Millisecond && done != total {
		return
	}
	p.last = time.Now()
	const width = 30
	fill := width * done / max(total, 1)
	bar := make([]byte, width)
	for i := range bar {
		bar[i] = ' '
		if i < fill {
			bar[i] = '='
		}
	}
	fmt.Fprintf(p.w, "\r%s [%s] %d/%d %s", p.label, bar, done, total, time.Since(p.start).Round(time.Second))
}

func (p *progressBar) done() {
	if p != nil {
		fmt.Fprint(p.w, "\r\033[K")
	}
}

// printUnattested lists unattested events, grouped by the producer they
// name.
func printUnattested(w io.Writer, events []ledger.Unattested) {
	by := map[string][]uint64{}
	var names []string
	for _, u := range events {
		if by[u.Instance] == nil {
			names = append(names, u.Instance)
		}
		by[u.Instance] = append(by[u.Instance], u.Index)
	}
	for _, n := range names {
		idx := by[n]
		more := ""
		if len(idx) > 5 {
			idx, more = idx[:5], fmt.Sprintf(" and %d more", len(by[n])-5)
		}
		fmt.Fprintf(w, "  unattested   %d event(s) naming %q: records %v%s\n", len(by[n]), n, idx, more)
	}
}

// sealWaitStarts, when set (by a test), is called as sealUnderWay begins
// to wait.
var sealWaitStarts func()

// sealUnderWay reports, for a verification that failed because the newest
// segment has no checkpoint at its end, whether that checkpoint appears
// within two seconds (a writer sealing while the store was read): its
// name if so, "" otherwise. A store at rest without it still fails.
func sealUnderWay(ctx context.Context, store ledger.SegmentStore, err error) string {
	var ve *ledger.VerifyError
	if !errors.As(err, &ve) || ve.Found != "nothing" || !strings.HasPrefix(ve.Expected, ledger.CheckpointPrefix) {
		return ""
	}
	segs, lerr := store.List(ctx, ledger.SegmentPrefix)
	if lerr != nil || len(segs) == 0 || segs[len(segs)-1] != ve.Object {
		return "" // not the newest segment: no seal explains it
	}
	if sealWaitStarts != nil {
		sealWaitStarts()
	}
	for wait := time.Now().Add(2 * time.Second); time.Now().Before(wait); {
		if _, gerr := store.Get(ctx, ve.Expected); gerr == nil {
			return ve.Expected
		}
		select {
		case <-ctx.Done():
			return ""
		case <-time.After(50 * time.Millisecond):
		}
	}
	return ""
}
