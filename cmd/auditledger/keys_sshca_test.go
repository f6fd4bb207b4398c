package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

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

// TestKeysSSHCARotateHost: keys ssh-ca --rotate-host makes a new host CA,
// keeps the retired public key and issues the host certificate from the
// new CA for the same host names.
func TestKeysSSHCARotateHost(t *testing.T) {
	dir := t.TempDir()
	k0, err := sshproxy.OpenKeys(dir, []string{"gw.example", "localhost"})
	if err != nil {
		t.Fatal(err)
	}
	out, errs, code := runCLI(t, "keys", "ssh-ca", "--dir", dir, "--rotate-host")
	pub, _ := os.ReadFile(filepath.Join(dir, sshproxy.HostCAFile+".pub"))
	if code != 0 || !strings.Contains(out, "listed in known_hosts until") || !strings.Contains(out, "@cert-authority HOSTS "+string(pub)) {
		t.Fatalf("--rotate-host: %d %s %s", code, out, errs)
	}
	certText, _ := os.ReadFile(filepath.Join(dir, sshproxy.HostKeyFile+"-cert.pub"))
	cert, _, _, _, err := ssh.ParseAuthorizedKey(certText)
	if err != nil {
		t.Fatal(err)
	}
	k1, err := sshproxy.OpenKeys(dir, []string{"gw.example", "localhost"})
	if err != nil {
		t.Fatal(err)
	}
	same := func(a, b interface{ Marshal() []byte }) bool { return string(a.Marshal()) == string(b.Marshal()) }
	if same(k0.HostCA.PublicKey(), k1.HostCA.PublicKey()) || len(k1.OlderHost) != 1 || !same(k1.OlderHost[0].Key, k0.HostCA.PublicKey()) {
		t.Error("the host CA did not rotate, or the retired one is not kept")
	}
	hc, ok := cert.(*ssh.Certificate)
	if !ok || !same(hc.SignatureKey, k1.HostCA.PublicKey()) || strings.Join(hc.ValidPrincipals, ",") != "gw.example,localhost" {
		t.Errorf("the host certificate after --rotate-host: %v", cert)
	}
	if lines := strings.Split(k1.KnownHostsLines([]string{"*"}, time.Now()), "\n"); len(lines) != 2 {
		t.Errorf("known_hosts lines during the overlap: %q", lines)
	}
	if lines := strings.Split(k1.KnownHostsLines([]string{"*"}, time.Now().Add(sshproxy.MaxUserCertValidity)), "\n"); len(lines) != 1 {
		t.Errorf("known_hosts lines after the overlap: %q", lines)
	}
}
