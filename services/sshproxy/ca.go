package sshproxy

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/binary"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/auditledger/auditledger/events/detect"
)

// The key files of a Keys directory. Each private key is an OpenSSH
// ed25519 key (mode 0600) with its public key beside it (.pub), so the
// stock ssh-keygen reads both.
const (
	UserCAFile   = "user_ca"   // signs the certificates users log in to the gateway with
	HostCAFile   = "host_ca"   // signs the gateway's host certificate
	TargetCAFile = "target_ca" // signs the per-session certificates the gateway logs in to targets with
	HostKeyFile  = "host_key"  // the gateway's host key; host_key-cert.pub is its certificate
	// KRLFile, if present, is the OpenSSH key revocation list (KRL,
	// `ssh-keygen -k`) of user certificates, read again when it changes.
	KRLFile = "revoked_keys"
)

// Keys are the gateway's certificate authorities and host key.
type Keys struct {
	Dir      string
	UserCA   ssh.Signer
	HostCA   ssh.Signer
	TargetCA ssh.Signer
	Host     ssh.Signer // the host key, certified by HostCA
	HostCert *ssh.Certificate
	// Older are user CAs still trusted after a rotation: the public keys
	// in user_ca.*.pub beside user_ca (RotateUserCA writes them).
	Older []RetiredCA
	// OlderHost are host CAs a rotation replaced (host_ca.*.pub, which
	// RotateHostCA writes): the known_hosts lines the gateway hands out
	// list them beside the current one during the overlap, for gateways
	// still presenting a certificate they signed.
	OlderHost []RetiredCA
}

// RetiredCA is a user CA a rotation replaced. The certificates it signed
// are accepted during the overlap: MaxUserCertValidity from its
// retirement, as long as any of them can still be valid.
type RetiredCA struct {
	Key ssh.PublicKey
	// Retired is when the rotation happened, read from the file name
	// (user_ca.20261207T031200Z.pub); zero for a name that is no time,
	// which is trusted until the file is removed.
	Retired time.Time
}

// retiredLayout names retired CAs' files by the time of the rotation.
const retiredLayout = "20060102T150405Z"

// hostCertValidity is how long the gateway's host certificate is valid;
// it is issued again at each start, so a client that trusts the host CA
// never sees it expire while the gateway runs.
const hostCertValidity = 365 * 24 * time.Hour

