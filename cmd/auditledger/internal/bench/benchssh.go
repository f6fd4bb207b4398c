package bench

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/spf13/cobra"
	"golang.org/x/crypto/ssh"

	"github.com/auditledger/auditledger/cmd/auditledger/internal/cli"

	"github.com/auditledger/auditledger/events"
	"github.com/auditledger/auditledger/internal/devsshd"
	"github.com/auditledger/auditledger/ledger/bus/emitter"
	"github.com/auditledger/auditledger/ledger/piikeys"
	"github.com/auditledger/auditledger/services/sshproxy"
)

// SSH is `auditledger bench ssh`: bulk output and keystroke echo through
// the SSH gateway against the same sshd reached directly, with every
// event stored by an embedded bus and sealed by the ledger writer.
func SSH(c *cobra.Command) cli.Run {
	fs := cli.Describe(c, "bench ssh [--bytes N] [--sessions N] [--keystrokes N] [--pace D] [--sync always|interval]",
		"Starts an embedded NATS server, the ledger writer, a loopback sshd (Debian's\nopenssh-server) and the SSH gateway in front of it, then measures, directly\nand through the gateway: the throughput of the stock ssh client running\ncat of a file of --bytes of text (random base64 lines) on the target; and the time a\nkeystroke takes to come back as its echo, with --sessions terminals typing\nat once (one key per --pace). It reports the latency the gateway adds, and\nthe events and bytes recorded per session-minute at that pace.")
	size := fs.Int64("bytes", 256<<20, "bytes of output for the throughput run (1073741824: the 1 GiB of the target figure)")
	sessions := fs.Int("sessions", 50, "terminals typing at once")
	keystrokes := fs.Int("keystrokes", 50, "keystrokes each terminal types")
	pace := fs.Duration("pace", 200*time.Millisecond, "time between one terminal's keystrokes")
	syncMode := fs.String("sync", "interval", "NATS fsync: always (each message) or interval")
	profile := fs.String("cpuprofile", "", "write a CPU profile of the bulk run through the gateway (until the writer has sealed it) to this file, and one of the typing through it to this file with .keys added")
	cipher := fs.String("cipher", "", "the cipher the stock ssh prefers (-o Ciphers=^NAME: aes128-gcm@openssh.com, say), both directly and through the gateway; by default its own order, chacha20-poly1305@openssh.com first")
	traceFile := fs.String("trace", "", "write an execution trace of the bulk run through the gateway to this file (go tool trace: where its goroutines wait)")
	return func(ctx context.Context, _ []string, _ io.Reader, stdout, _ io.Writer) error {
		if *syncMode != "always" && *syncMode != "interval" {
			return cli.Usagef("--sync %q: want always or interval", *syncMode)
		}
		if *sessions < 1 || *keystrokes < 1 || *keystrokes > 2000 {
			return cli.Usagef("--sessions at least 1, --keystrokes from 1 to 2000")
		}
		dir, err := os.MkdirTemp("", "auditledger-bench-ssh-")
		if err != nil {
			return err
		}
		defer os.RemoveAll(dir)
		return withBenchLedger(ctx, dir, *syncMode == "always", true, 50*time.Millisecond, "", func(em *emitter.Emitter) error {
			return benchSSH(ctx, stdout, dir, em, *size, *sessions, *keystrokes, *pace, *syncMode, *profile, *traceFile, *cipher)
		})
	}
}

// countingRecorder counts what the gateway records.
type countingRecorder struct {
	em            *emitter.Emitter
	events, bytes atomic.Int64
	chunks        atomic.Int64
}

func (c *countingRecorder) note(ev *events.Event) {
	c.events.Add(1)
	c.bytes.Add(int64(len(ev.Payload)))
	if ev.Type == events.SessionOutput {
		c.chunks.Add(1)
	}
}

// JetStream is the emitter's bus, where the gateway seals bulk pieces.
func (c *countingRecorder) JetStream() jetstream.JetStream { return c.em.JetStream() }

func (c *countingRecorder) Emit(ctx context.Context, ev *events.Event) (emitter.Result, error) {
	c.note(ev)
	return c.em.Emit(ctx, ev)
}

