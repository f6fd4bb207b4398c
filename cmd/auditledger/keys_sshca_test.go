package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/auditledger/auditledger/services/sshproxy"
)

// TestKeysSSHCA: keys ssh-ca rotates the user CA in one step and the
// target CA in two (stage, then activate); activating what was never
// staged is refused, and the gateway's keys read after each step are the
// new ones.
func TestKeysSSHCA(t *testing.T) {
	dir := t.TempDir()
	k0, err := sshproxy.OpenKeys(dir, []string{"localhost"})
	if err != nil {
		t.Fatal(err)
	}
	if _, errs, code := runCLI(t, "keys", "ssh-ca", "--dir", dir, "--rotate-user", "--stage-target"); code == 0 || !strings.Contains(errs, "give one of") {
		t.Errorf("two steps at once: %d %s", code, errs)
	}
	if _, errs, code := runCLI(t, "keys", "ssh-ca", "--dir", dir, "--activate-target"); code == 0 || !strings.Contains(errs, "no staged target CA") {
		t.Errorf("activating what was never staged: %d %s", code, errs)
	}
	out, errs, code := runCLI(t, "keys", "ssh-ca", "--dir", dir, "--rotate-user")
	if code != 0 || !strings.Contains(out, "accepted until") {
		t.Fatalf("--rotate-user: %d %s %s", code, out, errs)
	}
	out, errs, code = runCLI(t, "keys", "ssh-ca", "--dir", dir, "--stage-target")
	next, _ := os.ReadFile(filepath.Join(dir, sshproxy.TargetCAFile+".next.pub"))
	if code != 0 || len(next) == 0 || !strings.Contains(out, string(next)) {
		t.Fatalf("--stage-target: %d %s %s", code, out, errs)
	}
	if _, errs, code := runCLI(t, "keys", "ssh-ca", "--dir", dir, "--activate-target"); code != 0 {
		t.Fatalf("--activate-target: %s", errs)
	}
	k1, err := sshproxy.OpenKeys(dir, []string{"localhost"})
	if err != nil {
		t.Fatal(err)
	}
	same := func(a, b interface{ Marshal() []byte }) bool { return string(a.Marshal()) == string(b.Marshal()) }
	if same(k0.UserCA.PublicKey(), k1.UserCA.PublicKey()) || len(k1.Older) != 1 || !same(k1.Older[0].Key, k0.UserCA.PublicKey()) {
		t.Error("the user CA did not rotate, or the retired one is not kept")
	}
	cur, _ := os.ReadFile(filepath.Join(dir, sshproxy.TargetCAFile+".pub"))
	if same(k0.TargetCA.PublicKey(), k1.TargetCA.PublicKey()) || string(cur) != string(next) {
		t.Error("the staged target CA is not the one in use")
	}
}
