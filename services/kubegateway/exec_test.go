package kubegateway_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/auditledger/auditledger/events"
	"github.com/auditledger/auditledger/services/gateway/gatewaytest"
	"github.com/auditledger/auditledger/services/sshproxy"
	"github.com/auditledger/auditledger/test/kubetest"
	"github.com/auditledger/auditledger/test/natstest"
)

const execPolicy = `version: 2
deny:
  - id: locked-shells
    verbs: [create]
    resources: [pods/exec]
    namespaces: ["locked-*"]
    reason: no shells in locked namespaces
approve:
  - id: prod-shells
    verbs: [create]
    resources: [pods/exec]
    namespaces: ["prod-*"]
    reason: shells in production need a second person
`

// execSession is the recorded session of the last exec or attach whose
// statement contains mark: its start, end and streams.
type execSession struct {
	start, end natstest.Stored
	streams    map[string]string
}

func (f *fixture) execSession(t *testing.T, mark string) execSession {
	t.Helper()
	var s execSession
	natstest.CheckFor(t, 2*time.Minute, 50*time.Millisecond, func() error {
		all := f.events(t)
		sid := ""
		for _, e := range all {
			if st, _ := e.Payload["statement"].(string); e.Event.Type == events.SessionStarted && (e.Payload["kind"] == "exec" || e.Payload["kind"] == "attach") && strings.Contains(st, mark) {
				sid, s.start = e.Event.SessionID, e
			}
		}
		if sid == "" {
			return fmt.Errorf("no exec session with %q", mark)
		}
		type chunk struct {
			off  int64
			data []byte
		}
		chunks := map[string][]chunk{}
		ended := false
		for _, e := range all {
			if e.Event.SessionID != sid {
				continue
			}
			switch e.Event.Type {
			case events.SessionEnded:
				s.end, ended = e, true
			case events.SessionOutput:
				b := gatewaytest.ChunkBytes(t, f.js, f.pii, e.Event, e.Payload)
				name := e.Payload["stream"].(string)
				chunks[name] = append(chunks[name], chunk{int64(e.Payload["offset"].(float64)), b})
			}
		}
		if !ended {
			return fmt.Errorf("exec session %s not ended", sid)
		}
		s.streams = map[string]string{}
		for name, cs := range chunks {
			sort.Slice(cs, func(i, j int) bool { return cs[i].off < cs[j].off })
			var b strings.Builder
			for _, c := range cs {
				b.Write(c.data)
			}
			s.streams[name] = b.String()
		}
		return nil
	})
	return s
}

