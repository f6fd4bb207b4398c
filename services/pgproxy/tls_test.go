package pgproxy_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/auditledger/auditledger/events"
	"github.com/auditledger/auditledger/ledger/bus/emitter"
	"github.com/auditledger/auditledger/services/pgproxy"
	"github.com/auditledger/auditledger/test/natstest"
)

// selfSigned makes a certificate for 127.0.0.1 and writes it as PEM (the
// CA a client trusts).
func selfSigned(t *testing.T) (*tls.Config, string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "auditledger test proxy"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, KeyUsage: x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}, BasicConstraintsValid: true, IsCA: true}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	ca := filepath.Join(t.TempDir(), "ca.pem")
	os.WriteFile(ca, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644)
	return &tls.Config{Certificates: []tls.Certificate{{Certificate: [][]byte{der}, PrivateKey: key}}, MinVersion: tls.VersionTLS12}, ca
}

func TestTLSFromClients(t *testing.T) {
	cfg, ca := selfSigned(t)
	srv := natstest.Start(t)
	_, js := srv.Connect(t, nats.MaxReconnects(-1))
	em, err := emitter.New(emitter.Config{JetStream: js, Timeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	f := serve(t, srv, js, em, pgproxy.Config{TLS: cfg, RequireTLS: true})
	host, port, _ := strings.Cut(f.addr, ":")
	conninfo := func(mode string) string {
		return "host=" + host + " port=" + port + " user=alice password=alice-secret dbname=" + f.db + " sslmode=" + mode + " sslrootcert=" + ca
	}
	out, err := exec.Command("psql", "-X", "-A", "-t", "-c", "SELECT 1", conninfo("verify-full")).CombinedOutput()
	if err != nil || strings.TrimSpace(string(out)) != "1" {
		t.Fatalf("psql over TLS (verify-full): %v\n%s", err, out)
	}
	out, err = exec.Command("psql", "-X", "-A", "-t", "-c", "SELECT 1", conninfo("disable")).CombinedOutput()
	if err == nil || !strings.Contains(string(out), "this proxy requires TLS") {
		t.Fatalf("psql without TLS to a proxy that requires it: %v\n%s", err, out)
	}
	var tlsInfo any
	for _, r := range f.eventsOf(t) {
		if r.ev.Type == events.SessionStarted {
			tlsInfo = r.payload["tls"]
		}
	}
	m, ok := tlsInfo.(map[string]any)
	if !ok || !strings.HasPrefix(m["version"].(string), "TLS 1.") {
		t.Errorf("session.started tls: %v", tlsInfo)
	}
}
