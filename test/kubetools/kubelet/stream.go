package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/creack/pty"
	"k8s.io/cri-streaming/pkg/streaming/portforward"
	"k8s.io/cri-streaming/pkg/streaming/remotecommand"
	utilexec "k8s.io/utils/exec"
)

// The kubelet's own values: a streaming connection idle for this long is
// closed (the kubelet's --streaming-connection-idle-timeout default).
const idleTimeout = 4 * time.Hour

func (k *kubelet) routes() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("/exec/{ns}/{pod}/{container}", k.serveExec)
	mux.HandleFunc("/exec/{ns}/{pod}/{uid}/{container}", k.serveExec)
	mux.HandleFunc("/attach/{ns}/{pod}/{container}", k.serveAttach)
	mux.HandleFunc("/attach/{ns}/{pod}/{uid}/{container}", k.serveAttach)
	mux.HandleFunc("/portForward/{ns}/{pod}", k.servePortForward)
	mux.HandleFunc("/portForward/{ns}/{pod}/{uid}", k.servePortForward)
	mux.HandleFunc("GET /containerLogs/{ns}/{pod}/{container}", k.serveLogs)
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok") })
	return mux
}

// target is the pod (and container) a streaming request names.
type target struct {
	k         *kubelet
	pod       *pod
	container *container
}

func (k *kubelet) target(w http.ResponseWriter, r *http.Request, withContainer bool) (*target, bool) {
	cname := ""
	if withContainer {
		cname = r.PathValue("container")
	}
	p, c, err := k.lookup(r.PathValue("ns"), r.PathValue("pod"), r.PathValue("uid"), cname)
	if err != nil {
		http.Error(w, err.Error(), http.StatusNotFound)
		return nil, false
	}
	return &target{k: k, pod: p, container: c}, true
}

func (k *kubelet) serveExec(w http.ResponseWriter, r *http.Request) {
	t, ok := k.target(w, r, true)
	if !ok {
		return
	}
	opts, err := remotecommand.NewOptions(r)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	cmd := r.URL.Query()["command"]
	if len(cmd) == 0 {
		http.Error(w, "exec: no command", http.StatusBadRequest)
		return
	}
	remotecommand.ServeExec(w, r, t, t.pod.name, string(t.pod.uid), t.container.spec.Name, cmd, opts,
		idleTimeout, remotecommand.DefaultStreamCreationTimeout, remotecommand.SupportedStreamingProtocols)
}

func (k *kubelet) serveAttach(w http.ResponseWriter, r *http.Request) {
	t, ok := k.target(w, r, true)
	if !ok {
		return
	}
	opts, err := remotecommand.NewOptions(r)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	remotecommand.ServeAttach(w, r, t, t.pod.name, string(t.pod.uid), t.container.spec.Name, opts,
		idleTimeout, remotecommand.DefaultStreamCreationTimeout, remotecommand.SupportedStreamingProtocols)
}

func (k *kubelet) servePortForward(w http.ResponseWriter, r *http.Request) {
	t, ok := k.target(w, r, false)
	if !ok {
		return
	}
	opts, err := portforward.NewV4Options(r)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	portforward.ServePortForward(w, r, t, t.pod.name, string(t.pod.uid), opts,
		idleTimeout, remotecommand.DefaultStreamCreationTimeout, portforward.SupportedProtocols)
}

// AttachContainer implements remotecommand.Attacher.
func (t *target) AttachContainer(ctx context.Context, _, _, _ string, in io.Reader, out, errw io.WriteCloser, tty bool, resize <-chan remotecommand.TerminalSize) error {
	return t.container.attach(ctx, in, out, errw, tty, resize)
}

// PortForward implements portforward.PortForwarder: the pod's network is
// this host's loopback.
func (t *target) PortForward(ctx context.Context, _, _ string, port int32, stream io.ReadWriteCloser) error {
	if port <= 0 || port > 65535 {
		return fmt.Errorf("invalid port %d", port)
	}
	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", net.JoinHostPort(t.k.address, strconv.Itoa(int(port))))
	if err != nil {
		return fmt.Errorf("pod %s/%s: port %d: %v", t.pod.namespace, t.pod.name, port, err)
	}
	defer conn.Close()
	fromClient := make(chan struct{})
	go func() {
		io.Copy(conn, stream)
		if tc, ok := conn.(*net.TCPConn); ok {
			tc.CloseWrite()
		}
		close(fromClient)
	}()
	_, err = io.Copy(stream, conn)
	if err != nil && !errors.Is(err, net.ErrClosed) {
		return fmt.Errorf("pod %s/%s: port %d: %v", t.pod.namespace, t.pod.name, port, err)
	}
	return nil
}

