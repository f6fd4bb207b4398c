package alerts

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/auditledger/auditledger/events"
	"github.com/auditledger/auditledger/ledger/bus/emitter"
	"github.com/auditledger/auditledger/services/access"
	"github.com/auditledger/auditledger/services/approvals"
)

var update = flag.Bool("update", false, "rewrite testdata/*.json")

// Escaping comes first and the cut never splits an escape or a UTF-8
// character, whatever the limit.
func TestEscapeThenFit(t *testing.T) {
	raw := "a&b<c>dé€😀&&<<>>" + strings.Repeat("<é&", 20)
	esc := Escape(raw)
	if strings.ContainsAny(strings.NewReplacer("&amp;", "", "&lt;", "", "&gt;", "").Replace(esc), "&<>") {
		t.Fatalf("unescaped control characters left: %q", esc)
	}
	for max := 1; max <= utf8.RuneCountInString(esc)+2; max++ {
		got := Fit(esc, max)
		if n := utf8.RuneCountInString(got); n > max {
			t.Fatalf("Fit(%d): %d characters", max, n)
		}
		if !utf8.ValidString(got) {
			t.Fatalf("Fit(%d) split a character: %q", max, got)
		}
		body := strings.TrimSuffix(got, "…")
		// Every & left begins a whole escape.
		for i := strings.IndexByte(body, '&'); i >= 0; i = strings.IndexByte(body, '&') {
			if !strings.HasPrefix(body[i:], "&amp;") && !strings.HasPrefix(body[i:], "&lt;") && !strings.HasPrefix(body[i:], "&gt;") {
				t.Fatalf("Fit(%d) split an escape: %q", max, got)
			}
			body = body[i+1:]
		}
		if got != esc && !strings.HasSuffix(got, "…") {
			t.Fatalf("Fit(%d) cut without saying so: %q", max, got)
		}
	}
	if Fit("abc", 3) != "abc" || Fit("abcd", 3) != "ab…" || Fit("a&amp;bc", 6) != "a…" || Fit("a&amp;bc", 7) != "a&amp;…" {
		t.Fatalf("Fit: %q %q %q %q", Fit("abc", 3), Fit("abcd", 3), Fit("a&amp;bc", 6), Fit("a&amp;bc", 7))
	}
	if Cut("ééé", 2) != "é…" || Cut("ééé", 3) != "ééé" {
		t.Fatalf("Cut: %q", Cut("ééé", 2))
	}
}

// A statement of 60 KB of characters that escape, and a title at its
// limit: the message keeps its text and every block, each cut to Slack's
// limits, valid UTF-8, no escape split.
func TestOversizedBlockIsCutNotDropped(t *testing.T) {
	rs := mustRules(t, RuleConfig{ID: "big", Title: strings.Repeat("<", 150), To: []string{"chat"}})
	huge := strings.Repeat("<é&>", 15000)
	p, _ := json.Marshal(map[string]string{"rule": "no-drop", "reason": strings.Repeat("&", 4000), "statement": huge})
	a := &Alert{ID: "alert/big/1", Rule: rs[0], Index: 1, SealedAt: t0, Event: event("e", events.CommandBlocked, t0, string(p))}
	b, err := Slack(a, "")
	if err != nil {
		t.Fatal(err)
	}
	var m SlackMessage
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	if m.Text == "" || utf8.RuneCountInString(m.Text) > MaxText || len(m.Blocks) != 4 {
		t.Fatalf("text %d characters, %d blocks", utf8.RuneCountInString(m.Text), len(m.Blocks))
	}
	for i, bl := range m.Blocks {
		texts := bl.Elements
		if bl.Text != nil {
			texts = append(texts, bl.Text)
		}
		for _, x := range texts {
			if n := utf8.RuneCountInString(x.Text); n > MaxSectionText || !utf8.ValidString(x.Text) {
				t.Fatalf("block %d: %d characters", i, n)
			}
			if strings.ContainsAny(strings.NewReplacer("&amp;", "", "&lt;", "", "&gt;", "").Replace(x.Text), "&<>") {
				t.Fatalf("block %d: a raw & < > or a split escape", i)
			}
		}
	}
	if !strings.Contains(m.Blocks[1].Text.Text, "no-drop") || !strings.HasPrefix(m.Blocks[2].Text.Text, "*statement:*\n```&lt;é&amp;&gt;") {
		t.Fatal("the detail blocks lost their beginning")
	}
}

