// Package devsshd runs Debian's OpenSSH server (sshd) on loopback for
// the SSH gateway's tests and benchmark: its own host key, trusting one
// certificate authority for user certificates (TrustedUserCAKeys) and no
// other way in. As root it needs its privilege-separation directory,
// which it creates; run as anyone else it can only log in as that user.
package devsshd

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Server is a running sshd.
type Server struct {
	Addr    string // host:port
	HostKey string // its public host key, authorized_keys format
	cmd     *exec.Cmd
	log     syncBuffer
}

// Log is what sshd has logged (LogLevel VERBOSE).
func (s *Server) Log() string { return s.log.String() }

// Pid is the process id of the listening sshd, whose children (the
// connections, their sessions and programs) it reaps: /proc/PID/stat's
// cutime and cstime count their CPU once they have ended.
func (s *Server) Pid() int { return s.cmd.Process.Pid }

// Stop kills sshd and waits for it.
func (s *Server) Stop() {
	s.cmd.Process.Kill()
	s.cmd.Wait()
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
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

// Path is the sshd binary, or an error naming the package to install.
func Path() (string, error) {
	for _, p := range []string{"/usr/sbin/sshd", "/usr/bin/sshd"} {
		if _, err := os.Stat(p); err == nil {
			return p, nil
		}
	}
	return "", errors.New("sshd not found: install openssh-server")
}

// Start runs sshd in dir on addr (host:port, a free port), trusting
// caPub (authorized_keys format) for user certificates, and waits until
// it answers.
func Start(ctx context.Context, dir, addr string, caPub []byte) (*Server, error) {
	return StartAs(ctx, dir, addr, caPub, nil)
}

// StartAs is Start with sshd run as the user cred names (nil: as this
// process's user): started by root as another user, sshd logs in as
// that user only, under privilege separation — as a target serves its
// users — whatever that account's password field says. dir and its files
// are handed to that user; every directory above dir must let it pass.
func StartAs(ctx context.Context, dir, addr string, caPub []byte, cred *syscall.Credential) (*Server, error) {
	bin, err := Path()
	if err != nil {
		return nil, err
	}
	os.Chmod(dir, 0o755)
	if os.Geteuid() == 0 && cred == nil {
		if err := os.MkdirAll("/run/sshd", 0o755); err != nil {
			return nil, err
		}
	}
	key := filepath.Join(dir, "host_ed25519")
	os.Remove(key)
	os.Remove(key + ".pub")
	if out, err := exec.CommandContext(ctx, "ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", key).CombinedOutput(); err != nil {
		return nil, fmt.Errorf("ssh-keygen: %v: %s", err, out)
	}
	pub, err := os.ReadFile(key + ".pub")
	if err != nil {
		return nil, err
	}
	if err := os.WriteFile(filepath.Join(dir, "user_ca.pub"), caPub, 0o644); err != nil {
		return nil, err
	}
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, err
	}
	// Sessions get a HOME of their own, empty: a login shell reads no
	// start-up files of the account's real home, whose contents belong
	// to whoever uses the machine (one that runs a tool's set-up at each
	// login can hang every shell behind a stale lock). The working
	// directory stays the account's home, as sshd sets it.
	home := filepath.Join(dir, "home")
	if err := os.MkdirAll(home, 0o755); err != nil {
		return nil, err
	}
	conf := fmt.Sprintf(`Port %s
ListenAddress %s
HostKey %s
PidFile %s/sshd.pid
TrustedUserCAKeys %s/user_ca.pub
AuthorizedKeysFile none
PubkeyAuthentication yes
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
StrictModes no
PermitRootLogin prohibit-password
AllowTcpForwarding yes
AcceptEnv LANG LC_*
SetEnv HOME=%s
Subsystem sftp internal-sftp
MaxStartups 1000
MaxSessions 1000
LogLevel VERBOSE
`, port, host, key, dir, dir, home)
	cfg := filepath.Join(dir, "sshd_config")
	if err := os.WriteFile(cfg, []byte(conf), 0o644); err != nil {
		return nil, err
	}
	if cred != nil {
		for _, p := range []string{dir, home, key, key + ".pub", filepath.Join(dir, "user_ca.pub"), cfg} {
			if err := os.Chown(p, int(cred.Uid), int(cred.Gid)); err != nil {
				return nil, err
			}
		}
	}
	s := &Server{Addr: addr, HostKey: strings.TrimSpace(string(pub))}
	s.cmd = exec.Command(bin, "-D", "-e", "-f", cfg)
	if cred != nil {
		s.cmd.SysProcAttr = &syscall.SysProcAttr{Credential: cred}
	}
	s.cmd.Stdout, s.cmd.Stderr = &s.log, &s.log
	if err := s.cmd.Start(); err != nil {
		return nil, err
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		err := banner(addr)
		if err == nil {
			return s, nil
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			s.Stop()
			return nil, fmt.Errorf("sshd did not answer: %v; its log:\n%s", err, s.log.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func banner(addr string) error {
	c, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		return err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil || !strings.HasPrefix(line, "SSH-2.0-OpenSSH") {
		return fmt.Errorf("banner %q: %v", line, err)
	}
	return nil
}
