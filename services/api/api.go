// Package api is auditledger's HTTP API. Every call carries an OIDC bearer
// token and is authorised by role (auditor, security, approver, admin),
// the roles coming from the token's groups, and scoped to tenants and
// targets by groups too (scope.go). This first part serves approval
// decisions, and the read path: events queried from the projection
// (projections package), the latest checkpoint, and inclusion and
// consistency proofs read in O(log n). Errors are RFC 9457 problem+json
// documents; a bad query parameter is named in "param".
//
// The API is audited like any other access: a call with no valid token is
// recorded as authn.failed, a call refused for want of a role as
// command.blocked, and every read of audit data as audit.accessed — stored
// before the data is sent, or the read is refused.
//
// Each of these events is recorded under the tenant whose data it
// concerns, so that a tenant's auditors, reading their tenant's events,
// learn nothing of another: a read under the tenant read (a list spanning
// tenants as one audit.accessed per tenant, each with that tenant's part,
// all stored before the answer); a refusal under the tenant asked for; an
// evidence export and its downloads under the bundle's tenant. What
// concerns no tenant (a failed token, a refusal naming no tenant, a read
// of hashes only: checkpoints, tiles, proofs of consistency) goes under
// the API's own tenant (Config.Tenant). In every one the caller's groups
// naming other tenants are left out (actorIn).
package api

import (
	"bytes"
	"context"
	_ "embed"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/go-chi/chi/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/auditledger/auditledger/events"
	"github.com/auditledger/auditledger/events/detect"
	"github.com/auditledger/auditledger/ledger/bulk"
	"github.com/auditledger/auditledger/ledger/bus/emitter"
	"github.com/auditledger/auditledger/ledger/piikeys"
	"github.com/auditledger/auditledger/projections"
	"github.com/auditledger/auditledger/services/access"
	"github.com/auditledger/auditledger/services/approvals"
	"github.com/auditledger/auditledger/services/gateway"
	"github.com/auditledger/auditledger/services/identity"
	"github.com/auditledger/auditledger/services/telemetry"
)

// Role is what a caller may do.
type Role string

// Roles.
const (
	Auditor  Role = "auditor"
	Security Role = "security"
	Approver Role = "approver"
	Admin    Role = "admin" // may do everything
)

// Config configures the API.
type Config struct {
	Auth identity.Authenticator // required: verifies bearer tokens
	// Roles maps each role to the groups that hold it. Nil means each
	// role is held by the group of the same name.
	Roles map[Role][]string
	// Scope reads from the groups which tenants and targets a caller's
	// roles reach (scope.go). The zero value: groups "tenant:NAME" and
	// "target:NAME", and a caller in none reaches nothing.
	Scope     ScopeConfig
	Approvals *approvals.Broker // required
	// Access serves just-in-time access requests (/v1/access-requests);
	// nil answers them with 503, saying how to configure it.
	Access *access.Broker
	// Emitter records the API's own events (required), each under the
	// tenant whose data it concerns; Tenant is the tenant of those that
	// concern none, such as authn.failed ("default" when empty). Instance
	// names this process (the host name when empty).
	Emitter  *emitter.Emitter
	Tenant   string
	Instance string
	Logger   *slog.Logger // nil means slog.Default()
	// Metrics, if set, measures every request (by route pattern).
	Metrics *telemetry.HTTP
	// DB is the projection database the read path queries; nil answers
	// its endpoints with 503, saying how to configure it.
	DB *pgxpool.Pool
	// Evidence, with DB, lets auditors build evidence bundles; nil
	// answers those endpoints with 503.
	Evidence *EvidenceConfig
	// Keys seals the e-mail of the actor of the API's own events and
	// opens the sealed e-mails of the events it returns (actor_email;
	// docs/FORMAT.md §1.6). Nil: its events leave the e-mail out, and
	// readers see "(sealed)".
	// With DB, it lets auditors search events by a value the
	// recording rule replaced (POST /v1/events/match), through each
	// tenant's search key; nil answers that endpoint with 503.
	Keys *piikeys.Store
	// Bus, if set, is read for the other processes' state
	// (GET /v1/processes): the writers' leases and the forwarders'
	// consumers. Nil: that route lists producers only, saying so.
	Bus jetstream.JetStream
	// BulkStore, if set, is the segment store the API reads bulk pieces
	// from (bulk/<name>, docs/FORMAT.md §1.7) for the cast of a session;
	// a piece not yet copied there is read from AUDIT_BULK (Bus). Nil:
	// AUDIT_BULK only, which the writer empties of what it stored.
	BulkStore bulk.Objects
	// MaxProducers bounds the (producer, tenant) entries GET
	// /v1/processes reads (it says truncated past it); zero means
	// projections.MaxProducers.
	MaxProducers int
}

