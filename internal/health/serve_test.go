package health_test

import (
	"context"
	"net"
	"net/http"
	"testing"
	"time"

	"github.com/auditledger/auditledger/internal/health"
)

// Serve returns only once the requests in progress have finished, so what
// their handlers use (a proxy's emitter) can be closed after it.
func TestServeWaitsForRequestsInProgress(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	inHandler, release := make(chan struct{}), make(chan struct{})
	finished := make(chan struct{})
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		close(inHandler)
		<-release
		w.Write([]byte("done"))
		close(finished)
	})
	ctx, cancel := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() { served <- health.Serve(ctx, ln, h) }()
	go http.Get("http://" + ln.Addr().String())
	<-inHandler
	cancel()
	select {
	case err := <-served:
		t.Fatalf("Serve returned (%v) while a handler was still running", err)
	case <-time.After(200 * time.Millisecond):
	}
	close(release)
	if err := <-served; err != nil {
		t.Fatalf("Serve: %v", err)
	}
	select {
	case <-finished:
	default:
		t.Fatal("Serve returned before the handler finished")
	}
}
