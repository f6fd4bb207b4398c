package console_test

import (
	"context"
	"encoding/csv"
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/browser"
	"github.com/chromedp/cdproto/log"
	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/kb"

	"github.com/auditledger/auditledger/events"
	"github.com/auditledger/auditledger/ledger"
	"github.com/auditledger/auditledger/projections"
	"github.com/auditledger/auditledger/services/access"
	"github.com/auditledger/auditledger/services/approvals"
	"github.com/auditledger/auditledger/test/natstest"
)

// TestBrowser drives headless Chromium (Debian's chromium, which .ci/run
// installs) through the console: sign in on the provider's login page,
// filter, page past 10,000 events, open a session's timeline, export
// CSV and read it back; axe-core checks the pages (WCAG 2 A, AA). Screenshots go to $TEST_ARTIFACTS/console (else
// the test's temporary directory); with CONSOLE_DOCS_SCREENSHOTS=1 the
// key ones are written to docs/console/ too.
func TestBrowser(t *testing.T) {
	chrome, err := exec.LookPath("chromium")
	if err != nil {
		t.Fatal("chromium is not installed (apt-get install chromium; .ci/run installs it): the console's browser test needs it")
	}
	rec, sshID := recordSSHSession(t)
	f := newFixtureWith(t, rec)
	shots := t.TempDir()
	if d := os.Getenv("TEST_ARTIFACTS"); d != "" {
		shots = filepath.Join(d, "console")
		os.MkdirAll(shots, 0o755)
	}
	downloads := t.TempDir()

	opts := append(chromedp.DefaultExecAllocatorOptions[:], chromedp.ExecPath(chrome), chromedp.WindowSize(1280, 900))
	if os.Geteuid() == 0 {
		opts = append(opts, chromedp.NoSandbox)
	}
	actx, cancel := chromedp.NewExecAllocator(t.Context(), opts...)
	defer cancel()
	bctx, cancel := chromedp.NewContext(actx)
	defer cancel()

	// Every error the page logs (a CSP violation, a script error) fails
	// the test; downloads are reported done. (The first call starts the
	// browser: no timeout on its context.)
	var mu sync.Mutex
	var pageErrors []string
	done := map[string]bool{}
	if err := chromedp.Listen(bctx, func(ev any) {
		mu.Lock()
		defer mu.Unlock()
		switch e := ev.(type) {
		case *log.EventEntryAdded:
			if e.Entry.Level == log.EntryLevelError {
				pageErrors = append(pageErrors, e.Entry.Text+" "+e.Entry.URL)
			}
		case *runtime.EventExceptionThrown:
			pageErrors = append(pageErrors, e.ExceptionDetails.Text)
		}
	}); err != nil {
		t.Fatal(err)
	}
	if err := chromedp.ListenBrowser(bctx, func(ev any) {
		if e, ok := ev.(*browser.EventDownloadProgress); ok && e.State == browser.DownloadProgressStateCompleted {
			mu.Lock()
			done[e.GUID] = true
			mu.Unlock()
		}
	}); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(bctx, 10*time.Minute)
	defer cancel()
	run := func(what string, steps ...chromedp.Action[chromedp.Void]) {
		t.Helper()
		sctx, cancel := context.WithTimeout(ctx, 90*time.Second)
		defer cancel()
		if err := chromedp.Do(sctx, steps...); err != nil {
			loc, _ := chromedp.Run(ctx, chromedp.Location())
			html, _ := chromedp.Run(ctx, chromedp.OuterHTML(chromedp.CSS("body")))
			t.Fatalf("%s: %v (at %s: %.2000s)", what, err, loc, html)
		}
	}
	text := func(sel string) string {
		t.Helper()
		s, err := chromedp.Run(ctx, chromedp.Text(chromedp.CSS(sel)))
		if err != nil {
			t.Fatalf("text of %s: %v", sel, err)
		}
		return s
	}
	shot := func(name string, docs bool) {
		t.Helper()
		// The viewport, as a person sees it first (a full page of 1,000
		// rows would be megabytes).
		png, err := chromedp.Run(ctx, chromedp.CaptureScreenshot())
		if err == nil {
			err = os.WriteFile(filepath.Join(shots, name+".png"), png, 0o644)
		}
		if err == nil && docs && os.Getenv("CONSOLE_DOCS_SCREENSHOTS") == "1" {
			err = os.WriteFile(filepath.Join("..", "..", "docs", "console", name+".png"), png, 0o644)
		}
		if err != nil {
			t.Fatalf("screenshot %s: %v", name, err)
		}
	}
	css := func(s string) chromedp.CSS { return chromedp.CSS(s) }
	// axe checks the page against WCAG 2 A and AA (labels, contrast,
	// names, landmarks); injected through the DevTools protocol, which
	// the page's CSP does not govern, and never served by the console.
	axeSrc, err := os.ReadFile("testdata/axe-core/axe.min.js")
	if err != nil {
		t.Fatal(err)
	}
	axe := func(page string) {
		t.Helper()
		if _, err := chromedp.Run(ctx, chromedp.Evaluate[bool](string(axeSrc)+";true")); err != nil {
			t.Fatalf("axe on %s: %v", page, err)
		}
		found, err := chromedp.Run(ctx, chromedp.Evaluate[[]string](`axe.run(document, {runOnly: {type: "tag", values: ["wcag2a", "wcag2aa"]}}).then(r => ["passed " + r.passes.length + " rules"].concat(r.violations.map(v => v.id + ": " + v.help + " (" + v.nodes.map(n => n.target.join(" ")).slice(0, 3).join(", ") + ")")))`, chromedp.EvalAwaitPromise))
		if err != nil {
			t.Fatalf("axe on %s: %v", page, err)
		}
		// The first line counts the rules passed: a check that ran.
		if len(found) == 0 || !strings.HasPrefix(found[0], "passed ") || found[0] == "passed 0 rules" {
			t.Fatalf("axe did not run on %s: %v", page, found)
		}
		t.Logf("axe on %s: %s", page, found[0])
		for _, v := range found[1:] {
			t.Errorf("accessibility of %s: %s", page, v)
		}
	}

	// Sign in through the provider's login page; the first key press
	// reaches the skip link.
	run("open", chromedp.Navigate(f.srv.URL+"/console/"), chromedp.WaitVisible(css(`a.button`)), chromedp.KeyEvent(kb.Tab))
	active, err := chromedp.Run(ctx, chromedp.Evaluate[string](`document.activeElement.className`))
	if err != nil || active != "skip" {
		t.Errorf("the first Tab reached %q (%v), not the skip link", active, err)
	}
	// (The link's target, navigated to: a click that leaves for another
	// origin is not waited for by chromedp.)
	href, err := chromedp.Run(ctx, chromedp.AttributeValue(css(`main a.button`), "href"))
	if err != nil || href.Value != "/console/login" {
		t.Fatalf("the sign-in link: %+v %v", href, err)
	}
	run("sign-in navigate", chromedp.Navigate(f.srv.URL+href.Value))
	run("sign-in wait", chromedp.WaitVisible(css(`#username`)))
	shot("login", false)
	run("type the name", chromedp.SendKeys(css(`#username`), "carol"))
	run("type the password", chromedp.SendKeys(css(`#password`), "carol-secret"))
	run("submit", chromedp.Click(css(`button[type=submit]`)))
	run("signed in", chromedp.WaitVisible(css(`#results tbody tr[data-index]`)))
	axe("the sessions page")
	// Time to first render, reported (never asserted: a shared machine).
	paint := func(page string) {
		t.Helper()
		ms, err := chromedp.Run(ctx, chromedp.Evaluate[float64](`(performance.getEntriesByName("first-contentful-paint")[0] || {startTime: -1}).startTime`))
		if err != nil {
			t.Fatalf("first paint of %s: %v", page, err)
		}
		t.Logf("first contentful paint of %s: %.0f ms after navigation", page, ms)
	}
	paint("the sessions page")
	accessed := len(f.recorded(events.AuditAccessed))

	// Filter: masked statements, applied in place by htmx.
	run("filter by outcome", chromedp.SetValue(css(`#f-outcome`), "masked"), chromedp.Click(css(`#apply`)),
		chromedp.WaitVisible(`//caption[starts-with(normalize-space(.), "1 events")]`))
	if s := text(`#results`); strings.Contains(s, "DROP TABLE") || !strings.Contains(s, "mask-cards") {
		t.Fatalf("outcome masked shows: %s", s)
	}
	if loc, _ := chromedp.Run(ctx, chromedp.Location()); !strings.Contains(loc, "outcome=masked") {
		t.Fatalf("the filter is not in the address bar (%s): it could not be bookmarked", loc)
	}

	// Page through the load generator's 10,500 statements, 1,000 a page,
	// by the Next link: past the 10,000th.
	run("filter by who", chromedp.Navigate(f.srv.URL+"/console/sessions?limit=1000&who=loadgen"), chromedp.WaitVisible(`//caption[contains(., "1000 events")]`))
	seen := 0
	for page := 1; ; page++ {
		n, err := chromedp.Run(ctx, chromedp.Evaluate[int](`document.querySelectorAll('#results tbody tr[data-index]').length`))
		if err != nil {
			t.Fatal(err)
		}
		seen += n
		next, err := chromedp.Run(ctx, chromedp.AttributeValue(css(`#results nav > *`), "href"))
		if err != nil {
			t.Fatal(err)
		}
		if !next.Exists {
			if page != 11 {
				t.Fatalf("the last page is page %d, want 11", page)
			}
			if _, err := chromedp.Run(ctx, chromedp.Evaluate[bool](`window.scrollTo(0, 0), true`)); err != nil {
				t.Fatal(err)
			}
			shot("sessions-past-10000", true)
			break
		}
		u, _ := url.Parse(next.Value)
		after, _ := strconv.Atoi(u.Query().Get("after"))
		run(fmt.Sprintf("page %d", page+1), chromedp.Click(css(`#next`)), chromedp.WaitVisible(css(fmt.Sprintf(`#results tr[data-index="%d"]`, after+1))))
	}
	if seen != bulkEvents {
		t.Fatalf("paged through %d events, want %d", seen, bulkEvents)
	}
	// One audit.accessed per page view: the outcome filter, then 11
	// pages.
	if n := len(f.recorded(events.AuditAccessed)) - accessed; n != 1+11 {
		t.Fatalf("%d audit.accessed for 12 page views", n)
	}

	// A session's timeline, from the list.
	run("timeline", chromedp.Navigate(f.srv.URL+"/console/sessions?gateway=postgres-proxy&who=dave"),
		chromedp.Click(`//a[text()="pg-s1"]`, chromedp.NodeVisible), chromedp.WaitVisible(css(`#timeline`)))
	shot("timeline", true)
	axe("the timeline")
	tl := text(`#timeline`)
	for _, want := range []string{"SELECT email, card FROM customers", "mask-cards", "result_hmac", "DDL is not allowed", "apr-1", "CHG-1"} {
		if !strings.Contains(tl, want) {
			t.Fatalf("the timeline lacks %q: %s", want, tl)
		}
	}

	// Replay the terminal session the SSH gateway recorded: the player
	// plays the API's cast (at 16×) to its end; what the gateway redacted
	// stays redacted; going back to 0 clears the screen.
	accessed = len(f.recorded(events.AuditAccessed))
	run("replay", chromedp.Navigate(f.srv.URL+"/console/sessions/acme/"+sshID), chromedp.Click(css(`#replay`), chromedp.NodeVisible),
		chromedp.WaitVisible(css(`#player[data-state="ready"] #play`)))
	if n := len(f.recorded(events.AuditAccessed)) - accessed; n != 2 {
		t.Fatalf("%d audit.accessed for a timeline and a replay", n)
	}
	paint("the replay")
	run("play", chromedp.SetValue(css(`#speed`), "16"), chromedp.Click(css(`#play`)), chromedp.WaitVisible(css(`#player[data-state="ended"]`)))
	screen := text(`#screen`)
	for _, want := range []string{"the quick brown fox jumps", "done-42", "card [REDACTED:credit_card]", "logout"} {
		if !strings.Contains(screen, want) {
			t.Fatalf("the replayed screen lacks %q:\n%s", want, screen)
		}
	}
	if strings.Contains(screen, sshSecret) || strings.ContainsAny(screen, "\x1b\r") || strings.Contains(screen, "[1m") || strings.Contains(screen, "2004") {
		t.Fatalf("the replayed screen shows a secret or raw escape sequences:\n%q", screen)
	}
	if lines := strings.Count(screen, "\n") + 1; lines > 24 {
		t.Fatalf("the 80×24 terminal shows %d lines", lines)
	}
	shot("replay", true)
	axe("the replay")
	rewound, err := chromedp.Run(ctx, chromedp.Evaluate[string](`(() => { const p = document.getElementById("position"); p.value = "0"; p.dispatchEvent(new Event("input")); return document.getElementById("screen").textContent })()`))
	if err != nil || strings.Contains(rewound, "logout") {
		t.Fatalf("the screen at 0 s: %q %v", rewound, err)
	}

	// Check an event's inclusion in the browser: from the timeline, the
	// proof page fetches the proof and checkpoint and walks it with
	// WebCrypto; a server that changes the proof is caught.
	accessed = len(f.recorded(events.AuditAccessed))
	run("proof", chromedp.Navigate(f.srv.URL+"/console/sessions/acme/pg-s1"), chromedp.Click(`//li[contains(@class,"ev-mask.applied")]//a[text()="check its inclusion"]`, chromedp.NodeVisible),
		chromedp.WaitVisible(css(`#proof[data-state="verified"]`)))
	if s := text(`#proof-result`); !strings.HasPrefix(s, "Verified: ") || !strings.Contains(s, "console.test/log") {
		t.Fatalf("the proof check: %s", s)
	}
	paint("the proof page")
	if s := text(`#proof-steps`); !strings.Contains(s, "the proof leads to the checkpoint's root") || !strings.Contains(s, "step 1: sibling") || strings.Contains(s, "✗") {
		t.Fatalf("the proof's steps: %s", s)
	}
	// The timeline, the event's page and the proof: each a recorded read.
	if n := countContaining(f.recorded(events.AuditAccessed)[accessed:], `"inclusion proof"`); n != 1 {
		t.Fatalf("%d audit.accessed of the inclusion proof", n)
	}
	if sig, err := chromedp.Run(ctx, chromedp.AttributeValue(css(`#proof`), "data-signature")); err != nil || sig.Value != "unchecked" {
		t.Fatalf("the signature without a pinned key: %+v %v", sig, err)
	}
	// With the log's key pinned, the checkpoint's signature is checked
	// too (WebCrypto Ed25519).
	run("pin the key", chromedp.SendKeys(css(`#vkey`), f.signer.Verifier().String()), chromedp.Click(css(`#proof-run`)),
		chromedp.WaitVisible(css(`#proof[data-state="verified"][data-signature="verified"]`)))
	if s := text(`#proof-result`); !strings.Contains(s, "signed by the pinned key console.test/log") {
		t.Fatalf("the proof check with a pinned key: %s", s)
	}
	shot("proof", true)
	axe("the proof page")
	f.tamper.Store(true)
	run("tampered proof", chromedp.Click(css(`#proof-run`), chromedp.NodeVisible), chromedp.WaitVisible(css(`#proof[data-state="failed"]`)))
	f.tamper.Store(false)
	if s := text(`#proof-result`); !strings.HasPrefix(s, "Failed: the proof leads to root") || !strings.Contains(s, "not the checkpoint's") {
		t.Fatalf("a tampered proof: %s", s)
	}
	shot("proof-tampered", true)
	axe("a failed proof")
	// The log grows: the next check finds the new checkpoint consistent
	// with the one this browser kept; a consistency proof the server
	// changed shows the log as rewritten.
	f.grow(t, 5)
	run("after growth", chromedp.Reload(), chromedp.WaitVisible(css(`#proof[data-state="verified"][data-signature="verified"]`)))
	if s := text(`#proof-steps`); !strings.Contains(s, "consistent with the checkpoint this browser saw before (size ") {
		t.Fatalf("the check after the log grew: %s", s)
	}
	f.grow(t, 5)
	f.tamperConsistency.Store(true)
	run("a rewritten log", chromedp.Reload(), chromedp.WaitVisible(css(`#proof[data-state="failed"]`)))
	f.tamperConsistency.Store(false)
	if s := text(`#proof-result`); !strings.Contains(s, "is not consistent with the one of size") {
		t.Fatalf("a rewritten log: %s", s)
	}

	// Another key of the same name: the checkpoint is not signed by it.
	_, other, err := ledger.GenerateKey(nil, "console.test/log")
	if err != nil {
		t.Fatal(err)
	}
	run("pin another key", chromedp.SetValue(css(`#vkey`), other), chromedp.Click(css(`#proof-run`)), chromedp.WaitVisible(css(`#proof[data-state="failed"]`)))
	if s := text(`#proof-result`); !strings.Contains(s, "no signature by the pinned key") {
		t.Fatalf("a checkpoint checked with another key: %s", s)
	}

	// Ledger health: the newest checkpoint, a full verification, and
	// the other processes: the writers and forwarders withheld from
	// carol (acme's auditor; they are the installation's), the
	// producers of carol's tenants.
	if _, err := projections.VerifyNow(t.Context(), projections.Config{DB: f.db, Store: f.store, Verifier: f.signer.Verifier()}); err != nil {
		t.Fatal(err)
	}
	f.writerAndForwarder(t)
	run("health", chromedp.Click(`//nav//a[text()="Health"]`, chromedp.NodeVisible), chromedp.WaitVisible(css(`#verification[data-ok="true"]`)))
	if s := text(`#checkpoint`); !strings.Contains(s, "console.test/log") {
		t.Fatalf("the health page's checkpoint: %s", s)
	}
	if s := text(`#processes-withheld`); !strings.Contains(s, "scope over every tenant") || strings.Contains(s, "writer-test") {
		t.Fatalf("the health page's writers and forwarders, for carol: %s", s)
	}
	if s := text(`#producers`); !strings.Contains(s, "gw-1") || strings.Contains(s, "globex") {
		t.Fatalf("the health page's producers (carol's tenants): %s", s)
	}
	shot("health", true)
	axe("the health page")

	// Charts of acme's 1 December, from the navigation's form: the
	// fixture's mask, block and approval, and the load generator's
	// statements, in the charts and their tables; one recorded read.
	accessed = len(f.recorded(events.AuditAccessed))
	run("charts form", chromedp.Click(`//nav//a[text()="Charts"]`, chromedp.NodeVisible), chromedp.WaitVisible(css(`#charts-form`)),
		chromedp.SendKeys(css(`#c-tenant`), "acme"), chromedp.SetValue(css(`#c-to`), "2026-12-01"), chromedp.Click(css(`#show`)),
		chromedp.WaitVisible(css(`#events svg[role=img]`)))
	if n := len(f.recorded(events.AuditAccessed)) - accessed; n != 1 {
		t.Fatalf("%d audit.accessed for one view of the charts", n)
	}
	if loc, _ := chromedp.Run(ctx, chromedp.Location()); !strings.Contains(loc, "/console/charts/acme?") || !strings.Contains(loc, "to=2026-12-01") {
		t.Fatalf("the charts' address: %s", loc)
	}
	table := func(id string) map[string][]string {
		t.Helper()
		rows, err := chromedp.Run(ctx, chromedp.Evaluate[[][]string](`Array.from(document.querySelectorAll("#`+id+` tr")).map(r => Array.from(r.cells).map(c => c.textContent.trim()))`))
		if err != nil || len(rows) < 2 {
			t.Fatalf("the table %s: %v %v", id, rows, err)
		}
		out := map[string][]string{}
		for _, r := range rows {
			out[r[0]] = r[1:]
		}
		return out
	}
	ev := table("events-table")
	cols := ev["Hour (UTC)"]
	at := func(row []string, col string) string {
		t.Helper()
		for i, c := range cols {
			if c == col && i < len(row) {
				return row[i]
			}
		}
		t.Fatalf("no column %s in %v (row %v)", col, cols, row)
		return ""
	}
	if got := at(ev["Dec 1 11:00"], "command.executed"); got != "10,500" {
		t.Errorf("the load generator's hour: %s statements, want 10,500", got)
	}
	if got := at(ev["Dec 1 10:00"], "command.executed"); got != "4" {
		t.Errorf("the gateways' hour: %s statements, want 4", got)
	}
	if mb := table("outcomes-table"); !slices.Equal(mb["Dec 1 10:00"], []string{"1", "1"}) || !slices.Equal(mb["Total"], []string{"1", "1"}) {
		t.Errorf("masks and blocks: %v", mb)
	}
	if wt := table("waits-table"); wt["0 s to 1 min"][0] != "1" || !slices.Equal(wt["Total"], []string{"1", "0", "0", "0"}) {
		t.Errorf("approval waits (apr-1 granted after a second): %v", wt)
	}
	if s := text(`#total`); s != "10,512" {
		t.Errorf("the period's events: %s, want 10,512", s)
	}
	// The bars are drawn: one per non-zero cell of each stacked series.
	if n, err := chromedp.Run(ctx, chromedp.Evaluate[int](`document.querySelectorAll("#outcomes svg[role=img] rect").length`)); err != nil || n != 2 {
		t.Errorf("the masks and blocks chart draws %d bars (%v), want 2", n, err)
	}
	shot("charts", true)
	axe("the charts")

	// Export the load generator's events as CSV, and read the file.
	eventsOn := true
	if _, err := chromedp.CallBrowser(ctx, browser.SetDownloadBehavior, browser.SetDownloadBehaviorParams{
		Behavior: browser.SetDownloadBehaviorBehaviorAllowAndName, DownloadPath: downloads, EventsEnabled: &eventsOn}); err != nil {
		t.Fatal(err)
	}
	downloaded := func(what string) string {
		t.Helper()
		for {
			select {
			case <-ctx.Done():
				t.Fatalf("the download of %s did not complete", what)
			case <-time.After(100 * time.Millisecond):
			}
			mu.Lock()
			for g := range done {
				delete(done, g)
				mu.Unlock()
				return filepath.Join(downloads, g)
			}
			mu.Unlock()
		}
	}
	run("export", chromedp.Navigate(f.srv.URL+"/console/sessions?who=loadgen&tenant=acme"), chromedp.WaitVisible(css(`#export-csv`)), chromedp.Click(css(`#export-csv`)))
	file := downloaded("the CSV export")
	fh, err := os.Open(file)
	if err != nil {
		t.Fatal(err)
	}
	rows, err := csv.NewReader(fh).ReadAll()
	fh.Close()
	if err != nil || len(rows) != bulkEvents+1 || rows[1][7] != "loadgen" || rows[1][4] != "command.executed" || !strings.HasPrefix(rows[1][14], `{"version":1`) {
		t.Fatalf("the downloaded CSV: %v, %d rows", err, len(rows))
	}

	// Sign out: the form posts the CSRF token; the next page needs a
	// sign-in again.
	run("sign out", chromedp.Click(`//button[text()="Sign out"]`), chromedp.WaitVisible(css(`main a.button[href="/console/login"]`)),
		chromedp.Navigate(f.srv.URL+"/console/sessions"), chromedp.WaitVisible(css(`#refusal`)))
	if s := text(`#refusal`); !strings.Contains(s, "no console session") {
		t.Fatalf("after sign-out: %s", s)
	}
	axe("a refusal")

	// Evidence: gina, globex's auditor, asks for her tenant's bundle of
	// the last 30 days in the page, refreshes until it is ready,
	// downloads it, and it verifies offline.
	run("gina signs in", chromedp.Navigate(f.srv.URL+"/console/login"), chromedp.WaitVisible(css(`#username`)), chromedp.SendKeys(css(`#username`), "gina"),
		chromedp.SendKeys(css(`#password`), "gina-secret"), chromedp.Click(css(`button[type=submit]`)), chromedp.WaitVisible(css(`#results`)))
	run("evidence", chromedp.Click(`//nav//a[text()="Evidence"]`, chromedp.NodeVisible), chromedp.WaitVisible(css(`#evidence-form`)),
		chromedp.SendKeys(css(`#e-tenant`), "globex"))
	axe("the evidence page")
	// The build is held at its first read of the events (a lock on the
	// table) so that the page is seen following it: the page's script
	// streams its progress, then loads the page again when it ends.
	lock, err := f.db.Begin(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	defer lock.Rollback(context.WithoutCancel(t.Context()))
	if _, err := lock.Exec(t.Context(), `LOCK TABLE events IN ACCESS EXCLUSIVE MODE`); err != nil {
		t.Fatal(err)
	}
	run("build", chromedp.Click(css(`#build`)), chromedp.WaitVisible(css(`#bundle[data-following="yes"][data-status="building"]`)))
	shot("evidence-building", false)
	axe("a bundle building")
	if err := lock.Commit(t.Context()); err != nil {
		t.Fatal(err)
	}
	run("the build ends", chromedp.WaitVisible(css(`#bundle[data-status="ready"]`)))
	shot("evidence", true)
	axe("a ready bundle")
	loc, _ := chromedp.Run(ctx, chromedp.Location())
	bundleID := loc[strings.LastIndex(loc, "/")+1:]
	// Followed without a read per look: the page opened (one status
	// read), the stream (one progress read), the page again at the end.
	natstest.CheckFor(t, 30*time.Second, 20*time.Millisecond, func() error {
		var reads, streams int
		for _, s := range f.recorded(events.AuditAccessed) {
			if s.Payload["bundle_id"] != bundleID {
				continue
			}
			switch s.Payload["resource"] {
			case "evidence status":
				reads++
			case "evidence progress":
				streams++
			}
		}
		if reads != 2 || streams != 1 {
			return fmt.Errorf("%d status reads and %d progress streams recorded, want 2 and 1", reads, streams)
		}
		return nil
	})
	run("download the bundle", chromedp.Click(css(`#download`)))
	bundle, err := os.ReadFile(downloaded("the bundle"))
	if err != nil {
		t.Fatal(err)
	}
	checkBundle(t, f, bundle, bundleID, "globex", 1)
	// The list of bundles built (the API's GET /v1/evidence) links it
	// and its download.
	run("all bundles", chromedp.Click(`//a[text()="All bundles"]`, chromedp.NodeVisible),
		chromedp.WaitVisible(css(`#bundles a[href="/console/evidence/`+bundleID+`/download"]`)))
	if s := text(`#bundles`); !strings.Contains(s, bundleID) || !strings.Contains(s, "globex") || !strings.Contains(s, "ready") {
		t.Fatalf("the list of bundles: %s", s)
	}
	axe("the list of bundles")
	// acme's charts are not gina's to see: the API's refusal.
	run("gina's charts of acme", chromedp.Navigate(f.srv.URL+"/console/charts/acme?range=7d&to=2026-12-01"), chromedp.WaitVisible(css(`#refusal`)))
	if s := text(`#refusal`); !strings.Contains(s, "403") || !strings.Contains(s, `tenant "acme": outside your scope`) {
		t.Fatalf("gina's charts of acme: %s", s)
	}
	if n, err := chromedp.Run(ctx, chromedp.Evaluate[int](`document.querySelectorAll("svg[role=img]").length`)); err != nil || n != 0 {
		t.Fatalf("gina's refusal draws %d charts (%v)", n, err)
	}
	axe("a refused chart")

	// The reviewers' inbox: bob signs in; a statement a proxy holds
	// appears by itself (htmx polls the pending list); he approves it in
	// place and the proxy awaiting it is granted.
	dave, err := f.auth.Authenticate(t.Context(), "", mustToken(t, f, "dave", "dave-secret"))
	if err != nil {
		t.Fatal(err)
	}
	hold := func(statement string) *approvals.Request {
		r := &approvals.Request{ID: approvals.NewID(), Tenant: "acme", Rule: "ddl-needs-approval", Requester: dave, Target: events.Target{Kind: "postgres", Name: "orders"},
			SessionID: "pg-s9", Statement: statement, RequestedAt: time.Now().UTC(), ExpiresAt: time.Now().Add(30 * time.Minute).UTC()}
		if err := f.approvals.Open(t.Context(), r); err != nil {
			t.Fatal(err)
		}
		return r
	}
	first := hold("ALTER TABLE customers ADD COLUMN note text")
	asked, err := f.access.Request(t.Context(), access.Ask{Tenant: "acme", Requester: dave, Target: "orders", Duration: 2 * time.Hour, Reason: "INC-77 restore orders"})
	if err != nil {
		t.Fatal(err)
	}
	run("bob signs in", chromedp.Navigate(f.srv.URL+"/console/login"), chromedp.WaitVisible(css(`#username`)), chromedp.SendKeys(css(`#username`), "bob"),
		chromedp.SendKeys(css(`#password`), "bob-secret"), chromedp.Click(css(`button[type=submit]`)), chromedp.WaitVisible(css(`#results`)))
	accessed = len(f.recorded(events.AuditAccessed))
	run("inbox", chromedp.Click(`//nav//a[text()="Inbox"]`, chromedp.NodeVisible), chromedp.WaitVisible(css(`#approval-`+first.ID)))
	live := hold("UPDATE orders SET status = 'held' WHERE id = 42")
	run("live update", chromedp.WaitVisible(css(`#approval-`+live.ID)))
	run("type a reason", chromedp.SendKeys(css(`#reason-`+live.ID), "CHG-9 reviewed"))
	shot("inbox", true)
	axe("the inbox")
	granted := make(chan *approvals.Request, 1)
	go func() {
		got, err := f.approvals.Await(ctx, live)
		if err != nil {
			t.Errorf("await: %v", err)
		}
		granted <- got
	}()
	run("approve", chromedp.Click(css(`#approval-`+live.ID+` button[value=approve]`)), chromedp.WaitVisible(css(`#notice`)))
	if s := text(`#notice`); s != "Approval "+live.ID+": approved" {
		t.Fatalf("after approving in the page: %q", s)
	}
	if got := <-granted; got == nil || got.Status != approvals.Granted || got.Decider == nil || got.Decider.Subject != "bob" || got.Reason != "CHG-9 reviewed" {
		t.Fatalf("the proxy awaiting %s got %+v", live.ID, got)
	}
	if s := text(`#pending`); strings.Contains(s, live.Statement) || !strings.Contains(s, first.Statement) {
		t.Fatalf("the inbox after the approval: %s", s)
	}
	// The view recorded its two lists, and the poll that showed the new
	// approval recorded that; no other poll recorded anything.
	if n := len(f.recorded(events.AuditAccessed)) - accessed; n != 3 {
		t.Fatalf("%d audit.accessed for the inbox view and its polls, want 3", n)
	}

	// bob grants dave's access request in place; once the writer has
	// sealed what the API and brokers recorded, the charts of the last
	// 24 hours count the grant for dave.
	run("grant access", chromedp.SendKeys(css(`#reason-`+asked.ID), "INC-77 reviewed"), chromedp.Click(css(`#access-`+asked.ID+` button[value=approve]`)),
		chromedp.WaitVisible(`//*[@id="notice" and contains(., "`+asked.ID+`")]`))
	f.sealBus(t)
	run("charts of the last day", chromedp.Click(`//nav//a[text()="Charts"]`, chromedp.NodeVisible), chromedp.WaitVisible(css(`#charts-form`)),
		chromedp.SendKeys(css(`#c-tenant`), "acme"), chromedp.Click(css(`#show`)), chromedp.WaitVisible(css(`#grants svg[role=img]`)))
	if gr := table("grants-table"); !slices.Equal(gr["dave"], []string{"1"}) || !slices.Equal(gr["Total"], []string{"1"}) {
		t.Errorf("grants per person: %v", gr)
	}
	if tt := table("types-table"); !slices.Equal(tt["access.granted"], []string{"1"}) || !slices.Equal(tt["approval.granted"], []string{"1"}) {
		t.Errorf("the last day's types: %v", tt)
	}
	axe("the charts of the last day")
	mu.Lock()
	defer mu.Unlock()
	// The 401 of the last page is logged by the browser as a failed
	// resource, and so are the 403 of gina's refused charts and the
	// provider's missing /favicon.ico: the only errors allowed.
	for _, e := range pageErrors {
		if !strings.Contains(e, "401") && !strings.HasSuffix(e, "/favicon.ico") && !(strings.Contains(e, "403") && strings.HasSuffix(e, "/console/charts/acme?range=7d&to=2026-12-01")) {
			t.Errorf("the page logged an error: %s", e)
		}
	}
}
