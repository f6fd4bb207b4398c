// Package oidcdev is the development OpenID provider built into
// `auditledger dev` and used by the tests. It is zitadel/oidc's certified
// provider library with a small in-memory store: each configured user is a
// confidential OAuth client that gets a signed JWT access token from the
// client-credentials grant. Tokens are verified by the same go-oidc code
// that verifies a production provider's; nothing about them is special
// except that the identities are marked as development identities.
//
// For browsers it also offers the authorization code flow with PKCE to
// the login clients configured (the console): its login page takes a
// person's name and secret as username and password.
//
// It is not a production identity provider: users and secrets come from
// configuration, and the signing key lives only in memory unless kept in
// KeyFile.
package oidcdev

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"net/http"
	"os"
	"slices"
	"sync"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/zitadel/oidc/v3/pkg/oidc"
	"github.com/zitadel/oidc/v3/pkg/op"
)

// User is one development identity.
type User struct {
	Name   string   // the client ID used to get a token; the subject of humans
	Secret string   // the client secret
	Email  string   // optional
	Groups []string // optional; the groups claim
	// Machine makes the token's subject its own client ID, which verifiers
	// read as an automated agent; otherwise the user is a person.
	Machine bool
}

// Config configures a Provider.
type Config struct {
	// Issuer is the URL the provider is served at, e.g.
	// http://127.0.0.1:7342. Required; plain http is allowed, as this is a
	// development provider.
	Issuer string
	// Audience goes into every token's aud claim. Required.
	Audience string
	Users    []User
	// TokenLifetime: zero means one hour.
	TokenLifetime time.Duration
	// KeyFile, if set, keeps the signing key (RSA, PEM) across restarts:
	// read if it exists, else created (mode 0600). Without it every start
	// has a new key, and tokens from before are refused.
	KeyFile string
	// LoginClients are the browser applications that sign people in with
	// the authorization code flow: public clients, each bound to PKCE
	// (S256) and to its redirect URIs. Their tokens carry Audience and
	// the client's ID in aud.
	LoginClients []LoginClient
	// SCIMToken, if set, serves the users and their groups over SCIM 2.0
	// (scim.go) at <issuer>/scim/v2 to clients sending it as a bearer
	// token; SCIMPageSize bounds a page (0: 100).
	SCIMToken    string
	SCIMPageSize int
}

// LoginClient is a browser application signing people in.
type LoginClient struct {
	ID           string
	RedirectURIs []string
	// RedirectGlobs are redirect URIs as doublestar patterns, e.g.
	// http://127.0.0.1:*/console/callback for an application on a port
	// chosen at start (RFC 8252 §7.3, loopback redirects).
	RedirectGlobs []string
}

// humanClientID is the client ID in the tokens of people: a login
// application acting for them, as with a real provider.
const humanClientID = "auditledger-dev-login"

// New builds a provider; serve Handler at cfg.Issuer.
func New(cfg Config) (*Provider, error) {
	if cfg.Issuer == "" || cfg.Audience == "" {
		return nil, errors.New("oidcdev: Issuer and Audience are required")
	}
	if cfg.TokenLifetime == 0 {
		cfg.TokenLifetime = time.Hour
	}
	key, err := signingKeyFrom(cfg.KeyFile)
	if err != nil {
		return nil, err
	}
	// The key id is the key's own digest: the same key, the same id.
	pub := x509.MarshalPKCS1PublicKey(&key.PublicKey)
	kid := sha256.Sum256(pub)
	st := &storage{cfg: cfg, key: key, kid: hex.EncodeToString(kid[:8]), users: map[string]User{}, logins: map[string]*authRequest{}, codes: map[string]string{}}
	for _, u := range cfg.Users {
		if u.Name == "" || u.Secret == "" {
			return nil, errors.New("oidcdev: every user needs a name and a secret")
		}
		st.users[u.Name] = u
	}
	var cryptoKey [32]byte
	rand.Read(cryptoKey[:])
	p, err := op.NewOpenIDProvider(cfg.Issuer, &op.Config{CryptoKey: cryptoKey, AuthMethodPost: true}, st, op.WithAllowInsecure())
	if err != nil {
		return nil, fmt.Errorf("oidcdev: %w", err)
	}
	mux := http.NewServeMux()
	mux.Handle("/", p)
	mux.HandleFunc("/login", st.loginPage(cfg.Issuer+"/authorize/callback?id="))
	pr := &Provider{st: st, h: mux}
	if scim := pr.scimHandler(); scim != nil {
		mux.Handle("/scim/v2/", scim)
	}
	return pr, nil
}

// Provider is a running development provider.
type Provider struct {
	st *storage
	h  http.Handler
}

// Handler serves discovery, keys, the token endpoint, the login page of
// the authorization code flow, and SCIM when Config.SCIMToken is set.
func (p *Provider) Handler() http.Handler { return p.h }

