package sshproxy

import (
	"bytes"
	"crypto/sha1"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"io/fs"
	"math/big"
	"os"
	"sync"
	"time"

	"golang.org/x/crypto/ssh"
)

// KRL is an OpenSSH key revocation list in its binary format
// (PROTOCOL.krl in OpenSSH's sources), as `ssh-keygen -k` writes it and
// sshd's RevokedKeys reads it: certificates revoked by serial number
// (lists, ranges, bitmaps) or key id, for one CA or for every CA; plain
// keys revoked explicitly or by their SHA-1 or SHA-256 hash.
type KRL struct {
	Version   uint64    // krl_version: grows with each change
	Generated time.Time // generated_date
	Comment   string

	certs   []krlCerts
	keys    map[string]bool // public key blobs
	sha1s   map[string]bool // SHA-1 of public key blobs
	sha256s map[string]bool // SHA-256 of public key blobs
}

// krlCerts are the certificates revoked for one CA (ca nil: every CA).
type krlCerts struct {
	ca      []byte
	ranges  [][2]uint64 // serial_min, serial_max, inclusive
	bitmaps []krlBitmap
	ids     map[string]bool
}

type krlBitmap struct {
	offset uint64
	bits   *big.Int // bit N: serial offset+N revoked
}

// The KRL format's constants (PROTOCOL.krl).
const (
	krlMagic         = "SSHKRL\n\x00"
	krlFormatVersion = 1

	krlSectionCertificates = 1
	krlSectionExplicitKey  = 2
	krlSectionSHA1         = 3
	krlSectionSignature    = 4
	krlSectionSHA256       = 5
	krlSectionExtension    = 255

	krlCertSerialList   = 0x20
	krlCertSerialRange  = 0x21
	krlCertSerialBitmap = 0x22
	krlCertKeyID        = 0x23
	krlCertExtension    = 0x39
)

// ErrKRL: a KRL that cannot be read. The gateway refuses every
// certificate while its KRL is unreadable.
var ErrKRL = errors.New("KRL")

// krlReader reads the SSH wire types of a KRL.
type krlReader struct{ b []byte }

func (r *krlReader) empty() bool { return len(r.b) == 0 }

func (r *krlReader) u8() (byte, error) {
	if len(r.b) < 1 {
		return 0, errors.New("truncated")
	}
	v := r.b[0]
	r.b = r.b[1:]
	return v, nil
}

func (r *krlReader) u32() (uint32, error) {
	if len(r.b) < 4 {
		return 0, errors.New("truncated")
	}
	v := binary.BigEndian.Uint32(r.b)
	r.b = r.b[4:]
	return v, nil
}

func (r *krlReader) u64() (uint64, error) {
	if len(r.b) < 8 {
		return 0, errors.New("truncated")
	}
	v := binary.BigEndian.Uint64(r.b)
	r.b = r.b[8:]
	return v, nil
}

func (r *krlReader) str() ([]byte, error) {
	n, err := r.u32()
	if err != nil {
		return nil, err
	}
	if uint64(n) > uint64(len(r.b)) {
		return nil, fmt.Errorf("a string of %d bytes where %d remain", n, len(r.b))
	}
	v := r.b[:n]
	r.b = r.b[n:]
	return v, nil
}

// ParseKRL reads a KRL. It refuses what OpenSSH refuses: another format
// version, unknown sections, a critical extension, data left over in a
// section, and (as OpenSSH 9.4 and later do) signature sections.
func ParseKRL(b []byte) (*KRL, error) {
	k, err := parseKRL(b)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrKRL, err)
	}
	return k, nil
}

