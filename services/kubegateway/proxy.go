package kubegateway

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os"
	"strings"
	"sync"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/sets"
	"k8s.io/apiserver/pkg/endpoints/request"

	"github.com/auditledger/auditledger/events"
	"github.com/auditledger/auditledger/ledger/piikeys"
	"github.com/auditledger/auditledger/services/access"
	"github.com/auditledger/auditledger/services/approvals"
	"github.com/auditledger/auditledger/services/gateway"
	"github.com/auditledger/auditledger/services/identity"
	"github.com/auditledger/auditledger/services/telemetry"
)

// ErrConfig: New was given a configuration it cannot run.
var ErrConfig = errors.New("kube gateway configuration")

// Config configures the Kubernetes gateway.
type Config struct {
	// Upstream is the API server's URL (https://host:port). Required.
	Upstream string
	// UpstreamCA is the PEM of the certificate authorities the API
	// server's serving certificate must chain to. Required: the gateway
	// never skips verification.
	UpstreamCA []byte
	// TokenFile holds the bearer token the gateway presents to the API
	// server (a service account's, allowed to impersonate); it is read
	// again when it changes. Either TokenFile or ClientCert is required.
	TokenFile string
	// ClientCert is the client certificate the gateway presents instead.
	ClientCert *tls.Certificate
	// Serving is the gateway's own TLS identity. Required.
	Serving *ServingCert
	// Auth verifies the clients' OIDC tokens; its audience is the
	// gateway. Required.
	Auth identity.Authenticator
	// Cluster names the cluster in events (target.name); empty means
	// "kubernetes".
	Cluster string
	// UserPrefix is put before the subject to make the impersonated user
	// name; empty means "oidc:".
	UserPrefix string
	// GroupPrefix is put before each of the identity's groups to make the
	// impersonated groups; empty means "oidc:". A group that would still
	// begin with "system:" is never forwarded.
	GroupPrefix string
	// Policy is what the gateway enforces; nil means DefaultPolicy.
	Policy *Policy
	// Emitter stores the events. Required.
	Emitter gateway.Recorder
	// Tenant of the events. Required.
	Tenant string
	// Instance names this gateway in events; empty means "kubegw".
	Instance string
	// FailOpen: see gateway.Config.
	FailOpen bool
	// Approvals decides held requests; nil refuses a policy with approve
	// rules.
	Approvals *approvals.Broker
	// PII holds the personal-data keys (gateway.Config.Keys); nil: no
	// keyed digests of bodies.
	PII *piikeys.Store
	// StateDir holds the journal of open watches (gateway.Config); empty:
	// none.
	StateDir string
	// Access, if set, admits a request, watch, exec or attach to a
	// cluster its rules name only inside a live grant for the identity,
	// and cuts the watches and streams still open when the grant ends or
	// is revoked (gateway.Config.Access).
	Access *access.Watcher
	// AccessTick: gateway.Config.AccessTick (zero: 100 ms).
	AccessTick time.Duration
	// MaxRequestBody bounds request bodies, read whole to be recorded
	// and judged; zero means 3 MiB plus 64 KiB (the API server's own
	// limit is 3 MiB).
	MaxRequestBody int64
	// Metrics, if set, counts what is recorded.
	Metrics *telemetry.Proxy
	// Logger; nil means slog.Default().
	Logger *slog.Logger
}

// Proxy is the Kubernetes gateway; it is an http.Handler.
type Proxy struct {
	cfg      Config
	g        *gateway.Gateway
	pol      *Policy
	upstream *url.URL
	rp       *httputil.ReverseProxy
	info     *request.RequestInfoFactory
	log      *slog.Logger

	tmu      sync.Mutex
	token    string
	tokenMod time.Time
}

