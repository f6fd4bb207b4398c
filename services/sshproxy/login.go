package sshproxy

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/auditledger/auditledger/events"
	"github.com/auditledger/auditledger/services/gateway"
)

// Certificate extensions that carry the identity the token named, so the
// gateway reads who a certificate belongs to from the certificate alone.
// OpenSSH ignores extensions it does not know.
const (
	extIssuer = "issuer@auditledger"
	extGroups = "groups@auditledger" // comma-separated
	extKind   = "kind@auditledger"   // human or machine
	extDev    = "dev@auditledger"    // present for development identities
)

// CertPath is where the gateway's login endpoint is served.
const CertPath = "/v1/ssh/certificate"

// MaxUserCertValidity bounds a user certificate's validity whatever the
// token's lifetime.
const MaxUserCertValidity = 12 * time.Hour

// CertRequest is what `auditledger login ssh` sends, with the OIDC token
// as its bearer token: the public key of a key pair the client made.
type CertRequest struct {
	PublicKey string `json:"public_key"` // authorized_keys format
}

// CertResponse is the certificate issued and what the client needs to
// trust the gateway.
type CertResponse struct {
	Certificate string    `json:"certificate"` // authorized_keys format (the -cert.pub file)
	KeyID       string    `json:"key_id"`
	Principals  []string  `json:"principals"`
	Serial      uint64    `json:"serial"`
	ValidBefore time.Time `json:"valid_before"`
	// KnownHosts are the @cert-authority lines for the gateway's host CA,
	// one a line: during a host CA rotation's overlap, the new CA's and
	// the retired one's.
	KnownHosts string `json:"known_hosts"`
	// SSHAddr is the gateway's SSH address as configured (host:port).
	SSHAddr string `json:"ssh_addr"`
}

// certHandler issues user certificates in exchange for an OIDC token
// whose audience is the gateway: key id and principals come from the
// token's claims only, and the certificate expires no later than the
// token. Each issue is recorded (ssh.certificate.issued) before the certificate
// is returned.
type certHandler struct{ p *Proxy }

// CertHandler serves CertPath.
func (p *Proxy) CertHandler() http.Handler { return certHandler{p} }

func (h certHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path != CertPath || r.Method != http.MethodPost {
		http.Error(w, "POST "+CertPath, http.StatusNotFound)
		return
	}
	token, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	if h.p.cfg.Auth == nil {
		http.Error(w, "this gateway issues no certificates (no OIDC issuer is configured)", http.StatusNotFound)
		return
	}
	if !ok {
		http.Error(w, "an OIDC token is required (Authorization: Bearer)", http.StatusUnauthorized)
		return
	}
	var req CertRequest
	if err := json.NewDecoder(io.LimitReader(r.Body, 64<<10)).Decode(&req); err != nil {
		http.Error(w, "body: "+err.Error(), http.StatusBadRequest)
		return
	}
	resp, err := h.p.issue(r.Context(), token, req, clientAddr(r))
	if err != nil {
		code := http.StatusForbidden
		if errors.Is(err, gateway.ErrNotRecorded) {
			code = http.StatusServiceUnavailable
		}
		http.Error(w, err.Error(), code)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(resp)
}

func clientAddr(r *http.Request) string { return r.RemoteAddr }

// issue verifies token, signs a user certificate over req's key and
// records it.
func (p *Proxy) issue(ctx context.Context, token string, req CertRequest, addr string) (*CertResponse, error) {
	s := p.g.Session(events.Target{Kind: "ssh", Name: "ssh-certificate-authority"})
	actor, err := p.cfg.Auth.Authenticate(ctx, "", token)
	if err != nil {
		s.RecordOrLog(ctx, events.AuthnFailed, map[string]any{"client_addr": addr, "reason": err.Error(), "method": "ssh-certificate-request"})
		return nil, err
	}
	exp, err := tokenExpiry(token)
	if err != nil {
		return nil, err
	}
	pub, _, _, _, err := ssh.ParseAuthorizedKey([]byte(req.PublicKey))
	if err != nil {
		return nil, fmt.Errorf("public_key: %w", err)
	}
	if _, isCert := pub.(*ssh.Certificate); isCert {
		return nil, errors.New("public_key: a certificate; send the public key itself")
	}
	now := time.Now()
	until := now.Add(MaxUserCertValidity)
	if exp.Before(until) {
		until = exp
	}
	if !until.After(now) {
		return nil, errors.New("the token has expired")
	}
	ext := map[string]string{"permit-pty": "", extIssuer: actor.Issuer, extKind: string(actor.Kind)}
	if len(actor.Groups) > 0 {
		ext[extGroups] = strings.Join(actor.Groups, ",")
	}
	if actor.DevIdentity {
		ext[extDev] = ""
	}
	cert := &ssh.Certificate{
		Key: pub, CertType: ssh.UserCert, KeyId: actor.Subject, ValidPrincipals: []string{actor.Subject},
		ValidAfter: uint64(now.Add(-time.Minute).Unix()), ValidBefore: uint64(until.Unix()), Serial: randSerial(),
		Permissions: ssh.Permissions{Extensions: ext},
	}
	if err := cert.SignCert(rand.Reader, p.keys.UserCA); err != nil {
		return nil, err
	}
	s.Authenticated(gateway.Identity{Actor: actor, Method: gateway.OIDCToken})
	sum := sha256.Sum256(pub.Marshal())
	if _, err := s.Record(ctx, events.SSHCertificateIssued, map[string]any{
		"client_addr": addr, "serial": fmt.Sprint(cert.Serial), "key_id": cert.KeyId,
		"principals": cert.ValidPrincipals, "valid_before": until.UTC().Format(time.RFC3339),
		"public_key_sha256": "SHA256:" + base64.RawStdEncoding.EncodeToString(sum[:]),
		"ca":                fingerprint(p.keys.UserCA.PublicKey()),
	}); err != nil {
		return nil, err
	}
	return &CertResponse{
		Certificate: string(ssh.MarshalAuthorizedKey(cert)), KeyID: cert.KeyId, Principals: cert.ValidPrincipals,
		Serial: cert.Serial, ValidBefore: until.UTC(), KnownHosts: p.knownHosts(), SSHAddr: p.cfg.Addr,
	}, nil
}

func fingerprint(k ssh.PublicKey) string { return ssh.FingerprintSHA256(k) }

// tokenExpiry reads the exp claim of a JWT the authenticator has
// verified.
func tokenExpiry(token string) (time.Time, error) {
	parts := strings.Split(strings.TrimSpace(token), ".")
	if len(parts) != 3 {
		return time.Time{}, errors.New("the token is not a JWT: its expiry cannot be read")
	}
	b, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		return time.Time{}, fmt.Errorf("token claims: %w", err)
	}
	var c struct {
		Exp json.Number `json:"exp"`
	}
	d := json.NewDecoder(bytes.NewReader(b))
	d.UseNumber()
	if err := d.Decode(&c); err != nil {
		return time.Time{}, fmt.Errorf("token claims: %w", err)
	}
	n, err := c.Exp.Int64()
	if err != nil || n <= 0 {
		return time.Time{}, errors.New("the token has no expiry (exp): a certificate cannot outlive it")
	}
	return time.Unix(n, 0), nil
}

