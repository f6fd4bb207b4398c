package alerts

import (
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/auditledger/auditledger/events"
)

func env(name string) string {
	if strings.HasPrefix(name, "SET_") {
		return "https://hooks.example.com/services/T0/B0/secret"
	}
	return ""
}

func dests() []DestinationConfig {
	return []DestinationConfig{{Name: "chat", Kind: KindSlack, URLEnv: "SET_CHAT"}, {Name: "bus", Kind: KindEvent},
		{Name: "hook", Kind: KindWebhook, URL: "https://soc.example.com/in", SecretEnv: "SET_KEY"}}
}

func mustRules(t *testing.T, rules ...RuleConfig) []*Rule {
	t.Helper()
	rs, err := Settings{Destinations: dests(), Rules: rules}.Check("alerter", env)
	if err != nil {
		t.Fatal(err)
	}
	return rs
}

// Every mistake in a rule or a destination is refused before anything
// runs, with an error naming the field.
func TestRuleErrorsNameTheField(t *testing.T) {
	ok := RuleConfig{ID: "r", To: []string{"chat"}}
	with := func(f func(*RuleConfig)) RuleConfig { r := ok; f(&r); return r }
	for _, c := range []struct {
		rules []RuleConfig
		dests []DestinationConfig
		want  string
	}{
		{rules: []RuleConfig{with(func(r *RuleConfig) { r.ID = "Bad Id" })}, want: `alerter.rules[0].id "Bad Id"`},
		{rules: []RuleConfig{ok, ok}, want: `alerter.rules[1].id "r": used by an earlier rule`},
		{rules: []RuleConfig{with(func(r *RuleConfig) { r.Severity = "urgent" })}, want: `alerter.rules[0] (r).severity "urgent"`},
		{rules: []RuleConfig{with(func(r *RuleConfig) { r.Match.Types = []string{"command.blokced"} })}, want: `alerter.rules[0] (r).match.types[0] "command.blokced": not an event type of this release`},
		{rules: []RuleConfig{with(func(r *RuleConfig) { r.Match.Types = []string{"access requested"} })}, want: `match.types[0] "access requested": not an event type name`},
		{rules: []RuleConfig{with(func(r *RuleConfig) { r.Match.Fields = map[string][]string{"actor.email": {"x"}} })}, want: `match.fields: "actor.email" is a sealed personal value`},
		{rules: []RuleConfig{with(func(r *RuleConfig) { r.Match.Fields = map[string][]string{"actor.name": {"x"}} })}, want: `match.fields: "actor.name" is not a field`},
		{rules: []RuleConfig{with(func(r *RuleConfig) { r.Match.Fields = map[string][]string{"payload.user": nil} })}, want: `match.fields["payload.user"]: no value`},
		{rules: []RuleConfig{with(func(r *RuleConfig) { r.Match.Tenants = []string{""} })}, want: `match.tenants: an empty value`},
		{rules: []RuleConfig{with(func(r *RuleConfig) { r.Rate = &RateConfig{Count: 5, Within: "a minute"} })}, want: `rate.within "a minute"`},
		{rules: []RuleConfig{with(func(r *RuleConfig) { r.Rate = &RateConfig{Count: 1, Within: "1m"} })}, want: `rate.count 1`},
		{rules: []RuleConfig{with(func(r *RuleConfig) { r.Rate = &RateConfig{Count: 5, Within: "1m", Key: "user"} })}, want: `rate.key: "user" is not a field`},
		{rules: []RuleConfig{with(func(r *RuleConfig) { r.Limit = &LimitCfg{Alerts: 0, Per: "1h"} })}, want: `limit.alerts 0`},
		{rules: []RuleConfig{with(func(r *RuleConfig) { r.Limit = &LimitCfg{Alerts: 3, Per: "-1h"} })}, want: `limit.per "-1h"`},
		{rules: []RuleConfig{with(func(r *RuleConfig) { r.To = nil })}, want: `alerter.rules[0] (r).to: name at least one destination`},
		{rules: []RuleConfig{with(func(r *RuleConfig) { r.To = []string{"pager"} })}, want: `to[0] "pager": no destination of that name`},
		{rules: []RuleConfig{with(func(r *RuleConfig) { r.Match.Types = []string{"alert.raised"}; r.To = []string{"bus"} })}, want: `cannot raise alert.raised events`},
		{dests: []DestinationConfig{{Name: "chat", Kind: "teams"}}, want: `alerter.destinations[0].kind "teams"`},
		{dests: []DestinationConfig{{Name: "chat", Kind: KindSlack, URL: "https://hooks.example.com/x"}}, want: `alerter.destinations[0].url: a Slack-compatible webhook's URL is a secret`},
		{dests: []DestinationConfig{{Name: "chat", Kind: KindSlack, URLEnv: "UNSET"}}, want: `alerter.destinations[0].url_env: name a variable holding the webhook URL ("UNSET" is unset)`},
		{dests: []DestinationConfig{{Name: "h", Kind: KindWebhook, URL: "https://x"}}, want: `alerter.destinations[0].secret_env`},
		{dests: []DestinationConfig{{Name: "chat", Kind: KindSlack, URLEnv: "AUDITLEDGER_CHAT_URL"}}, want: `alerter.destinations[0].url_env "AUDITLEDGER_CHAT_URL": a variable of your own begins AUDITLEDGER_ALERT_`},
		{dests: []DestinationConfig{{Name: "b", Kind: KindEvent}, {Name: "b", Kind: KindEvent}}, want: `alerter.destinations[1].name "b": named twice`},
	} {
		d := c.dests
		if d == nil {
			d = dests()
		}
		_, err := Settings{Destinations: d, Rules: c.rules}.Check("alerter", env)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("want an error with %q, got %v", c.want, err)
		}
	}
	// A family of types, present and future, is accepted as a prefix.
	mustRules(t, with(func(r *RuleConfig) { r.Match.Types = []string{"access.*", "approval.requested"} }))
}