// The messages a Slack-compatible webhook receives, byte for byte
// (testdata/*.json; go test -update rewrites them).
func TestSlackGolden(t *testing.T) {
	rs := mustRules(t,
		RuleConfig{ID: "blocked-prod", Title: "Blocked command on production", Severity: "high", Match: MatchConfig{Types: []string{"command.blocked"}}, To: []string{"chat"}},
		RuleConfig{ID: "approvals", Title: "Approval pending", Severity: "info", Match: MatchConfig{Types: []string{"approval.requested"}}, To: []string{"chat"}},
		RuleConfig{ID: "logins", Title: "Failed logins", Match: MatchConfig{Types: []string{"authn.failed"}}, Rate: &RateConfig{Count: 5, Within: "1m", Key: "payload.user"}, To: []string{"chat"}},
	)
	sealed := t0.Add(150 * time.Millisecond)
	cases := map[string]*Alert{
		"blocked": {ID: "alert/blocked-prod/41", Rule: rs[0], Index: 41, SealedAt: sealed,
			Event: event("h-3", events.CommandBlocked, t0, `{"rule":"no-drop","reason":"drops need a ticket <OPS-1> & approval","kind":"DROP","statement":"DROP TABLE orders; -- <!channel> & co"}`)},
		"approval": {ID: "alert/approvals/42", Rule: rs[1], Index: 42, SealedAt: sealed,
			Event: event("p-1", events.ApprovalRequested, t0, `{"approval_id":"apr-7","rule":"schema-change","reason":"DDL needs a second person","statement":"ALTER TABLE orders ADD c int","statement_sha256":"0123456789abcdef0123","expires_at":"2026-11-27T10:15:00Z"}`)},
		"rate": {ID: "alert/logins/43", Rule: rs[2], Index: 43, SealedAt: sealed, Suppressed: 2,
			Rate:  &RateHit{Count: 5, Within: time.Minute, Key: "payload.user", Value: "bob"},
			Event: event("a-5", events.AuthnFailed, t0, `{"user":"bob","reason":"password authentication failed","client_addr":"10.0.0.9:5555"}`)},
		"injection": injected(rs[2]),
	}
	for name, a := range cases {
		b, err := Slack(a, "https://auditledger.example.com")
		if err != nil {
			t.Fatal(err)
		}
		golden(t, "slack-"+name+".json", b)
	}
}

// accessEvent is the event the access broker records for r's transition
// (access.Event, with what Request, BreakGlass and a grant add).
func accessEvent(t *testing.T, r *access.Request, typ events.Type, actor events.Actor, step string) *events.Event {
	t.Helper()
	extra := map[string]any{"reason": r.Reason}
	if typ == events.AccessGranted {
		extra = access.GrantedPayload(r, len(r.Approvals))
	}
	ev, err := access.Event(r, typ, actor, step, t0, events.Source{Kind: "api", Instance: "api-1"}, extra)
	if err != nil {
		t.Fatal(err)
	}
	return ev
}

var oncall = events.Actor{Issuer: "https://idp.example.com", Subject: "dave", Kind: events.Human, Groups: []string{"oncall"}}

