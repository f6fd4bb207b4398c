package kubegateway

import (
	"archive/tar"
	"context"
	"errors"
	"fmt"
	"io"
	"path"
	"strings"
	"sync"

	"github.com/auditledger/auditledger/events"
	"github.com/auditledger/auditledger/services/gateway"
)

// maxArchiveBehind is how far the archive reader may fall behind the
// relay (bytes passed but not yet read) before it gives up: the relay
// never waits for it.
const maxArchiveBehind = 32 << 20

// archiveOf says whether an exec's command moves a tar archive over its
// standard streams, as kubectl cp's execs do: "read" for tar c…f - (the
// archive on stdout: files read from the pod), "write" for tar x…f -
// (the archive on stdin: files written to the pod), "" for any other
// command; dir is the -C directory of an extraction.
func archiveOf(argv []string) (op, dir string) {
	if len(argv) < 2 || path.Base(argv[0]) != "tar" {
		return "", ""
	}
	mode, file := "", ""
	for i := 1; i < len(argv); i++ {
		a := argv[i]
		switch {
		case a == "-C" && i+1 < len(argv):
			dir = argv[i+1]
			i++
		case strings.HasPrefix(a, "--"):
			// a long option (--no-same-owner …): none moves the archive
		case strings.HasPrefix(a, "-") || i == 1:
			// a cluster of short options; the first may lack its dash
			// (tar cf -), and f takes the next argument
			for _, c := range strings.TrimPrefix(a, "-") {
				switch c {
				case 'c', 'x':
					if mode != "" && mode != string(c) {
						return "", ""
					}
					mode = string(c)
				case 'f':
					if i+1 < len(argv) {
						file = argv[i+1]
						i++
					}
				case 'C':
					if i+1 < len(argv) {
						dir = argv[i+1]
						i++
					}
				}
			}
		}
	}
	if file != "-" {
		return "", ""
	}
	switch mode {
	case "c":
		return "read", ""
	case "x":
		return "write", dir
	}
	return "", ""
}

// archiveTap reads the tar archive an exec moves (archiveOf) as it
// passes, and records each entry as a file operation of the exec's
// session: a command.executed with kind cp-read/cp-write (regular files,
// with their size and keyed digest), cp-mkdir, cp-symlink, cp-link or
// cp-special. It sees a copy of what the relay passes: its Write never
// blocks and never fails, so the relay is neither held nor altered; the
// archive is read in a goroutine of its own, which gives up (and says so
// in session.ended) if it falls maxArchiveBehind behind.
type archiveTap struct {
	op, dir   string
	stream    string // the exec stream the archive passes on: stdin or stdout
	gs        *gateway.Session
	ctx       context.Context
	commandID string

	mu       sync.Mutex
	cond     *sync.Cond
	queue    [][]byte
	queued   int
	closed   bool // the stream ended
	finished bool // the reader stopped: what passes is no longer kept
	behind   bool

	done    chan struct{}
	files   int    // entries recorded
	problem string // why the archive was not read to its end
}

// newArchiveTap starts reading the archive of an exec running argv, or
// returns nil when the command moves none.
func newArchiveTap(ctx context.Context, gs *gateway.Session, argv []string, commandID string) *archiveTap {
	op, dir := archiveOf(argv)
	if op == "" {
		return nil
	}
	a := &archiveTap{op: op, dir: dir, stream: "stdout", gs: gs, ctx: context.WithoutCancel(ctx), commandID: commandID, done: make(chan struct{})}
	if op == "write" {
		a.stream = "stdin"
	}
	a.cond = sync.NewCond(&a.mu)
	go a.run()
	return a
}

// tap is w, and also the archive reader when the archive passes on
// stream. A nil a taps nothing.
func (a *archiveTap) tap(stream string, w io.Writer) io.Writer {
	if a == nil || stream != a.stream {
		return w
	}
	return io.MultiWriter(a, w)
}

// Write keeps a copy of b for the reader.
func (a *archiveTap) Write(b []byte) (int, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.finished || a.closed || len(b) == 0 {
		return len(b), nil
	}
	if a.queued+len(b) > maxArchiveBehind {
		a.behind, a.finished = true, true
		a.queue, a.queued = nil, 0
		a.cond.Broadcast()
		return len(b), nil
	}
	a.queue = append(a.queue, append([]byte(nil), b...))
	a.queued += len(b)
	a.cond.Signal()
	return len(b), nil
}

