package kubegateway

import (
	"bytes"
	"errors"
	"sync"
	"testing"
)

// blockingWriter holds every write until released, as a client that
// does not read.
type blockingWriter struct {
	release chan struct{}
	mu      sync.Mutex
	got     bytes.Buffer
	writes  int
	fail    error
}

func (w *blockingWriter) Write(p []byte) (int, error) {
	<-w.release
	w.mu.Lock()
	defer w.mu.Unlock()
	w.writes++
	if w.fail != nil {
		return 0, w.fail
	}
	if len(p) > maxPass {
		return 0, errors.New("a write larger than maxPass")
	}
	return w.got.Write(p)
}

// What the API server sends is taken while the client does not read, up
// to maxTakeUp; passed on in order, in writes of at most maxPass, before
// Close returns.
func TestTakeUp(t *testing.T) {
	w := &blockingWriter{release: make(chan struct{})}
	tu := newTakeUp(w, maxTakeUp)
	var want bytes.Buffer
	for i := range 3 << 10 { // 3 MiB in 1 KiB writes, none waiting on the client
		p := bytes.Repeat([]byte{byte(i)}, 1<<10)
		want.Write(p)
		if _, err := tu.Write(p); err != nil {
			t.Fatal(err)
		}
	}
	close(w.release)
	if err := tu.Close(); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(w.got.Bytes(), want.Bytes()) {
		t.Fatalf("passed on %d bytes, not the %d taken in order", w.got.Len(), want.Len())
	}

	// The client's error ends the stream: later writes fail with it.
	gone := errors.New("client gone")
	w = &blockingWriter{release: make(chan struct{}), fail: gone}
	close(w.release)
	tu = newTakeUp(w, maxTakeUp)
	tu.Write([]byte("a"))
	if err := tu.Close(); !errors.Is(err, gone) {
		t.Fatalf("Close: %v, want the client's error", err)
	}
	if _, err := tu.Write([]byte("b")); !errors.Is(err, gone) {
		t.Fatalf("a write after the client's error: %v", err)
	}
}
