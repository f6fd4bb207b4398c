package sshproxy

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pkg/sftp"
	"golang.org/x/crypto/ssh"

	"github.com/auditledger/auditledger/events"
	"github.com/auditledger/auditledger/services/approvals"
	"github.com/auditledger/auditledger/services/gateway"
)

// The SFTP subsystem is served by the gateway itself and relayed, one
// file operation at a time, to the target's: so each operation is judged
// (as a call named sftp-read, sftp-write, sftp-remove, …, with the path
// as its argument) and recorded with the path, the bytes and the keyed
// digest of the contents before the target acts on it. A file is staged
// in a temporary file on the gateway: a download is fetched whole and
// digested before the client gets its first byte, an upload is digested
// and recorded before the target gets its first byte.

// sftpFS implements the request server's handlers over an SFTP client to
// the target.
type sftpFS struct {
	ch  *channel
	ctx context.Context
	cl  *sftp.Client
	v   view
	ops atomic.Int64

	mu      sync.Mutex
	pending map[string]*upload // uploads staged, not yet on the target
	in      atomic.Int64       // bytes uploaded
	out     atomic.Int64       // bytes downloaded
}

func (ch *channel) sftp(ctx context.Context, began time.Time) {
	defer close(ch.relayDone)
	s := ch.s
	end := map[string]any{}
	status := uint32(1)
	defer func() {
		// The gateway is the client's SFTP server: the exit status is its own.
		ch.cch.SendRequest("exit-status", false, ssh.Marshal(struct{ Status uint32 }{status}))
		ch.cch.Close()
		end["duration_ms"], end["exit_status"] = time.Since(began).Milliseconds(), status
		if r := ch.c.closeReason(); r != "" {
			end["reason"] = r
		}
		s.End(ctx, end)
	}()
	cl, err := sftp.NewClientPipe(ch.tch, ch.tch)
	if err != nil {
		end["reason"], end["detail"] = "target sftp failed", err.Error()
		return
	}
	defer cl.Close()
	home, err := cl.Getwd()
	if err != nil {
		home = "/"
	}
	c := ch.c
	fs := &sftpFS{ch: ch, ctx: ctx, cl: cl, v: c.p.pol.For(c.id.Subject, c.id.Groups, c.target.Name)}
	h := sftp.Handlers{FileGet: fs, FilePut: fs, FileCmd: fs, FileList: fs}
	srv := sftp.NewRequestServer(ch.cch, h, sftp.WithStartDirectory(home))
	err = srv.Serve()
	end["operations"], end["bytes_in"], end["bytes_out"] = fs.ops.Load(), fs.in.Load(), fs.out.Load()
	if err != nil && !errors.Is(err, io.EOF) {
		end["detail"] = err.Error()
	} else {
		status = 0
	}
}

// judge decides a file operation and records it; an error refuses it
// (its text reaches the client).
func (f *sftpFS) judge(op, path string, payload map[string]any) error {
	s := f.ch.s
	f.ch.c.touch()
	name := "sftp-" + op
	c := call{name: name, args: []string{path}, text: name + " " + path}
	recPath, found := scrubPath(path)
	payload["protocol"], payload["kind"], payload["operation"], payload["path"] = "sftp", name, op, recPath
	payload["statement"] = name + " " + recPath
	gateway.AddRedactions(payload, gateway.Found("/path", found)...)
	gateway.AddRedactions(payload, gateway.Found("/statement", found)...)
	if to, ok := payload["to"].(string); ok {
		recTo, found := scrubPath(to)
		payload["to"] = recTo
		gateway.AddRedactions(payload, gateway.Found("/to", found)...)
	}
	f.ops.Add(1)
	blocked := func(rule, reason string) error {
		payload["reason"] = reason
		if rule != "" {
			payload["rule"] = rule
		}
		s.RecordOrLog(f.ctx, events.CommandBlocked, payload)
		return fmt.Errorf("auditledger: refused: %s: %w", reason, sftp.ErrSSHFxPermissionDenied)
	}
	for i := range f.v.deny {
		if f.v.deny[i].matches(c) {
			return blocked(f.v.deny[i].ID, f.v.deny[i].Reason)
		}
	}
	for i := range f.v.approve {
		r := &f.v.approve[i]
		if !r.matches(c) {
			continue
		}
		ok, why, err := s.Hold(f.ctx, gateway.Hold{Rule: r.ID, Reason: r.Reason, Timeout: r.Timeout, Statement: name + " " + recPath,
			Redacted: gateway.Found("/statement", found),
			Notify:   func(*approvals.Request) error { return nil }})
		if err != nil {
			return blocked(r.ID, "not held for approval: "+err.Error())
		}
		if !ok {
			return blocked(r.ID, why)
		}
		payload["rule"] = r.ID
		break
	}
	if _, err := s.Record(f.ctx, events.CommandExecuted, payload); err != nil {
		return errors.New("auditledger: the audit ledger did not store the record")
	}
	return nil
}

