// Package console is auditledger's web console for auditors and
// reviewers, served by the api role under /console/. It is a second front
// end of the API, not a second authority: people sign in with the
// company's OpenID provider (authorization code with PKCE), the console
// keeps their session server-side, and every page calls the API's own
// routes in-process with the session's access token as the bearer. So
// the API alone decides roles (from the token's groups) and tenant and
// target scopes, and records every read as audit.accessed before the
// console sees the data, one per page or export, exactly as for any API
// client. What the API refuses, the console refuses, with the API's
// reason.
//
// The session cookie is Secure (on https), HttpOnly, SameSite=Strict and
// scoped to Path=/console/; the API under /v1/ reads only bearer tokens,
// so the cookie reaches no API route. Every state-changing request (POST)
// carries the session's CSRF token. A session ends at logout, at its
// access token's expiry (the person then signs in again, and the groups
// are read anew from the new token: group changes take effect then), or
// after Config.MaxSession. Pages are server-rendered and readable
// without JavaScript; htmx 2 (vendored, embedded) updates the results in
// place. The Content-Security-Policy allows scripts and styles from the
// console's own files only.
package console

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"embed"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net/http"
	"net/url"
	"reflect"
	"sync"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	"github.com/go-chi/chi/v5"
	"golang.org/x/oauth2"

	"github.com/auditledger/auditledger/events"
	"github.com/auditledger/auditledger/services/api"
	"github.com/auditledger/auditledger/services/identity"
)

// Config configures the console.
type Config struct {
	// API is the API the console calls (with each session's token) and
	// records its own refusals through. Required.
	API *api.Server
	// Auth verifies access tokens: the API's own verifier, so a token
	// the console accepts at sign-in is one the API accepts. Required.
	Auth identity.Authenticator
	// Issuer is the OpenID provider's issuer URL; ClientID the console's
	// client there; ClientSecret, for a confidential client, its secret
	// (empty: a public client, PKCE alone). The provider must put the
	// API's audience in the access token's aud.
	Issuer, ClientID, ClientSecret string
	// URL is the console's external URL, ending in /console/ (e.g.
	// https://audit.example.com/console/); the redirect URI registered
	// at the provider is URL + "callback". Secure cookies unless it is
	// http on a loopback address.
	URL string
	// Scopes asked for beside openid; nil: email and groups.
	Scopes []string
	// MaxSession caps a session's life; zero: 8 hours. A session ends
	// earlier when its access token expires.
	MaxSession time.Duration
	Logger     *slog.Logger
	// HTTPClient reaches the provider; nil: http.DefaultClient.
	HTTPClient *http.Client
}

// Console is the console's handler; mount it at /console/.
type Console struct {
	cfg    Config
	base   *url.URL
	secure bool

	mu       sync.Mutex
	provider *oidc.Provider           // discovered at the first sign-in
	sessions map[[32]byte]*session    // by the SHA-256 of the cookie's value
	logins   map[string]*pendingLogin // by state
	h        http.Handler
}

type session struct {
	actor   events.Actor
	token   string
	expires time.Time
	csrf    string
	views   map[string]*api.View // the inbox's page views, for their polls (guarded by Console.mu)
}

type pendingLogin struct {
	verifier, nonce string
	expires         time.Time
}

const (
	sessionCookie = "auditledger_console"
	loginCookie   = "auditledger_console_login"
	loginLifetime = 10 * time.Minute
	// maxPendingLogins bounds the sign-ins started and not finished (each
	// kept loginLifetime): anyone may start one.
	maxPendingLogins = 10_000
)

