// Package keyfile writes the key files auditledger creates: never over
// an existing file, with the mode their secrecy needs.
package keyfile

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/pem"
	"os"
	"path/filepath"

	"golang.org/x/crypto/ssh"

	"github.com/auditledger/auditledger/projections/evidence"
)

// WriteNew creates path holding content, refusing to replace a file
// that exists, and syncs it to disk.
func WriteNew(path, content string, mode os.FileMode) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, mode)
	if err != nil {
		return err
	}
	if _, err := f.WriteString(content); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// WriteEvidenceKey writes DIR/evidence (an Ed25519 OpenSSH private key),
// DIR/evidence.pub and DIR/allowed_signers (principal evidence@ORIGIN).
func WriteEvidenceKey(dir, origin string) error {
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return err
	}
	block, err := ssh.MarshalPrivateKey(priv, "auditledger evidence key for "+origin)
	if err != nil {
		return err
	}
	spub, err := ssh.NewPublicKey(pub)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	path := filepath.Join(dir, "evidence")
	if err := WriteNew(path, string(pem.EncodeToMemory(block)), 0o600); err != nil {
		return err
	}
	if err := WriteNew(path+".pub", string(ssh.MarshalAuthorizedKey(spub)), 0o644); err != nil {
		return err
	}
	return WriteNew(filepath.Join(dir, "allowed_signers"), string(evidence.AllowedSigners("evidence@"+origin, spub)), 0o644)
}