func parseKRL(b []byte) (*KRL, error) {
	if !bytes.HasPrefix(b, []byte(krlMagic)) {
		return nil, errors.New("not an OpenSSH KRL (no SSHKRL magic; make one with ssh-keygen -k)")
	}
	r := &krlReader{b[len(krlMagic):]}
	v, err := r.u32()
	if err != nil {
		return nil, fmt.Errorf("header: %v", err)
	}
	if v != krlFormatVersion {
		return nil, fmt.Errorf("format version %d, want %d", v, krlFormatVersion)
	}
	k := &KRL{keys: map[string]bool{}, sha1s: map[string]bool{}, sha256s: map[string]bool{}}
	var date uint64
	if k.Version, err = r.u64(); err == nil {
		if date, err = r.u64(); err == nil {
			if _, err = r.u64(); err == nil { // flags: none defined
				if _, err = r.str(); err == nil { // reserved
					var c []byte
					c, err = r.str()
					k.Comment = string(c)
				}
			}
		}
	}
	if err != nil {
		return nil, fmt.Errorf("header: %v", err)
	}
	k.Generated = time.Unix(int64(min(date, 1<<62)), 0).UTC()
	for !r.empty() {
		typ, err := r.u8()
		if err != nil {
			return nil, err
		}
		data, err := r.str()
		if err != nil {
			return nil, fmt.Errorf("section %d: %v", typ, err)
		}
		s := &krlReader{data}
		switch typ {
		case krlSectionCertificates:
			err = k.parseCerts(s)
		case krlSectionExplicitKey:
			err = blobs(s, 0, k.keys)
		case krlSectionSHA1:
			err = blobs(s, sha1.Size, k.sha1s)
		case krlSectionSHA256:
			err = blobs(s, sha256.Size, k.sha256s)
		case krlSectionExtension:
			err = extension(s)
		case krlSectionSignature:
			err = errors.New("signed KRLs are not supported (OpenSSH refuses them too; sign the file with ssh-keygen -Y sign instead)")
		default:
			err = errors.New("unknown section type")
		}
		if err == nil && !s.empty() {
			err = fmt.Errorf("%d bytes left over", len(s.b))
		}
		if err != nil {
			return nil, fmt.Errorf("section %d: %v", typ, err)
		}
	}
	return k, nil
}

// blobs reads a section of strings, each size bytes long (0: any, but
// not empty), into set.
func blobs(s *krlReader, size int, set map[string]bool) error {
	if s.empty() {
		return errors.New("no entries")
	}
	for !s.empty() {
		b, err := s.str()
		if err != nil {
			return err
		}
		if size != 0 && len(b) != size || len(b) == 0 {
			return fmt.Errorf("an entry of %d bytes", len(b))
		}
		set[string(b)] = true
	}
	return nil
}

// extension reads an extension (section or certificate subsection):
// ignored unless critical, which no version of the format defines.
func extension(s *krlReader) error {
	name, err := s.str()
	if err != nil {
		return err
	}
	critical, err := s.u8()
	if err != nil {
		return err
	}
	if _, err := s.str(); err != nil {
		return err
	}
	if critical != 0 {
		return fmt.Errorf("unsupported critical extension %q", name)
	}
	return nil
}

func (k *KRL) parseCerts(s *krlReader) error {
	ca, err := s.str()
	if err != nil {
		return err
	}
	if _, err := s.str(); err != nil { // reserved
		return err
	}
	c := krlCerts{ids: map[string]bool{}}
	if len(ca) > 0 {
		pub, err := ssh.ParsePublicKey(ca)
		if err != nil {
			return fmt.Errorf("CA key: %v", err)
		}
		c.ca = pub.Marshal()
	}
	for !s.empty() {
		typ, err := s.u8()
		if err != nil {
			return err
		}
		data, err := s.str()
		if err != nil {
			return fmt.Errorf("certificate subsection %#x: %v", typ, err)
		}
		sub := &krlReader{data}
		switch typ {
		case krlCertSerialList:
			for !sub.empty() {
				n, err := sub.u64()
				if err != nil {
					return fmt.Errorf("serial list: %v", err)
				}
				c.ranges = append(c.ranges, [2]uint64{n, n})
			}
		case krlCertSerialRange:
			lo, err1 := sub.u64()
			hi, err2 := sub.u64()
			if err := errors.Join(err1, err2); err != nil {
				return fmt.Errorf("serial range: %v", err)
			}
			if lo > hi {
				return fmt.Errorf("serial range %d-%d", lo, hi)
			}
			c.ranges = append(c.ranges, [2]uint64{lo, hi})
		case krlCertSerialBitmap:
			off, err := sub.u64()
			if err != nil {
				return fmt.Errorf("serial bitmap: %v", err)
			}
			m, err := sub.str() // mpint
			if err != nil {
				return fmt.Errorf("serial bitmap: %v", err)
			}
			if len(m) > 0 && m[0]&0x80 != 0 {
				return errors.New("serial bitmap: a negative mpint")
			}
			bits := new(big.Int).SetBytes(m)
			if n := bits.BitLen(); n > 0 && off+uint64(n-1) < off {
				return errors.New("serial bitmap wraps around 2^64")
			}
			c.bitmaps = append(c.bitmaps, krlBitmap{offset: off, bits: bits})
		case krlCertKeyID:
			if sub.empty() {
				return errors.New("key id section without ids")
			}
			for !sub.empty() {
				id, err := sub.str()
				if err != nil {
					return fmt.Errorf("key id: %v", err)
				}
				c.ids[string(id)] = true
			}
		case krlCertExtension:
			err = extension(sub)
		default:
			return fmt.Errorf("unknown certificate subsection %#x", typ)
		}
		if err != nil {
			return fmt.Errorf("certificate subsection %#x: %v", typ, err)
		}
		if !sub.empty() {
			return fmt.Errorf("certificate subsection %#x: %d bytes left over", typ, len(sub.b))
		}
	}
	k.certs = append(k.certs, c)
	return nil
}