// New builds the console.
func New(cfg Config) (*Console, error) {
	if cfg.API == nil || cfg.Auth == nil || cfg.Issuer == "" || cfg.ClientID == "" || cfg.URL == "" {
		return nil, errors.New("console: API, Auth, Issuer, ClientID and URL are required")
	}
	u, err := url.Parse(cfg.URL)
	if err != nil || u.Host == "" || (u.Scheme != "https" && u.Scheme != "http") || u.Path != "/console/" {
		return nil, fmt.Errorf("console: URL %q: want http(s)://HOST/console/", cfg.URL)
	}
	secure := u.Scheme == "https"
	if !secure && !loopback(u.Hostname()) {
		return nil, fmt.Errorf("console: URL %q: plain http is allowed on a loopback address only (the session cookie would travel in clear)", cfg.URL)
	}
	if cfg.Scopes == nil {
		cfg.Scopes = []string{"email", "groups"}
	}
	if cfg.MaxSession == 0 {
		cfg.MaxSession = 8 * time.Hour
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.HTTPClient == nil {
		cfg.HTTPClient = http.DefaultClient
	}
	c := &Console{cfg: cfg, base: u, secure: secure, sessions: map[[32]byte]*session{}, logins: map[string]*pendingLogin{}}
	c.h = c.router()
	return c, nil
}

func loopback(host string) bool {
	return host == "localhost" || host == "127.0.0.1" || host == "::1"
}

func (c *Console) ServeHTTP(w http.ResponseWriter, r *http.Request) { c.h.ServeHTTP(w, r) }

//go:embed static
var static embed.FS

func (c *Console) router() chi.Router {
	r := chi.NewRouter()
	r.Use(c.headers)
	r.Route("/console", func(r chi.Router) {
		sub, _ := fs.Sub(static, "static")
		r.Handle("/static/*", http.StripPrefix("/console/static/", cacheForever(http.FileServer(http.FS(sub)))))
		r.Get("/", c.home)
		r.Get("/login", c.login)
		r.Get("/callback", c.callback)
		r.Group(func(r chi.Router) {
			r.Use(c.requireSession)
			r.Post("/logout", c.logout)
			r.Get("/sessions", c.sessionsPage)
			r.Get("/sessions/{tenant}/{id}", c.timelinePage)
			r.Get("/sessions/{tenant}/{id}/replay", c.replayPage)
			r.Get("/sessions/{tenant}/{id}/cast", c.castDownload)
			r.Get("/proof/consistency", c.consistencyProof)
			r.Get("/proof/{tenant}/{index}", c.proofPage)
			r.Get("/proof/{tenant}/{index}/inclusion", c.inclusionProof)
			r.Get("/health", c.healthPage)
			r.Get("/charts", c.chartsForm)
			r.Get("/charts/{tenant}", c.chartsPage)
			r.Get("/evidence", c.evidencePage)
			r.Post("/evidence", c.requestEvidence)
			r.Get("/evidence/{id}", c.bundlePage)
			r.Get("/evidence/{id}/download", c.downloadBundle)
			r.Get("/evidence/{id}/progress", c.bundleProgress)
			r.Get("/export", c.export)
			r.Get("/inbox", c.inboxPage)
			r.Get("/inbox/pending", c.inboxFragment)
			r.Post("/approvals/{id}", c.decide("approvals"))
			r.Post("/access-requests/{id}", c.decide("access-requests"))
		})
	})
	r.NotFound(func(w http.ResponseWriter, r *http.Request) {
		c.render(w, r, http.StatusNotFound, "refusal", page{Title: "Not found", Refusal: &refusal{Status: 404, Detail: "no console page at " + r.URL.Path}})
	})
	return r
}

// csp: scripts, styles and images from the console's own files only; no
// inline script or style, no framing, forms posting only here.
const csp = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"

func (c *Console) headers(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("Content-Security-Policy", csp)
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Referrer-Policy", "no-referrer")
		h.Set("X-Frame-Options", "DENY")
		h.Set("Cache-Control", "no-store")
		next.ServeHTTP(w, r)
	})
}

func cacheForever(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// Assets are embedded: a new build may change them, so each URL
		// carries no version and is revalidated (ETag-less: an hour).
		w.Header().Set("Cache-Control", "public, max-age=3600")
		next.ServeHTTP(w, r)
	})
}

func randomToken() string {
	b := make([]byte, 32)
	rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}

// sessionOf is the request's live session, or nil.
func (c *Console) sessionOf(r *http.Request) *session {
	ck, err := r.Cookie(sessionCookie)
	if err != nil || ck.Value == "" {
		return nil
	}
	key := sha256.Sum256([]byte(ck.Value))
	c.mu.Lock()
	defer c.mu.Unlock()
	s, ok := c.sessions[key]
	if !ok {
		return nil
	}
	if time.Now().After(s.expires) {
		delete(c.sessions, key)
		return nil
	}
	return s
}

type ctxKey struct{}

func sessionFrom(ctx context.Context) *session { s, _ := ctx.Value(ctxKey{}).(*session); return s }

