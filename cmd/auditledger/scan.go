package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/auditledger/auditledger/cmd/auditledger/internal/cli"
	"github.com/auditledger/auditledger/ledger"
	"github.com/auditledger/auditledger/ledger/storeurl"
	"github.com/auditledger/auditledger/services/scan"
)

// scanCmd reads every sealed event of a store and reports where a value
// detector matches: what the gateways replace before recording, found in
// what was sealed. It prints where and which detector, never the value.
func scanCmd(c *cobra.Command) cli.Run {
	fs := cli.Describe(c, "scan --store URL [--vkey KEY] [--detect D,...] [--from N] [--to M] [--json]",
		"Reads every sealed event of a store, offline, and runs the value detectors\n(the ones the gateways mask with: all of them, or those --detect names) over\nevery string of each event, envelope and payload, member names too, at any\ndepth, as sealed and once decoded when it is URL-escaped or base64 text. Each\nfinding is printed as the record's index, the event's type, tenant and id, the\nJSON path of the string and the detector; never the value, nor any part of it\n(an id or member name that holds a match is shown scrubbed). The writer's gap\nand rejection records are scanned too (a rejection's reason may quote what a\nproducer sent) and counted apart; redacted records, which hold no event, are\ncounted and skipped. Each event is also judged by the writer's own check, whose\nfirst match is reported when the walk missed it: with every detector, each event\nthe writer would refuse has a finding.\nWith --vkey, the latest checkpoint's signature is checked and the scan stops at\nits size; the records themselves are read, not verified (run verify for that).\nA summary ends the output: records scanned, records/s, findings per detector\n(on stderr with --json). Exit 0 when nothing is found, 1 when something is or\nthe checkpoint does not check, 2 for a wrong command line or an unreadable store.")
	storeURL := fs.String("store", "", "store URL or directory")
	vkeyArg := fs.String("vkey", "", "verifier key or file: check the latest checkpoint's signature and scan up to its size")
	detect := fs.String("detect", "", "detectors to run, comma-separated (default: all; known: "+strings.Join(scan.All(), ", ")+")")
	from := fs.Uint64("from", 0, "first index to scan")
	to := fs.Uint64("to", 0, "scan indexes below this (0: to the end)")
	asJSON := fs.Bool("json", false, "one JSON object per finding instead of a table")
	return func(ctx context.Context, args []string, _ io.Reader, stdout, stderr io.Writer) error {
		if err := cli.Required(fs, "store"); err != nil {
			return err
		}
		var names []string
		for _, d := range strings.Split(*detect, ",") {
			if d = strings.TrimSpace(d); d != "" {
				names = append(names, d)
			}
		}
		sc, err := scan.New(names...)
		if err != nil {
			return cli.Usagef("--detect: %v", err)
		}
		if *to != 0 && *to <= *from {
			return cli.Usagef("--to %d is not above --from %d", *to, *from)
		}
		store, err := storeurl.OpenExisting(ctx, *storeURL)
		if err != nil {
			return err
		}
		size, err := checkpointedSize(ctx, store.Store, *vkeyArg, stdout, *asJSON)
		if err != nil {
			return err
		}
		end := *to
		if end == 0 {
			end = ^uint64(0)
		}
		if *vkeyArg != "" {
			end = min(end, size)
		}
		total := int64(-1) // no checkpoint: a running count
		if size > 0 {
			total = int64(min(end, size) - min(*from, end, size))
		}
		set, finish := countProgress(stderr, total, "scanning")
		// Findings may be many (an e-mail in every event's actor): one
		// write per line would cost more than the scan.
		buf := bufio.NewWriterSize(stdout, 64<<10)
		defer buf.Flush()
		out := newScanOutput(buf, *asJSON)
		sum := scanSummary{perDetector: map[string]int{}, kinds: map[string]int{}}
		start := time.Now()
		err = sc.Store(ctx, store.Store, scan.StoreOptions{From: *from, To: end}, func(r scan.Record) error {
			sum.records++
			if sum.records%4096 == 0 {
				set(int64(sum.records))
			}
			sum.kinds[r.Kind]++
			if len(r.Findings) > 0 {
				sum.events++
			}
			for _, f := range r.Findings {
				sum.findings++
				sum.perDetector[f.Detector]++
				if err := out.finding(r, f); err != nil {
					return err
				}
			}
			return nil
		})
		set(int64(sum.records))
		finish()
		if err != nil {
			return fmt.Errorf("scan: %w", err)
		}
		if err := buf.Flush(); err != nil {
			return fmt.Errorf("scan: %w", err)
		}
		sum.took = time.Since(start)
		w := stdout
		if *asJSON {
			w = stderr
		}
		sum.print(w, sc)
		if sum.findings > 0 {
			return cli.Failed(fmt.Errorf("%d finding(s) in %d event(s): sealed text a detector matches", sum.findings, sum.events))
		}
		return nil
	}
}

