package kubegateway

import (
	"bufio"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"syscall"
	"testing"
	"time"
)

// A hijacked connection the gateway is done with still delivers all it
// was written when the client reads slowly and sends after the gateway
// closed it (as kubectl's pings do): a lingering close sends a FIN after
// the data; a plain close answers the client's bytes with a reset,
// which discards the data not yet delivered.
func TestLingeringCloseDeliversTail(t *testing.T) {
	const size = 1 << 20
	for _, withTLS := range []bool{false, true} {
		t.Run(fmt.Sprintf("tls=%v", withTLS), func(t *testing.T) {
			closed := make(chan struct{})
			srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Upgrade", "test")
				w.Header().Set("Connection", "Upgrade")
				w.WriteHeader(http.StatusSwitchingProtocols)
				c, _, err := lingering{w}.Hijack()
				if err != nil {
					t.Error(err)
					return
				}
				defer close(closed)
				// Room for the whole stream in the gateway's send buffer, so
				// that it is done while the client has read almost nothing.
				raw := c.(*lingerConn).Conn
				if tc, ok := raw.(*tls.Conn); ok {
					raw = tc.NetConn()
				}
				if err := raw.(*net.TCPConn).SetWriteBuffer(4 * size); err != nil {
					t.Error(err)
				}
				if _, err := c.Write(make([]byte, size)); err != nil {
					t.Error(err)
				}
				c.Close()
			}))
			if withTLS {
				srv.StartTLS()
			} else {
				srv.Start()
			}
			defer srv.Close()

			// A client with a small receive window: most of the stream waits
			// in the gateway's send buffer until the client reads.
			d := net.Dialer{Timeout: time.Minute, Control: func(_, _ string, rc syscall.RawConn) error {
				var serr error
				err := rc.Control(func(fd uintptr) { serr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, 4096) })
				if err != nil {
					return err
				}
				return serr
			}}
			var c net.Conn
			c, err := d.Dial("tcp", srv.Listener.Addr().String())
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			if withTLS {
				cfg := srv.Client().Transport.(*http.Transport).TLSClientConfig.Clone()
				cfg.NextProtos, cfg.ServerName = nil, "example.com"
				c = tls.Client(c, cfg)
			}
			if _, err := io.WriteString(c, "GET / HTTP/1.1\r\nHost: gateway\r\nConnection: Upgrade\r\nUpgrade: test\r\n\r\n"); err != nil {
				t.Fatal(err)
			}
			br := bufio.NewReader(c)
			resp, err := http.ReadResponse(br, nil)
			if err != nil {
				t.Fatal(err)
			}
			if resp.StatusCode != http.StatusSwitchingProtocols {
				t.Fatalf("status %s", resp.Status)
			}
			select {
			case <-closed:
			case <-time.After(time.Minute):
				t.Fatal("the server did not close within a minute")
			}
			// The client sends after the gateway closed: a ping.
			if _, err := io.WriteString(c, "ping"); err != nil {
				t.Fatal(err)
			}
			n, err := io.Copy(io.Discard, br)
			if err != nil || n != size {
				t.Fatalf("the client read %d of %d bytes, then %v", n, size, err)
			}
		})
	}
}