// New returns the API's handler.
func New(cfg Config) (http.Handler, error) {
	s, err := NewServer(cfg)
	if err != nil {
		return nil, err
	}
	return s, nil
}

// Server is the API's handler, with what another front end of the same
// data (the console, services/console) needs beside its routes: that
// front end calls the routes with the caller's own bearer token, so
// that the API alone decides roles and scopes and records each read, and
// records its own refusals here.
type Server struct {
	a *api
	h http.Handler
}

func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) { s.h.ServeHTTP(w, r) }

// Refused records a request the front end refused before calling the
// API, under the API's own tenant: as authn.failed when actor is nil (no
// valid session), else as command.blocked by actor (its groups naming
// tenants left out). reason says why, and must hold no secret.
func (s *Server) Refused(r *http.Request, actor *events.Actor, reason string) {
	a := s.a
	if actor == nil {
		a.recordAsync(r, events.AuthnFailed, events.Actor{Issuer: "auditledger-console", Subject: "unauthenticated", Kind: events.Human}, a.cfg.Tenant, map[string]any{"reason": reason})
		return
	}
	a.recordAsync(r, events.CommandBlocked, a.actorIn(*actor, a.cfg.Tenant), a.cfg.Tenant, map[string]any{"reason": reason})
}

// NewServer returns the API's handler as a Server.
func NewServer(cfg Config) (*Server, error) {
	if cfg.Auth == nil || cfg.Approvals == nil || cfg.Emitter == nil {
		return nil, errors.New("api: Auth, Approvals and Emitter are required")
	}
	if cfg.Tenant == "" {
		cfg.Tenant = "default"
	}
	if cfg.Instance == "" {
		cfg.Instance, _ = os.Hostname()
		if cfg.Instance == "" {
			cfg.Instance = "api"
		}
	}
	if cfg.Roles == nil {
		cfg.Roles = map[Role][]string{}
		for _, r := range []Role{Auditor, Security, Approver, Admin} {
			cfg.Roles[r] = []string{string(r)}
		}
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.MaxProducers == 0 {
		cfg.MaxProducers = projections.MaxProducers
	}
	if cfg.Scope.TenantPrefix == "" {
		cfg.Scope.TenantPrefix = "tenant:"
	}
	if cfg.Scope.TargetPrefix == "" {
		cfg.Scope.TargetPrefix = "target:"
	}
	if cfg.Scope.TenantPrefix == cfg.Scope.TargetPrefix {
		return nil, fmt.Errorf("api: Scope.TenantPrefix and Scope.TargetPrefix are both %q: a group would name a tenant and a target at once", cfg.Scope.TenantPrefix)
	}
	a := &api{cfg: cfg, read: projections.NewReader(cfg.DB), jobs: &evidenceJobs{jobs: map[string]*EvidenceStatus{}, one: make(chan struct{}, 1), wake: map[string]chan struct{}{}}}
	r := a.router()
	return &Server{a: a, h: cfg.Metrics.Wrap(r, func(r *http.Request) string {
		if rc := chi.RouteContext(r.Context()); rc != nil && rc.RoutePattern() != "" {
			return rc.RoutePattern()
		}
		return "unmatched"
	})}, nil
}

//go:embed openapi.json
var openAPI []byte

// OpenAPI is the API's OpenAPI 3.1 document, served at /v1/openapi.json.
func OpenAPI() []byte { return openAPI }

// Routes lists the API's routes as "METHOD /path" (chi's patterns), for
// checking the OpenAPI document against the router.
func Routes() []string {
	var out []string
	chi.Walk((&api{}).router(), func(method, route string, _ http.Handler, _ ...func(http.Handler) http.Handler) error {
		out = append(out, method+" "+route)
		return nil
	})
	return out
}

func (a *api) router() chi.Router {
	r := chi.NewRouter()
	r.Get("/healthz", func(w http.ResponseWriter, _ *http.Request) { w.Write([]byte("ok\n")) })
	r.Route("/v1", func(r chi.Router) {
		r.Use(a.authenticate, a.cleanInput)
		r.With(a.require(Approver, Security, Auditor)).Get("/approvals", a.listApprovals)
		r.With(a.require(Approver, Security, Auditor)).Get("/approvals/{id}", a.getApproval)
		r.With(a.require(Approver)).Post("/approvals/{id}/approve", a.decide(true))
		r.With(a.require(Approver)).Post("/approvals/{id}/deny", a.decide(false))
		// Just-in-time access: any caller asks and sees its own; the
		// roles and scopes of approvals decide (access.go).
		r.Group(func(r chi.Router) {
			r.Use(a.needsAccess)
			r.Post("/access-requests", a.requestAccess)
			r.Get("/access-requests", a.listAccess)
			r.Get("/access-requests/{id}", a.getAccess)
			r.Post("/access-requests/{id}/approve", a.decideAccess("approve"))
			r.Post("/access-requests/{id}/deny", a.decideAccess("deny"))
			r.Post("/access-requests/{id}/revoke", a.decideAccess("revoke"))
		})
		// Access reviews: the listing for those who see access
		// requests, the sign-off for approvers and security
		// (accessreview.go).
		r.With(a.require(Approver, Security, Auditor), a.needsAccess, a.needsReadPath).Get("/access-reviews", a.listAccessReview)
		r.With(a.require(Approver, Security), a.needsAccess, a.needsReadPath).Post("/access-reviews", a.signOffAccessReview)
		// The read path: the projection, for auditors and security.
		r.Group(func(r chi.Router) {
			r.Use(a.require(Auditor, Security), a.needsReadPath)
			r.Get("/events", a.listEvents)
			r.Get("/events/export", a.exportEvents)
			r.Post("/events/match", a.matchEvents)
			r.Post("/sealed/open", a.openSealed)
			r.Get("/checkpoints/latest", a.latestCheckpoint)
			r.Get("/proofs/inclusion", a.inclusionProof)
			r.Get("/proofs/consistency", a.consistencyProof)
			r.Get("/sessions", a.listSessions)
			r.Get("/sessions/{id}", a.sessionTimeline)
			r.Get("/sessions/{id}/cast", a.sessionCast)
			r.Get("/verify/status", a.verifyStatus)
			r.Get("/charts", a.charts)
			r.Get("/processes", a.processes)
			r.Get("/log/checkpoint", a.latestCheckpoint)
			r.Get("/log/tile/*", a.tile)
		})
		// Bulk pieces a tool read from a store, opened where the key
		// store is (bulk.go): no projection needed.
		r.With(a.require(Auditor, Security)).Post("/sessions/{id}/pieces", a.openPieces)
		// Evidence bundles: built in the background, each export and
		// download recorded in the log.
		r.Group(func(r chi.Router) {
			r.Use(a.require(Auditor, Security), a.needsReadPath, a.needsEvidence)
			r.Get("/evidence", a.listEvidence)
			r.Post("/evidence", a.requestEvidence)
			r.Get("/evidence/{id}", a.evidenceStatus)
			r.Get("/evidence/{id}/progress", a.evidenceProgress)
			r.Get("/evidence/{id}/download", a.downloadEvidence)
		})
		r.Get("/openapi.json", func(w http.ResponseWriter, _ *http.Request) {
			w.Header().Set("Content-Type", "application/json")
			w.Write(openAPI)
		})
	})
	return r
}

type api struct {
	cfg  Config
	read *projections.Reader // the projection: every read of audit data
	jobs *evidenceJobs
}

type ctxKey struct{}

func actorOf(ctx context.Context) events.Actor { a, _ := ctx.Value(ctxKey{}).(events.Actor); return a }

// Error kinds, mapped to HTTP status in one place (fail).
var (
	errUnauthenticated = errors.New("unauthenticated")
	errForbidden       = errors.New("forbidden")
	errBadRequest      = errors.New("bad request")
	errNotFound        = errors.New("not found")
)

func status(err error) int {
	switch {
	case errors.Is(err, errUnauthenticated):
		return http.StatusUnauthorized
	case errors.Is(err, errForbidden), errors.Is(err, approvals.ErrSelfApproval),
		errors.Is(err, access.ErrSelfApproval), errors.Is(err, access.ErrNotReviewer):
		return http.StatusForbidden
	case errors.Is(err, access.ErrInvalid):
		return http.StatusBadRequest
	case errors.Is(err, access.ErrNotFound):
		return http.StatusNotFound
	case errors.Is(err, access.ErrState), errors.Is(err, errListingChanged):
		return http.StatusConflict
	case errors.Is(err, errNoAccess), errors.Is(err, access.ErrNoKey):
		return http.StatusServiceUnavailable
	case errors.Is(err, errBadRequest), errors.Is(err, projections.ErrBadFilter):
		return http.StatusBadRequest
	case errors.Is(err, approvals.ErrNotFound), errors.Is(err, errNotFound), errors.Is(err, projections.ErrNotFound):
		return http.StatusNotFound
	case errors.Is(err, projections.ErrNotProjected):
		return http.StatusConflict
	case errors.Is(err, approvals.ErrDecided):
		return http.StatusConflict
	case errors.Is(err, errNotReady), errors.Is(err, errPiece):
		return http.StatusConflict
	case errors.Is(err, errNotAudited), errors.Is(err, errNoReadPath), errors.Is(err, projections.ErrUnavailable), errors.Is(err, errNoEvidence),
		errors.Is(err, errNoKeys), errors.Is(err, errKeysUnavailable):
		return http.StatusServiceUnavailable
	}
	return http.StatusInternalServerError
}

// Problem is the body of every error: an RFC 9457 problem document, with
// the offending query parameter in Param, and the detail repeated in
// Error for clients of the first API version.
type Problem struct {
	Type   string `json:"type"`
	Title  string `json:"title"`
	Status int    `json:"status"`
	Detail string `json:"detail"`
	Param  string `json:"param,omitempty"`
	Error  string `json:"error"`
}

// fail answers with a problem document; server errors are logged and
// not detailed to the caller.
func (a *api) fail(w http.ResponseWriter, r *http.Request, err error) {
	// The reader names a bad filter as the query parameter does.
	if fe := (*projections.FilterError)(nil); errors.As(err, &fe) {
		err = &paramError{fe.Field, fe.Reason}
	}
	code := status(err)
	msg := err.Error()
	if code == http.StatusInternalServerError {
		a.cfg.Logger.Error("api request failed", "method", r.Method, "path", r.URL.Path, "err", err)
		msg = "internal error"
	}
	if code == http.StatusUnauthorized {
		w.Header().Set("WWW-Authenticate", `Bearer realm="auditledger"`)
	}
	if errors.Is(err, projections.ErrNoSchema) {
		w.Header().Set("Retry-After", "1") // the projector is starting
	}
	p := Problem{Type: "about:blank", Title: http.StatusText(code), Status: code, Detail: msg, Error: msg}
	var pe *paramError
	if errors.As(err, &pe) {
		p.Param = pe.param
	}
	w.Header().Set("Content-Type", "application/problem+json")
	w.WriteHeader(code)
	encodeJSON(w, p)
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	if d, ok := inProcess[DirectJSON](w); ok && d.TakeJSON(v) {
		w.WriteHeader(code)
		return
	}
	w.WriteHeader(code)
	encodeJSON(w, v)
}

// DirectJSON is a ResponseWriter whose reader is a program in this
// process that can take an answer's value itself (the console reading a
// 1,000-event timeline): when TakeJSON takes v — a value the API built
// for this answer alone, never shared — its JSON is not written, and the
// reader neither encodes nor decodes it. A reader that does not take it
// gets the JSON as ever. Only answers of 2xx written by writeJSON are
// offered; problems are always JSON.
type DirectJSON interface {
	http.ResponseWriter
	TakeJSON(v any) bool
}

// inProcess finds, through wrappers that unwrap (the metrics' writer),
// the writer of a reader in this process that is a T.
func inProcess[T any](w http.ResponseWriter) (T, bool) {
	for {
		if t, ok := w.(T); ok {
			return t, true
		}
		u, ok := w.(interface{ Unwrap() http.ResponseWriter })
		if !ok {
			var zero T
			return zero, false
		}
		w = u.Unwrap()
	}
}

// CompactJSON is a ResponseWriter whose reader is a program in this
// process (the console reading the API's answer in-process): when
// CompactJSON answers true, JSON answers are written without indentation,
// which on a 1,000-event timeline costs as much as the encoding itself.
type CompactJSON interface {
	http.ResponseWriter
	CompactJSON() bool
}

// encodeJSON writes v indented (unless w is a CompactJSON), without HTML
// escaping: an event embedded as json.RawMessage keeps its bytes (a
// statement's "<" stays "<").
func encodeJSON(w http.ResponseWriter, v any) {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if enc.Encode(v) != nil {
		return
	}
	if c, ok := inProcess[CompactJSON](w); ok && c.CompactJSON() {
		w.Write(b.Bytes())
		return
	}
	w.Write(indentJSON(make([]byte, 0, b.Len()+b.Len()/2), b.Bytes()))
}

// indentJSON appends src — valid JSON as json.Encoder writes it, compact
// and ending in a newline — to dst indented by two spaces, exactly as
// json.Encoder's SetIndent("", "  ") writes it (TestIndentJSON): the
// same bytes, several times faster, since src is known valid and only
// strings need following (a 1,000-event timeline spent more in
// json.Indent than in everything else of its answer).
func indentJSON(dst, src []byte) []byte {
	depth, needIndent, inString, escaped := 0, false, false, false
	newline := func() {
		dst = append(dst, '\n')
		for range depth {
			dst = append(dst, ' ', ' ')
		}
	}
	for _, c := range src {
		if inString {
			dst = append(dst, c)
			switch {
			case escaped:
				escaped = false
			case c == '\\':
				escaped = true
			case c == '"':
				inString = false
			}
			continue
		}
		switch c {
		case ' ', '\t', '\n', '\r':
			continue
		}
		if needIndent && c != '}' && c != ']' {
			needIndent = false
			depth++
			newline()
		}
		switch c {
		case '"':
			inString = true
			dst = append(dst, c)
		case '{', '[':
			needIndent = true // {} and [] stay as they are
			dst = append(dst, c)
		case ',':
			dst = append(dst, c)
			newline()
		case ':':
			dst = append(dst, c, ' ')
		case '}', ']':
			if needIndent {
				needIndent = false
			} else {
				depth--
				newline()
			}
			dst = append(dst, c)
		default:
			dst = append(dst, c)
		}
	}
	return append(dst, '\n')
}

func (a *api) authenticate(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := r.Header.Get("Authorization")
		tok, ok := strings.CutPrefix(h, "Bearer ")
		var actor events.Actor
		err := fmt.Errorf("%w: send an OIDC token as Authorization: Bearer", errUnauthenticated)
		if ok {
			if actor, err = a.cfg.Auth.Authenticate(r.Context(), "", tok); err != nil {
				err = fmt.Errorf("%w: %v", errUnauthenticated, err)
			}
		}
		if err != nil {
			a.recordAsync(r, events.AuthnFailed, events.Actor{Issuer: "auditledger-api", Subject: "unauthenticated", Kind: events.Human},
				a.cfg.Tenant, map[string]any{"reason": err.Error()})
			a.fail(w, r, err)
			return
		}
		next.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), ctxKey{}, actor)))
	})
}

