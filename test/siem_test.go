package test

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/auditledger/auditledger/test/natstest"
	"github.com/auditledger/auditledger/test/rsyslogtest"
	"github.com/auditledger/auditledger/test/siemtest"
)

// SIEM acceptance: dev forwards every sealed event to Debian's rsyslogd
// over TLS, to a Splunk HTTP Event Collector with indexer acknowledgement
// and to a signed webhook; dev is SIGKILLed while forwarding and started
// again, then every receiver is down while more events are sealed, and
// comes back. Every event arrives at every receiver (exactly once at the
// collector, at least once elsewhere: the event id deduplicates), and the
// stock nats CLI reads them all through a durable consumer.
func TestDevForwardsToSIEMs(t *testing.T) {
	rs := rsyslogtest.Start(t)
	const token, secret = "11111111-2222-3333-4444-555555555555", "webhook-secret"
	hec := siemtest.NewHEC(token)
	hsrv := httptest.NewServer(hec)
	defer hsrv.Close()
	hook := siemtest.NewWebhook([]byte(secret))
	hook.HoldAfterEvents(1, "siem-") // one batch of ours accepted, the rest in flight: the kill lands while it forwards
	wsrv := httptest.NewServer(hook)
	defer wsrv.Close()
	env := []string{"AUDITLEDGER_HEC_TOKEN=" + token, "AUDITLEDGER_WEBHOOK_SECRET=" + secret}
	args := []string{"--projection=false", "--forward-syslog", rs.Addr, "--forward-syslog-ca", rs.CAFile, "--forward-hec", hsrv.URL, "--forward-webhook", wsrv.URL}
	d := startDev(t, env, args...)

	events := func(from, n int) []byte {
		var b bytes.Buffer
		for i := from; i < from+n; i++ {
			fmt.Fprintf(&b, `{"version":1,"id":"siem-%d","type":"command.executed","time":"2026-11-27T10:00:00Z","tenant":"acme","source":{"kind":"postgres-proxy","instance":"pgproxy-1"},"actor":{"issuer":"https://idp.example.com","subject":"u-%d","kind":"human"},"target":{"kind":"postgres","name":"orders"},"payload":{"statement":"SELECT %d","kind":"select"}}`+"\n", i, i%7, i)
		}
		return b.Bytes()
	}
	syslogIDs := func() map[string]int {
		got := map[string]int{}
		re := regexp.MustCompile(` id="(siem-\d+)"`)
		for _, l := range rs.Lines() {
			if m := re.FindStringSubmatch(l); m != nil {
				got[m[1]]++
			}
		}
		return got
	}
	count := func(got map[string]int) int {
		n := 0
		for id := range got {
			if strings.HasPrefix(id, "siem-") {
				n++
			}
		}
		return n
	}
	const first, second = 1500, 500
	mustRun(t, events(0, first), nil, "emit", "--nats", d.nats, "--nkey", filepath.Join(d.data, "nats-keys", "proxy.nk"))
	// SIGKILL while the webhook forwarder is part way: its first batch
	// taken, the next one in flight.
	natstest.CheckFor(t, 60*time.Second, 10*time.Millisecond, func() error {
		if n := count(hook.Got()); n == 0 {
			return fmt.Errorf("webhook has %d events", n)
		}
		return nil
	})
	d.cmd.Process.Kill()
	d.cmd.Wait()
	if n := count(hook.Got()); n >= first {
		t.Fatalf("the webhook had all %d events before the kill: the kill did not land mid-stream", n)
	}
	d.waitPostgresGone(t)
	hook.Release()
	d = startDevAt(t, d.data, env, args...)

	// Every receiver down while more is sealed, then back.
	rs.Stop()
	hec.Down(true)
	hook.Down(true)
	mustRun(t, events(first, second), nil, "emit", "--nats", d.nats, "--nkey", filepath.Join(d.data, "nats-keys", "proxy.nk"))
	time.Sleep(time.Second) // the forwarders meet the outage and retry
	rs.Start(t)
	hec.Down(false)
	hook.Down(false)

	natstest.CheckFor(t, 120*time.Second, 200*time.Millisecond, func() error {
		s, h, w := count(syslogIDs()), count(hec.Got()), count(hook.Got())
		if s != first+second || h != first+second || w != first+second {
			return fmt.Errorf("of %d events: syslog %d, HEC %d, webhook %d", first+second, s, h, w)
		}
		return nil
	})
	// Delivery is at least once (docs/SIEM.md): a batch the collector
	// indexed just before the SIGKILL, and not yet acknowledged to the bus,
	// comes again. The outage after the restart indexes nothing twice: the
	// collector's acknowledgement is waited for.
	for id, n := range hec.Got() {
		k, err := strconv.Atoi(strings.TrimPrefix(id, "siem-"))
		if err == nil && k >= first && n != 1 {
			t.Errorf("the collector indexed %s %d times across the outage, want exactly once", id, n)
		}
	}
	if hook.BadSigs != 0 || hec.NoAuth != 0 {
		t.Errorf("%d webhook requests with a bad signature, %d collector requests without the token", hook.BadSigs, hec.NoAuth)
	}

	// Each forwarder's metrics on dev's /metrics.
	resp, err := http.Get(d.metrics + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	metrics, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, f := range []string{"syslog", "hec", "webhook"} {
		for _, m := range []string{"delivered_total", "failed_total", "retries_total", "parked_total", "lag_seconds", "delivery_seconds_bucket"} {
			if !strings.Contains(string(metrics), "auditledger_forwarder_"+m+`{forwarder="`+f+`"`) {
				t.Errorf("/metrics lacks auditledger_forwarder_%s for %s", m, f)
			}
		}
	}
	if !regexp.MustCompile(`auditledger_forwarder_failed_total\{forwarder="hec"\} [1-9]`).Match(metrics) {
		t.Errorf("the collector's outage does not show in failed_total:\n%s", regexp.MustCompile(`(?m)^auditledger_forwarder_failed.*$`).FindAll(metrics, -1))
	}

	// The stock nats CLI, as the reader role, with a durable consumer of
	// its own on AUDIT_LEDGER: every event, from the first record.
	nats := func(args ...string) string {
		cmd := exec.Command(natstest.CLI(t), append([]string{"--server", d.nats, "--nkey", filepath.Join(d.data, "nats-keys", "reader.nk"), "--inbox-prefix", "_INBOX_reader"}, args...)...)
		out, _ := cmd.CombinedOutput()
		return string(out)
	}
	if out := nats("consumer", "add", "AUDIT_LEDGER", "siem-cli", "--pull", "--deliver", "all", "--ack", "explicit", "--filter", "audit.ledger.records", "--defaults"); !strings.Contains(out, "siem-cli") {
		t.Fatalf("nats consumer add:\n%s", out)
	}
	seen := map[string]bool{}
	re := regexp.MustCompile(`"id":"(siem-\d+)"`)
	for try := 0; try < 20 && len(seen) < first+second; try++ {
		for _, m := range re.FindAllStringSubmatch(nats("consumer", "next", "AUDIT_LEDGER", "siem-cli", "--count", "50", "--ack", "--timeout", "2s"), -1) {
			seen[m[1]] = true
		}
	}
	if len(seen) != first+second {
		t.Errorf("the nats CLI's durable consumer read %d of %d events", len(seen), first+second)
	}
}

// tail follows the sealed records: readable lines by default, a rendering
// with --format, filtered by tenant and type, from --from-index.
func TestTail(t *testing.T) {
	d := startDev(t, nil, "--projection=false")
	mustRun(t, mustReadSample(t), nil, "emit", "--nats", d.nats, "--nkey", filepath.Join(d.data, "nats-keys", "proxy.nk"))
	reader := filepath.Join(d.data, "nats-keys", "reader.nk")
	tail := func(want int, args ...string) []string {
		t.Helper()
		cmd := exec.Command(binary, append([]string{"tail", "--nats", d.nats, "--nkey", reader}, args...)...)
		var out, stderr lockedBuffer
		cmd.Stdout, cmd.Stderr = &out, &stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		defer func() { cmd.Process.Kill(); cmd.Wait() }()
		// Printed lines only: no output yet is no line, not one empty one.
		printed := func() []string { return strings.FieldsFunc(out.String(), func(r rune) bool { return r == '\n' }) }
		natstest.CheckFor(t, 60*time.Second, 50*time.Millisecond, func() error {
			if n := len(printed()); n < want {
				return fmt.Errorf("tail printed %d lines, want %d:\n%s\nstderr:\n%s", n, want, out.String(), stderr.String())
			}
			return nil
		})
		time.Sleep(300 * time.Millisecond) // nothing more should come
		lines := printed()
		if len(lines) != want {
			t.Errorf("tail %v printed %d lines, want %d:\n%s", args, len(lines), want, out.String())
		}
		return lines
	}
	// The sample's tenant: dev's own records (its writer's clock status,
	// its tenant's identity snapshot) are not the sample's.
	lines := tail(12, "--from-index", "0", "--tenant", "acme")
	if !strings.Contains(lines[0], "session.started") || !strings.Contains(lines[1], "SELECT id, email FROM customers") {
		t.Errorf("readable lines:\n%s", strings.Join(lines, "\n"))
	}
	blocked := -1 // the index the sample's command.blocked was sealed at
	for _, l := range lines {
		if strings.Contains(l, "command.blocked") {
			blocked, _ = strconv.Atoi(strings.Fields(l)[0])
		}
	}
	lines = tail(3, "--from-index", "0", "--type", "command.executed", "--tenant", "acme", "--format", "ocsf")
	for _, l := range lines {
		if !strings.Contains(l, `"class_uid":6005`) || !strings.Contains(l, `"leaf":"`) {
			t.Errorf("OCSF line: %s", l)
		}
	}
	lines = tail(1, "--from-index", strconv.Itoa(blocked), "--type", "command.blocked", "--format", "cef")
	if !strings.HasPrefix(lines[0], "CEF:0|auditledger|auditledger|") || !strings.Contains(lines[0], fmt.Sprintf("cn1=%d ", blocked)) {
		t.Errorf("CEF line: %s", lines[0])
	}
	if r := run(t, nil, nil, "tail", "--nats", d.nats, "--nkey", reader, "--format", "xml"); r.code == 0 || !strings.Contains(r.stderr, "want text, json, ocsf or cef") {
		t.Errorf("tail --format xml: exit %d %s", r.code, r.stderr)
	}
}
