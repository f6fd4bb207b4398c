// Package sshdtest runs Debian's OpenSSH server (sshd) for one test
// (internal/devsshd): on loopback, with its own host key, trusting one
// certificate authority for user certificates and no other way in. Run
// as anyone but root it can only log in as that user, which is the login
// tests use (Login).
package sshdtest

import (
	"os/user"
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
