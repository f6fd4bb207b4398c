package test

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/minio/minio-go/v7"

	"github.com/auditledger/auditledger/test/natstest"
	"github.com/auditledger/auditledger/test/versitygw"
)

var binary string

// builtEnv names the auditledger binary to a test binary run again by a
// test, so that it does not build its own.
const builtEnv = "AUDITLEDGER_TEST_BUILT_BINARY"

func TestMain(m *testing.M) {
	natstest.RunNodeIfAsked() // this binary as a node of a process cluster
	// A test that runs this test binary again (TestComposeStack, inside
	// its namespaces) hands it the auditledger binary already built.
	if b := os.Getenv(builtEnv); b != "" {
		binary = b
		code := m.Run()
		stopTargetPostgres()
		os.Exit(code)
	}
	dir, err := os.MkdirTemp("", "auditledger-test-")
	if err != nil {
		panic(err)
	}
	binary = filepath.Join(dir, "auditledger")
	build := exec.Command("go", "build", "-race", "-o", binary, "../cmd/auditledger")
	if os.Getenv("AUDITLEDGER_TEST_NORACE") != "" {
		build = exec.Command("go", "build", "-o", binary, "../cmd/auditledger")
	}
	if out, err := build.CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "building auditledger: %v\n%s", err, out)
		os.Exit(1)
	}
	// A -race binary sleeps a second before it exits (the race runtime's
	// atexit_sleep_ms), which the tests would pay at every command they
	// run. Without it a race is still reported and still makes the exit
	// status 66: the runtime waits for reports in progress either way.
	os.Setenv("GORACE", strings.TrimSpace(os.Getenv("GORACE")+" atexit_sleep_ms=0"))
	code := m.Run()
	stopTargetPostgres()
	os.RemoveAll(dir)
	os.Exit(code)
}

type result struct {
	code           int
	stdout, stderr string
}

func run(t *testing.T, stdin []byte, env []string, args ...string) result {
	t.Helper()
	cmd := exec.Command(binary, args...)
	cmd.Stdin = bytes.NewReader(stdin)
	cmd.Env = append(os.Environ(), env...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatalf("running auditledger %v: %v", args, err)
	}
	return result{code, out.String(), errb.String()}
}

func mustRun(t *testing.T, stdin []byte, env []string, args ...string) result {
	t.Helper()
	r := run(t, stdin, env, args...)
	if r.code != 0 {
		t.Fatalf("auditledger %v: exit %d\nstdout: %s\nstderr: %s", args, r.code, r.stdout, r.stderr)
	}
	return r
}

func eventLines(from, n int) []byte {
	var b bytes.Buffer
	for i := from; i < from+n; i++ {
		fmt.Fprintf(&b, `{"version":1,"id":"ev-%d","type":"command.executed","time":"2026-11-26T12:00:00Z","tenant":"acme","source":{"kind":"postgres-proxy","instance":"p1"},"actor":{"issuer":"https://idp.example","subject":"alice","kind":"human"},"session_id":"s1","session_seq":%d,"payload":{"statement":"SELECT %d"}}`+"\n", i, i+1, i)
	}
	return b.Bytes()
}

type fixture struct {
	keys, store, vkey string
	checkpoint        []byte // after the first append
}

// newStore makes keys and a store of 3 segments of 4 records, then 1 more
// segment; checkpoint is the signed checkpoint after the first 12 records.
func newStore(t *testing.T, storeURL string, env []string) fixture {
	t.Helper()
	f := fixture{keys: t.TempDir(), store: storeURL}
	mustRun(t, nil, nil, "keys", "generate", "--out", f.keys, "--name", "test.auditledger.dev/log")
	f.vkey = filepath.Join(f.keys, "ledger.vkey")
	r := mustRun(t, eventLines(0, 12), env, "append", "--store", storeURL, "--key", filepath.Join(f.keys, "ledger.key"), "--segment-size", "4")
	f.checkpoint = []byte(r.stdout)
	mustRun(t, eventLines(12, 3), env, "append", "--store", storeURL, "--key", filepath.Join(f.keys, "ledger.key"), "--segment-size", "4")
	return f
}

func segPath(dir string, first int) string {
	return filepath.Join(dir, "segments", fmt.Sprintf("%020d.seg", first))
}

func cpPath(dir string, size int) string {
	return filepath.Join(dir, "checkpoints", fmt.Sprintf("%020d", size))
}

