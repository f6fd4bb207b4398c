// Package httpproxy is the HTTP reverse proxy: it authenticates every
// request with an OIDC bearer token, records it (method, path, query, body
// digest) in the ledger before forwarding it — fail closed —, forwards it
// with the proxy's own upstream credentials, masks JSON response fields,
// refuses denied requests, holds those that need an approval, and records
// a digest of every response as the client received it. It fronts an
// internal HTTP service or the Kubernetes API server.
package httpproxy

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"net/http"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/auditledger/auditledger/events"
	"github.com/auditledger/auditledger/events/detect"
	"github.com/auditledger/auditledger/ledger/piikeys"
	"github.com/auditledger/auditledger/services/access"
	"github.com/auditledger/auditledger/services/approvals"
	"github.com/auditledger/auditledger/services/gateway"
	"github.com/auditledger/auditledger/services/identity"
	"github.com/auditledger/auditledger/services/internal/policyfile"
	"github.com/auditledger/auditledger/services/mask"
	"github.com/auditledger/auditledger/services/telemetry"
)

// Config configures a Proxy.
type Config struct {
	// Metrics, if set, counts what the proxy records and how long each
	// record takes to be stored.
	Metrics *telemetry.Proxy
	// Upstream is the base URL requests are forwarded to. Required.
	Upstream string
	// UpstreamHeaders are set on every forwarded request: the credentials
	// the proxy uses (e.g. Authorization: Bearer <service token>). The
	// client's own Authorization header is never forwarded.
	UpstreamHeaders http.Header
	Auth            identity.Authenticator // required: verifies bearer tokens
	Emitter         gateway.Recorder       // required: an *emitter.Emitter
	Tenant          string                 // required, as in events
	Instance        string                 // this proxy's name in events; empty means "httpproxy"
	Target          string                 // the target's name in events
	Policy          *Policy                // nil: record only; see LoadPolicy
	// Access, if set, forwards a request to a target its rules name only
	// inside a live access grant for the caller; an exchange in flight
	// when the grant ends is cut and its connection closed.
	Access *access.Watcher
	// AccessTick: gateway.Config.AccessTick (zero: 100 ms).
	AccessTick time.Duration
	// Approvals is required when the policy has approval rules.
	Approvals *approvals.Broker
	// Keys holds the personal-data keys: each value the recording rule
	// replaces is recorded with its keyed search digest, and the actor's
	// e-mail sealed under the person's key. Nil: values are replaced
	// without digests and e-mails left out.
	Keys *piikeys.Store
	// FailOpen forwards requests whose record could only be spooled on
	// this host; the default refuses them (503).
	FailOpen bool
	// MaxRequestBody bounds request bodies, which are read whole to be
	// digested (and, for approvals, bound to the decision). Zero means
	// 10 MiB.
	MaxRequestBody int64
	// MaxMaskedBody bounds JSON responses read whole to be masked; a
	// larger one is refused (502), never forwarded unmasked. Zero means
	// 32 MiB.
	MaxMaskedBody int64
	// Transport reaches the upstream; nil means http.DefaultTransport.
	Transport http.RoundTripper
	Logger    *slog.Logger // nil means slog.Default()
}

// Proxy is an http.Handler.
type Proxy struct {
	cfg      Config
	upstream *url.URL
	rp       *httputil.ReverseProxy
	gw       *gateway.Gateway
	conns    sync.Map // net.Conn → *keptConn (ConnContext, conns.go)
}

