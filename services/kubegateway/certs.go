package kubegateway

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"time"
)

// ServingCert is the gateway's TLS identity: its serving certificate and
// the PEM of the certificate authority clients trust it by (the
// kubeconfig's certificate-authority-data).
type ServingCert struct {
	Cert  tls.Certificate
	CAPEM []byte
}

// Files in a keys directory (OpenKeys).
const (
	CAFile = "ca.crt" // the CA clients trust, PEM
	caKey  = "ca.key"
)

// LoadServingCert reads a serving certificate and key (PEM files) and the
// CA that signed it, as an operator's own PKI issued them.
func LoadServingCert(certFile, keyFile, caFile string) (*ServingCert, error) {
	cert, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		return nil, fmt.Errorf("kube gateway serving certificate: %w", err)
	}
	ca, err := os.ReadFile(caFile)
	if err != nil {
		return nil, fmt.Errorf("kube gateway CA: %w", err)
	}
	if _, err := parseCAs(ca); err != nil {
		return nil, fmt.Errorf("kube gateway CA %s: %w", caFile, err)
	}
	return &ServingCert{Cert: cert, CAPEM: ca}, nil
}

// OpenKeys returns a serving certificate for hosts (DNS names or IP
// addresses) signed by the certificate authority kept in dir (ca.crt,
// ca.key), which it creates on first use (mode 0600 for the key). The
// serving certificate is made anew at each start; the CA stays, so
// kubeconfigs written earlier keep working.
func OpenKeys(dir string, hosts []string) (*ServingCert, error) {
	if len(hosts) == 0 {
		return nil, errors.New("kube gateway keys: name at least one host the gateway is reached by")
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	caCert, key, caPEM, err := loadCA(dir)
	if errors.Is(err, fs.ErrNotExist) {
		caCert, key, caPEM, err = makeCA(dir)
	}
	if err != nil {
		return nil, fmt.Errorf("kube gateway keys %s: %w", dir, err)
	}
	sk, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial(),
		Subject:      pkix.Name{CommonName: "auditledger kube gateway"},
		NotBefore:    time.Now().Add(-5 * time.Minute),
		NotAfter:     time.Now().Add(365 * 24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	for _, h := range hosts {
		if ip := net.ParseIP(h); ip != nil {
			tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
		} else {
			tmpl.DNSNames = append(tmpl.DNSNames, h)
		}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, caCert, &sk.PublicKey, key)
	if err != nil {
		return nil, err
	}
	return &ServingCert{Cert: tls.Certificate{Certificate: [][]byte{der}, PrivateKey: sk}, CAPEM: caPEM}, nil
}

func loadCA(dir string) (*x509.Certificate, *ecdsa.PrivateKey, []byte, error) {
	certPEM, err := os.ReadFile(filepath.Join(dir, CAFile))
	if err != nil {
		return nil, nil, nil, err
	}
	keyPEM, err := os.ReadFile(filepath.Join(dir, caKey))
	if err != nil {
		return nil, nil, nil, err
	}
	cb, _ := pem.Decode(certPEM)
	kb, _ := pem.Decode(keyPEM)
	if cb == nil || kb == nil {
		return nil, nil, nil, errors.New("ca.crt or ca.key is not PEM")
	}
	cert, err := x509.ParseCertificate(cb.Bytes)
	if err != nil {
		return nil, nil, nil, err
	}
	k, err := x509.ParseECPrivateKey(kb.Bytes)
	if err != nil {
		return nil, nil, nil, err
	}
	return cert, k, certPEM, nil
}

func makeCA(dir string) (*x509.Certificate, *ecdsa.PrivateKey, []byte, error) {
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial(),
		Subject:               pkix.Name{CommonName: "auditledger kube gateway CA"},
		NotBefore:             time.Now().Add(-5 * time.Minute),
		NotAfter:              time.Now().Add(10 * 365 * 24 * time.Hour),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &k.PublicKey, k)
	if err != nil {
		return nil, nil, nil, err
	}
	kder, err := x509.MarshalECPrivateKey(k)
	if err != nil {
		return nil, nil, nil, err
	}
	if err := os.WriteFile(filepath.Join(dir, caKey), pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder}), 0o600); err != nil {
		return nil, nil, nil, err
	}
	certPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	if err := os.WriteFile(filepath.Join(dir, CAFile), certPEM, 0o644); err != nil {
		return nil, nil, nil, err
	}
	cert, err := x509.ParseCertificate(der)
	return cert, k, certPEM, err
}

func serial() *big.Int {
	n, _ := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 126))
	return n
}

// parseCAs reads PEM certificates into a pool; no certificate is an
// error.
func parseCAs(b []byte) (*x509.CertPool, error) {
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(b) {
		return nil, errors.New("no PEM certificate in it")
	}
	return pool, nil
}
