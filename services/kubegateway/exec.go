package kubegateway

import (
	"context"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	apihttpstream "k8s.io/apimachinery/pkg/util/httpstream"
	apispdy "k8s.io/apimachinery/pkg/util/httpstream/spdy"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/remotecommand"
	clientexec "k8s.io/client-go/util/exec"
	serverrc "k8s.io/cri-streaming/pkg/streaming/remotecommand"
	"k8s.io/streaming/pkg/httpstream"
	"k8s.io/streaming/pkg/httpstream/wsstream"
	utilexec "k8s.io/utils/exec"

	"github.com/auditledger/auditledger/events"
	"github.com/auditledger/auditledger/events/detect"
	"github.com/auditledger/auditledger/services/approvals"
	"github.com/auditledger/auditledger/services/gateway"
)

// Timeouts of a relayed exec on the client's side, the kubelet's
// defaults: a stream silent this long is closed, and the client has this
// long to open its streams.
const (
	execIdleTimeout           = 4 * time.Hour
	execStreamCreationTimeout = serverrc.DefaultStreamCreationTimeout
)

// relayedStream is the kind of stream the gateway relays that q opens:
// "exec", "attach", or "" for none.
func relayedStream(q Request) string {
	if q.IsResource && q.APIGroup == "" && q.Resource == "pods" && (q.Subresource == "exec" || q.Subresource == "attach") {
		return q.Subresource
	}
	return ""
}

// describeExec adds to an exec's command payload what it runs: the
// command (the query's command parameters) is the statement, and the
// container and the streams asked for are recorded beside it.
func describeExec(r *http.Request, command map[string]any, kind string) {
	qv := r.URL.Query()
	if c := qv.Get("container"); c != "" {
		command["container"] = gateway.Clip(c, 256)
	}
	for _, k := range []string{"stdin", "stdout", "stderr", "tty"} {
		command[k], _ = strconv.ParseBool(qv.Get(k))
	}
	if kind != "exec" {
		return // an attach runs nothing new: its statement is the request
	}
	argv := qv["command"]
	cmd := make([]any, 0, len(argv))
	for _, a := range argv {
		cmd = append(cmd, gateway.Clip(a, 2048))
	}
	// A value written over several arguments (echo '4111 1111' '1111
	// 1111') is the value the program reading them joins: each argument
	// that goes into one becomes its placeholder.
	for _, j := range gateway.JoinedRuns(argv) {
		for _, p := range j.Parts {
			cmd[p] = detect.Placeholder(j.Detector)
		}
		gateway.AddRedactions(command, gateway.Found("/command/"+strconv.Itoa(j.Parts[0]), []gateway.Finding{{Detector: j.Detector, Value: j.Value}})...)
	}
	// The statement is judged as the shell shows it: a value found there
	// over several arguments that no run above reads whole (sh -c 'echo
	// $0$1' 4111111 111111111) replaces each argument it covers too, so
	// the list never holds the parts the statement's placeholder hides.
	st, at := shellWords(argv)
	if detect.MayHold(st) {
		for _, sp := range detect.Spans(st) {
			var parts []int
			for i, o := range at {
				if o[0] < sp.Hi && sp.Lo < o[1] && cmd[i] != detect.Placeholder(sp.Detector) {
					parts = append(parts, i)
				}
			}
			if len(parts) < 2 {
				continue // within one argument: the recording rule replaces it there
			}
			for _, i := range parts {
				cmd[i] = detect.Placeholder(sp.Detector)
			}
			gateway.AddRedactions(command, gateway.Found("/command/"+strconv.Itoa(parts[0]), []gateway.Finding{{Detector: sp.Detector, Value: sp.Value}})...)
		}
	}
	command["request"] = command["statement"]
	command["statement"] = gateway.Clip(st, 2048)
	command["statement_sha256"] = approvals.Digest(st)
	command["command"] = cmd
}