// New checks cfg.
func New(cfg Config) (*Proxy, error) {
	u, err := url.Parse(cfg.Upstream)
	switch {
	case err != nil || u.Scheme != "https" || u.Host == "":
		return nil, fmt.Errorf("%w: upstream %q: want the API server's https:// URL", ErrConfig, cfg.Upstream)
	case len(cfg.UpstreamCA) == 0:
		return nil, fmt.Errorf("%w: the API server's CA is required (the gateway never skips certificate verification)", ErrConfig)
	case cfg.TokenFile == "" && cfg.ClientCert == nil:
		return nil, fmt.Errorf("%w: a credential for the API server is required: a token file or a client certificate", ErrConfig)
	case cfg.Serving == nil:
		return nil, fmt.Errorf("%w: a serving certificate is required", ErrConfig)
	case cfg.Auth == nil:
		return nil, fmt.Errorf("%w: an OIDC verifier is required", ErrConfig)
	}
	pool, err := parseCAs(cfg.UpstreamCA)
	if err != nil {
		return nil, fmt.Errorf("%w: the API server's CA: %v", ErrConfig, err)
	}
	if cfg.Cluster == "" {
		cfg.Cluster = "kubernetes"
	}
	if cfg.UserPrefix == "" {
		cfg.UserPrefix = "oidc:"
	}
	if cfg.GroupPrefix == "" {
		cfg.GroupPrefix = "oidc:"
	}
	if strings.HasPrefix(cfg.UserPrefix, "system:") || strings.HasPrefix(cfg.GroupPrefix, "system:") {
		return nil, fmt.Errorf("%w: a user or group prefix beginning with system: would name the cluster's own identities", ErrConfig)
	}
	if cfg.MaxRequestBody <= 0 {
		cfg.MaxRequestBody = 3<<20 + 64<<10
	}
	if cfg.Instance == "" {
		cfg.Instance = "kubegw"
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	pol := cfg.Policy
	if pol == nil {
		pol = DefaultPolicy()
	}
	if len(pol.Approve) > 0 && cfg.Approvals == nil {
		return nil, fmt.Errorf("%w: the policy has approve rules, and no approvals broker is configured", ErrConfig)
	}
	if cfg.TokenFile != "" {
		if _, err := os.ReadFile(cfg.TokenFile); err != nil {
			return nil, fmt.Errorf("%w: token file: %v", ErrConfig, err)
		}
	}
	gcfg := gateway.Config{Name: "kubegw", Kind: "kube-gateway", Instance: cfg.Instance, Tenant: cfg.Tenant, Emitter: cfg.Emitter,
		FailOpen: cfg.FailOpen, Approvals: cfg.Approvals, Keys: cfg.PII, StateDir: cfg.StateDir, Access: cfg.Access, AccessTick: cfg.AccessTick, Metrics: cfg.Metrics, Logger: cfg.Logger}
	if cfg.Policy != nil {
		gcfg.Policy = cfg.Policy.Info()
	}
	g, err := gateway.New(gcfg)
	if err != nil {
		return nil, err
	}
	tc := &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
	if cfg.ClientCert != nil {
		tc.Certificates = []tls.Certificate{*cfg.ClientCert}
	}
	tr := &http.Transport{
		Proxy: nil, TLSClientConfig: tc, ForceAttemptHTTP2: true,
		DialContext:         (&net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		TLSHandshakeTimeout: 10 * time.Second, MaxIdleConnsPerHost: 32, IdleConnTimeout: 90 * time.Second,
	}
	p := &Proxy{cfg: cfg, g: g, pol: pol, upstream: u, log: cfg.Logger,
		info: &request.RequestInfoFactory{APIPrefixes: sets.NewString("api", "apis"), GrouplessAPIPrefixes: sets.NewString("api")}}
	p.rp = &httputil.ReverseProxy{
		Rewrite:        p.rewrite,
		Transport:      tr,
		ModifyResponse: p.modifyResponse,
		ErrorHandler:   p.upstreamError,
		FlushInterval:  -1, // watches and logs -f stream as they come
		ErrorLog:       slog.NewLogLogger(cfg.Logger.Handler(), slog.LevelWarn),
	}
	return p, nil
}

// Start records what must be on record before the gateway serves
// (policy.loaded, sessions a crash left open). ServeHTTP calls it before
// the first request; call it before listening to fail there.
func (p *Proxy) Start(ctx context.Context) error { return p.g.Start(ctx) }

// Close releases the state directory.
func (p *Proxy) Close() error { return p.g.Close() }

// TLSConfig is the gateway's serving configuration (HTTP/2 and
// HTTP/1.1).
func (p *Proxy) TLSConfig() *tls.Config {
	return &tls.Config{Certificates: []tls.Certificate{p.cfg.Serving.Cert}, MinVersion: tls.VersionTLS12, NextProtos: []string{"h2", "http/1.1"}}
}

// Serve records the policy and the watches a crash left open, then serves
// TLS on ln until ctx ends. Watches still open then are cut after a few
// seconds, each recorded as ended.
func (p *Proxy) Serve(ctx context.Context, ln net.Listener) error {
	defer p.g.Close()
	if err := p.Start(ctx); err != nil {
		ln.Close()
		return err
	}
	srv := &http.Server{Handler: p, TLSConfig: p.TLSConfig(), ReadHeaderTimeout: 30 * time.Second,
		ErrorLog: slog.NewLogLogger(p.log.Handler(), slog.LevelDebug), BaseContext: func(net.Listener) context.Context { return ctx }}
	done := make(chan struct{})
	go func() {
		defer close(done)
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		if srv.Shutdown(sctx) != nil {
			srv.Close()
		}
	}()
	err := srv.Serve(tls.NewListener(ln, srv.TLSConfig))
	<-done
	if errors.Is(err, http.ErrServerClosed) {
		return nil
	}
	return err
}

// upstreamToken is the gateway's bearer token, read again when the file
// changes (a projected service-account token is rotated in place).
func (p *Proxy) upstreamToken() (string, error) {
	if p.cfg.TokenFile == "" {
		return "", nil
	}
	fi, err := os.Stat(p.cfg.TokenFile)
	if err != nil {
		return "", err
	}
	p.tmu.Lock()
	defer p.tmu.Unlock()
	if p.token == "" || !fi.ModTime().Equal(p.tokenMod) {
		b, err := os.ReadFile(p.cfg.TokenFile)
		if err != nil {
			return "", err
		}
		tok := strings.TrimSpace(string(b))
		if tok == "" {
			return "", errors.New("the gateway's token file is empty")
		}
		p.token, p.tokenMod = tok, fi.ModTime()
	}
	return p.token, nil
}

// exchange is one request and its events.
type exchange struct {
	gs      *gateway.Session
	cmdID   string
	watch   bool
	status  int
	secrets bool // a request to secrets: its bodies are recorded by digest only
	user    string
	groups  []string
}

type ctxKey struct{}

func (p *Proxy) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	if err := p.Start(ctx); err != nil {
		p.log.Error("not serving", "err", err)
		unavailable(w, "the gateway is not serving: what it enforces is not on record; it fails closed")
		return
	}
	gs := p.g.Session(events.Target{Kind: "kubernetes", Name: p.cfg.Cluster, Host: p.upstream.Host})
	x := &exchange{gs: gs}
	info, err := p.info.NewRequestInfo(r)
	if err != nil {
		blocked := map[string]any{"protocol": "kubernetes", "method": gateway.Clip(r.Method, 32),
			"reason": "the request cannot be parsed: " + err.Error(), "client_addr": r.RemoteAddr}
		recordTarget(blocked, r.URL)
		gs.RecordOrLog(ctx, events.CommandBlocked, blocked)
		writeStatus(w, http.StatusBadRequest, metav1.StatusReasonBadRequest, "the request cannot be parsed: "+err.Error())
		return
	}
	q := Request{IsResource: info.IsResourceRequest, Verb: info.Verb, APIGroup: info.APIGroup, Resource: info.Resource,
		Subresource: info.Subresource, Namespace: info.Namespace, Name: info.Name, Path: info.Path}
	if q.IsResource && q.APIGroup == "" && q.Resource == "pods" && (q.Subresource == "exec" || q.Subresource == "attach" || q.Subresource == "portforward") {
		// WebSocket streams are GETs, SPDY ones POSTs; the API server
		// authorizes both as create (what RBAC rules name), and so are
		// they judged and recorded.
		q.Verb = "create"
	}
	command := describe(r, info, q)

	tok, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	var actor events.Actor
	if !ok {
		err = errors.New("send an OIDC token as the bearer token (a kubeconfig from auditledger kubeconfig does)")
	} else {
		actor, err = p.cfg.Auth.Authenticate(ctx, "", tok)
	}
	if err != nil {
		failed := map[string]any{"client_addr": r.RemoteAddr, "method": gateway.Clip(r.Method, 32), "reason": err.Error()}
		recordTarget(failed, r.URL)
		gs.RecordOrLog(ctx, events.AuthnFailed, failed)
		writeStatus(w, http.StatusUnauthorized, metav1.StatusReasonUnauthorized, "authentication failed: "+err.Error())
		return
	}
	gs.Authenticated(gateway.Identity{Actor: actor, Method: gateway.KubernetesExecToken})
	x.user, x.groups = p.impersonation(actor)
	command["kube_user"], command["kube_groups"] = x.user, x.groups
	x.secrets = q.IsResource && q.APIGroup == "" && q.Resource == "secrets"

	block := func(code int, reason metav1.StatusReason, why string, rule *Rule) {
		command["reason"] = why
		if rule != nil {
			command["rule"] = rule.ID
		}
		if _, err := gs.Record(ctx, events.CommandBlocked, command); err != nil {
			unavailable(w, "request refused, and its record was not stored: "+err.Error())
			return
		}
		writeStatus(w, code, reason, why)
	}
	// A client that names whom to impersonate asks for the gateway's own
	// rights (it may impersonate anyone): stripping the headers would run
	// the request as the person, but silently; it is refused instead.
	if h := impersonationHeaders(r.Header); len(h) > 0 {
		command["impersonate_headers"] = h
		block(http.StatusForbidden, metav1.StatusReasonForbidden, "the gateway refuses client impersonation ("+strings.Join(h, ", ")+"): requests run as the authenticated user; remove --as, --as-group and --as-uid", nil)
		return
	}
	if strings.HasPrefix(x.user, "system:") {
		block(http.StatusForbidden, metav1.StatusReasonForbidden, "the identity maps to a system: user name, which the gateway never impersonates", nil)
		return
	}
	relayed := relayedStream(q)
	forward := q.IsResource && q.APIGroup == "" && q.Resource == "pods" && q.Subresource == "portforward"
	// A cluster an access rule names: only inside a live grant for the
	// identity. What is in flight when the grant ends or is revoked is
	// cancelled: a watch's or an exec's stream is closed and its session
	// ended with the reason; a plain request's connection is closed and
	// its session ended so too.
	if gs.AccessRequired() {
		var cancel context.CancelFunc
		ctx, cancel = context.WithCancel(ctx)
		defer cancel()
		r = r.WithContext(ctx)
		release, err := gs.Admit(ctx, func(string) { cancel() })
		if err != nil {
			if errors.Is(err, gateway.ErrAccessDenied) {
				forbidden(w, err.Error())
			} else {
				unavailable(w, "request refused, and its record was not stored: "+err.Error())
			}
			return
		}
		defer func() {
			release()
			if gs.CutReason() != "" && !x.watch && relayed == "" && !forward {
				gs.End(ctx, map[string]any{"kind": "request", "client_addr": r.RemoteAddr})
			}
		}()
	}
	if relayed != "" {
		describeExec(r, command, relayed)
	}
	if relayed == "" && !forward && isUpgrade(r) {
		block(http.StatusNotImplemented, metav1.StatusReasonMethodNotAllowed, "the gateway does not relay "+orDefault(q.Subresource, "upgraded")+" streams", nil)
		return
	}

	body, err := io.ReadAll(io.LimitReader(r.Body, p.cfg.MaxRequestBody+1))
	if err != nil {
		writeStatus(w, http.StatusBadRequest, metav1.StatusReasonBadRequest, "reading the request body: "+err.Error())
		return
	}
	if int64(len(body)) > p.cfg.MaxRequestBody {
		block(http.StatusRequestEntityTooLarge, metav1.StatusReasonRequestEntityTooLarge, fmt.Sprintf("request body larger than %d bytes", p.cfg.MaxRequestBody), nil)
		return
	}
	keyed, kerr := gs.Keyed(ctx)
	if kerr != nil && !p.cfg.FailOpen {
		p.log.Error("request refused: the tenant's search key is unavailable", "session_id", gs.ID(), "err", kerr)
		unavailable(w, "request not forwarded: the audit ledger's key store did not answer; the gateway fails closed")
		return
	}
	bodyHMAC := ""
	if len(body) > 0 {
		if keyed != nil {
			bodyHMAC = keyed(gateway.BodyLabel, body)
			command["body_hmac"] = bodyHMAC
		}
		command["body_bytes"] = len(body)
		recordBody(command, r.Header.Get("Content-Type"), body, x.secrets, keyed)
	}

	v := p.pol.Judge(actor.Subject, actor.Groups, q)
	if v.Deny {
		why := v.Reason
		if v.Rule != nil {
			why = fmt.Sprintf("blocked by policy rule %s: %s", v.Rule.ID, v.Reason)
		}
		block(http.StatusForbidden, metav1.StatusReasonForbidden, why, v.Rule)
		return
	}
	if v.Hold {
		statement := command["statement"].(string) + "\n" + approvals.HTTPStatement(r.Method, recordedTarget(r.URL), r.Header, bodyHMAC)
		ok, why, err := gs.Hold(ctx, gateway.Hold{Rule: v.Rule.ID, Reason: v.Reason, Timeout: v.Rule.Timeout, Statement: statement})
		if err != nil {
			unavailable(w, "request not forwarded: "+err.Error()+"; the gateway fails closed")
			return
		}
		if !ok {
			forbidden(w, why)
			return
		}
		command["rule"] = v.Rule.ID
	}

	if relayed != "" {
		p.serveExec(w, r, x, command, q, relayed)
		return
	}
	if forward {
		p.servePortForward(w, r, x, command, q)
		return
	}
	x.watch = q.Verb == "watch"
	if x.watch {
		// A watch can last hours: it is a session of its own, started
		// and ended on record, and ended as lost if the gateway dies.
		if err := gs.Start(ctx, map[string]any{"protocol": "kubernetes", "kind": "watch", "statement": command["statement"], "client_addr": r.RemoteAddr}); err != nil {
			unavailable(w, "request not forwarded: the audit ledger did not store its record ("+err.Error()+"); the gateway fails closed")
			return
		}
	}
	id, err := gs.Record(ctx, events.CommandExecuted, command)
	if err != nil {
		if x.watch {
			gs.End(ctx, map[string]any{"reason": "not recorded"})
		}
		unavailable(w, "request not forwarded: the audit ledger did not store its record ("+err.Error()+"); the gateway fails closed")
		return
	}
	x.cmdID = id
	r.Body = io.NopCloser(bytes.NewReader(body))
	r.ContentLength = int64(len(body))
	p.rp.ServeHTTP(w, r.WithContext(context.WithValue(ctx, ctxKey{}, x)))
}

func orDefault(s, d string) string {
	if s == "" {
		return d
	}
	return s
}

// impersonation is who the API server is told the request is from.
func (p *Proxy) impersonation(a events.Actor) (user string, groups []string) {
	user = p.cfg.UserPrefix + a.Subject
	groups = []string{}
	for _, g := range a.Groups {
		if m := p.cfg.GroupPrefix + g; !strings.HasPrefix(m, "system:") {
			groups = append(groups, m)
		}
	}
	return user, groups
}

// impersonationHeaders are the Impersonate-* headers a client sent.
func impersonationHeaders(h http.Header) []string {
	var out []string
	for k := range h {
		if strings.HasPrefix(strings.ToLower(k), "impersonate-") {
			out = append(out, gateway.Clip(k, 128))
		}
	}
	return out
}

func isUpgrade(r *http.Request) bool {
	return r.Header.Get("Upgrade") != "" || strings.Contains(strings.ToLower(r.Header.Get("Connection")), "upgrade")
}

func (p *Proxy) rewrite(pr *httputil.ProxyRequest) {
	x := pr.In.Context().Value(ctxKey{}).(*exchange)
	pr.SetURL(p.upstream)
	pr.Out.Host = p.upstream.Host
	for k := range pr.Out.Header {
		// Impersonate-* was refused before and is never forwarded;
		// X-Remote-* would name the user to an API server that trusts the
		// gateway's client certificate as a front proxy.
		if l := strings.ToLower(k); strings.HasPrefix(l, "impersonate-") || strings.HasPrefix(l, "x-remote-") {
			delete(pr.Out.Header, k)
		}
	}
	pr.Out.Header.Del("Authorization")
	pr.Out.Header.Del("Cookie")
	if tok, err := p.upstreamToken(); err == nil && tok != "" {
		pr.Out.Header.Set("Authorization", "Bearer "+tok)
	} else if err != nil {
		p.log.Error("the gateway's token file cannot be read", "err", err)
	}
	pr.Out.Header.Set("Impersonate-User", x.user)
	pr.Out.Header.Set("Impersonate-Uid", x.gs.Identity().Subject)
	for _, g := range x.groups {
		pr.Out.Header.Add("Impersonate-Group", g)
	}
	pr.Out.Header.Del("X-Forwarded-For")
}

// modifyResponse arranges for the digest of what the client receives.
func (p *Proxy) modifyResponse(resp *http.Response) error {
	x := resp.Request.Context().Value(ctxKey{}).(*exchange)
	x.status = resp.StatusCode
	ctx := resp.Request.Context()
	sum, err := x.gs.KeyedSum(ctx, gateway.ResponseLabel)
	if err != nil {
		p.log.Warn("response recorded without its digest: the tenant's search key is unavailable", "session_id", x.gs.ID(), "err", err)
	}
	ct := resp.Header.Get("Content-Type")
	resp.Body = gateway.DigestBody(resp.Body, sum, func(n int64, digest string, rerr error) {
		if errors.Is(rerr, gateway.ErrBodyCut) {
			rerr = errors.New("the client closed the response before its end")
		}
		x.finish(context.WithoutCancel(ctx), n, digest, ct, rerr)
	})
	return nil
}

// upstreamError answers a request the API server did not: a Status that
// names why, and the request's response.digest says so too.
func (p *Proxy) upstreamError(w http.ResponseWriter, r *http.Request, err error) {
	x := r.Context().Value(ctxKey{}).(*exchange)
	var cv *tls.CertificateVerificationError
	var ua x509.UnknownAuthorityError
	var he x509.HostnameError
	code, msg := http.StatusServiceUnavailable, "the API server cannot be reached: "+err.Error()
	switch {
	case errors.As(err, &cv) || errors.As(err, &ua) || errors.As(err, &he):
		code, msg = http.StatusBadGateway, "the API server's certificate does not verify against the gateway's configured CA; the gateway refuses to talk to it: "+err.Error()
	case errors.Is(err, context.Canceled) && r.Context().Err() != nil:
		msg = "the client went away"
	}
	x.status = code
	x.finish(context.WithoutCancel(r.Context()), 0, "", "", errors.New(msg))
	p.log.Warn("API server request failed", "session_id", x.gs.ID(), "err", err)
	writeStatus(w, code, metav1.StatusReasonServiceUnavailable, msg)
}

// finish records response.digest (and, for a watch, its end).
func (x *exchange) finish(ctx context.Context, n int64, sum, contentType string, readErr error) {
	payload := map[string]any{"command_id": x.cmdID, "status": x.status, "bytes": n, "content_type": contentType}
	if sum != "" {
		payload["hmac"] = sum
	}
	if readErr != nil {
		payload["incomplete"] = readErr.Error()
	}
	if !x.watch {
		x.gs.RecordAsync(ctx, events.ResponseDigest, payload)
		return
	}
	x.gs.RecordOrLog(ctx, events.ResponseDigest, payload)
	reason := "the API server ended the watch"
	switch {
	case x.gs.CutReason() != "":
		reason = "the gateway ended the watch: its access grant is no longer live"
	case readErr != nil:
		reason = readErr.Error()
	}
	x.gs.End(ctx, map[string]any{"reason": reason, "bytes": n})
}
