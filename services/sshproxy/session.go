package sshproxy

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/auditledger/auditledger/events"
	"github.com/auditledger/auditledger/events/detect"
	"github.com/auditledger/auditledger/services/approvals"
	"github.com/auditledger/auditledger/services/gateway"
)

var randReader = rand.Reader

func newEd25519Signer() (ssh.Signer, error) {
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, err
	}
	return ssh.NewSignerFromKey(priv)
}

// StreamLabel is the label of the keyed digest of a session's whole
// output stream (session.ended); FileLabel of a file's contents (sftp).
const (
	StreamLabel = "auditledger ssh stream v1\n"
	FileLabel   = gateway.FileLabel
)

// ReasonClientGone is session.ended's reason when the client closed the
// session, or its connection ended, while its program still ran: the
// program is told to hang up (SIGHUP) and the target's channel closed.
const ReasonClientGone = "client went away"

// ptyReq is the payload of a pty-req (RFC 4254 §6.2).
type ptyReq struct {
	Term          string
	Cols, Rows    uint32
	Width, Height uint32
	Modes         string
}

// channel is one session channel: a shell, an exec or a subsystem.
type channel struct {
	c   *conn
	s   *gateway.Session
	cch ssh.Channel
	tch ssh.Channel

	pty     *ptyReq
	env     map[string]string
	started bool
	resize  *gateway.Stream
	// screen is the client's terminal size (pty-req, window-change);
	// sizes judges the sizes recorded (session.started's pty, the
	// resize stream). shown are stdout and stderr while the relay
	// records them: each renders at a size of its own, changed in
	// order with the bytes queued before the change (lagStream.resize).
	screen  *gateway.Screen
	sizes   gateway.WindowSizes
	shownMu sync.Mutex
	shown   []*lagStream

	targetDone chan struct{} // closed once the target's channel is closed
	relayDone  chan struct{} // closed once the program's relay is over; nil before
	subsystem  bool          // the program is a subsystem (sftp)

	exited   chan struct{} // closed once the target reports the program's exit
	exitOnce sync.Once
	// hanging: the session ended while its program ran, and hangUp is
	// ending it; hangDone is closed once it is done, and hangup says how
	// (Hangup…).
	hanging  atomic.Bool
	hangDone chan struct{}
	hangup   atomic.Value // string

	exitStatus atomic.Int64 // -1 until the target sends it
	exitSignal atomic.Value // string
	// clientLeft: the client closed the channel (or its connection
	// ended) while the program still ran.
	clientLeft atomic.Bool
}

// session relays one session channel. Its requests before the program
// starts (pty-req, env) are forwarded; the program (shell, exec,
// subsystem) is judged by the policy and recorded before it reaches the
// target.
func (c *conn) session(ctx context.Context, nch ssh.NewChannel) {
	s := c.p.g.Session(c.events())
	s.Authenticated(c.id)
	if c.refuse != "" {
		c.refused(ctx, "session", c.refuseRule, c.refuse) // a policy refusal: it names its rule (§12.1, 8.3)
		nch.Reject(ssh.Prohibited, "auditledger: "+c.refuse)
		return
	}
	if c.tc == nil {
		if err := s.Start(ctx, c.startPayload("open", nil)); err == nil {
			s.End(ctx, map[string]any{"reason": "refused", "detail": c.dialErr.Error()})
		}
		nch.Reject(ssh.ConnectionFailed, "auditledger: "+c.dialErr.Error())
		return
	}
	tch, treqs, err := c.tc.OpenChannel("session", nil)
	if err != nil {
		nch.Reject(ssh.ConnectionFailed, "auditledger: target "+c.target.Name+": "+err.Error())
		return
	}
	cch, creqs, err := nch.Accept()
	if err != nil {
		tch.Close()
		return
	}
	ch := &channel{c: c, s: s, cch: cch, tch: tch, env: map[string]string{}, exited: make(chan struct{}), hangDone: make(chan struct{})}
	ch.exitStatus.Store(-1)
	c.track(cch, true)
	defer c.track(cch, false)
	defer cch.Close()
	defer tch.Close()
	ch.targetDone = make(chan struct{})
	go ch.fromTarget(treqs, ch.targetDone)
	for r := range creqs {
		if !ch.request(ctx, r) {
			go ssh.DiscardRequests(creqs)
			break
		}
	}
	// The client closed the channel (after the relay closed it, or
	// vanishing), or its program was refused: the target's side goes too,
	// and what still runs there is ended (hangUp).
	if ch.relayDone != nil {
		select {
		case <-ch.relayDone:
		default:
			ch.clientLeft.Store(true)
			if !ch.subsystem { // sftp ends with its channel; sshd signals no subsystem
				ch.hanging.Store(true)
				ch.hangUp()
			}
		}
	}
	close(ch.hangDone)
	tch.Close()
	if ch.relayDone != nil {
		<-ch.relayDone
	}
	<-ch.targetDone
}

