// Package rsyslogtest runs Debian's rsyslogd (with rsyslog-gnutls)
// receiving RFC 5425 syslog over TLS on a loopback port and writing each
// message to a file a test reads.
package rsyslogtest

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/auditledger/auditledger/test/testnet"
)

// Server is a running rsyslogd.
type Server struct {
	Addr string
	// Out is the file each received message is written to, one per line:
	// MSGID, the structured data and the message.
	Out string
	// RootCAs trusts the server's certificate; CAFile holds the CA (PEM).
	RootCAs *x509.CertPool
	CAFile  string
	dir     string
	conf    string
	cmd     *exec.Cmd
}

// Start runs rsyslogd until the test ends.
func Start(t testing.TB) *Server {
	t.Helper()
	bin, err := exec.LookPath("rsyslogd")
	if err != nil {
		t.Fatalf("rsyslogd is needed (Debian: apt-get install -y rsyslog rsyslog-gnutls): %v", err)
	}
	dir := t.TempDir()
	s := &Server{dir: dir, Out: filepath.Join(dir, "received.log")}
	s.RootCAs, s.CAFile = writeCerts(t, dir), filepath.Join(dir, "ca.pem")
	port, err := testnet.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	s.Addr = fmt.Sprintf("127.0.0.1:%d", port)
	s.conf = filepath.Join(dir, "rsyslog.conf")
	os.WriteFile(s.conf, []byte(fmt.Sprintf(`global(workDirectory=%q
  defaultNetstreamDriver="gtls"
  defaultNetstreamDriverCAFile=%q
  defaultNetstreamDriverCertFile=%q
  defaultNetstreamDriverKeyFile=%q)
module(load="imtcp" streamDriver.name="gtls" streamDriver.mode="1" streamDriver.authMode="anon")
input(type="imtcp" address="127.0.0.1" port="%d")
template(name="line" type="string" string="%%msgid%% %%structured-data%% %%msg%%\n")
action(type="omfile" file=%q template="line" flushOnTXEnd="on" asyncWriting="off")
`, dir, filepath.Join(dir, "ca.pem"), filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem"), port, s.Out)), 0o644)
	if out, err := exec.Command(bin, "-N1", "-f", s.conf).CombinedOutput(); err != nil {
		t.Fatalf("rsyslogd -N1 (config check): %v\n%s", err, out)
	}
	s.Start(t)
	t.Cleanup(s.Stop)
	return s
}

// Start starts rsyslogd again after Stop, on the same port.
func (s *Server) Start(t testing.TB) {
	t.Helper()
	s.cmd = exec.Command("rsyslogd", "-n", "-f", s.conf, "-i", filepath.Join(s.dir, "rsyslogd.pid"))
	log, _ := os.Create(filepath.Join(s.dir, "rsyslogd.out"))
	s.cmd.Stdout, s.cmd.Stderr = log, log
	if err := s.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(20 * time.Second)
	for {
		c, err := tls.Dial("tcp", s.Addr, &tls.Config{RootCAs: s.RootCAs})
		if err == nil {
			c.Close()
			return
		}
		if time.Now().After(deadline) {
			b, _ := os.ReadFile(filepath.Join(s.dir, "rsyslogd.out"))
			t.Fatalf("rsyslogd not listening on %s: %v\n%s", s.Addr, err, b)
		}
		time.Sleep(50 * time.Millisecond) // polling until it listens, with a deadline
	}
}

// Stop stops rsyslogd as an administrator would (SIGTERM: it writes what
// it received, then exits) and waits for it.
func (s *Server) Stop() {
	if s.cmd == nil || s.cmd.Process == nil {
		return
	}
	s.cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan struct{})
	go func() { s.cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(15 * time.Second):
		s.cmd.Process.Kill()
		<-done
	}
	s.cmd = nil
}

// Lines returns what rsyslogd wrote so far.
func (s *Server) Lines() []string {
	b, _ := os.ReadFile(s.Out)
	return strings.Split(strings.TrimSuffix(string(b), "\n"), "\n")
}

// writeCerts writes a CA and a server certificate for 127.0.0.1 and
// returns a pool trusting the CA.
func writeCerts(t testing.TB, dir string) *x509.CertPool {
	t.Helper()
	caKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	ca := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "rsyslogtest CA"}, NotBefore: time.Now().Add(-time.Hour),
		NotAfter: time.Now().Add(24 * time.Hour), IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	caDER, err := x509.CreateCertificate(rand.Reader, ca, ca, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	caCert, _ := x509.ParseCertificate(caDER)
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	leaf := &x509.Certificate{SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "127.0.0.1"}, NotBefore: time.Now().Add(-time.Hour),
		NotAfter: time.Now().Add(24 * time.Hour), IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		KeyUsage: x509.KeyUsageDigitalSignature}
	der, err := x509.CreateCertificate(rand.Reader, leaf, caCert, &key.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, _ := x509.MarshalECPrivateKey(key)
	for name, block := range map[string]*pem.Block{"ca.pem": {Type: "CERTIFICATE", Bytes: caDER}, "cert.pem": {Type: "CERTIFICATE", Bytes: der}, "key.pem": {Type: "EC PRIVATE KEY", Bytes: keyDER}} {
		if err := os.WriteFile(filepath.Join(dir, name), pem.EncodeToMemory(block), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	pool := x509.NewCertPool()
	pool.AddCert(caCert)
	return pool
}
