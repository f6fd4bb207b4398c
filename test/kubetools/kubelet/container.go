package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/creack/pty"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/cri-streaming/pkg/streaming/remotecommand"
	"k8s.io/klog/v2"
)

// container is a container's main process: started with the pod, its
// standard input a pipe (or a pseudo-terminal when the spec asks for a
// TTY) that the kubelet keeps open, its output written to the container's
// log and to every attached client.
type container struct {
	spec    corev1.Container
	logPath string
	cmd     *exec.Cmd
	stdin   io.WriteCloser
	tty     *os.File // the pseudo-terminal's controlling side, for a TTY container
	log     *logWriter

	mu       sync.Mutex
	attached map[*attachment]struct{}
	closed   bool // stdin closed (StdinOnce)
	done     chan struct{}
}

type attachment struct {
	stdout, stderr io.Writer
	failed         chan struct{}
	once           sync.Once
}

func (a *attachment) fail() { a.once.Do(func() { close(a.failed) }) }

// containerEnv is the environment of a container's processes: the
// kubelet's PATH, the pod's directory as HOME, and the spec's literal
// variables.
func containerEnv(p *pod, spec corev1.Container, tty bool) []string {
	env := []string{"PATH=" + os.Getenv("PATH"), "HOME=" + p.dir, "HOSTNAME=" + p.name, "PWD=" + p.dir}
	if tty {
		env = append(env, "TERM=xterm")
	}
	for _, e := range spec.Env {
		if e.ValueFrom == nil {
			env = append(env, e.Name+"="+e.Value)
		}
	}
	return env
}

func startContainer(p *pod, spec corev1.Container, logPath string) (*container, error) {
	argv := append(append([]string{}, spec.Command...), spec.Args...)
	if len(argv) == 0 {
		argv = []string{"sh"}
	}
	lw, err := openLog(logPath)
	if err != nil {
		return nil, err
	}
	c := &container{
		spec: spec, logPath: logPath, log: lw,
		attached: map[*attachment]struct{}{},
		done:     make(chan struct{}),
	}
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Dir = p.dir
	cmd.Env = containerEnv(p, spec, spec.TTY)
	var pumps sync.WaitGroup
	if spec.TTY {
		cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true, Setctty: true, Pdeathsig: syscall.SIGKILL}
		f, err := pty.StartWithAttrs(cmd, &pty.Winsize{Rows: 24, Cols: 80}, cmd.SysProcAttr)
		if err != nil {
			lw.Close()
			return nil, err
		}
		c.tty, c.stdin = f, f
		pumps.Add(1)
		go func() { defer pumps.Done(); c.pump(f, "stdout") }()
	} else {
		cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
		in, err := cmd.StdinPipe()
		if err != nil {
			lw.Close()
			return nil, err
		}
		out, err := cmd.StdoutPipe()
		if err != nil {
			lw.Close()
			return nil, err
		}
		errOut, err := cmd.StderrPipe()
		if err != nil {
			lw.Close()
			return nil, err
		}
		if err := cmd.Start(); err != nil {
			lw.Close()
			return nil, err
		}
		c.stdin = in
		pumps.Add(2)
		go func() { defer pumps.Done(); c.pump(out, "stdout") }()
		go func() { defer pumps.Done(); c.pump(errOut, "stderr") }()
	}
	c.cmd = cmd
	go func() {
		// Output first: Wait closes the pipes, and what the process wrote
		// before it exited is still to be read.
		pumps.Wait()
		err := cmd.Wait()
		klog.Infof("kubelet: container %s of pod %s/%s exited: %v", spec.Name, p.namespace, p.name, err)
		if c.tty != nil {
			c.tty.Close()
		}
		lw.Close()
		close(c.done)
	}()
	return c, nil
}

// pump copies one output stream of the main process to the log and to the
// attached clients. A client whose stream fails is detached.
func (c *container) pump(r io.Reader, stream string) {
	buf := make([]byte, 32*1024)
	for {
		n, err := r.Read(buf)
		if n > 0 {
			chunk := buf[:n]
			c.log.Write(stream, chunk)
			c.mu.Lock()
			for a := range c.attached {
				w := a.stdout
				if stream == "stderr" {
					w = a.stderr
				}
				if w == nil {
					continue
				}
				if _, err := w.Write(chunk); err != nil {
					delete(c.attached, a)
					a.fail()
				}
			}
			c.mu.Unlock()
		}
		if err != nil {
			// EIO is how a pseudo-terminal ends once the process is gone.
			return
		}
	}
}

