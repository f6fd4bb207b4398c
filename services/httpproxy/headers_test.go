package httpproxy_test

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/auditledger/auditledger/events"
	"github.com/auditledger/auditledger/services/gateway/gatewaytest"
	"github.com/auditledger/auditledger/test/natstest"
)

// TestResponseHeadersMasked: while a mask rule with detectors applies, an
// address or card number in a response header — Location (as written and
// percent-encoded), Content-Disposition, Link, Set-Cookie, a custom X-
// header, a Content-Type parameter, a trailer — never reaches the client,
// on GET, HEAD, 204 and 304 alike (curl and net/http through the proxy);
// framing headers and headers with nothing found pass unchanged, and each
// masked header is counted in mask.applied.
func TestResponseHeadersMasked(t *testing.T) {
	card := strings.ReplaceAll(gatewaytest.Card(t), " ", "")
	email := gatewaytest.Email(t, "jane")
	up := &upstream{}
	up.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		h := w.Header()
		h.Set("Location", "/users?email="+url.QueryEscape(email))
		h.Set("Content-Disposition", `attachment; filename="`+card+`.txt"`)
		h.Set("Link", "</users/"+email+">; rel=related")
		h.Set("Set-Cookie", "who="+email+"; Path=/")
		h.Set("X-Card", card)
		h.Set("X-Plain", "nothing here")
		h.Set("Content-Type", `text/plain; charset=utf-8; x-owner="`+email+`"`)
		switch r.URL.Path {
		case "/nocontent":
			w.WriteHeader(http.StatusNoContent)
		case "/notmodified":
			w.WriteHeader(http.StatusNotModified)
		case "/badtype":
			h.Set("Content-Type", "text/plain; x-owner="+email)
			w.Write([]byte("ok"))
		case "/trailer":
			h.Set("Trailer", "X-Checksum-Owner")
			w.Write([]byte("ok"))
			h.Set("X-Checksum-Owner", email)
		default:
			w.Write([]byte("ok"))
		}
	}))
	t.Cleanup(up.srv.Close)
	f := startFor(t, up, detectPolicy)
	leaks := func(what, s string) {
		t.Helper()
		for _, v := range []string{card, email, url.QueryEscape(email)} {
			if strings.Contains(s, v) {
				t.Errorf("%s: the client received %q:\n%s", what, v, s)
			}
		}
	}
	for _, args := range [][]string{{"/doc"}, {"-I", "/doc"}, {"/nocontent"}, {"/notmodified"}} {
		path := args[len(args)-1]
		cmd := append([]string{"-sS", "-D", "-", "-H", "Authorization: Bearer " + f.tokens["alice"]}, args[:len(args)-1]...)
		out, err := exec.Command("curl", append(cmd, f.proxy.URL+path)...).CombinedOutput()
		if err != nil {
			t.Fatalf("curl %v: %v\n%s", args, err, out)
		}
		leaks(strings.Join(args, " "), string(out))
		if !strings.Contains(string(out), "X-Plain: nothing here") || !strings.Contains(string(out), "[REDACTED]") {
			t.Errorf("curl %v: headers not as expected:\n%s", args, out)
		}
	}
	req, _ := http.NewRequest("GET", f.proxy.URL+"/trailer", nil)
	req.Header.Set("Authorization", "Bearer "+f.tokens["alice"])
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if string(body) != "ok" || resp.Trailer.Get("X-Checksum-Owner") != "[REDACTED]" {
		t.Errorf("trailer response: body %q, trailer %q", body, resp.Trailer)
	}
	// A type the masker cannot parse is refused without quoting it.
	req, _ = http.NewRequest("GET", f.proxy.URL+"/badtype", nil)
	req.Header.Set("Authorization", "Bearer "+f.tokens["alice"])
	if resp, err = http.DefaultClient.Do(req); err != nil {
		t.Fatal(err)
	}
	body, _ = io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusBadGateway {
		t.Errorf("unparsable type: %d %s", resp.StatusCode, body)
	}
	leaks("unparsable type", string(body))
	natstest.CheckFor(t, 10*time.Second, 20*time.Millisecond, func() error {
		masked := map[string]bool{}
		for _, r := range f.events(t) {
			if r.ev.Type == events.MaskApplied {
				masked[r.payload["field"].(string)] = true
			}
		}
		for _, h := range []string{"Location", "Content-Disposition", "Link", "Set-Cookie", "X-Card", "Content-Type", "X-Checksum-Owner"} {
			if !masked["(header "+h+")"] {
				return fmt.Errorf("no mask.applied for header %s: %v", h, masked)
			}
		}
		return nil
	})
	for _, r := range f.events(t) {
		leaks("event "+string(r.ev.Type), r.raw)
	}
}