func (c *conn) startPayload(request string, ch *channel) map[string]any {
	p := map[string]any{"protocol": "ssh", "request": request, "login": c.login, "client_addr": c.sc.RemoteAddr().String(),
		"client_version": string(c.sc.ClientVersion()), "certificate_serial": fmt.Sprint(c.cert.Serial)}
	if ch != nil {
		if ch.pty != nil {
			pty := map[string]any{"term": ch.pty.Term}
			if ch.sizes.Record(ch.pty.Cols, ch.pty.Rows) {
				pty["cols"], pty["rows"] = ch.pty.Cols, ch.pty.Rows
			} else {
				pty["size_withheld"] = true // its digits make a value (gateway.WindowSizes)
			}
			p["pty"] = pty
		}
		if len(ch.env) > 0 {
			p["env"] = recordedEnv(p, ch.env)
		}
	}
	return p
}

// recordedEnv is env as recorded: a value written in parts over
// variables a program reads side by side (A=41111111 B=11111111, read as
// $A$B) is judged joined, in the variables' order by name
// (gateway.JoinedRuns), and each variable that goes into one recorded as
// its placeholder, listed in payload's redacted member with the value.
func recordedEnv(payload map[string]any, env map[string]string) map[string]string {
	names := slices.Sorted(maps.Keys(env))
	values := make([]string, len(names))
	for i, n := range names {
		values[i] = env[n]
	}
	joined := gateway.JoinedRuns(values)
	if len(joined) == 0 {
		return env
	}
	out := maps.Clone(env)
	for _, j := range joined {
		for _, k := range j.Parts {
			out[names[k]] = detect.Placeholder(j.Detector)
		}
		gateway.AddRedactions(payload, gateway.Found("/env/"+strings.ReplaceAll(strings.ReplaceAll(names[j.Parts[0]], "~", "~0"), "/", "~1"),
			[]gateway.Finding{{Detector: j.Detector, Value: j.Value}})...)
	}
	return out
}

// fromTarget forwards the target's channel requests (exit-status,
// exit-signal) to the client.
func (ch *channel) fromTarget(reqs <-chan *ssh.Request, done chan<- struct{}) {
	defer close(done)
	for r := range reqs {
		if r.Type == "exit-status" || r.Type == "exit-signal" {
			ch.exitOnce.Do(func() { close(ch.exited) })
		}
		switch r.Type {
		case "exit-status":
			var st struct{ Status uint32 }
			if ssh.Unmarshal(r.Payload, &st) == nil {
				ch.exitStatus.Store(int64(st.Status))
			}
		case "exit-signal":
			var sig struct {
				Signal string
				Core   bool
				Msg    string
				Lang   string
			}
			if ssh.Unmarshal(r.Payload, &sig) == nil {
				ch.exitSignal.Store(sig.Signal)
			}
		}
		ok, err := ch.cch.SendRequest(r.Type, r.WantReply, r.Payload)
		if err != nil && (r.Type == "exit-status" || r.Type == "exit-signal") {
			// The client's channel is closed under the program: its
			// connection went away. The request loop notices too, but
			// may run after the relay has read clientLeft.
			ch.clientLeft.Store(true)
		}
		if r.WantReply {
			r.Reply(ok, nil)
		}
	}
}

