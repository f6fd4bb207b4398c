package alerts_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/auditledger/auditledger/events"
	"github.com/auditledger/auditledger/ledger/bus/emitter"
	"github.com/auditledger/auditledger/services/access"
	"github.com/auditledger/auditledger/services/access/accesstest"
	"github.com/auditledger/auditledger/services/alerts"
	"github.com/auditledger/auditledger/services/siem"
	"github.com/auditledger/auditledger/test/alertstest"
	"github.com/auditledger/auditledger/test/natstest"
	"github.com/auditledger/auditledger/test/siemtest"
)

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

func getenv(vars map[string]string) func(string) string {
	return func(k string) string { return vars[k] }
}

// rig is an alerter on the real writer, delivering to a Slack-compatible
// receiver, a signed webhook and the bus.
type rig struct {
	js     jetstream.JetStream
	em     *emitter.Emitter
	slack  *alertstest.Slack
	hook   *siemtest.Webhook
	parked string
}

func start(t *testing.T, rules []alerts.RuleConfig, poison string) *rig {
	t.Helper()
	_, js, em := siemtest.Writer(t)
	r := &rig{js: js, em: em, slack: alertstest.NewSlack(), hook: siemtest.NewWebhook([]byte("k")), parked: filepath.Join(t.TempDir(), "parked.jsonl")}
	r.slack.Poison = poison
	ssrv, hsrv := httptest.NewServer(r.slack), httptest.NewServer(r.hook)
	t.Cleanup(ssrv.Close)
	t.Cleanup(hsrv.Close)
	vars := map[string]string{"CHAT_URL": ssrv.URL, "HOOK_KEY": "k"}
	set := alerts.Settings{Destinations: []alerts.DestinationConfig{{Name: "chat", Kind: alerts.KindSlack, URLEnv: "CHAT_URL"},
		{Name: "hook", Kind: alerts.KindWebhook, URL: hsrv.URL, SecretEnv: "HOOK_KEY"}, {Name: "bus", Kind: alerts.KindEvent}}, Rules: rules}
	rs, err := set.Check("alerter", getenv(vars))
	if err != nil {
		t.Fatal(err)
	}
	var sinks []*alerts.Sink
	for _, d := range set.Destinations {
		sinks = append(sinks, alerts.SinkFor(d, getenv(vars), em))
	}
	a, err := alerts.New(alerts.Config{Rules: rs, Sinks: sinks, Instance: "test", Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	f, err := siem.New(siem.Config{Name: alerts.Name, JetStream: js, Destination: a, Batch: 100, Parked: r.parked, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- f.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	return r
}

func (r *rig) emit(t *testing.T, id string, typ events.Type, payload string) {
	t.Helper()
	ev := &events.Event{Version: 1, ID: id, Type: typ, Time: time.Now().UTC(), Tenant: "acme",
		Source: events.Source{Kind: "postgres-proxy", Instance: "p1"}, Actor: events.Actor{Issuer: "https://idp", Subject: "u-7", Kind: events.Human},
		Target: &events.Target{Kind: "postgres", Name: "orders"}, Payload: []byte(payload)}
	if _, err := r.em.Emit(t.Context(), ev); err != nil {
		t.Fatal(err)
	}
}

// rule ids in an alert id: alert/<rule>/<index>.
var alertRule = regexp.MustCompile(`^alert/([a-z0-9_-]+)/[0-9]+$`)

func byRule(got map[string]int) map[string]int {
	n := map[string]int{}
	for id := range got {
		if m := alertRule.FindStringSubmatch(id); m != nil {
			n[m[1]]++
		}
	}
	return n
}

func waitFor(t *testing.T, what string, within time.Duration, f func() (bool, string)) {
	t.Helper()
	natstest.CheckFor(t, within, 20*time.Millisecond, func() error {
		if ok, state := f(); !ok {
			return fmt.Errorf("%s: %s", what, state)
		}
		return nil
	})
}

// The access broker's own records, sealed by the writer, alert as
// docs/ALERTS.md says: a pending request tells the reviewers how to decide
// it, and a break-glass grant alerts at once, through the built-in rule,
// to every destination (no rule of the operator's names it), while its
// request, granted already, offers nothing to decide.
func TestAccessAlertsFromTheBroker(t *testing.T) {
	r := start(t, []alerts.RuleConfig{{ID: "access-requests", Severity: "info", Match: alerts.MatchConfig{Types: []string{"access.requested"}}, To: []string{"chat"}}}, "")
	ar := accesstest.Start(t, r.js, r.em, `version: 2
access:
  - id: prod-db
    targets: [orders]
    approvers: {groups: [dba], count: 1}
    max_duration: 4h
    break_glass: {groups: [oncall], duration: 30m}
`, 0)
	alice := events.Actor{Issuer: "https://idp.example", Subject: "alice", Kind: events.Human, Groups: []string{"dev"}}
	dave := events.Actor{Issuer: "https://idp.example", Subject: "dave", Kind: events.Human, Groups: []string{"oncall"}}
	req, err := ar.Broker.Request(t.Context(), access.Ask{Tenant: "acme", Requester: alice, Target: "orders", Duration: time.Hour, Reason: "incident 12"})
	if err != nil {
		t.Fatal(err)
	}
	asked := time.Now()
	glass, err := ar.Broker.BreakGlass(t.Context(), access.Ask{Tenant: "acme", Requester: dave, Target: "orders", Reason: "orders down"})
	if err != nil {
		t.Fatal(err)
	}
	find := func(rule, text string) string {
		for _, b := range r.slack.Bodies() {
			if s := string(b); strings.Contains(s, "alert/"+rule+"/") && strings.Contains(s, text) {
				return s
			}
		}
		return ""
	}
	waitFor(t, "the access alerts", 30*time.Second, func() (bool, string) {
		n := byRule(r.slack.Got())
		return n["access-requests"] == 2 && n[alerts.BreakGlassRule] == 1 && byRule(r.hook.Got())[alerts.BreakGlassRule] == 1, fmt.Sprint(n, r.hook.Got())
	})
	t.Logf("break-glass grant to its alert accepted by the Slack receiver: %s (broker, writer, alerter, all in process)", time.Since(asked).Round(time.Millisecond))
	pending := find("access-requests", req.ID)
	for _, want := range []string{"auditledger access approve " + req.ID + " --reason", "/v1/access-requests/" + req.ID + "/approve", "*access_id:* `" + req.ID + "`"} {
		if !strings.Contains(pending, want) {
			t.Errorf("the pending request's alert lacks %q:\n%s", want, pending)
		}
	}
	if s := find("access-requests", glass.ID); s == "" || strings.Contains(s, "To decide") {
		t.Errorf("the break-glass request's own alert is missing or offers a decision:\n%s", s)
	}
	bg := find(alerts.BreakGlassRule, glass.ID)
	for _, want := range []string{"[CRITICAL]", "*break_glass:* `true`", "`dave`", "*not_after:* `" + glass.NotAfter.Format(time.RFC3339) + "`"} {
		if !strings.Contains(bg, want) {
			t.Errorf("the break-glass alert lacks %q:\n%s", want, bg)
		}
	}
	if inv := r.slack.InvalidMessages(); len(inv) > 0 {
		t.Errorf("messages Slack would refuse: %v", inv)
	}
}

// Alerts reach a Slack-compatible receiver, the signed webhook and the
// bus once per event: through an outage of the receiver (503, then back),
// a rate rule firing once for five failed logins within a minute, and the
// alert.raised events, sealed, raising alerts of their own.
func TestAlertsOncePerEventThroughOutage(t *testing.T) {
	r := start(t, []alerts.RuleConfig{
		{ID: "blocked", Title: "Blocked", Severity: "high", Match: alerts.MatchConfig{Types: []string{"command.blocked"}, PolicyRules: []string{"no-drop"}}, To: []string{"chat", "hook", "bus"}},
		{ID: "logins", Match: alerts.MatchConfig{Types: []string{"authn.failed"}}, Rate: &alerts.RateConfig{Count: 5, Within: "1m", Key: "payload.user"}, To: []string{"chat"}},
		{ID: "raised", Match: alerts.MatchConfig{Types: []string{"alert.raised"}, Fields: map[string][]string{"payload.rule": {"blocked"}}}, To: []string{"chat"}},
	}, "")
	blocked := func(from, n int) {
		for i := from; i < from+n; i++ {
			r.emit(t, fmt.Sprint("b-", i), events.CommandBlocked, fmt.Sprintf(`{"rule":"no-drop","reason":"needs a ticket","statement":"DROP TABLE t%d"}`, i))
			r.emit(t, fmt.Sprint("x-", i), events.CommandExecuted, `{"statement":"SELECT 1"}`)
		}
	}
	blocked(0, 20)
	for i := range 5 {
		r.emit(t, fmt.Sprint("f-", i), events.AuthnFailed, `{"user":"bob","reason":"bad password"}`)
	}
	r.emit(t, "other-rule", events.CommandBlocked, `{"rule":"ddl","statement":"ALTER TABLE t"}`)
	want := map[string]int{"blocked": 20, "logins": 1, "raised": 20}
	all := func() (bool, string) {
		got := byRule(r.slack.Got())
		return fmt.Sprint(got) == fmt.Sprint(want), fmt.Sprintf("the receiver has %v, want %v", got, want)
	}
	waitFor(t, "first alerts", 60*time.Second, all)

	// The receiver is down: it answers 503 to the attempts while more
	// events are sealed, and then comes back.
	r.slack.Down(true)
	before := alertstest.RequestsOf(r.slack)
	blocked(20, 10)
	waitFor(t, "attempts during the outage", 30*time.Second, func() (bool, string) {
		r.slack.Down(true)
		n := alertstest.RequestsOf(r.slack)
		return n >= before+3, fmt.Sprintf("%d requests", n-before)
	})
	r.slack.Down(false)
	want = map[string]int{"blocked": 30, "logins": 1, "raised": 30}
	waitFor(t, "every alert after the outage", 60*time.Second, all)

	for id, n := range r.slack.Got() {
		if n != 1 {
			t.Errorf("%s delivered %d times", id, n)
		}
	}
	if inv := r.slack.InvalidMessages(); len(inv) > 0 {
		t.Errorf("messages Slack would refuse: %v", inv)
	}
	waitFor(t, "the webhook's alerts", 30*time.Second, func() (bool, string) {
		got := r.hook.Got()
		return byRule(got)["blocked"] == 30, fmt.Sprintf("%d", len(got))
	})
	for id, n := range r.hook.Got() {
		if n != 1 || !strings.HasPrefix(id, "alert/blocked/") {
			t.Errorf("webhook: %s delivered %d times", id, n)
		}
	}
	if r.hook.BadSigs > 0 {
		t.Errorf("%d bad signatures", r.hook.BadSigs)
	}
	var rec struct {
		Index uint64        `json:"index"`
		Event *events.Event `json:"event"`
	}
	body := r.hook.Bodies()[0]
	var recs []json.RawMessage
	if err := json.Unmarshal(body, &recs); err != nil || len(recs) != 1 || json.Unmarshal(recs[0], &rec) != nil || rec.Event.Type != events.AlertRaised {
		t.Fatalf("webhook body %s", body)
	}
	if rec.Event.ID != fmt.Sprintf("alert/blocked/%d", rec.Index) {
		t.Errorf("webhook: event %s for index %d", rec.Event.ID, rec.Index)
	}
	if b, _ := os.ReadFile(r.parked); len(b) > 0 {
		t.Errorf("parked: %s", b)
	}
}

// A message the receiver refuses (400) is not sent again: the record is
// parked with the reason, and the alerts after it are delivered.
func TestRefusedAlertIsParked(t *testing.T) {
	r := start(t, []alerts.RuleConfig{{ID: "blocked", Match: alerts.MatchConfig{Types: []string{"command.blocked"}}, To: []string{"chat"}}}, "POISON")
	for i := range 10 {
		stmt := fmt.Sprint("DROP TABLE t", i)
		if i == 4 {
			stmt = "DROP TABLE POISON"
		}
		r.emit(t, fmt.Sprint("b-", i), events.CommandBlocked, fmt.Sprintf(`{"rule":"no-drop","statement":%q}`, stmt))
	}
	waitFor(t, "the other alerts", 60*time.Second, func() (bool, string) {
		n := byRule(r.slack.Got())["blocked"]
		return n == 9, fmt.Sprint(n)
	})
	var lines []map[string]any
	waitFor(t, "the parked record", 10*time.Second, func() (bool, string) {
		f, err := os.Open(r.parked)
		if err != nil {
			return false, err.Error()
		}
		defer f.Close()
		lines = nil
		sc := bufio.NewScanner(f)
		sc.Buffer(nil, 1<<20)
		for sc.Scan() {
			var m map[string]any
			json.Unmarshal(sc.Bytes(), &m)
			lines = append(lines, m)
		}
		return len(lines) == 1, fmt.Sprint(len(lines), " lines")
	})
	reason, _ := lines[0]["reason"].(string)
	if lines[0]["event_id"] != "b-4" || !strings.Contains(reason, "alert/blocked/") || !strings.Contains(reason, "400") || strings.Contains(reason, "http://") {
		t.Fatalf("parked %v", lines[0])
	}
	if r.slack.Refused != 1 {
		t.Fatalf("the receiver refused %d messages, want 1 (a refused alert is not sent again)", r.slack.Refused)
	}
}

// Alert latency from a record's sealing to the receiver's acceptance,
// over a steady stream: p50 and p99 logged (docs/ALERTS.md reports them).
func TestAlertLatency(t *testing.T) {
	r := start(t, []alerts.RuleConfig{{ID: "blocked", Match: alerts.MatchConfig{Types: []string{"command.blocked"}}, To: []string{"chat"}}}, "")
	const n = 300
	tick := time.NewTicker(20 * time.Millisecond)
	for i := range n {
		<-tick.C
		r.emit(t, fmt.Sprint("b-", i), events.CommandBlocked, `{"rule":"no-drop","statement":"DROP TABLE t"}`)
		r.emit(t, fmt.Sprint("x-", i), events.CommandExecuted, `{"statement":"SELECT 1"}`)
	}
	tick.Stop()
	waitFor(t, "every alert", 60*time.Second, func() (bool, string) {
		k := byRule(r.slack.Got())["blocked"]
		return k == n, fmt.Sprint(k)
	})
	sealed := regexp.MustCompile("auditledger `(alert/blocked/[0-9]+)` · event `[^`]+` · sealed ([^ \"]+)")
	var lat []time.Duration
	for _, b := range r.slack.Bodies() {
		m := sealed.FindSubmatch(b)
		if m == nil {
			t.Fatalf("no sealing time in %s", b)
		}
		at, err := time.Parse(time.RFC3339Nano, string(m[2]))
		if err != nil {
			t.Fatal(err)
		}
		got, _ := r.slack.FirstAccepted(string(m[1]))
		lat = append(lat, got.Sub(at))
	}
	slices.Sort(lat)
	t.Logf("alert latency, sealing to delivery, %d alerts: p50 %v, p99 %v, max %v", len(lat), lat[len(lat)/2], lat[len(lat)*99/100], lat[len(lat)-1])
}
