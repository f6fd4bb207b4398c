package kubegateway

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"k8s.io/apiserver/pkg/util/proxy"
	"k8s.io/client-go/tools/portforward"
	"k8s.io/client-go/transport/spdy"
	serverpf "k8s.io/cri-streaming/pkg/streaming/portforward"
	"k8s.io/streaming/pkg/httpstream"
	"k8s.io/streaming/pkg/httpstream/wsstream"

	"github.com/auditledger/auditledger/events"
	"github.com/auditledger/auditledger/services/gateway"
)

// Labels of the keyed digests of a forwarded connection's bytes.
const (
	forwardInLabel  = "auditledger portforward in v1\n"  // what the client sent to the pod's port
	forwardOutLabel = "auditledger portforward out v1\n" // what the pod's port sent back
)

// servePortForward relays a judged port-forward: the client's streams
// are terminated here with the kubelet's own streaming server (SPDY/3.1,
// SPDY/3.1 tunnelled in WebSocket as kubectl 1.30 and later speaks, and
// the WebSocket portforward.k8s.io protocol), and each forwarded
// connection is opened again to the API server as the person (SPDY in
// WebSocket, falling back to SPDY). Each connection is recorded: a
// command.executed when it opens ("connect PORT"), a response.digest with
// the bytes each way and their keyed digests when it ends.
func (p *Proxy) servePortForward(w http.ResponseWriter, r *http.Request, x *exchange, command map[string]any, q Request) {
	ctx := r.Context()
	proto := "spdy"
	switch {
	case wsstream.IsWebSocketRequestWithTunnelingProtocol(r):
		proto = "spdy-websocket"
	case wsstream.IsWebSocketRequest(r):
		proto = "websocket"
	}
	start := map[string]any{"protocol": "kubernetes", "kind": "portforward", "statement": command["statement"], "pod": q.Name,
		"namespace": q.Namespace, "client_addr": r.RemoteAddr, "client_protocol": proto}
	if err := x.gs.Start(ctx, start); err != nil {
		unavailable(w, "port-forward not started: the audit ledger did not store its record ("+err.Error()+"); the gateway fails closed")
		return
	}
	if _, err := x.gs.Record(ctx, events.CommandExecuted, command); err != nil {
		x.gs.End(ctx, map[string]any{"reason": "not recorded"})
		unavailable(w, "port-forward not started: the audit ledger did not store its record ("+err.Error()+"); the gateway fails closed")
		return
	}
	began := time.Now()
	u := *p.upstream
	u.Path, u.RawPath, u.RawQuery = r.URL.Path, r.URL.RawPath, ""
	rel := &forwardRelay{p: p, x: x, url: &u}
	defer rel.close()
	// When the request's context ends (the core cut the session: its
	// access grant ended), the client's connection and the API server's
	// are closed, which ends every forwarded connection and kubectl's.
	hc := &hijackCapture{ResponseWriter: lingering{w}} // closes without a reset
	w = hc
	stop := context.AfterFunc(ctx, func() { hc.close(); rel.close() })
	defer stop()
	serve := func(w http.ResponseWriter, r *http.Request) {
		serverpf.ServePortForward(w, r, rel, q.Name, "", nil, execIdleTimeout, execStreamCreationTimeout, serverpf.SupportedProtocols)
	}
	switch proto {
	case "spdy-websocket":
		proxy.NewTunnelingHandler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			serve(&rawUpgrade{inner: w, h: http.Header{}}, r)
		})).ServeHTTP(w, r)
	case "websocket":
		opts, err := serverpf.NewV4Options(r)
		if err != nil {
			writeStatus(w, http.StatusBadRequest, "BadRequest", err.Error())
			break
		}
		serverpf.ServePortForward(w, r, rel, q.Name, "", opts, execIdleTimeout, execStreamCreationTimeout, serverpf.SupportedProtocols)
	default:
		serve(w, r)
	}
	end := map[string]any{"duration_ms": time.Since(began).Milliseconds(), "connections": rel.n.Load(),
		"bytes_in": rel.in.Load(), "bytes_out": rel.out.Load()}
	if why := x.gs.CutReason(); why != "" {
		end["reason"] = "access: " + why
	}
	x.gs.End(context.WithoutCancel(ctx), end)
}

