package ledger

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/auditledger/auditledger/events"
)

// BulkPrefix is where a store keeps bulk pieces (docs/FORMAT.md §1.7, §4):
// bulk/<name>, name the lower-case hex of the object's SHA-256.
const BulkPrefix = "bulk/"

// BulkObjectName is the store object of the bulk piece name.
func BulkObjectName(name string) string { return BulkPrefix + name }

// BulkPiece is a bulk piece an entry's event names, to be copied to the
// store before the segment holding the entry is: Read returns its object
// (from the bus), which must be Size bytes whose SHA-256 is Name.
type BulkPiece struct {
	Name string
	Size int64
	Read func(ctx context.Context) ([]byte, error)
	// Checked, when not nil, is the object already read and found to be
	// Size bytes whose SHA-256 is Name (the writer's check of the bus's
	// message, docs/FORMAT.md §1.7): copied as it is, neither read nor
	// hashed again.
	Checked []byte
}

// ErrBulkMismatch: a store holds a bulk piece under a name whose bytes
// are not the piece's (its SHA-256 or size differs), or the bus gave
// other bytes than the event names.
var ErrBulkMismatch = errors.New("bulk piece differs from the one its event names")

// isBulkName reports whether name is 64 lower-case hex digits.
func isBulkName(name string) bool {
	if len(name) != 64 {
		return false
	}
	for i := 0; i < len(name); i++ {
		if c := name[i]; (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}

// checkBulk reports whether object is the piece named name of size bytes.
func checkBulk(name string, size int64, object []byte) error {
	sum := sha256.Sum256(object)
	if got := hex.EncodeToString(sum[:]); int64(len(object)) != size || got != name {
		return fmt.Errorf("%w: %s is %d bytes with SHA-256 %s, the event names %d bytes", ErrBulkMismatch, BulkObjectName(name), len(object), got, size)
	}
	return nil
}

// StoreBulk copies piece p to store as bulk/<name>, locked until retain
// where the store enforces it (docs/FORMAT.md §1.7): a piece already there
// with the same bytes is left as it is (the same piece named twice, or
// a copy a crash left before its segment); one with other bytes is an
// error wrapping ErrBulkMismatch.
func StoreBulk(ctx context.Context, store SegmentStore, p BulkPiece, retain time.Time) error {
	if !isBulkName(p.Name) {
		return fmt.Errorf("ledger: bulk piece name %q is not 64 lower-case hex digits", p.Name)
	}
	object := p.Checked
	if object == nil {
		var err error
		if object, err = p.Read(ctx); err != nil {
			return fmt.Errorf("ledger: bulk piece %s: %w", p.Name, err)
		}
		if err := checkBulk(p.Name, p.Size, object); err != nil {
			return fmt.Errorf("ledger: bulk piece from the bus: %w", err)
		}
	} else if int64(len(object)) != p.Size {
		return fmt.Errorf("ledger: bulk piece %s: %w: %d bytes checked, the event names %d", p.Name, ErrBulkMismatch, len(object), p.Size)
	}
	name := BulkObjectName(p.Name)
	err := store.Create(ctx, name, object, retain)
	if errors.Is(err, ErrExist) {
		old, gerr := store.Get(ctx, name)
		if gerr != nil {
			return fmt.Errorf("ledger: %s exists, reading it: %w", name, gerr)
		}
		if !bytes.Equal(old, object) {
			return fmt.Errorf("ledger: %s exists in %s with other bytes (%d, SHA-256 %s): %w", name, store, len(old), sha256Hex(old), ErrBulkMismatch)
		}
		return extendBulk(ctx, store, name, retain)
	}
	if err != nil {
		return fmt.Errorf("ledger: copy bulk piece %s: %w", name, err)
	}
	return nil
}

// extendBulk makes a piece already stored (by an attempt a crash cut
// short before its segment, whose retain-until was earlier) locked until
// at least retain, where the store can say and extend its lock.
func extendBulk(ctx context.Context, store SegmentStore, name string, retain time.Time) error {
	ins, ok1 := store.(Inspector)
	ext, ok2 := store.(RetentionExtender)
	if retain.IsZero() || !ok1 || !ok2 {
		return nil
	}
	p, err := ins.Inspect(ctx, name)
	if err != nil {
		return fmt.Errorf("ledger: %s exists, reading its lock: %w", name, err)
	}
	if p.Locked && !p.RetainUntil.Before(retain.Truncate(time.Second)) {
		return nil
	}
	if err := ext.ExtendRetention(ctx, name, retain); err != nil {
		return fmt.Errorf("ledger: %s exists locked until %s, extending it to %s: %w", name, p.RetainUntil.Format(time.RFC3339), retain.Format(time.RFC3339), err)
	}
	return nil
}

// bulkCopies bounds the pieces copied at once: a store's round trips
// (an S3 PUT and the HEAD reading its lock back) overlap, and at most
// that many objects (512 KiB each) are in memory.
const bulkCopies = 8

// storeBulkOf copies every piece entries name (StoreBulk), bulkCopies
// at a time, and returns the first failure, naming its entry.
func storeBulkOf(ctx context.Context, store SegmentStore, entries []Entry, retain time.Time) error {
	type job struct {
		entry int
		p     BulkPiece
	}
	var jobs []job
	for i, e := range entries {
		for _, p := range e.Bulk {
			jobs = append(jobs, job{i, p})
		}
	}
	if len(jobs) == 0 {
		return nil
	}
	errs := make([]error, len(jobs))
	sem := make(chan struct{}, bulkCopies)
	var wg sync.WaitGroup
	for k, j := range jobs {
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			if err := StoreBulk(ctx, store, j.p, retain); err != nil {
				errs[k] = fmt.Errorf("entry %d: %w", j.entry, err)
			}
		})
	}
	wg.Wait()
	return errors.Join(slices.DeleteFunc(errs, func(e error) bool { return e == nil })...)
}

