package test

import (
	"archive/zip"
	"crypto/sha256"
	"encoding/csv"
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
// --json listing. An evidence bundle then counts, under 8.2, alice's
// privileged session under the broker's grant as granted, and mallory's
// under the producer's record as an exception saying why; it verifies
// only with the grant key given (approvals.vkey).
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
	// A session the grant admitted, and a grant a producer wrote itself;
	// each session runs a DROP no one approved, mallory's under the
	// producer's grant.
	now := time.Now().UTC().Truncate(time.Second)
	drop := func(session, subject string, seq int) string {
		return fmt.Sprintf(`{"version":1,"id":"%s-drop","type":"command.executed","time":%q,"tenant":"acme","source":{"kind":"postgres-proxy","instance":"p1"},"actor":{"issuer":%q,"subject":%q,"kind":"human"},"session_id":%q,"session_seq":%d,"target":{"kind":"postgres","name":"orders"},"payload":{"statement":"DROP TABLE old_orders","statement_sha256":"%s","kind":"DROP"}}`+"\n",
			session, now.Format(time.RFC3339), d.issuer, subject, session, seq, strings.Repeat("d", 64))
	}
	in := fmt.Sprintf(`{"version":1,"id":"review-s1","type":"session.started","time":%q,"tenant":"acme","source":{"kind":"postgres-proxy","instance":"p1"},"actor":{"issuer":%q,"subject":"alice","kind":"human"},"session_id":"review-s1","session_seq":1,"target":{"kind":"postgres","name":"orders"},"payload":{"access_id":%q}}`+"\n",
		now.Format(time.RFC3339), d.issuer, req.ID) + drop("review-s1", "alice", 2) +
		fmt.Sprintf(`{"version":1,"id":"review-s2","type":"session.started","time":%q,"tenant":"acme","source":{"kind":"postgres-proxy","instance":"p1"},"actor":{"issuer":%q,"subject":"mallory","kind":"human"},"session_id":"review-s2","session_seq":1,"target":{"kind":"postgres","name":"orders"},"payload":{"access_id":"acc-forged00001"}}`+"\n",
			now.Format(time.RFC3339), d.issuer) + drop("review-s2", "mallory", 2) +
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

	// The evidence bundle, built and checked with the grant key the
	// broker signs with.
	url, err := os.ReadFile(filepath.Join(d.data, "projection.url"))
	if err != nil {
		t.Fatal(err)
	}
	natstest.CheckFor(t, 60*time.Second, 200*time.Millisecond, func() error {
		if code, body := apiGet(t, d.api, carol, "/v1/events?type=command.executed&tenant=acme"); code != 200 || strings.Count(string(body), "DROP TABLE old_orders") != 2 {
			return fmt.Errorf("the two DROPs not projected yet: %d %.300s", code, body)
		}
		return nil
	})
	bundle := filepath.Join(t.TempDir(), "acme.zip")
	grantKey := filepath.Join(d.data, "keys", "approvals.vkey")
	db := []string{"AUDITLEDGER_DATABASE_URL=" + strings.TrimSpace(string(url))}
	build := []string{"evidence", "build", "--tenant", "acme", "--from", "2000-01-01", "--to", "2100-01-01", "--out", bundle,
		"--key", filepath.Join(d.data, "keys", "evidence"), "--vkey", d.vkey(), "--nats", d.nats, "--nkey", filepath.Join(d.data, "nats-keys", "admin.nk")}
	if r := run(t, nil, db, build...); r.code == 0 || !strings.Contains(r.stderr, "--grant-vkey") {
		t.Errorf("evidence build without the grant key: %d %s", r.code, r.stderr)
	}
	r = mustRun(t, nil, db, append(build, "--grant-vkey", grantKey)...)
	if !strings.Contains(r.stdout, "--grant-vkey "+grantKey) {
		t.Errorf("the check command does not give the grant key:\n%s", r.stdout)
	}
	signers := filepath.Join(d.data, "keys", "allowed_signers")
	v := mustRun(t, nil, nil, "evidence", "verify", bundle, "--vkey", d.vkey(), "--allowed-signers", signers, "--grant-vkey", grantKey, "--allow-unlocked")
	if !strings.Contains(v.stdout, "8.2    Privileged access rights                      exceptions found (2 tested, 1 exceptions)") {
		t.Errorf("8.2 in the bundle:\n%s", v.stdout)
	}
	zr, err := zip.OpenReader(bundle)
	if err != nil {
		t.Fatal(err)
	}
	defer zr.Close()
	f, err := zr.Open("controls/8.2/assertion.csv")
	if err != nil {
		t.Fatal(err)
	}
	rows, err := csv.NewReader(f).ReadAll()
	f.Close()
	if err != nil || len(rows) != 3 {
		t.Fatalf("8.2's assertion.csv: %v %q", err, rows)
	}
	for _, row := range rows[1:] {
		switch row[3] {
		case "alice":
			if row[5] == "" || row[6] != "" {
				t.Errorf("alice's session under the broker's grant: %q", row)
			}
		case "mallory":
			if row[5] != "" || !strings.HasPrefix(row[6], "granted only by an unverified record (index ") || !strings.HasSuffix(row[6], "): it carries no grant signature") {
				t.Errorf("mallory's session under the producer's record: %q", row)
			}
		default:
			t.Errorf("8.2 row %q", row)
		}
	}
	// 5.18: bob's sign-off, as the bundle shows it to an auditor (FORMAT
	// §12.3): the period, the two grants the broker signed (one of them
	// break-glass), the producer's record not counted, and the digest of
	// the listing bob signed off.
	f, err = zr.Open("controls/5.18/access_reviews.csv")
	if err != nil {
		t.Fatal(err)
	}
	rows, err = csv.NewReader(f).ReadAll()
	f.Close()
	if err != nil || len(rows) != 2 {
		t.Fatalf("5.18's access_reviews.csv: %v %q, want its header and bob's sign-off", err, rows)
	}
	if h := strings.Join(rows[0], ","); h != "idx,time,reviewer,period_from,period_to,grants,break_glass,unverified_records,listing_sha256,recorded_by" {
		t.Errorf("5.18's access_reviews.csv header %q", h)
	}
	row := rows[1]
	if row[2] != "bob" || !strings.HasPrefix(row[3], review[5]) || !strings.HasPrefix(row[4], review[7]) ||
		row[5] != "2" || row[6] != "1" || row[7] != "1" || row[8] != digest || row[9] != "api" {
		t.Errorf("5.18's access_reviews.csv row %q: want bob, %s to %s, 2 grants, 1 break-glass, 1 unverified, listing %s, recorded by api", row, review[5], review[7], digest)
	}
	if r := run(t, nil, nil, "evidence", "verify", bundle, "--vkey", d.vkey(), "--allowed-signers", signers, "--allow-unlocked"); r.code != 1 ||
		!strings.Contains(r.stdout, "events.jsonl: index ") || !strings.Contains(r.stdout, "--grant-vkey") {
		t.Errorf("evidence verify without the grant key: %d %s %s", r.code, r.stdout, r.stderr)
	}
}