func (c *countingRecorder) EmitAsync(ctx context.Context, ev *events.Event, done func(emitter.Result)) error {
	c.note(ev)
	return c.em.EmitAsync(ctx, ev, done)
}

func benchSSH(ctx context.Context, w io.Writer, dir string, em *emitter.Emitter, size int64, sessions, keystrokes int, pace time.Duration, syncMode, profile, traceFile, cipher string) error {
	u, err := user.Current()
	if err != nil {
		return err
	}
	login := u.Username
	keys, err := sshproxy.OpenKeys(filepath.Join(dir, "ssh-keys"), []string{"127.0.0.1"})
	if err != nil {
		return err
	}
	sshdDir := filepath.Join(dir, "sshd")
	os.MkdirAll(sshdDir, 0o755)
	target, err := devsshd.Start(ctx, sshdDir, freeAddr(), ssh.MarshalAuthorizedKey(keys.TargetCA.PublicKey()))
	if err != nil {
		return err
	}
	defer target.Stop()
	rec := &countingRecorder{em: em}
	// The personal-data keys, as serve and dev give the gateway: output
	// in bulk is sealed under the subject's key (docs/FORMAT.md §1.7).
	pii, err := piikeys.Open(ctx, em.JetStream(), 1)
	if err != nil {
		return err
	}
	px, err := sshproxy.New(sshproxy.Config{Keys: keys, PII: pii, Emitter: rec, Tenant: "bench", StateDir: filepath.Join(dir, "ssh-state"),
		Targets: []sshproxy.Target{{Name: "bench", Addr: target.Addr, HostKeys: []string{target.HostKey}}},
		Logger:  slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	sctx, stop := context.WithCancel(ctx)
	served := make(chan error, 1)
	go func() { served <- px.Serve(sctx, ln) }()
	defer func() { stop(); <-served }()
	gwAddr := ln.Addr().String()

	// One key pair, with a certificate for each way in: from the user CA
	// for the gateway, from the target CA for the direct runs (what the
	// gateway itself logs in with).
	_, priv, _ := ed25519.GenerateKey(rand.Reader)
	signer, _ := ssh.NewSignerFromKey(priv)
	cert := func(ca ssh.Signer, principal string) (*ssh.Certificate, error) {
		now := time.Now()
		c := &ssh.Certificate{Key: signer.PublicKey(), CertType: ssh.UserCert, KeyId: "bench", ValidPrincipals: []string{principal},
			ValidAfter: uint64(now.Add(-time.Minute).Unix()), ValidBefore: uint64(now.Add(time.Hour).Unix()),
			Permissions: ssh.Permissions{Extensions: map[string]string{"permit-pty": ""}}}
		return c, c.SignCert(rand.Reader, ca)
	}
	gwCert, err := cert(keys.UserCA, "bench")
	if err != nil {
		return err
	}
	directCert, err := cert(keys.TargetCA, login)
	if err != nil {
		return err
	}
	keyFile := filepath.Join(dir, "id_ed25519")
	blk, _ := ssh.MarshalPrivateKey(priv, "bench")
	os.WriteFile(keyFile, pem.EncodeToMemory(blk), 0o600)
	os.WriteFile(keyFile+"-gw.pub", ssh.MarshalAuthorizedKey(gwCert), 0o644)
	os.WriteFile(keyFile+"-direct.pub", ssh.MarshalAuthorizedKey(directCert), 0o644)
	_, gwPort, _ := net.SplitHostPort(gwAddr)
	_, directPort, _ := net.SplitHostPort(target.Addr)
	known := filepath.Join(dir, "known_hosts")
	os.WriteFile(known, []byte(keys.KnownHostsLine([]string{"[127.0.0.1]:" + gwPort})+"\n[127.0.0.1]:"+directPort+" "+target.HostKey+"\n"), 0o644)

	// The client's ciphers: its default order, or the one --cipher names
	// first (the gateway and sshd accept either; the client's preference
	// wins).
	cipherNote := ""
	if cipher != "" {
		cipherNote = " preferring " + cipher
	}
	fmt.Fprintf(w, "SSH gateway, %s, NATS fsync %s, ledger writer sealing; sshd %s on loopback\n\n", cpuModel(), syncMode, target.Addr)

	// Throughput: the stock client, cat of a text file on the target (so
	// making the text costs neither run anything).
	textFile := filepath.Join(dir, "bulk.txt")
	if err := writeText(textFile, size); err != nil {
		return err
	}
	var clientCPU time.Duration // the last run's ssh client's
	stock := func(port, certFile, user string) (time.Duration, error) {
		args := []string{"-F", "/dev/null", "-p", port, "-o", "BatchMode=yes", "-o", "IdentitiesOnly=yes",
			"-o", "IdentityFile=" + keyFile, "-o", "CertificateFile=" + certFile, "-o", "UserKnownHostsFile=" + known,
			"-o", "GlobalKnownHostsFile=/dev/null", "-o", "StrictHostKeyChecking=yes"}
		if cipher != "" {
			args = append(args, "-o", "Ciphers=^"+cipher)
		}
		cmd := exec.CommandContext(ctx, "ssh", append(args, user+"@127.0.0.1", "cat "+textFile)...)
		var n countWriter
		var errb bytes.Buffer
		cmd.Stdout, cmd.Stderr = &n, &errb
		if err := cmd.Run(); err != nil {
			return 0, fmt.Errorf("ssh: %v: %s", err, errb.String())
		}
		if u, ok := cmd.ProcessState.SysUsage().(*syscall.Rusage); ok {
			clientCPU = time.Duration(u.Utime.Nano() + u.Stime.Nano())
		}
		if n.n != size {
			return 0, fmt.Errorf("ssh read %d bytes, want %d", n.n, size)
		}
		// From the first byte to the last: the login and the target's
		// shell start-up files are not the relay's to speed up.
		return n.last.Sub(n.first), nil
	}
	cpu0, sshd0 := processCPU(), childrenCPU(target.Pid())
	directT, err := stock(directPort, keyFile+"-direct.pub", login)
	if err != nil {
		return fmt.Errorf("direct: %w", err)
	}
	directCPU, directClient := processCPU()-cpu0, clientCPU
	time.Sleep(500 * time.Millisecond) // sshd reaps the session's processes
	directSSHD := childrenCPU(target.Pid()) - sshd0
	before := rec.events.Load()
	cpu0, sshd0 = processCPU(), childrenCPU(target.Pid())
	stopProfile := func() {}
	if profile != "" {
		if stopProfile, err = startCPUProfile(profile); err != nil {
			return err
		}
	}
	stopTrace, err := startTrace(traceFile)
	if err != nil {
		stopProfile()
		return err
	}
	viaT, err := stock(gwPort, keyFile+"-gw.pub", login+"+bench")
	stopTrace()
	settle(rec) // the relay does not wait for the recording: count all of it
	if err != nil {
		stopProfile()
		return fmt.Errorf("through the gateway: %w", err)
	}
	quiet() // and the writer's checks and copies of the pieces
	viaCPU, viaClient, viaSSHD := processCPU()-cpu0, clientCPU, childrenCPU(target.Pid())-sshd0
	stopProfile()
	mib := float64(size) / (1 << 20)
	fmt.Fprintf(w, "bulk output, stock ssh%s, cat of %.0f MiB of text (base64 lines), first byte to last:\n", cipherNote, mib)
	fmt.Fprintf(w, "  %-22s %8.1f MiB/s\n", "direct", mib/directT.Seconds())
	fmt.Fprintf(w, "  %-22s %8.1f MiB/s  %3.0f%% of direct, %d events recorded\n", "through the gateway", mib/viaT.Seconds(),
		100*directT.Seconds()/viaT.Seconds(), rec.events.Load()-before)
	fmt.Fprintf(w, "  CPU per MiB, ms: direct: ssh %.1f, sshd and cat %.1f, this process %.1f (reading the client's output)\n",
		ms(directClient)/mib, ms(directSSHD)/mib, ms(directCPU)/mib)
	fmt.Fprintf(w, "                   through the gateway: ssh %.1f, sshd and cat %.1f, this process %.1f (the gateway, the bus and the writer too)\n\n",
		ms(viaClient)/mib, ms(viaSSHD)/mib, ms(viaCPU)/mib)

	// Keystroke echo: terminals typing at once, each key timed to its echo.
	pinned, _, _, _, err := ssh.ParseAuthorizedKey([]byte(target.HostKey))
	if err != nil {
		return err
	}
	hk := func(hostname string, remote net.Addr, key ssh.PublicKey) error {
		if c, ok := key.(*ssh.Certificate); ok && string(c.SignatureKey.Marshal()) == string(keys.HostCA.PublicKey().Marshal()) {
			return nil
		}
		if string(key.Marshal()) == string(pinned.Marshal()) {
			return nil
		}
		return errors.New("unknown host key")
	}
	gwSigner, _ := ssh.NewCertSigner(gwCert, signer)
	directSigner, _ := ssh.NewCertSigner(directCert, signer)
	direct, _, err := echoLatency(ctx, target.Addr, login, directSigner, hk, sessions, keystrokes, pace)
	if err != nil {
		return fmt.Errorf("direct: %w", err)
	}
	ev0, b0 := rec.events.Load(), rec.bytes.Load()
	stopProfile = func() {}
	if profile != "" {
		if stopProfile, err = startCPUProfile(profile + ".keys"); err != nil {
			return err
		}
	}
	via, took, err := echoLatency(ctx, gwAddr, login+"+bench", gwSigner, hk, sessions, keystrokes, pace)
	stopProfile()
	if err != nil {
		return fmt.Errorf("through the gateway: %w", err)
	}
	settle(rec)
	evs, bs := rec.events.Load()-ev0, rec.bytes.Load()-b0
	fmt.Fprintf(w, "keystroke echo, %d terminals typing at once, one key each %s (%d keys each):\n", sessions, pace, keystrokes)
	fmt.Fprintf(w, "  %-22s p50 %6.2f ms  p99 %6.2f ms\n", "direct", ms(pct(direct, 0.50)), ms(pct(direct, 0.99)))
	fmt.Fprintf(w, "  %-22s p50 %6.2f ms  p99 %6.2f ms\n", "through the gateway", ms(pct(via, 0.50)), ms(pct(via, 0.99)))
	fmt.Fprintf(w, "  %-22s p50 %6.2f ms  p99 %6.2f ms\n\n", "added by the gateway", ms(pct(via, 0.50)-pct(direct, 0.50)), ms(pct(via, 0.99)-pct(direct, 0.99)))
	minutes := float64(sessions) * took.Minutes()
	fmt.Fprintf(w, "recorded while typing: %d events (%.0f/s), %.0f events and %.1f KiB of payload per session-minute at %.1f keys/s\n",
		evs, float64(evs)/took.Seconds(), float64(evs)/minutes, float64(bs)/1024/minutes, float64(time.Second)/float64(pace))
	return nil
}

// writeText writes size bytes of random base64 text in lines of 76.
func writeText(path string, size int64) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	os.Chmod(path, 0o644)
	raw := make([]byte, 57*1024)
	line := make([]byte, 0, 78*1024)
	for left := size; left > 0; {
		rand.Read(raw)
		line = line[:0]
		for i := 0; i < len(raw); i += 57 {
			line = base64.StdEncoding.AppendEncode(line, raw[i:i+57])
			line = append(line, '\n')
		}
		n := min(int64(len(line)), left)
		if _, err := f.Write(line[:n]); err != nil {
			f.Close()
			return err
		}
		left -= n
	}
	return f.Close()
}

// settle waits until nothing more has been recorded for half a second.
func settle(rec *countingRecorder) {
	for last := int64(-1); rec.events.Load() != last; {
		last = rec.events.Load()
		time.Sleep(500 * time.Millisecond)
	}
}

// processCPU is the CPU time this process has used, user and system.
func processCPU() time.Duration {
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// childrenCPU is the CPU time of the ended children process pid reaped
// (/proc/PID/stat's cutime and cstime, at 100 ticks a second); 0 when
// it cannot be read.
func childrenCPU(pid int) time.Duration {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	// Fields after the command's closing parenthesis: state is the 3rd
	// field of the line, cutime and cstime the 16th and 17th.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 15 {
		return 0
	}
	cu, err1 := strconv.ParseInt(f[13], 10, 64)
	cs, err2 := strconv.ParseInt(f[14], 10, 64)
	if err1 != nil || err2 != nil {
		return 0
	}
	return time.Duration(cu+cs) * 10 * time.Millisecond
}

// quiet waits until this process uses less than a tenth of a core over
// 300 ms (the writer has checked and copied what the gateway recorded),
// for at most 30 s.
func quiet() {
	for end := time.Now().Add(30 * time.Second); time.Now().Before(end); {
		c := processCPU()
		time.Sleep(300 * time.Millisecond)
		if processCPU()-c < 30*time.Millisecond {
			return
		}
	}
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// countWriter counts bytes and notes when the first and the last came.
type countWriter struct {
	n           int64
	first, last time.Time
}

func (c *countWriter) Write(p []byte) (int, error) {
	now := time.Now()
	if c.n == 0 {
		c.first = now
	}
	c.n += int64(len(p))
	c.last = now
	return len(p), nil
}

func freeAddr() string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "127.0.0.1:0"
	}
	defer ln.Close()
	return ln.Addr().String()
}

