package httpproxy_test

import (
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/auditledger/auditledger/ledger/piikeys"
	"github.com/auditledger/auditledger/services/approvals"
	"github.com/auditledger/auditledger/services/gateway/gatewaytest"
	"github.com/auditledger/auditledger/test/natstest"
)

// Card numbers and e-mails sent with curl — in the path, in a query
// string (as typed and percent-encoded) and in a JSON body, one of them
// held for an approval — reach none of the bus's streams (the approvals
// bucket included) in any written form. The requests reach the upstream
// unchanged: only what is recorded is scrubbed.
func TestCanaryValuesNeverReachTheBus(t *testing.T) {
	f := start(t)
	card, card2, card3 := gatewaytest.Card(t), gatewaytest.Card(t), gatewaytest.Card(t)
	email, email2 := gatewaytest.Email(t, "canary"), gatewaytest.Email(t, "other")
	curl := func(args ...string) {
		t.Helper()
		args = append([]string{"-sS", "--fail-with-body", "-H", "Authorization: Bearer " + f.tokens["alice"]}, args...)
		if out, err := exec.Command("curl", args...).CombinedOutput(); err != nil {
			t.Fatalf("curl %v: %v\n%s", args, err, out)
		}
	}
	curl(f.proxy.URL + "/api/people/" + url.PathEscape(email2) + "?email=" + email + "&card=" + strings.ReplaceAll(card, " ", "-") + "&x=1")
	curl(f.proxy.URL + "/api/search?q=" + url.QueryEscape(email2+" "+card2))
	curl("-H", "Content-Type: application/json", "--data", `{"card":"`+card3+`","note":"mail `+email+` soon","n":`+strings.ReplaceAll(card2, " ", "")+`}`,
		f.proxy.URL+"/api/orders")
	// Held: the approval request in the bucket holds the scrubbed text.
	done := make(chan error, 1)
	go func() {
		c, b := f.do(t, "alice", "POST", "/api/deploy?owner="+url.QueryEscape(email), `{"card":"`+card+`"}`)
		if c != 200 {
			done <- errors.New(b)
		}
		close(done)
	}()
	var held *approvals.Request
	natstest.CheckFor(t, 10*time.Second, 20*time.Millisecond, func() error {
		list, err := f.broker.List(t.Context(), approvals.Pending)
		if err != nil || len(list) == 0 {
			return errors.New("not held yet")
		}
		held = list[0]
		return nil
	})
	if !strings.Contains(held.Statement, "owner=[REDACTED:email]") {
		t.Errorf("held statement %q", held.Statement)
	}
	bob, err := f.verify.Authenticate(t.Context(), "", f.tokens["bob"])
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.broker.Decide(t.Context(), held.ID, bob, true, "ok"); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Fatalf("approved request: %v", err)
	}
	f.waitFor(t, "response.digest", 4)
	f.up.mu.Lock()
	upstreamSaw := f.up.seen
	f.up.mu.Unlock()
	if len(upstreamSaw) != 4 || !strings.Contains(upstreamSaw[2].body, card3) || !strings.Contains(upstreamSaw[3].body, card) {
		t.Errorf("the upstream did not get the requests as sent: %+v", upstreamSaw)
	}
	stored := gatewaytest.BusBytes(t, f.js)
	if !bytes.Contains(stored, []byte("[REDACTED:email]")) || !bytes.Contains(stored, []byte("[REDACTED:credit_card]")) {
		t.Fatalf("no placeholder on the bus:\n%s", stored)
	}
	gatewaytest.CheckAbsent(t, stored, card, card2, card3, email, email2, url.QueryEscape(email), url.PathEscape(email2))
}

// A request body is recorded by its keyed digest over the bytes as
// received — a gzip-compressed one too, which the detectors cannot read
// — never by an unkeyed digest that could be guessed back; a card number
// the detectors find in a plain body is recorded as its search digest.
func TestBodyRecordedByKeyedDigest(t *testing.T) {
	f := start(t)
	card := gatewaytest.Card(t)
	plain := `{"card":"` + card + `"}`
	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	zw.Write([]byte(plain))
	zw.Close()
	send := func(body []byte, encoding string) {
		t.Helper()
		req, _ := http.NewRequest("POST", f.proxy.URL+"/api/orders", bytes.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+f.tokens["alice"])
		req.Header.Set("Content-Type", "application/json")
		if encoding != "" {
			req.Header.Set("Content-Encoding", encoding)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Fatalf("POST: %d", resp.StatusCode)
		}
	}
	send([]byte(plain), "")
	send(gz.Bytes(), "gzip")
	cmds := f.waitFor(t, "command.executed", 2)
	key, err := f.keys.TenantKey(t.Context(), "acme")
	if err != nil {
		t.Fatal(err)
	}
	for i, body := range [][]byte{[]byte(plain), gz.Bytes()} {
		p := cmds[i].payload
		if p["body_hmac"] != f.bodyHMAC(t, string(body)) || p["body_sha256"] != nil {
			t.Errorf("request %d: body_hmac %v, body_sha256 %v; want the keyed digest of the body as received, alone", i, p["body_hmac"], p["body_sha256"])
		}
	}
	red, _ := cmds[0].payload["redacted"].([]any)
	if want := fmt.Sprintf("[map[count:1 detector:credit_card matches:[%s] path:/body_hmac]]", piikeys.MatchDigest(key, card)); fmt.Sprint(red) != want {
		t.Errorf("plain body: redacted %v, want %s", red, want)
	}
	stored := gatewaytest.BusBytes(t, f.js)
	for _, body := range [][]byte{[]byte(plain), gz.Bytes()} {
		sum := sha256.Sum256(body)
		if bytes.Contains(stored, []byte(hex.EncodeToString(sum[:]))) {
			t.Errorf("an unkeyed digest of a body is on the bus")
		}
	}
	gatewaytest.CheckAbsent(t, stored, card)
}