// execOptions are the streams an exec asks for (its stdin, stdout,
// stderr and tty parameters, booleans as the API server parses them).
func execOptions(r *http.Request) (*serverrc.Options, error) {
	qv := r.URL.Query()
	o := &serverrc.Options{}
	for name, v := range map[string]*bool{"stdin": &o.Stdin, "stdout": &o.Stdout, "stderr": &o.Stderr, "tty": &o.TTY} {
		if s := qv.Get(name); s != "" {
			b, err := strconv.ParseBool(s)
			if err != nil {
				return nil, fmt.Errorf("exec parameter %s=%q: want true or false", name, gateway.Clip(s, 32))
			}
			*v = b
		}
	}
	if o.TTY {
		o.Stderr = false // a terminal has one output stream
	}
	if !o.Stdin && !o.Stdout && !o.Stderr {
		return nil, errors.New("an exec needs at least one of stdin, stdout, stderr")
	}
	return o, nil
}

// shellWords is argv as a shell would read it back, and where each
// argument stands in that text, its quotes included.
func shellWords(argv []string) (string, [][2]int) {
	var b strings.Builder
	at := make([][2]int, len(argv))
	for i, a := range argv {
		if i > 0 {
			b.WriteByte(' ')
		}
		lo := b.Len()
		if a != "" && strings.IndexFunc(a, func(c rune) bool {
			return !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.ContainsRune("-_./=:,+@%", c))
		}) < 0 {
			b.WriteString(a)
		} else {
			b.WriteString("'" + strings.ReplaceAll(a, "'", `'\''`) + "'")
		}
		at[i] = [2]int{lo, b.Len()}
	}
	return b.String(), at
}

// serveExec relays a judged and recorded exec: the client's streams are
// terminated here with the kubelet's own streaming server (WebSocket
// v5/v4 channels and SPDY/3.1), and the exec is opened again to the API
// server as the person (WebSocket, falling back to SPDY). stdin, stdout,
// stderr and the terminal's sizes are recorded as session.output chunks
// of the exec's session; its end records the exit status.
func (p *Proxy) serveExec(w http.ResponseWriter, r *http.Request, x *exchange, command map[string]any, q Request, kind string) {
	ctx := r.Context()
	opts, err := execOptions(r)
	if err != nil {
		command["reason"] = err.Error()
		x.gs.RecordOrLog(ctx, events.CommandBlocked, command)
		writeStatus(w, http.StatusBadRequest, "BadRequest", err.Error())
		return
	}
	start := map[string]any{"protocol": "kubernetes", "kind": kind, "statement": command["statement"], "pod": q.Name,
		"namespace": q.Namespace, "tty": opts.TTY, "client_addr": r.RemoteAddr, "client_protocol": "spdy"}
	if wsstream.IsWebSocketRequest(r) {
		start["client_protocol"] = "websocket"
	}
	if c, ok := command["container"]; ok {
		start["container"] = c
	}
	if err := x.gs.Start(ctx, start); err != nil {
		unavailable(w, "exec not started: the audit ledger did not store its record ("+err.Error()+"); the gateway fails closed")
		return
	}
	began := time.Now()
	id, err := x.gs.Record(ctx, events.CommandExecuted, command)
	if err != nil {
		x.gs.End(context.WithoutCancel(ctx), map[string]any{"reason": "not recorded"})
		unavailable(w, "exec not started: the audit ledger did not store its record ("+err.Error()+"); the gateway fails closed")
		return
	}
	x.cmdID = id
	u := *p.upstream
	u.Path, u.RawPath, u.RawQuery = r.URL.Path, r.URL.RawPath, r.URL.RawQuery
	rel := &execRelay{p: p, x: x, url: &u}
	w = lingering{w} // the hijacked connection closes without a reset
	if kind == "exec" {
		rel.archive = newArchiveTap(ctx, x.gs, r.URL.Query()["command"], id)
	}
	switch {
	case wsstream.IsWebSocketRequest(r):
		execWebSocket(w, r, rel, opts)
	case kind == "attach":
		serverrc.ServeAttach(w, r, attachRelay{rel}, q.Name, "", "", opts, execIdleTimeout, execStreamCreationTimeout, serverrc.SupportedStreamingProtocols)
	default:
		serverrc.ServeExec(w, r, rel, q.Name, "", "", nil, opts, execIdleTimeout, execStreamCreationTimeout, serverrc.SupportedStreamingProtocols)
	}
	end := map[string]any{"command_id": id, "duration_ms": time.Since(began).Milliseconds(),
		"bytes_in": rel.in.Load(), "bytes_out": rel.out.Load()}
	switch {
	case !rel.ran:
		end["reason"] = "the client did not open its streams"
	case x.gs.CutReason() != "":
		end["reason"] = "access: " + x.gs.CutReason()
	case rel.err == nil:
		end["exit_status"] = 0
	case rel.exit >= 0:
		end["exit_status"] = rel.exit
	default:
		end["reason"] = "error"
		end["detail"] = rel.err.Error()
	}
	for k, v := range rel.archive.wait() {
		end[k] = v
	}
	x.gs.End(context.WithoutCancel(ctx), end)
}

