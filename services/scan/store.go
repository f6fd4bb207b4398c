package scan

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/auditledger/auditledger/ledger"
)

// Record is what a scan of a store reports of one record.
type Record struct {
	Index uint64
	// Kind is "" for a producer's event, the writer's record type
	// without "ledger." for its own records ("gap", "rejected"), which
	// are scanned too (a rejection's reason may quote what a producer
	// sent), or "redacted" for a redacted record, which holds no event
	// (nothing to scan; docs/FORMAT.md §2.4).
	Kind string
	// ID, Type and Tenant are the event's, set when Findings is not
	// empty, and scrubbed of what the detectors find in them.
	ID, Type, Tenant string
	Findings         []Finding
}

// StoreOptions says which records Store reads and how.
type StoreOptions struct {
	// From and To bound the indexes read: [From, To). To 0 reads to the
	// end of the store.
	From, To uint64
	// Workers is how many goroutines scan events; 0 means GOMAXPROCS.
	Workers int
}

// batchSize is how many records a worker takes at a time: large enough
// that handing batches over costs little, small enough to keep the
// workers even.
const batchSize = 256

// Store scans the records of a store, reading them in order (framing and
// indexes checked, not hashes: ledger.Verify does that) and scanning
// events on several goroutines. It calls fn with every record in index
// order, from one goroutine; an error from fn, or a record that is not
// JSON, stops the scan and is returned.
func (s *Scanner) Store(ctx context.Context, store ledger.SegmentStore, opts StoreOptions, fn func(Record) error) error {
	to := opts.To
	if to == 0 {
		to = ^uint64(0)
	}
	workers := opts.Workers
	if workers <= 0 {
		workers = runtime.GOMAXPROCS(0)
	}
	type batch struct {
		idx  []uint64
		recs []ledger.Record
		out  []Record
		err  error
		done chan struct{}
	}
	jobs := make(chan *batch, workers)
	order := make(chan *batch, 2*workers)
	var wg sync.WaitGroup
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for b := range jobs {
				b.out = make([]Record, len(b.recs))
				for i, r := range b.recs {
					if b.out[i], b.err = s.record(b.idx[i], r); b.err != nil {
						break
					}
				}
				close(b.done)
			}
		}()
	}
	var stopped atomic.Bool
	emitted := make(chan error, 1)
	go func() {
		var err error
		for b := range order {
			<-b.done
			if err != nil {
				continue // drain, so that the reader never blocks
			}
			if err = b.err; err != nil {
				stopped.Store(true)
				continue
			}
			for _, r := range b.out {
				if err = fn(r); err != nil {
					stopped.Store(true)
					break
				}
			}
		}
		emitted <- err
	}()
	cur := &batch{done: make(chan struct{})}
	send := func() {
		jobs <- cur
		order <- cur
		cur = &batch{done: make(chan struct{})}
	}
	errStopped := errors.New("stopped")
	err := ledger.ReadRange(ctx, store, opts.From, to, func(idx uint64, _ []byte, r ledger.Record) error {
		if stopped.Load() {
			return errStopped
		}
		cur.idx = append(cur.idx, idx)
		cur.recs = append(cur.recs, r)
		if len(cur.recs) == batchSize {
			send()
		}
		return nil
	})
	if len(cur.recs) > 0 && err == nil {
		send()
	}
	close(jobs)
	close(order)
	wg.Wait()
	if e := <-emitted; e != nil {
		return e
	}
	return err
}

// record scans one record.
func (s *Scanner) record(idx uint64, r ledger.Record) (Record, error) {
	out := Record{Index: idx, Kind: kind(r)}
	if out.Kind == "redacted" {
		return out, nil
	}
	found, err := s.Event(r.Event)
	if err != nil {
		return out, fmt.Errorf("record %d: %w", idx, err)
	}
	if len(found) == 0 {
		return out, nil
	}
	var ev struct {
		ID     string `json:"id"`
		Type   string `json:"type"`
		Tenant string `json:"tenant"`
	}
	json.Unmarshal(r.Event, &ev) // Event has read it: it is JSON
	out.ID, out.Type, out.Tenant, out.Findings = s.Scrub(ev.ID), s.Scrub(ev.Type), s.Scrub(ev.Tenant), found
	return out, nil
}

// kind tells redacted records and the writer's own records apart from
// events, without decoding events.
func kind(r ledger.Record) string {
	switch {
	case r.Redacted():
		return "redacted"
	case bytes.HasPrefix(r.Event, []byte(ledger.SystemPrefix)):
		var ev struct {
			Type string `json:"type"`
		}
		json.Unmarshal(r.Event, &ev)
		return strings.TrimPrefix(ev.Type, "ledger.")
	}
	return ""
}
