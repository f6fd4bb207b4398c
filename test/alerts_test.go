package test

import (
	"context"
	"fmt"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/auditledger/auditledger/events"
	"github.com/auditledger/auditledger/ledger/bus"
	"github.com/auditledger/auditledger/ledger/bus/emitter"
	"github.com/auditledger/auditledger/test/alertstest"
	"github.com/auditledger/auditledger/test/natstest"
)

// alerterConfig writes a serve configuration running only the alerter,
// as its own bus principal, alerting a Slack-compatible webhook (its URL
// in $AUDITLEDGER_ALERT_CHAT_URL) and the bus on every blocked command,
// and the webhook again on each alert.raised event once it is sealed.
func alerterConfig(t *testing.T, srv *natstest.Server) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "alerter.yaml")
	cfg := fmt.Sprintf(`roles: [alerter]
log: {format: text, level: info}
http: {listen: "127.0.0.1:0"}
nats: {url: %q, nkeys: %q}
alerter:
  api_url: https://auditledger.example.com
  parked: %q
  state: %q
  destinations:
    - {name: chat, kind: slack, url_env: AUDITLEDGER_ALERT_CHAT_URL}
    - {name: bus, kind: event}
  rules:
    - id: blocked
      title: Blocked command
      severity: high
      match: {types: [command.blocked], tenants: [acme]}
      to: [chat, bus]
    - id: raised
      match: {types: [alert.raised], fields: {payload.rule: [blocked]}}
      to: [chat]
`, srv.ClientURL(), srv.KeysDir, filepath.Join(filepath.Dir(p), "parked.jsonl"), filepath.Join(filepath.Dir(p), "state", "alerter.state"))
	if err := os.WriteFile(p, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	logOnFailure(t, "the alerter's serve.log", filepath.Join(filepath.Dir(p), "serve.log"))
	return p
}

// The alerter binary is SIGKILLed three times while blocked commands are
// sealed and alerted, and started again each time: every blocked command
// reaches the Slack-compatible receiver, none is lost. Its state file
// keeps the last record alerted, so a restart alerts again at most the
// one record in hand at the kill (delivered, its state not yet written):
// the receiver sees at most one alert id twice per kill. The alert.raised
// events reach the log once each (their id is their Nats-Msg-Id), each
// alerted in turn.
func TestAlerterSIGKILLLosesNothing(t *testing.T) {
	srv := natstest.StartSecure(t)
	_, js := srv.Connect(t)
	if err := bus.EnsureStreams(t.Context(), js, bus.StreamOptions{}); err != nil {
		t.Fatal(err)
	}
	keys := t.TempDir()
	mustRun(t, nil, nil, "keys", "generate", "--out", keys)
	ledgerProc := startServe(t, serveConfig(t, srv, t.TempDir(), filepath.Join(keys, "ledger.key")))
	defer ledgerProc.Process.Signal(syscall.SIGTERM)

	slack := alertstest.NewSlack()
	ssrv := httptest.NewServer(slack)
	defer ssrv.Close()
	config := alerterConfig(t, srv)
	env := []string{"AUDITLEDGER_ALERT_CHAT_URL=" + ssrv.URL}

	em, err := emitter.New(emitter.Config{JetStream: js})
	if err != nil {
		t.Fatal(err)
	}
	defer em.Close()
	// 900 blocked commands at about 300 a second, each followed by a
	// statement that runs (not alerted), while the alerter is killed.
	const n = 900
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	var wg sync.WaitGroup
	wg.Go(func() {
		tick := time.NewTicker(10 * time.Millisecond)
		defer tick.Stop()
		for i := 0; i < n && ctx.Err() == nil; i += 3 {
			<-tick.C
			for j := i; j < i+3; j++ {
				for _, ev := range []*events.Event{
					alertEvent(fmt.Sprint("blk-", j), events.CommandBlocked, fmt.Sprintf(`{"rule":"no-drop","reason":"needs a ticket","statement":"DROP TABLE t%d"}`, j)),
					alertEvent(fmt.Sprint("run-", j), events.CommandExecuted, `{"statement":"SELECT 1"}`),
				} {
					if _, err := em.Emit(ctx, ev); err != nil && ctx.Err() == nil {
						t.Errorf("emit: %v", err)
						return
					}
				}
			}
		}
	})
	ids := regexp.MustCompile(`^alert/(blocked|raised)/[0-9]+$`)
	count := func(rule string) int {
		k := 0
		for id := range slack.Got() {
			if strings.HasPrefix(id, "alert/"+rule+"/") {
				k++
			}
		}
		return k
	}
	distinct := func() int { return count("blocked") }
	for k, at := range []int{100, 300, 500} {
		cmd := startServeEnv(t, config, env)
		natstest.CheckFor(t, 60*time.Second, 5*time.Millisecond, func() error {
			if got := distinct(); got < at {
				return fmt.Errorf("kill %d: the receiver has %d alerts, waiting for %d", k+1, got, at)
			}
			return nil
		})
		cmd.Process.Signal(syscall.SIGKILL)
		cmd.Wait()
		t.Logf("kill %d at %d alerts received", k+1, distinct())
	}
	wg.Wait()
	cmd := startServeEnv(t, config, env)
	defer func() { cmd.Process.Signal(syscall.SIGTERM); cmd.Wait() }()
	natstest.CheckFor(t, 120*time.Second, 50*time.Millisecond, func() error {
		if b, r := count("blocked"), count("raised"); b != n || r != n {
			return fmt.Errorf("the receiver has %d distinct alerts of blocked commands and %d of alert.raised events, want %d of each", b, r, n)
		}
		return nil
	})
	repeats := 0
	for id, c := range slack.Got() {
		if !ids.MatchString(id) {
			t.Errorf("unexpected alert %s", id)
		}
		repeats += c - 1
	}
	if inv := slack.InvalidMessages(); len(inv) > 0 {
		t.Errorf("messages Slack would refuse: %v", inv[:min(5, len(inv))])
	}
	if b, _ := os.ReadFile(filepath.Join(filepath.Dir(config), "parked.jsonl")); len(b) > 0 {
		t.Errorf("parked: %s", b)
	}
	t.Logf("%d alerts and %d on their alert.raised events, every one received after 3 SIGKILLs; %d received twice (delivered, its state not yet written at a kill)", n, n, repeats)
	if repeats > 3*2 {
		t.Errorf("%d repeats: more than the record in hand per kill", repeats)
	}
	// The message tells where the event happened and carries its id.
	b := slack.Bodies()[0]
	if !strings.Contains(string(b), "command.blocked") || !strings.Contains(string(b), "no-drop") {
		t.Errorf("first message %s", b)
	}
}

func alertEvent(id string, typ events.Type, payload string) *events.Event {
	return &events.Event{Version: 1, ID: id, Type: typ, Time: time.Now().UTC(), Tenant: "acme",
		Source: events.Source{Kind: "postgres-proxy", Instance: "pgproxy-1"}, Actor: events.Actor{Issuer: "https://idp.example.com", Subject: "u-1", Kind: events.Human},
		Target: &events.Target{Kind: "postgres", Name: "orders"}, Payload: []byte(payload)}
}
