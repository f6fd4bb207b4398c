package console_test

import (
	"context"
	"fmt"
	"html"
	"io"
	"net"
	"net/http"
	"net/url"
	"os/exec"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/auditledger/auditledger/events"
	"github.com/auditledger/auditledger/ledger/bus/emitter"
	"github.com/auditledger/auditledger/ledger/piikeys"
	"github.com/auditledger/auditledger/services/access"
	"github.com/auditledger/auditledger/services/approvals"
	"github.com/auditledger/auditledger/services/identity"
	"github.com/auditledger/auditledger/services/pgproxy"
	"github.com/auditledger/auditledger/test/natstest"
	"github.com/auditledger/auditledger/test/pgtest"
)

// TestInbox: a reviewer's inbox lists the pending approvals (statement,
// hash, requester, rule, expiry) and access requests; a decision made in
// the page goes through the API's routes, so the held statement is
// granted to the waiting proxy, a self-approval is refused with the
// API's reason, and the wrong role is refused. The page view records
// audit.accessed; its polls record again only what is new.
func TestInbox(t *testing.T) {
	f := newFixture(t)
	ctx := t.Context()
	dave, err := f.auth.Authenticate(ctx, "", mustToken(t, f, "dave", "dave-secret"))
	if err != nil {
		t.Fatal(err)
	}
	hold := func(statement string) *approvals.Request {
		r := &approvals.Request{ID: approvals.NewID(), Tenant: "acme", Rule: "ddl-needs-approval", Requester: dave, Target: events.Target{Kind: "postgres", Name: "orders"},
			SessionID: "pg-s9", Statement: statement, RequestedAt: time.Now().UTC(), ExpiresAt: time.Now().Add(30 * time.Minute).UTC()}
		if err := f.approvals.Open(ctx, r); err != nil {
			t.Fatal(err)
		}
		return r
	}
	held := hold("ALTER TABLE customers ADD COLUMN note text")
	own := hold("DROP INDEX customers_email")
	acc, err := f.access.Request(ctx, access.Ask{Tenant: "acme", Requester: dave, Target: "orders", Duration: 2 * time.Hour, Reason: "INC-77 restore orders"})
	if err != nil {
		t.Fatal(err)
	}
	accessed := func() int { return len(f.recorded(events.AuditAccessed)) }

	// The page: every field a reviewer decides on, one audit.accessed per
	// list read.
	bob := f.signIn(t, "bob", "bob-secret")
	before := accessed()
	code, body := get(t, bob, f.srv.URL+"/console/inbox")
	if code != 200 {
		t.Fatalf("the inbox: %d %s", code, body)
	}
	for _, want := range []string{held.Statement, held.StatementSHA256, approvals.Digest(own.Statement), "dave", "ddl-needs-approval", "postgres orders",
		time.Time(held.ExpiresAt).UTC().Format("2006-01-02 15:04:05Z"), acc.ID, "INC-77 restore orders", "2h0m0s", `hx-trigger="every 5s"`} {
		if !strings.Contains(html.UnescapeString(body), want) {
			t.Errorf("the inbox does not show %q", want)
		}
	}
	if n := accessed() - before; n != 2 {
		t.Fatalf("the inbox view recorded %d audit.accessed, want 2 (approvals, access requests)", n)
	}
	view := regexp.MustCompile(`/console/inbox/pending\?view=([A-Za-z0-9_-]+)`).FindStringSubmatch(body)
	csrf := regexp.MustCompile(`name="csrf" value="([^"]+)"`).FindStringSubmatch(body)
	if view == nil || csrf == nil {
		t.Fatal("no poll URL or CSRF token in the inbox")
	}
	poll := f.srv.URL + "/console/inbox/pending?view=" + view[1]

	// Polls of the same view are authorised but not recorded again.
	for range 3 {
		if code, frag := get(t, bob, poll); code != 200 || !strings.Contains(frag, held.ID) || strings.Contains(frag, "<html") {
			t.Fatalf("a poll: %d %s", code, frag)
		}
	}
	if n := accessed() - before; n != 2 {
		t.Fatalf("3 polls recorded %d more audit.accessed, want none", n-2)
	}
	// A poll showing something new records it (the approvals list only).
	third := hold("VACUUM FULL orders")
	if code, frag := get(t, bob, poll); code != 200 || !strings.Contains(frag, third.Statement) {
		t.Fatalf("a poll after a new approval: %d %s", code, frag)
	}
	if n := accessed() - before; n != 3 {
		t.Fatalf("a poll showing a new approval: %d audit.accessed since the view, want 3", n)
	}
	// A view this session does not hold is a new view, recorded.
	if code, _ := get(t, bob, f.srv.URL+"/console/inbox/pending?view=forged"); code != 200 || accessed()-before != 5 {
		t.Fatalf("a poll of an unknown view: %d, %d audit.accessed since the view, want 5", code, accessed()-before)
	}
	// Another person's poll of bob's view: their own reads, authorised and
	// recorded as theirs; alice (dba, no reviewing role) is refused.
	alice := f.signIn(t, "alice", "alice-secret")
	if code, frag := get(t, alice, poll); code != 403 || strings.Contains(frag, held.Statement) {
		t.Fatalf("alice polling bob's view: %d %s", code, frag)
	}
	if code, page := get(t, alice, f.srv.URL+"/console/inbox"); code != 403 || strings.Contains(page, held.Statement) || !strings.Contains(page, "needs the role") {
		t.Fatalf("alice's inbox: %d %s", code, page)
	}

	// Approve in the page (as htmx posts it); the proxy holding the
	// statement is granted.
	granted := make(chan *approvals.Request, 1)
	awaitCtx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	go func() {
		got, err := f.approvals.Await(awaitCtx, held)
		if err != nil {
			t.Errorf("await: %v", err)
		}
		granted <- got
	}()
	code, frag := post(t, bob, f.srv.URL+"/console/approvals/"+held.ID, url.Values{"csrf": {csrf[1]}, "view": {view[1]}, "decision": {"approve"}, "reason": {"CHG-7 reviewed"}}, true)
	if code != 200 || !strings.Contains(frag, "Approval "+held.ID+": approved") || strings.Contains(frag, `id="approval-`+held.ID+`"`) {
		t.Fatalf("approving in place: %d %s", code, frag)
	}
	if got := <-granted; got == nil || got.Status != approvals.Granted || got.Decider == nil || got.Decider.Subject != "bob" || got.Reason != "CHG-7 reviewed" {
		t.Fatalf("the proxy awaiting %s got %+v", held.ID, got)
	}
	f.waitRecorded(t, events.ApprovalGranted, held.ID)
	// A denial needs a reason: the API's refusal, shown in place.
	if code, frag := post(t, bob, f.srv.URL+"/console/approvals/"+third.ID, url.Values{"csrf": {csrf[1]}, "view": {view[1]}, "decision": {"deny"}}, true); code != 200 ||
		!strings.Contains(frag, "not decided: bad request: a denial needs a reason") || !strings.Contains(frag, `id="approval-`+third.ID+`"`) {
		t.Fatalf("a denial without a reason: %d %s", code, frag)
	}
	// Without the CSRF token: refused, nothing decided.
	if code, _ := post(t, bob, f.srv.URL+"/console/approvals/"+third.ID, url.Values{"decision": {"deny"}, "reason": {"x"}}, false); code != 403 {
		t.Fatalf("a decision without the CSRF token: %d", code)
	}

	// Self-approval: dave is an approver, but this is his own.
	daveCl := f.signIn(t, "dave", "dave-secret")
	_, page := get(t, daveCl, f.srv.URL+"/console/inbox")
	daveCSRF := regexp.MustCompile(`name="csrf" value="([^"]+)"`).FindStringSubmatch(page)
	code, page = post(t, daveCl, f.srv.URL+"/console/approvals/"+own.ID, url.Values{"csrf": {daveCSRF[1]}, "decision": {"approve"}, "reason": {"mine"}}, false)
	if code != 403 || !strings.Contains(page, "cannot decide their own") {
		t.Fatalf("a self-approval: %d %s", code, page)
	}
	f.waitRecorded(t, events.CommandBlocked, "cannot decide their own")
	// Carol (auditor, no target scope) sees an inbox without the
	// approvals held on targets outside her scope, and may not decide.
	carol := f.signIn(t, "carol", "carol-secret")
	_, page = get(t, carol, f.srv.URL+"/console/inbox")
	carolCSRF := regexp.MustCompile(`name="csrf" value="([^"]+)"`).FindStringSubmatch(page)
	if strings.Contains(page, own.Statement) || !strings.Contains(page, "Approvals (0)") || carolCSRF == nil {
		t.Fatalf("carol's inbox: %s", page)
	}
	code, page = post(t, carol, f.srv.URL+"/console/approvals/"+own.ID, url.Values{"csrf": {carolCSRF[1]}, "decision": {"approve"}, "reason": {"x"}}, false)
	if code != 403 || !strings.Contains(page, "needs the role approver") {
		t.Fatalf("an auditor approving: %d %s", code, page)
	}
	if r, _ := f.approvals.Get(ctx, own.ID); r.Status != approvals.Pending {
		t.Fatalf("after refused decisions, %s is %s", own.ID, r.Status)
	}

	// The access request, approved in place without JavaScript: the
	// answer is the inbox again.
	code, page = post(t, bob, f.srv.URL+"/console/access-requests/"+acc.ID, url.Values{"csrf": {csrf[1]}, "decision": {"approve"}, "reason": {"checked INC-77"}}, false)
	if code != 200 || !strings.Contains(page, "<h1>Inbox</h1>") || strings.Contains(page, `id="access-`+acc.ID+`"`) {
		t.Fatalf("approving the access request: %d %s", code, page)
	}
	if r, _ := f.access.Get(ctx, acc.ID); r.Status != access.Approved {
		t.Fatalf("access request %s is %s, want approved", acc.ID, r.Status)
	}
	// Dave may not approve his own access request either.
	acc2, err := f.access.Request(ctx, access.Ask{Tenant: "acme", Requester: dave, Target: "orders", Duration: time.Hour, Reason: "again"})
	if err != nil {
		t.Fatal(err)
	}
	code, page = post(t, daveCl, f.srv.URL+"/console/access-requests/"+acc2.ID, url.Values{"csrf": {daveCSRF[1]}, "decision": {"approve"}, "reason": {"mine"}}, false)
	if code != 403 || !strings.Contains(page, "own") {
		t.Fatalf("approving one's own access request: %d %s", code, page)
	}
}

