// Package versitygw starts a real S3-compatible server with Object Lock
// (versitygw, posix backend with versioning) for tests, on a free loopback
// port, and makes lock-enabled buckets on it.
//
// The binary is found as $VERSITYGW, on $PATH, or in $(go env GOPATH)/bin,
// and installed there with go install (from the Go module proxy) when it is
// missing, so "go test ./..." works on a fresh machine. A test that cannot
// get it fails: a skipped storage test would hide a broken WORM store.
package versitygw

import (
	"github.com/auditledger/auditledger/test/testnet"

	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"
)

// Credentials of the test server's root user.
const (
	AccessKey = "auditledger-test"
	SecretKey = "auditledger-test-secret"
)

// Server is a running versitygw.
type Server struct {
	Endpoint string // host:port
	Client   *minio.Client

	t       testing.TB
	bin     string
	args    []string
	logPath string
	cmd     *exec.Cmd
	exited  chan struct{}
}

var bucketSeq atomic.Int64

// Version is the versitygw release the tests run against.
const Version = "v1.8.0"

// Binary locates versitygw, installing it if needed.
func Binary() (string, error) {
	p, err := find()
	if err == nil {
		return p, nil
	}
	out, ierr := exec.Command("go", "install", "github.com/versity/versitygw/cmd/versitygw@"+Version).CombinedOutput()
	if ierr != nil {
		return "", fmt.Errorf("%v; installing it failed: %v\n%s", err, ierr, out)
	}
	return find()
}

func find() (string, error) {
	if p := os.Getenv("VERSITYGW"); p != "" {
		return p, nil
	}
	if p, err := exec.LookPath("versitygw"); err == nil {
		return p, nil
	}
	gopath, _ := exec.Command("go", "env", "GOPATH").Output()
	p := filepath.Join(strings.TrimSpace(string(gopath)), "bin", "versitygw")
	if _, err := os.Stat(p); err == nil {
		return p, nil
	}
	return "", fmt.Errorf("versitygw not found: go install github.com/versity/versitygw/cmd/versitygw@%s (or set VERSITYGW)", Version)
}

// Start runs a server for the duration of the test.
func Start(t testing.TB) *Server {
	t.Helper()
	bin, err := Binary()
	if err != nil {
		t.Fatal(err)
	}
	root, versions := t.TempDir(), t.TempDir()
	endpoint := fmt.Sprintf("127.0.0.1:%d", testnet.Port(t))
	client, err := minio.New(endpoint, &minio.Options{Creds: credentials.NewStaticV4(AccessKey, SecretKey, ""), Secure: false})
	if err != nil {
		t.Fatal(err)
	}
	s := &Server{
		Endpoint: endpoint, Client: client, t: t, bin: bin,
		args:    []string{"--port", endpoint, "posix", "--versioning-dir", versions, root},
		logPath: filepath.Join(t.TempDir(), "versitygw.log"),
	}
	s.start()
	t.Cleanup(s.Stop)
	return s
}

func (s *Server) start() {
	s.t.Helper()
	cmd := exec.Command(s.bin, s.args...)
	cmd.Env = append(os.Environ(), "ROOT_ACCESS_KEY="+AccessKey, "ROOT_SECRET_KEY="+SecretKey)
	logf, err := os.OpenFile(s.logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		s.t.Fatal(err)
	}
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		s.t.Fatalf("start versitygw: %v", err)
	}
	exited := make(chan struct{})
	go func() { cmd.Wait(); logf.Close(); close(exited) }()
	s.cmd, s.exited = cmd, exited
	deadline := time.Now().Add(30 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		_, err := s.Client.ListBuckets(ctx)
		cancel()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			log, _ := os.ReadFile(s.logPath)
			s.t.Fatalf("versitygw on %s not ready after 30s: %v\n%s", s.Endpoint, err, log)
		}
		time.Sleep(50 * time.Millisecond) // polling with a deadline, not waiting a fixed time
	}
}

// Stop kills the server (an outage); Restart brings it back on the same
// address and data.
func (s *Server) Stop() {
	if s.cmd != nil {
		s.cmd.Process.Kill()
		<-s.exited
		s.cmd = nil
	}
}

// Restart starts a stopped server again.
func (s *Server) Restart() { s.start() }

// Bucket makes a new bucket with Object Lock enabled and returns its name.
func (s *Server) Bucket(t testing.TB) string {
	t.Helper()
	name := fmt.Sprintf("ledger-%d-%d", os.Getpid(), bucketSeq.Add(1))
	if err := s.Client.MakeBucket(context.Background(), name, minio.MakeBucketOptions{ObjectLocking: true}); err != nil {
		t.Fatalf("make bucket %s: %v", name, err)
	}
	return name
}

// PlainBucket makes a bucket without Object Lock.
func (s *Server) PlainBucket(t testing.TB) string {
	t.Helper()
	name := fmt.Sprintf("plain-%d-%d", os.Getpid(), bucketSeq.Add(1))
	if err := s.Client.MakeBucket(context.Background(), name, minio.MakeBucketOptions{}); err != nil {
		t.Fatalf("make bucket %s: %v", name, err)
	}
	return name
}