// request handles one of the client's channel requests; false ends the
// channel.
func (ch *channel) request(ctx context.Context, r *ssh.Request) bool {
	forward := func() {
		ok, err := ch.tch.SendRequest(r.Type, r.WantReply, r.Payload)
		if r.WantReply {
			r.Reply(ok && err == nil, nil)
		}
	}
	switch r.Type {
	case "pty-req":
		var p ptyReq
		if err := ssh.Unmarshal(r.Payload, &p); err != nil {
			r.Reply(false, nil)
			return true
		}
		ch.pty = &p
		if ch.screen == nil {
			ch.screen = gateway.NewScreen(int(p.Cols), int(p.Rows))
		} else {
			ch.screen.Resize(int(p.Cols), int(p.Rows))
		}
		forward()
	case "env":
		var e struct{ Name, Value string }
		if ssh.Unmarshal(r.Payload, &e) == nil && len(ch.env) < 64 {
			ch.env[e.Name] = e.Value
		}
		forward()
	case "window-change":
		var w struct{ Cols, Rows, Width, Height uint32 }
		if ssh.Unmarshal(r.Payload, &w) == nil {
			ch.shownMu.Lock()
			if ch.screen != nil {
				ch.screen.Resize(int(w.Cols), int(w.Rows))
			}
			for _, l := range ch.shown {
				l.resize(int(w.Cols), int(w.Rows))
			}
			ch.shownMu.Unlock()
			if ch.resize != nil {
				if ch.sizes.Record(w.Cols, w.Rows) {
					fmt.Fprintf(ch.resize, "%dx%d\n", w.Cols, w.Rows)
				} else {
					io.WriteString(ch.resize, "withheld\n") // its digits would complete a value
				}
			}
		}
		forward()
	case "signal", "break":
		forward()
	case "x11-req", "auth-agent-req@openssh.com":
		what := map[string]string{"x11-req": ForwardX11, "auth-agent-req@openssh.com": ForwardAgent}[r.Type]
		ch.c.refused(ctx, "forwarding "+what, "", what+" forwarding is not relayed by the gateway")
		if r.WantReply {
			r.Reply(false, nil)
		}
	case "shell", "exec", "subsystem":
		if ch.started {
			r.Reply(false, nil)
			return true
		}
		ch.started = true
		return ch.program(ctx, r)
	default:
		if r.WantReply {
			r.Reply(false, nil)
		}
	}
	return true
}

