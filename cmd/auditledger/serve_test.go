package main

import (
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/auditledger/auditledger/cmd/auditledger/internal/busdial"
	"github.com/auditledger/auditledger/cmd/auditledger/internal/cli"
	"github.com/auditledger/auditledger/ledger"
)

func TestDeployConfigLoads(t *testing.T) {
	c, err := loadServeConfig("../../deploy/auditledger.yaml", func(string) string { return "" })
	if err != nil {
		t.Fatal(err)
	}
	if c.Ledger.Batch != 5000 || time.Duration(c.Ledger.MaxWait) != 250*time.Millisecond || c.NATS.Replicas != 1 {
		t.Fatalf("deploy/auditledger.yaml: %+v", c)
	}
}

// A forwarder's inflight is read and passed on; a negative one is refused
// by name.
func TestForwarderInflightConfig(t *testing.T) {
	t.Setenv("AUDITLEDGER_WEBHOOK_SECRET", "k")
	p := filepath.Join(t.TempDir(), "c.yaml")
	load := func(inflight string) (serveConfig, error) {
		os.WriteFile(p, []byte("roles: [webhook-forwarder]\nwebhook_forwarder:\n  url: https://siem.example/hook\n  inflight: "+inflight+"\n"), 0o644)
		return loadServeConfig(p, func(string) string { return "" })
	}
	c, err := load("8")
	if err != nil || c.WebhookForwarder.Inflight != 8 {
		t.Errorf("inflight 8: %v, %d", err, c.WebhookForwarder.Inflight)
	}
	if _, err := load("-1"); err == nil || !strings.Contains(err.Error(), "webhook_forwarder: batch 0, inflight -1") {
		t.Errorf("inflight -1: %v", err)
	}
}

func TestServeConfigErrorsAndOverrides(t *testing.T) {
	dir := t.TempDir()
	write := func(body string) string {
		p := filepath.Join(dir, "c.yaml")
		os.WriteFile(p, []byte(body), 0o644)
		return p
	}
	noEnv := func(string) string { return "" }
	base := "ledger:\n  store: /tmp/s\n  key: /tmp/k\n"

	_, err := loadServeConfig(write(base+"  batchsize: 3\n"), noEnv)
	if err == nil || !strings.Contains(err.Error(), "line 4") || !strings.Contains(err.Error(), "batchsize") {
		t.Errorf("unknown field: %v", err)
	}
	_, err = loadServeConfig(write(base+"  bacth: 3\n"), noEnv)
	if err == nil || !strings.Contains(err.Error(), `line 4: unknown field "bacth" in the configuration`) || !strings.Contains(err.Error(), `did you mean "batch"?`) {
		t.Errorf("misspelt field: %v", err)
	}
	_, err = loadServeConfig(write("ledger: [a, b]\n"), noEnv)
	if err == nil || !strings.Contains(err.Error(), "line 1") || strings.Contains(err.Error(), "main.") {
		t.Errorf("a list where a mapping goes: %v", err)
	}
	_, err = loadServeConfig(write(base+"  max_wait: soon\n"), noEnv)
	if err == nil || !strings.Contains(err.Error(), `"soon" is not a duration`) {
		t.Errorf("bad duration: %v", err)
	}
	_, err = loadServeConfig(write("roles: [proxy]\n"+base), noEnv)
	if err == nil || !strings.Contains(err.Error(), `"proxy" is not available`) {
		t.Errorf("unknown role: %v", err)
	}
	_, err = loadServeConfig(write("roles: [ledger, api]\n"+base), noEnv)
	if err == nil || !strings.Contains(err.Error(), "oidc.issuer: required") {
		t.Errorf("api without an issuer: %v", err)
	}
	_, err = loadServeConfig(write("roles: [http-proxy]\noidc: {issuer: http://idp}\n"), noEnv)
	if err == nil || !strings.Contains(err.Error(), "http_proxy.upstream: required") {
		t.Errorf("http-proxy without an upstream: %v", err)
	}
	_, err = loadServeConfig(write("roles: [api]\noidc: {issuer: http://idp}\n"), noEnv)
	if err == nil || !strings.Contains(err.Error(), "approvals.key: required by the api role") {
		t.Errorf("api without a key to sign decisions with: %v", err)
	}
	if _, err = loadServeConfig(write("roles: [api]\noidc: {issuer: http://idp}\napprovals: {key: /k}\n"), noEnv); err != nil {
		t.Errorf("an api-only process needs no ledger settings: %v", err)
	}
	_, err = loadServeConfig(write("roles: [api]\noidc: {issuer: http://idp}\napprovals: {key: /k}\napi: {scope: {unscoped: everyone}}\n"), noEnv)
	if err == nil || !strings.Contains(err.Error(), `api.scope.unscoped: "everyone" is not none or all`) {
		t.Errorf("a bad api.scope.unscoped: %v", err)
	}
	_, err = loadServeConfig(write("roles: [api]\noidc: {issuer: http://idp}\napprovals: {key: /k}\napi: {scope: {tenant_prefix: \"x:\", target_prefix: \"x:\"}}\n"), noEnv)
	if err == nil || !strings.Contains(err.Error(), "api.scope: tenant_prefix and target_prefix are both") {
		t.Errorf("one prefix for tenants and targets: %v", err)
	}
	_, err = loadServeConfig(write("ledger:\n  key: /tmp/k\n"), noEnv)
	if err == nil || !strings.Contains(err.Error(), "ledger.store: required") {
		t.Errorf("missing store: %v", err)
	}
	_, err = loadServeConfig(write(base+"  tenant_retention: {acme: 7y}\n"), noEnv)
	if err == nil || !strings.Contains(err.Error(), "ledger.tenant_retention: the store /tmp/s is a local directory") {
		t.Errorf("per-tenant retention on a local store: %v", err)
	}
	s3base := "ledger:\n  store: s3://b/p?endpoint=h:1\n  key: /tmp/k\n"
	_, err = loadServeConfig(write(s3base+"  tenant_retention: {acme: forever}\n"), noEnv)
	if err == nil || !strings.Contains(err.Error(), "ledger.tenant_retention.acme:") {
		t.Errorf("a bad tenant retention: %v", err)
	}
	_, err = loadServeConfig(write(s3base+"  tenant_retention: {Acme: 7y}\n"), noEnv)
	if err == nil || !strings.Contains(err.Error(), `"Acme" is not a tenant`) {
		t.Errorf("a bad tenant name: %v", err)
	}
	c, err := loadServeConfig(write(s3base), func(k string) string {
		return map[string]string{"AUDITLEDGER_LEDGER_TENANT_RETENTION": "acme=7y, beta=30d"}[k]
	})
	if r, _ := c.Ledger.tenantRetention(); err != nil || len(r) != 2 || r["acme"] != 7*365*24*time.Hour || r["beta"] != 30*24*time.Hour {
		t.Errorf("AUDITLEDGER_LEDGER_TENANT_RETENTION: %v, %v", r, err)
	}
	env := map[string]string{"AUDITLEDGER_NATS_URL": "nats://a:1,nats://b:1", "AUDITLEDGER_LEDGER_BATCH": "7", "AUDITLEDGER_LEDGER_STORE": "/env/store"}
	c, err = loadServeConfig(write(base), func(k string) string { return env[k] })
	if err != nil {
		t.Fatal(err)
	}
	if c.NATS.URL != env["AUDITLEDGER_NATS_URL"] || c.Ledger.Batch != 7 || c.Ledger.Store != "/env/store" {
		t.Errorf("env overrides not applied: %+v", c)
	}
	env["AUDITLEDGER_LEDGER_BATCH"] = "many"
	if _, err := loadServeConfig(write(base), func(k string) string { return env[k] }); err == nil || !strings.Contains(err.Error(), "AUDITLEDGER_LEDGER_BATCH") {
		t.Errorf("bad env value: %v", err)
	}
}

