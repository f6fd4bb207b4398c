package httpproxy

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
)

// Policy decisions are made on the request the upstream will act on: its
// canonical form. A path is canonicalised as RFC 3986 says an upstream
// resolves it (percent-decoding of unreserved characters, dot-segment
// removal) and with duplicate slashes collapsed, and that form is what is
// matched, recorded, bound into approvals and forwarded. Encodings whose
// meaning differs between servers are refused rather than guessed at.

// errAmbiguous marks a request whose meaning the proxy cannot pin down.
var errAmbiguous = errors.New("ambiguous request")

// rawPath is the path of the request target exactly as the client sent
// it. (Go reads a target that starts with // as an authority and a path;
// an upstream may read it as a path.)
func rawPath(r *http.Request) string {
	t := r.RequestURI
	if i := strings.IndexByte(t, '?'); i >= 0 {
		t = t[:i]
	}
	if strings.HasPrefix(t, "/") {
		return t
	}
	if u, err := url.Parse(t); err == nil && u.IsAbs() {
		return u.EscapedPath() // absolute form: the path part
	}
	return t // "*" or garbage: canonicalPath refuses it
}

// canonicalPath returns the canonical form of an escaped request path.
func canonicalPath(escaped string) (string, error) {
	if escaped == "" {
		return "/", nil
	}
	if !strings.HasPrefix(escaped, "/") {
		return "", fmt.Errorf("%w: the path does not start with /", errAmbiguous)
	}
	var b strings.Builder
	for i := 0; i < len(escaped); i++ {
		c := escaped[i]
		switch {
		case c == '\\':
			return "", fmt.Errorf("%w: a backslash in the path (some servers read it as /)", errAmbiguous)
		case c < 0x21 || c == 0x7f:
			return "", fmt.Errorf("%w: a control character or space in the path", errAmbiguous)
		case c == '%':
			if i+2 >= len(escaped) || !isHex(escaped[i+1]) || !isHex(escaped[i+2]) {
				return "", fmt.Errorf("%w: a malformed percent-encoding in the path", errAmbiguous)
			}
			v := unhex(escaped[i+1])<<4 | unhex(escaped[i+2])
			switch {
			case v == '/' || v == '\\':
				return "", fmt.Errorf("%w: an encoded slash or backslash (%%%s) in the path", errAmbiguous, escaped[i+1:i+3])
			case v == '%':
				return "", fmt.Errorf("%w: an encoded percent sign (%%25) in the path: double encoding", errAmbiguous)
			case v < 0x20 || v == 0x7f:
				return "", fmt.Errorf("%w: an encoded control character (%%%s) in the path", errAmbiguous, escaped[i+1:i+3])
			case isUnreserved(v):
				b.WriteByte(v)
			default:
				b.WriteByte('%')
				b.WriteString(strings.ToUpper(escaped[i+1 : i+3]))
			}
			i += 2
		default:
			b.WriteByte(c)
		}
	}
	// Dot segments (RFC 3986 §5.2.4) and empty segments (duplicate
	// slashes, which servers collapse or not).
	segs := strings.Split(b.String()[1:], "/")
	var out []string
	for _, seg := range segs {
		switch {
		case seg == "" || seg == ".":
		case seg == "..":
			if len(out) > 0 {
				out = out[:len(out)-1]
			}
		case strings.HasPrefix(seg, "..;") || strings.HasPrefix(seg, ".;"):
			return "", fmt.Errorf("%w: a dot segment with parameters (%q) in the path", errAmbiguous, seg)
		default:
			out = append(out, seg)
		}
	}
	last := segs[len(segs)-1]
	trailing := last == "" || last == "." || last == ".."
	p := "/" + strings.Join(out, "/")
	if trailing && len(out) > 0 {
		p += "/"
	}
	return p, nil
}

func isHex(c byte) bool {
	return c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F'
}

func unhex(c byte) byte {
	switch {
	case c >= '0' && c <= '9':
		return c - '0'
	case c >= 'a' && c <= 'f':
		return c - 'a' + 10
	}
	return c - 'A' + 10
}

func isUnreserved(c byte) bool {
	return c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' || c == '.' || c == '_' || c == '~'
}

// methodOverrides are headers some frameworks honour to change the method
// after the proxy decided on it.
var methodOverrides = []string{"X-HTTP-Method-Override", "X-HTTP-Method", "X-Method-Override"}