// program starts the channel's program once the policy allows it and its
// record is stored.
func (ch *channel) program(ctx context.Context, r *ssh.Request) bool {
	c, s := ch.c, ch.s
	start := ch.c.startPayload(r.Type, ch)
	var command, subsystem string
	switch r.Type {
	case "exec":
		var e struct{ Command string }
		if err := ssh.Unmarshal(r.Payload, &e); err != nil {
			r.Reply(false, nil)
			return false
		}
		command = e.Command
	case "subsystem":
		var e struct{ Name string }
		if err := ssh.Unmarshal(r.Payload, &e); err != nil {
			r.Reply(false, nil)
			return false
		}
		subsystem = e.Name
		start["subsystem"] = subsystem
	}
	// A target an access rule names: only inside a live grant; when it
	// ends the program is killed, and the channel and the session on the
	// target closed (a process without a terminal does not survive).
	release, err := s.Admit(ctx, func(reason string) {
		fmt.Fprintf(ch.cch.Stderr(), "auditledger: session ended: %s\r\n", reason)
		ch.tch.SendRequest("signal", false, ssh.Marshal(struct{ Signal string }{"KILL"}))
		ch.tch.Close()
		ch.cch.Close()
	})
	if err != nil {
		r.Reply(true, nil) // the program "ran" and failed, so the client prints why
		fmt.Fprintf(ch.cch.Stderr(), "auditledger: refused: %s\r\n", err)
		ch.cch.SendRequest("exit-status", false, ssh.Marshal(struct{ Status uint32 }{126}))
		ch.cch.CloseWrite()
		return false
	}
	if err := s.Start(ctx, start); err != nil {
		release()
		r.Reply(false, nil)
		c.p.log.Error("session refused: session.started not recorded", "session_id", s.ID(), "err", err)
		return false
	}
	began := time.Now()
	v := c.p.pol.For(c.id.Subject, c.id.Groups, c.target.Name)
	refuse := func(rule, reason string, payload map[string]any) bool {
		if rule != "" {
			payload["rule"] = rule
		}
		payload["reason"] = reason
		s.RecordOrLog(ctx, events.CommandBlocked, payload)
		r.Reply(true, nil) // the program "ran" and failed, so the client prints why
		fmt.Fprintf(ch.cch.Stderr(), "auditledger: refused: %s\r\n", reason)
		ch.cch.SendRequest("exit-status", false, ssh.Marshal(struct{ Status uint32 }{126}))
		ch.cch.CloseWrite()
		s.End(ctx, map[string]any{"reason": "refused", "exit_status": 126, "duration_ms": time.Since(began).Milliseconds()})
		return false
	}
	var payload map[string]any
	switch r.Type {
	case "subsystem":
		payload = map[string]any{"protocol": "ssh", "kind": "subsystem", "statement": "subsystem " + subsystem}
		if !v.allows("", subsystem) || subsystem != "sftp" {
			return refuse("", "subsystem "+subsystem+" is not allowed by the gateway's policy", payload)
		}
	default:
		statement := command
		kind := "exec"
		if r.Type == "shell" {
			statement, kind = "(interactive shell)", "shell"
		}
		// The command runs as typed; it is recorded with each word
		// judged as the shell resolves it (shellscrub.go).
		var found []gateway.Finding
		if r.Type != "shell" {
			statement, found = scrubCommand(command)
		}
		vd := v.judge(command, r.Type == "shell")
		payload = map[string]any{"protocol": "ssh", "kind": kind, "statement": statement}
		gateway.AddRedactions(payload, gateway.Found("/statement", found)...)
		if names := callNames(vd.calls); len(names) > 0 {
			payload["programs"] = names
		}
		if vd.deny {
			rule := ""
			if vd.rule != nil {
				rule = vd.rule.ID
			}
			return refuse(rule, vd.reason, payload)
		}
		if vd.rule != nil {
			ok, why, err := s.Hold(ctx, gateway.Hold{Rule: vd.rule.ID, Reason: vd.rule.Reason, Timeout: vd.rule.Timeout, Statement: statement,
				Redacted: gateway.Found("/statement", found),
				Notify: func(a *approvals.Request) error {
					_, err := fmt.Fprintf(ch.cch.Stderr(), "auditledger: held for approval %s (rule %s): %s\r\n", a.ID, vd.rule.ID, vd.rule.Reason)
					return err
				}})
			if err != nil {
				return refuse(vd.rule.ID, "not held for approval: "+err.Error(), payload)
			}
			if !ok {
				return refuse(vd.rule.ID, why, payload)
			}
			payload["rule"] = vd.rule.ID
		}
	}
	if _, err := s.Record(ctx, events.CommandExecuted, payload); err != nil {
		delete(payload, "rule")
		return refuse("", "the audit ledger did not store the record", payload)
	}
	ok, err := ch.tch.SendRequest(r.Type, true, r.Payload)
	if err != nil || !ok {
		r.Reply(false, nil)
		s.End(ctx, map[string]any{"reason": "target refused " + r.Type, "duration_ms": time.Since(began).Milliseconds()})
		return false
	}
	r.Reply(true, nil)
	ch.relayDone = make(chan struct{})
	ch.subsystem = subsystem != ""
	if ch.pty != nil && subsystem != "sftp" {
		// Before the relay starts: window changes are recorded by the
		// request loop.
		ch.resize = s.Stream("resize", gateway.StreamConfig{FlushAfter: c.p.cfg.FlushAfter})
	}
	if subsystem == "sftp" {
		go ch.sftp(ctx, began)
	} else {
		go ch.relay(ctx, began)
	}
	return true
}

func callNames(cs []call) []string {
	var out []string
	for _, c := range cs {
		n := c.name
		if c.opaque {
			n += " (unresolved: " + c.why + ")"
		}
		out = append(out, n)
	}
	return out
}