// identityOf is who a verified user certificate names.
func identityOf(cert *ssh.Certificate) gateway.Identity {
	ext := cert.Permissions.Extensions
	a := events.Actor{Issuer: ext[extIssuer], Subject: cert.KeyId, Kind: events.Human}
	if a.Issuer == "" {
		a.Issuer = "ssh-user-ca"
	}
	if ext[extKind] == string(events.Machine) {
		a.Kind = events.Machine
	}
	if g := ext[extGroups]; g != "" {
		a.Groups = strings.Split(g, ",")
	}
	_, a.DevIdentity = ext[extDev]
	return gateway.Identity{Actor: a, Method: gateway.SSHCertificate}
}

// Login asks the gateway at baseURL for a certificate over pub
// (authorized_keys format), presenting token.
func Login(ctx context.Context, client *http.Client, baseURL, token string, pub []byte) (*CertResponse, error) {
	if client == nil {
		client = http.DefaultClient
	}
	body, _ := json.Marshal(CertRequest{PublicKey: string(pub)})
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, strings.TrimSuffix(baseURL, "/")+CertPath, bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Content-Type", "application/json")
	resp, err := client.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("the gateway refused: %s: %s", resp.Status, strings.TrimSpace(string(b)))
	}
	var r CertResponse
	if err := json.Unmarshal(b, &r); err != nil {
		return nil, err
	}
	return &r, nil
}

// ClientFiles are the files `auditledger login ssh` keeps in its
// directory, and the ssh_config snippet that uses them.
type ClientFiles struct {
	Key, Certificate, KnownHosts string // paths
	Config                       string // the ssh_config snippet
}

// WriteClientFiles writes the certificate (beside keyFile, as ssh-keygen
// names it: KEY-cert.pub) and the known_hosts file holding the gateway's
// @cert-authority line into dir, and returns the ssh_config snippet for
// the gateway at host:port, named alias.
func WriteClientFiles(dir, keyFile, alias, host, port string, r *CertResponse) (*ClientFiles, error) {
	f := &ClientFiles{Key: keyFile, Certificate: keyFile + "-cert.pub", KnownHosts: filepath.Join(dir, "known_hosts")}
	if err := os.WriteFile(f.Certificate, []byte(r.Certificate), 0o644); err != nil {
		return nil, err
	}
	if err := os.WriteFile(f.KnownHosts, []byte(r.KnownHosts+"\n"), 0o644); err != nil {
		return nil, err
	}
	f.Config = fmt.Sprintf(`Host %s
  HostName %s
  Port %s
  IdentityFile %s
  CertificateFile %s
  IdentitiesOnly yes
  UserKnownHostsFile %s
  GlobalKnownHostsFile /dev/null
  StrictHostKeyChecking yes
  UpdateHostKeys no
`, alias, host, port, f.Key, f.Certificate, f.KnownHosts)
	return f, nil
}