func event(id string, typ events.Type, at time.Time, payload string) *events.Event {
	return &events.Event{Version: 1, ID: id, Type: typ, Time: at, Tenant: "acme",
		Source: events.Source{Kind: "postgres-proxy", Instance: "gw-1"},
		Actor:  events.Actor{Issuer: "https://idp.example.com", Subject: "u-7", Kind: events.Human, Groups: []string{"dba", "contractors"}},
		Target: &events.Target{Kind: "postgres", Name: "orders"}, Payload: []byte(payload)}
}

var t0 = time.Date(2026, 11, 27, 10, 0, 0, 0, time.UTC)

func TestMatch(t *testing.T) {
	blocked := event("e1", events.CommandBlocked, t0, `{"rule":"no-drop","kind":"DROP","statement":"DROP TABLE x","nested":{"n":3}}`)
	for _, c := range []struct {
		m    MatchConfig
		want bool
	}{
		{MatchConfig{}, true},
		{MatchConfig{Types: []string{"command.blocked"}}, true},
		{MatchConfig{Types: []string{"command.*"}}, true},
		{MatchConfig{Types: []string{"access.*"}}, false},
		{MatchConfig{Tenants: []string{"acme"}, Targets: []string{"orders"}}, true},
		{MatchConfig{Tenants: []string{"globex"}}, false},
		{MatchConfig{Targets: []string{"billing"}}, false},
		{MatchConfig{Groups: []string{"contractors"}}, true},
		{MatchConfig{Groups: []string{"admins"}}, false},
		{MatchConfig{PolicyRules: []string{"no-drop"}}, true},
		{MatchConfig{PolicyRules: []string{"ddl"}}, false},
		{MatchConfig{Fields: map[string][]string{"payload.kind": {"DROP", "TRUNCATE"}, "target.kind": {"postgres"}}}, true},
		{MatchConfig{Fields: map[string][]string{"payload.nested.n": {"3"}}}, true},
		{MatchConfig{Fields: map[string][]string{"payload.kind": {"SELECT"}}}, false},
		{MatchConfig{Fields: map[string][]string{"payload.missing": {""}}}, false},
	} {
		r := mustRules(t, RuleConfig{ID: "r", Match: c.m, To: []string{"chat"}})[0]
		if got := r.Matches(blocked); got != c.want {
			t.Errorf("%+v: matches %v, want %v", c.m, got, c.want)
		}
	}
	// A rule that names no type never matches the alerter's own events.
	all := mustRules(t, RuleConfig{ID: "all", To: []string{"chat"}})[0]
	if all.Matches(event("a", events.AlertRaised, t0, `{}`)) {
		t.Error("a rule without types matched alert.raised")
	}
	// A type this release does not know yet (a future access.*) matches
	// its family.
	fam := mustRules(t, RuleConfig{ID: "fam", Match: MatchConfig{Types: []string{"access.*"}}, To: []string{"chat"}})[0]
	if !fam.Matches(event("a", "access.requested", t0, `{}`)) {
		t.Error("access.* did not match access.requested")
	}
}