// New checks cfg.
func New(cfg Config) (*Proxy, error) {
	if cfg.Auth == nil {
		return nil, errors.New("httpproxy: Auth is required")
	}
	u, err := url.Parse(cfg.Upstream)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("httpproxy: upstream %q is not an http(s) URL", cfg.Upstream)
	}
	if u.User != nil {
		return nil, errors.New("httpproxy: put upstream credentials in UpstreamHeaders, not in the URL")
	}
	if cfg.Policy != nil && len(cfg.Policy.Approve) > 0 && cfg.Approvals == nil {
		return nil, errors.New("httpproxy: the policy has approval rules but no approvals broker is configured")
	}
	if cfg.MaxRequestBody == 0 {
		cfg.MaxRequestBody = 10 << 20
	}
	if cfg.MaxMaskedBody == 0 {
		cfg.MaxMaskedBody = 32 << 20
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	var info *policyfile.Loaded
	if cfg.Policy != nil {
		info = cfg.Policy.Info() // ParsePolicy and LoadPolicy fill in its Source
	}
	gw, err := gateway.New(gateway.Config{Name: "httpproxy", Kind: "http-proxy", Instance: cfg.Instance, Tenant: cfg.Tenant,
		Emitter: cfg.Emitter, FailOpen: cfg.FailOpen, Approvals: cfg.Approvals, Keys: cfg.Keys, Access: cfg.Access, AccessTick: cfg.AccessTick, Metrics: cfg.Metrics, Logger: cfg.Logger, Policy: info})
	if err != nil {
		return nil, err
	}
	p := &Proxy{cfg: cfg, upstream: u, gw: gw}
	p.rp = &httputil.ReverseProxy{
		Rewrite:        p.rewrite,
		ModifyResponse: p.modifyResponse,
		ErrorHandler:   p.upstreamError,
		Transport:      cfg.Transport,
		FlushInterval:  -1, // stream as it comes: watches, server-sent events
	}
	return p, nil
}

// exchange is one request and its events.
type exchange struct {
	p      *Proxy
	gs     *gateway.Session
	pol    *Policy // the policy as it applies to the requester (Policy.For)
	cmdID  string
	body   []byte
	status int
	// noKey: the tenant's search key could not be read for the request
	// (the proxy fails open), so the response is not digested either,
	// rather than waiting on the key store a second time.
	noKey bool
}

type ctxKey struct{}

// Start records what must be on record before the proxy serves (the
// gateway core's Start: policy.loaded). ServeHTTP calls it before the
// first request it serves; call it before listening to fail there.
func (p *Proxy) Start(ctx context.Context) error { return p.gw.Start(ctx) }

