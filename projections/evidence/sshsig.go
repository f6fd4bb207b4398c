package evidence

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/base64"
	"errors"
	"fmt"
	"slices"
	"strings"

	"golang.org/x/crypto/ssh"
)

// SSH signatures (OpenSSH PROTOCOL.sshsig), the format `ssh-keygen -Y
// sign` writes and `ssh-keygen -Y verify` checks: an auditor checks a
// bundle's manifest with the stock tool and an allowed_signers file.

const (
	sshsigMagic   = "SSHSIG"
	sshsigVersion = 1
	sshsigHash    = "sha512"
	armorBegin    = "-----BEGIN SSH SIGNATURE-----"
	armorEnd      = "-----END SSH SIGNATURE-----"
	// Namespace is the SSH signature namespace of evidence manifests.
	Namespace = "auditledger-evidence"
)

// signedData is what the key signs: the magic, the namespace, the hash
// algorithm ("sha512", or "sha256" from other signers) and the message's
// hash.
func signedData(namespace, hash string, msg []byte) []byte {
	var digest []byte
	if hash == "sha256" {
		h := sha256.Sum256(msg)
		digest = h[:]
	} else {
		h := sha512.Sum512(msg)
		digest = h[:]
	}
	return append([]byte(sshsigMagic), ssh.Marshal(struct {
		Namespace, Reserved, Hash string
		Digest                    []byte
	}{namespace, "", hash, digest})...)
}

type sshsigBlob struct {
	Version   uint32
	PublicKey []byte
	Namespace string
	Reserved  string
	Hash      string
	Signature []byte
}

// SSHSign signs msg in namespace and returns the armored signature.
func SSHSign(s ssh.Signer, namespace string, msg []byte) ([]byte, error) {
	sig, err := s.Sign(nil, signedData(namespace, sshsigHash, msg))
	if err != nil {
		return nil, err
	}
	blob := append([]byte(sshsigMagic), ssh.Marshal(sshsigBlob{sshsigVersion, s.PublicKey().Marshal(), namespace, "", sshsigHash, ssh.Marshal(sig)})...)
	var out bytes.Buffer
	out.WriteString(armorBegin + "\n")
	b64 := base64.StdEncoding.EncodeToString(blob)
	for len(b64) > 70 {
		out.WriteString(b64[:70] + "\n")
		b64 = b64[70:]
	}
	out.WriteString(b64 + "\n" + armorEnd + "\n")
	return out.Bytes(), nil
}

// SSHVerify checks an armored signature of msg in namespace and returns
// the key that made it; the caller decides whether it trusts that key
// (AllowedSigner).
func SSHVerify(armored, msg []byte, namespace string) (ssh.PublicKey, error) {
	text := strings.TrimSpace(string(armored))
	body, ok := strings.CutPrefix(text, armorBegin)
	if !ok {
		return nil, errors.New("not an SSH signature: no BEGIN SSH SIGNATURE line")
	}
	body, ok = strings.CutSuffix(body, armorEnd)
	if !ok {
		return nil, errors.New("not an SSH signature: no END SSH SIGNATURE line")
	}
	blob, err := base64.StdEncoding.DecodeString(strings.Join(strings.Fields(body), ""))
	if err != nil {
		return nil, fmt.Errorf("SSH signature: %w", err)
	}
	rest, ok := bytes.CutPrefix(blob, []byte(sshsigMagic))
	if !ok {
		return nil, errors.New("SSH signature: bad magic")
	}
	var v sshsigBlob
	if err := ssh.Unmarshal(rest, &v); err != nil {
		return nil, fmt.Errorf("SSH signature: %w", err)
	}
	if v.Version != sshsigVersion {
		return nil, fmt.Errorf("SSH signature version %d, want 1", v.Version)
	}
	if v.Namespace != namespace {
		return nil, fmt.Errorf("SSH signature for namespace %q, want %q", v.Namespace, namespace)
	}
	if v.Hash != sshsigHash && v.Hash != "sha256" {
		return nil, fmt.Errorf("SSH signature hash %q", v.Hash)
	}
	pub, err := ssh.ParsePublicKey(v.PublicKey)
	if err != nil {
		return nil, fmt.Errorf("SSH signature's key: %w", err)
	}
	var sig ssh.Signature
	if err := ssh.Unmarshal(v.Signature, &sig); err != nil {
		return nil, fmt.Errorf("SSH signature: %w", err)
	}
	if err := pub.Verify(signedData(namespace, v.Hash, msg), &sig); err != nil {
		return nil, fmt.Errorf("SSH signature does not verify: %w", err)
	}
	return pub, nil
}

// AllowedSigners is the allowed_signers line (ssh-keygen(1), ALLOWED
// SIGNERS) that trusts key for evidence manifests under principal.
func AllowedSigners(principal string, key ssh.PublicKey) []byte {
	return fmt.Appendf(nil, "%s namespaces=%q %s", principal, Namespace, ssh.MarshalAuthorizedKey(key))
}

// ParseAllowedSigners reads the keys an allowed_signers file trusts for
// evidence manifests (lines whose namespaces option, if any, lists ours).
func ParseAllowedSigners(b []byte) ([]ssh.PublicKey, error) {
	var keys []ssh.PublicKey
	sc := bufio.NewScanner(bytes.NewReader(b))
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		_, rest, _ := strings.Cut(line, " ") // the principals
		rest = strings.TrimSpace(rest)
		options := ""
		if !strings.HasPrefix(rest, "ssh-") && !strings.HasPrefix(rest, "ecdsa-") && !strings.HasPrefix(rest, "sk-") {
			options, rest, _ = strings.Cut(rest, " ")
		}
		if ns, ok := optionValue(options, "namespaces"); ok && !slices.Contains(strings.Split(ns, ","), Namespace) {
			continue
		}
		key, _, _, _, err := ssh.ParseAuthorizedKey([]byte(rest))
		if err != nil {
			return nil, fmt.Errorf("allowed_signers line %d: %w", n, err)
		}
		keys = append(keys, key)
	}
	if len(keys) == 0 {
		return nil, fmt.Errorf("allowed_signers: no key for namespace %s", Namespace)
	}
	return keys, nil
}

func optionValue(options, name string) (string, bool) {
	i := strings.Index(options, name+"=")
	if i < 0 || (i > 0 && options[i-1] != ',') {
		return "", false
	}
	v := options[i+len(name)+1:]
	if strings.HasPrefix(v, `"`) {
		v, _, _ = strings.Cut(v[1:], `"`)
		return v, true
	}
	v, _, _ = strings.Cut(v, ",")
	return v, true
}