// storage is the in-memory op.Storage: clients are the configured users;
// the only grant is client credentials.
type storage struct {
	cfg   Config
	key   *rsa.PrivateKey
	kid   string
	users map[string]User

	mu     sync.Mutex
	tokens int
	logins map[string]*authRequest // pending and signed-in authorization requests, by id
	codes  map[string]string       // authorization code → request id
}

var (
	_ op.Storage                  = (*storage)(nil)
	_ op.ClientCredentialsStorage = (*storage)(nil)
)

var errUnsupported = errors.New("not supported by the development provider")

func (s *storage) user(id, secret string) (User, error) {
	u, ok := s.users[id]
	if !ok || u.Secret != secret {
		return User{}, errors.New("unknown user or wrong secret")
	}
	return u, nil
}

func (s *storage) ClientCredentials(_ context.Context, id, secret string) (op.Client, error) {
	u, err := s.user(id, secret)
	if err != nil {
		return nil, err
	}
	return client{u: u, lifetime: s.cfg.TokenLifetime}, nil
}

// tokenRequest carries the user to GetPrivateClaimsFromRequest.
type tokenRequest struct {
	oidc.JWTTokenRequest
	u User
}

func (s *storage) ClientCredentialsTokenRequest(_ context.Context, id string, scopes []string) (op.TokenRequest, error) {
	u, ok := s.users[id]
	if !ok {
		return nil, errors.New("unknown user")
	}
	return &tokenRequest{JWTTokenRequest: oidc.JWTTokenRequest{Subject: u.Name, Audience: []string{s.cfg.Audience}, Scopes: scopes}, u: u}, nil
}

func (s *storage) GetPrivateClaimsFromRequest(_ context.Context, r op.TokenRequest, _ []string) (map[string]any, error) {
	claims := map[string]any{}
	var u User
	switch tr := r.(type) {
	case *tokenRequest:
		u = tr.u
	case *authRequest:
		u = s.users[tr.user] // the groups as they are now
	}
	if u.Email != "" {
		claims["email"] = u.Email
	}
	if len(u.Groups) > 0 {
		claims["groups"] = u.Groups
	}
	return claims, nil
}

func (s *storage) CreateAccessToken(context.Context, op.TokenRequest) (string, time.Time, error) {
	s.mu.Lock()
	s.tokens++
	n := s.tokens
	s.mu.Unlock()
	h := sha256.Sum256(fmt.Appendf(nil, "%s/%d/%d", s.kid, n, time.Now().UnixNano()))
	return hex.EncodeToString(h[:12]), time.Now().Add(s.cfg.TokenLifetime), nil
}

func (s *storage) SigningKey(context.Context) (op.SigningKey, error) { return signingKey{s}, nil }
func (s *storage) SignatureAlgorithms(context.Context) ([]jose.SignatureAlgorithm, error) {
	return []jose.SignatureAlgorithm{jose.RS256}, nil
}
func (s *storage) KeySet(context.Context) ([]op.Key, error) { return []op.Key{publicKey{s}}, nil }

func (s *storage) GetClientByClientID(_ context.Context, id string) (op.Client, error) {
	for _, c := range s.cfg.LoginClients {
		if c.ID == id {
			return loginClient{c: c, lifetime: s.cfg.TokenLifetime}, nil
		}
	}
	u, ok := s.users[id]
	if !ok {
		return nil, errors.New("unknown client")
	}
	return client{u: u, lifetime: s.cfg.TokenLifetime}, nil
}

func (s *storage) AuthorizeClientIDSecret(_ context.Context, id, secret string) error {
	_, err := s.user(id, secret)
	return err
}

func (s *storage) GetPrivateClaimsFromScopes(context.Context, string, string, []string) (map[string]any, error) {
	return nil, nil
}
func (s *storage) Health(context.Context) error { return nil }

// The rest of op.Storage serves flows this provider does not offer.

func (s *storage) CreateAccessAndRefreshTokens(context.Context, op.TokenRequest, string) (string, string, time.Time, error) {
	return "", "", time.Time{}, errUnsupported
}
func (s *storage) TokenRequestByRefreshToken(context.Context, string) (op.RefreshTokenRequest, error) {
	return nil, op.ErrInvalidRefreshToken
}
func (s *storage) TerminateSession(context.Context, string, string) error { return nil }
func (s *storage) RevokeToken(context.Context, string, string, string) *oidc.Error {
	return oidc.ErrUnsupportedGrantType().WithDescription("revocation is not supported by the development provider")
}
func (s *storage) GetRefreshTokenInfo(context.Context, string, string) (string, string, error) {
	return "", "", op.ErrInvalidRefreshToken
}