// holds reports whether actor holds any of roles, or admin.
func (a *api) holds(actor events.Actor, roles ...Role) bool {
	for _, role := range append(roles, Admin) {
		for _, g := range a.cfg.Roles[role] {
			if slices.Contains(actor.Groups, g) {
				return true
			}
		}
	}
	return false
}

// require lets a caller through who holds any of roles, or admin.
func (a *api) require(roles ...Role) func(http.Handler) http.Handler {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			actor := actorOf(r.Context())
			if a.holds(actor, roles...) {
				next.ServeHTTP(w, r)
				return
			}
			// Recorded under the tenant the call names, if it names a
			// valid one: its auditors should see the attempt.
			tenant := r.URL.Query().Get("tenant")
			if checkTenant(tenant) != nil {
				tenant = a.cfg.Tenant
			}
			refused := func(groups []string) error {
				return fmt.Errorf("%w: %s needs the role %s; %s has groups %v", errForbidden, r.URL.Path, roleNames(roles), actor.Subject, groups)
			}
			shown := a.actorIn(actor, tenant)
			a.recordAsync(r, events.CommandBlocked, shown, tenant, map[string]any{"reason": refused(shown.Groups).Error()})
			a.fail(w, r, refused(actor.Groups))
		})
	}
}

func roleNames(roles []Role) string {
	s := make([]string, len(roles))
	for i, r := range roles {
		s[i] = string(r)
	}
	return strings.Join(s, " or ")
}