func (p *Proxy) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	if err := p.Start(ctx); err != nil {
		p.cfg.Logger.Error("not serving", "err", err)
		writeError(w, http.StatusServiceUnavailable, "the proxy is not serving: what it enforces is not on record; it fails closed")
		return
	}
	x := &exchange{p: p, pol: p.cfg.Policy, gs: p.gw.Session(events.Target{Kind: "http", Name: p.cfg.Target, Host: p.upstream.Host})}

	tok, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	var err error
	var actor events.Actor
	if !ok {
		err = errors.New("send an OIDC token as Authorization: Bearer")
	} else {
		actor, err = p.cfg.Auth.Authenticate(ctx, "", tok)
	}
	if err != nil {
		x.gs.RecordOrLog(ctx, events.AuthnFailed, map[string]any{"client_addr": r.RemoteAddr, "method": gateway.Clip(r.Method, 32),
			"path": gateway.Clip(recordedPath(r.URL), 2048), "reason": err.Error()})
		w.Header().Set("WWW-Authenticate", `Bearer realm="auditledger"`)
		writeError(w, http.StatusUnauthorized, "authentication failed: "+err.Error())
		return
	}
	x.gs.Authenticated(gateway.Identity{Actor: actor})
	x.pol = p.cfg.Policy.For(actor.Subject, actor.Groups)
	// A target an access rule names: only inside a live grant. An
	// exchange in flight when it ends is cancelled and its connection
	// closed; a connection kept alive after it is closed when the grant
	// ends (conns.go), and its next request is admitted anew.
	if x.gs.AccessRequired() {
		var cancel context.CancelFunc
		ctx, cancel = context.WithCancel(ctx)
		defer cancel()
		r = r.WithContext(ctx)
		kc := connOf(r)
		if kc != nil {
			kc.endIdle() // the last exchange's grant: this one is admitted on its own
		} else {
			w.Header().Set("Connection", "close") // no hooks to close it at the grant's end
		}
		release, err := x.gs.Admit(ctx, func(string) {
			cancel()
			if kc != nil {
				kc.Close() // in flight or waiting for its next request
			}
		})
		if err != nil {
			w.Header().Set("Connection", "close")
			if errors.Is(err, gateway.ErrAccessDenied) {
				writeError(w, http.StatusForbidden, err.Error())
			} else {
				writeError(w, http.StatusServiceUnavailable, "request not forwarded: the audit ledger did not store its record; the proxy fails closed")
			}
			return
		}
		defer func() {
			if why := x.gs.CutReason(); why != "" {
				release()
				x.gs.End(ctx, map[string]any{"client_addr": r.RemoteAddr})
				panic(http.ErrAbortHandler) // closes the connection
			}
			if kc != nil {
				kc.watchIdle(release) // until the next request or the connection's end
			} else {
				release()
			}
		}()
	}

	body, err := io.ReadAll(io.LimitReader(r.Body, p.cfg.MaxRequestBody+1))
	if err != nil {
		writeError(w, http.StatusBadRequest, "reading the request body: "+err.Error())
		return
	}
	if int64(len(body)) > p.cfg.MaxRequestBody {
		writeError(w, http.StatusRequestEntityTooLarge, fmt.Sprintf("request body larger than %d bytes", p.cfg.MaxRequestBody))
		return
	}
	x.body = body
	// The body is recorded by its keyed digest only, over the bytes as
	// received (docs/FORMAT.md §1.5): a compressed or multipart body
	// cannot be scrubbed, and an unkeyed digest of it could be reversed by
	// guessing. Without the key no digest is recorded; a key that cannot
	// be read refuses the request unless the proxy fails open.
	keyed, kerr := x.gs.Keyed(ctx)
	x.noKey = kerr != nil
	if kerr != nil && !p.cfg.FailOpen {
		p.cfg.Logger.Error("request refused: the tenant's search key is unavailable", "session_id", x.gs.ID(), "err", kerr)
		writeError(w, http.StatusServiceUnavailable, "request not forwarded: the audit ledger's key store did not answer; the proxy fails closed")
		return
	}
	bodyHMAC := ""
	if keyed != nil {
		bodyHMAC = keyed(gateway.BodyLabel, body)
	}
	// Decide on the request the upstream will act on: its canonical
	// form, which is also what is recorded and forwarded.
	canon, cerr := canonicalPath(rawPath(r))
	if cerr == nil {
		cerr = checkRequest(r, body)
	}
	if cerr != nil {
		rec := redactRequest(r.URL, r.Header, body, p.cfg.MaxRequestBody)
		path := r.URL.EscapedPath()
		if rec.path != r.URL.Path {
			path = rec.path
		}
		blocked := map[string]any{"protocol": "http", "method": gateway.Clip(r.Method, 32),
			"path": gateway.Clip(path, 2048), "query": gateway.Clip(rec.query, 2048), "reason": cerr.Error(),
			"client_addr": r.RemoteAddr}
		rec.describeBody(blocked, len(body), bodyHMAC)
		gateway.AddRedactions(blocked, rec.redactions...)
		if _, err := x.gs.Record(ctx, events.CommandBlocked, blocked); err != nil {
			writeError(w, http.StatusServiceUnavailable, "request not forwarded: the audit ledger did not store its record; the proxy fails closed")
			return
		}
		writeError(w, http.StatusBadRequest, "request refused: "+cerr.Error())
		return
	}
	r.URL.RawPath = canon
	r.URL.Path, _ = url.PathUnescape(canon)
	stripped := stripHeaders(r.Header)
	// What is recorded, and what an approval is bound to, is the request
	// with detector matches replaced (redactRequest); on a grant the proxy
	// forwards the very request it held.
	rec := redactRequest(r.URL, r.Header, body, p.cfg.MaxRequestBody)
	statement := approvals.HTTPStatement(r.Method, rec.target, rec.header, bodyHMAC)
	command := map[string]any{
		"protocol": "http", "method": r.Method, "path": rec.path, "query": rec.query,
		"statement": r.Method + " " + rec.target, "statement_sha256": approvals.Digest(statement),
		"content_type": rec.header.Get("Content-Type"), "client_addr": r.RemoteAddr,
	}
	rec.describeBody(command, len(body), bodyHMAC)
	gateway.AddRedactions(command, rec.redactions...)
	if ce := rec.header.Get("Content-Encoding"); ce != "" {
		command["content_encoding"] = ce
	}
	if len(stripped) > 0 {
		command["stripped_headers"] = stripped
	}

	if rule := x.pol.Denied(r.Method, r.URL.Path); rule != nil {
		command["rule"], command["reason"] = rule.ID, rule.Reason
		if _, err := x.gs.Record(ctx, events.CommandBlocked, command); err != nil {
			writeError(w, http.StatusServiceUnavailable, "request not forwarded: the audit ledger did not store its record; the proxy fails closed")
			return
		}
		writeError(w, http.StatusForbidden, fmt.Sprintf("blocked by policy rule %s: %s", rule.ID, rule.Reason))
		return
	}
	if rule := x.pol.NeedsApproval(r.Method, r.URL.Path); rule != nil {
		ok, why, err := x.gs.Hold(ctx, gateway.Hold{Rule: rule.ID, Reason: rule.Reason, Timeout: rule.Timeout, Statement: statement})
		if err != nil {
			writeError(w, http.StatusServiceUnavailable, "request not forwarded: "+err.Error()+"; the proxy fails closed")
			return
		}
		if !ok {
			writeError(w, http.StatusForbidden, why)
			return
		}
	}
	id, err := x.gs.Record(ctx, events.CommandExecuted, command)
	if err != nil {
		writeError(w, http.StatusServiceUnavailable, "request not forwarded: the audit ledger did not store its record ("+err.Error()+"); the proxy fails closed")
		return
	}
	x.cmdID = id
	p.rp.ServeHTTP(w, r.WithContext(context.WithValue(ctx, ctxKey{}, x)))
}

