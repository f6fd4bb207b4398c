// Package pgtest runs a throwaway PostgreSQL server for tests, from the
// installed server binaries (found as dev finds them: devpg.BinDir). As root it runs the server as the postgres user,
// since PostgreSQL refuses to run as root. TCP connections need the
// password (scram-sha-256), so a test can tell a proxy that holds the
// credentials from a client that does not.
package pgtest

import (
	"github.com/auditledger/auditledger/internal/devpg"
	"github.com/auditledger/auditledger/test/testnet"

	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// Server is a running PostgreSQL server.
type Server struct {
	Host     string
	Port     int
	User     string // superuser
	Password string
	BinDir   string
	dir      string
	cmd      *exec.Cmd
	cred     *syscall.Credential
}

var dbSeq atomic.Int64

// BinDir finds the PostgreSQL server binaries, as dev does.
func BinDir() (string, error) { return devpg.BinDir() }

// Start runs a server until Stop. Use it from TestMain to share one server
// per package; use NewDatabase for isolation between tests.
func Start() (*Server, error) {
	bin, err := BinDir()
	if err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", "pgtest-")
	if err != nil {
		return nil, err
	}
	s := &Server{Host: "127.0.0.1", User: "postgres", BinDir: bin, dir: dir}
	var pw [12]byte
	rand.Read(pw[:])
	s.Password = hex.EncodeToString(pw[:])
	as, err := devpg.Unprivileged()
	if err != nil {
		return nil, err
	}
	if as != nil {
		s.cred = &syscall.Credential{Uid: uint32(as.UID), Gid: uint32(as.GID)}
		if err := os.Chown(dir, as.UID, as.GID); err != nil {
			return nil, err
		}
	}
	pwfile := filepath.Join(dir, "pw")
	if err := os.WriteFile(pwfile, []byte(s.Password+"\n"), 0o600); err != nil {
		return nil, err
	}
	if s.cred != nil {
		os.Chown(pwfile, int(s.cred.Uid), int(s.cred.Gid))
	}
	data := filepath.Join(dir, "data")
	if out, err := s.command("initdb", "-D", data, "-U", s.User, "--pwfile", pwfile,
		"--auth-local=trust", "--auth-host=scram-sha-256", "-E", "UTF8", "--no-sync").CombinedOutput(); err != nil {
		return nil, fmt.Errorf("initdb: %v\n%s", err, out)
	}
	for try := 0; try < 5; try++ {
		if s.Port, err = testnet.FreePort(); err != nil {
			return nil, err
		}
		s.cmd = s.command("postgres", "-D", data, "-p", strconv.Itoa(s.Port), "-k", dir,
			"-c", "listen_addresses=127.0.0.1", "-c", "fsync=off", "-c", "max_connections=200")
		logf, _ := os.Create(filepath.Join(dir, "server.log"))
		s.cmd.Stdout, s.cmd.Stderr = logf, logf
		if err := s.cmd.Start(); err != nil {
			return nil, err
		}
		if err := s.waitReady(30 * time.Second); err == nil {
			return s, nil
		}
		s.cmd.Process.Kill()
		s.cmd.Wait()
	}
	log, _ := os.ReadFile(filepath.Join(dir, "server.log"))
	return nil, fmt.Errorf("postgres did not start:\n%s", log)
}

func (s *Server) command(name string, args ...string) *exec.Cmd {
	cmd := exec.Command(filepath.Join(s.BinDir, name), args...)
	cmd.Dir = s.dir
	if s.cred != nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: s.cred}
	}
	return cmd
}

func (s *Server) waitReady(d time.Duration) error {
	deadline := time.Now().Add(d)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		c, err := pgx.Connect(ctx, s.DSN("postgres"))
		cancel()
		if err == nil {
			c.Close(context.Background())
			return nil
		}
		if time.Now().After(deadline) {
			return err
		}
		time.Sleep(50 * time.Millisecond) // polling with a deadline
	}
}

// DSN is a connection URL for database db as the superuser over TCP.
func (s *Server) DSN(db string) string {
	return fmt.Sprintf("postgres://%s:%s@%s:%d/%s?sslmode=disable", s.User, s.Password, s.Host, s.Port, db)
}

// NewDatabase creates a fresh database for one test and returns its name.
func (s *Server) NewDatabase(t testing.TB) string {
	t.Helper()
	name := fmt.Sprintf("t%d_%d", os.Getpid(), dbSeq.Add(1))
	c, err := pgx.Connect(context.Background(), s.DSN("postgres"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close(context.Background())
	if _, err := c.Exec(context.Background(), "CREATE DATABASE "+name); err != nil {
		t.Fatal(err)
	}
	return name
}

// StartT starts a server for one test and stops it when the test and its
// cleanups are done; a server that cannot start fails the test.
func StartT(t testing.TB) *Server {
	t.Helper()
	s, err := Start()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Stop)
	return s
}

// Main runs a package's tests (call it from TestMain) with one server
// started for all of them and put in *srv, and exits with their code; a
// server that cannot start fails the run, naming why.
func Main(m *testing.M, srv **Server) {
	s, err := Start()
	if err != nil {
		fmt.Fprintln(os.Stderr, "these tests need PostgreSQL:", err)
		os.Exit(1)
	}
	*srv = s
	code := m.Run()
	s.Stop()
	os.Exit(code)
}

// InitPgbench fills db with pgbench's tables at scale 1 (pgbench -i),
// straight to the server.
func (s *Server) InitPgbench(t testing.TB, db string) {
	t.Helper()
	if out, err := exec.Command("pgbench", "-i", "-q", "-s", "1", s.DSN(db)).CombinedOutput(); err != nil {
		t.Fatalf("pgbench -i (direct): %v\n%s", err, out)
	}
}

// Stop shuts the server down and removes its files.
func (s *Server) Stop() {
	if s.cmd != nil && s.cmd.Process != nil {
		s.cmd.Process.Signal(syscall.SIGINT) // fast shutdown
		done := make(chan struct{})
		go func() { s.cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			s.cmd.Process.Kill()
			<-done
		}
	}
	os.RemoveAll(s.dir)
}