func (a *api) listApprovals(w http.ResponseWriter, r *http.Request) {
	st := approvals.Status(r.URL.Query().Get("status"))
	switch st {
	case "", approvals.Pending, approvals.Granted, approvals.Denied, approvals.Expired:
	default:
		a.fail(w, r, fmt.Errorf("%w: status %q is not pending, granted, denied or expired", errBadRequest, st))
		return
	}
	all, err := a.cfg.Approvals.List(r.Context(), st)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	// The approvals bucket has no query language: the scope filters here.
	sc := a.scopeOf(r)
	list := []*approvals.Request{}
	for _, q := range all {
		if sc.approval(q) {
			list = append(list, q)
		}
	}
	// One record per tenant listed, each with its own approvals.
	var parts []part
	byTenant := map[string]int{}
	for _, q := range list {
		i, ok := byTenant[q.Tenant]
		if !ok {
			i, byTenant[q.Tenant] = len(parts), len(parts)
			parts = append(parts, part{q.Tenant, map[string]any{"resource": "approvals", "status_filter": string(st), "count": 0, "ids": []string{}}})
		}
		p := parts[i].payload
		p["count"], p["ids"] = p["count"].(int)+1, append(p["ids"].([]string), q.ID)
	}
	if len(parts) == 0 {
		parts = []part{{a.readTenant(r, ""), map[string]any{"resource": "approvals", "status_filter": string(st), "count": 0, "ids": []string{}}}}
	}
	if err := a.accessedParts(r, parts); err != nil {
		a.fail(w, r, err)
		return
	}
	o := a.opener(r.Context())
	out := make([]ApprovalResult, len(list))
	for i, q := range list {
		out[i] = a.approvalResult(r, o, q)
	}
	writeJSON(w, http.StatusOK, out)
}

