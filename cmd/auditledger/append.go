package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/spf13/cobra"

	"github.com/auditledger/auditledger/cmd/auditledger/internal/cli"
	"github.com/auditledger/auditledger/cmd/auditledger/internal/eventimport"
	"github.com/auditledger/auditledger/events/detect"
	"github.com/auditledger/auditledger/ledger"
	"github.com/auditledger/auditledger/ledger/storeurl"
)

func appendCmd(c *cobra.Command) cli.Run {
	fs := cli.Describe(c, "append --store URL --key FILE [--segment-size N] < events.jsonl",
		"Reads one JSON event per line from stdin, validates each against the version-1\nschema, appends the valid ones, seals them into segments of up to N records and\nsigns a checkpoint after each segment. Invalid lines are reported on stderr with\ntheir line number and reason (and kept in --rejected FILE if given; a line that\nholds a value a built-in detector finds is reported without it), never\nappended; the exit code is 1 if any line was rejected. The final signed\ncheckpoint is printed on stdout: keep it, and pass it to verify --since later.")
	storeURL := fs.String("store", "", "segment store URL (directory, file:///path or s3://bucket/prefix?endpoint=...)")
	keyPath := fs.String("key", "", "checkpoint signing key file (from keys generate)")
	segSize := fs.Int("segment-size", 10000, "records per sealed segment")
	rejectedPath := fs.String("rejected", "", "write rejected lines with their reasons to this JSON-lines file")
	return func(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) error {
		if err := cli.Required(fs, "store", "key"); err != nil {
			return err
		}
		if *segSize < 1 || *segSize > ledger.MaxSegmentRecords {
			return fmt.Errorf("append: --segment-size must be 1..%d", ledger.MaxSegmentRecords)
		}
		signer, err := loadSigner(*keyPath)
		if err != nil {
			return err
		}
		store, err := storeurl.Open(ctx, *storeURL)
		if err != nil {
			return err
		}
		log, err := ledger.Open(ctx, ledger.Config{Store: store.Store, Signer: signer, Retention: store.Retention})
		if err != nil {
			return err
		}
		var rejected *json.Encoder
		if *rejectedPath != "" {
			f, err := os.OpenFile(*rejectedPath, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
			if err != nil {
				return err
			}
			defer f.Close()
			rejected = json.NewEncoder(f)
		}
		reject := func(line int, raw []byte, err error) {
			fmt.Fprintf(stderr, "line %d: rejected: %v\n", line, err)
			if rejected != nil {
				if errors.Is(err, detect.ErrFound) {
					raw = nil // the value is kept nowhere
				}
				rejected.Encode(struct {
					Line  int    `json:"line"`
					Error string `json:"error"`
					Raw   string `json:"raw,omitempty"`
				}{line, err.Error(), string(raw)})
			}
		}
		start := time.Now()
		in, done := inputProgress(stdin, stderr, "appending")
		st, err := eventimport.Import(ctx, in, log, *segSize, reject)
		done()
		if err != nil {
			return err
		}
		fmt.Fprintf(stderr, "appended %d events in %d segments (%.0f events/s); %d lines rejected; log size %d\n",
			st.Appended, st.Segments, float64(st.Appended)/time.Since(start).Seconds(), st.Rejected, log.Size())
		if cp := log.Checkpoint(); cp != nil {
			stdout.Write(cp.Signed)
		} else {
			fmt.Fprintln(stderr, "the log is empty: no checkpoint is signed until it holds an event")
		}
		if st.Rejected > 0 {
			return cli.Failed(fmt.Errorf("append: %d of %d lines rejected", st.Rejected, st.Lines))
		}
		return nil
	}
}
