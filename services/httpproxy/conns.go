package httpproxy

import (
	"context"
	"net"
	"net/http"
	"sync"
)

// A client connection kept alive between exchanges outlives the grant
// its last exchange was admitted on unless something closes it: its next
// request would be refused (each exchange is admitted anew), but the
// connection itself would stay open. With the server's hooks set
// (ConnContext, ConnState; health.Serve and the tests set them), the
// last exchange's grant is watched while the connection waits for its
// next request, and the grant's end or revocation closes it. Without
// them, an exchange on a grant asks the client to close the connection
// after the response (Connection: close): no connection stays open on a
// grant.

type connKey struct{}

// keptConn is one client connection and, while it waits between
// exchanges, the release of the last exchange's grant watch.
type keptConn struct {
	net.Conn
	mu   sync.Mutex
	idle func()
}

// ConnContext is for http.Server.ConnContext: it notes the connection in
// the context of the requests read from it.
func (p *Proxy) ConnContext(ctx context.Context, c net.Conn) context.Context {
	k := &keptConn{Conn: c}
	p.conns.Store(c, k)
	return context.WithValue(ctx, connKey{}, k)
}

// ConnState is for http.Server.ConnState: a connection closed (or taken
// over) stops watching its last grant.
func (p *Proxy) ConnState(c net.Conn, st http.ConnState) {
	if st != http.StateClosed && st != http.StateHijacked {
		return
	}
	if k, ok := p.conns.LoadAndDelete(c); ok {
		k.(*keptConn).endIdle()
	}
}

// connOf is the connection r was read from, or nil without the hooks.
func connOf(r *http.Request) *keptConn {
	k, _ := r.Context().Value(connKey{}).(*keptConn)
	return k
}

// watchIdle keeps release, the last exchange's grant watch, until the
// next exchange on the connection or its end.
func (k *keptConn) watchIdle(release func()) {
	k.mu.Lock()
	prev := k.idle
	k.idle = release
	k.mu.Unlock()
	if prev != nil {
		prev()
	}
}

// endIdle stops the watch kept between exchanges, if any.
func (k *keptConn) endIdle() {
	k.mu.Lock()
	release := k.idle
	k.idle = nil
	k.mu.Unlock()
	if release != nil {
		release()
	}
}