// staged is a temporary file the gateway holds a transfer in.
func staged() (*os.File, error) {
	f, err := os.CreateTemp("", "auditledger-sftp-*")
	if err != nil {
		return nil, err
	}
	os.Remove(f.Name()) // gone with its last descriptor
	return f, nil
}

// keyedSum starts the keyed digest of a file's contents; without the
// tenant's key the operation is recorded with its size only, and that is
// logged.
func (f *sftpFS) keyedSum() *gateway.KeyedSum {
	sum, err := f.ch.s.KeyedSum(f.ctx, FileLabel)
	if err != nil {
		f.ch.c.p.log.Warn("no keyed digest of a transferred file: the tenant's key is unavailable", "session_id", f.ch.s.ID(), "err", err)
	}
	return sum
}

// Fileread fetches the file whole, digests it, records the read and
// serves it.
func (f *sftpFS) Fileread(r *sftp.Request) (io.ReaderAt, error) {
	if err := f.denied("read", r.Filepath); err != nil {
		return nil, err
	}
	src, err := f.cl.Open(r.Filepath)
	if err != nil {
		return nil, err
	}
	defer src.Close()
	tmp, err := staged()
	if err != nil {
		return nil, err
	}
	sum := f.keyedSum()
	n, err := io.Copy(io.MultiWriter(tmp, writerFunc(sum.Write)), src)
	if err != nil {
		tmp.Close()
		return nil, err
	}
	payload := map[string]any{"bytes": n}
	if d := sum.Digest(); d != "" {
		payload["hmac"] = d
	}
	if err := f.judge("read", r.Filepath, payload); err != nil {
		tmp.Close()
		return nil, err
	}
	f.out.Add(n)
	return tmp, nil // the request server closes it
}

// upload is a file being written: staged, then recorded and sent to the
// target when the client closes it.
type upload struct {
	f     *sftpFS
	path  string
	flags int
	tmp   *os.File
	once  sync.Once
	err   error

	mu    sync.Mutex
	attrs []*sftp.Request // set-stat requests made before it reached the target
}

func (u *upload) WriteAt(b []byte, off int64) (int, error) {
	u.f.ch.c.touch()
	return u.tmp.WriteAt(b, off)
}

func (u *upload) Close() error {
	u.once.Do(func() {
		u.err = u.send()
		u.f.mu.Lock()
		if u.f.pending[u.path] == u {
			delete(u.f.pending, u.path)
		}
		u.f.mu.Unlock()
		u.mu.Lock()
		attrs := u.attrs
		u.mu.Unlock()
		for _, r := range attrs {
			if u.err == nil {
				u.err = u.f.setstat(r)
			}
		}
	})
	return u.err
}

func (u *upload) send() error {
	defer u.tmp.Close()
	f := u.f
	size, err := u.tmp.Seek(0, io.SeekEnd)
	if err != nil {
		return err
	}
	sum := f.keyedSum()
	if _, err := io.Copy(writerFunc(sum.Write), io.NewSectionReader(u.tmp, 0, size)); err != nil {
		return err
	}
	payload := map[string]any{"bytes": size}
	if d := sum.Digest(); d != "" {
		payload["hmac"] = d
	}
	if err := f.judge("write", u.path, payload); err != nil {
		return err
	}
	dst, err := f.cl.OpenFile(u.path, u.flags)
	if err != nil {
		return err
	}
	// Many writes in flight, not one round trip per 32 KiB packet (the
	// staged file is whole, so a failed write fails the upload) — except
	// in append mode, where the target ignores offsets and writes must
	// arrive in order.
	src := io.NewSectionReader(u.tmp, 0, size)
	if u.flags&os.O_APPEND != 0 {
		_, err = io.Copy(dst, src)
	} else {
		_, err = dst.ReadFromWithConcurrency(src, 0)
	}
	if err != nil {
		dst.Close()
		return err
	}
	f.in.Add(size)
	return dst.Close()
}

// denied refuses, and records, an operation a deny rule matches by its
// path alone, before anything is staged.
func (f *sftpFS) denied(op, path string) error {
	name := "sftp-" + op
	c := call{name: name, args: []string{path}, text: name + " " + path}
	for i := range f.v.deny {
		if f.v.deny[i].matches(c) {
			f.ops.Add(1)
			recPath, found := scrubPath(path)
			payload := map[string]any{"protocol": "sftp", "kind": name, "operation": op, "path": recPath,
				"statement": name + " " + recPath, "rule": f.v.deny[i].ID, "reason": f.v.deny[i].Reason}
			gateway.AddRedactions(payload, gateway.Found("/path", found)...)
			gateway.AddRedactions(payload, gateway.Found("/statement", found)...)
			f.ch.s.RecordOrLog(f.ctx, events.CommandBlocked, payload)
			return fmt.Errorf("auditledger: refused: %s: %w", f.v.deny[i].Reason, sftp.ErrSSHFxPermissionDenied)
		}
	}
	return nil
}