var errBehind = fmt.Errorf("the archive reader fell more than %d MiB behind the stream; entries after the last recorded one are not listed", maxArchiveBehind>>20)

// Read is the reader's side of the copy.
func (a *archiveTap) Read(p []byte) (int, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	for len(a.queue) == 0 && !a.closed && !a.behind {
		a.cond.Wait()
	}
	switch {
	case a.behind:
		return 0, errBehind
	case len(a.queue) == 0:
		return 0, io.EOF
	}
	n := copy(p, a.queue[0])
	if n == len(a.queue[0]) {
		a.queue[0] = nil
		a.queue = a.queue[1:]
	} else {
		a.queue[0] = a.queue[0][n:]
	}
	a.queued -= n
	return n, nil
}

// wait tells the reader the stream has ended and waits until it has
// recorded what it read. It returns the members session.ended gets:
// files (entries recorded) and, when the archive was not read to its
// end, archive_error.
func (a *archiveTap) wait() map[string]any {
	if a == nil {
		return nil
	}
	a.mu.Lock()
	a.closed = true
	a.cond.Broadcast()
	a.mu.Unlock()
	<-a.done
	m := map[string]any{"files": a.files}
	if a.problem != "" {
		m["archive_error"] = a.problem
	}
	return m
}

func (a *archiveTap) run() {
	defer close(a.done)
	defer func() {
		a.mu.Lock()
		a.finished, a.queue, a.queued = true, nil, 0
		a.mu.Unlock()
	}()
	tr := tar.NewReader(a)
	for {
		h, err := tr.Next()
		switch {
		case errors.Is(err, io.EOF):
			return // the archive's end, or the stream ended between entries
		case errors.Is(err, errBehind):
			a.problem = errBehind.Error()
			return
		case errors.Is(err, io.ErrUnexpectedEOF):
			a.problem = "the stream ended inside the archive"
			return
		case err != nil:
			a.problem = "not read as a tar archive: " + gateway.Clip(err.Error(), 256)
			return
		}
		kind, payload := a.entry(h)
		if kind == "read" || kind == "write" {
			sum, err := a.gs.KeyedSum(a.ctx, gateway.FileLabel)
			if err != nil {
				payload["hmac_omitted"] = "the tenant's search key could not be read"
			}
			n, err := io.Copy(writerFunc(func(b []byte) (int, error) { sum.Write(b); return len(b), nil }), tr)
			payload["bytes"] = n
			if d := sum.Digest(); d != "" {
				payload["hmac"] = d
			}
			if err != nil {
				payload["incomplete"] = true
				if errors.Is(err, errBehind) {
					a.problem = errBehind.Error()
				}
			}
		}
		a.gs.RecordAsync(a.ctx, events.CommandExecuted, payload)
		a.files++
		if payload["incomplete"] == true {
			if a.problem == "" {
				a.problem = "the stream ended inside the archive"
			}
			return
		}
	}
}

// entry is the payload of one archive entry's record, and its operation.
func (a *archiveTap) entry(h *tar.Header) (string, map[string]any) {
	op := a.op
	var to string
	switch h.Typeflag {
	case tar.TypeReg, tar.TypeRegA:
	case tar.TypeDir:
		op = "mkdir"
	case tar.TypeSymlink:
		op, to = "symlink", h.Linkname
	case tar.TypeLink:
		op, to = "link", h.Linkname
	default:
		op = "special"
	}
	name := gateway.Clip(h.Name, 4096)
	p := map[string]any{"protocol": "kubernetes", "kind": "cp-" + op, "operation": op, "path": name,
		"statement": "cp-" + op + " " + name, "command_id": a.commandID, "mode": fmt.Sprintf("%04o", h.Mode&0o7777)}
	if to != "" {
		p["to"] = gateway.Clip(to, 4096)
	}
	if a.dir != "" {
		p["directory"] = gateway.Clip(a.dir, 4096)
	}
	return op, p
}

// writerFunc is a function as an io.Writer.
type writerFunc func([]byte) (int, error)

func (f writerFunc) Write(b []byte) (int, error) { return f(b) }