// An access request, as the broker records it, tells its reviewers how
// to decide it, as an approval request does; a break-glass grant shows
// what was granted, until when, and that it is break-glass. Byte for
// byte in testdata/slack-access-*.json.
func TestAccessAlertsGolden(t *testing.T) {
	rs := mustRules(t, RuleConfig{ID: "access", Title: "Access request pending", Severity: "info", Match: MatchConfig{Types: []string{"access.requested"}}, To: []string{"chat"}})
	byID := map[string]*Rule{}
	for _, r := range rs {
		byID[r.ID] = r
	}
	req := &access.Request{ID: "acc-3f2a9c01b7e4", Tenant: "acme", Rule: "prod-db", Requester: events.Actor{Issuer: "https://idp.example.com", Subject: "alice", Kind: events.Human, Groups: []string{"dev"}},
		Target: "orders", Reason: "incident 12: orders stuck", DurationSec: 7200, RequestedAt: t0, ExpiresAt: t0.Add(time.Hour), Status: access.Pending}
	glass := &access.Request{ID: "acc-9d0e1f2a3b4c", Tenant: "acme", Rule: "prod-db", Requester: oncall, Target: "orders", Reason: "outage: orders down <INC-7>",
		DurationSec: 1800, RequestedAt: t0, ExpiresAt: t0, Status: access.Approved, BreakGlass: true,
		NotBefore: t0, NotAfter: t0.Add(30 * time.Minute), GrantedAt: t0, Signature: "— api.test/approvals sig\n"}
	sealed := t0.Add(150 * time.Millisecond)
	cases := map[string]*Alert{
		"access-requested": {ID: "alert/access/9", Rule: byID["access"], Index: 9, SealedAt: sealed, Event: accessEvent(t, req, events.AccessRequested, req.Requester, "requested")},
		"break-glass":      {ID: "alert/break-glass/10", Rule: byID[BreakGlassRule], Index: 10, SealedAt: sealed, Event: accessEvent(t, glass, events.AccessGranted, oncall, "granted")},
	}
	for name, a := range cases {
		if !a.Rule.Matches(a.Event) {
			t.Fatalf("%s: rule %s does not match the broker's %s", name, a.Rule.ID, a.Event.Type)
		}
		b, err := Slack(a, "https://al.example.com/")
		if err != nil {
			t.Fatal(err)
		}
		golden(t, "slack-"+name+".json", b)
	}
	b, _ := Slack(cases["access-requested"], "https://al.example.com/")
	for _, want := range []string{"auditledger access approve acc-3f2a9c01b7e4 --reason", "auditledger access deny acc-3f2a9c01b7e4",
		"POST https://al.example.com/v1/access-requests/acc-3f2a9c01b7e4/approve", "*access_id:* `acc-3f2a9c01b7e4`", "*duration_seconds:* `7200`"} {
		if !strings.Contains(string(b), want) {
			t.Errorf("access request alert: no %q in %s", want, b)
		}
	}
	b, _ = Slack(cases["break-glass"], "https://al.example.com/")
	for _, want := range []string{"*break_glass:* `true`", "*not_after:* `2026-11-27T10:30:00Z`", "*access_id:* `acc-9d0e1f2a3b4c`", "CRITICAL"} {
		if !strings.Contains(string(b), want) {
			t.Errorf("break-glass alert: no %q in %s", want, b)
		}
	}
	if strings.Contains(string(b), "To decide") {
		t.Errorf("a grant has nothing to decide: %s", b)
	}
}

// Every payload member an alert reads from an event, and every member
// Detail shows, is one its producer records: the broker's access events
// and the approvals' approval.requested (a misspelt member would be
// silently absent from every alert).
func TestDetailReadsWhatProducersRecord(t *testing.T) {
	r := &access.Request{ID: "acc-1", Tenant: "acme", Rule: "r", Target: "orders", Reason: "x", DurationSec: 60, RequestedAt: t0, ExpiresAt: t0,
		Start: t0.Add(time.Hour), Status: access.Approved, BreakGlass: true, NotBefore: t0, NotAfter: t0.Add(time.Minute), Signature: "s"}
	recorded := map[string]bool{}
	for _, typ := range []events.Type{events.AccessRequested, events.AccessGranted} {
		var p map[string]any
		json.Unmarshal(accessEvent(t, r, typ, oncall, "x").Payload, &p)
		for k := range p {
			recorded[k] = true
		}
	}
	for k := range approvals.RequestedPayload(&approvals.Request{ID: "apr-1", Statement: "SELECT 1", ExpiresAt: t0}) {
		recorded[k] = true
	}
	// What the gateways record for blocks and failed logins (FORMAT §1.1).
	for _, k := range []string{"reason", "kind", "method", "path", "user"} {
		recorded[k] = true
	}
	for _, name := range Detail {
		if !recorded[name] {
			t.Errorf("Detail shows payload.%s, which no producer records", name)
		}
	}
	asked := *r
	asked.BreakGlass, asked.Status = false, access.Pending
	for typ, ev := range map[events.Type]*events.Event{
		events.AccessRequested:   accessEvent(t, &asked, events.AccessRequested, oncall, "requested"),
		events.ApprovalRequested: event("p", events.ApprovalRequested, t0, mustJSON(t, approvals.RequestedPayload(&approvals.Request{ID: "apr-1", Statement: "SELECT 1", ExpiresAt: t0}))),
	} {
		d := decision(ev, "")
		if d == nil || d.ID == "" {
			t.Errorf("%s as its producer records it: no way to decide shown", typ)
		}
	}
	if len(decisions) != 2 {
		t.Errorf("%d types are decided: check each reads its producer's id member", len(decisions))
	}
}

