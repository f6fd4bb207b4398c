package oidcdev

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"html/template"
	"net/http"
	"slices"
	"time"

	"github.com/zitadel/oidc/v3/pkg/oidc"
	"github.com/zitadel/oidc/v3/pkg/op"
)

// The authorization code flow: the provider library checks the request
// (client, redirect URI, PKCE challenge) and keeps it here; the login
// page signs the person in; the library then issues the code, and
// exchanges it (with the PKCE verifier) for the tokens.

// authRequest is one authorization request, and once signed in, its
// person.
type authRequest struct {
	id       string
	req      *oidc.AuthRequest
	audience []string
	created  time.Time
	user     string // set by the login page
	authTime time.Time
}

var _ op.AuthRequest = (*authRequest)(nil)

func (a *authRequest) GetID() string          { return a.id }
func (a *authRequest) GetACR() string         { return "" }
func (a *authRequest) GetAMR() []string       { return []string{"pwd"} }
func (a *authRequest) GetAudience() []string  { return a.audience }
func (a *authRequest) GetAuthTime() time.Time { return a.authTime }
func (a *authRequest) GetClientID() string    { return a.req.ClientID }
func (a *authRequest) GetNonce() string       { return a.req.Nonce }
func (a *authRequest) GetRedirectURI() string { return a.req.RedirectURI }
func (a *authRequest) GetScopes() []string    { return a.req.Scopes }
func (a *authRequest) GetState() string       { return a.req.State }
func (a *authRequest) GetSubject() string     { return a.user }
func (a *authRequest) Done() bool             { return a.user != "" }
func (a *authRequest) GetResponseType() oidc.ResponseType {
	return a.req.ResponseType
}
func (a *authRequest) GetResponseMode() oidc.ResponseMode {
	return a.req.ResponseMode
}
func (a *authRequest) GetCodeChallenge() *oidc.CodeChallenge {
	if a.req.CodeChallenge == "" {
		return nil
	}
	return &oidc.CodeChallenge{Challenge: a.req.CodeChallenge, Method: a.req.CodeChallengeMethod}
}

// loginLifetime bounds how long a person may take to sign in.
const loginLifetime = 10 * time.Minute

var errNoLogin = errors.New("unknown or expired authorization request")

func (s *storage) CreateAuthRequest(_ context.Context, req *oidc.AuthRequest, _ string) (op.AuthRequest, error) {
	if req.CodeChallenge == "" || req.CodeChallengeMethod != oidc.CodeChallengeMethodS256 {
		return nil, oidc.ErrInvalidRequest().WithDescription("the development provider requires PKCE with S256")
	}
	b := make([]byte, 16)
	rand.Read(b)
	a := &authRequest{id: hex.EncodeToString(b), req: req, audience: []string{s.cfg.Audience, req.ClientID}, created: time.Now()}
	s.mu.Lock()
	defer s.mu.Unlock()
	for id, old := range s.logins { // forget abandoned sign-ins
		if time.Since(old.created) > loginLifetime {
			delete(s.logins, id)
		}
	}
	s.logins[a.id] = a
	return a, nil
}

func (s *storage) AuthRequestByID(_ context.Context, id string) (op.AuthRequest, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if a, ok := s.logins[id]; ok && time.Since(a.created) <= loginLifetime {
		return a, nil
	}
	return nil, errNoLogin
}

func (s *storage) AuthRequestByCode(ctx context.Context, code string) (op.AuthRequest, error) {
	s.mu.Lock()
	id, ok := s.codes[code]
	s.mu.Unlock()
	if !ok {
		return nil, errNoLogin
	}
	return s.AuthRequestByID(ctx, id)
}

func (s *storage) SaveAuthCode(_ context.Context, id, code string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.codes[code] = id
	return nil
}

// DeleteAuthRequest: a code is exchanged once.
func (s *storage) DeleteAuthRequest(_ context.Context, id string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.logins, id)
	for c, rid := range s.codes {
		if rid == id {
			delete(s.codes, c)
		}
	}
	return nil
}

