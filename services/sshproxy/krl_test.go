package sshproxy

import (
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/crypto/ssh"
)

// keygen runs Debian's ssh-keygen.
func keygen(t testing.TB, args ...string) string {
	t.Helper()
	out, err := exec.Command("ssh-keygen", args...).CombinedOutput()
	if err != nil {
		t.Fatalf("ssh-keygen %v: %v\n%s", args, err, out)
	}
	return string(out)
}

// krlCase is a certificate and whether ssh-keygen -Q calls it revoked.
type krlCase struct {
	name string
	file string // the -cert.pub (or .pub) file
}

// makeKRLCerts makes a CA, another CA and certificates of several
// serials and key ids in dir.
func makeKRLCerts(t testing.TB, dir string) (ca string, cases []krlCase) {
	ca = filepath.Join(dir, "ca")
	other := filepath.Join(dir, "other_ca")
	keygen(t, "-q", "-t", "ed25519", "-N", "", "-f", ca)
	keygen(t, "-q", "-t", "ed25519", "-N", "", "-f", other)
	cert := func(name, signer, id string, serial uint64) {
		key := filepath.Join(dir, name)
		keygen(t, "-q", "-t", "ed25519", "-N", "", "-f", key)
		keygen(t, "-q", "-s", signer, "-I", id, "-n", "u", "-z", fmt.Sprint(serial), "-V", "-5m:+1h", key+".pub")
		cases = append(cases, krlCase{name, key + "-cert.pub"})
	}
	cert("listed", ca, "a", 5)
	cert("unlisted", ca, "a", 6)
	cert("in-range", ca, "a", 100)
	cert("past-range", ca, "a", 111)
	for _, n := range []uint64{1000, 1003, 1030, 1031} { // a sparse run: ssh-keygen writes a bitmap
		cert(fmt.Sprintf("bitmap-%d", n), ca, "a", n)
	}
	cert("revoked-id", ca, "mallory", 7)
	cert("revoked-id-other-ca", other, "mallory", 7) // id revoked for ca only
	cert("wildcard-id", other, "eve", 8)
	cert("serial-zero", ca, "a", 0)
	cert("explicit-key", ca, "a", 9)
	cert("hashed-key", ca, "a", 10)
	cert("other-ca-serial", other, "a", 5) // serial 5 is revoked for ca, not other
	return ca, cases
}

// TestKRLAgreesWithSSHKeygen: for KRLs ssh-keygen -k makes of every kind
// of revocation (serial lists, ranges and bitmaps, key ids for one CA and
// for every CA, explicit keys, SHA-256 hashes, a revoked CA), ParseKRL's
// verdict on each certificate is ssh-keygen -Q's.
func TestKRLAgreesWithSSHKeygen(t *testing.T) {
	dir := t.TempDir()
	ca, cases := makeKRLCerts(t, dir)
	pubOf := func(name string) string {
		b, _ := os.ReadFile(filepath.Join(dir, name+".pub"))
		return strings.TrimSpace(string(b))
	}
	sum := func(name string) string {
		b, _ := os.ReadFile(filepath.Join(dir, name+".pub"))
		pub, _, _, _, err := ssh.ParseAuthorizedKey(b)
		if err != nil {
			t.Fatal(err)
		}
		return ssh.FingerprintSHA256(pub)
	}
	spec := filepath.Join(dir, "spec")
	os.WriteFile(spec, []byte(strings.Join([]string{
		"# revoked by the security team",
		"serial: 5",
		"serial: 90-110",
		"serial: 1000", "serial: 1003", "serial: 1030",
		"id: mallory",
		"key: " + pubOf("explicit-key"),
		"hash: " + sum("hashed-key"),
	}, "\n")+"\n"), 0o644)
	krl := filepath.Join(dir, "krl")
	keygen(t, "-k", "-f", krl, "-s", ca+".pub", "-z", "42", spec)
	b, err := os.ReadFile(krl)
	if err != nil {
		t.Fatal(err)
	}
	// A key id revoked for every CA, which ssh-keygen -k does not write
	// but OpenSSH reads (ssh-keygen -Q below): a certificates section
	// with an empty CA key, appended.
	str := func(b []byte) []byte { return append(binary.BigEndian.AppendUint32(nil, uint32(len(b))), b...) }
	wild := append(append(str(nil), str(nil)...), append([]byte{krlCertKeyID}, str(str([]byte("eve")))...)...)
	b = append(append(b, krlSectionCertificates), str(wild)...)
	if err := os.WriteFile(krl, b, 0o644); err != nil {
		t.Fatal(err)
	}
	k, err := ParseKRL(b)
	if err != nil {
		t.Fatal(err)
	}
	if k.Version != 42 {
		t.Errorf("KRL version %d", k.Version)
	}
	var bitmaps int
	for _, c := range k.certs {
		bitmaps += len(c.bitmaps)
	}
	if bitmaps == 0 {
		t.Error("ssh-keygen wrote no serial bitmap: the case is not covered")
	}
	check := func(k *KRL, krl string, cases []krlCase) {
		t.Helper()
		for _, c := range cases {
			text, _ := os.ReadFile(c.file)
			pub, _, _, _, err := ssh.ParseAuthorizedKey(text)
			if err != nil {
				t.Fatal(err)
			}
			why := k.Revoked(pub)
			err = exec.Command("ssh-keygen", "-Q", "-f", krl, c.file).Run()
			var ee *exec.ExitError
			revoked := errors.As(err, &ee)
			if err != nil && !revoked {
				t.Fatal(err)
			}
			if (why != "") != revoked {
				t.Errorf("%s: ParseKRL says %q, ssh-keygen -Q says revoked=%v", c.name, why, revoked)
			}
		}
	}
	check(k, krl, cases)
	want := map[string]bool{"listed": true, "in-range": true, "bitmap-1000": true, "bitmap-1003": true, "bitmap-1030": true,
		"revoked-id": true, "wildcard-id": true, "explicit-key": true, "hashed-key": true}
	for _, c := range cases {
		text, _ := os.ReadFile(c.file)
		pub, _, _, _, _ := ssh.ParseAuthorizedKey(text)
		if got := k.Revoked(pub) != ""; got != want[c.name] {
			t.Errorf("%s: revoked %v, want %v", c.name, got, want[c.name])
		}
	}

	// A revoked CA revokes every certificate it signed.
	caKRL := filepath.Join(dir, "ca-krl")
	keygen(t, "-k", "-f", caKRL, ca+".pub")
	b, _ = os.ReadFile(caKRL)
	if k, err = ParseKRL(b); err != nil {
		t.Fatal(err)
	}
	check(k, caKRL, cases)
	text, _ := os.ReadFile(cases[1].file)
	pub, _, _, _, _ := ssh.ParseAuthorizedKey(text)
	if why := k.Revoked(pub); why != "the certificate authority that signed it is revoked" {
		t.Errorf("a certificate of a revoked CA: %q", why)
	}
	if os.Getenv("AUDITLEDGER_WRITE_KRL_SEEDS") != "" { // refreshes the fuzz seeds
		for name, f := range map[string]string{"mixed.krl": krl, "ca.krl": caKRL} {
			b, _ := os.ReadFile(f)
			os.WriteFile(filepath.Join("testdata", "krl", name), b, 0o644)
		}
	}
}

