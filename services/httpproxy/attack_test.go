package httpproxy_test

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path"
	"strings"
	"sync"
	"testing"

	"github.com/auditledger/auditledger/events"
	"github.com/auditledger/auditledger/test/natstest"
)

const attackPolicy = `version: 1
mask:
  - id: emails
    detect: [email, credit_card]
    method: redact
deny:
  - id: no-admin
    paths: ["/admin/**"]
    reason: the admin API is off limits
  - id: no-deletes
    methods: [DELETE]
    paths: ["/api/**"]
    reason: no deletions
`

// lenient is an upstream as forgiving as many real ones: it resolves dot
// segments and percent-encodings itself, honours method overrides, echoes
// request headers, and serves formats the masker may not read.
func lenient(t *testing.T) (*upstream, func() []string) {
	var mu sync.Mutex
	var reached []string
	u := &upstream{}
	u.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		method := r.Method
		if o := r.Header.Get("X-HTTP-Method-Override"); o != "" {
			method = o
		}
		if o := r.URL.Query().Get("_method"); o != "" {
			method = o
		}
		p, _ := url.PathUnescape(r.URL.EscapedPath())
		p = path.Clean(strings.ReplaceAll(p, "\\", "/"))
		mu.Lock()
		reached = append(reached, method+" "+p+" impersonate="+r.Header.Get("Impersonate-User"))
		mu.Unlock()
		switch p {
		case "/echo":
			w.Header().Set("Content-Type", "text/plain")
			for k, v := range r.Header {
				io.WriteString(w, k+": "+strings.Join(v, ",")+"\n")
			}
		case "/yaml":
			w.Header().Set("Content-Type", "application/yaml")
			io.WriteString(w, "user: carol@example.com\n")
		case "/text":
			w.Header().Set("Content-Type", "text/plain")
			io.WriteString(w, "contact carol@example.com or pay with 4111 1111 1111 1111\n")
		case "/json":
			w.Header().Set("Content-Type", "application/json")
			io.WriteString(w, `{"carol@example.com": {"card": 4111111111111111, "note": "ok"}}`)
		default:
			w.Header().Set("Content-Type", "application/json")
			io.WriteString(w, `{"ok": true}`)
		}
	}))
	t.Cleanup(u.srv.Close)
	return u, func() []string { mu.Lock(); defer mu.Unlock(); return append([]string(nil), reached...) }
}