// requireSession refuses, and records, a request without a live session,
// and a state-changing one without the session's CSRF token.
func (c *Console) requireSession(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s := c.sessionOf(r)
		if s == nil {
			reason := "no console session: sign in at " + c.cfg.URL + "login"
			c.cfg.API.Refused(r, nil, reason)
			c.render(w, r, http.StatusUnauthorized, "refusal", page{Title: "Sign-in needed", Refusal: &refusal{Status: 401, Detail: reason, SignIn: true}})
			return
		}
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			sent := r.Header.Get("X-CSRF-Token")
			if sent == "" {
				sent = r.PostFormValue("csrf")
			}
			reason := ""
			switch {
			case sent == "":
				reason = "no CSRF token: a console form or htmx request carries the session's"
			case subtle.ConstantTimeCompare([]byte(sent), []byte(s.csrf)) != 1:
				reason = "wrong CSRF token: not the one of this session"
			case r.Header.Get("Sec-Fetch-Site") != "" && r.Header.Get("Sec-Fetch-Site") != "same-origin":
				reason = "cross-site request (Sec-Fetch-Site " + r.Header.Get("Sec-Fetch-Site") + ")"
			}
			if reason != "" {
				c.cfg.API.Refused(r, &s.actor, "console: "+reason)
				c.render(w, r.WithContext(context.WithValue(r.Context(), ctxKey{}, s)), http.StatusForbidden, "refusal", page{Title: "Refused", Refusal: &refusal{Status: 403, Detail: reason}})
				return
			}
		}
		next.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), ctxKey{}, s)))
	})
}

func (c *Console) home(w http.ResponseWriter, r *http.Request) {
	if c.sessionOf(r) != nil {
		http.Redirect(w, r, "/console/sessions", http.StatusSeeOther)
		return
	}
	c.render(w, r, http.StatusOK, "home", page{Title: "Sign in"})
}

// oauth is the provider's endpoints, discovered once.
func (c *Console) oauth(ctx context.Context) (*oauth2.Config, *oidc.Provider, error) {
	c.mu.Lock()
	p := c.provider
	c.mu.Unlock()
	if p == nil {
		var err error
		if p, err = oidc.NewProvider(oidc.ClientContext(ctx, c.cfg.HTTPClient), c.cfg.Issuer); err != nil {
			return nil, nil, fmt.Errorf("the identity provider %s: %w", c.cfg.Issuer, err)
		}
		c.mu.Lock()
		c.provider = p
		c.mu.Unlock()
	}
	return &oauth2.Config{ClientID: c.cfg.ClientID, ClientSecret: c.cfg.ClientSecret, Endpoint: p.Endpoint(),
		RedirectURL: c.cfg.URL + "callback", Scopes: append([]string{oidc.ScopeOpenID}, c.cfg.Scopes...)}, p, nil
}

// login starts the authorization code flow: state (bound to this
// browser by a cookie), nonce and PKCE verifier kept here.
func (c *Console) login(w http.ResponseWriter, r *http.Request) {
	oc, _, err := c.oauth(r.Context())
	if err != nil {
		c.cfg.Logger.Error("console sign-in", "err", err)
		c.render(w, r, http.StatusServiceUnavailable, "refusal", page{Title: "Sign-in unavailable", Refusal: &refusal{Status: 503, Detail: "the identity provider cannot be reached; try again later"}})
		return
	}
	state, verifier, nonce := randomToken(), oauth2.GenerateVerifier(), randomToken()
	c.mu.Lock()
	now := time.Now()
	for k, l := range c.logins {
		if now.After(l.expires) {
			delete(c.logins, k)
		}
	}
	if len(c.logins) >= maxPendingLogins {
		c.mu.Unlock()
		c.render(w, r, http.StatusServiceUnavailable, "refusal", page{Title: "Sign-in unavailable", Refusal: &refusal{Status: 503,
			Detail: "too many sign-ins under way; try again in a few minutes"}})
		return
	}
	c.logins[state] = &pendingLogin{verifier: verifier, nonce: nonce, expires: now.Add(loginLifetime)}
	c.mu.Unlock()
	// Lax: the provider's redirect back is a cross-site navigation.
	http.SetCookie(w, &http.Cookie{Name: loginCookie, Value: state, Path: "/console/", MaxAge: int(loginLifetime.Seconds()), HttpOnly: true, Secure: c.secure, SameSite: http.SameSiteLaxMode})
	http.Redirect(w, r, oc.AuthCodeURL(state, oauth2.S256ChallengeOption(verifier), oidc.Nonce(nonce)), http.StatusFound)
}