func (a *api) getApproval(w http.ResponseWriter, r *http.Request) {
	req, err := a.cfg.Approvals.Get(r.Context(), chi.URLParam(r, "id"))
	if err != nil {
		a.fail(w, r, err)
		return
	}
	if !a.approvalInScope(w, r, req) {
		return
	}
	if err := a.accessed(r, req.Tenant, map[string]any{"resource": "approval", "ids": []string{req.ID}, "count": 1}); err != nil {
		a.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, a.approvalResult(r, a.opener(r.Context()), req))
}

// approvalInScope refuses an approval whose tenant or target is outside
// the caller's scope.
func (a *api) approvalInScope(w http.ResponseWriter, r *http.Request, req *approvals.Request) bool {
	if s := a.scopeOf(r); !s.approval(req) {
		a.refuse(w, r, &scopeError{what: "approval " + req.ID, scope: s, tenants: []string{req.Tenant}})
		return false
	}
	return true
}

// errNotAudited: the audit.accessed event of a read could not be stored,
// so the read is refused.
var errNotAudited = errors.New("this read could not be recorded in the audit ledger; refused")

// event is one of the API's own events about request r, under tenant.
// The caller passes the actor as tenant's auditors may see it (actorIn).
func (a *api) event(r *http.Request, t events.Type, actor events.Actor, tenant string, payload map[string]any) (*events.Event, error) {
	payload["method"] = events.Clean(r.Method, 32)
	payload["path"] = events.Clean(r.URL.Path, 2048)
	payload["client_addr"] = r.RemoteAddr
	// The recording rule every gateway applies: a value a detector finds
	// (a card number searched for with q=) is replaced, and recorded by
	// its keyed digest when the tenant's key can be read.
	var key []byte
	if a.cfg.Keys != nil {
		if k, err := a.cfg.Keys.TenantKey(r.Context(), tenant); err == nil {
			key = k
		} else {
			a.cfg.Logger.Warn("search key unavailable: values the API's record replaces are recorded without digests", "tenant", tenant, "err", err)
		}
	}
	body, err := gateway.EncodePayload(payload, key)
	if err != nil {
		return nil, err
	}
	return &events.Event{
		Version: events.Version, ID: "api." + detect.RandomHex(12), Type: t, Time: time.Now().UTC(), Tenant: tenant,
		Source: events.Source{Kind: "api", Instance: a.cfg.Instance}, Actor: a.sealActor(r.Context(), actor, tenant),
		Target: &events.Target{Kind: "auditledger-api"}, Payload: body,
	}, nil
}