// TestHTTPAttacks: tricks that pass a naive matcher against an upstream
// that resolves them. For each, the upstream must not act on the forbidden
// request, no unmasked value may reach the client or any event, and what
// was recorded is what was forwarded.
func TestHTTPAttacks(t *testing.T) {
	up, reached := lenient(t)
	f := startFor(t, up, attackPolicy)
	cases := []struct {
		name, method, target string
		header               http.Header
		code                 int
		forbidden            string // must not appear among the requests the upstream acted on
	}{
		{"dot segment", "GET", "/./admin/users", nil, 403, "/admin"},
		{"parent segment", "GET", "/x/../admin/users", nil, 403, "/admin"},
		{"encoded dot", "GET", "/%2e/admin/users", nil, 403, "/admin"},
		{"encoded dots", "GET", "/x/%2E%2E/admin/users", nil, 403, "/admin"},
		{"double slash", "GET", "//admin//users", nil, 403, "/admin"},
		{"encoded letter", "GET", "/%61dmin/users", nil, 403, "/admin"},
		{"encoded slash", "GET", "/admin%2fusers", nil, 400, "/admin"},
		{"encoded backslash", "GET", "/x/..%5cadmin/users", nil, 400, "/admin"},
		{"double encoding", "GET", "/%252e%252e/admin", nil, 400, "/admin"},
		{"NUL", "GET", "/api/items%00.json", nil, 400, "\x00"},
		{"tomcat parameters", "GET", "/x/..;/admin/users", nil, 400, "/admin"},
		{"method override header", "POST", "/api/items/1", http.Header{"X-Http-Method-Override": {"DELETE"}}, 400, "DELETE "},
		{"method override parameter", "POST", "/api/items/1?_method=DELETE", nil, 400, "DELETE "},
		{"TRACE", "TRACE", "/echo", nil, 400, "TRACE "},
		{"plain delete", "DELETE", "/api/items/1", nil, 403, "DELETE "},
		{"allowed", "GET", "/api/items", nil, 200, ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			// Sent as raw bytes: a client library would normalise the target.
			u, _ := url.Parse(f.proxy.URL)
			conn, err := net.Dial("tcp", u.Host)
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			var hdr strings.Builder
			for k, v := range c.header {
				hdr.WriteString(k + ": " + v[0] + "\r\n")
			}
			fmt.Fprintf(conn, "%s %s HTTP/1.1\r\nHost: %s\r\nAuthorization: Bearer %s\r\n%sContent-Length: 0\r\nConnection: close\r\n\r\n",
				c.method, c.target, u.Host, f.tokens["alice"], hdr.String())
			resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != c.code {
				t.Errorf("%s %s: status %d, want %d", c.method, c.target, resp.StatusCode, c.code)
			}
			if c.forbidden != "" {
				for _, r := range reached() {
					if strings.Contains(r, c.forbidden) {
						t.Errorf("%s %s: the upstream acted on %q", c.method, c.target, r)
					}
				}
			}
		})
	}

	// Responses: the proxy's upstream credentials never come back, PII in
	// text and in JSON names and numbers is masked, a format the masker
	// cannot read is withheld.
	get := func(target string, h http.Header) (int, string) {
		req, _ := http.NewRequest("GET", f.proxy.URL+target, nil)
		for k, v := range h {
			req.Header[k] = v
		}
		req.Header.Set("Authorization", "Bearer "+f.tokens["alice"])
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	if code, body := get("/echo", nil); code != 200 || strings.Contains(body, "upstream-service-token") {
		t.Errorf("echo: %d, the body shows the proxy's credential:\n%s", code, body)
	}
	if code, body := get("/text", nil); code != 200 || strings.Contains(body, "carol@example.com") || strings.Contains(body, "4111 1111") {
		t.Errorf("text/plain with PII: %d %q", code, body)
	}
	if code, body := get("/json", nil); code != 200 || strings.Contains(body, "carol@example.com") || strings.Contains(body, "4111111111111111") {
		t.Errorf("JSON name and number with PII: %d %q", code, body)
	}
	if code, body := get("/yaml", nil); code != 502 || strings.Contains(body, "carol@example.com") {
		t.Errorf("YAML, which the masker cannot read: %d %q, want withheld", code, body)
	}
	if code, _ := get("/k8s/pods", http.Header{"Impersonate-User": {"cluster-admin"}, "Impersonate-Group": {"system:masters"}}); code != 200 {
		t.Errorf("impersonation request: %d", code)
	}
	for _, r := range reached() {
		if strings.Contains(r, "/k8s/pods") && !strings.HasSuffix(r, "impersonate=") {
			t.Errorf("impersonation reached the upstream: %s", r)
		}
	}

	// The events: no unmasked value, no credential; the impersonation
	// attempt recorded; each forwarded request recorded as forwarded.
	stripped := false
	for _, st := range natstest.Events(t, f.js, "") {
		raw := string(st.Raw)
		for _, secret := range []string{"carol@example.com", "4111111111111111", "4111 1111 1111 1111", "upstream-service-token"} {
			if strings.Contains(raw, secret) {
				t.Errorf("%s event holds %q: %s", st.Event.Type, secret, raw)
			}
		}
		if st.Event.Type == events.CommandExecuted && strings.Contains(raw, "Impersonate-User") {
			stripped = true
			var p map[string]any
			json.Unmarshal(st.Event.Payload, &p)
			if p["path"] != "/k8s/pods" {
				t.Errorf("recorded path %v", p["path"])
			}
		}
	}
	if !stripped {
		t.Error("the stripped impersonation headers are not recorded")
	}
}