// execProcess is a running exec, killed when the kubelet stops.
type execProcess struct {
	cmd  *exec.Cmd
	done chan struct{}
}

func (e *execProcess) kill() {
	if e.cmd.Process != nil {
		syscall.Kill(-e.cmd.Process.Pid, syscall.SIGKILL)
	}
}

// ExecInContainer implements remotecommand.Executor: the command runs on
// this host in the pod's directory, under a pseudo-terminal when tty is
// set. A non-zero exit comes back as an ExitError, which the streaming
// server sends on the error channel (kubectl exits with it).
func (t *target) ExecInContainer(ctx context.Context, _, _, _ string, argv []string, in io.Reader, out, errw io.WriteCloser, tty bool, resize <-chan remotecommand.TerminalSize, _ time.Duration) error {
	if len(argv) == 0 || argv[0] == "" {
		return errors.New("no command")
	}
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Dir = t.pod.dir
	cmd.Env = containerEnv(t.pod, t.container.spec, tty)
	e := &execProcess{cmd: cmd, done: make(chan struct{})}
	defer close(e.done)

	var wait func() error
	if tty {
		// The first resize is the client's terminal size; a shell started
		// before it would lay out for 80x24.
		size := &pty.Winsize{Rows: 24, Cols: 80}
		if resize != nil {
			select {
			case sz, ok := <-resize:
				if ok {
					size = &pty.Winsize{Rows: sz.Height, Cols: sz.Width}
				}
			case <-time.After(5 * time.Second):
			case <-ctx.Done():
				return ctx.Err()
			}
		}
		attrs := &syscall.SysProcAttr{Setsid: true, Setctty: true, Pdeathsig: syscall.SIGKILL}
		f, err := pty.StartWithAttrs(cmd, size, attrs)
		if err != nil {
			return err
		}
		defer f.Close()
		if !t.k.track(e) {
			e.kill()
		}
		defer t.k.untrack(e)
		if resize != nil {
			go func() {
				for sz := range resize {
					pty.Setsize(f, &pty.Winsize{Rows: sz.Height, Cols: sz.Width})
				}
			}()
		}
		if in != nil {
			go io.Copy(f, in)
		}
		copied := make(chan struct{})
		go func() {
			defer close(copied)
			if out != nil {
				io.Copy(out, f)
			} else {
				io.Copy(io.Discard, f)
			}
		}()
		wait = func() error {
			err := cmd.Wait()
			// The terminal's output ends (EIO) once no process holds it;
			// a background child that keeps it open is not waited for.
			select {
			case <-copied:
			case <-time.After(2 * time.Second):
			}
			return err
		}
	} else {
		cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
		if out != nil {
			cmd.Stdout = out
		}
		if errw != nil {
			cmd.Stderr = errw
		}
		cmd.WaitDelay = 2 * time.Second
		var stdin io.WriteCloser
		if in != nil {
			var err error
			if stdin, err = cmd.StdinPipe(); err != nil {
				return err
			}
		}
		if err := cmd.Start(); err != nil {
			return err
		}
		if !t.k.track(e) {
			e.kill()
		}
		defer t.k.untrack(e)
		if stdin != nil {
			// Not waited for: a command may exit before its client closes
			// its input.
			go func() { io.Copy(stdin, in); stdin.Close() }()
		}
		wait = cmd.Wait
	}
	stopKill := make(chan struct{})
	go func() {
		select {
		case <-ctx.Done():
			e.kill()
		case <-stopKill:
		}
	}()
	err := wait()
	close(stopKill)
	var exitErr *exec.ExitError
	if errors.As(err, &exitErr) {
		code := exitErr.ExitCode()
		if ws, ok := exitErr.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			code = 128 + int(ws.Signal())
		}
		return utilexec.CodeExitError{Err: fmt.Errorf("%s: %v", strings.Join(argv, " "), err), Code: code}
	}
	return err
}

func (k *kubelet) track(e *execProcess) bool {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.execs == nil {
		return false
	}
	k.execs[e] = struct{}{}
	return true
}

func (k *kubelet) untrack(e *execProcess) {
	k.mu.Lock()
	defer k.mu.Unlock()
	delete(k.execs, e)
}
