package bench

import (
	"context"
	"errors"
	"fmt"
	"os"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/auditledger/auditledger/events"
	"github.com/auditledger/auditledger/ledger/bus/emitter"
)

// fsyncRecorder is the store of bench proxy's fsync yardsticks
// (relay-fsync, copy-fsync), the floor of its fsync-always rows: it
// appends each record to one local file and reports it stored once an
// fsync covers it, with the emitter's group commit (a group is what
// queued while the previous fsync ran) and none of the rest — no bus, no
// acknowledgement round trip, no ledger writer. What a proxy row costs
// above relay-fsync is what the bus and the writer add to a record made
// durable before its statement's result is released. It is a yardstick,
// never a way to run the proxy: nothing reads the file.
type fsyncRecorder struct {
	f      *os.File
	mu     sync.Mutex
	queue  []fsyncPending
	kick   chan struct{}
	done   chan struct{}
	closed bool
	// records stored and the fsyncs that stored them
	records, syncs atomic.Uint64
}

type fsyncPending struct {
	raw  []byte
	id   string
	done func(emitter.Result)
}

func newFsyncRecorder(path string) (*fsyncRecorder, error) {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return nil, err
	}
	r := &fsyncRecorder{f: f, kick: make(chan struct{}, 1), done: make(chan struct{})}
	go r.commit()
	return r, nil
}

var errFloorClosed = errors.New("bench: fsync floor closed")

func (r *fsyncRecorder) EmitAsync(_ context.Context, ev *events.Event, done func(emitter.Result)) error {
	raw, err := ev.Marshal()
	if err != nil {
		return err
	}
	return r.enqueue(fsyncPending{raw: raw, id: ev.ID, done: done})
}

// store appends raw and returns once an fsync covers it.
func (r *fsyncRecorder) store(raw []byte) error {
	ch := make(chan error, 1)
	if err := r.enqueue(fsyncPending{raw: raw, done: func(res emitter.Result) { ch <- res.Err }}); err != nil {
		return err
	}
	return <-ch
}

func (r *fsyncRecorder) enqueue(p fsyncPending) error {
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		return errFloorClosed
	}
	r.queue = append(r.queue, p)
	r.mu.Unlock()
	select {
	case r.kick <- struct{}{}:
	default:
	}
	return nil
}

func (r *fsyncRecorder) Emit(ctx context.Context, ev *events.Event) (emitter.Result, error) {
	ch := make(chan emitter.Result, 1)
	if err := r.EmitAsync(ctx, ev, func(res emitter.Result) { ch <- res }); err != nil {
		return emitter.Result{ID: ev.ID, Err: err}, err
	}
	res := <-ch
	return res, res.Err
}

// commit writes and fsyncs whatever queued, group after group, until
// closed with nothing queued.
func (r *fsyncRecorder) commit() {
	defer close(r.done)
	var buf []byte
	for {
		r.mu.Lock()
		group := r.queue
		r.queue = nil
		closed := r.closed
		r.mu.Unlock()
		if len(group) == 0 {
			if closed {
				return
			}
			<-r.kick
			continue
		}
		buf = buf[:0]
		for _, p := range group {
			buf = append(append(buf, p.raw...), '\n')
		}
		_, err := r.f.Write(buf)
		if err == nil {
			err = r.f.Sync()
		}
		if err == nil {
			r.syncs.Add(1)
			r.records.Add(uint64(len(group)))
		}
		for _, p := range group {
			p.done(emitter.Result{ID: p.id, Err: err})
		}
	}
}

// stored reads the records stored so far and the fsyncs that stored them.
func (r *fsyncRecorder) stored() (records, fsyncs uint64) {
	return r.records.Load(), r.syncs.Load()
}

// close stores what is queued and closes the file.
func (r *fsyncRecorder) close() error {
	r.mu.Lock()
	r.closed = true
	r.mu.Unlock()
	select {
	case r.kick <- struct{}{}:
	default:
	}
	<-r.done
	return r.f.Close()
}

// diskFsync measures what an fsync costs on the disk holding dir: n
// appends of size bytes, each followed by an fsync, timed one by one, and
// the CPU this process spent on them (on a virtual disk the kernel's
// share of an fsync is not small). It describes the result in one line.
func diskFsync(dir string, n, size int) (string, error) {
	f, err := os.CreateTemp(dir, "fsync-probe-")
	if err != nil {
		return "", err
	}
	defer os.Remove(f.Name())
	defer f.Close()
	buf := make([]byte, size)
	lat := make([]time.Duration, n)
	cpu0 := selfCPU()
	for i := range lat {
		start := time.Now()
		if _, err := f.Write(buf); err != nil {
			return "", err
		}
		if err := f.Sync(); err != nil {
			return "", err
		}
		lat[i] = time.Since(start)
	}
	cpu := selfCPU() - cpu0
	slices.Sort(lat)
	ms := func(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
	return fmt.Sprintf("append %d bytes + fsync, %d times: p50 %.2f ms, p99 %.2f ms, CPU %.0f µs each",
		size, n, ms(lat[n/2]), ms(lat[n*99/100]), float64(cpu.Microseconds())/float64(n)), nil
}
