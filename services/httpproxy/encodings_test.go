package httpproxy_test

import (
	"bytes"
	"compress/gzip"
	"compress/zlib"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/auditledger/auditledger/events"
	"github.com/auditledger/auditledger/services/gateway/gatewaytest"
)

// Values a client sends encoded — percent-encoded twice in the path and
// the query, as form fields, as JSON \u escapes, gzip- or
// deflate-compressed, in multipart parts — are judged decoded: none
// reaches the bus in any written form, and no body digest on the bus is
// the digest of a body (as sent or decoded) that holds one. A body the
// proxy cannot decode is recorded by its size and a placeholder only.
// The requests are sent with curl, as a user would.
func TestEncodedValuesAreJudgedDecoded(t *testing.T) {
	f := start(t)
	dir := t.TempDir()
	var cards, emails []string
	newCard := func() string { c := gatewaytest.Card(t); cards = append(cards, c); return c }
	newEmail := func() string { e := gatewaytest.Email(t, "enc"); emails = append(emails, e); return e }
	var bodies [][]byte // every body sent, as sent and decoded
	file := func(name string, b []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, b, 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	curl := func(args ...string) {
		t.Helper()
		args = append([]string{"-sS", "-o", "/dev/null", "-w", "%{http_code}", "-H", "Authorization: Bearer " + f.tokens["alice"]}, args...)
		out, err := exec.Command("curl", args...).CombinedOutput()
		if err != nil {
			t.Fatalf("curl %v: %v\n%s", args, err, out)
		}
	}
	twice := func(s string) string { return url.QueryEscape(url.QueryEscape(s)) }

	// Paths and queries encoded twice. The path is refused (an encoded
	// percent sign) and recorded as blocked.
	e1, e2, c1 := newEmail(), newEmail(), newCard()
	curl(f.proxy.URL + "/api/people/" + strings.ReplaceAll(twice(e1), "+", "%20"))
	curl(f.proxy.URL + "/api/search?q=" + twice(e2) + "&card=" + twice(c1))

	// A form body, fields percent-encoded (spaces as +).
	c2, e3 := newCard(), newEmail()
	form := "card=" + url.QueryEscape(c2) + "&mail=" + url.QueryEscape(e3)
	bodies = append(bodies, []byte(form))
	curl("-H", "Content-Type: application/x-www-form-urlencoded", "--data-binary", "@"+file("form", []byte(form)), f.proxy.URL+"/api/orders")

	// JSON with every character of the values as \u escapes.
	c3, e4 := newCard(), newEmail()
	esc := func(s string) string {
		var b strings.Builder
		for _, r := range s {
			fmt.Fprintf(&b, `\u%04x`, r)
		}
		return b.String()
	}
	js := `{"card":"` + esc(c3) + `","` + esc(e4) + `":1}`
	bodies = append(bodies, []byte(js), []byte(`{"card":"`+c3+`","`+e4+`":1}`))
	curl("-H", "Content-Type: application/json", "--data-binary", "@"+file("json", []byte(js)), f.proxy.URL+"/api/orders")

	// gzip and deflate request bodies.
	c4, c5 := newCard(), newCard()
	plain4 := []byte(`{"note":"card ` + c4 + `"}`)
	plain5 := []byte("card " + c5)
	var gz, zl bytes.Buffer
	zw := gzip.NewWriter(&gz)
	zw.Write(plain4)
	zw.Close()
	fw := zlib.NewWriter(&zl)
	fw.Write(plain5)
	fw.Close()
	bodies = append(bodies, gz.Bytes(), plain4, zl.Bytes(), plain5)
	curl("-H", "Content-Type: application/json", "-H", "Content-Encoding: gzip", "--data-binary", "@"+file("gz", gz.Bytes()), f.proxy.URL+"/api/orders")
	curl("-H", "Content-Type: text/plain", "-H", "Content-Encoding: deflate", "--data-binary", "@"+file("zl", zl.Bytes()), f.proxy.URL+"/api/orders")

	// Multipart form data: a field, a file and its name.
	c6, e5, e6 := newCard(), newEmail(), newEmail()
	curl("-F", "card="+c6, "-F", "upload=@"+file("notes.txt", []byte("contact "+e5+"\n"))+";filename="+e6+".txt", f.proxy.URL+"/api/orders")

	// A body the proxy cannot decode: a coding it does not know, and a
	// gzip stream larger than its limit once decoded.
	c7, c8 := newCard(), newCard()
	br := []byte("not really brotli " + c7)
	var bomb bytes.Buffer
	zw = gzip.NewWriter(&bomb)
	zw.Write(make([]byte, 11<<20))
	zw.Write([]byte(c8))
	zw.Close()
	bodies = append(bodies, br, bomb.Bytes())
	curl("-H", "Content-Encoding: br", "--data-binary", "@"+file("br", br), f.proxy.URL+"/api/orders")
	curl("-H", "Content-Encoding: gzip", "--data-binary", "@"+file("bomb", bomb.Bytes()), f.proxy.URL+"/api/orders")

	executed := f.waitFor(t, events.CommandExecuted, 8)
	f.waitFor(t, events.CommandBlocked, 1)
	stored := gatewaytest.BusBytes(t, f.js)
	var encoded []string
	for _, v := range append(append([]string(nil), cards...), emails...) {
		encoded = append(encoded, url.QueryEscape(v), twice(v), url.PathEscape(v))
	}
	gatewaytest.CheckAbsent(t, stored, append(append(cards, emails...), encoded...)...)
	for _, b := range bodies {
		sum := sha256.Sum256(b)
		if bytes.Contains(stored, []byte(hex.EncodeToString(sum[:]))) {
			t.Errorf("the bus holds the digest of a body holding a value: %.60q", b)
		}
	}
	undecoded := 0
	for _, r := range executed {
		if r.payload["body_undecoded"] != nil {
			undecoded++
			if r.payload["body_bytes"] == nil || r.payload["body_sha256"] != nil {
				t.Errorf("undecoded body recorded as %v", r.payload)
			}
		}
		// Every body, read or not, by its keyed digest alone.
		if d, _ := r.payload["body_hmac"].(string); r.payload["body_bytes"].(float64) > 0 && !strings.HasPrefix(d, "hmac:") {
			t.Errorf("body recorded without its keyed digest: %v", r.payload)
		}
	}
	if undecoded != 2 {
		t.Errorf("%d bodies recorded as undecodable, want 2", undecoded)
	}
	f.up.mu.Lock()
	defer f.up.mu.Unlock()
	if n := len(f.up.seen); n != 8 { // all but the blocked path
		t.Errorf("the upstream saw %d requests, want 8", n)
	}
}

// A value percent-encoded any number of times is judged decoded: in the
// path of a request whose login fails (recorded before anything else is
// read), and in a query encoded more often than a server would decode
// it. No event on the bus holds it in any written form: each event's
// text, percent-decoded until that changes nothing, holds none of them.
func TestEncodedManyTimesAreJudgedDecoded(t *testing.T) {
	f := start(t)
	// enc percent-encodes every byte of s, then that n-1 times more.
	enc := func(s string, n int) string {
		var b strings.Builder
		for i := range len(s) {
			fmt.Fprintf(&b, "%%%02X", s[i])
		}
		s = b.String()
		for range n - 1 {
			s = url.PathEscape(s)
		}
		return s
	}
	e1, e2, c1, c2 := gatewaytest.Email(t, "login"), gatewaytest.Email(t, "many"), gatewaytest.Card(t), gatewaytest.Card(t)
	curl := func(args ...string) {
		t.Helper()
		out, err := exec.Command("curl", append([]string{"-sS", "-o", "/dev/null"}, args...)...).CombinedOutput()
		if err != nil {
			t.Fatalf("curl %v: %v\n%s", args, err, out)
		}
	}
	// No token: authn.failed records the path.
	curl(f.proxy.URL + "/u/" + enc(e1, 2))
	curl(f.proxy.URL + "/u/" + enc(c1, 7))
	// Authenticated, a query encoded 6 and 40 times.
	curl("-H", "Authorization: Bearer "+f.tokens["alice"], f.proxy.URL+"/api/search?q="+enc(e2, 6)+"&c="+enc(c2, 40))
	f.waitFor(t, events.AuthnFailed, 2)
	f.waitFor(t, events.CommandExecuted, 1)
	pct := regexp.MustCompile(`%[0-9A-Fa-f]{2}`)
	for _, r := range f.events(t) {
		text := r.raw
		for range 100 {
			d := pct.ReplaceAllStringFunc(text, func(m string) string { v, _ := url.PathUnescape(m); return v })
			if d == text {
				break
			}
			text = d
		}
		for _, v := range []string{e1, e2, c1, c2} {
			if strings.Contains(text, v) {
				t.Errorf("%s event holds %q, percent-encoded: %s", r.ev.Type, v, r.raw)
			}
		}
	}
}