// echoLatency runs sessions terminals at once (cat under a pty, whose
// line discipline echoes each key), each typing keystrokes keys one pace
// apart, and returns the time from each key sent to its echo received,
// sorted, and how long the typing took.
func echoLatency(ctx context.Context, addr, user string, signer ssh.Signer, hk ssh.HostKeyCallback, sessions, keystrokes int, pace time.Duration) ([]time.Duration, time.Duration, error) {
	var mu sync.Mutex
	var all []time.Duration
	var firstErr error
	var wg sync.WaitGroup
	start := time.Now()
	for range sessions {
		wg.Go(func() {
			ds, err := typeKeys(ctx, addr, user, signer, hk, keystrokes, pace)
			mu.Lock()
			defer mu.Unlock()
			if err != nil && firstErr == nil {
				firstErr = err
			}
			all = append(all, ds...)
		})
	}
	wg.Wait()
	slices.Sort(all)
	return all, time.Since(start), firstErr
}

func typeKeys(ctx context.Context, addr, user string, signer ssh.Signer, hk ssh.HostKeyCallback, keystrokes int, pace time.Duration) ([]time.Duration, error) {
	client, err := ssh.Dial("tcp", addr, &ssh.ClientConfig{User: user, Auth: []ssh.AuthMethod{ssh.PublicKeys(signer)}, HostKeyCallback: hk, Timeout: 30 * time.Second})
	if err != nil {
		return nil, err
	}
	defer client.Close()
	sess, err := client.NewSession()
	if err != nil {
		return nil, err
	}
	defer sess.Close()
	if err := sess.RequestPty("xterm", 24, 80, ssh.TerminalModes{ssh.ECHO: 1}); err != nil {
		return nil, err
	}
	in, _ := sess.StdinPipe()
	out, _ := sess.StdoutPipe()
	if err := sess.Start("cat"); err != nil {
		return nil, err
	}
	buf := make([]byte, 4096)
	echo := func(key byte) error {
		for {
			n, err := out.Read(buf)
			if err != nil {
				return err
			}
			if bytes.IndexByte(buf[:n], key) >= 0 {
				return nil
			}
		}
	}
	// The first key waits for cat to be running: not timed.
	in.Write([]byte{'x'})
	if err := echo('x'); err != nil {
		return nil, err
	}
	ds := make([]time.Duration, 0, keystrokes)
	for i := range keystrokes {
		if ctx.Err() != nil {
			return ds, ctx.Err()
		}
		time.Sleep(pace)
		key := byte('a' + i%26)
		t0 := time.Now()
		if _, err := in.Write([]byte{key}); err != nil {
			return ds, err
		}
		if err := echo(key); err != nil {
			return ds, err
		}
		ds = append(ds, time.Since(t0))
	}
	in.Write([]byte{4, 4}) // ^D ends cat
	return ds, nil
}
