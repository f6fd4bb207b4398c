package evidence

import (
	"crypto/ed25519"
	"crypto/rand"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/crypto/ssh"
)

// Our SSH signatures verify with ssh-keygen -Y verify, and ssh-keygen's
// verify with ours; a changed message, another namespace or another key
// fail.
func TestSSHSignatureWithSSHKeygen(t *testing.T) {
	keygen, err := exec.LookPath("ssh-keygen")
	if err != nil {
		t.Fatalf("ssh-keygen (Debian's openssh-client) is needed: %v", err)
	}
	dir := t.TempDir()
	_, priv, _ := ed25519.GenerateKey(rand.Reader)
	signer, _ := ssh.NewSignerFromKey(priv)
	msg := []byte(`{"bundle":"test"}` + "\n")
	sig, err := SSHSign(signer, Namespace, msg)
	if err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(dir, "manifest.json"), msg, 0o644)
	os.WriteFile(filepath.Join(dir, "manifest.json.sig"), sig, 0o644)
	os.WriteFile(filepath.Join(dir, "allowed_signers"), AllowedSigners("evidence@test", signer.PublicKey()), 0o644)
	verify := func(namespace string) (string, error) {
		cmd := exec.Command(keygen, "-Y", "verify", "-f", filepath.Join(dir, "allowed_signers"), "-I", "evidence@test",
			"-n", namespace, "-s", filepath.Join(dir, "manifest.json.sig"))
		in, _ := os.Open(filepath.Join(dir, "manifest.json"))
		defer in.Close()
		cmd.Stdin = in
		out, err := cmd.CombinedOutput()
		return string(out), err
	}
	if out, err := verify(Namespace); err != nil || !strings.Contains(out, "Good") {
		t.Fatalf("ssh-keygen -Y verify: %v\n%s", err, out)
	}
	if out, err := verify("file"); err == nil {
		t.Errorf("ssh-keygen accepted the signature in another namespace:\n%s", out)
	}
	os.WriteFile(filepath.Join(dir, "manifest.json"), []byte(`{"bundle":"tampered"}`+"\n"), 0o644)
	if out, err := verify(Namespace); err == nil {
		t.Errorf("ssh-keygen accepted a changed manifest:\n%s", out)
	}

	// ssh-keygen's own signature, checked by ours.
	keyFile := filepath.Join(dir, "id_ed25519")
	if out, err := exec.Command(keygen, "-q", "-t", "ed25519", "-N", "", "-f", keyFile).CombinedOutput(); err != nil {
		t.Fatalf("ssh-keygen -t ed25519: %v\n%s", err, out)
	}
	os.WriteFile(filepath.Join(dir, "m"), msg, 0o644)
	if out, err := exec.Command(keygen, "-Y", "sign", "-f", keyFile, "-n", Namespace, filepath.Join(dir, "m")).CombinedOutput(); err != nil {
		t.Fatalf("ssh-keygen -Y sign: %v\n%s", err, out)
	}
	theirs, _ := os.ReadFile(filepath.Join(dir, "m.sig"))
	pub, err := SSHVerify(theirs, msg, Namespace)
	if err != nil {
		t.Fatalf("ssh-keygen's signature: %v", err)
	}
	pubFile, _ := os.ReadFile(keyFile + ".pub")
	want, _, _, _, _ := ssh.ParseAuthorizedKey(pubFile)
	if string(pub.Marshal()) != string(want.Marshal()) {
		t.Errorf("the signature's key is not ssh-keygen's")
	}
	if _, err := SSHVerify(theirs, []byte("other"), Namespace); err == nil {
		t.Errorf("a signature verified for another message")
	}
	if _, err := SSHVerify(theirs, msg, "file"); err == nil || !strings.Contains(err.Error(), "namespace") {
		t.Errorf("another namespace: %v", err)
	}
	keys, err := ParseAllowedSigners(AllowedSigners("evidence@test", signer.PublicKey()))
	if err != nil || len(keys) != 1 || string(keys[0].Marshal()) != string(signer.PublicKey().Marshal()) {
		t.Errorf("allowed_signers round trip: %v %v", keys, err)
	}
	if _, err := ParseAllowedSigners([]byte(`x namespaces="git" ` + string(ssh.MarshalAuthorizedKey(signer.PublicKey())))); err == nil {
		t.Errorf("a key for another namespace was taken")
	}
}