// relay copies the program's streams both ways, recording each, and ends
// the session once the target has closed the channel: its output and its
// exit status delivered, the client's side is closed, which ends the
// client's input.
func (ch *channel) relay(ctx context.Context, began time.Time) {
	defer close(ch.relayDone)
	s := ch.s
	cfg := gateway.StreamConfig{FlushAfter: ch.c.p.cfg.FlushAfter}
	// What the target writes is shown on the client's terminal, of the
	// size it gave (none without a pty: moves that depend on it make a
	// chunk binary); what the client types is not. Each output stream
	// has a screen of its own, resized in order with its bytes.
	ch.shownMu.Lock()
	shown := func(name string) *lagStream {
		var sc *gateway.Screen
		if ch.screen != nil {
			sc = gateway.NewScreen(ch.screen.Size())
		}
		return newLagStreamOn(s.Stream(name, gateway.StreamConfig{FlushAfter: cfg.FlushAfter, Screen: sc}), sc)
	}
	stdin, stdout, stderr := newLagStream(s.Stream("stdin", cfg)), shown("stdout"), shown("stderr")
	if ch.screen != nil {
		ch.shown = []*lagStream{stdout, stderr}
	}
	ch.shownMu.Unlock()
	sum, err := s.KeyedSum(ctx, StreamLabel)
	if err != nil {
		ch.c.p.log.Warn("no keyed digest of the session's output: the tenant's key is unavailable", "session_id", s.ID(), "err", err)
	}
	var mu sync.Mutex
	summed := func(b []byte) {
		mu.Lock()
		sum.Write(b)
		mu.Unlock()
	}
	// In a terminal, what is typed after a password prompt is recorded
	// as its keyed digest only (secret.go).
	var mask *secretMask
	stdinRec := io.Writer(stdin)
	if ch.pty != nil {
		mask = newSecretMask(ctx, s)
		stdinRec = writerFunc(func(b []byte) {
			if r := mask.input(b); len(r) > 0 {
				stdin.Write(r)
			}
		})
	}
	var in, out, errOut int64
	var input, output sync.WaitGroup
	input.Go(func() {
		in, _ = io.Copy(ch.tch, io.TeeReader(ch.cch, writerFunc(func(b []byte) { ch.c.touch(); stdinRec.Write(b) })))
		ch.tch.CloseWrite()
	})
	output.Go(func() {
		out, _ = io.Copy(ch.cch, io.TeeReader(ch.tch, writerFunc(func(b []byte) {
			ch.c.touch()
			if mask != nil {
				mask.output(b)
			}
			stdout.Write(b)
			summed(b)
		})))
	})
	output.Go(func() {
		errOut, _ = io.Copy(ch.cch.Stderr(), io.TeeReader(ch.tch.Stderr(), writerFunc(func(b []byte) { ch.c.touch(); stderr.Write(b); summed(b) })))
	})
	output.Wait()
	// The target's side ended without the program exiting because the
	// client went away (and the gateway closed the target's connection).
	<-ch.targetDone // exit-status and exit-signal forwarded
	if ch.hanging.Load() {
		<-ch.hangDone // how the program was ended, for session.ended
	}
	vanished := ch.clientLeft.Load()
	ch.cch.CloseWrite()
	ch.cch.Close()
	input.Wait()
	if mask != nil {
		if r := mask.flush(); len(r) > 0 {
			stdin.Write(r)
		}
	}
	ch.shownMu.Lock()
	ch.shown = nil // no resize queued once the streams close
	ch.shownMu.Unlock()
	stdin.Close()
	stdout.Close()
	stderr.Close()
	if ch.resize != nil {
		ch.resize.Close()
	}
	end := map[string]any{"bytes_in": in, "bytes_out": out + errOut, "duration_ms": time.Since(began).Milliseconds()}
	if st := ch.exitStatus.Load(); st >= 0 {
		end["exit_status"] = st
	}
	if sig, _ := ch.exitSignal.Load().(string); sig != "" {
		end["exit_signal"] = sig
	}
	if d := sum.Digest(); d != "" {
		end["output_hmac"] = d
	}
	if mask != nil && mask.masked > 0 {
		end["masked_inputs"] = mask.masked
	}
	if h, _ := ch.hangup.Load().(string); h != "" {
		select {
		case <-ch.exited:
			if h == HangupRefused || h == HangupSurvived {
				h = HangupExited // once its channel closed (its input ended)
			}
		default:
		}
		end["hangup"] = h
	}
	if r := ch.c.closeReason(); r != "" {
		end["reason"] = r
	} else if vanished {
		end["reason"] = ReasonClientGone
	}
	s.End(ctx, end)
}

type writerFunc func([]byte)

func (f writerFunc) Write(b []byte) (int, error) { f(b); return len(b), nil }

// copyClose copies and then half-closes dst; each read is activity
// (touch), for the idle timeout.
func copyClose(dst, src ssh.Channel, touch func()) (int64, error) {
	n, err := io.Copy(dst, io.TeeReader(src, writerFunc(func([]byte) { touch() })))
	dst.CloseWrite()
	if errors.Is(err, io.EOF) {
		err = nil
	}
	return n, err
}

// lagStream hands what passes to a recorded stream through a queue, so
// that recording a chunk (the detectors, the hand-off to the bus) never
// delays the bytes themselves; a queue that fills up (the bus far behind)
// slows the relay rather than drop a record.
type lagStream struct {
	st   *gateway.Stream
	q    chan lagItem
	done chan struct{}
}