// callback ends the flow: the state must be this browser's, the code is
// exchanged with the PKCE verifier, the ID token's nonce checked, and the
// access token verified as the API verifies it.
func (c *Console) callback(w http.ResponseWriter, r *http.Request) {
	fail := func(reason string, err error) {
		if err != nil {
			c.cfg.Logger.Warn("console sign-in refused", "reason", reason, "err", err)
		}
		c.cfg.API.Refused(r, nil, "console sign-in: "+reason)
		c.render(w, r, http.StatusUnauthorized, "refusal", page{Title: "Sign-in failed", Refusal: &refusal{Status: 401, Detail: reason, SignIn: true}})
	}
	q := r.URL.Query()
	state := q.Get("state")
	ck, err := r.Cookie(loginCookie)
	if err != nil || state == "" || subtle.ConstantTimeCompare([]byte(ck.Value), []byte(state)) != 1 {
		fail("the sign-in did not start in this browser (state mismatch)", nil)
		return
	}
	http.SetCookie(w, &http.Cookie{Name: loginCookie, Value: "", Path: "/console/", MaxAge: -1, HttpOnly: true, Secure: c.secure, SameSite: http.SameSiteLaxMode})
	c.mu.Lock()
	pl := c.logins[state]
	delete(c.logins, state)
	c.mu.Unlock()
	if pl == nil || time.Now().After(pl.expires) {
		fail("the sign-in expired or was used already", nil)
		return
	}
	if e := q.Get("error"); e != "" {
		fail("the identity provider refused: "+events.Clean(e+" "+q.Get("error_description"), 256), nil)
		return
	}
	oc, p, err := c.oauth(r.Context())
	if err != nil {
		fail("the identity provider cannot be reached", err)
		return
	}
	ctx := oidc.ClientContext(r.Context(), c.cfg.HTTPClient)
	tok, err := oc.Exchange(ctx, q.Get("code"), oauth2.VerifierOption(pl.verifier))
	if err != nil {
		fail("the code could not be exchanged", err)
		return
	}
	raw, _ := tok.Extra("id_token").(string)
	idt, err := p.Verifier(&oidc.Config{ClientID: c.cfg.ClientID}).Verify(ctx, raw)
	if err != nil || subtle.ConstantTimeCompare([]byte(idt.Nonce), []byte(pl.nonce)) != 1 {
		fail("the ID token was refused", err)
		return
	}
	actor, err := c.cfg.Auth.Authenticate(r.Context(), "", tok.AccessToken)
	if err != nil {
		fail("the access token is not one the API accepts", err)
		return
	}
	if actor.Subject != idt.Subject {
		fail("the access token and the ID token name different people", fmt.Errorf("%q, %q", actor.Subject, idt.Subject))
		return
	}
	expires := time.Now().Add(c.cfg.MaxSession)
	if !tok.Expiry.IsZero() && tok.Expiry.Before(expires) {
		expires = tok.Expiry
	}
	value := randomToken()
	c.mu.Lock()
	for k, s := range c.sessions {
		if time.Now().After(s.expires) {
			delete(c.sessions, k)
		}
	}
	c.sessions[sha256.Sum256([]byte(value))] = &session{actor: actor, token: tok.AccessToken, expires: expires, csrf: randomToken()}
	c.mu.Unlock()
	http.SetCookie(w, &http.Cookie{Name: sessionCookie, Value: value, Path: "/console/", Expires: expires, HttpOnly: true, Secure: c.secure, SameSite: http.SameSiteStrictMode})
	// A page, not a redirect: the browser sends a Strict cookie on a
	// navigation this site starts, not on one the provider's site did.
	c.render(w, r, http.StatusOK, "signedin", page{Title: "Signed in"})
}

func (c *Console) logout(w http.ResponseWriter, r *http.Request) {
	if ck, err := r.Cookie(sessionCookie); err == nil {
		key := sha256.Sum256([]byte(ck.Value))
		c.mu.Lock()
		delete(c.sessions, key)
		c.mu.Unlock()
	}
	http.SetCookie(w, &http.Cookie{Name: sessionCookie, Value: "", Path: "/console/", MaxAge: -1, HttpOnly: true, Secure: c.secure, SameSite: http.SameSiteStrictMode})
	http.Redirect(w, r, "/console/", http.StatusSeeOther)
}

// capture is the answer of an in-process API call: held when it is a
// refusal, passed on to to when it is a 200 and to is set (a stream).
type capture struct {
	hdr    http.Header
	status int
	body   bytes.Buffer
	to     http.ResponseWriter
	pass   []string // headers passed on with a streamed 200
	// direct: the caller takes the API's answer as its value (get);
	// value is that answer when the API offered it (api.DirectJSON).
	direct bool
	value  any
}

// TakeJSON takes the API's answer itself when the caller reads values.
func (p *capture) TakeJSON(v any) bool {
	if !p.direct || p.to != nil {
		return false
	}
	p.value = v
	return true
}

func (p *capture) Header() http.Header { return p.hdr }