func (p *Proxy) rewrite(pr *httputil.ProxyRequest) {
	x := pr.In.Context().Value(ctxKey{}).(*exchange)
	pr.SetURL(p.upstream)
	pr.Out.Host = p.upstream.Host
	pr.Out.Header.Del("Authorization")
	pr.Out.Header.Del("Cookie")
	for k, v := range p.cfg.UpstreamHeaders {
		pr.Out.Header[k] = v
	}
	if x.masking() {
		// Masking reads the body as JSON: ask for it uncompressed.
		pr.Out.Header.Del("Accept-Encoding")
	}
	pr.Out.Body = io.NopCloser(bytes.NewReader(x.body))
	pr.Out.ContentLength = int64(len(x.body))
	pr.Out.GetBody = func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(x.body)), nil }
}

func (x *exchange) masking() bool { return x.pol != nil && len(x.pol.Mask) > 0 }

var errUnmaskable = errors.New("unmaskable response")

// modifyResponse masks a JSON body and arranges for the digest of what
// the client receives.
func (p *Proxy) modifyResponse(resp *http.Response) error {
	x := resp.Request.Context().Value(ctxKey{}).(*exchange)
	x.status = resp.StatusCode
	var counts map[maskKey]int
	// The body is judged by the type the server gave it, before a
	// parameter of that type is masked.
	ct := resp.Header.Get("Content-Type")
	if x.masking() {
		x.pol.maskHeaders(resp.Header, &counts)
	}
	if x.masking() && !isJSON(ct) && !bodyless(resp) {
		// Fail closed: what the masker cannot read could carry anything.
		if !isPlainText(ct) {
			// Quoted as masked: the type's parameters are the server's text.
			return fmt.Errorf("%w: the policy masks responses, and content type %q cannot be inspected", errUnmaskable, resp.Header.Get("Content-Type"))
		}
		if enc := resp.Header.Get("Content-Encoding"); enc != "" && enc != "identity" {
			return fmt.Errorf("%w: text with Content-Encoding %s cannot be masked", errUnmaskable, enc)
		}
		b, err := io.ReadAll(io.LimitReader(resp.Body, p.cfg.MaxMaskedBody+1))
		resp.Body.Close()
		if err != nil {
			return err
		}
		if int64(len(b)) > p.cfg.MaxMaskedBody {
			return fmt.Errorf("%w: text body larger than %d bytes", errUnmaskable, p.cfg.MaxMaskedBody)
		}
		text, _ := detect.ScrubText(string(b), func(v []byte) ([]byte, bool) {
			if r := x.pol.detectRule(v); r != nil {
				counts = addCount(counts, maskKey{r, "(text)"})
				return mask.Apply(r.Method, x.pol.hashKey, v), true
			}
			return nil, false
		})
		resp.Body = io.NopCloser(strings.NewReader(text))
		resp.ContentLength = int64(len(text))
		resp.Header.Set("Content-Length", fmt.Sprint(len(text)))
	}
	if x.masking() && isJSON(ct) {
		if enc := resp.Header.Get("Content-Encoding"); enc != "" && enc != "identity" {
			return fmt.Errorf("%w: JSON with Content-Encoding %s cannot be masked", errUnmaskable, enc)
		}
		b, err := io.ReadAll(io.LimitReader(resp.Body, p.cfg.MaxMaskedBody+1))
		resp.Body.Close()
		if err != nil {
			return err
		}
		if int64(len(b)) > p.cfg.MaxMaskedBody {
			return fmt.Errorf("%w: JSON body larger than %d bytes", errUnmaskable, p.cfg.MaxMaskedBody)
		}
		if len(bytes.TrimSpace(b)) > 0 {
			if b, counts, err = x.pol.maskJSON(b); err != nil {
				return fmt.Errorf("%w: %v", errUnmaskable, err)
			}
		}
		resp.Body = io.NopCloser(bytes.NewReader(b))
		resp.ContentLength = int64(len(b))
		resp.Header.Set("Content-Length", fmt.Sprint(len(b)))
	}
	// An endpoint that echoes requests would hand the proxy's own upstream
	// credentials to the client: they never leave the proxy.
	if secrets := secretsOf(p.cfg.UpstreamHeaders); len(secrets) > 0 {
		for name, vs := range resp.Header {
			for i, v := range vs {
				for _, s := range secrets {
					v = strings.ReplaceAll(v, string(s), string(redacted))
				}
				resp.Header[name][i] = v
			}
		}
		resp.Body = newRedactor(resp.Body, secrets)
		resp.ContentLength = -1
		resp.Header.Del("Content-Length")
	}
	resp.Body = gateway.DigestBody(resp.Body, x.keyedSum(resp.Request.Context(), p.cfg.Logger), func(n int64, sum string, readErr error) {
		if x.masking() {
			// Trailers arrive with the end of the body, before the
			// reverse proxy copies them to the client.
			x.pol.maskHeaders(resp.Trailer, &counts)
		}
		x.finish(context.WithoutCancel(resp.Request.Context()), n, sum, counts, resp.Header.Get("Content-Type"), readErr)
	})
	return nil
}