// execRelay is the executor behind the gateway's streaming server: it
// runs the exec on the API server.
type execRelay struct {
	p   *Proxy
	x   *exchange
	url *url.URL

	ran     bool
	err     error
	exit    int // the exit status the error channel reported; -1: none
	in, out atomic.Int64
	archive *archiveTap // the tar archive the exec moves (kubectl cp), or nil
}

// ExecInContainer relays the client's streams to the API server's exec.
func (e *execRelay) ExecInContainer(ctx context.Context, _, _, _ string, _ []string, in io.Reader, out, errw io.WriteCloser,
	tty bool, resize <-chan serverrc.TerminalSize, _ time.Duration) error {
	e.ran, e.exit = true, -1
	gs := e.x.gs
	var closers []*gateway.Stream
	// With a terminal, what the container writes is shown at the size
	// the client sends (none until it does: moves that depend on it
	// make a chunk binary).
	var screen *gateway.Screen
	if tty {
		screen = gateway.NewScreen(0, 0)
	}
	rec := func(name string) *gateway.Stream {
		cfg := gateway.StreamConfig{}
		if name == "stdout" || name == "stderr" {
			cfg.Screen = screen
		}
		st := gs.Stream(name, cfg)
		closers = append(closers, st)
		return st
	}
	defer func() {
		for _, st := range closers {
			st.Close()
		}
	}()
	opts := remotecommand.StreamOptions{Tty: tty}
	if in != nil {
		opts.Stdin = io.TeeReader(in, counted{e.archive.tap("stdin", rec("stdin")), &e.in})
	}
	if out != nil {
		opts.Stdout = io.MultiWriter(out, counted{e.archive.tap("stdout", rec("stdout")), &e.out})
	}
	if errw != nil {
		opts.Stderr = io.MultiWriter(errw, counted{rec("stderr"), &e.out})
	}
	if resize != nil && tty {
		opts.TerminalSizeQueue = &sizeQueue{ctx: ctx, ch: resize, rec: rec("resize"), screen: screen}
	}
	cfg, err := e.p.restConfig(e.x)
	if err != nil {
		e.err = err
		return err
	}
	exe, err := newExecutor(cfg, e.url)
	if err != nil {
		e.err = err
		return err
	}
	// What the API server sends is taken at once (takeUp), and passed on
	// to the client and the recording before the exit status is.
	var takes []*takeUp
	for _, w := range []*io.Writer{&opts.Stdout, &opts.Stderr} {
		if *w != nil {
			t := newTakeUp(*w, maxTakeUp)
			takes = append(takes, t)
			*w = t
		}
	}
	err = exe.StreamWithContext(ctx, opts)
	for _, t := range takes {
		if terr := t.Close(); terr != nil && err == nil {
			err = terr
		}
	}
	if why := gs.CutReason(); why != "" {
		// The core cut the exec: the client is told why, not that a
		// context was cancelled.
		err = fmt.Errorf("the gateway ended the session: access %s", why)
	}
	e.err = err
	var ce clientexec.CodeExitError
	var cep *clientexec.CodeExitError
	switch {
	case errors.As(err, &ce):
		e.exit = ce.Code
		return utilexec.CodeExitError{Err: err, Code: ce.Code}
	case errors.As(err, &cep):
		e.exit = cep.Code
		return utilexec.CodeExitError{Err: err, Code: cep.Code}
	}
	return err
}

