package test

import (
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/auditledger/auditledger/events"
	"github.com/auditledger/auditledger/internal/oidcdev"
	"github.com/auditledger/auditledger/services/approvals"
	"github.com/auditledger/auditledger/services/identity"
	"github.com/auditledger/auditledger/test/natstest"
	"github.com/auditledger/auditledger/test/testnet"
)

// TestServeAllRoles runs `serve` as production would, every role in one
// process against an external NATS and an OIDC provider: psql through the
// PostgreSQL proxy, curl through the HTTP proxy, an approval decided
// through the API with the CLI, all in the verified ledger.
func TestServeAllRoles(t *testing.T) {
	pg := targetPostgres(t)
	db := pg.NewDatabase(t)
	idp, err := oidcdev.Listen("127.0.0.1:0", oidcdev.Config{Audience: "auditledger", Users: []oidcdev.User{
		{Name: "dana", Secret: "d", Email: "dana@example.com", Groups: []string{"dba"}},
		{Name: "erin", Secret: "e", Groups: []string{"change-board", "tenant:acme", "target:orders", "target:hello"}},
	}})
	if err != nil {
		t.Fatal(err)
	}
	defer idp.Close()
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// The upstream got the proxy's credential (and echoes it: the
		// proxy redacts its own credential from every response).
		who := "someone else"
		if r.Header.Get("Authorization") == "Bearer service-secret" {
			who = "the service"
		}
		io.WriteString(w, "hello from "+r.URL.Path+" as "+who+", "+r.Header.Get("Authorization")+"\n")
	}))
	defer up.Close()

	srv := natstest.StartSecure(t)
	keys, storeDir, dir := t.TempDir(), t.TempDir(), t.TempDir()
	mustRun(t, nil, nil, "keys", "generate", "--out", keys)
	mustRun(t, nil, nil, "keys", "generate", "--out", keys, "--file", "approvals", "--name", "api.test/approvals")
	policy := filepath.Join(dir, "pg-policy.yaml")
	os.WriteFile(policy, []byte("version: 1\napprove:\n  - id: ddl\n    kinds: [CREATE]\n    timeout: 2m\n"), 0o644)
	pgAddr, httpAddr, apiAddr, healthAddr := testnet.Addr(t), testnet.Addr(t), testnet.Addr(t), testnet.Addr(t)
	config := filepath.Join(dir, "auditledger.yaml")
	os.WriteFile(config, []byte(fmt.Sprintf(`roles: [ledger, api, postgres-proxy, http-proxy]
tenant: acme
log: {format: text}
http: {listen: %q}
nats: {url: %q, nkeys: %q}
oidc: {issuer: %q, audience: auditledger}
api:
  listen: %q
  roles: {approver: [change-board]}
approvals: {key: %q, vkey: %q}
postgres_proxy: {listen: %q, policy: %q, target: orders}
http_proxy: {listen: %q, upstream: %q, target: hello}
ledger: {store: %q, key: %q, max_wait: 20ms, lease_ttl: 1s}
`, healthAddr, srv.ClientURL(), srv.KeysDir, idp.Issuer, apiAddr, filepath.Join(keys, "approvals.key"), filepath.Join(keys, "approvals.vkey"), pgAddr, policy, httpAddr, up.URL, storeDir, filepath.Join(keys, "ledger.key"))), 0o644)
	serve := exec.Command(binary, "serve", "--config", config)
	serve.Env = append(os.Environ(), "AUDITLEDGER_PROXY_UPSTREAM="+pg.DSN(db), "AUDITLEDGER_PROXY_UPSTREAM_AUTHORIZATION=Bearer service-secret")
	var logs strings.Builder
	serve.Stdout, serve.Stderr = &logs, &logs
	if err := serve.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		serve.Process.Kill()
		serve.Wait()
		if t.Failed() {
			t.Logf("serve log:\n%s", logs.String())
		}
	}()
	tok := func(user, secret string) string {
		s, err := identity.ClientCredentialsToken(t.Context(), idp.Issuer, user, secret)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	dana, erin := tok("dana", "d"), tok("erin", "e")
	natstest.CheckFor(t, 30*time.Second, 50*time.Millisecond, func() error {
		for _, a := range []string{apiAddr, pgAddr, httpAddr} {
			c, err := net.Dial("tcp", a)
			if err != nil {
				return err
			}
			c.Close()
		}
		return nil
	})

	// /readyz speaks for every role the process runs.
	readyz := func(addr string) (int, string) {
		resp, err := http.Get("http://" + addr + "/readyz")
		if err != nil {
			return 0, err.Error()
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	natstest.CheckFor(t, 30*time.Second, 50*time.Millisecond, func() error {
		code, body := readyz(healthAddr)
		for _, want := range []string{"ledger: ready: writer", "api: ready: listening on " + apiAddr, "postgres-proxy: ready: listening on " + pgAddr, "http-proxy: ready: listening on " + httpAddr} {
			if code != http.StatusOK || !strings.Contains(body, want) {
				return fmt.Errorf("/readyz %d:\n%s\nwant %q", code, body, want)
			}
		}
		return nil
	})
	// A process running the API alone is ready too: it needs no streams
	// of its own set up.
	apiOnlyHealth := testnet.Addr(t)
	apiOnly := exec.Command(binary, "serve", "--config", config)
	apiOnly.Env = append(os.Environ(), "AUDITLEDGER_ROLES=api", "AUDITLEDGER_API_LISTEN="+testnet.Addr(t), "AUDITLEDGER_HTTP_LISTEN="+apiOnlyHealth)
	var apiLogs lockedBuffer
	apiOnly.Stdout, apiOnly.Stderr = &apiLogs, &apiLogs
	if err := apiOnly.Start(); err != nil {
		t.Fatal(err)
	}
	natstest.CheckFor(t, 30*time.Second, 50*time.Millisecond, func() error {
		if code, body := readyz(apiOnlyHealth); code != http.StatusOK || !strings.Contains(body, "api: ready") || strings.Contains(body, "ledger") {
			return fmt.Errorf("/readyz of an api-only process %d:\n%s\n%s", code, body, apiLogs.String())
		}
		return nil
	})
	apiOnly.Process.Signal(syscall.SIGTERM)
	apiOnly.Wait()

	curl := exec.Command("curl", "-sS", "--fail-with-body", "-H", "@-", "http://"+httpAddr+"/greet")
	curl.Stdin = strings.NewReader("Authorization: Bearer " + dana + "\n")
	if out, err := curl.Output(); err != nil || string(out) != "hello from /greet as the service, [REDACTED]\n" {
		t.Fatalf("curl through the HTTP proxy: %v %q", err, out)
	}

	host, port, _ := strings.Cut(pgAddr, ":")
	psql := exec.Command("psql", "-X", "-v", "ON_ERROR_STOP=1", "-c", "CREATE TABLE t (a int)", "-c", "INSERT INTO t VALUES (1)",
		"host="+host+" port="+port+" user=dana dbname="+db+" sslmode=disable")
	psql.Env = append(os.Environ(), "PGPASSWORD="+dana)
	var psqlOut strings.Builder
	psql.Stdout, psql.Stderr = &psqlOut, &psqlOut
	if err := psql.Start(); err != nil {
		t.Fatal(err)
	}
	erinEnv := []string{"AUDITLEDGER_TOKEN=" + erin}
	var list []approvals.Request
	natstest.CheckFor(t, 20*time.Second, 50*time.Millisecond, func() error {
		r := mustRun(t, nil, erinEnv, "approvals", "list", "--api", "http://"+apiAddr, "--json")
		list = nil
		json.Unmarshal([]byte(r.stdout), &list)
		if len(list) != 1 {
			return fmt.Errorf("pending: %s", r.stdout)
		}
		return nil
	})
	mustRun(t, nil, erinEnv, "approvals", "approve", list[0].ID, "--api", "http://"+apiAddr)
	if err := psql.Wait(); err != nil {
		t.Fatalf("psql: %v\n%s", err, psqlOut.String())
	}

	nc, js := srv.Connect(t)
	waitDrained(t, js, 30*time.Second)
	nc.Close()
	// /metrics, parsed as Prometheus parses it, has every role's figures.
	natstest.CheckFor(t, 10*time.Second, 100*time.Millisecond, func() error {
		resp, err := http.Get("http://" + healthAddr + "/metrics")
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		families, err := textParser().TextToMetricFamilies(resp.Body)
		if err != nil {
			return fmt.Errorf("/metrics does not parse: %v", err)
		}
		has := func(name, label, value string) error {
			f := families[name]
			if f == nil {
				return fmt.Errorf("/metrics lacks %s", name)
			}
			for _, m := range f.Metric {
				for _, l := range m.Label {
					if label == "" || l.GetName() == label && l.GetValue() == value {
						return nil
					}
				}
				if label == "" {
					return nil
				}
			}
			return fmt.Errorf("/metrics has no %s{%s=%q}", name, label, value)
		}
		for _, c := range []struct{ name, label, value string }{
			{"auditledger_log_size", "", ""},
			{"auditledger_publish_to_sealed_seconds", "", ""},
			{"auditledger_seal_seconds", "", ""},
			{"auditledger_http_request_seconds", "role", "api"},
			{"auditledger_proxy_record_seconds", "protocol", "postgres"},
			{"auditledger_proxy_record_seconds", "protocol", "http"},
			{"auditledger_proxy_events_total", "type", "command.executed"},
			{"auditledger_emitter_single_publishes_total", "role", "postgres-proxy"},
		} {
			if err := has(c.name, c.label, c.value); err != nil {
				return err
			}
		}
		if n := families["auditledger_publish_to_sealed_seconds"].Metric[0].GetHistogram().GetSampleCount(); n == 0 {
			return fmt.Errorf("no publish-to-sealed latency observed")
		}
		return nil
	})
	serve.Process.Signal(syscall.SIGTERM)
	if err := serve.Wait(); err != nil {
		t.Fatalf("serve did not stop cleanly: %v", err)
	}
	var story []string
	for _, s := range verifiedEvents(t, storeDir, filepath.Join(keys, "ledger.vkey")) {
		ev, p := s.Event, s.Payload
		if strings.Contains(string(s.Raw), dana) || strings.Contains(string(s.Raw), "service-secret") {
			t.Errorf("a secret is in the ledger: %s", s.Raw)
		}
		switch ev.Type {
		case events.CommandExecuted:
			story = append(story, ev.Source.Kind+" "+ev.Actor.Subject+" "+p["statement"].(string))
		case events.ApprovalGranted:
			story = append(story, "granted by "+ev.Actor.Subject)
		}
	}
	want := "http-proxy dana GET /greet, granted by erin, postgres-proxy dana CREATE TABLE t (a int), postgres-proxy dana INSERT INTO t VALUES (1)"
	if got := strings.Join(story, ", "); got != want {
		t.Errorf("ledger:\n got %s\nwant %s", got, want)
	}
}