func rewrite(t *testing.T, path string, change func([]byte) []byte) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	os.Chmod(path, 0o644)
	if err := os.WriteFile(path, change(b), 0o444); err != nil {
		t.Fatal(err)
	}
}

func flip(off int) func([]byte) []byte {
	return func(b []byte) []byte {
		if off < 0 {
			off += len(b)
		}
		b[off] ^= 0x01
		return b
	}
}

// TestTamper tampers with a copy of a good store in each way an attacker
// with write access to the directory could, and checks that verify exits 1
// naming the failure — and that the untouched store exits 0.
func TestTamper(t *testing.T) {
	cases := []struct {
		name   string
		tamper func(t *testing.T, f fixture)
		want   string // in verify's output
		since  bool
	}{
		{"untouched", func(*testing.T, fixture) {}, "OK", false},
		{"flipped byte in a record's event", func(t *testing.T, f fixture) {
			rewrite(t, segPath(f.store, 4), flip(52+4+25+10)) // inside record 4's event
		}, "segments/00000000000000000004.seg: chain value in segment trailer", false},
		{"flipped byte in a record's index", func(t *testing.T, f fixture) {
			rewrite(t, segPath(f.store, 4), flip(52+4+8)) // last byte of record 4's index
		}, "index 4: segments/00000000000000000004.seg: record index", false},
		{"flipped byte in a segment header (first index)", func(t *testing.T, f fixture) {
			rewrite(t, segPath(f.store, 8), flip(15))
		}, "segment name does not match", false},
		{"flipped byte in a segment header (previous chain)", func(t *testing.T, f fixture) {
			rewrite(t, segPath(f.store, 8), flip(40))
		}, "chain value before", false},
		{"flipped byte in a segment trailer", func(t *testing.T, f fixture) {
			rewrite(t, segPath(f.store, 8), flip(-20))
		}, "tree root at size 12 in segment trailer", false},
		{"deleted segment", func(t *testing.T, f fixture) {
			os.Remove(segPath(f.store, 4))
		}, "records 4..7 missing", false},
		{"deleted last segment", func(t *testing.T, f fixture) {
			os.Remove(segPath(f.store, 12))
		}, "exceeds the records in the store", false},
		{"swapped segments", func(t *testing.T, f fixture) {
			a, b := segPath(f.store, 4), segPath(f.store, 8)
			tmp := a + ".x"
			os.Rename(a, tmp)
			os.Rename(b, a)
			os.Rename(tmp, b)
		}, "segment name does not match", false},
		{"truncated segment", func(t *testing.T, f fixture) {
			rewrite(t, segPath(f.store, 4), func(b []byte) []byte { return b[:len(b)-100] })
		}, "truncated", false},
		{"segment with records appended", func(t *testing.T, f fixture) {
			rewrite(t, segPath(f.store, 12), func(b []byte) []byte { return append(b, b[60:200]...) })
		}, "does not parse", false},
		{"replaced checkpoint signed by another key", func(t *testing.T, f fixture) {
			other := t.TempDir()
			mustRun(t, nil, nil, "keys", "generate", "--out", other, "--name", "test.auditledger.dev/log")
			forged := t.TempDir()
			mustRun(t, eventLines(0, 4), nil, "append", "--store", forged, "--key", filepath.Join(other, "ledger.key"), "--segment-size", "4")
			b, _ := os.ReadFile(cpPath(forged, 4))
			rewrite(t, cpPath(f.store, 4), func([]byte) []byte { return b })
		}, "not by the key given (test.auditledger.dev/log+", false},
		{"deleted checkpoint", func(t *testing.T, f fixture) {
			os.Remove(cpPath(f.store, 8))
		}, "no checkpoint at the segment's end", false},
		{"rewritten history signed by the right key", func(t *testing.T, f fixture) {
			// The attacker holds the signing key and rebuilds the whole log
			// with one event changed. Only --since can catch this.
			os.RemoveAll(f.store)
			evs := eventLines(0, 15)
			evs = bytes.Replace(evs, []byte("SELECT 5"), []byte("SELECT 6"), 1)
			mustRun(t, evs, nil, "append", "--store", f.store, "--key", filepath.Join(f.keys, "ledger.key"), "--segment-size", "4")
		}, "not consistent with the --since checkpoint", true},
		{"truncated history (last segments and checkpoints removed)", func(t *testing.T, f fixture) {
			for _, first := range []int{8, 12} {
				os.Remove(segPath(f.store, first))
			}
			for _, size := range []int{12, 15} {
				os.Remove(cpPath(f.store, size))
			}
		}, "shorter than the --since checkpoint", true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			f := newStore(t, t.TempDir(), nil)
			c.tamper(t, f)
			args := []string{"verify", "--store", f.store, "--vkey", f.vkey}
			if c.since {
				p := filepath.Join(t.TempDir(), "cp")
				os.WriteFile(p, f.checkpoint, 0o644)
				args = append(args, "--since", p)
			}
			r := run(t, nil, nil, args...)
			if c.name == "untouched" {
				if r.code != 0 || !strings.Contains(r.stdout, "records      15 in 4 segments") {
					t.Fatalf("untouched store: exit %d\n%s%s", r.code, r.stdout, r.stderr)
				}
				return
			}
			if r.code != 1 || !strings.Contains(r.stdout, c.want) || !strings.Contains(r.stdout, "FAIL") {
				t.Fatalf("verify: exit %d, want 1 and %q in:\n%s%s", r.code, c.want, r.stdout, r.stderr)
			}
		})
	}
}

