// Package identity establishes who is behind a connection or a request:
// an OIDC token verified against the configured issuer, or, for
// development only, a static users file. The proxies and the API share it,
// so a person is the same actor in every event whichever way they came in.
package identity

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/coreos/go-oidc/v3/oidc"
	"golang.org/x/oauth2"
	"golang.org/x/oauth2/clientcredentials"

	"github.com/auditledger/auditledger/events"
)

// Authenticator turns a credential into an identity.
type Authenticator interface {
	// Authenticate MUST return an error for a credential it cannot verify;
	// the error text is shown to the client, so it MUST NOT contain the
	// credential or any other secret. user is what the client named itself
	// (a database user name; empty over HTTP) and is not trusted.
	Authenticate(ctx context.Context, user, credential string) (events.Actor, error)
}

var (
	// ErrNoCredential: nothing was presented.
	ErrNoCredential = errors.New("no credential presented")
	// ErrBadCredential: the credential is wrong (static users).
	ErrBadCredential = errors.New("unknown user or wrong password")
)

// StaticUsers is a development-only Authenticator: user name → password.
// Every identity it returns is marked dev_identity in the ledger.
type StaticUsers map[string]string

var _ Authenticator = StaticUsers(nil)

// Authenticate checks the password.
func (s StaticUsers) Authenticate(_ context.Context, user, password string) (events.Actor, error) {
	if password == "" {
		return events.Actor{}, ErrNoCredential
	}
	if want, ok := s[user]; !ok || want != password {
		return events.Actor{}, ErrBadCredential
	}
	return events.Actor{Issuer: "static-users", Subject: user, Kind: events.Human, DevIdentity: true}, nil
}

// OIDCConfig configures an OIDC token verifier.
type OIDCConfig struct {
	// Issuer is the provider's issuer URL; its discovery document and
	// signing keys are fetched from there. Required.
	Issuer string
	// Audience is the value the token's aud claim must contain (the
	// client ID or API identifier registered for auditledger). Required:
	// a token minted for another application is refused.
	Audience string
	// GroupsClaim names the claim holding the groups; empty means "groups".
	GroupsClaim string
	// Dev marks every identity from this issuer as a development identity
	// (the built-in development provider of `auditledger dev`).
	Dev bool
}

// OIDC verifies JWT tokens (ID tokens or JWT access tokens) signed by the
// configured issuer: signature against the issuer's published keys, iss,
// aud and expiry.
type OIDC struct {
	cfg      OIDCConfig
	verifier *oidc.IDTokenVerifier
}

var _ Authenticator = (*OIDC)(nil)

// NewOIDC fetches the issuer's discovery document; it fails if the issuer
// cannot be reached or does not describe itself as cfg.Issuer.
func NewOIDC(ctx context.Context, cfg OIDCConfig) (*OIDC, error) {
	if cfg.Issuer == "" || cfg.Audience == "" {
		return nil, errors.New("identity: OIDC issuer and audience are required")
	}
	if cfg.GroupsClaim == "" {
		cfg.GroupsClaim = "groups"
	}
	p, err := oidc.NewProvider(ctx, cfg.Issuer)
	if err != nil {
		return nil, fmt.Errorf("identity: OIDC issuer %s: %w", cfg.Issuer, err)
	}
	return &OIDC{cfg: cfg, verifier: p.Verifier(&oidc.Config{ClientID: cfg.Audience})}, nil
}

// Authenticate verifies token and returns the identity in it. The kind is
// machine when the token's subject is the client it was issued to (the
// OAuth client-credentials grant, RFC 9068 §2.2), human otherwise.
func (o *OIDC) Authenticate(ctx context.Context, _ string, token string) (events.Actor, error) {
	token = strings.TrimSpace(token)
	if token == "" {
		return events.Actor{}, ErrNoCredential
	}
	t, err := o.verifier.Verify(ctx, token)
	if err != nil {
		return events.Actor{}, fmt.Errorf("token refused: %s", describe(err))
	}
	var claims map[string]any
	if err := t.Claims(&claims); err != nil {
		return events.Actor{}, fmt.Errorf("token refused: claims: %w", err)
	}
	a := events.Actor{Issuer: t.Issuer, Subject: t.Subject, Kind: events.Human, DevIdentity: o.cfg.Dev}
	if a.Subject == "" {
		return events.Actor{}, errors.New("token refused: no subject")
	}
	if s, ok := claims["email"].(string); ok {
		a.Email = s
	}
	switch g := claims[o.cfg.GroupsClaim].(type) {
	case []any:
		for _, v := range g {
			if s, ok := v.(string); ok {
				a.Groups = append(a.Groups, s)
			}
		}
	case string:
		a.Groups = []string{g}
	}
	for _, c := range []string{"client_id", "azp"} {
		if s, ok := claims[c].(string); ok && s == a.Subject {
			a.Kind = events.Machine
		}
	}
	return a, nil
}

// describe shortens go-oidc's errors to what a client may be told; none of
// them contains the token.
func describe(err error) string {
	var exp *oidc.TokenExpiredError
	if errors.As(err, &exp) {
		return "expired at " + exp.Expiry.UTC().Format("2006-01-02T15:04:05Z")
	}
	return strings.TrimPrefix(err.Error(), "oidc: ")
}

// Same reports whether a and b are the same person or agent: same issuer
// and subject.
func Same(a, b events.Actor) bool {
	return a.Issuer == b.Issuer && a.Subject == b.Subject
}

// ClientCredentialsToken gets an access token from issuer with the OAuth
// client-credentials grant (RFC 6749 §4.4), the way an automated agent or
// the development provider's users obtain one. The token endpoint comes
// from the issuer's discovery document.
func ClientCredentialsToken(ctx context.Context, issuer, clientID, secret string) (string, error) {
	p, err := oidc.NewProvider(ctx, issuer)
	if err != nil {
		return "", fmt.Errorf("identity: OIDC issuer %s: %w", issuer, err)
	}
	cc := clientcredentials.Config{ClientID: clientID, ClientSecret: secret, TokenURL: p.Endpoint().TokenURL, AuthStyle: oauth2.AuthStyleInHeader}
	t, err := cc.Token(ctx)
	if err != nil {
		return "", fmt.Errorf("identity: token for %s from %s: %w", clientID, issuer, err)
	}
	return t.AccessToken, nil
}
