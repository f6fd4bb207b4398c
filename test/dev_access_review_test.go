package test

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/auditledger/auditledger/test/natstest"
)

// TestDevAccessReview: on dev, the grants recorded on the bus reach the
// projection and `access review` lists them per identity with their
// approvers, the sessions each admitted and break-glass flagged; a
// reviewer who held a grant may not sign off; another reviewer's sign-off
// is recorded as access.reviewed with the SHA-256 of the --json listing.
func TestDevAccessReview(t *testing.T) {
	d := startDev(t, nil)
	now := time.Now().UTC().Truncate(time.Second)
	ts := func(d time.Duration) string { return now.Add(d).Format(time.RFC3339) }
	ev := func(id, typ, subject, session, payload string) string {
		sess := ""
		if session != "" {
			sess = fmt.Sprintf(`"session_id":%q,"session_seq":1,`, session)
		}
		return fmt.Sprintf(`{"version":1,"id":%q,"type":%q,"time":%q,"tenant":"acme","source":{"kind":"api","instance":"a1"},"actor":{"issuer":"https://idp.example","subject":%q,"kind":"human"},%s"target":{"kind":"access","name":"orders"},"payload":%s}`+"\n",
			id, typ, ts(0), subject, sess, payload)
	}
	grant := func(id, holder string, bg bool) string {
		return fmt.Sprintf(`{"access_id":%q,"rule":"prod","status":"approved","target":"orders","requester":{"issuer":"https://idp.example","subject":%q},"grant":"just-in-time","approvals":1,"not_before":%q,"not_after":%q,"break_glass":%t,"review_required":%t}`,
			id, holder, ts(-time.Hour), ts(time.Hour), bg, bg)
	}
	in := ev("access/acc-review00001/approved/1", "access.approved", "rita", "", `{"access_id":"acc-review00001","target":"orders"}`) +
		ev("access/acc-review00001/granted", "access.granted", "rita", "", grant("acc-review00001", "alice", false)) +
		ev("review-s1", "session.started", "alice", "review-s1", `{"access_id":"acc-review00001"}`) +
		ev("access/acc-review00002/granted", "access.granted", "bob", "", grant("acc-review00002", "bob", true))
	mustRun(t, []byte(in), nil, "emit", "--nats", d.nats, "--nkey", filepath.Join(d.data, "nats-keys", "proxy.nk"))
	url, err := os.ReadFile(filepath.Join(d.data, "projection.url"))
	if err != nil {
		t.Fatal(err)
	}
	env := []string{"AUDITLEDGER_DATABASE_URL=" + strings.TrimSpace(string(url))}
	review := []string{"access", "review", "--tenant", "acme", "--from", "2000-01-01", "--to", "2100-01-01"}
	var listing string
	natstest.CheckFor(t, 60*time.Second, 200*time.Millisecond, func() error {
		r := run(t, nil, env, review...)
		if r.code != 0 || !strings.Contains(r.stdout, "acc-review00002") || !strings.Contains(r.stdout, "acc-review00001") {
			return fmt.Errorf("access review: %d %s %s", r.code, r.stdout, r.stderr)
		}
		listing = r.stdout
		return nil
	})
	alice := listing[strings.Index(listing, "\nalice\n"):strings.Index(listing, "\nbob\n")]
	if !strings.Contains(alice, "orders") || !strings.Contains(alice, "rita") || !strings.Contains(alice, "  1  ") || strings.Contains(alice, "break-glass") {
		t.Errorf("alice's grant: want target orders, approver rita, 1 session, not break-glass:\n%s", listing)
	}
	bob := listing[strings.Index(listing, "\nbob\n"):]
	if !strings.Contains(bob, "break-glass: review required") || !strings.Contains(bob, "  0  ") {
		t.Errorf("bob's break-glass grant: want review required and 0 sessions:\n%s", listing)
	}
	js := mustRun(t, nil, env, append(review, "--json")...)
	sum := sha256.Sum256([]byte(js.stdout))
	digest := hex.EncodeToString(sum[:])

	nkey := filepath.Join(d.data, "nats-keys", "admin.nk")
	if r := run(t, nil, env, append(review, "--sign-off", "--operator", "alice", "--reason", "fine", "--nats", d.nats, "--nkey", nkey)...); r.code == 0 || !strings.Contains(r.stderr, "held a grant") {
		t.Errorf("a holder signed off her own review: %d %s", r.code, r.stderr)
	}
	if r := run(t, nil, env, append(review, "--sign-off", "--operator", "auditor-7", "--reason", "fine", "--nats", d.nats)...); r.code == 0 {
		t.Errorf("a sign-off without the admin's bus credentials exited 0: %s", r.stderr)
	}
	mustRun(t, nil, env, append(review, "--sign-off", "--operator", "auditor-7", "--reason", "all justified", "--nats", d.nats, "--nkey", nkey)...)
	carol := d.token(t, "carol")
	natstest.CheckFor(t, 60*time.Second, 200*time.Millisecond, func() error {
		code, body := apiGet(t, d.api, carol, "/v1/events?type=access.reviewed&tenant=acme")
		if code != 200 || strings.Count(string(body), `"listing_sha256"`) != 1 || !strings.Contains(string(body), digest) || !strings.Contains(string(body), "auditor-7") {
			return fmt.Errorf("one access.reviewed by auditor-7 over listing %s: %d %.800s", digest, code, body)
		}
		return nil
	})
}