// checkpointedSize is the size of the store's latest checkpoint (0
// without one). With a verifier key its signature is checked first.
func checkpointedSize(ctx context.Context, store ledger.SegmentStore, vkeyArg string, stdout io.Writer, quiet bool) (uint64, error) {
	names, err := store.List(ctx, ledger.CheckpointPrefix)
	if err != nil {
		return 0, fmt.Errorf("scan: list checkpoints: %w", err)
	}
	var size uint64
	var last string
	for _, n := range names {
		if s, err := strconv.ParseUint(strings.TrimPrefix(n, ledger.CheckpointPrefix), 10, 64); err == nil && s >= size {
			size, last = s, n
		}
	}
	if vkeyArg == "" {
		return size, nil
	}
	v, err := loadVerifier(vkeyArg)
	if err != nil {
		return 0, err
	}
	if last == "" {
		return 0, cli.Failed(fmt.Errorf("scan: %s holds no checkpoint to check", store))
	}
	b, err := store.Get(ctx, last)
	if err != nil {
		return 0, fmt.Errorf("scan: read %s: %w", last, err)
	}
	cp, err := ledger.OpenCheckpoint(b, v)
	if err != nil {
		return 0, cli.Failed(fmt.Errorf("scan: %s: %w", last, err))
	}
	if cp.Size != size {
		return 0, cli.Failed(fmt.Errorf("scan: %s is named for size %d but signs size %d", last, size, cp.Size))
	}
	if !quiet {
		fmt.Fprintf(stdout, "checkpoint  size %d, signature by %s verified\n", cp.Size, v.Name())
	}
	return size, nil
}

// scanOutput prints findings as a table or JSON lines.
type scanOutput struct {
	w      io.Writer
	enc    *json.Encoder
	header bool
}

func newScanOutput(w io.Writer, asJSON bool) *scanOutput {
	o := &scanOutput{w: w}
	if asJSON {
		o.enc = json.NewEncoder(w)
	}
	return o
}

func (o *scanOutput) finding(r scan.Record, f scan.Finding) error {
	if o.enc != nil {
		return o.enc.Encode(struct {
			Index  uint64 `json:"index"`
			ID     string `json:"id"`
			Type   string `json:"type"`
			Tenant string `json:"tenant"`
			scan.Finding
		}{r.Index, r.ID, r.Type, r.Tenant, f})
	}
	if !o.header {
		o.header = true
		fmt.Fprintln(o.w, "INDEX  TYPE  TENANT  ID  PATH  DETECTOR")
	}
	detail := f.Detector
	if f.Count > 1 {
		detail += fmt.Sprintf(" ×%d", f.Count)
	}
	if f.Key {
		detail += " (member name)"
	}
	if f.Decoded != "" {
		detail += " (" + f.Decoded + "-decoded)"
	}
	_, err := fmt.Fprintf(o.w, "%d  %s  %s  %s  %s  %s\n", r.Index, r.Type, r.Tenant, r.ID, f.Path, detail)
	return err
}

// scanSummary counts what a scan read and found.
type scanSummary struct {
	records, events, findings int
	perDetector               map[string]int
	kinds                     map[string]int // records by scan.Record.Kind
	took                      time.Duration
}

func (s *scanSummary) print(w io.Writer, sc *scan.Scanner) {
	kinds := []string{fmt.Sprintf("%d events", s.kinds[""])}
	var other []string
	for k, n := range s.kinds {
		switch k {
		case "":
		case "redacted":
			other = append(other, fmt.Sprintf("%d redacted (no event left, skipped)", n))
		default:
			other = append(other, fmt.Sprintf("%d %s (the writer's)", n, k))
		}
	}
	sort.Strings(other)
	rate := float64(s.records) / max(s.took.Seconds(), 1e-9)
	fmt.Fprintf(w, "scanned     %d records in %s (%.0f records/s): %s\n", s.records, s.took.Round(time.Millisecond), rate, strings.Join(append(kinds, other...), ", "))
	var per []string
	for _, d := range sc.Detectors() {
		per = append(per, fmt.Sprintf("%s %d", d, s.perDetector[d]))
	}
	if s.findings == 0 {
		fmt.Fprintf(w, "found       nothing (%s)\n", strings.Join(sc.Detectors(), ", "))
		return
	}
	fmt.Fprintf(w, "found       %d finding(s) in %d event(s): %s\n", s.findings, s.events, strings.Join(per, ", "))
}