func (c *container) stop() {
	if c.cmd != nil && c.cmd.Process != nil {
		// The process group (or session, for a TTY): what the container ran.
		syscall.Kill(-c.cmd.Process.Pid, syscall.SIGKILL)
	}
	select {
	case <-c.done:
	case <-time.After(5 * time.Second):
	}
}

// attach connects a client to the main process: its input to the
// process's standard input (which stays open when the client leaves,
// unless the spec says StdinOnce), the process's output to the client,
// until the client leaves or the process exits.
func (c *container) attach(ctx context.Context, in io.Reader, out, errw io.WriteCloser, tty bool, resize <-chan remotecommand.TerminalSize) error {
	a := &attachment{failed: make(chan struct{})}
	if out != nil {
		a.stdout = out
	}
	if errw != nil && !c.spec.TTY {
		a.stderr = errw
	}
	select {
	case <-c.done:
		return fmt.Errorf("container %s has exited", c.spec.Name)
	default:
	}
	c.mu.Lock()
	c.attached[a] = struct{}{}
	c.mu.Unlock()
	defer func() {
		c.mu.Lock()
		delete(c.attached, a)
		c.mu.Unlock()
	}()
	if resize != nil {
		go func() {
			for sz := range resize {
				if c.tty != nil && tty {
					pty.Setsize(c.tty, &pty.Winsize{Rows: sz.Height, Cols: sz.Width})
				}
			}
		}()
	}
	stdinDone := make(chan struct{})
	if in != nil && c.spec.Stdin {
		go func() {
			defer close(stdinDone)
			if _, err := io.Copy(c.stdin, in); err != nil && !errors.Is(err, io.EOF) {
				return
			}
		}()
	} else {
		stdinDone = nil // never ready
	}
	select {
	case <-ctx.Done():
	case <-c.done:
	case <-a.failed:
	case <-stdinDone:
		if c.spec.StdinOnce && !c.spec.TTY {
			// As a container runtime does: the first client's end of input is
			// the container's.
			c.mu.Lock()
			if !c.closed {
				c.closed = true
				c.stdin.Close()
			}
			c.mu.Unlock()
			select {
			case <-c.done:
			case <-ctx.Done():
			case <-a.failed:
			}
		}
	}
	return nil
}

// logWriter appends a container's output to its log in the CRI format,
// "TIMESTAMP STREAM F TEXT" for a whole line and "... P ..." for a part of
// one, a write(2) per line so that lines appended by a test (O_APPEND as
// well) are not torn.
type logWriter struct {
	mu      sync.Mutex
	f       *os.File
	partial map[string][]byte
}

func openLog(path string) (*logWriter, error) {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		return nil, err
	}
	return &logWriter{f: f, partial: map[string][]byte{}}, nil
}

func (l *logWriter) Write(stream string, b []byte) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.f == nil {
		return
	}
	data := append(l.partial[stream], b...)
	for {
		i := bytes.IndexByte(data, '\n')
		if i < 0 {
			break
		}
		l.f.WriteString(criLine(time.Now(), stream, "F", strings.TrimSuffix(string(data[:i]), "\r")))
		data = data[i+1:]
	}
	if len(data) > 16*1024 {
		l.f.WriteString(criLine(time.Now(), stream, "P", string(data)))
		data = nil
	}
	l.partial[stream] = append([]byte(nil), data...)
}

func (l *logWriter) Close() {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.f == nil {
		return
	}
	for stream, data := range l.partial {
		if len(data) > 0 {
			l.f.WriteString(criLine(time.Now(), stream, "F", string(data)))
		}
	}
	l.f.Close()
	l.f = nil
}

func criLine(t time.Time, stream, tag, text string) string {
	return t.UTC().Format(time.RFC3339Nano) + " " + stream + " " + tag + " " + text + "\n"
}