// framingHeaders carry how a response is framed and delivered, not what
// it says: they are not masked (a masked Content-Length would break the
// response).
var framingHeaders = map[string]bool{"Connection": true, "Keep-Alive": true, "Proxy-Connection": true, "Te": true, "Trailer": true, "Transfer-Encoding": true, "Upgrade": true, "Content-Length": true}

// maskHeaders masks what the detectors find in header values (Location,
// Content-Disposition, Link, Set-Cookie, X-…, Content-Type parameters),
// as written and percent-decoded; what is found is counted under the
// field "(header Name)".
func (p *Policy) maskHeaders(h http.Header, counts *map[maskKey]int) {
	for name, vs := range h {
		if framingHeaders[http.CanonicalHeaderKey(name)] {
			continue
		}
		for i, v := range vs {
			if out, r := p.scrubHeader(v); r != nil {
				vs[i] = out
				*counts = addCount(*counts, maskKey{r, "(header " + http.CanonicalHeaderKey(name) + ")"})
			}
		}
	}
}

// scrubHeader is v with what the detectors find masked, judged as
// written and then percent-decoded (a Location's query, a
// Content-Disposition filename*); when only the decoded form holds a
// value, the decoded form, masked, replaces v.
func (p *Policy) scrubHeader(v string) (string, *MaskRule) {
	if b, r, ok := p.scrub([]byte(v)); ok {
		return string(b), r
	}
	d, ok := unescapeAll(v, true)
	if !ok {
		// Encoded past what is decoded: judged by the first rule with
		// detectors, as it cannot be judged by them.
		for i := range p.Mask {
			if len(p.Mask[i].Detect) > 0 {
				return overEncoded, &p.Mask[i]
			}
		}
		return v, nil
	}
	if d != v {
		if b, r, ok := p.scrub([]byte(d)); ok {
			return string(b), r
		}
	}
	return v, nil
}