// kubectl exec through the gateway to the API server and the kubelet,
// over WebSocket (kubectl's default) and SPDY (forced): the exit status
// propagated and recorded, stdin, stdout, stderr and the terminal's
// sizes recorded as session chunks with what the detectors find
// replaced, a denied exec never reaching the kubelet, and a held exec
// run once after its approval.
func TestKubectlExecThroughGateway(t *testing.T) {
	// A bound for a hang, not a speed: the whole test took over 10 minutes
	// under -race on a machine running other builds.
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Minute)
	defer cancel()
	c, up := clusterForGateway(t, ctx)
	f := start(t, up, execPolicy)
	k := c.StartKubelet()
	pod := k.CreatePod("team-x", "shell")
	locked := k.CreatePod("locked-a", "shell")
	prod := k.CreatePod("prod-a", "shell")
	alice := f.kubeconfig(t, "alice", "a")
	card := gatewaytest.Card(t)

	for _, family := range []struct {
		name string
		env  []string
	}{
		{"websocket", nil},
		{"spdy", []string{"KUBECTL_REMOTE_COMMAND_WEBSOCKETS=false"}},
	} {
		kubectl := func(args ...string) *exec.Cmd {
			cmd := c.KubectlCmd(ctx, alice, args...)
			cmd.Env = append(cmd.Env, family.env...)
			return cmd
		}
		run := func(t *testing.T, stdin string, args ...string) (stdout, stderr string, code int) {
			t.Helper()
			cmd := kubectl(args...)
			var o, e strings.Builder
			cmd.Stdin, cmd.Stdout, cmd.Stderr = strings.NewReader(stdin), &o, &e
			err := cmd.Run()
			var exitErr *exec.ExitError
			switch {
			case errors.As(err, &exitErr):
				code = exitErr.ExitCode()
			case err != nil:
				t.Fatalf("kubectl %s: %v", strings.Join(args, " "), err)
			}
			return o.String(), e.String(), code
		}
		mark := family.name

		t.Run(mark+"/exec", func(t *testing.T) {
			out, errOut, code := run(t, "", "exec", "-n", "team-x", "shell", "-c", "main", "--", "sh", "-c", "echo out-"+mark+"-$((1+1)); echo err-$((2+1)) >&2; exit 3")
			if code != 3 || out != "out-"+mark+"-2\n" || !strings.Contains(errOut, "err-3") {
				t.Fatalf("exec: code %d (want 3), stdout %q, stderr %q", code, out, errOut)
			}
			s := f.execSession(t, "out-"+mark)
			if st := s.start.Payload["statement"]; st != "sh -c 'echo out-"+mark+"-$((1+1)); echo err-$((2+1)) >&2; exit 3'" {
				t.Errorf("statement %q", st)
			}
			if s.start.Payload["client_protocol"] != mark {
				t.Errorf("the client spoke %v, want %s", s.start.Payload["client_protocol"], mark)
			}
			if s.streams["stdout"] != out || s.streams["stderr"] != "err-3\n" {
				t.Errorf("recorded stdout %q, stderr %q", s.streams["stdout"], s.streams["stderr"])
			}
			if s.end.Payload["exit_status"] != float64(3) {
				t.Errorf("session.ended %v, want exit_status 3", s.end.Payload)
			}
			f.waitFor(t, 1, request(events.CommandExecuted, map[string]string{"verb": "create", "resource": "pods", "subresource": "exec", "namespace": "team-x",
				"statement": "sh -c 'echo out-" + mark + "-$((1+1)); echo err-$((2+1)) >&2; exit 3'"}))

			// Standard input reaches the process; a card number in it and
			// in the output is recorded replaced.
			in := "card " + card + "\n"
			out, errOut, code = run(t, in, "exec", "-i", "-n", "team-x", "shell", "-c", "main", "--", "sh", "-c", "cat > in-"+mark+".txt; cat in-"+mark+".txt")
			if code != 0 || out != in {
				t.Fatalf("exec -i: code %d, stdout %q, stderr %q", code, out, errOut)
			}
			if got, _ := os.ReadFile(pod.Path("in-" + mark + ".txt")); string(got) != in {
				t.Fatalf("the process got %q", got)
			}
			s = f.execSession(t, "cat > in-"+mark)
			if !strings.HasPrefix(s.streams["stdin"], "card ") || strings.Contains(s.streams["stdin"], card) || s.end.Payload["exit_status"] != float64(0) {
				t.Errorf("recorded stdin %q, end %v", s.streams["stdin"], s.end.Payload)
			}
		})

		// A client that reads more slowly than the stream is produced gets
		// all of it: the gateway is done (the exec's session has ended)
		// while the tail of stdout still waits in the sockets' buffers,
		// and kubectl pings meanwhile. Closing the connection must not
		// turn that ping into a reset, which discarded the tail and failed
		// kubectl with "connection reset by peer".
		//
		// The larger size is more than the sockets hold: the API server
		// waits to send the tail while kubectl does not read, and the
		// gateway's own pings toward it must not make the API server's
		// close a reset either (takeUp).
		for _, size := range []int64{4 << 20, 24 << 20} {
			t.Run(fmt.Sprintf("%s/slow-reader-%dMiB", mark, size>>20), func(t *testing.T) {
				slow := fmt.Sprintf("slow-reader-%s-%d", mark, size)
				cmd := kubectl("exec", "-n", "team-x", "shell", "-c", "main", "--", "sh", "-c", fmt.Sprintf("head -c %d /dev/zero; : %s", size, slow))
				out := &gatedWriter{gate: make(chan struct{})}
				var errOut syncBuffer
				cmd.Stdout, cmd.Stderr = out, &errOut
				if err := cmd.Start(); err != nil {
					t.Fatal(err)
				}
				defer cmd.Process.Kill()
				// The gateway has closed its side once the session is ended
				// on record; kubectl has read only part of the stream.
				s := f.execSession(t, slow)
				out.stop()
				// kubectl pings every 5 s (client-go's WebSocket heartbeat
				// and its SPDY connection's ping period): the reader stays
				// stopped past one ping, with the stream's tail unread.
				time.Sleep(kubectlPingPeriod + 2*time.Second)
				close(out.gate)
				err := cmd.Wait()
				if n := out.n.Load(); err != nil || n != size {
					t.Fatalf("slow reader: kubectl %v, %d of %d bytes; kubectl's stderr: %q", err, n, size, errOut.String())
				}
				if s.end.Payload["exit_status"] != float64(0) || s.end.Payload["bytes_out"] != float64(size) {
					t.Errorf("session.ended %v, want exit_status 0 and bytes_out %d", s.end.Payload, size)
				}
			})
		}

		t.Run(mark+"/exec-tty", func(t *testing.T) {
			term, err := kubetest.OpenTerminal(40, 100)
			if err != nil {
				t.Fatal(err)
			}
			defer term.Close()
			ctx, cancel := context.WithTimeout(ctx, time.Minute)
			defer cancel()
			cmd := kubectl("exec", "-it", "-n", "team-x", "shell", "-c", "main", "--", "sh", "-c", "echo tty-"+mark+"; exec sh")
			if err := term.Start(cmd); err != nil {
				t.Fatal(err)
			}
			defer cmd.Process.Kill()
			term.Type("stty size; echo mark-$((6*7))\r")
			off, err := term.WaitFor(ctx, 0, "40 100")
			if err != nil {
				t.Fatal(err)
			}
			if off, err = term.WaitFor(ctx, off, "mark-42"); err != nil {
				t.Fatal(err)
			}
			term.Type("echo " + card + "\r")
			if _, err = term.WaitFor(ctx, off, card); err != nil {
				t.Fatal(err)
			}
			term.Type("exit 7\r")
			err = cmd.Wait()
			var exitErr *exec.ExitError
			if !errors.As(err, &exitErr) || exitErr.ExitCode() != 7 {
				t.Fatalf("kubectl exec -it: %v, want exit status 7; terminal: %q", err, term.Output())
			}
			s := f.execSession(t, "tty-"+mark)
			if s.start.Payload["tty"] != true || s.end.Payload["exit_status"] != float64(7) {
				t.Errorf("start %v, end %v", s.start.Payload, s.end.Payload)
			}
			if !strings.HasPrefix(s.streams["resize"], "100x40\n") {
				t.Errorf("resize stream %q, want 100x40 first", s.streams["resize"])
			}
			if !strings.Contains(s.streams["stdin"], "stty size") || !strings.Contains(s.streams["stdout"], "mark-42") {
				t.Errorf("recorded stdin %q, stdout %q", s.streams["stdin"], s.streams["stdout"])
			}
			if strings.Contains(s.streams["stdin"]+s.streams["stdout"], card) {
				t.Errorf("the typed card number is in the recorded terminal")
			}
			// export cast and replay play it as they play an SSH session.
			var evs []*events.Event
			for _, e := range f.events(t) {
				evs = append(evs, e.Event)
			}
			cast, err := sshproxy.CastOf(evs, s.start.Event.SessionID)
			if err != nil {
				t.Fatal(err)
			}
			var kinds, output strings.Builder
			for _, fr := range cast.Frames {
				kinds.WriteString(fr.Kind)
				if fr.Kind == "o" {
					output.WriteString(fr.Data)
				}
			}
			if k := kinds.String(); !strings.Contains(k, "r") || !strings.Contains(k, "i") || !strings.Contains(output.String(), "mark-42") {
				t.Errorf("cast frames %q, output %q", k, output.String())
			}
		})

		t.Run(mark+"/attach", func(t *testing.T) {
			cmd := kubectl("attach", "-i", "-n", "team-x", "shell", "-c", "main")
			stdin, err := cmd.StdinPipe()
			if err != nil {
				t.Fatal(err)
			}
			var out, errOut syncBuffer
			cmd.Stdout, cmd.Stderr = &out, &errOut
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			defer cmd.Process.Kill()
			// The container's sh runs what is typed; the attach may start
			// after the first line, so type until the answer comes.
			want := "attached-" + mark + "-23"
			natstest.CheckFor(t, time.Minute, 500*time.Millisecond, func() error {
				if strings.Contains(out.String(), want) {
					return nil
				}
				fmt.Fprintf(stdin, "echo attached-%s-$((20+3))\n", mark)
				return fmt.Errorf("no %q yet; stderr %q", want, errOut.String())
			})
			stdin.Close() // detaches; the container's sh keeps running
			if err := cmd.Wait(); err != nil {
				t.Fatalf("kubectl attach: %v: %s", err, errOut.String())
			}
			var s execSession
			natstest.CheckFor(t, time.Minute, 50*time.Millisecond, func() error {
				for _, e := range f.events(t) {
					if e.Event.Type == events.SessionStarted && e.Payload["kind"] == "attach" && e.Payload["client_protocol"] == mark {
						s = f.execSession(t, "create pods/attach shell -n team-x")
						if strings.Contains(s.streams["stdout"], want) && strings.Contains(s.streams["stdin"], "echo attached-"+mark) && s.end.Payload["exit_status"] == float64(0) {
							return nil
						}
						return fmt.Errorf("recorded stdin %q, stdout %q, end %v", s.streams["stdin"], s.streams["stdout"], s.end.Payload)
					}
				}
				return fmt.Errorf("no attach session over %s", mark)
			})
		})

		t.Run(mark+"/denied", func(t *testing.T) {
			_, errOut, code := run(t, "", "exec", "-n", "locked-a", "shell", "-c", "main", "--", "touch", "marker-"+mark)
			if code == 0 || !strings.Contains(errOut, "no shells in locked namespaces") {
				t.Fatalf("denied exec: code %d, stderr %q", code, errOut)
			}
			if _, err := os.Stat(locked.Path("marker-" + mark)); !errors.Is(err, os.ErrNotExist) {
				t.Fatalf("the denied exec reached the kubelet: %v", err)
			}
			f.waitFor(t, 1, request(events.CommandBlocked, map[string]string{"subresource": "exec", "namespace": "locked-a", "rule": "locked-shells", "statement": "touch marker-" + mark}))
		})
	}

	// Throughput of stdout through the gateway (recorded) against the API
	// server direct: a figure for the docs, not a check.
	t.Run("throughput", func(t *testing.T) {
		const size = 16 << 20
		for _, via := range []struct{ name, kubeconfig string }{{"direct", c.AdminKubeconfig}, {"gateway", alice}} {
			began := time.Now()
			cmd := c.KubectlCmd(ctx, via.kubeconfig, "exec", "-n", "team-x", "shell", "-c", "main", "--", "head", "-c", fmt.Sprint(size), "/dev/zero")
			var n countWriter
			var errOut bytes.Buffer
			cmd.Stdout, cmd.Stderr = &n, &errOut
			if err := cmd.Run(); err != nil || n != size {
				t.Fatalf("%s: %v, %d of %d bytes; kubectl's stderr: %q", via.name, err, n, size, errOut.String())
			}
			d := time.Since(began)
			t.Logf("exec stdout %s: %d MiB in %v, %.1f MiB/s", via.name, size>>20, d.Round(time.Millisecond), float64(size>>20)/d.Seconds())
		}
	})

	// Held: the exec runs once, after its approval.
	done := make(chan error, 1)
	go func() {
		_, err := c.Kubectl(ctx, alice, "exec", "-n", "prod-a", "shell", "-c", "main", "--", "sh", "-c", "echo ran >> held.txt")
		done <- err
	}()
	held := f.waitFor(t, 1, request(events.ApprovalRequested, map[string]string{}))
	if _, err := os.Stat(prod.Path("held.txt")); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("the held exec ran before its approval: %v", err)
	}
	if _, err := f.broker.Decide(ctx, held[0].Payload["approval_id"].(string), events.Actor{Issuer: "test", Subject: "bob", Kind: events.Human}, true, "ok"); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Fatalf("held exec after the grant: %v", err)
	}
	if got, _ := os.ReadFile(prod.Path("held.txt")); string(got) != "ran\n" {
		t.Fatalf("held.txt %q, want one run", got)
	}
	f.waitFor(t, 1, request(events.CommandExecuted, map[string]string{"subresource": "exec", "namespace": "prod-a", "rule": "prod-shells"}))

	stored := gatewaytest.BusBytes(t, f.js)
	var forms []string
	for _, v := range gatewaytest.Forms(card) {
		forms = append(forms, v, base64.StdEncoding.EncodeToString([]byte(v)))
	}
	gatewaytest.CheckAbsent(t, stored, forms...)
}

type countWriter int

func (c *countWriter) Write(b []byte) (int, error) {
	*c += countWriter(len(b))
	return len(b), nil
}

// kubectlPingPeriod is how often kubectl pings the server on an exec's
// connection (client-go: remotecommand's WebSocket heartbeat, and the
// SPDY round tripper's PingPeriod).
const kubectlPingPeriod = 5 * time.Second

// gatedWriter counts what kubectl writes to its stdout, reading slowly
// (a pause at each write, so the stream backs up into kubectl's and the
// gateway's socket buffers) until stopped, then not at all until gate
// is closed.
type gatedWriter struct {
	n       atomic.Int64
	stopped atomic.Bool
	gate    chan struct{}
}

func (g *gatedWriter) Write(b []byte) (int, error) {
	if g.stopped.Load() {
		<-g.gate
	} else {
		select {
		case <-g.gate:
		case <-time.After(20 * time.Millisecond):
		}
	}
	g.n.Add(int64(len(b)))
	return len(b), nil
}

func (g *gatedWriter) stop() { g.stopped.Store(true) }

// syncBuffer is a strings.Builder safe for a writer and a reader.
type syncBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