// forwardRelay is the port forwarder behind the gateway's streaming
// server: one upstream connection per port-forward, one pair of streams
// on it per forwarded connection.
type forwardRelay struct {
	p   *Proxy
	x   *exchange
	url *url.URL

	mu      sync.Mutex
	conn    httpstream.Connection
	nextID  int
	n       atomic.Int64
	in, out atomic.Int64
}

func (f *forwardRelay) upstream() (httpstream.Connection, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.conn != nil {
		return f.conn, nil
	}
	cfg, err := f.p.restConfig(f.x)
	if err != nil {
		return nil, err
	}
	tr, upgrader, err := spdy.RoundTripperFor(cfg)
	if err != nil {
		return nil, err
	}
	direct := spdy.NewDialerForStreaming(upgrader, &http.Client{Transport: tr}, "POST", f.url)
	tunnel, err := portforward.NewSPDYOverWebsocketDialerForStreaming(f.url, cfg)
	if err != nil {
		return nil, err
	}
	d := portforward.NewFallbackDialerForStreaming(tunnel, direct, func(err error) bool {
		return httpstream.IsUpgradeFailure(err) || httpstream.IsHTTPSProxyError(err)
	})
	conn, _, err := d.Dial(portforward.PortForwardProtocolV1Name)
	if err != nil {
		return nil, fmt.Errorf("the API server's port-forward: %w", err)
	}
	f.conn = conn
	return conn, nil
}

func (f *forwardRelay) close() {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.conn != nil {
		f.conn.Close()
	}
}

// PortForward relays one forwarded connection to port of the pod.
func (f *forwardRelay) PortForward(ctx context.Context, _ string, _ string, port int32, stream io.ReadWriteCloser) error {
	defer stream.Close()
	gs := f.x.gs
	f.n.Add(1)
	id, err := gs.Record(ctx, events.CommandExecuted, map[string]any{"protocol": "kubernetes", "kind": "portforward", "statement": fmt.Sprintf("connect %d", port), "port": port})
	if err != nil {
		return fmt.Errorf("connection not forwarded: the audit ledger did not store its record (%v); the gateway fails closed", err)
	}
	inSum, kerr := gs.KeyedSum(ctx, forwardInLabel)
	outSum, _ := gs.KeyedSum(ctx, forwardOutLabel)
	var in, out int64
	err = f.forward(ctx, port, stream, inSum, outSum, &in, &out)
	done := map[string]any{"command_id": id, "port": port, "bytes_in": in, "bytes_out": out}
	if inSum != nil && outSum != nil {
		done["hmac_in"], done["hmac_out"] = inSum.Digest(), outSum.Digest()
	} else if kerr != nil {
		done["hmac_omitted"] = "the tenant's search key is unavailable"
	}
	if err != nil {
		done["incomplete"] = err.Error()
	}
	gs.RecordOrLog(context.WithoutCancel(ctx), events.ResponseDigest, done)
	return err
}

