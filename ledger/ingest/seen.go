package ingest

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/bloom"
	"github.com/cockroachdb/pebble/v2/sstable"
	"github.com/cockroachdb/pebble/v2/vfs"

	"github.com/auditledger/auditledger/events"
	"github.com/auditledger/auditledger/ledger"
)

// seenIndex maps the id of every event in the log to its ledger index, so
// an event id is sealed once, whatever JetStream's duplicate window or the
// headers a producer sent. It is a cache of the log: keyed by the first 16
// bytes of SHA-256(event id), kept in a Pebble LSM (in a directory, or in
// memory), never fsynced, and brought up to date from the store when it
// covers less than the log (a crash, a new node, a deleted directory).
//
// Cost: one point lookup per event (bloom filters make the usual miss
// cheap) and about 25 bytes per event on disk, so 25 GB for a billion
// events; memory is bounded by Pebble's cache, not by the log's size.
type seenIndex struct {
	db     *pebble.DB
	origin string
	store  ledger.SegmentStore
	logger *slog.Logger
	size   uint64 // the log size the index covers
}

// keys: 'i' + 16 bytes of SHA-256(id) → uvarint ledger index;
// "covered" → origin '\n' uvarint log size the index covers.
var coveredKey = []byte("covered")

func idKey(id string) []byte { return appendIDKey(make([]byte, 0, idKeyLen), id) }

// idKeyLen is the length of an id key.
const idKeyLen = 17

// appendIDKey appends id's key to b.
func appendIDKey(b []byte, id string) []byte {
	sum := sha256.Sum256([]byte(id))
	return append(append(b, 'i'), sum[:16]...)
}

// openSeen opens (or creates) the index in dir, or in memory if dir is
// empty, and catches it up with the log.
func openSeen(ctx context.Context, dir string, log *ledger.Log, store ledger.SegmentStore, logger *slog.Logger) (*seenIndex, error) {
	// Keys are hashes: nothing to compress. Bloom filters on every level
	// answer the usual lookup — an id never seen — without reading a
	// block, and the cache keeps filters and indexes in memory.
	opts := &pebble.Options{Logger: quietPebble{}, DisableWAL: true, CacheSize: 64 << 20}
	opts.EnsureDefaults()
	for i := range opts.Levels {
		opts.Levels[i].FilterPolicy = bloom.FilterPolicy(10)
		opts.Levels[i].Compression = func() *sstable.CompressionProfile { return sstable.NoCompression }
	}
	if dir == "" {
		opts.FS = vfs.NewMem()
		dir = "seen"
	}
	db, err := pebble.Open(dir, opts)
	if err != nil {
		return nil, fmt.Errorf("ingest: event id index %s: %w", dir, err)
	}
	s := &seenIndex{db: db, origin: log.Origin(), store: store, logger: logger}
	if s.size, err = s.covered(); err != nil {
		db.Close()
		return nil, err
	}
	if s.size > log.Size() {
		// Ahead of the log: it indexes another store of this log's name
		// (emptied, or restored from an older backup). Start again.
		logger.Warn("the event id index covers more than the log holds: rebuilding it from the store", "index", s.size, "log", log.Size())
		if err := s.clear(); err != nil {
			db.Close()
			return nil, err
		}
	}
	if err := s.catchUp(ctx, log.Size()); err != nil {
		db.Close()
		return nil, err
	}
	return s, nil
}

// covered returns the log size the index covers; an index of another log
// is emptied.
func (s *seenIndex) covered() (uint64, error) {
	v, closer, err := s.db.Get(coveredKey)
	if errors.Is(err, pebble.ErrNotFound) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("ingest: event id index: %w", err)
	}
	origin, size, ok := bytes.Cut(v, []byte{'\n'})
	n, k := binary.Uvarint(size)
	same := ok && k > 0 && string(origin) == s.origin
	closer.Close()
	if !same {
		return 0, s.clear()
	}
	return n, nil
}

// clear empties the index.
func (s *seenIndex) clear() error {
	if err := s.db.DeleteRange([]byte{0}, []byte{0xff}, pebble.NoSync); err != nil {
		return fmt.Errorf("ingest: clearing the event id index: %w", err)
	}
	s.size = 0
	return nil
}

