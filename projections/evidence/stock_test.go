package evidence_test

import (
	"archive/zip"
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/crypto/ssh"

	"github.com/auditledger/auditledger/projections/evidence"
)

// stockSteps are the commands of the bundle's VERIFY.md that an auditor
// runs with stock tools: the lines of its first sh block, as written.
func stockSteps(t *testing.T, guide []byte) []string {
	t.Helper()
	_, rest, ok := bytes.Cut(guide, []byte("\n```sh\n"))
	block, _, ok2 := bytes.Cut(rest, []byte("\n```\n"))
	if !ok || !ok2 {
		t.Fatalf("VERIFY.md has no sh block:\n%s", guide)
	}
	steps := strings.Split(string(block), "\n")
	if len(steps) != 4 {
		t.Fatalf("VERIFY.md's sh block has %d commands, this test knows 4:\n%s", len(steps), block)
	}
	return steps
}

// runSteps runs the documented commands in order, each with sh in a new
// empty directory, as VERIFY.md says, and returns the index of the first
// that fails (len(steps) when none does) with the output so far.
func runSteps(t *testing.T, steps []string, bundle, signers string) (int, string) {
	t.Helper()
	dir := t.TempDir()
	var out strings.Builder
	for i, step := range steps {
		cmd := exec.Command("sh", "-c", step)
		cmd.Dir = dir
		cmd.Env = append(os.Environ(), "BUNDLE="+bundle, "SIGNERS="+signers, "LC_ALL=C")
		b, err := cmd.CombinedOutput()
		fmt.Fprintf(&out, "$ %s\n%s", step, b)
		if err != nil {
			return i, out.String()
		}
	}
	return len(steps), out.String()
}

// The stock-tool check VERIFY.md documents (ssh-keygen, sha256sum, unzip)
// passes on a bundle and catches every change, addition and removal of a
// file, even with SHA256SUMS rewritten to agree; auditledger's verifier
// refuses each too.
func TestStockToolsCatchEveryChange(t *testing.T) {
	for _, tool := range []string{"ssh-keygen", "sha256sum", "unzip", "sort", "uniq", "grep", "sed"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("%s is needed (openssh-client, coreutils, unzip): %v", tool, err)
		}
	}
	r := newRun(t)
	files := zipFiles(t, r.bundle)
	steps := stockSteps(t, files[evidence.VerifyFile])
	// The operator's published key, kept outside the bundle.
	keys := t.TempDir()
	signers := filepath.Join(keys, "allowed_signers")
	if err := os.WriteFile(signers, evidence.AllowedSigners(r.m.Signer, r.signer.PublicKey()), 0o644); err != nil {
		t.Fatal(err)
	}
	write := func(name string, b []byte) string {
		p := filepath.Join(keys, name)
		if err := os.WriteFile(p, b, 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	if n, out := runSteps(t, steps, write("bundle.zip", r.bundle), signers); n != len(steps) || !strings.Contains(out, "Good \"auditledger-evidence\" signature") {
		t.Fatalf("the documented check fails on the bundle as built, at command %d:\n%s", n+1, out)
	}
	if _, err := r.verify(r.bundle); err != nil {
		t.Fatal(err)
	}

	_, attackerKey, _ := ed25519.GenerateKey(rand.Reader)
	attacker, _ := ssh.NewSignerFromKey(attackerKey)
	resum := func(f map[string][]byte) {
		var sums strings.Builder
		for _, line := range strings.SplitAfter(strings.TrimSuffix(string(f["SHA256SUMS"]), "\n"), "\n") {
			_, path, _ := strings.Cut(strings.TrimSuffix(line, "\n"), "  ")
			if _, ok := f[path]; ok {
				fmt.Fprintf(&sums, "%x  %s\n", sha256.Sum256(f[path]), path)
			}
		}
		f["SHA256SUMS"] = []byte(sums.String())
	}
	const csvPath = "controls/8.11/masks_by_rule.csv"
	cases := []struct {
		name   string
		change func(f map[string][]byte) []byte
		step   int // the documented command that must fail: 1 ssh-keygen, 2 sha256sum, 3 the listing
	}{
		{"a row added to a control CSV, SHA256SUMS updated", func(f map[string][]byte) []byte {
			f[csvPath] = append(f[csvPath], "injected,row,1\n"...)
			resum(f)
			return rezip(t, f)
		}, 1},
		{"a row added, SHA256SUMS updated and re-signed with another key and keys/ replaced", func(f map[string][]byte) []byte {
			f[csvPath] = append(f[csvPath], "injected,row,1\n"...)
			f[evidence.SignersFile] = evidence.AllowedSigners(r.m.Signer, attacker.PublicKey())
			resum(f)
			f["SHA256SUMS.sig"] = must(evidence.SSHSign(attacker, evidence.Namespace, f["SHA256SUMS"]))
			return rezip(t, f)
		}, 1},
		{"a file removed", func(f map[string][]byte) []byte {
			delete(f, csvPath)
			return rezip(t, f)
		}, 2},
		{"a file removed and its line dropped from SHA256SUMS", func(f map[string][]byte) []byte {
			delete(f, csvPath)
			resum(f)
			return rezip(t, f)
		}, 1},
		{"a byte of a control CSV changed", func(f map[string][]byte) []byte {
			f[csvPath][3] ^= 1
			return rezip(t, f)
		}, 2},
		{"the manifest changed", func(f map[string][]byte) []byte {
			f["manifest.json"] = bytes.Replace(f["manifest.json"], []byte(`"tenant": "acme"`), []byte(`"tenant": "acme2"`), 1)
			return rezip(t, f)
		}, 2},
		{"a file added", func(f map[string][]byte) []byte {
			f["controls/8.11/extra.csv"] = []byte("a,b\n1,2\n")
			return rezip(t, f)
		}, 3},
		{"a file added and listed in SHA256SUMS", func(f map[string][]byte) []byte {
			f["controls/8.11/extra.csv"] = []byte("a,b\n1,2\n")
			f["SHA256SUMS"] = fmt.Appendf(f["SHA256SUMS"], "%x  controls/8.11/extra.csv\n", sha256.Sum256(f["controls/8.11/extra.csv"]))
			return rezip(t, f)
		}, 1},
		{"a listed file twice in the zip, the second changed", func(f map[string][]byte) []byte {
			var buf bytes.Buffer
			zw := zip.NewWriter(&buf)
			for name, data := range f {
				w, _ := zw.Create(name)
				w.Write(data)
			}
			w, _ := zw.Create(csvPath)
			w.Write(append(bytes.Clone(f[csvPath]), "injected,row,1\n"...))
			if err := zw.Close(); err != nil {
				t.Fatal(err)
			}
			return buf.Bytes()
		}, 2},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			f := map[string][]byte{}
			for k, v := range files {
				f[k] = bytes.Clone(v)
			}
			bad := c.change(f)
			n, out := runSteps(t, steps, write("tampered.zip", bad), signers)
			if n != c.step {
				t.Errorf("the documented check stopped at command %d, want %d (%q):\n%s", n, c.step, steps[min(c.step, len(steps)-1)], out)
			}
			if _, err := r.verify(bad); err == nil {
				t.Errorf("evidence verify accepted it")
			}
		})
	}
}
