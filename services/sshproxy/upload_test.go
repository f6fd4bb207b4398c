package sshproxy_test

import (
	"bufio"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/auditledger/auditledger/events"
	"github.com/auditledger/auditledger/services/gateway"
	"github.com/auditledger/auditledger/test/natstest"
)

// uploadBytes is the size of TestLargeUpload's file:
// AUDITLEDGER_SSH_UPLOAD_BYTES, or 256 MiB (CI's size: the gateway
// stages the file, digests it and sends it on, on two shared cores).
// AUDITLEDGER_SSH_UPLOAD_BYTES=1073741824 is the 1 GiB.
func uploadBytes(t *testing.T) int64 {
	v := os.Getenv("AUDITLEDGER_SSH_UPLOAD_BYTES")
	if v == "" {
		return 256 << 20
	}
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil || n < 1 {
		t.Fatalf("AUDITLEDGER_SSH_UPLOAD_BYTES=%q: want a number of bytes, at least 1", v)
	}
	return n
}

// TestLargeUpload: a large file sent with the stock scp (its SFTP-based
// default) through the gateway reaches the target whole — the SHA-256 of
// the target's copy is the sender's — and is recorded as one file write
// with its size and keyed digest, the session's end counting the bytes;
// the contents themselves never become stream chunks.
func TestLargeUpload(t *testing.T) {
	size := uploadBytes(t)
	f := start(t, options{policy: "version: 2\nallow:\n  - id: files\n    subsystems: [sftp]\n"})
	c := f.loginAs(t, "alice", "a")
	local := filepath.Join(t.TempDir(), "big.bin")
	remote := t.TempDir()
	os.Chmod(remote, 0o777)
	sent := writeRandom(t, local, size)

	began := time.Now()
	if _, errOut, err := f.run(t, "", "scp", "-F", c.config, "-q", local, f.user("web")+":"+remote+"/big.bin"); err != nil {
		t.Fatalf("scp of %d bytes: %v %s", size, err, errOut)
	}
	took := time.Since(began) // logged, not judged
	if got := fileSHA256(t, filepath.Join(remote, "big.bin")); got != sent {
		t.Fatalf("the target's copy has SHA-256 %s, the file sent %s", got, sent)
	}

	key, err := f.pii.TenantKey(t.Context(), "acme")
	if err != nil {
		t.Fatal(err)
	}
	sum := gateway.NewKeyedSum(key, "auditledger file v1\n")
	in, err := os.Open(local)
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(writerFunc(func(b []byte) (int, error) { sum.Write(b); return len(b), nil }), in)
	in.Close()
	want := sum.Digest()

	ended := f.waitFor(t, 1, func(e natstest.Stored) bool {
		return e.Event.Type == events.SessionEnded && e.Payload["bytes_in"] == float64(size)
	})[0]
	var writes int
	for _, e := range f.sessionEvents(t, ended.Event.SessionID) {
		switch {
		case e.Event.Type == events.SessionOutput:
			t.Errorf("the upload's contents were recorded as a stream chunk: %s", e.Raw)
		case e.Event.Type == events.CommandExecuted && e.Payload["operation"] == "write":
			writes++
			if e.Payload["bytes"] != float64(size) || e.Payload["hmac"] != want || e.Payload["path"] != remote+"/big.bin" {
				t.Errorf("recorded %v bytes, %v, %v; want %d bytes, %s, %s", e.Payload["bytes"], e.Payload["hmac"], e.Payload["path"],
					size, want, remote+"/big.bin")
			}
		}
	}
	if writes != 1 || ended.Payload["exit_status"] != 0.0 {
		t.Errorf("%d writes recorded, want 1; session ended with %v", writes, ended.Payload)
	}
	t.Logf("%d bytes uploaded through the gateway in %s (scp, login included), SHA-256 %s", size, took.Round(time.Millisecond), sent)
}

type writerFunc func([]byte) (int, error)

func (w writerFunc) Write(b []byte) (int, error) { return w(b) }

// writeRandom writes size random bytes (a ChaCha8 stream: cheap to make)
// to path and returns their SHA-256 in hex.
func writeRandom(t *testing.T, path string, size int64) string {
	t.Helper()
	out, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	var seed [32]byte
	for i := range seed {
		seed[i] = byte(rand.Uint32())
	}
	src := rand.NewChaCha8(seed)
	h := sha256.New()
	w := bufio.NewWriterSize(io.MultiWriter(out, h), 1<<20)
	buf := make([]byte, 1<<20)
	for left := size; left > 0; {
		src.Read(buf)
		n := min(left, int64(len(buf)))
		if _, err := w.Write(buf[:n]); err != nil {
			t.Fatal(err)
		}
		left -= n
	}
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	if err := out.Close(); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(h.Sum(nil))
}

func fileSHA256(t *testing.T, path string) string {
	t.Helper()
	in, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	h := sha256.New()
	if _, err := io.Copy(h, in); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(h.Sum(nil))
}
