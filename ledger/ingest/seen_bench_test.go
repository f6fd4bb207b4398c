package ingest

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"slices"
	"syscall"
	"testing"
	"time"

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

// BenchmarkSeenLookupOrder: a batch's keys looked up in the order they
// came, against in key order, with recent ids still in the memtable as
// while the writer runs.
func BenchmarkSeenLookupOrder(b *testing.B) {
	db := benchSeenDB(b, 300000)
	defer db.Close()
	for j := range 12 { // as the writer adds them, a batch at a time
		batch := db.NewBatch()
		for i := range 5000 {
			batch.Set(idKey(fmt.Sprintf("recent-%d-%d", j, i)), binary.AppendUvarint(nil, uint64(i)), nil)
		}
		batch.Commit(pebble.NoSync)
	}
	keys := make([][]byte, 2500)
	for i := range keys {
		keys[i] = idKey(fmt.Sprintf("new-%d", i))
	}
	sorted := slices.Clone(keys)
	slices.SortFunc(sorted, bytes.Compare)
	for _, c := range []struct {
		name string
		keys [][]byte
	}{{"arrival", keys}, {"sorted", sorted}} {
		b.Run(c.name, func(b *testing.B) {
			cpu0 := cpuTime()
			for b.Loop() {
				r, err := (&seenIndex{db: db}).reader()
				if err != nil {
					b.Fatal(err)
				}
				for _, k := range c.keys {
					if _, found, err := r.lookup(k); found || err != nil {
						b.Fatal(found, err)
					}
				}
				r.close()
			}
			b.ReportMetric(float64((cpuTime()-cpu0).Nanoseconds())/float64(b.N*len(c.keys)), "cpu-ns/key")
		})
	}
}

// cpuTime is the CPU this process has used: on shared cores a clock
// measures the neighbours too.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