// TestRewriteWithoutSinceStillVerifies documents why --since matters: a
// history rebuilt with the right key is internally consistent.
func TestRewriteWithoutSinceStillVerifies(t *testing.T) {
	f := newStore(t, t.TempDir(), nil)
	os.RemoveAll(f.store)
	mustRun(t, bytes.Replace(eventLines(0, 15), []byte("SELECT 5"), []byte("SELECT 6"), 1), nil,
		"append", "--store", f.store, "--key", filepath.Join(f.keys, "ledger.key"), "--segment-size", "4")
	mustRun(t, nil, nil, "verify", "--store", f.store, "--vkey", f.vkey)
}

// TestAppendRejects: invalid lines are reported with line number and
// reason, kept in --rejected, not appended; exit 1.
func TestAppendRejects(t *testing.T) {
	keys, store := t.TempDir(), t.TempDir()
	mustRun(t, nil, nil, "keys", "generate", "--out", keys)
	input := append(eventLines(0, 2), []byte(`{"version":1,"id":"bad","type":"command.executed"}`+"\nnot json\n")...)
	input = append(input, eventLines(2, 1)...)
	input = append(input, []byte(`{"version":1,"id":"x","id":"y"}`+"\n")...)
	rejected := filepath.Join(t.TempDir(), "rejected.jsonl")
	r := run(t, input, nil, "append", "--store", store, "--key", filepath.Join(keys, "ledger.key"), "--rejected", rejected)
	if r.code != 1 {
		t.Fatalf("exit %d, want 1\n%s", r.code, r.stderr)
	}
	for _, want := range []string{"line 3: rejected: time: required", "line 4: rejected:", "line 6: rejected: id: duplicate member name", "appended 3 events"} {
		if !strings.Contains(r.stderr, want) {
			t.Errorf("stderr lacks %q:\n%s", want, r.stderr)
		}
	}
	kept, _ := os.ReadFile(rejected)
	if n := bytes.Count(kept, []byte("\n")); n != 3 {
		t.Errorf("rejected file has %d lines, want 3:\n%s", n, kept)
	}
	v := mustRun(t, nil, nil, "verify", "--store", store, "--vkey", filepath.Join(keys, "ledger.vkey"))
	if !strings.Contains(v.stdout, "records      3 in 1 segments") {
		t.Fatalf("verify:\n%s", v.stdout)
	}
}