func mustJSON(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// The alert.raised event the bus and the signed webhook receive, byte for
// byte (testdata/alert-raised.json).
func TestAlertRaisedGolden(t *testing.T) {
	rs := mustRules(t, RuleConfig{ID: "approvals", Title: "Approval pending", Severity: "info", Match: MatchConfig{Types: []string{"approval.requested"}}, To: []string{"bus"}})
	al, err := New(Config{Rules: rs[:1], // not the built-in break-glass rule, which goes to every destination
		Sinks: []*Sink{{Name: "bus", Kind: KindEvent, Emitter: nopEmitter{}}}, API: "https://auditledger.example.com", Instance: "host-1",
		Now: func() time.Time { return t0.Add(time.Second) }})
	if err != nil {
		t.Fatal(err)
	}
	ev, err := al.Event(&Alert{ID: "alert/approvals/42", Rule: rs[0], Index: 42, SealedAt: t0.Add(150 * time.Millisecond),
		Event: event("p-1", events.ApprovalRequested, t0, `{"approval_id":"apr-7","rule":"schema-change","statement_sha256":"0123456789abcdef0123"}`)})
	if err != nil {
		t.Fatal(err)
	}
	raw, err := ev.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := events.Parse(raw); err != nil {
		t.Fatalf("alert.raised does not validate: %v", err)
	}
	var out bytes.Buffer
	json.Indent(&out, raw, "", "  ")
	out.WriteByte('\n')
	path := filepath.Join("testdata", "alert-raised.json")
	if *update {
		os.WriteFile(path, out.Bytes(), 0o644)
	}
	want, _ := os.ReadFile(path)
	if !bytes.Equal(out.Bytes(), want) {
		t.Errorf("%s: got\n%s\nwant\n%s", path, out.Bytes(), want)
	}
}

type nopEmitter struct{}

func (nopEmitter) EmitAlone(context.Context, *events.Event) (emitter.Result, error) {
	return emitter.Result{}, nil
}

// The bait: every field an event carries says, in Slack's markup, that a
// request waits and how to decide it, and links away.
const bait = "bob`\n*To decide:*\n`auditledger approvals approve apr-66 --reason ok` https://evil.example/PWN <https://evil.example|PWN> _~*PWN*~_ \u202eevil.example\r\x00"

func injected(r *Rule) *Alert {
	p, _ := json.Marshal(map[string]string{"user": bait, "rule": bait, "reason": bait, "kind": bait, "statement": bait + "\n```\n" + bait,
		"method": bait, "path": bait, "expires_at": bait})
	ev := event(bait, events.AuthnFailed, t0, string(p))
	ev.Tenant, ev.Target.Name, ev.Actor.Subject, ev.Actor.Issuer, ev.Actor.Groups = bait, bait, bait, bait, []string{bait, bait}
	return &Alert{ID: "alert/logins/44", Rule: r, Index: 44, SealedAt: t0, Event: ev,
		Rate: &RateHit{Count: 5, Within: time.Minute, Key: "payload.user", Value: bait}}
}

// outsideCode is what Slack formats in mrkdwn text: what lies outside
// code blocks and code spans, as Slack reads them.
func outsideCode(s string) string {
	var out strings.Builder
	for len(s) > 0 {
		if rest, ok := strings.CutPrefix(s, "```"); ok {
			_, after, found := strings.Cut(rest, "```")
			if !found {
				return out.String() + s
			}
			s = after
			continue
		}
		if rest, ok := strings.CutPrefix(s, "`"); ok {
			inside, after, found := strings.Cut(rest, "`")
			if !found || strings.Contains(inside, "\n") {
				out.WriteString("`")
				s = rest
				continue
			}
			s = after
			continue
		}
		r, n := utf8.DecodeRuneInString(s)
		out.WriteRune(r)
		s = s[n:]
	}
	return out.String()
}

// Whatever an event carries is shown inert: in code, where Slack formats
// nothing, on one line, never a link. A user name that spells out a
// decision line renders as a user name; only the alerter's own words are
// formatted.
func TestEventValuesRenderInert(t *testing.T) {
	rs := mustRules(t, RuleConfig{ID: "logins", Title: "Failed logins", Match: MatchConfig{Types: []string{"authn.failed"}}, To: []string{"chat"}},
		RuleConfig{ID: "approvals", Title: "Approval pending", Match: MatchConfig{Types: []string{"approval.requested"}}, To: []string{"chat"}})
	approval := injected(rs[1])
	approval.Event.Type, approval.Rate = events.ApprovalRequested, nil
	p, _ := json.Marshal(map[string]string{"approval_id": bait, "statement": bait})
	approval.Event.Payload = p
	for name, a := range map[string]*Alert{"authn.failed": injected(rs[0]), "approval.requested": approval} {
		b, err := Slack(a, "https://auditledger.example.com")
		if err != nil {
			t.Fatal(err)
		}
		var m SlackMessage
		if err := json.Unmarshal(b, &m); err != nil {
			t.Fatal(err)
		}
		if m.Mrkdwn {
			t.Errorf("%s: text is formatted", name)
		}
		texts := []string{m.Text}
		for _, bl := range m.Blocks {
			if bl.Text != nil {
				texts = append(texts, bl.Text.Text)
			}
			for _, x := range bl.Elements {
				texts = append(texts, x.Text)
			}
		}
		decides := 0
		for _, x := range texts {
			// The only link: the API's own base URL, in the call.
			if n := strings.Count(x, "://") - strings.Count(x, "POST https://auditledger.example.com/"); n != 0 {
				t.Errorf("%s: %d URLs a value brought in: %q", name, n, x)
			}
			formatted := outsideCode(x)
			for _, bad := range []string{"PWN", "evil", "apr-66", "bob", "<", ">", "\r", "\x00", "\u202e"} {
				if strings.Contains(formatted, bad) {
					t.Errorf("%s: %q formatted, outside code, in %q", name, bad, x)
				}
			}
			decides += strings.Count(formatted, "*To decide:*")
			if !strings.Contains(x, "```") && strings.Count(x, "`")%2 != 0 {
				t.Errorf("%s: an unclosed code span in %q", name, x)
			}
		}
		if want := map[string]int{"authn.failed": 0, "approval.requested": 1}[name]; decides != want {
			t.Errorf("%s: %d decision lines, want %d", name, decides, want)
		}
	}
}

// A statement at its longest, made of characters that escape, leaves
// every shorter field shown: each has its own budget.
func TestLongStatementLeavesEveryFieldShown(t *testing.T) {
	rs := mustRules(t, RuleConfig{ID: "b", Match: MatchConfig{Types: []string{"approval.requested"}}, To: []string{"chat"}})
	fields := map[string]string{"statement": strings.Repeat("&", 1500)}
	for _, name := range Detail {
		if name != "statement" {
			fields[name] = name + "-" + strings.Repeat(">", 400) + "-end"
		}
	}
	fields["expires_at"] = "2026-11-27T10:15:00Z"
	p, _ := json.Marshal(fields)
	b, err := Slack(&Alert{ID: "alert/b/1", Rule: rs[0], Index: 1, SealedAt: t0, Event: event("e", events.ApprovalRequested, t0, string(p))}, "")
	if err != nil {
		t.Fatal(err)
	}
	var m SlackMessage
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	var all strings.Builder
	for _, bl := range m.Blocks {
		if bl.Text != nil {
			if n := utf8.RuneCountInString(bl.Text.Text); n > MaxSectionText {
				t.Fatalf("a block of %d characters", n)
			}
			if strings.HasSuffix(bl.Text.Text, "…") {
				t.Errorf("a block cut as a whole: %q", bl.Text.Text[:80])
			}
			all.WriteString(bl.Text.Text + "\n")
		}
	}
	for _, name := range Detail {
		if !strings.Contains(all.String(), "*"+name+":* `"+name+"-") && name != "statement" && name != "expires_at" {
			t.Errorf("%s not shown", name)
		}
	}
	if !strings.Contains(all.String(), "*expires_at:* `2026-11-27T10:15:00Z`") || !strings.Contains(all.String(), "*statement:*\n```&amp;") {
		t.Errorf("expires_at or the statement not shown:\n%s", all.String())
	}
}

// golden compares b, a message's JSON, indented, with testdata/name
// (written anew with -update).
func golden(t *testing.T, name string, b []byte) {
	t.Helper()
	var out bytes.Buffer
	json.Indent(&out, b, "", "  ")
	out.WriteByte('\n')
	path := filepath.Join("testdata", name)
	if *update {
		os.WriteFile(path, out.Bytes(), 0o644)
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(out.Bytes(), want) {
		t.Errorf("%s: got\n%s\nwant\n%s", path, out.Bytes(), want)
	}
}