// attachRelay relays an attach as execRelay relays an exec: the upstream
// URL (pods/attach) is all that differs.
type attachRelay struct{ *execRelay }

func (a attachRelay) AttachContainer(ctx context.Context, name, uid, container string, in io.Reader, out, errw io.WriteCloser, tty bool, resize <-chan serverrc.TerminalSize) error {
	return a.ExecInContainer(ctx, name, uid, container, nil, in, out, errw, tty, resize, 0)
}

// newExecutor opens execs at u: SPDY/3.1 without pings first, WebSocket
// when the API server does not upgrade to it.
//
// Why not WebSocket first, as kubectl does: the API server ends an exec
// by closing its connection at once, and whatever the client sent that
// it had not read by then — a heartbeat ping, which client-go's WebSocket
// executor sends every 5 s and cannot be told not to — makes its kernel
// answer with a reset and throw away what it had not sent yet: the end of
// stdout and the exit status (kubectl through the gateway failed with
// "error reading from error stream: connection reset by peer" on a busy
// machine). Over SPDY the gateway sends no pings (TCP keepalives, which
// carry no data, keep an idle connection open), so it sends nothing the
// API server does not wait for.
func newExecutor(cfg *rest.Config, u *url.URL) (remotecommand.Executor, error) {
	tlsConfig, err := rest.TLSConfigFor(cfg)
	if err != nil {
		return nil, err
	}
	upgrader, err := apispdy.NewRoundTripperWithConfig(apispdy.RoundTripperConfig{TLS: tlsConfig, Proxier: http.ProxyFromEnvironment})
	if err != nil {
		return nil, err
	}
	rt, err := rest.HTTPWrappersForConfig(cfg, upgrader)
	if err != nil {
		return nil, err
	}
	spdy, err := remotecommand.NewSPDYExecutorForTransports(rt, upgrader, "POST", u)
	if err != nil {
		return nil, err
	}
	ws, err := remotecommand.NewWebSocketExecutor(cfg, "GET", u.String())
	if err != nil {
		return nil, err
	}
	return remotecommand.NewFallbackExecutor(spdy, ws, func(err error) bool {
		return httpstream.IsUpgradeFailure(err) || apihttpstream.IsUpgradeFailure(err) || httpstream.IsHTTPSProxyError(err)
	})
}

// restConfig is the gateway's credential toward the API server, acting
// as the exchange's user (the Impersonate-* headers of every request).
func (p *Proxy) restConfig(x *exchange) (*rest.Config, error) {
	cfg := &rest.Config{Host: p.upstream.Scheme + "://" + p.upstream.Host, UserAgent: "auditledger-kube-gateway",
		TLSClientConfig: rest.TLSClientConfig{CAData: p.cfg.UpstreamCA},
		Impersonate:     rest.ImpersonationConfig{UserName: x.user, UID: x.gs.Identity().Subject, Groups: x.groups}}
	if c := p.cfg.ClientCert; c != nil {
		key, err := x509.MarshalPKCS8PrivateKey(c.PrivateKey)
		if err != nil {
			return nil, fmt.Errorf("the gateway's client key: %v", err)
		}
		for _, der := range c.Certificate {
			cfg.CertData = append(cfg.CertData, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})...)
		}
		cfg.KeyData = pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: key})
	}
	tok, err := p.upstreamToken()
	if err != nil {
		return nil, fmt.Errorf("the gateway's token file cannot be read: %v", err)
	}
	cfg.BearerToken = tok
	return cfg, nil
}

// counted records what passes and counts it.
type counted struct {
	w io.Writer
	n *atomic.Int64
}

func (c counted) Write(b []byte) (int, error) {
	c.n.Add(int64(len(b)))
	return c.w.Write(b)
}

// sizeQueue passes the client's terminal sizes on to the API server and
// to the model of what the terminal shows (screen), recording each as a
// COLSxROWS line of the resize stream, or "withheld" when its numbers
// would complete a value (gateway.WindowSizes).
type sizeQueue struct {
	ctx    context.Context
	ch     <-chan serverrc.TerminalSize
	rec    io.Writer
	screen *gateway.Screen
	sizes  gateway.WindowSizes
}

