package httpproxy_test

import (
	"bytes"
	"errors"
	"net/url"
	"os/exec"
	"strings"
	"testing"
	"time"

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
