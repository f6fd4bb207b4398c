// Package sshdtest runs Debian's OpenSSH server (sshd) for one test
// (internal/devsshd): on loopback, with its own host key, trusting one
// certificate authority for user certificates and no other way in. Run
// as anyone but root it can only log in as that user, which is the login
// tests use (Login).
package sshdtest

import (
	"os"
	"os/user"
	"strconv"
	"syscall"
	"testing"

	"github.com/auditledger/auditledger/internal/devsshd"
	"github.com/auditledger/auditledger/test/testnet"
)

// Server is a running sshd.
type Server = devsshd.Server

// Login is the account tests log in as: the user running them.
func Login(t testing.TB) string {
	u, err := user.Current()
	if err != nil {
		t.Fatal(err)
	}
	return u.Username
}

// Start runs sshd trusting caPub (authorized_keys format) for user
// certificates, until the test ends. A machine without sshd fails the
// test: .ci/run installs openssh-server.
func Start(t testing.TB, caPub []byte) *Server {
	t.Helper()
	s, err := devsshd.Start(t.Context(), t.TempDir(), testnet.Addr(t), caPub)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Stop)
	return s
}

// StartAs runs sshd as the account login (the tests run as root), so
// that it logs in as that account only, under privilege separation, as a
// target serves its users (devsshd.StartAs).
func StartAs(t testing.TB, caPub []byte, login string) *Server {
	t.Helper()
	u, err := user.Lookup(login)
	if err != nil {
		t.Fatal(err)
	}
	uid, _ := strconv.ParseUint(u.Uid, 10, 32)
	gid, _ := strconv.ParseUint(u.Gid, 10, 32)
	// Not under t.TempDir, whose directories only root may pass.
	dir, err := os.MkdirTemp("", "auditledger-sshd-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	s, err := devsshd.StartAs(t.Context(), dir, testnet.Addr(t), caPub, &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Stop)
	return s
}
