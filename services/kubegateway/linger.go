package kubegateway

import (
	"bufio"
	"crypto/tls"
	"errors"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"
)

// lingerTimeout bounds how long a relayed stream's connection is still
// read, and what arrives discarded, after the gateway has closed its
// side: long enough for a client that reads slowly to take the tail of
// the stream and close, short enough that a client that never closes
// costs a goroutine for a bounded time.
const lingerTimeout = 30 * time.Second

// lingering wraps the ResponseWriter of a request whose connection a
// streaming server hijacks (exec, attach and port-forward, over
// WebSocket, SPDY, and SPDY tunnelled in WebSocket), so that closing the
// hijacked connection is a lingering close.
//
// Why: a client keeps sending on the connection after the gateway is
// done with it (kubectl pings every 5 s over WebSocket and SPDY, and
// answers a WebSocket close frame with its own). When a socket is closed
// with bytes unread in its receive buffer, or receives bytes after it
// was closed, the kernel answers with a reset instead of a FIN: it
// discards what the gateway wrote that the client had not yet received
// (the tail of stdout, the exit status, the close frame), and the
// client's kernel discards what it received and the client did not yet
// read. A client that reads more slowly than the stream was produced
// lost the end of the stream and failed with "connection reset by peer".
// Waiting for the client to close first is no cure: kubectl waits for
// the server to close.
type lingering struct{ http.ResponseWriter }

// Hijack hands out the connection wrapped in a lingerConn.
func (l lingering) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	hj, ok := l.ResponseWriter.(http.Hijacker)
	if !ok {
		return nil, nil, errors.New("the connection cannot be hijacked")
	}
	c, rw, err := hj.Hijack()
	if err != nil {
		return nil, nil, err
	}
	return &lingerConn{Conn: c}, rw, nil
}

// lingerConn is a hijacked connection whose Close shuts down the sending
// side only (after what was written: TLS's close_notify, then TCP's FIN),
// then reads and discards what the client still sends until it closes
// too or lingerTimeout has passed, and only then closes the socket. Close
// returns at once; the rest happens in the background.
type lingerConn struct {
	net.Conn
	once   sync.Once
	closed atomic.Bool
}

func (c *lingerConn) Close() error {
	c.once.Do(func() {
		c.closed.Store(true)
		// Reads end at the deadline, the streaming server's own reader
		// as well as the drain below.
		c.Conn.SetReadDeadline(time.Now().Add(lingerTimeout))
		go linger(c.Conn)
	})
	return nil
}

// SetDeadline and SetReadDeadline do not move the deadline of a closed
// connection: a streaming server resets its idle timeout on every
// message it reads, which would keep a closed connection open while the
// client sends.
func (c *lingerConn) SetDeadline(t time.Time) error {
	if c.closed.Load() {
		return nil
	}
	return c.Conn.SetDeadline(t)
}

func (c *lingerConn) SetReadDeadline(t time.Time) error {
	if c.closed.Load() {
		return nil
	}
	return c.Conn.SetReadDeadline(t)
}

// linger shuts down c's sending side, drains it, and closes it.
func linger(c net.Conn) {
	defer c.Close()
	raw := c
	if tc, ok := c.(*tls.Conn); ok {
		// close_notify (bounded by crypto/tls itself): a client that
		// never reads again does not hold this goroutine.
		tc.CloseWrite()
		raw = tc.NetConn()
	}
	cw, ok := raw.(interface{ CloseWrite() error })
	if !ok || cw.CloseWrite() != nil {
		return
	}
	buf := make([]byte, 4096)
	for {
		if _, err := c.Read(buf); err != nil {
			return
		}
	}
}