func (f *forwardRelay) forward(ctx context.Context, port int32, stream io.ReadWriteCloser, inSum, outSum *gateway.KeyedSum, in, out *int64) error {
	conn, err := f.upstream()
	if err != nil {
		return err
	}
	f.mu.Lock()
	f.nextID++
	rid := strconv.Itoa(f.nextID)
	f.mu.Unlock()
	h := http.Header{}
	h.Set(serverpf.StreamType, serverpf.StreamTypeError)
	h.Set(serverpf.PortHeader, strconv.Itoa(int(port)))
	h.Set(serverpf.PortForwardRequestIDHeader, rid)
	errStream, err := conn.CreateStream(h)
	if err != nil {
		return fmt.Errorf("the API server's error stream: %w", err)
	}
	errStream.Close() // nothing is sent on it
	defer conn.RemoveStreams(errStream)
	errc := make(chan error, 1)
	go func() {
		b, err := io.ReadAll(errStream)
		switch {
		case err != nil:
			errc <- fmt.Errorf("reading the API server's error stream: %w", err)
		case len(b) > 0:
			errc <- fmt.Errorf("the API server: %s", b)
		default:
			errc <- nil
		}
	}()
	h.Set(serverpf.StreamType, serverpf.StreamTypeData)
	data, err := conn.CreateStream(h)
	if err != nil {
		return fmt.Errorf("the API server's data stream: %w", err)
	}
	defer conn.RemoveStreams(data)
	sent := make(chan struct{})
	go func() {
		defer close(sent)
		n, _ := io.Copy(data, io.TeeReader(stream, sumWriter{inSum}))
		atomic.AddInt64(in, n)
		f.in.Add(n)
		data.Close() // the client is done writing
	}()
	n, cerr := io.Copy(stream, io.TeeReader(data, sumWriter{outSum}))
	atomic.AddInt64(out, n)
	f.out.Add(n)
	stream.Close()
	data.Reset()
	select {
	case <-sent:
	case <-ctx.Done():
	}
	var uerr error
	select {
	case uerr = <-errc:
	case <-time.After(time.Second):
	case <-ctx.Done():
	}
	return errors.Join(cerr, uerr)
}

// sumWriter feeds a keyed digest; nil: none.
type sumWriter struct{ s *gateway.KeyedSum }

func (w sumWriter) Write(b []byte) (int, error) {
	if w.s != nil {
		w.s.Write(b)
	}
	return len(b), nil
}

// rawUpgrade lets the streaming server's SPDY upgrade run inside the API
// server's WebSocket tunnelling handler, which expects the upgrade
// response as the bytes a proxied backend writes to the hijacked
// connection: the 101 response is written there at Hijack.
type rawUpgrade struct {
	inner  http.ResponseWriter
	h      http.Header
	code   int
	passed bool
}

func (u *rawUpgrade) Header() http.Header { return u.h }

func (u *rawUpgrade) pass() {
	if !u.passed {
		u.passed = true
		for k, v := range u.h {
			u.inner.Header()[k] = v
		}
	}
}

func (u *rawUpgrade) WriteHeader(code int) {
	if code == http.StatusSwitchingProtocols {
		u.code = code
		return
	}
	u.pass()
	u.inner.WriteHeader(code)
}

func (u *rawUpgrade) Write(b []byte) (int, error) {
	u.pass()
	return u.inner.Write(b)
}

func (u *rawUpgrade) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	hj, ok := u.inner.(http.Hijacker)
	if !ok || u.code != http.StatusSwitchingProtocols {
		return nil, nil, errors.New("the tunnel cannot be upgraded")
	}
	conn, _, err := hj.Hijack()
	if err != nil {
		return nil, nil, err
	}
	var b bytes.Buffer
	b.WriteString("HTTP/1.1 101 Switching Protocols\r\n")
	u.h.Write(&b)
	b.WriteString("\r\n")
	if _, err := conn.Write(b.Bytes()); err != nil {
		conn.Close()
		return nil, nil, err
	}
	return conn, bufio.NewReadWriter(bufio.NewReader(conn), bufio.NewWriter(conn)), nil
}

// hijackCapture keeps the connection the streaming server hijacks, to
// close it when the session is cut.
type hijackCapture struct {
	http.ResponseWriter
	mu   sync.Mutex
	conn net.Conn
}

func (h *hijackCapture) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	hj, ok := h.ResponseWriter.(http.Hijacker)
	if !ok {
		return nil, nil, errors.New("the connection cannot be hijacked")
	}
	c, rw, err := hj.Hijack()
	if err == nil {
		h.mu.Lock()
		h.conn = c
		h.mu.Unlock()
	}
	return c, rw, err
}

func (h *hijackCapture) close() {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.conn != nil {
		h.conn.Close()
	}
}