// lagItem is bytes that passed, or a window size the client gave after
// them (resize).
type lagItem struct {
	b          []byte
	resize     bool
	cols, rows int
}

func newLagStream(st *gateway.Stream) *lagStream { return newLagStreamOn(st, nil) }

// newLagStreamOn is newLagStream for a stream shown on screen, which
// resize changes.
func newLagStreamOn(st *gateway.Stream, screen *gateway.Screen) *lagStream {
	l := &lagStream{st: st, q: make(chan lagItem, 256), done: make(chan struct{})}
	go func() {
		defer close(l.done)
		for it := range l.q {
			if it.resize {
				if screen != nil {
					screen.Resize(it.cols, it.rows)
				}
				continue
			}
			st.Write(it.b) // copies what it keeps
			if cap(it.b) == lagBuf {
				lagBufs.Put(&it.b)
			}
		}
	}()
	return l
}

// lagBuf is the size of the buffers lagStream copies reads into, reused
// once recorded: what io.Copy reads at once.
const lagBuf = 32 << 10

var lagBufs = sync.Pool{New: func() any { b := make([]byte, 0, lagBuf); return &b }}

// Write queues a copy of b (the caller reuses its buffer).
func (l *lagStream) Write(b []byte) (int, error) {
	var c []byte
	if len(b) <= lagBuf {
		c = append((*lagBufs.Get().(*[]byte))[:0], b...)
	} else {
		c = append([]byte(nil), b...)
	}
	l.q <- lagItem{b: c}
	return len(b), nil
}

// resize changes the stream's screen once the bytes queued before it
// are recorded: bytes that passed before a window change are rendered
// as before it.
func (l *lagStream) resize(cols, rows int) { l.q <- lagItem{resize: true, cols: cols, rows: rows} }

// Close records what is queued, then closes the stream.
func (l *lagStream) Close() error {
	close(l.q)
	<-l.done
	return l.st.Close()
}

// How hangUp ended a program still running when its session ended
// (session.ended's hangup).
const (
	// HangupExited: it exited — on SIGHUP, by itself meanwhile, or once
	// its channel closed (its input ended).
	HangupExited = "exited"
	// HangupKilled: it ignored SIGHUP for hangUpGrace and exited on
	// SIGKILL.
	HangupKilled = "killed"
	// HangupRefused: the target refused to signal it, and no exit was
	// reported before the gateway closed the connection — OpenSSH's sshd
	// signals only programs of logins it serves with privilege
	// separation, never root's — so what ignores SIGHUP, or reads no
	// input, may still run there (docs/COMMANDS.md says what to
	// configure on the target).
	HangupRefused = "refused"
	// HangupSurvived: the target took the signals (or its channel went
	// away), but no exit was reported before the gateway closed the
	// connection (a program that left its process group, or a target too
	// slow to report it): it may still run there.
	HangupSurvived = "survived"
)

// killGrace is how long a program has to be reported gone after SIGKILL.
const killGrace = 5 * time.Second

// hangUp ends the program of a session that ended while it ran (its
// client gone, or its connection closed by the gateway): SIGHUP to its
// process group and, if the target reports no exit within hangUpGrace,
// SIGKILL. Each signal request asks for the target's answer, so a target
// that refuses to signal is known and recorded, not assumed obeyed. It
// returns within hangUpGrace + killGrace.
func (ch *channel) hangUp() {
	outcome := HangupSurvived
	defer func() { ch.hangup.Store(outcome) }()
	for _, step := range []struct {
		sig   string
		grace time.Duration
		done  string
	}{{"HUP", hangUpGrace, HangupExited}, {"KILL", killGrace, HangupKilled}} {
		select {
		case <-ch.exited:
			outcome = HangupExited
			return
		default:
		}
		ok, err := ch.tch.SendRequest("signal", true, ssh.Marshal(struct{ Signal string }{step.sig}))
		if err != nil {
			return // the target's channel is gone: exited, or unknown
		}
		if !ok {
			select {
			case <-ch.exited:
				outcome = HangupExited // it exited before the signal came
			default:
				outcome = HangupRefused
			}
			return
		}
		select {
		case <-ch.exited:
			outcome = step.done
			return
		case <-time.After(step.grace):
		}
	}
}