// post posts form to u with cl, as htmx does when hx is set.
func post(t *testing.T, cl *http.Client, u string, form url.Values, hx bool) (int, string) {
	t.Helper()
	req, _ := http.NewRequest("POST", u, strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if hx {
		req.Header.Set("HX-Request", "true")
	}
	resp, err := cl.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// mustToken is user's access token from the provider (client
// credentials, as the development provider grants its users).
func mustToken(t *testing.T, f *fixture, user, secret string) string {
	t.Helper()
	tok, err := identity.ClientCredentialsToken(t.Context(), f.idp.Issuer, user, secret)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// TestInboxReleasesPsql: psql through the PostgreSQL gateway runs a
// statement its policy holds for approval; a reviewer approves it in the
// inbox and the waiting psql finishes, the statement run.
func TestInboxReleasesPsql(t *testing.T) {
	f := newFixture(t)
	ctx := t.Context()
	pg := pgtest.StartT(t)
	db := pg.NewDatabase(t)
	conn, err := pgx.Connect(ctx, pg.DSN(db))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	if _, err := conn.Exec(ctx, "CREATE TABLE orders (id int)"); err != nil {
		t.Fatal(err)
	}
	pol, err := pgproxy.ParsePolicy("policy.yaml", []byte("version: 1\napprove:\n  - id: schema-change\n    kinds: [ALTER]\n    groups: [dba]\n    timeout: 5m\n"))
	if err != nil {
		t.Fatal(err)
	}
	em, err := emitter.New(emitter.Config{JetStream: f.js, Timeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer em.Close()
	keys, err := piikeys.Open(ctx, f.js, 1)
	if err != nil {
		t.Fatal(err)
	}
	p, err := pgproxy.New(pgproxy.Config{Target: "orders", Tenant: "acme", Auth: f.auth, Policy: pol, Approvals: f.approvals, Emitter: em, Keys: keys, Upstream: pg.DSN(db)})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	pctx, cancel := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() { served <- p.Serve(pctx, ln) }()
	defer func() { cancel(); <-served }()

	host, port, _ := strings.Cut(ln.Addr().String(), ":")
	stmt := "ALTER TABLE orders ADD COLUMN note text"
	cmd := exec.Command("psql", "-X", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-c", stmt, "host="+host+" port="+port+" user=dave dbname="+db+" sslmode=disable")
	cmd.Env = append(cmd.Environ(), "PGPASSWORD="+mustToken(t, f, "dave", "dave-secret"))
	var out lockedBuffer // read while psql still writes to it
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	var held *approvals.Request
	natstest.CheckFor(t, 30*time.Second, 20*time.Millisecond, func() error {
		list, err := f.approvals.List(ctx, approvals.Pending)
		if err != nil {
			return err
		}
		if len(list) != 1 {
			return fmt.Errorf("%d pending approvals, want 1 (psql: %s)", len(list), out.String())
		}
		held = list[0]
		return nil
	})

	bob := f.signIn(t, "bob", "bob-secret")
	code, body := get(t, bob, f.srv.URL+"/console/inbox")
	if code != 200 || !strings.Contains(body, stmt) || !strings.Contains(body, approvals.Digest(stmt)) {
		t.Fatalf("the inbox: %d %s", code, body)
	}
	csrf := regexp.MustCompile(`name="csrf" value="([^"]+)"`).FindStringSubmatch(body)
	view := regexp.MustCompile(`name="view" value="([^"]+)"`).FindStringSubmatch(body)
	code, frag := post(t, bob, f.srv.URL+"/console/approvals/"+held.ID, url.Values{"csrf": {csrf[1]}, "view": {view[1]}, "decision": {"approve"}, "reason": {"CHG-8"}}, true)
	if code != 200 || !strings.Contains(frag, "approved") {
		t.Fatalf("approving: %d %s", code, frag)
	}
	if err := <-done; err != nil {
		t.Fatalf("psql after the approval in the inbox: %v\n%s", err, out.String())
	}
	var n int
	if err := conn.QueryRow(ctx, "SELECT count(*) FROM information_schema.columns WHERE table_name = 'orders' AND column_name = 'note'").Scan(&n); err != nil || n != 1 {
		t.Fatalf("the approved statement did not run: %d %v (psql: %s)", n, err, out.String())
	}
}