// SetUserinfoFromScopes: the ID token of a person signed in names them
// (the library takes its subject from here).
func (s *storage) SetUserinfoFromScopes(_ context.Context, ui *oidc.UserInfo, userID, _ string, scopes []string) error {
	ui.Subject = userID
	if u, ok := s.users[userID]; ok && u.Email != "" && slices.Contains(scopes, oidc.ScopeEmail) {
		ui.Email = u.Email
	}
	return nil
}
func (s *storage) SetUserinfoFromToken(context.Context, *oidc.UserInfo, string, string, string) error {
	return errUnsupported
}
func (s *storage) SetIntrospectionFromToken(context.Context, *oidc.IntrospectionResponse, string, string, string) error {
	return errUnsupported
}
func (s *storage) GetKeyByIDAndClientID(context.Context, string, string) (*jose.JSONWebKey, error) {
	return nil, errUnsupported
}
func (s *storage) ValidateJWTProfileScopes(context.Context, string, []string) ([]string, error) {
	return nil, errUnsupported
}

type signingKey struct{ s *storage }

func (k signingKey) SignatureAlgorithm() jose.SignatureAlgorithm { return jose.RS256 }
func (k signingKey) Key() any                                    { return k.s.key }
func (k signingKey) ID() string                                  { return k.s.kid }

type publicKey struct{ s *storage }

func (k publicKey) ID() string                         { return k.s.kid }
func (k publicKey) Algorithm() jose.SignatureAlgorithm { return jose.RS256 }
func (k publicKey) Use() string                        { return "sig" }
func (k publicKey) Key() any                           { return &k.s.key.PublicKey }

// client is a user seen as an OAuth client.
type client struct {
	u        User
	lifetime time.Duration
}

var _ op.Client = client{}

// GetID is the client_id claim: the user's own name for an agent (equal
// to the subject), the shared login application for a person.
func (c client) GetID() string {
	if c.u.Machine {
		return c.u.Name
	}
	return humanClientID
}
func (c client) RedirectURIs() []string               { return nil }
func (c client) PostLogoutRedirectURIs() []string     { return nil }
func (c client) ApplicationType() op.ApplicationType  { return op.ApplicationTypeWeb }
func (c client) AuthMethod() oidc.AuthMethod          { return oidc.AuthMethodBasic }
func (c client) ResponseTypes() []oidc.ResponseType   { return nil }
func (c client) LoginURL(string) string               { return "" }
func (c client) AccessTokenType() op.AccessTokenType  { return op.AccessTokenTypeJWT }
func (c client) IDTokenLifetime() time.Duration       { return c.lifetime }
func (c client) DevMode() bool                        { return true }
func (c client) IsScopeAllowed(string) bool           { return true }
func (c client) IDTokenUserinfoClaimsAssertion() bool { return false }
func (c client) ClockSkew() time.Duration             { return 0 }
func (c client) GrantTypes() []oidc.GrantType {
	return []oidc.GrantType{oidc.GrantTypeClientCredentials}
}
func (c client) RestrictAdditionalIdTokenScopes() func([]string) []string {
	return func(s []string) []string { return s }
}
func (c client) RestrictAdditionalAccessTokenScopes() func([]string) []string {
	return func(s []string) []string { return slices.Clone(s) }
}

// Server is a Provider listening on a TCP address.
type Server struct {
	Issuer string
	srv    *http.Server
}

// Listen starts a provider on addr ("127.0.0.1:0" for any free port). An
// empty cfg.Issuer becomes http://ADDR with the address actually bound.
func Listen(addr string, cfg Config) (*Server, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("oidcdev: %w", err)
	}
	if cfg.Issuer == "" {
		cfg.Issuer = "http://" + ln.Addr().String()
	}
	p, err := New(cfg)
	if err != nil {
		ln.Close()
		return nil, err
	}
	s := &Server{Issuer: cfg.Issuer, srv: &http.Server{Handler: p.Handler(), ReadHeaderTimeout: 10 * time.Second}}
	go s.srv.Serve(ln)
	return s, nil
}

// Close stops the server.
func (s *Server) Close() error { return s.srv.Close() }

// signingKeyFrom reads the provider's key from path, or creates it there;
// with no path, a key for this run only.
func signingKeyFrom(path string) (*rsa.PrivateKey, error) {
	if path != "" {
		b, err := os.ReadFile(path)
		if err == nil {
			blk, _ := pem.Decode(b)
			if blk == nil || blk.Type != "RSA PRIVATE KEY" {
				return nil, fmt.Errorf("oidcdev: %s holds no RSA PRIVATE KEY block (delete it to have a new key made)", path)
			}
			k, err := x509.ParsePKCS1PrivateKey(blk.Bytes)
			if err != nil {
				return nil, fmt.Errorf("oidcdev: %s: %w", path, err)
			}
			return k, nil
		}
		if !errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("oidcdev: %w", err)
		}
	}
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		return nil, err
	}
	if path != "" {
		b := pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(key)})
		if err := os.WriteFile(path, b, 0o600); err != nil {
			return nil, fmt.Errorf("oidcdev: keeping the signing key: %w", err)
		}
	}
	return key, nil
}