func TestServeEnvironmentErrors(t *testing.T) {
	base := filepath.Join(t.TempDir(), "c.yaml")
	os.WriteFile(base, []byte("ledger:\n  store: /tmp/s\n  key: /tmp/k\n"), 0o644)
	for name, want := range map[string]string{
		"AUDITLEDGER_LEDGER_BATCH":          `AUDITLEDGER_LEDGER_BATCH="abc": not a whole number`,
		"AUDITLEDGER_LEDGER_REQUIRE_SIGNED": `AUDITLEDGER_LEDGER_REQUIRE_SIGNED="abc": not true or false`,
		"AUDITLEDGER_LEDGER_MAX_WAIT":       `AUDITLEDGER_LEDGER_MAX_WAIT="abc": not a duration`,
	} {
		_, err := loadServeConfig(base, func(k string) string {
			if k == name {
				return "abc"
			}
			return ""
		})
		if err == nil || !strings.Contains(err.Error(), want) || strings.Contains(err.Error(), "strconv") {
			t.Errorf("%s=abc: %v, want %q", name, err, want)
		}
	}
	if err := checkEnvNames([]string{"PATH=/bin", "AUDITLEDGER_LEDGER_BACH=10"}); err == nil || !strings.Contains(err.Error(), "did you mean AUDITLEDGER_LEDGER_BATCH?") {
		t.Errorf("misspelt variable: %v", err)
	}
	if err := checkEnvNames([]string{"AUDITLEDGER_LEDGER_BATCH=10", "AUDITLEDGER_TOKEN=x", "HOME=/root"}); err != nil {
		t.Errorf("known variables: %v", err)
	}
}

