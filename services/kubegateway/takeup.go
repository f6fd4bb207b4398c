package kubegateway

import (
	"io"
	"sync"
)

// maxTakeUp bounds what one relayed stream holds between the API server
// and the client: beyond it, the API server waits for the client again.
const maxTakeUp = 32 << 20

// takeUp takes what the API server sends on one stream of an exec as
// fast as it sends it, and passes it on to the client and the recording
// in the same order, in its own goroutine.
//
// Why: the API server ends an exec by closing its connection at once.
// What the gateway sent it that it did not read by then (a heartbeat
// ping, every 5 s) makes its kernel answer with a reset instead of a
// FIN, and throw away what it had not yet sent: the tail of stdout and
// the exit status. The more slowly the gateway reads — while it records
// each chunk, or while the client reads slowly — the longer the API
// server waits to send that tail, and the likelier a ping lands in the
// wait (kubectl exec through the gateway failed with "error reading
// from error stream: connection reset by peer" on a busy machine). Read
// at once, the tail is sent at once.
type takeUp struct {
	dst io.Writer
	max int

	mu     sync.Mutex
	cond   sync.Cond
	buf    []byte // taken, not yet passed on
	closed bool
	err    error // the first error passing on; later writes fail with it
	done   chan struct{}
}

func newTakeUp(dst io.Writer, max int) *takeUp {
	t := &takeUp{dst: dst, max: max, done: make(chan struct{})}
	t.cond.L = &t.mu
	go t.run()
	return t
}

// Write takes p, waiting only while max bytes are held.
func (t *takeUp) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	for t.err == nil && len(t.buf) > 0 && len(t.buf)+len(p) > t.max {
		t.cond.Wait()
	}
	if t.err != nil {
		return 0, t.err
	}
	t.buf = append(t.buf, p...)
	t.cond.Broadcast()
	return len(p), nil
}

func (t *takeUp) run() {
	defer close(t.done)
	var out []byte
	for {
		t.mu.Lock()
		for len(t.buf) == 0 && !t.closed {
			t.cond.Wait()
		}
		if len(t.buf) == 0 {
			t.mu.Unlock()
			return
		}
		out, t.buf = t.buf, out[:0]
		t.cond.Broadcast()
		t.mu.Unlock()
		if err := t.pass(out); err != nil {
			t.mu.Lock()
			t.err, t.buf = err, nil
			t.cond.Broadcast()
			t.mu.Unlock()
			return
		}
	}
}

// maxPass is the most passed on in one write: a SPDY data frame holds
// at most 16 MiB (a write of more failed with "invalid data frame"),
// and a recording's chunk is judged whole.
const maxPass = 32 << 10

func (t *takeUp) pass(b []byte) error {
	for len(b) > 0 {
		n := min(len(b), maxPass)
		if _, err := t.dst.Write(b[:n]); err != nil {
			return err
		}
		b = b[n:]
	}
	return nil
}

// Close waits until everything taken is passed on, and returns the
// first error passing it on.
func (t *takeUp) Close() error {
	t.mu.Lock()
	t.closed = true
	t.cond.Broadcast()
	t.mu.Unlock()
	<-t.done
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.err
}
