package ingest

import (
	"encoding/binary"
	"fmt"
	"testing"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/bloom"
	"github.com/cockroachdb/pebble/v2/vfs"
)

func benchSeenDB(b *testing.B, n int) *pebble.DB {
	opts := &pebble.Options{Logger: quietPebble{}, DisableWAL: true, CacheSize: 64 << 20, FS: vfs.NewMem()}
	opts.EnsureDefaults()
	for i := range opts.Levels {
		opts.Levels[i].FilterPolicy = bloom.FilterPolicy(10)
	}
	db, err := pebble.Open("seen", opts)
	if err != nil {
		b.Fatal(err)
	}
	batch := db.NewBatch()
	for i := range n {
		batch.Set(idKey(fmt.Sprintf("old-%d", i)), binary.AppendUvarint(nil, uint64(i)), nil)
		if batch.Count() > 50000 {
			batch.Commit(pebble.NoSync)
			batch = db.NewBatch()
		}
	}
	batch.Commit(pebble.NoSync)
	db.Flush()
	return db
}

// BenchmarkSeenLookup: what the writer pays per event to learn that its
// id was never sealed (the usual case), in an index of 300,000 ids: a Get
// per id, against one reader's iterator for a batch.
func BenchmarkSeenLookup(b *testing.B) {
	db := benchSeenDB(b, 300000)
	defer db.Close()
	keys := make([][]byte, 4096)
	for i := range keys {
		keys[i] = idKey(fmt.Sprintf("new-%d", i))
	}
	b.Run("get", func(b *testing.B) {
		i := 0
		for b.Loop() {
			if _, closer, err := db.Get(keys[i%len(keys)]); err == nil {
				closer.Close()
				b.Fatal("found")
			}
			i++
		}
	})
	b.Run("reader", func(b *testing.B) {
		r, err := (&seenIndex{db: db}).reader()
		if err != nil {
			b.Fatal(err)
		}
		defer r.close()
		i := 0
		for b.Loop() {
			if _, found, err := r.lookup(keys[i%len(keys)]); found || err != nil {
				b.Fatal(found, err)
			}
			i++
		}
	})
}