// requesterKnown refuses to grant a request whose requester is recorded
// by the pseudonym of an erased subject: the requester, back with a new
// key, has a new pseudonym, and could approve their own request
// (ErrSelfApproval). Fails closed when the key store cannot say.
func (a *api) requesterKnown(ctx context.Context, requester events.Actor) error {
	p, ok := strings.CutPrefix(requester.Subject, gateway.PseudonymPrefix)
	if !ok {
		return nil
	}
	if a.cfg.Keys == nil {
		return fmt.Errorf("%w: the requester is recorded by pseudonym and this API has no key store to tell them apart from the decider", approvals.ErrSelfApproval)
	}
	live, err := a.cfg.Keys.Live(ctx, p)
	if err != nil {
		return fmt.Errorf("%w: the key store could not say whether the requester was erased: %v", approvals.ErrSelfApproval, err)
	}
	if !live {
		return fmt.Errorf("%w: the requester was erased, so no decider can be told apart from them", approvals.ErrSelfApproval)
	}
	return nil
}

// actorIn is actor as the auditors of tenant may see it: without the
// groups naming other tenants (a group naming every tenant stays).
func (a *api) actorIn(actor events.Actor, tenant string) events.Actor {
	var groups []string
	for _, g := range actor.Groups {
		if t, ok := strings.CutPrefix(g, a.cfg.Scope.TenantPrefix); ok && t != "" && t != "*" && t != tenant {
			continue
		}
		groups = append(groups, g)
	}
	actor.Groups = groups
	return actor
}

