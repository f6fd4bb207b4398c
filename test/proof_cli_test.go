package test

import (
	"path/filepath"
	"strings"
	"testing"
)

// proof consistency proves only between sizes a verifier has signed roots
// for (as proof inclusion does), and gives the empty proofs of m = 0 and
// m = n (docs/FORMAT.md §6).
func TestProofConsistencySizes(t *testing.T) {
	dir := t.TempDir()
	keys := filepath.Join(dir, "keys")
	mustRun(t, nil, nil, "keys", "generate", "--out", keys)
	store := filepath.Join(dir, "store")
	mustRun(t, eventLines(0, 12), nil, "append", "--store", store, "--key", filepath.Join(keys, "ledger.key"), "--segment-size", "5")
	for _, c := range []struct {
		args []string
		want string // on stdout, or in the error when code != 0
		code int
	}{
		{[]string{"--from", "0", "--to", "10"}, "old 0\nnew 10\n", 0},
		{[]string{"--from", "5", "--to", "5"}, "old 5\nnew 5\n", 0},
		{[]string{"--from", "3", "--to", "10"}, "no signed checkpoint at size 3", 2},
		{[]string{"--from", "5", "--to", "7"}, "no signed checkpoint at size 7", 2},
		{[]string{"--from", "10", "--to", "5"}, "--from 10 is beyond --to 5", 2},
	} {
		r := run(t, nil, nil, append([]string{"proof", "consistency", "--store", store}, c.args...)...)
		out := r.stdout
		if c.code != 0 {
			out = r.stderr
		}
		if r.code != c.code || !strings.Contains(out, c.want) {
			t.Errorf("proof consistency %v: exit %d, %q; want exit %d with %q", c.args, r.code, out, c.code, c.want)
		}
		if c.code == 0 && strings.Count(strings.TrimSpace(r.stdout), "\n") != 2 {
			t.Errorf("proof consistency %v: want an empty proof, got %q", c.args, r.stdout)
		}
	}
}