// TestReadersDoNotCreateStores: verify, checkpoint and proof read a
// store; pointed at a directory that does not exist, they say so and
// leave nothing behind.
func TestReadersDoNotCreateStores(t *testing.T) {
	missing := filepath.Join(t.TempDir(), "no-such-store")
	_, vkey, err := ledger.GenerateKey(nil, "test.auditledger.local/log")
	if err != nil {
		t.Fatal(err)
	}
	for name, cmd := range map[string]func() error{
		"verify": func() error {
			return run(t.Context(), []string{"verify", "--store", missing, "--vkey", vkey}, nil, io.Discard, io.Discard)
		},
		"checkpoint": func() error {
			return run(t.Context(), []string{"checkpoint", "--store", missing}, nil, io.Discard, io.Discard)
		},
		"proof inclusion": func() error {
			return run(t.Context(), []string{"proof", "inclusion", "--store", missing, "--index", "0"}, nil, io.Discard, io.Discard)
		},
	} {
		err := cmd()
		if err == nil || !strings.Contains(err.Error(), "does not exist") {
			t.Errorf("%s on a missing store: %v", name, err)
		}
		if _, err := os.Stat(missing); !os.IsNotExist(err) {
			t.Fatalf("%s created the store it was asked to read", name)
		}
	}
}

// TestVerifierKeyGivenAsSigningKey: a .vkey where the signing key goes is
// named as such, not met with advice about its file mode.
func TestVerifierKeyGivenAsSigningKey(t *testing.T) {
	_, vkey, err := ledger.GenerateKey(nil, "test.auditledger.local/log")
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(t.TempDir(), "ledger.vkey")
	os.WriteFile(p, []byte(vkey+"\n"), 0o644)
	if _, err := loadSigner(p); err == nil || !strings.Contains(err.Error(), "holds a verifier (public) key") || strings.Contains(err.Error(), "chmod") {
		t.Fatalf("loadSigner(.vkey): %v", err)
	}
}

func TestLogDurationsReadable(t *testing.T) {
	var b strings.Builder
	log := slog.New(slog.NewJSONHandler(&b, &slog.HandlerOptions{ReplaceAttr: cli.ReadableDurations}))
	log.Info("x", "backoff", 100*time.Millisecond)
	if !strings.Contains(b.String(), `"backoff":"100ms"`) {
		t.Fatalf("log line: %s", b.String())
	}
}

// TestServeRefusesBadNATSURL: a NATS URL that cannot name a server is
// refused when the configuration is checked, naming the setting and what
// is wrong — serve used to wait for such a NATS forever — and a password
// in it is not shown.
func TestServeRefusesBadNATSURL(t *testing.T) {
	p := filepath.Join(t.TempDir(), "c.yaml")
	os.WriteFile(p, []byte("ledger:\n  store: /tmp/s\n  key: /tmp/k\n"), 0o644)
	for url, want := range map[string]string{
		"nats://host:notaport":          `nats.url "nats://host:notaport": port "notaport" is not a number from 1 to 65535`,
		"nats://127.0.0.1:99999":        `nats.url "nats://127.0.0.1:99999": port "99999" is not a number from 1 to 65535`,
		"nats://127.0.0.1:0":            `port "0" is not a number from 1 to 65535`,
		"nats://a:4222,nats://b:x":      `nats.url "nats://b:x": port "x"`,
		"http://127.0.0.1:4222":         `scheme "http" is not one NATS speaks`,
		"nats://:4222":                  `nats.url "nats://:4222": no host`,
		"nats://alice:s3cret@host:port": `nats.url "nats://***@host:port": port "port"`,
		" ":                             `nats.url: empty`,
	} {
		_, err := loadServeConfig(p, func(k string) string {
			if k == "AUDITLEDGER_NATS_URL" {
				return url
			}
			return ""
		})
		if err == nil || !strings.Contains(err.Error(), want) || strings.Contains(err.Error(), "s3cret") {
			t.Errorf("nats.url %q: %v, want %q", url, err, want)
		}
	}
	for _, url := range []string{"nats://127.0.0.1:4222", "127.0.0.1:4222", "tls://nats.example:4222,nats://[::1]:4222", "nats://nats", "wss://u:p@nats.example/ws"} {
		if err := busdial.CheckURL("nats.url", url); err != nil {
			t.Errorf("nats.url %q refused: %v", url, err)
		}
	}
}

// The postgres proxy's databases come from the file or, comma-separated,
// from AUDITLEDGER_POSTGRES_PROXY_DATABASES, which wins.
func TestServeConfigProxyDatabases(t *testing.T) {
	p := filepath.Join(t.TempDir(), "c.yaml")
	os.WriteFile(p, []byte("ledger: {store: /tmp/s, key: /tmp/k}\npostgres_proxy: {databases: [orders, reports]}\n"), 0o644)
	c, err := loadServeConfig(p, func(string) string { return "" })
	if err != nil || strings.Join(c.PostgresProxy.Databases, "|") != "orders|reports" {
		t.Fatalf("from the file: %q %v", c.PostgresProxy.Databases, err)
	}
	c, err = loadServeConfig(p, func(k string) string {
		return map[string]string{"AUDITLEDGER_POSTGRES_PROXY_DATABASES": "app,billing"}[k]
	})
	if err != nil || strings.Join(c.PostgresProxy.Databases, "|") != "app|billing" {
		t.Fatalf("from the environment: %q %v", c.PostgresProxy.Databases, err)
	}
}