// TestProofsWithStockVerifiers: the proof the CLI prints verifies with our
// offline verifier, and a proof for another record does not.
func TestProofs(t *testing.T) {
	f := newStore(t, t.TempDir(), nil)
	dir := t.TempDir()
	rec := filepath.Join(dir, "rec5")
	p := mustRun(t, nil, nil, "proof", "inclusion", "--store", f.store, "--index", "5", "--record", rec, "--vkey", f.vkey)
	if !strings.HasPrefix(p.stdout, "c2sp.org/tlog-proof@v1\nindex 5\n") {
		t.Fatalf("proof:\n%s", p.stdout)
	}
	proofFile := filepath.Join(dir, "p5")
	os.WriteFile(proofFile, []byte(p.stdout), 0o644)
	ok := mustRun(t, nil, nil, "proof", "verify", "--vkey", f.vkey, "--record", rec, "--proof", proofFile)
	if !strings.Contains(ok.stdout, "record 5 is in test.auditledger.dev/log at tree size 15") {
		t.Fatalf("proof verify:\n%s", ok.stdout)
	}
	rec6 := filepath.Join(dir, "rec6")
	mustRun(t, nil, nil, "proof", "inclusion", "--store", f.store, "--index", "6", "--record", rec6)
	if r := run(t, nil, nil, "proof", "verify", "--vkey", f.vkey, "--record", rec6, "--proof", proofFile); r.code != 1 {
		t.Fatalf("proof for record 5 accepted record 6: exit %d %s", r.code, r.stdout)
	}
	c := mustRun(t, nil, nil, "proof", "consistency", "--store", f.store, "--from", "12", "--to", "15")
	if !strings.HasPrefix(c.stdout, "auditledger.dev/tlog-consistency@v1\nold 12\nnew 15\n") {
		t.Fatalf("consistency proof:\n%s", c.stdout)
	}
	cp := mustRun(t, nil, nil, "checkpoint", "--store", f.store, "--vkey", f.vkey)
	if !strings.HasPrefix(cp.stdout, "test.auditledger.dev/log\n15\n") {
		t.Fatalf("checkpoint:\n%s", cp.stdout)
	}
	if r := run(t, nil, nil, "proof", "inclusion", "--store", f.store, "--index", "1", "--size", "5"); r.code == 0 || !strings.Contains(r.stderr, "no signed checkpoint at size 5") {
		t.Fatalf("proof at an unsigned size: exit %d %s", r.code, r.stderr)
	}
}

// TestS3 runs the CLI against versitygw with Object Lock: verify reports
// each segment's retention, and a plain overwrite of a sealed segment
// neither replaces what verify reads nor goes unreported.
func TestS3(t *testing.T) {
	srv := versitygw.Start(t)
	bucket := srv.Bucket(t)
	env := []string{"AWS_ACCESS_KEY_ID=" + versitygw.AccessKey, "AWS_SECRET_ACCESS_KEY=" + versitygw.SecretKey}
	url := fmt.Sprintf("s3://%s/tenant-a?endpoint=%s&insecure=1&retention=2h", bucket, srv.Endpoint)
	f := newStore(t, url, env)
	r := run(t, nil, env, "verify", "--store", url, "--vkey", f.vkey, "-v")
	if r.code != 0 || !strings.Contains(r.stdout, "every segment locked COMPLIANCE for at least 2h0m0s") ||
		strings.Count(r.stdout, "COMPLIANCE until") != 4 {
		t.Fatalf("verify on S3: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	// Asking for more retention than the segments carry fails.
	if r := run(t, nil, env, "verify", "--store", url, "--vkey", f.vkey, "--retention", "3h"); r.code != 1 || !strings.Contains(r.stdout, "retain-until") {
		t.Fatalf("verify --retention 3h: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	// The attacker overwrites a sealed segment without the condition.
	key := "tenant-a/segments/00000000000000000004.seg"
	forged := []byte("forged")
	if _, err := srv.Client.PutObject(t.Context(), bucket, key, bytes.NewReader(forged), int64(len(forged)), minio.PutObjectOptions{}); err != nil {
		t.Fatal(err)
	}
	r = run(t, nil, env, "verify", "--store", url, "--vkey", f.vkey)
	if r.code != 1 || !strings.Contains(r.stdout, "shadows the sealed version") || !strings.Contains(r.stdout, "intact") {
		t.Fatalf("verify after overwrite: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
}

// TestReadmeSample: the README's sample file appends cleanly and verifies.
func TestReadmeSample(t *testing.T) {
	keys, store := t.TempDir(), t.TempDir()
	mustRun(t, nil, nil, "keys", "generate", "--out", keys)
	r := mustRun(t, mustReadSample(t), nil, "append", "--store", store, "--key", filepath.Join(keys, "ledger.key"))
	cp := filepath.Join(t.TempDir(), "checkpoint.txt")
	os.WriteFile(cp, []byte(r.stdout), 0o644)
	v := mustRun(t, nil, nil, "verify", "--store", store, "--vkey", filepath.Join(keys, "ledger.vkey"), "--since", cp)
	if !strings.Contains(v.stdout, "records      12 in 1 segments") {
		t.Fatalf("verify:\n%s", v.stdout)
	}
}

func mustReadSample(t *testing.T) []byte {
	t.Helper()
	b, err := os.ReadFile("../ledger/testdata/sample.jsonl")
	if err != nil {
		t.Fatal(err)
	}
	return b
}
