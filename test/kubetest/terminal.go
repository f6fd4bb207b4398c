package kubetest

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"

	"golang.org/x/sys/unix"
)

// Terminal is a pseudo-terminal to run a client in as a person would
// (kubectl exec -it, attach -it): the client sees a terminal on its
// standard streams, puts it in raw mode and sends its size; the test types
// on the other side and reads what the client printed.
type Terminal struct {
	master, tty *os.File

	mu   sync.Mutex
	out  strings.Builder
	more chan struct{} // closed and replaced when output arrives
	eof  bool
}

// OpenTerminal opens a pseudo-terminal of rows by cols.
func OpenTerminal(rows, cols int) (*Terminal, error) {
	master, err := os.OpenFile("/dev/ptmx", os.O_RDWR|unix.O_NOCTTY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("kubetest: open /dev/ptmx: %v", err)
	}
	fd := int(master.Fd())
	if err := unix.IoctlSetPointerInt(fd, unix.TIOCSPTLCK, 0); err != nil {
		master.Close()
		return nil, fmt.Errorf("kubetest: unlock pseudo-terminal: %v", err)
	}
	n, err := unix.IoctlGetInt(fd, unix.TIOCGPTN)
	if err != nil {
		master.Close()
		return nil, fmt.Errorf("kubetest: pseudo-terminal number: %v", err)
	}
	tty, err := os.OpenFile(fmt.Sprintf("/dev/pts/%d", n), os.O_RDWR|unix.O_NOCTTY, 0)
	if err != nil {
		master.Close()
		return nil, fmt.Errorf("kubetest: open /dev/pts/%d: %v", n, err)
	}
	t := &Terminal{master: master, tty: tty, more: make(chan struct{})}
	if err := t.Resize(rows, cols); err != nil {
		t.Close()
		return nil, err
	}
	go t.read()
	return t, nil
}

func (t *Terminal) read() {
	buf := make([]byte, 4096)
	for {
		n, err := t.master.Read(buf)
		t.mu.Lock()
		t.out.Write(buf[:n])
		if err != nil {
			t.eof = true
		}
		close(t.more)
		t.more = make(chan struct{})
		t.mu.Unlock()
		if err != nil {
			return
		}
	}
}

// Start starts cmd with the terminal as its standard streams and
// controlling terminal, in a session of its own.
func (t *Terminal) Start(cmd *exec.Cmd) error {
	cmd.Stdin, cmd.Stdout, cmd.Stderr = t.tty, t.tty, t.tty
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true, Setctty: true, Ctty: 0}
	return cmd.Start()
}

// Resize sets the terminal's size; the client in it gets SIGWINCH.
func (t *Terminal) Resize(rows, cols int) error {
	if err := unix.IoctlSetWinsize(int(t.tty.Fd()), unix.TIOCSWINSZ, &unix.Winsize{Row: uint16(rows), Col: uint16(cols)}); err != nil {
		return fmt.Errorf("kubetest: resize terminal: %v", err)
	}
	return nil
}

// Type writes keystrokes (a line ends with "\r", as the Enter key sends).
func (t *Terminal) Type(s string) error {
	_, err := t.master.WriteString(s)
	return err
}

// Output is everything the client printed so far.
func (t *Terminal) Output() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.out.String()
}

// WaitFor waits until the output, from byte offset from on, contains
// want, and returns the offset just past it.
func (t *Terminal) WaitFor(ctx context.Context, from int, want string) (int, error) {
	for {
		t.mu.Lock()
		s, more, eof := t.out.String(), t.more, t.eof
		t.mu.Unlock()
		if from > len(s) {
			from = len(s)
		}
		if i := strings.Index(s[from:], want); i >= 0 {
			return from + i + len(want), nil
		}
		if eof {
			return 0, fmt.Errorf("terminal closed without %q; it showed %q", want, s[from:])
		}
		select {
		case <-more:
		case <-ctx.Done():
			return 0, fmt.Errorf("no %q on the terminal: %v; it showed %q", want, ctx.Err(), s[from:])
		}
	}
}

// Close closes both sides.
func (t *Terminal) Close() {
	t.tty.Close()
	t.master.Close()
}
