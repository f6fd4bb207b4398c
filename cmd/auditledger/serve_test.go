package main

import (
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/auditledger/auditledger/ledger"
)

func TestDeployConfigLoads(t *testing.T) {
	c, err := loadServeConfig("../../deploy/auditledger.yaml", func(string) string { return "" })
	if err != nil {
		t.Fatal(err)
	}
	if c.Ledger.Batch != 5000 || time.Duration(c.Ledger.MaxWait) != 50*time.Millisecond || c.NATS.Replicas != 1 {
		t.Fatalf("deploy/auditledger.yaml: %+v", c)
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
	_, err = loadServeConfig(write("ledger:\n  key: /tmp/k\n"), noEnv)
	if err == nil || !strings.Contains(err.Error(), "ledger.store: required") {
		t.Errorf("missing store: %v", err)
	}
	env := map[string]string{"AUDITLEDGER_NATS_URL": "nats://a:1,nats://b:1", "AUDITLEDGER_LEDGER_BATCH": "7", "AUDITLEDGER_LEDGER_STORE": "/env/store"}
	c, err := loadServeConfig(write(base), func(k string) string { return env[k] })
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
			return verifyCmd(t.Context(), []string{"--store", missing, "--vkey", vkey}, nil, io.Discard, io.Discard)
		},
		"checkpoint": func() error {
			return checkpointCmd(t.Context(), []string{"--store", missing}, nil, io.Discard, io.Discard)
		},
		"proof inclusion": func() error {
			return proofInclusion(t.Context(), []string{"--store", missing, "--index", "0"}, nil, io.Discard, io.Discard)
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
	log := slog.New(slog.NewJSONHandler(&b, &slog.HandlerOptions{ReplaceAttr: readableDurations}))
	log.Info("x", "backoff", 100*time.Millisecond)
	if !strings.Contains(b.String(), `"backoff":"100ms"`) {
		t.Fatalf("log line: %s", b.String())
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