// CompactJSON: an answer the console reads needs no indentation; one it
// passes on to the browser (an export) is left as the API writes it.
func (p *capture) CompactJSON() bool { return p.to == nil }
func (p *capture) WriteHeader(code int) {
	if p.status != 0 {
		return
	}
	p.status = code
	if code == http.StatusOK && p.to != nil {
		for _, h := range p.pass {
			if v := p.hdr.Get(h); v != "" {
				p.to.Header().Set(h, v)
			}
		}
		p.to.WriteHeader(code)
	}
}
func (p *capture) Write(b []byte) (int, error) {
	if p.status == 0 {
		p.WriteHeader(http.StatusOK)
	}
	if p.status == http.StatusOK && p.to != nil {
		return p.to.Write(b)
	}
	return p.body.Write(b)
}
func (p *capture) Flush() {
	if f, ok := p.to.(http.Flusher); ok && p.status == http.StatusOK {
		f.Flush()
	}
}

// call runs the API route path?q as the session's person: their token,
// their address; the API decides and records.
func (c *Console) call(r *http.Request, path string, q url.Values, to http.ResponseWriter, pass ...string) *capture {
	return c.callAs(r, path, q, &capture{hdr: http.Header{}, to: to, pass: pass})
}

// callAs runs the API route path?q as the session's person into out.
func (c *Console) callAs(r *http.Request, path string, q url.Values, out *capture) *capture {
	s := sessionFrom(r.Context())
	// A fresh routing context: the API routes the call on its own.
	req := r.Clone(context.WithValue(r.Context(), chi.RouteCtxKey, nil))
	req.Method, req.Body, req.ContentLength = http.MethodGet, http.NoBody, 0
	req.URL = &url.URL{Path: path, RawQuery: q.Encode()}
	req.RequestURI = req.URL.RequestURI()
	req.Header = http.Header{"Authorization": {"Bearer " + s.token}, "User-Agent": {"auditledger-console"}}
	c.cfg.API.ServeHTTP(out, req)
	if out.status == 0 {
		out.status = http.StatusOK
	}
	return out
}

// get runs the API route path?q as the session's person (call) and
// decodes its answer into v. An answer other than 200 is rendered as the
// API's refusal, one that does not decode as an internal error; either
// way get reports false and the page is written.
func (c *Console) get(w http.ResponseWriter, r *http.Request, path string, q url.Values, v any) bool {
	out := c.callAs(r, path, q, &capture{hdr: http.Header{}, direct: true})
	if out.status != http.StatusOK {
		c.refusedBy(w, r, out)
		return false
	}
	// The API's own value, when it is of v's type: no JSON between them.
	if out.value != nil {
		if dst, val := reflect.ValueOf(v), reflect.ValueOf(out.value); dst.Kind() == reflect.Pointer && val.Type().AssignableTo(dst.Elem().Type()) {
			dst.Elem().Set(val)
			return true
		}
		b, err := json.Marshal(out.value)
		if err != nil {
			c.cfg.Logger.Error("console: reading the API's answer", "err", err)
			c.render(w, r, http.StatusInternalServerError, "refusal", page{Title: "Error", Refusal: &refusal{Status: 500, Detail: "internal error"}})
			return false
		}
		out.body.Write(b)
	}
	if err := json.Unmarshal(out.body.Bytes(), v); err != nil {
		c.cfg.Logger.Error("console: reading the API's answer", "err", err)
		c.render(w, r, http.StatusInternalServerError, "refusal", page{Title: "Error", Refusal: &refusal{Status: 500, Detail: "internal error"}})
		return false
	}
	return true
}

// refusedBy renders the API's refusal (a problem document) as a page.
func (c *Console) refusedBy(w http.ResponseWriter, r *http.Request, out *capture) {
	var p api.Problem
	if json.Unmarshal(out.body.Bytes(), &p) != nil || p.Detail == "" {
		p.Detail = http.StatusText(out.status)
	}
	if out.status == http.StatusUnauthorized {
		// The token expired or was revoked: the session is over.
		if ck, err := r.Cookie(sessionCookie); err == nil {
			key := sha256.Sum256([]byte(ck.Value))
			c.mu.Lock()
			delete(c.sessions, key)
			c.mu.Unlock()
		}
	}
	c.render(w, r, out.status, "refusal", page{Title: http.StatusText(out.status), Refusal: &refusal{Status: out.status, Detail: p.Detail, Param: p.Param,
		SignIn: out.status == http.StatusUnauthorized}})
}

// who names the signed-in person for the page header.
func (s *session) who() string {
	if s.actor.Email != "" {
		return s.actor.Subject + " (" + s.actor.Email + ")"
	}
	return s.actor.Subject
}