// RetentionExtender is implemented by stores that can lock an object
// longer than it is (S3 Object Lock allows moving a COMPLIANCE date
// later, never earlier).
type RetentionExtender interface {
	// ExtendRetention locks name until at least until; it never
	// shortens a lock.
	ExtendRetention(ctx context.Context, name string, until time.Time) error
}

func sha256Hex(b []byte) string {
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

// BulkNames returns the names of the bulk pieces the records of a sealed
// segment name, in record order, each once, with the index of the first
// record naming it. Records whose events do not parse name none.
func BulkNames(first uint64, records [][]byte) (names []string, at []uint64) {
	seen := map[string]bool{}
	for i, raw := range records {
		r, err := ParseRecord(raw)
		if err != nil || r.Redacted() {
			continue
		}
		if !bytes.Contains(r.Event, []byte("bulk")) && !bytes.Contains(r.Event, []byte(`\u`)) {
			continue
		}
		ev, err := events.Parse(r.Event)
		if err != nil {
			continue
		}
		b, err := events.BulkOf(ev)
		if err != nil || b == nil || seen[b.Object] {
			continue
		}
		seen[b.Object] = true
		names = append(names, b.Object)
		at = append(at, first+uint64(i))
	}
	return names, at
}

// bulkNameOf returns the piece name of a store object under bulk/.
func bulkNameOf(object string) (string, bool) {
	n, ok := strings.CutPrefix(object, BulkPrefix)
	return n, ok && isBulkName(n)
}

// SpanBulk returns the store objects (bulk/<name>) of the bulk pieces the
// records of span's segment name, in record order, each once: what a
// legal hold on the segment covers too (docs/FORMAT.md §4.1).
func SpanBulk(ctx context.Context, store SegmentStore, span Span) ([]string, error) {
	data, err := store.Get(ctx, span.Segment)
	if err != nil {
		return nil, fmt.Errorf("ledger: read %s: %w", span.Segment, err)
	}
	seg, err := ParseSegment(data)
	if err != nil {
		return nil, fmt.Errorf("ledger: %s: %w", span.Segment, err)
	}
	names, _ := BulkNames(seg.First, seg.Records)
	out := make([]string, len(names))
	for i, n := range names {
		out[i] = BulkObjectName(n)
	}
	return out, nil
}