// What OpenSSH refuses, ParseKRL refuses: a damaged KRL never reads as
// one that revokes less.
func TestKRLRefusesWhatOpenSSHRefuses(t *testing.T) {
	u32 := func(n int) []byte { return binary.BigEndian.AppendUint32(nil, uint32(n)) }
	str := func(b []byte) []byte { return append(u32(len(b)), b...) }
	header := append([]byte(krlMagic), u32(1)...)
	header = append(header, make([]byte, 24)...) // version, date, flags
	header = append(header, append(str(nil), str([]byte("c"))...)...)
	section := func(typ byte, data []byte) []byte {
		return append(append(append([]byte(nil), header...), typ), str(data)...)
	}
	h := sha256.Sum256([]byte("k"))
	if _, err := ParseKRL(section(krlSectionSHA256, str(h[:]))); err != nil {
		t.Fatalf("a valid KRL: %v", err)
	}
	for name, b := range map[string][]byte{
		"no magic":           []byte("SSHKRL\n"),
		"format version 2":   append([]byte(krlMagic), u32(2)...),
		"truncated header":   header[:len(header)-1],
		"signature":          section(krlSectionSignature, str([]byte("key"))),
		"unknown section":    section(9, nil),
		"short sha256":       section(krlSectionSHA256, str(h[:31])),
		"left over":          section(krlSectionSHA256, append(str(h[:]), 0)),
		"critical extension": section(krlSectionExtension, append(append(str([]byte("x@example.com")), 1), str(nil)...)),
		"negative bitmap":    section(krlSectionCertificates, append(append(str(nil), str(nil)...), append([]byte{krlCertSerialBitmap}, str(append(make([]byte, 8), str([]byte{0x80})...))...)...)),
		"reversed range":     section(krlSectionCertificates, append(append(str(nil), str(nil)...), append([]byte{krlCertSerialRange}, str(append(binary.BigEndian.AppendUint64(nil, 9), binary.BigEndian.AppendUint64(nil, 8)...))...)...)),
	} {
		if _, err := ParseKRL(b); !errors.Is(err, ErrKRL) {
			t.Errorf("%s: %v", name, err)
		}
	}
}

// FuzzParseKRL: no input panics the parser or the check, and what parses
// answers for any certificate. Seeds: KRLs ssh-keygen made
// (testdata/krl).
func FuzzParseKRL(f *testing.F) {
	seeds, _ := filepath.Glob(filepath.Join("testdata", "krl", "*.krl"))
	if len(seeds) == 0 {
		f.Fatal("no seeds in testdata/krl")
	}
	for _, s := range seeds {
		b, err := os.ReadFile(s)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte(krlMagic))
	ca, _ := newEd25519Signer()
	user, _ := newEd25519Signer()
	cert := &ssh.Certificate{Key: user.PublicKey(), CertType: ssh.UserCert, KeyId: "a", Serial: 5, ValidBefore: ssh.CertTimeInfinity}
	if err := cert.SignCert(randReader, ca); err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		k, err := ParseKRL(b)
		if err != nil {
			if k != nil || !errors.Is(err, ErrKRL) {
				t.Fatalf("ParseKRL: %v, %v", k, err)
			}
			return
		}
		k.Revoked(cert)
		k.Revoked(user.PublicKey())
	})
}