// Five failed logins for one name within a minute raise one alert; four,
// or five spread over more than a minute, or five for different names,
// raise none.
func TestRateRuleFiresOnce(t *testing.T) {
	rs := mustRules(t, RuleConfig{ID: "logins", Match: MatchConfig{Types: []string{"authn.failed"}},
		Rate: &RateConfig{Count: 5, Within: "1m", Key: "payload.user"}, To: []string{"chat"}})
	e := NewEngine(rs)
	var fired []*Alert
	idx := uint64(0)
	fail := func(user string, at time.Time) {
		idx++
		fired = append(fired, e.Evaluate(idx, at, event(fmt.Sprint("f", idx), events.AuthnFailed, at, `{"user":"`+user+`","reason":"bad password"}`))...)
	}
	for i := range 5 {
		fail("bob", t0.Add(time.Duration(i)*10*time.Second)) // within 40 s
	}
	for i := range 4 {
		fail("alice", t0.Add(time.Duration(i)*time.Second))
	}
	for i := range 5 {
		fail("carol", t0.Add(time.Duration(i)*20*time.Second)) // over 80 s: never 5 within a minute
	}
	for i := range 5 {
		fail(fmt.Sprint("u", i), t0)
	}
	e.Evaluate(idx+1, t0, event("x", events.AuthnSucceeded, t0, `{"user":"bob"}`))
	if len(fired) != 1 {
		t.Fatalf("%d alerts, want 1", len(fired))
	}
	a := fired[0]
	if a.Rate == nil || a.Rate.Count != 5 || a.Rate.Value != "bob" || a.Rate.Key != "payload.user" || a.Index != 5 || a.ID != "alert/logins/5" {
		t.Fatalf("alert %+v rate %+v", a, a.Rate)
	}
	// Five more for bob: one more alert, not one per failure.
	for i := range 5 {
		fail("bob", t0.Add(time.Minute+time.Duration(i)*time.Second))
	}
	if len(fired) != 2 {
		t.Fatalf("%d alerts after ten failures for bob, want 2", len(fired))
	}
}

// A rule's limit holds back alerts past it, and the next alert says how
// many were held back.
func TestLimitHoldsBack(t *testing.T) {
	rs := mustRules(t, RuleConfig{ID: "b", Match: MatchConfig{Types: []string{"command.blocked"}}, Limit: &LimitCfg{Alerts: 2, Per: "1h"}, To: []string{"chat"}})
	e := NewEngine(rs)
	var got []*Alert
	for i := range 5 {
		got = append(got, e.Evaluate(uint64(i), t0, event(fmt.Sprint(i), events.CommandBlocked, t0.Add(time.Duration(i)*time.Minute), `{}`))...)
	}
	if len(got) != 2 {
		t.Fatalf("%d alerts in the first hour, want 2", len(got))
	}
	later := e.Evaluate(9, t0, event("9", events.CommandBlocked, t0.Add(2*time.Hour), `{}`))
	if len(later) != 1 || later[0].Suppressed != 3 {
		t.Fatalf("after the hour: %d alerts, suppressed %v; want 1 saying 3", len(later), later)
	}
}