// part is one tenant's share of a read: the audit.accessed recorded
// under that tenant.
type part struct {
	tenant  string
	payload map[string]any
}

// readTenant is the tenant a read concerns when its answer names none (it
// holds no row): the tenant named, the caller's one tenant, or else the
// API's own.
func (a *api) readTenant(r *http.Request, named string) string {
	if named != "" {
		return named
	}
	if s := a.scopeOf(r); !s.allTenants && len(s.tenants) == 1 {
		return s.tenants[0]
	}
	return a.cfg.Tenant
}

// accessed records, before the data is sent, that the caller read audit
// data of tenant; if the record cannot be stored the read is refused.
func (a *api) accessed(r *http.Request, tenant string, payload map[string]any) error {
	return a.accessedParts(r, []part{{tenant, payload}})
}

// accessedParts records a read as one audit.accessed per tenant it
// concerns, each with that tenant's part only. They are queued together
// (so they share a group commit) and all must be stored before the data
// is sent: if any is not, the read is refused.
func (a *api) accessedParts(r *http.Request, parts []part) error {
	v, _ := r.Context().Value(viewKey{}).(*View)
	var who string
	if v != nil {
		actor := actorOf(r.Context())
		who = actor.Issuer + "\x00" + actor.Subject
		if parts = v.unseen(who, parts); len(parts) == 0 {
			return nil
		}
	}
	evs := make([]*events.Event, len(parts))
	for i, p := range parts {
		ev, err := a.event(r, events.AuditAccessed, a.actorIn(actorOf(r.Context()), p.tenant), p.tenant, p.payload)
		if err != nil {
			return err
		}
		evs[i] = ev
	}
	results := make(chan emitter.Result, len(evs))
	queued := 0
	var failed error
	var failedID string
	for _, ev := range evs {
		if err := a.cfg.Emitter.EmitAsync(r.Context(), ev, func(res emitter.Result) { results <- res }); err != nil {
			failed, failedID = err, ev.ID
			break
		}
		queued++
	}
wait:
	for range queued {
		select {
		case res := <-results:
			if err := res.Stored(false); err != nil && failed == nil {
				failed, failedID = err, res.ID
			}
		case <-r.Context().Done():
			if failed == nil {
				failed, failedID = r.Context().Err(), evs[0].ID
			}
			break wait
		}
	}
	if failed != nil {
		a.cfg.Logger.Error("audit.accessed not recorded: read refused", "event_id", failedID, "err", failed)
		return fmt.Errorf("%w: %v", errNotAudited, failed)
	}
	if v != nil {
		v.saw(who, parts)
	}
	return nil
}

// View is one page view of an in-process front end (the console) that
// updates in place: the view's first read records audit.accessed as any
// read does, and a repeat read under the same View (a live-update poll)
// whose answer holds nothing the view has recorded already is served
// without another record. Each such read is still authenticated,
// authorised and scoped as ever; a poll that shows something new (an id
// not yet recorded, another tenant, another filter) records it. Only a
// caller in the same process can attach a View (a context value): no HTTP
// client can. What one person's read recorded spares no other person's.
type View struct {
	mu   sync.Mutex
	seen map[string]bool
}

// NewView starts a page view.
func NewView() *View { return &View{seen: map[string]bool{}} }

type viewKey struct{}

// WithView makes the API calls made with ctx reads of view v.
func WithView(ctx context.Context, v *View) context.Context {
	return context.WithValue(ctx, viewKey{}, v)
}

// viewKeys are the keys of part p read by who in a View: its reader,
// tenant, resource and filter, and each id it lists; ok is false for a
// read that lists no ids (recorded every time).
func viewKeys(who string, p part) (keys []string, ok bool) {
	ids, ok := p.payload["ids"].([]string)
	if !ok {
		return nil, false
	}
	group := fmt.Sprintf("%s\x00%s\x00%v\x00%v", who, p.tenant, p.payload["resource"], p.payload["status_filter"])
	keys = append(keys, group)
	for _, id := range ids {
		keys = append(keys, group+"\x00"+id)
	}
	return keys, true
}

