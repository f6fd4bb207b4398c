// Package eventimport reads events as JSON lines, validates them and
// appends them to a log a segment's worth at a time: what append does,
// and what bench ledger measures.
package eventimport

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"runtime"
	"sync"

	"github.com/auditledger/auditledger/events"
	"github.com/auditledger/auditledger/events/detect"
	"github.com/auditledger/auditledger/ledger"
)

// Stats counts what Import read and did.
type Stats struct {
	Lines, Appended, Rejected, Segments int
}

// Import reads JSON lines, validates them in parallel a segment's
// worth at a time (a line that holds a value a built-in detector finds is
// rejected with a *detect.FoundError, never appended), and appends the valid ones in input order. Reading and
// validating the next batch overlaps with sealing the current one.
func Import(ctx context.Context, r io.Reader, log *ledger.Log, segSize int, reject func(int, []byte, error)) (Stats, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	batches := make(chan []line, 1)
	var readErr error
	var lines int
	go func() {
		defer close(batches)
		lines, readErr = readBatches(ctx, r, segSize, batches)
	}()
	var st Stats
	for batch := range batches {
		entries := make([]ledger.Entry, 0, len(batch))
		for _, l := range batch {
			if l.err != nil {
				st.Rejected++
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
		st.Appended += len(entries)
		st.Segments++
	}
	st.Lines = lines
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
			raw, err := ReadLine(br)
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
						// Detectors first: a validation error
						// could quote the value.
						if part[i].err = detect.CheckEvent(part[i].raw); part[i].err == nil {
							part[i].err = events.Validate(part[i].raw)
						}
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

// ReadLine returns the next line without its line ending, copied out of
// the reader's buffer. A line longer than an event may be is consumed and
// reported as ErrTooLarge, so one bad line does not stop the import.
func ReadLine(br *bufio.Reader) ([]byte, error) {
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
