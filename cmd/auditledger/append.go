package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"runtime"
	"sync"
	"time"

	"github.com/spf13/cobra"

	"github.com/auditledger/auditledger/cmd/auditledger/internal/cli"
	"github.com/auditledger/auditledger/events"
	"github.com/auditledger/auditledger/ledger"
	"github.com/auditledger/auditledger/ledger/storeurl"
)

func appendCmd(c *cobra.Command) cli.Run {
	fs := cli.Describe(c, "append --store URL --key FILE [--segment-size N] < events.jsonl",
		"Reads one JSON event per line from stdin, validates each against the version-1\nschema, appends the valid ones, seals them into segments of up to N records and\nsigns a checkpoint after each segment. Invalid lines are reported on stderr with\ntheir line number and reason (and kept in --rejected FILE if given), never\nappended; the exit code is 1 if any line was rejected. The final signed\ncheckpoint is printed on stdout: keep it, and pass it to verify --since later.")
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
				rejected.Encode(struct {
					Line  int    `json:"line"`
					Error string `json:"error"`
					Raw   string `json:"raw"`
				}{line, err.Error(), string(raw)})
			}
		}
		start := time.Now()
		in, done := inputProgress(stdin, stderr, "appending")
		st, err := importEvents(ctx, in, log, *segSize, reject)
		done()
		if err != nil {
			return err
		}
		fmt.Fprintf(stderr, "appended %d events in %d segments (%.0f events/s); %d lines rejected; log size %d\n",
			st.appended, st.segments, float64(st.appended)/time.Since(start).Seconds(), st.rejected, log.Size())
		if cp := log.Checkpoint(); cp != nil {
			stdout.Write(cp.Signed)
		} else {
			fmt.Fprintln(stderr, "the log is empty: no checkpoint is signed until it holds an event")
		}
		if st.rejected > 0 {
			return cli.Failed(fmt.Errorf("append: %d of %d lines rejected", st.rejected, st.lines))
		}
		return nil
	}
}

type importStats struct {
	lines, appended, rejected, segments int
}

// importEvents reads JSON lines, validates them in parallel a segment's
// worth at a time, and appends the valid ones in input order. Reading and
// validating the next batch overlaps with sealing the current one.
func importEvents(ctx context.Context, r io.Reader, log *ledger.Log, segSize int, reject func(int, []byte, error)) (importStats, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	batches := make(chan []line, 1)
	var readErr error
	var lines int
	go func() {
		defer close(batches)
		lines, readErr = readBatches(ctx, r, segSize, batches)
	}()
	var st importStats
	for batch := range batches {
		entries := make([]ledger.Entry, 0, len(batch))
		for _, l := range batch {
			if l.err != nil {
				st.rejected++
				reject(l.n, l.raw, l.err)
				continue
			}
			entries = append(entries, ledger.Entry{Event: l.raw})
		}
		if len(entries) == 0 {
			continue
		}
		if _, err := log.Append(ctx, entries); err != nil {
			return st, err
		}
		st.appended += len(entries)
		st.segments++
	}
	st.lines = lines
	if readErr != nil {
		return st, readErr
	}
	return st, ctx.Err()
}

type line struct {
	n   int
	raw []byte
	err error
}

// readBatches splits input into validated batches of up to segSize
// non-blank lines. It returns the number of lines read.
func readBatches(ctx context.Context, r io.Reader, segSize int, out chan<- []line) (int, error) {
	br := bufio.NewReaderSize(r, events.MaxSize+2)
	workers := runtime.GOMAXPROCS(0)
	n := 0
	for eof := false; !eof; {
		var batch []line
		for len(batch) < segSize {
			raw, err := readLine(br)
			if err == io.EOF {
				eof = true
				break
			}
			n++
			if err != nil && !errors.Is(err, events.ErrTooLarge) {
				return n, fmt.Errorf("read line %d: %w", n, err)
			}
			if err == nil && len(bytes.TrimSpace(raw)) == 0 {
				continue // blank lines separate nothing and carry nothing
			}
			batch = append(batch, line{n: n, raw: raw, err: err})
		}
		var wg sync.WaitGroup
		per := max(1, (len(batch)+workers-1)/workers)
		for w := 0; w < len(batch); w += per {
			part := batch[w:min(w+per, len(batch))]
			wg.Go(func() {
				for i := range part {
					if part[i].err == nil {
						part[i].err = events.Validate(part[i].raw)
					}
				}
			})
		}
		wg.Wait()
		select {
		case out <- batch:
		case <-ctx.Done():
			return n, ctx.Err()
		}
	}
	return n, nil
}

// readLine returns the next line without its line ending, copied out of
// the reader's buffer. A line longer than an event may be is consumed and
// reported as ErrTooLarge, so one bad line does not stop the import.
func readLine(br *bufio.Reader) ([]byte, error) {
	raw, err := br.ReadSlice('\n')
	if err == bufio.ErrBufferFull {
		n := len(raw)
		for err == bufio.ErrBufferFull {
			raw, err = br.ReadSlice('\n')
			n += len(raw)
		}
		if err != nil && err != io.EOF {
			return nil, err
		}
		return nil, &events.FieldError{Reason: fmt.Sprintf("line is %d bytes, longer than the %d-byte event limit", n, events.MaxSize), Err: events.ErrTooLarge}
	}
	if err == io.EOF && len(raw) == 0 {
		return nil, io.EOF
	}
	if err != nil && err != io.EOF {
		return nil, err
	}
	raw = bytes.TrimSuffix(raw, []byte("\n"))
	raw = bytes.TrimSuffix(raw, []byte("\r"))
	return bytes.Clone(raw), nil
}
