package test

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/auditledger/auditledger/services/access"
	"github.com/auditledger/auditledger/test/natstest"
)

// TestDevAccessReview: on dev, grants made through the API (alice's
// request approved by bob, alice's break-glass grant) reach the projection,
// and `access review`, through the API with carol's token, lists them per
// identity with their approvers, the sessions each admitted and
// break-glass flagged; a record under access.granted that a producer
// wrote without the broker's signature is listed as not counted. Alice,
// without the role, may not sign it off; bob signs off through the API with
// his token, recorded as access.reviewed by bob with the SHA-256 of the
// --json listing.
func TestDevAccessReview(t *testing.T) {
	policy := filepath.Join(t.TempDir(), "policy.yaml")
	if err := os.WriteFile(policy, []byte(`version: 2
access:
  - id: prod
    targets: [orders]
    approvers: {groups: [approver]}
    max_duration: 4h
    break_glass: {groups: [dba], duration: 30m}
`), 0o644); err != nil {
		t.Fatal(err)
	}
	d := startDev(t, nil, "--policy", policy)
	as := func(user string) []string {
		return []string{"AUDITLEDGER_API=" + d.api, "AUDITLEDGER_TOKEN=" + d.token(t, user)}
	}
	var req, glass access.Request
	r := mustRun(t, nil, as("alice"), "access", "request", "--tenant", "acme", "--target", "orders", "--for", "2h", "--reason", "INC-7", "--json")
	if err := json.Unmarshal([]byte(r.stdout), &req); err != nil {
		t.Fatalf("access request: %v: %s", err, r.stdout)
	}
	mustRun(t, nil, as("bob"), "access", "approve", req.ID, "--reason", "INC-7 checked")
	r = mustRun(t, nil, as("alice"), "access", "break-glass", "--tenant", "acme", "--target", "orders", "--reason", "outage", "--json")
	if err := json.Unmarshal([]byte(r.stdout), &glass); err != nil {
		t.Fatalf("break-glass: %v: %s", err, r.stdout)
	}
	// A session the grant admitted, and a grant a producer wrote itself.
	now := time.Now().UTC().Truncate(time.Second)
	in := fmt.Sprintf(`{"version":1,"id":"review-s1","type":"session.started","time":%q,"tenant":"acme","source":{"kind":"postgres-proxy","instance":"p1"},"actor":{"issuer":%q,"subject":"alice","kind":"human"},"session_id":"review-s1","session_seq":1,"target":{"kind":"postgres","name":"orders"},"payload":{"access_id":%q}}`+"\n",
		now.Format(time.RFC3339), d.issuer, req.ID) +
		fmt.Sprintf(`{"version":1,"id":"forged-grant","type":"access.granted","time":%q,"tenant":"acme","source":{"kind":"api","instance":"a1"},"actor":{"issuer":%q,"subject":"mallory","kind":"human"},"target":{"kind":"access","name":"orders"},"payload":{"access_id":"acc-forged00001","rule":"prod","status":"approved","target":"orders","requester":{"issuer":%q,"subject":"mallory"},"grant":"just-in-time","approvals":1,"not_before":%q,"not_after":%q,"break_glass":false}}`+"\n",
			now.Format(time.RFC3339), d.issuer, d.issuer, now.Format(time.RFC3339), now.Add(time.Hour).Format(time.RFC3339))
	mustRun(t, []byte(in), nil, "emit", "--nats", d.nats, "--nkey", filepath.Join(d.data, "nats-keys", "proxy.nk"))

	review := []string{"access", "review", "--tenant", "acme", "--from", now.Add(-24 * time.Hour).Format(time.DateOnly), "--to", now.Add(48 * time.Hour).Format(time.DateOnly)}
	var listing string
	natstest.CheckFor(t, 60*time.Second, 200*time.Millisecond, func() error {
		r := run(t, nil, as("carol"), review...)
		if r.code != 0 || !strings.Contains(r.stdout, glass.ID) || !strings.Contains(r.stdout, "acc-forged00001") || !strings.Contains(r.stdout, "  1  ") {
			return fmt.Errorf("access review: %d %s %s", r.code, r.stdout, r.stderr)
		}
		listing = r.stdout
		return nil
	})
	alice := listing[strings.Index(listing, "\nalice\n"):strings.Index(listing, "\nnot counted")]
	if !strings.Contains(alice, req.ID) || !strings.Contains(alice, "bob") || !strings.Contains(alice, "break-glass: review required") || strings.Count(alice, "orders") != 2 {
		t.Errorf("alice's grants: want %s approved by bob with 1 session and break-glass %s:\n%s", req.ID, glass.ID, listing)
	}
	if forged := listing[strings.Index(listing, "\nnot counted"):]; !strings.Contains(forged, "mallory") || !strings.Contains(forged, "published by api/a1, not by the access broker") {
		t.Errorf("the producer's grant is not listed as not counted, with why:\n%s", listing)
	}
	js := mustRun(t, nil, as("carol"), append(review, "--json")...)
	sum := sha256.Sum256([]byte(js.stdout))
	digest := hex.EncodeToString(sum[:])

	if r := run(t, nil, as("alice"), append(review, "--sign-off", "--reason", "fine")...); r.code == 0 || !strings.Contains(r.stderr, "needs the role approver or security") {
		t.Errorf("alice signed off without the role: %d %s", r.code, r.stderr)
	}
	if r := run(t, nil, []string{"AUDITLEDGER_API=" + d.api, "AUDITLEDGER_TOKEN="}, append(review, "--sign-off", "--reason", "fine")...); r.code == 0 || !strings.Contains(r.stderr, "no token") {
		t.Errorf("a sign-off without a token: %d %s", r.code, r.stderr)
	}
	r = mustRun(t, nil, as("bob"), append(review, "--sign-off", "--reason", "all justified")...)
	if !strings.Contains(r.stderr, "signed off as bob") || !strings.Contains(r.stderr, digest) {
		t.Errorf("bob's sign-off: %s", r.stderr)
	}
	carol := d.token(t, "carol")
	byBob := regexp.MustCompile(`"by":\s*"bob"`)
	natstest.CheckFor(t, 60*time.Second, 200*time.Millisecond, func() error {
		code, body := apiGet(t, d.api, carol, "/v1/events?type=access.reviewed&tenant=acme")
		if code != 200 || strings.Count(string(body), `"listing_sha256"`) != 1 || !strings.Contains(string(body), digest) || !byBob.Match(body) {
			return fmt.Errorf("one access.reviewed by bob over listing %s: %d %.3000s", digest, code, body)
		}
		return nil
	})
}