func (q *sizeQueue) Next() *remotecommand.TerminalSize {
	select {
	case s, ok := <-q.ch:
		if !ok {
			return nil
		}
		q.screen.Resize(int(s.Width), int(s.Height))
		if q.sizes.Record(uint32(s.Width), uint32(s.Height)) {
			fmt.Fprintf(q.rec, "%dx%d\n", s.Width, s.Height)
		} else {
			io.WriteString(q.rec, "withheld\n")
		}
		return &remotecommand.TerminalSize{Width: s.Width, Height: s.Height}
	case <-q.ctx.Done():
		return nil
	}
}

// WebSocket channels of the remote command protocols.
const (
	wsStdin = iota
	wsStdout
	wsStderr
	wsError
	wsResize
)

// execWebSocket terminates an exec's WebSocket: v5.channel.k8s.io (what
// kubectl speaks; it half-closes stdin with its close signal) and
// v4.channel.k8s.io, with the channels and error-channel Status the API
// server writes; the kubelet's streaming server stops at v4.
func execWebSocket(w http.ResponseWriter, r *http.Request, rel *execRelay, opts *serverrc.Options) {
	ch := func(real bool, t wsstream.ChannelType) wsstream.ChannelType {
		if real {
			return t
		}
		return wsstream.IgnoreChannel
	}
	channels := []wsstream.ChannelType{ch(opts.Stdin, wsstream.ReadChannel), ch(opts.Stdout, wsstream.WriteChannel),
		ch(opts.Stderr, wsstream.WriteChannel), wsstream.WriteChannel, wsstream.ReadChannel}
	conn := wsstream.NewConn(map[string]wsstream.ChannelProtocolConfig{
		"v5.channel.k8s.io": {Binary: true, Channels: channels},
		"v4.channel.k8s.io": {Binary: true, Channels: channels},
	})
	conn.SetIdleTimeout(execIdleTimeout)
	_, streams, err := conn.Open(w, r)
	if err != nil {
		return // the library answered the client
	}
	defer conn.Close()
	// An empty message on the lowest writable channel tells the client
	// that its streams are open.
	switch {
	case opts.Stdout:
		streams[wsStdout].Write([]byte{})
	case opts.Stderr:
		streams[wsStderr].Write([]byte{})
	default:
		streams[wsError].Write([]byte{})
	}
	var resize chan serverrc.TerminalSize
	if opts.TTY {
		resize = make(chan serverrc.TerminalSize)
		go func() {
			defer close(resize)
			dec := json.NewDecoder(streams[wsResize])
			for {
				var s serverrc.TerminalSize
				if dec.Decode(&s) != nil {
					return
				}
				select {
				case resize <- s:
				case <-r.Context().Done():
					return
				}
			}
		}()
	}
	var in io.Reader
	var out, errw io.WriteCloser
	if opts.Stdin {
		in = streams[wsStdin]
	}
	if opts.Stdout {
		out = streams[wsStdout]
	}
	if opts.Stderr {
		errw = streams[wsStderr]
	}
	err = rel.ExecInContainer(r.Context(), "", "", "", nil, in, out, errw, opts.TTY, resize, 0)
	st := metav1.Status{Status: metav1.StatusSuccess}
	var ce utilexec.CodeExitError
	switch {
	case errors.As(err, &ce):
		st = metav1.Status{Status: metav1.StatusFailure, Reason: "NonZeroExitCode", Message: "command terminated with non-zero exit code: " + err.Error(),
			Details: &metav1.StatusDetails{Causes: []metav1.StatusCause{{Type: "ExitCode", Message: strconv.Itoa(ce.Code)}}}}
	case err != nil:
		st = metav1.Status{Status: metav1.StatusFailure, Reason: metav1.StatusReasonInternalError, Code: http.StatusInternalServerError,
			Message: "error executing command in container: " + err.Error()}
	}
	b, _ := json.Marshal(st)
	conn.SetWriteDeadline(10 * time.Second)
	streams[wsError].Write(b)
}