// Filewrite stages an upload.
func (f *sftpFS) Filewrite(r *sftp.Request) (io.WriterAt, error) {
	if err := f.denied("write", r.Filepath); err != nil {
		return nil, err
	}
	flags := os.O_WRONLY | os.O_CREATE | os.O_TRUNC
	pf := r.Pflags()
	if pf.Append {
		flags = os.O_WRONLY | os.O_CREATE | os.O_APPEND
	}
	if pf.Excl {
		flags |= os.O_EXCL
	}
	tmp, err := staged()
	if err != nil {
		return nil, err
	}
	u := &upload{f: f, path: r.Filepath, flags: flags, tmp: tmp}
	f.mu.Lock()
	if f.pending == nil {
		f.pending = map[string]*upload{}
	}
	f.pending[u.path] = u
	f.mu.Unlock()
	return u, nil
}

// Filecmd judges, records and performs a change to the target's files.
func (f *sftpFS) Filecmd(r *sftp.Request) error {
	switch r.Method {
	case "Setstat":
		// A file being uploaded is on the target only once closed.
		f.mu.Lock()
		u := f.pending[r.Filepath]
		f.mu.Unlock()
		if u != nil {
			u.mu.Lock()
			u.attrs = append(u.attrs, r)
			u.mu.Unlock()
			return nil
		}
		return f.setstat(r)
	}
	return f.filecmd(r)
}

// setstat sets the modes and times scp and sftp set after a transfer.
func (f *sftpFS) setstat(r *sftp.Request) error {
	attrs := r.Attributes()
	fl := r.AttrFlags()
	if fl.Permissions {
		if err := f.cl.Chmod(r.Filepath, attrs.FileMode()); err != nil {
			return err
		}
	}
	if fl.Acmodtime {
		if err := f.cl.Chtimes(r.Filepath, attrs.AccessTime(), attrs.ModTime()); err != nil {
			return err
		}
	}
	if fl.Size {
		return f.cl.Truncate(r.Filepath, int64(attrs.Size))
	}
	return nil
}

// filecmd judges, records and performs a change to the target's files.
func (f *sftpFS) filecmd(r *sftp.Request) error {
	switch r.Method {
	case "Rename":
		if err := f.judge("rename", r.Filepath, map[string]any{"to": r.Target}); err != nil {
			return err
		}
		return f.cl.Rename(r.Filepath, r.Target)
	case "Rmdir":
		if err := f.judge("rmdir", r.Filepath, map[string]any{}); err != nil {
			return err
		}
		return f.cl.RemoveDirectory(r.Filepath)
	case "Remove":
		if err := f.judge("remove", r.Filepath, map[string]any{}); err != nil {
			return err
		}
		return f.cl.Remove(r.Filepath)
	case "Mkdir":
		if err := f.judge("mkdir", r.Filepath, map[string]any{}); err != nil {
			return err
		}
		return f.cl.Mkdir(r.Filepath)
	case "Symlink":
		if err := f.judge("symlink", r.Filepath, map[string]any{"to": r.Target}); err != nil {
			return err
		}
		return f.cl.Symlink(r.Target, r.Filepath)
	case "Link":
		if err := f.judge("link", r.Filepath, map[string]any{"to": r.Target}); err != nil {
			return err
		}
		return f.cl.Link(r.Target, r.Filepath)
	}
	return sftp.ErrSSHFxOpUnsupported
}

// PosixRename is Rename that replaces the target.
func (f *sftpFS) PosixRename(r *sftp.Request) error {
	if err := f.judge("rename", r.Filepath, map[string]any{"to": r.Target}); err != nil {
		return err
	}
	return f.cl.PosixRename(r.Filepath, r.Target)
}

type listing []os.FileInfo

func (l listing) ListAt(dst []os.FileInfo, off int64) (int, error) {
	if off >= int64(len(l)) {
		return 0, io.EOF
	}
	n := copy(dst, l[off:])
	if n < len(dst) {
		return n, io.EOF
	}
	return n, nil
}

// Filelist lists, stats and reads links on the target; these are not
// recorded (they change nothing and read no contents).
func (f *sftpFS) Filelist(r *sftp.Request) (sftp.ListerAt, error) {
	switch r.Method {
	case "List":
		fis, err := f.cl.ReadDir(r.Filepath)
		return listing(fis), err
	case "Stat":
		fi, err := f.cl.Stat(r.Filepath)
		if err != nil {
			return nil, err
		}
		return listing{fi}, nil
	}
	return nil, sftp.ErrSSHFxOpUnsupported
}

// Lstat stats without following a link.
func (f *sftpFS) Lstat(r *sftp.Request) (sftp.ListerAt, error) {
	fi, err := f.cl.Lstat(r.Filepath)
	if err != nil {
		return nil, err
	}
	return listing{fi}, nil
}

// RealPath asks the target, which resolves links.
func (f *sftpFS) RealPath(p string) (string, error) { return f.cl.RealPath(p) }

// Readlink reads a link on the target.
func (f *sftpFS) Readlink(p string) (string, error) { return f.cl.ReadLink(p) }