// unseen are the parts v has not recorded yet.
func (v *View) unseen(who string, parts []part) []part {
	v.mu.Lock()
	defer v.mu.Unlock()
	var out []part
	for _, p := range parts {
		keys, ok := viewKeys(who, p)
		if !ok || !allSeen(v.seen, keys) {
			out = append(out, p)
		}
	}
	return out
}

func allSeen(seen map[string]bool, keys []string) bool {
	for _, k := range keys {
		if !seen[k] {
			return false
		}
	}
	return true
}

// saw notes parts as recorded in v.
func (v *View) saw(who string, parts []part) {
	v.mu.Lock()
	defer v.mu.Unlock()
	for _, p := range parts {
		keys, _ := viewKeys(who, p)
		for _, k := range keys {
			v.seen[k] = true
		}
	}
}

// recordAsync records an event about a refused call, under tenant,
// without holding the answer; a failure is logged loudly and counted by
// the emitter.
func (a *api) recordAsync(r *http.Request, t events.Type, actor events.Actor, tenant string, payload map[string]any) {
	ev, err := a.event(r, t, actor, tenant, payload)
	if err == nil {
		err = a.cfg.Emitter.EmitAsync(context.WithoutCancel(r.Context()), ev, func(res emitter.Result) {
			if res.Err != nil {
				a.cfg.Logger.Error("event not recorded", "type", t, "event_id", res.ID, "err", res.Err)
			}
		})
	}
	if err != nil {
		a.cfg.Logger.Error("event not recorded", "type", t, "err", err)
	}
}

// decodeBody decodes a JSON body of at most 8 KiB into v, refusing
// unknown members; on failure it answers 400, naming the form wanted
// (send, when not empty), and returns false.
func (a *api) decodeBody(w http.ResponseWriter, r *http.Request, v any, send string) bool {
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, 8<<10))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		if send != "" {
			err = fmt.Errorf("%v (send %s)", err, send)
		}
		a.fail(w, r, fmt.Errorf("%w: body: %v", errBadRequest, err))
		return false
	}
	return true
}

// Decision is the body of approve and deny.
type Decision struct {
	Reason string `json:"reason"`
}

func (a *api) decide(grant bool) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		var d Decision
		if r.ContentLength != 0 {
			dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, 8<<10))
			dec.DisallowUnknownFields()
			if err := dec.Decode(&d); err != nil {
				a.fail(w, r, fmt.Errorf("%w: body: %v", errBadRequest, err))
				return
			}
		}
		if !grant && strings.TrimSpace(d.Reason) == "" {
			a.fail(w, r, fmt.Errorf("%w: a denial needs a reason", errBadRequest))
			return
		}
		// The request's tenant and target never change: checked once,
		// before the decision.
		req, err := a.cfg.Approvals.Get(r.Context(), chi.URLParam(r, "id"))
		if err != nil {
			a.fail(w, r, err)
			return
		}
		if !a.approvalInScope(w, r, req) {
			return
		}
		// The decision is recorded under the request's tenant, with the
		// decider as that tenant's auditors may see it.
		// Sealed once here, so that the API's and the proxy's copies of
		// the decision event are the same bytes.
		decider := a.sealActor(r.Context(), a.actorIn(actorOf(r.Context()), req.Tenant), req.Tenant)
		tenant := req.Tenant
		if grant {
			if err := a.requesterKnown(r.Context(), req.Requester); err != nil {
				a.recordAsync(r, events.CommandBlocked, decider, tenant, map[string]any{"reason": err.Error()})
				a.fail(w, r, err)
				return
			}
		}
		req, err = a.cfg.Approvals.Decide(r.Context(), req.ID, decider, grant, d.Reason)
		if errors.Is(err, approvals.ErrSelfApproval) {
			// A refusal like any other: sealed, under the request's tenant.
			a.recordAsync(r, events.CommandBlocked, decider, tenant, map[string]any{"reason": err.Error()})
		}
		if err != nil && req == nil {
			a.fail(w, r, err)
			return
		}
		if err != nil { // decided, event not yet stored: the proxy records it
			a.cfg.Logger.Warn("approval decided, event pending", "approval_id", req.ID, "err", err)
		}
		writeJSON(w, http.StatusOK, req)
	}
}