// OpenKeys reads the key files in dir, creating those missing (a new
// directory is a new set of authorities), and issues the gateway's host
// certificate for hostNames. Rotation: move user_ca to user_ca.<when>
// (keeping user_ca.<when>.pub), and the next start makes a new user_ca
// while the old one's certificates stay valid until they expire.
func OpenKeys(dir string, hostNames []string) (*Keys, error) {
	if len(hostNames) == 0 {
		return nil, fmt.Errorf("%w: the gateway's host names (the names clients connect to) are required", ErrConfig)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	k := &Keys{Dir: dir}
	var err error
	for _, f := range []struct {
		name string
		dst  *ssh.Signer
	}{{UserCAFile, &k.UserCA}, {HostCAFile, &k.HostCA}, {TargetCAFile, &k.TargetCA}, {HostKeyFile, &k.Host}} {
		if *f.dst, err = loadOrCreate(filepath.Join(dir, f.name)); err != nil {
			return nil, err
		}
	}
	if k.Older, err = retiredCAs(dir, UserCAFile); err != nil {
		return nil, err
	}
	if k.OlderHost, err = retiredCAs(dir, HostCAFile); err != nil {
		return nil, err
	}
	if k.HostCert, err = issueHostCert(dir, k.HostCA, k.Host.PublicKey(), hostNames); err != nil {
		return nil, err
	}
	return k, nil
}

// retiredCAs reads the retired CAs' public keys NAME.<when>.pub in dir.
func retiredCAs(dir, name string) ([]RetiredCA, error) {
	var out []RetiredCA
	older, _ := filepath.Glob(filepath.Join(dir, name+".*.pub"))
	slices.Sort(older)
	for _, f := range older {
		if strings.HasSuffix(f, nextSuffix+".pub") {
			continue
		}
		pub, err := readPublic(f)
		if err != nil {
			return nil, err
		}
		when, err := time.Parse(retiredLayout, strings.TrimSuffix(strings.TrimPrefix(filepath.Base(f), name+"."), ".pub"))
		if err != nil {
			// A retired CA is trusted only for the overlap after its
			// rotation, which its name dates; one without a date is
			// refused rather than trusted for ever.
			return nil, fmt.Errorf("sshproxy: %s: a retired CA's file is named %s.<rotation time %s>.pub: %v", f, name, retiredLayout, err)
		}
		out = append(out, RetiredCA{Key: pub, Retired: when})
	}
	return out, nil
}

// issueHostCert signs the gateway's host certificate for hostNames with
// ca and writes it as host_key-cert.pub.
func issueHostCert(dir string, ca ssh.Signer, host ssh.PublicKey, hostNames []string) (*ssh.Certificate, error) {
	now := time.Now()
	cert := &ssh.Certificate{
		Key: host, CertType: ssh.HostCert, KeyId: "auditledger-ssh-gateway",
		ValidPrincipals: hostNames, ValidAfter: uint64(now.Add(-5 * time.Minute).Unix()),
		ValidBefore: uint64(now.Add(hostCertValidity).Unix()), Serial: randSerial(),
	}
	if err := cert.SignCert(rand.Reader, ca); err != nil {
		return nil, fmt.Errorf("sshproxy: host certificate: %w", err)
	}
	if err := os.WriteFile(filepath.Join(dir, HostKeyFile+"-cert.pub"), ssh.MarshalAuthorizedKey(cert), 0o644); err != nil {
		return nil, err
	}
	return cert, nil
}

// HostSigner is the host key presented with its certificate.
func (k *Keys) HostSigner() (ssh.Signer, error) {
	return ssh.NewCertSigner(k.HostCert, k.Host)
}

// KnownHostsLine is the @cert-authority line a client's known_hosts
// needs to trust the gateway at host:port without ever trusting on first
// use.
func (k *Keys) KnownHostsLine(patterns []string) string {
	return knownHostsLine(patterns, k.HostCA.PublicKey())
}

func knownHostsLine(patterns []string, ca ssh.PublicKey) string {
	return "@cert-authority " + strings.Join(patterns, ",") + " " + strings.TrimSpace(string(ssh.MarshalAuthorizedKey(ca)))
}

// KnownHostsLines are the @cert-authority lines (one a line, no final
// newline) a client needs at now: the current host CA's, then those of
// host CAs retired less than MaxUserCertValidity before now, so the client trusts a gateway that still presents a
// certificate the previous CA signed.
func (k *Keys) KnownHostsLines(patterns []string, now time.Time) string {
	lines := []string{k.KnownHostsLine(patterns)}
	for _, r := range k.OlderHost {
		if now.Before(r.Retired.Add(MaxUserCertValidity)) {
			lines = append(lines, knownHostsLine(patterns, r.Key))
		}
	}
	return strings.Join(lines, "\n")
}

// isUserAuthority reports whether auth signs the certificates users log
// in with at now: the current user CA, or one a rotation retired less
// than MaxUserCertValidity ago.
func (k *Keys) isUserAuthority(auth ssh.PublicKey, now time.Time) bool {
	if keysEqual(auth, k.UserCA.PublicKey()) {
		return true
	}
	return slices.ContainsFunc(k.Older, func(r RetiredCA) bool {
		return keysEqual(r.Key, auth) && now.Before(r.Retired.Add(MaxUserCertValidity))
	})
}

// userAuthorityUntil is when the retired user CA auth stops being
// accepted; false when auth is the current CA, one retired without a
// time, or no user CA at all.
func (k *Keys) userAuthorityUntil(auth ssh.PublicKey) (time.Time, bool) {
	if keysEqual(auth, k.UserCA.PublicKey()) {
		return time.Time{}, false
	}
	for _, r := range k.Older {
		if keysEqual(r.Key, auth) && !r.Retired.IsZero() {
			return r.Retired.Add(MaxUserCertValidity), true
		}
	}
	return time.Time{}, false
}

// nextSuffix marks a target CA made ahead of its use (StageTargetCA).
const nextSuffix = ".next"

// RotateUserCA retires the user CA in dir and makes a new one: the
// gateway (at its next start) issues certificates from the new CA only,
// and accepts those the old one signed for MaxUserCertValidity, the
// longest any of them is valid. The old private key is removed; its
// public key stays as user_ca.<when>.pub, which may be deleted once the
// overlap is over. It returns that file's path.
func RotateUserCA(dir string, now time.Time) (string, error) {
	cur := filepath.Join(dir, UserCAFile)
	if _, err := readPublic(cur + ".pub"); err != nil {
		return "", fmt.Errorf("sshproxy: no user CA to rotate in %s: %w", dir, err)
	}
	retired := filepath.Join(dir, UserCAFile+"."+now.UTC().Format(retiredLayout)+".pub")
	if _, err := os.Stat(retired); err == nil {
		return "", fmt.Errorf("sshproxy: %s exists: one rotation a second", retired)
	}
	if err := os.Rename(cur+".pub", retired); err != nil {
		return "", err
	}
	if err := os.Remove(cur); err != nil {
		return "", err
	}
	if _, err := loadOrCreate(cur); err != nil {
		return "", err
	}
	return retired, nil
}

// RotateHostCA retires the host CA in dir, makes a new one and issues
// the gateway's host certificate from it again (for the host names the
// current certificate names): the gateway presents it from its next
// start. The old private key is removed; its public key stays as
// host_ca.<when>.pub, and for MaxUserCertValidity the known_hosts lines
// the gateway hands out (KnownHostsLines) list it beside the new one. It
// returns that file's path.
func RotateHostCA(dir string, now time.Time) (string, error) {
	cur := filepath.Join(dir, HostCAFile)
	if _, err := readPublic(cur + ".pub"); err != nil {
		return "", fmt.Errorf("sshproxy: no host CA to rotate in %s: %w", dir, err)
	}
	certFile := filepath.Join(dir, HostKeyFile+"-cert.pub")
	pub, err := readPublic(certFile)
	if err != nil {
		return "", fmt.Errorf("sshproxy: the gateway's host certificate (its host names): %w", err)
	}
	old, ok := pub.(*ssh.Certificate)
	if !ok || old.CertType != ssh.HostCert || len(old.ValidPrincipals) == 0 {
		return "", fmt.Errorf("sshproxy: %s is not a host certificate naming the gateway's hosts", certFile)
	}
	host, err := loadOrCreate(filepath.Join(dir, HostKeyFile))
	if err != nil {
		return "", err
	}
	retired := filepath.Join(dir, HostCAFile+"."+now.UTC().Format(retiredLayout)+".pub")
	if _, err := os.Stat(retired); err == nil {
		return "", fmt.Errorf("sshproxy: %s exists: one rotation a second", retired)
	}
	if err := os.Rename(cur+".pub", retired); err != nil {
		return "", err
	}
	if err := os.Remove(cur); err != nil {
		return "", err
	}
	ca, err := loadOrCreate(cur)
	if err != nil {
		return "", err
	}
	if _, err := issueHostCert(dir, ca, host.PublicKey(), old.ValidPrincipals); err != nil {
		return "", err
	}
	return retired, nil
}

// StageTargetCA makes the next target CA (target_ca.next) and returns
// its public key's path: every target must trust it (beside the current
// one, in TrustedUserCAKeys) before ActivateTargetCA puts it in use. An
// existing next CA is kept, so running it twice is harmless.
func StageTargetCA(dir string) (string, error) {
	next := filepath.Join(dir, TargetCAFile+nextSuffix)
	if _, err := loadOrCreate(next); err != nil {
		return "", err
	}
	return next + ".pub", nil
}

// ActivateTargetCA puts the staged target CA in use: the gateway (at its
// next start) logs in to targets with certificates from it. The old
// private key is removed and its public key kept as
// target_ca.<when>.pub, to be taken out of the targets' TrustedUserCAKeys
// once the gateway runs with the new one (its certificates last minutes,
// for the login only). It returns that file's path.
func ActivateTargetCA(dir string, now time.Time) (string, error) {
	next := filepath.Join(dir, TargetCAFile+nextSuffix)
	if _, err := readPublic(next + ".pub"); err != nil {
		return "", fmt.Errorf("sshproxy: no staged target CA in %s (stage one first, and have every target trust it): %w", dir, err)
	}
	cur := filepath.Join(dir, TargetCAFile)
	retired := filepath.Join(dir, TargetCAFile+"."+now.UTC().Format(retiredLayout)+".pub")
	if err := os.Rename(cur+".pub", retired); err != nil {
		return "", err
	}
	if err := os.Rename(next, cur); err != nil {
		return "", err
	}
	if err := os.Rename(next+".pub", cur+".pub"); err != nil {
		return "", err
	}
	return retired, nil
}

func keysEqual(a, b ssh.PublicKey) bool {
	return a.Type() == b.Type() && string(a.Marshal()) == string(b.Marshal())
}

func loadOrCreate(path string) (ssh.Signer, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		_, priv, err := ed25519.GenerateKey(rand.Reader)
		if err != nil {
			return nil, err
		}
		blk, err := ssh.MarshalPrivateKey(priv, "auditledger "+filepath.Base(path))
		if err != nil {
			return nil, err
		}
		if err := os.WriteFile(path, pem.EncodeToMemory(blk), 0o600); err != nil {
			return nil, err
		}
		s, err := ssh.NewSignerFromKey(priv)
		if err != nil {
			return nil, err
		}
		return s, os.WriteFile(path+".pub", ssh.MarshalAuthorizedKey(s.PublicKey()), 0o644)
	}
	if err != nil {
		return nil, err
	}
	s, err := ssh.ParsePrivateKey(b)
	if err != nil {
		return nil, fmt.Errorf("sshproxy: %s: %w", path, err)
	}
	return s, nil
}

func readPublic(path string) (ssh.PublicKey, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	pub, _, _, _, err := ssh.ParseAuthorizedKey(b)
	if err != nil {
		return nil, fmt.Errorf("sshproxy: %s: %w", path, err)
	}
	return pub, nil
}

// randSerial draws a certificate serial: random, not 0 (which a KRL can
// never revoke), and never a number the detectors take for personal data.
// Serials are recorded in decimal (ssh.certificate.issued, session.started, a
// KRL refusal's reason); about one in ten random 19-digit numbers passes
// the card check, and a serial recorded as [REDACTED:credit_card] could no
// longer be matched to its certificate or revoked by the log's word, so
// such a draw is drawn again.
func randSerial() uint64 {
	for {
		var b [8]byte
		rand.Read(b[:])
		s := binary.BigEndian.Uint64(b[:]) &^ (1 << 63)
		if s != 0 && len(detect.Spans(strconv.FormatUint(s, 10))) == 0 {
			return s
		}
	}
}