var loginTmpl = template.Must(template.New("login").Parse(`<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Sign in — auditledger development provider</title>
<meta name="viewport" content="width=device-width, initial-scale=1"></head>
<body><main>
<h1>Sign in</h1>
<p>auditledger's development identity provider: a person's name and their development secret (alice / alice-dev-secret, carol / carol-dev-secret …). Never for production.</p>
{{if .Error}}<p role="alert" id="login-error">{{.Error}}</p>{{end}}
<form method="post" action="/login">
<input type="hidden" name="id" value="{{.ID}}">
<p><label for="username">Username</label><br><input id="username" name="username" autocomplete="username" required autofocus value="{{.Username}}"></p>
<p><label for="password">Password</label><br><input id="password" name="password" type="password" autocomplete="current-password" required></p>
<p><button type="submit">Sign in</button></p>
</form></main></body></html>
`))

// loginPage is GET (the form) and POST (the check) of /login?id=REQUEST;
// a person signed in goes on to callback+id, where the library issues
// the code.
func (s *storage) loginPage(callback string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		// No form-action: the browser applies it to the redirects after
		// the post too, and those end at the client's redirect URI.
		w.Header().Set("Content-Security-Policy", "default-src 'none'; frame-ancestors 'none'")
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		id := r.FormValue("id")
		s.mu.Lock()
		a, ok := s.logins[id]
		s.mu.Unlock()
		if !ok || time.Since(a.created) > loginLifetime {
			w.WriteHeader(http.StatusBadRequest)
			w.Write([]byte("unknown or expired sign-in: start again from the application\n"))
			return
		}
		page := struct{ ID, Username, Error string }{ID: id}
		if r.Method == http.MethodPost {
			page.Username = r.PostFormValue("username")
			u, err := s.user(page.Username, r.PostFormValue("password"))
			switch {
			case err == nil && u.Machine:
				page.Error = "an agent cannot sign in with a browser"
			case err != nil:
				page.Error = "unknown user or wrong password"
			default:
				s.mu.Lock()
				a.user, a.authTime = u.Name, time.Now()
				s.mu.Unlock()
				http.Redirect(w, r, callback+id, http.StatusFound)
				return
			}
			w.WriteHeader(http.StatusUnauthorized)
		}
		loginTmpl.Execute(w, page)
	}
}

// loginClient is a browser application: public, PKCE-bound.
type loginClient struct {
	c        LoginClient
	lifetime time.Duration
}

var (
	_ op.Client           = loginClient{}
	_ op.HasRedirectGlobs = loginClient{}
)

func (c loginClient) RedirectURIGlobs() []string           { return c.c.RedirectGlobs }
func (c loginClient) PostLogoutRedirectURIGlobs() []string { return nil }

func (c loginClient) GetID() string                       { return c.c.ID }
func (c loginClient) RedirectURIs() []string              { return c.c.RedirectURIs }
func (c loginClient) PostLogoutRedirectURIs() []string    { return nil }
func (c loginClient) ApplicationType() op.ApplicationType { return op.ApplicationTypeWeb }
func (c loginClient) AuthMethod() oidc.AuthMethod         { return oidc.AuthMethodNone }
func (c loginClient) ResponseTypes() []oidc.ResponseType {
	return []oidc.ResponseType{oidc.ResponseTypeCode}
}
func (c loginClient) LoginURL(id string) string            { return "/login?id=" + id }
func (c loginClient) AccessTokenType() op.AccessTokenType  { return op.AccessTokenTypeJWT }
func (c loginClient) IDTokenLifetime() time.Duration       { return c.lifetime }
func (c loginClient) DevMode() bool                        { return true } // http redirect URIs on loopback
func (c loginClient) IsScopeAllowed(string) bool           { return true }
func (c loginClient) IDTokenUserinfoClaimsAssertion() bool { return false }
func (c loginClient) ClockSkew() time.Duration             { return 0 }
func (c loginClient) GrantTypes() []oidc.GrantType {
	return []oidc.GrantType{oidc.GrantTypeCode}
}
func (c loginClient) RestrictAdditionalIdTokenScopes() func([]string) []string {
	return func(s []string) []string { return s }
}
func (c loginClient) RestrictAdditionalAccessTokenScopes() func([]string) []string {
	return func(s []string) []string { return slices.Clone(s) }
}