// impersonation are headers that make an upstream (Kubernetes, some API
// gateways) act as someone else. They are stripped, and recorded.
var impersonation = []string{"Impersonate-User", "Impersonate-Group", "Impersonate-Uid"}

// spoofable are client-set headers that claim things only a proxy in front
// may say. They are stripped.
var spoofable = []string{"Forwarded", "X-Forwarded-For", "X-Forwarded-Host", "X-Forwarded-Proto", "X-Real-Ip"}

// checkRequest refuses what the proxy will not forward whatever the
// policy: methods that echo or tunnel, and method overrides.
func checkRequest(r *http.Request, body []byte) error {
	switch r.Method {
	case http.MethodTrace, http.MethodConnect:
		return fmt.Errorf("%w: method %s is not forwarded (it echoes the request, credentials included, or opens a tunnel)", errAmbiguous, r.Method)
	}
	for _, h := range methodOverrides {
		if r.Header.Get(h) != "" {
			return fmt.Errorf("%w: the %s header would change the method after the policy decided on %s", errAmbiguous, h, r.Method)
		}
	}
	if r.URL.Query().Has("_method") {
		return fmt.Errorf("%w: a _method parameter would change the method after the policy decided on %s", errAmbiguous, r.Method)
	}
	if ct := r.Header.Get("Content-Type"); strings.HasPrefix(ct, "application/x-www-form-urlencoded") {
		if form, err := url.ParseQuery(string(body)); err == nil && form.Has("_method") {
			return fmt.Errorf("%w: a _method form field would change the method after the policy decided on %s", errAmbiguous, r.Method)
		}
	}
	return nil
}

// stripHeaders removes impersonation and spoofable headers from what is
// forwarded and returns the names of those it removed.
func stripHeaders(h http.Header) []string {
	var removed []string
	for name := range h {
		c := http.CanonicalHeaderKey(name)
		drop := strings.HasPrefix(c, "Impersonate-Extra-")
		for _, s := range append(impersonation, spoofable...) {
			drop = drop || c == s
		}
		if drop {
			removed = append(removed, c)
			h.Del(name)
		}
	}
	return removed
}

// redactor streams a response body with every occurrence of a secret (the
// proxy's own upstream credentials, which an echoing endpoint would hand
// to the client) replaced. It holds back the last len(longest secret)-1
// bytes of each read, so a secret split across reads is still found.
type redactor struct {
	rc      io.ReadCloser
	secrets [][]byte
	keep    int
	carry   []byte
	out     []byte
	eof     bool
	// found counts the secrets replaced.
	found int
}

var redacted = []byte("[REDACTED]")

func newRedactor(rc io.ReadCloser, secrets [][]byte) *redactor {
	r := &redactor{rc: rc, secrets: secrets}
	for _, s := range secrets {
		r.keep = max(r.keep, len(s)-1)
	}
	return r
}

func (r *redactor) Read(p []byte) (int, error) {
	for len(r.out) == 0 {
		if r.eof {
			return 0, io.EOF
		}
		buf := make([]byte, 32<<10)
		n, err := r.rc.Read(buf)
		r.carry = append(r.carry, buf[:n]...)
		for _, s := range r.secrets {
			if c := bytes.Count(r.carry, s); c > 0 {
				r.found += c
				r.carry = bytes.ReplaceAll(r.carry, s, redacted)
			}
		}
		if err == io.EOF {
			r.eof = true
			r.out, r.carry = r.carry, nil
		} else if err != nil {
			return 0, err
		} else if len(r.carry) > r.keep {
			cut := len(r.carry) - r.keep
			r.out = append(r.out, r.carry[:cut]...)
			r.carry = append([]byte(nil), r.carry[cut:]...)
		}
	}
	n := copy(p, r.out)
	r.out = r.out[n:]
	return n, nil
}

func (r *redactor) Close() error { return r.rc.Close() }

// secretsOf are the values a response must never carry back: each
// upstream header value, and its credential without the scheme.
func secretsOf(h http.Header) [][]byte {
	var out [][]byte
	for _, vs := range h {
		for _, v := range vs {
			if len(v) >= 8 {
				out = append(out, []byte(v))
			}
			if _, cred, ok := strings.Cut(v, " "); ok && len(cred) >= 8 {
				out = append(out, []byte(cred))
			}
		}
	}
	return out
}
