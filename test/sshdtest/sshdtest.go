// Package sshdtest runs Debian's OpenSSH server (sshd) for tests, on
// loopback, with its own host key, trusting one certificate authority
// for user certificates (TrustedUserCAKeys) and no other way in. As root
// (CI) it needs its privilege-separation directory, which it creates;
// run as anyone else it can only log in as that user, which is the login
// tests use (Login).
package sshdtest

import (
	"bufio"
	"bytes"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/auditledger/auditledger/test/natstest"
	"github.com/auditledger/auditledger/test/testnet"
)

// Server is a running sshd.
type Server struct {
	Addr    string // host:port
	HostKey string // its public host key, authorized_keys format
	log     syncBuffer
}

// Log is what sshd has logged (LogLevel VERBOSE): the key id of each
// certificate it accepted, among others.
func (s *Server) Log() string { return s.log.String() }

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

// Login is the account tests log in as: the user running them.
func Login(t testing.TB) string {
	u, err := user.Current()
	if err != nil {
		t.Fatal(err)
	}
	return u.Username
}

// Path is Debian's sshd; .ci/run installs openssh-server.
func Path(t testing.TB) string {
	for _, p := range []string{"/usr/sbin/sshd", "/usr/bin/sshd"} {
		if _, err := os.Stat(p); err == nil {
			return p
		}
	}
	t.Fatal("sshd not found: install openssh-server (.ci/run does)")
	return ""
}

// Start runs sshd trusting caPub (authorized_keys format) for user
// certificates, until the test ends.
func Start(t testing.TB, caPub []byte) *Server {
	t.Helper()
	dir := t.TempDir()
	os.Chmod(dir, 0o755)
	if os.Geteuid() == 0 {
		if err := os.MkdirAll("/run/sshd", 0o755); err != nil {
			t.Fatal(err)
		}
	}
	key := filepath.Join(dir, "host_ed25519")
	if out, err := exec.Command("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", key).CombinedOutput(); err != nil {
		t.Fatalf("ssh-keygen: %v\n%s", err, out)
	}
	pub, err := os.ReadFile(key + ".pub")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "user_ca.pub"), caPub, 0o644); err != nil {
		t.Fatal(err)
	}
	addr := testnet.Addr(t)
	host, port, _ := net.SplitHostPort(addr)
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
Subsystem sftp internal-sftp
LogLevel VERBOSE
`, port, host, key, dir, dir)
	cfg := filepath.Join(dir, "sshd_config")
	if err := os.WriteFile(cfg, []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	s := &Server{Addr: addr, HostKey: strings.TrimSpace(string(pub))}
	cmd := exec.Command(Path(t), "-D", "-e", "-f", cfg)
	cmd.Stdout, cmd.Stderr = &s.log, &s.log
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	natstest.CheckFor(t, 30*time.Second, 20*time.Millisecond, func() error {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err != nil {
			return err
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(5 * time.Second))
		line, err := bufio.NewReader(c).ReadString('\n')
		if err != nil || !strings.HasPrefix(line, "SSH-2.0-OpenSSH") {
			return fmt.Errorf("banner %q: %v; sshd log:\n%s", line, err, s.log.String())
		}
		return nil
	})
	return s
}