// catchUp indexes the records from s.size up to to, read from the store.
func (s *seenIndex) catchUp(ctx context.Context, to uint64) error {
	from := s.size
	if from >= to {
		return nil
	}
	s.logger.Info("indexing event ids from the store", "from", from, "to", to)
	start := time.Now()
	b := s.db.NewBatch()
	err := ledger.ReadRange(ctx, s.store, from, to, func(idx uint64, _ []byte, r ledger.Record) error {
		id, err := events.PeekID(r.Event)
		if err != nil {
			return fmt.Errorf("record %d: %w", idx, err)
		}
		if err := b.Set(idKey(id), binary.AppendUvarint(nil, idx), nil); err != nil {
			return err
		}
		if b.Count() >= 50_000 {
			if err := s.commit(b, idx+1); err != nil {
				return err
			}
			b = s.db.NewBatch()
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("ingest: indexing event ids from the store: %w", err)
	}
	if err := s.commit(b, to); err != nil {
		return err
	}
	s.logger.Info("event ids indexed", "records", to-from, "took", time.Since(start).Round(time.Millisecond))
	return nil
}

// commit writes b and marks the index as covering the log up to size.
func (s *seenIndex) commit(b *pebble.Batch, size uint64) error {
	v := append([]byte(s.origin+"\n"), binary.AppendUvarint(nil, size)...)
	if err := b.Set(coveredKey, v, nil); err != nil {
		return err
	}
	if err := b.Commit(pebble.NoSync); err != nil {
		return fmt.Errorf("ingest: event id index: %w", err)
	}
	s.size = size
	return b.Close()
}

// add records sealed ids: keys[i] was sealed at first+i (nil keys are
// records without an id to index). Records the index missed before first
// (sealed by an attempt that failed afterwards) are read from the store.
func (s *seenIndex) add(ctx context.Context, keys [][]byte, first uint64) error {
	if err := s.catchUp(ctx, first); err != nil {
		return err
	}
	size := first + uint64(len(keys))
	// Inserted in key order, as they are looked up (seenReader): each
	// insert's search of the memtable starts near the last one's. Keys
	// are distinct (a batch's duplicates are rejected), so the order
	// changes nothing else.
	type entry struct {
		key []byte
		idx uint64
	}
	add := make([]entry, 0, len(keys))
	for i, k := range keys {
		if k != nil && first+uint64(i) >= s.size {
			add = append(add, entry{k, first + uint64(i)})
		}
	}
	slices.SortFunc(add, func(a, b entry) int { return bytes.Compare(a.key, b.key) })
	b := s.db.NewBatch()
	var v []byte // Set copies it
	for _, e := range add {
		v = binary.AppendUvarint(v[:0], e.idx)
		if err := b.Set(e.key, v, nil); err != nil {
			return err
		}
	}
	return s.commit(b, size)
}

// seenReader looks ids up in the index as it stood when it was made,
// through one iterator: a Get builds and closes an iterator per lookup,
// which cost the writer more than the lookup itself. Not safe for
// concurrent use; close it when done.
type seenReader struct{ it *pebble.Iterator }

func (s *seenIndex) reader() (*seenReader, error) {
	it, err := s.db.NewIter(nil)
	if err != nil {
		return nil, fmt.Errorf("ingest: event id index: %w", err)
	}
	return &seenReader{it: it}, nil
}

// lookup returns the ledger index at which the id of key was sealed, if
// it was. A key is its own prefix (the default comparer), so a seek by
// prefix consults the bloom filters and finds the key or nothing.
func (r *seenReader) lookup(key []byte) (uint64, bool, error) {
	if !r.it.SeekPrefixGE(key) || !bytes.Equal(r.it.Key(), key) {
		if err := r.it.Error(); err != nil {
			return 0, false, fmt.Errorf("ingest: event id index: %w", err)
		}
		return 0, false, nil
	}
	v, err := r.it.ValueAndErr()
	if err != nil {
		return 0, false, fmt.Errorf("ingest: event id index: %w", err)
	}
	idx, n := binary.Uvarint(v)
	if n <= 0 {
		return 0, false, fmt.Errorf("ingest: event id index: damaged entry")
	}
	return idx, true, nil
}

func (r *seenReader) close() { r.it.Close() }

func (s *seenIndex) close() error { return s.db.Close() }

// quietPebble keeps Pebble's informational chatter out of the logs.
type quietPebble struct{}

func (quietPebble) Infof(string, ...any) {}
func (quietPebble) Errorf(f string, a ...any) {
	slog.Error("event id index: " + fmt.Sprintf(f, a...))
}
func (quietPebble) Fatalf(f string, a ...any) {
	panic("event id index: " + fmt.Sprintf(f, a...))
}