// A rules file is read strictly: an unknown key is an error at its line,
// naming the nearest known key.
func TestRulesFileIsStrict(t *testing.T) {
	p := t.TempDir() + "/rules.yaml"
	os.WriteFile(p, []byte("destinations:\n  - {name: chat, kind: slack, url_env: SET_CHAT}\nrules:\n  - id: r\n    match: {typse: [command.blocked]}\n    to: [chat]\n"), 0o644)
	_, err := ReadRulesFile(p)
	if err == nil || !strings.Contains(err.Error(), "line 5") || !strings.Contains(err.Error(), "typse") || !strings.Contains(err.Error(), "types") {
		t.Fatalf("got %v", err)
	}
	os.WriteFile(p, []byte("destinations:\n  - {name: chat, kind: slack, url_env: SET_CHAT}\nrules:\n  - id: r\n    match: {types: [command.blocked]}\n    rate: {count: 5, within: 1m, key: payload.user}\n    to: [chat]\n"), 0o644)
	s, err := ReadRulesFile(p)
	if err != nil {
		t.Fatal(err)
	}
	// The operator's rule, then the built-in break-glass rule.
	if rs, err := s.Check("rules.yaml", env); err != nil || len(rs) != 2 || rs[0].rate.count != 5 || rs[1].ID != BreakGlassRule {
		t.Fatalf("%v %v", rs, err)
	}
}

// A stream of ever new key values (a spray of user names) keeps the
// engine's windows bounded: idle windows expire by event time, and past
// maxKeys new values are counted together, which the alert says.
func TestRateWindowsStayBounded(t *testing.T) {
	rs := mustRules(t, RuleConfig{ID: "logins", Match: MatchConfig{Types: []string{"authn.failed"}},
		Rate: &RateConfig{Count: 5, Within: "1m", Key: "payload.user"}, To: []string{"chat"}})
	e := NewEngine(rs)
	most := 0
	// 200,000 distinct names, one every 10 ms of event time: 6,000 in
	// any minute.
	for i := range 200000 {
		at := t0.Add(time.Duration(i) * 10 * time.Millisecond)
		if got := e.Evaluate(uint64(i+1), at, event("f", events.AuthnFailed, at, fmt.Sprintf(`{"user":"u%d"}`, i))); len(got) != 0 {
			t.Fatalf("event %d: an alert for distinct names", i)
		}
		most = max(most, e.windows())
	}
	t.Logf("200,000 names, 6,000 a minute of event time: %d windows held at most", most)
	if most > 9001 { // 1.5 windows of names, and no more
		t.Fatalf("%d windows held at most for 6,000 names a minute", most)
	}

	// All at once: past the cap, new names count together, and the
	// alert says so.
	e = NewEngine(rs)
	e.maxKeys = 100
	var fired []*Alert
	for i := range 200000 {
		fired = append(fired, e.Evaluate(uint64(i+1), t0, event("f", events.AuthnFailed, t0, fmt.Sprintf(`{"user":"u%d"}`, i)))...)
		if n := e.windows(); n > 101 {
			t.Fatalf("event %d: %d windows, cap 100", i, n)
		}
	}
	if len(fired) == 0 || !fired[0].Rate.Overflow || fired[0].Rate.Value != "" {
		t.Fatalf("%d alerts; the first %+v", len(fired), fired)
	}
	b, err := Slack(fired[0], "")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(b), "more than 100 values") {
		t.Fatalf("the alert does not say names were counted together: %s", b)
	}
}