// isPlainText: text/plain, which the detectors can scan as free text.
func isPlainText(ct string) bool {
	mt, _, err := mime.ParseMediaType(ct)
	return err == nil && mt == "text/plain"
}

// bodyless reports a response that carries no body to mask.
func bodyless(resp *http.Response) bool {
	return resp.Request.Method == http.MethodHead || resp.StatusCode == http.StatusNoContent ||
		resp.StatusCode == http.StatusNotModified || resp.ContentLength == 0
}

func addCount(m map[maskKey]int, k maskKey) map[maskKey]int {
	if m == nil {
		m = map[maskKey]int{}
	}
	m[k]++
	return m
}

func isJSON(ct string) bool {
	mt, _, err := mime.ParseMediaType(ct)
	return err == nil && (mt == "application/json" || strings.HasSuffix(mt, "+json"))
}

// upstreamError answers when the upstream cannot be reached or a response
// cannot be masked, and records that as the response.
func (p *Proxy) upstreamError(w http.ResponseWriter, r *http.Request, err error) {
	x := r.Context().Value(ctxKey{}).(*exchange)
	code, msg := http.StatusBadGateway, "the proxy cannot reach the target"
	if errors.Is(err, errUnmaskable) {
		msg = "the response could not be masked, so it is withheld: " + strings.TrimPrefix(err.Error(), errUnmaskable.Error()+": ")
	}
	p.cfg.Logger.Warn("upstream exchange failed", "session_id", x.gs.ID(), "err", err)
	x.status = code
	body, _ := json.Marshal(map[string]string{"error": msg})
	sum := x.keyedSum(r.Context(), p.cfg.Logger)
	sum.Write(append(body, '\n'))
	x.finish(context.WithoutCancel(r.Context()), int64(len(body)+1), sum.Digest(), nil, "application/json", nil)
	writeError(w, code, msg)
}

func writeError(w http.ResponseWriter, code int, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	b, _ := json.Marshal(map[string]string{"error": msg})
	w.Write(append(b, '\n'))
}

// keyedSum starts the keyed digest of the response body under the
// session tenant's search key (docs/FORMAT.md §1.5): a body may hold
// personal data, and an unkeyed digest of a short one is a dictionary
// away from it. Nil without the key; a key that cannot be read is
// logged and the response is recorded without a digest.
func (x *exchange) keyedSum(ctx context.Context, log *slog.Logger) *gateway.KeyedSum {
	if x.noKey {
		log.Warn("response recorded without its digest: the tenant's search key was unavailable for the request", "session_id", x.gs.ID())
		return nil
	}
	sum, err := x.gs.KeyedSum(ctx, gateway.ResponseLabel)
	if err != nil {
		log.Warn("response recorded without its digest: the tenant's search key is unavailable", "session_id", x.gs.ID(), "err", err)
	}
	return sum
}

// finish records mask.applied and response.digest.
func (x *exchange) finish(ctx context.Context, n int64, sum string, counts map[maskKey]int, contentType string, readErr error) {
	for k, c := range counts {
		x.gs.RecordAsync(ctx, events.MaskApplied, map[string]any{
			"command_id": x.cmdID, "rule_id": k.rule.ID, "rule_version": k.rule.Version,
			"field": k.field, "info_type": k.rule.InfoType, "count": c, "method": k.rule.Method,
		})
	}
	payload := map[string]any{"command_id": x.cmdID, "status": x.status, "bytes": n, "content_type": contentType}
	if sum != "" {
		payload["hmac"] = sum
	}
	if readErr != nil {
		payload["incomplete"] = readErr.Error()
	}
	x.gs.RecordAsync(ctx, events.ResponseDigest, payload)
}
