// Package health is what a process serves about itself: /metrics from one
// Prometheus registry that every role registers its collectors in,
// /healthz, and /readyz from one readiness check per role. The process's
// composition root owns it; each role registers its checks and metrics.
package health

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Health holds the process's registry and readiness checks. The zero value
// is ready to use.
type Health struct {
	checksMu sync.Mutex
	checks   []readiness
	regOnce  sync.Once
	reg      *prometheus.Registry
}

// Registry is where roles register their collectors.
func (m *Health) Registry() *prometheus.Registry {
	m.regOnce.Do(func() {
		m.reg = prometheus.NewRegistry()
		m.reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	})
	return m.reg
}

type readiness struct {
	role  string
	check func() (state string, err error)
}

// AddReadiness registers a role's readiness check for /readyz: nil error
// and a state to show ("writer", "listening on …"), or why it is not
// ready. A process is ready when every role it runs is.
func (m *Health) AddReadiness(role string, check func() (string, error)) {
	m.checksMu.Lock()
	defer m.checksMu.Unlock()
	m.checks = append(m.checks, readiness{role, check})
}

// Handler serves /metrics (Prometheus text format), /healthz (the process
// is up) and /readyz (every role of the process can do its work: one line
// per role; 503 if any cannot).
func (m *Health) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintln(w, "ok")
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, r *http.Request) {
		m.checksMu.Lock()
		checks := slices.Clone(m.checks)
		m.checksMu.Unlock()
		if len(checks) == 0 {
			http.Error(w, "not ready: no role has started yet", http.StatusServiceUnavailable)
			return
		}
		var b strings.Builder
		ready := true
		for _, c := range checks {
			state, err := c.check()
			if err != nil {
				ready = false
				fmt.Fprintf(&b, "%s: not ready: %v\n", c.role, err)
				continue
			}
			fmt.Fprintf(&b, "%s: ready: %s\n", c.role, state)
		}
		if !ready {
			w.Header().Set("Content-Type", "text/plain; charset=utf-8")
			w.WriteHeader(http.StatusServiceUnavailable)
		}
		io.WriteString(w, b.String())
	})
	mux.Handle("GET /metrics", promhttp.HandlerFor(m.Registry(), promhttp.HandlerOpts{}))
	return mux
}

// ListenAndServe serves h on addr until ctx is cancelled.
func ListenAndServe(ctx context.Context, addr string, h http.Handler) (net.Addr, func() error, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, nil, err
	}
	errc := make(chan error, 1)
	go func() { errc <- Serve(ctx, ln, h) }()
	return ln.Addr(), func() error { return <-errc }, nil
}

// ConnWatcher is a handler that follows its connections (the HTTP
// gateway closes a kept-alive connection when the access grant of its
// last exchange ends): Serve sets its hooks on the server.
type ConnWatcher interface {
	ConnContext(ctx context.Context, c net.Conn) context.Context
	ConnState(c net.Conn, st http.ConnState)
}

// Serve serves h on ln until ctx ends, then shuts down gracefully: it
// returns once every request in progress has finished (or ten seconds
// have passed), so what the handlers use can be closed after it. A
// ConnWatcher gets its hooks.
func Serve(ctx context.Context, ln net.Listener, h http.Handler) error {
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}
	if c, ok := h.(ConnWatcher); ok {
		srv.ConnContext, srv.ConnState = c.ConnContext, c.ConnState
	}
	shut := make(chan error, 1)
	stop := context.AfterFunc(ctx, func() {
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
		defer cancel()
		shut <- srv.Shutdown(sctx)
	})
	err := srv.Serve(ln)
	if !errors.Is(err, http.ErrServerClosed) {
		if stop() {
			srv.Close()
		}
		return err
	}
	return <-shut
}