// serialRevoked reports whether c revokes serial.
func (c *krlCerts) serialRevoked(serial uint64) bool {
	for _, r := range c.ranges {
		if r[0] <= serial && serial <= r[1] {
			return true
		}
	}
	for _, b := range c.bitmaps {
		if serial >= b.offset && serial-b.offset < uint64(b.bits.BitLen()) && b.bits.Bit(int(serial-b.offset)) == 1 {
			return true
		}
	}
	return false
}

// keyRevoked reports whether a plain key is revoked: explicitly or by
// its hash.
func (k *KRL) keyRevoked(key ssh.PublicKey) bool {
	blob := key.Marshal()
	s1, s256 := sha1.Sum(blob), sha256.Sum256(blob)
	return k.keys[string(blob)] || k.sha1s[string(s1[:])] || k.sha256s[string(s256[:])]
}

// Revoked reports why key is revoked, or "": as OpenSSH checks it, a
// certificate is revoked by its key, its key id or serial number (serial
// 0, what a CA gives when it names none, is never revoked), for its CA or
// every CA, and by its CA's key.
func (k *KRL) Revoked(key ssh.PublicKey) string {
	cert, ok := key.(*ssh.Certificate)
	if !ok {
		if k.keyRevoked(key) {
			return "the key is revoked"
		}
		return ""
	}
	if k.keyRevoked(cert.Key) {
		return "the certificate's key is revoked"
	}
	ca := cert.SignatureKey.Marshal()
	for i := range k.certs {
		c := &k.certs[i]
		if c.ca != nil && !bytes.Equal(c.ca, ca) {
			continue
		}
		if c.ids[cert.KeyId] {
			return fmt.Sprintf("certificates of key id %q are revoked", cert.KeyId)
		}
		if cert.Serial != 0 && c.serialRevoked(cert.Serial) {
			return fmt.Sprintf("certificate serial %d is revoked", cert.Serial)
		}
	}
	if k.keyRevoked(cert.SignatureKey) {
		return "the certificate authority that signed it is revoked"
	}
	return ""
}

// krlFile is a KRL file read again whenever it changes: a revocation
// takes effect at the next login, without a restart.
type krlFile struct {
	path string
	// required: the path was configured, so a missing file refuses every
	// login (as OpenSSH's RevokedKeys does) instead of revoking nothing —
	// a mistyped path or a mount that did not come up must not switch
	// revocation off.
	required bool

	mu   sync.Mutex
	seen fs.FileInfo // when the file was last read; nil: absent
	krl  *KRL
	err  error
}

// get returns the KRL as the file now holds it: nil when there is no
// file (nothing revoked), an error when it cannot be read or parsed.
func (f *krlFile) get() (*KRL, error) {
	st, err := os.Stat(f.path)
	if errors.Is(err, fs.ErrNotExist) && !f.required {
		f.mu.Lock()
		f.seen, f.krl, f.err = nil, nil, nil
		f.mu.Unlock()
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %v", ErrKRL, f.path, err)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.seen != nil && os.SameFile(f.seen, st) && f.seen.ModTime().Equal(st.ModTime()) && f.seen.Size() == st.Size() {
		return f.krl, f.err
	}
	f.seen = st
	b, err := os.ReadFile(f.path)
	if err != nil {
		f.krl, f.err = nil, fmt.Errorf("%w: %s: %v", ErrKRL, f.path, err)
		return nil, f.err
	}
	f.krl, f.err = ParseKRL(b)
	if f.err != nil {
		f.err = fmt.Errorf("%s: %w", f.path, f.err)
	}
	return f.krl, f.err
}
