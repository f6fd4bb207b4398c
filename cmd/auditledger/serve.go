package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net/http"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/spf13/cobra"
	"go.yaml.in/yaml/v3"

	"github.com/auditledger/auditledger/cmd/auditledger/internal/busdial"
	"github.com/auditledger/auditledger/cmd/auditledger/internal/cli"
	"github.com/auditledger/auditledger/internal/health"
	"github.com/auditledger/auditledger/internal/yamlstrict"
	"github.com/auditledger/auditledger/services/alerts"
	"github.com/auditledger/auditledger/services/identity"
)

// serveConfig is the file `serve --config` reads. deploy/auditledger.yaml
// documents every field; the AUDITLEDGER_* variables in loadServeConfig
// override the file.
type serveConfig struct {
	// Set by the dev and proxy commands, never by a file: how clients
	// authenticate (nil: OIDC as configured) and the instance name in
	// events (empty: the host name).
	auth     identity.Authenticator
	instance string
	newLog   bool   // serve --new-log
	path     string // the configuration file, if any
	// database is the projection database's URL when dev started one;
	// otherwise $AUDITLEDGER_DATABASE_URL (kept out of files: it holds a
	// password).
	database string

	Roles  []string `yaml:"roles"`
	Tenant string   `yaml:"tenant"`
	// ProducerKey signs every event this process's proxies and API
	// publish; its name is their source instance.
	ProducerKey string `yaml:"producer_key"`
	Log         struct {
		Format string `yaml:"format"`
		Level  string `yaml:"level"`
	} `yaml:"log"`
	HTTP struct {
		Listen string `yaml:"listen"`
	} `yaml:"http"`
	NATS struct {
		URL        string   `yaml:"url"`
		NKeys      string   `yaml:"nkeys"`
		Creds      string   `yaml:"creds"`
		Replicas   int      `yaml:"replicas"`
		Duplicates duration `yaml:"duplicates"`
		// Monitor is the server's HTTP monitoring URL: serve reads from
		// it whether the server fsyncs what it acknowledges.
		Monitor string `yaml:"monitor"`
	} `yaml:"nats"`
	OIDC struct {
		Issuer      string `yaml:"issuer"`
		Audience    string `yaml:"audience"`
		GroupsClaim string `yaml:"groups_claim"`
		// DevIdentities marks every identity from the issuer as a
		// development identity in events (`auditledger oidc-dev`).
		DevIdentities bool `yaml:"dev_identities"`
	} `yaml:"oidc"`
	Approvals struct {
		Key  string `yaml:"key"`
		VKey string `yaml:"vkey"`
	} `yaml:"approvals"`
	// Access: how long a gateway may go without hearing the access
	// grant state before it fails closed for targets that need a grant
	// (empty: 30s).
	Access struct {
		Stale duration `yaml:"stale"`
	} `yaml:"access"`
	// The sections of the roles (roles.go).
	roleTable `yaml:",inline"`
}

type duration time.Duration

func (d *duration) UnmarshalYAML(n *yaml.Node) error {
	v, err := time.ParseDuration(n.Value)
	if err != nil {
		return fmt.Errorf("line %d: %q is not a duration (e.g. 50ms, 5s, 10m)", n.Line, n.Value)
	}
	*d = duration(v)
	return nil
}

func (d duration) MarshalYAML() (any, error) { return time.Duration(d).String(), nil }

func defaultServeConfig() serveConfig {
	var c serveConfig
	c.Roles = []string{"ledger"}
	c.Tenant = "default"
	c.OIDC.Audience, c.OIDC.GroupsClaim = "auditledger", "groups"
	c.Log.Format, c.Log.Level = "json", "info"
	c.HTTP.Listen = defaultHTTPAddr
	c.NATS.URL = nats.DefaultURL
	c.NATS.Replicas = 1
	c.NATS.Duplicates = duration(10 * time.Minute)
	for _, r := range c.sections() {
		if d, ok := r.role.(interface{ setDefaults() }); ok {
			d.setDefaults()
		}
	}
	return c
}

// loadServeConfig reads path (if any) over the defaults, then applies
// environment overrides, then checks the result.
func loadServeConfig(path string, env func(string) string) (serveConfig, error) {
	c := defaultServeConfig()
	c.path = path
	if path != "" {
		b, err := os.ReadFile(path)
		if err != nil {
			return c, err
		}
		if err := yamlstrict.Decode(b, &c, "the configuration (deploy/auditledger.yaml documents every field)"); err != nil {
			return c, fmt.Errorf("config %s: %w", path, err)
		}
	}
	for _, o := range envOverrides(&c) {
		if v := env(o.name); v != "" {
			if err := o.set(v); err != nil {
				return c, fmt.Errorf("%s=%q: %w", o.name, v, plainly(err))
			}
		}
	}
	return c, c.check()
}

// envOverride is an AUDITLEDGER_* variable serve reads, and what it sets.
type envOverride struct {
	name string
	set  func(string) error
}

// envOverrides are the variables that override c's settings, the
// roles' own after the common ones: the one table loadServeConfig applies
// and checkEnvNames knows the names from.
func envOverrides(c *serveConfig) []envOverride {
	common := []envOverride{
		{"AUDITLEDGER_ROLES", func(v string) error { c.Roles = strings.Split(v, ","); return nil }},
		{"AUDITLEDGER_TENANT", func(v string) error { c.Tenant = v; return nil }},
		{"AUDITLEDGER_PRODUCER_KEY", func(v string) error { c.ProducerKey = v; return nil }},
		{"AUDITLEDGER_OIDC_ISSUER", func(v string) error { c.OIDC.Issuer = v; return nil }},
		{"AUDITLEDGER_OIDC_AUDIENCE", func(v string) error { c.OIDC.Audience = v; return nil }},
		{"AUDITLEDGER_OIDC_DEV_IDENTITIES", func(v string) (err error) { c.OIDC.DevIdentities, err = strconv.ParseBool(v); return }},
		{"AUDITLEDGER_APPROVALS_KEY", func(v string) error { c.Approvals.Key = v; return nil }},
		{"AUDITLEDGER_APPROVALS_VKEY", func(v string) error { c.Approvals.VKey = v; return nil }},
		{"AUDITLEDGER_LOG_FORMAT", func(v string) error { c.Log.Format = v; return nil }},
		{"AUDITLEDGER_LOG_LEVEL", func(v string) error { c.Log.Level = v; return nil }},
		{"AUDITLEDGER_HTTP_LISTEN", func(v string) error { c.HTTP.Listen = v; return nil }},
		{"AUDITLEDGER_NATS_MONITOR", func(v string) error { c.NATS.Monitor = v; return nil }},
		{"AUDITLEDGER_NATS_URL", func(v string) error { c.NATS.URL = v; return nil }},
		{"AUDITLEDGER_NATS_NKEYS", func(v string) error { c.NATS.NKeys = v; return nil }},
		{"AUDITLEDGER_NATS_CREDS", func(v string) error { c.NATS.Creds = v; return nil }},
		{"AUDITLEDGER_NATS_REPLICAS", func(v string) (err error) { c.NATS.Replicas, err = strconv.Atoi(v); return }},
		{"AUDITLEDGER_NATS_DUPLICATES", func(v string) error { return setDuration(&c.NATS.Duplicates, v) }},
	}
	for _, r := range c.sections() {
		if e, ok := r.role.(interface{ envOverrides() []envOverride }); ok {
			common = append(common, e.envOverrides()...)
		}
	}
	return common
}

// serveEnv lists the AUDITLEDGER_* variables serve reads.
func serveEnv() []string {
	var names []string
	for _, o := range envOverrides(&serveConfig{}) {
		names = append(names, o.name)
	}
	return names
}

// otherEnv are the AUDITLEDGER_* variables other commands, and the
// project's tests, read.
var otherEnv = []string{
	"AUDITLEDGER_PROXY_UPSTREAM", "AUDITLEDGER_PROXY_UPSTREAM_AUTHORIZATION", "AUDITLEDGER_TOKEN", "AUDITLEDGER_API",
	"AUDITLEDGER_CLIENT_SECRET", "AUDITLEDGER_CRASH_KILLS", "AUDITLEDGER_PRODUCER_KILLS", "AUDITLEDGER_PG_BIN",
	"AUDITLEDGER_TEST_NORACE", "AUDITLEDGER_DATABASE_URL", "AUDITLEDGER_COMPOSE_NS", "AUDITLEDGER_HEC_TOKEN", "AUDITLEDGER_WEBHOOK_SECRET",
}

// checkEnvNames refuses an AUDITLEDGER_* variable that nothing reads: a
// misspelt setting must not be ignored in silence.
func checkEnvNames(environ []string) error {
	known := slices.Concat(serveEnv(), otherEnv)
	for _, kv := range environ {
		name, _, _ := strings.Cut(kv, "=")
		if !strings.HasPrefix(name, "AUDITLEDGER_") || slices.Contains(known, name) {
			continue
		}
		if strings.HasPrefix(name, alerts.EnvPrefix) {
			continue // an alert destination's URL or key, named in the alerter's rules
		}
		if near := yamlstrict.Nearest(name, known); near != "" {
			return fmt.Errorf("%s is not a setting auditledger reads: did you mean %s?", name, near)
		}
		return fmt.Errorf("%s is not a setting auditledger reads (serve reads: %s)", name, strings.Join(serveEnv(), ", "))
	}
	return nil
}

// plainly words the standard library's parse errors for a person.
func plainly(err error) error {
	var ne *strconv.NumError
	switch {
	case errors.As(err, &ne) && ne.Func == "ParseBool":
		return errors.New("not true or false")
	case errors.As(err, &ne):
		return errors.New("not a whole number")
	case strings.HasPrefix(err.Error(), "time: "):
		return errors.New("not a duration (such as 30s, 5m or 1h)")
	}
	return err
}

// failsOpen reports whether a role to run serves while the bus is down:
// then the process starts without a bus, and dials it until it answers.
func (c *serveConfig) failsOpen() bool {
	roles := c.roles()
	for _, name := range c.Roles {
		if f, ok := roles[name].(interface{ failsOpen() bool }); ok && f.failsOpen() {
			return true
		}
	}
	return false
}

func (c *serveConfig) has(roles ...string) bool {
	for _, r := range roles {
		if slices.Contains(c.Roles, r) {
			return true
		}
	}
	return false
}

func setDuration(d *duration, v string) error {
	x, err := time.ParseDuration(v)
	*d = duration(x)
	return err
}

func (c *serveConfig) check() error {
	available := slices.Sorted(maps.Keys(c.roles()))
	if len(c.Roles) == 0 {
		return fmt.Errorf("roles: none given (available: %s)", strings.Join(available, ", "))
	}
	for _, r := range c.Roles {
		if !slices.Contains(available, r) {
			return fmt.Errorf("roles: %q is not available in this version (available: %s)", r, strings.Join(available, ", "))
		}
	}
	if !slices.Contains([]string{"json", "text"}, c.Log.Format) {
		return fmt.Errorf("log.format: %q, want json or text", c.Log.Format)
	}
	if !slices.Contains([]string{"debug", "info", "warn", "error"}, c.Log.Level) {
		return fmt.Errorf("log.level: %q, want debug, info, warn or error", c.Log.Level)
	}
	if c.NATS.Replicas < 1 || c.NATS.Replicas > 5 {
		return fmt.Errorf("nats.replicas: %d, want 1 to 5", c.NATS.Replicas)
	}
	if err := busdial.CheckURL("nats.url", c.NATS.URL); err != nil {
		return err
	}
	if c.NATS.NKeys != "" && c.NATS.Creds != "" {
		return fmt.Errorf("nats: nkeys and creds given together; use one")
	}
	for _, r := range c.Roles {
		if err := c.roles()[r].check(c); err != nil {
			return err
		}
	}
	return nil
}

func serveCmd(c *cobra.Command) cli.Run {
	fs := cli.Describe(c, "serve --config FILE",
		"Runs the production roles against an external NATS JetStream, a segment store\n(S3 with Object Lock in production) and a key file. deploy/auditledger.yaml\ndocuments every setting; AUDITLEDGER_* environment variables override the\nfile. Serves /metrics, /healthz and /readyz on http.listen.\n\nRoles (roles: in the file): ledger, api, postgres-proxy, http-proxy,\nssh-proxy, projector; the SIEM forwarders syslog-forwarder, hec-forwarder and\nwebhook-forwarder (docs/SIEM.md); alerter, which raises alerts on sealed\nevents to Slack-compatible webhooks, the signed webhook and the bus\n(docs/ALERTS.md).")
	path := fs.String("config", "", "YAML configuration file")
	printCfg := fs.Bool("print-config", false, "print the effective configuration and exit")
	newLog := fs.Bool("new-log", false, "let the ledger role start a new log in a store that holds less than the bus says was sealed (use a new key; the log begins with a gap record for what the earlier log holds)")
	return stopClean(func(ctx context.Context, args []string, _ io.Reader, stdout, stderr io.Writer) error {
		if err := checkEnvNames(os.Environ()); err != nil {
			return err
		}
		cfg, err := loadServeConfig(*path, os.Getenv)
		if err != nil {
			return err
		}
		cfg.newLog = *newLog
		if *printCfg {
			return yaml.NewEncoder(stdout).Encode(cfg)
		}
		// --log-format and --log-level win over log.format and log.level.
		log := cli.LogFlags(ctx).Over(cfg.Log.Format, cfg.Log.Level).Logger(stderr)

		dial := &busdial.Dialer{URL: cfg.NATS.URL, URLKey: "nats.url", Name: "auditledger-serve", KeysDir: cfg.NATS.NKeys, Creds: cfg.NATS.Creds,
			Retry: cfg.failsOpen(), WaitCtx: ctx, Log: log}
		defer dial.Close()
		// The first role to fail ends the process: its HTTP server too.
		ctx, cancel := context.WithCancelCause(ctx)
		defer cancel(nil)
		metrics := &health.Health{}
		addr, wait, err := health.ListenAndServe(ctx, cfg.HTTP.Listen, metrics.Handler())
		if err != nil {
			return fmt.Errorf("serve: http.listen: %w", inUse(cfg.HTTP.Listen, err))
		}
		log.Info("auditledger serving", "roles", cfg.Roles, "nats", cfg.NATS.URL, "http", addr.String())
		if cfg.NATS.Replicas == 1 {
			warnUnlessFsync(ctx, cfg.NATS.Monitor, log)
		}
		err = runRoles(ctx, newEnv(&cfg, dial, metrics, log), cfg.Roles)
		cancel(err)
		if werr := wait(); err == nil {
			err = werr
		}
		if err != nil {
			log.Error("auditledger stopped", "roles", cfg.Roles, "err", err)
			return fmt.Errorf("serve: %w", err)
		}
		log.Info("auditledger stopped", "roles", cfg.Roles, "reason", context.Cause(ctx))
		return nil
	})
}

// warnUnlessFsync says, for single-replica streams, whether an
// acknowledged event survives a power loss: only if the NATS server
// fsyncs every message. The server tells its setting on its monitoring
// port (nats.monitor); without one, serve says it cannot tell.
func warnUnlessFsync(ctx context.Context, monitor string, log *slog.Logger) {
	const fix = "set jetstream { sync_interval: always } on the server (deploy/nats.conf), or run 3 replicas (nats.replicas)"
	if monitor == "" {
		log.Warn("cannot tell whether the NATS server fsyncs what it acknowledges; with 1 replica an acknowledged event survives a power loss only if it does: set nats.monitor to the server's monitoring URL to have it checked", "fix", fix)
		return
	}
	always, interval, err := busFsync(ctx, monitor)
	switch {
	case err != nil:
		log.Warn("cannot tell whether the NATS server fsyncs what it acknowledges", "monitor", monitor, "err", err, "fix", fix)
	case !always:
		log.Warn("the NATS server acknowledges events before they are on disk: with 1 replica an acknowledged event survives a crash of NATS's process but not a power loss or kernel crash",
			"sync_interval", interval, "fix", fix)
	default:
		log.Info("the NATS server fsyncs every message before acknowledging it", "monitor", monitor)
	}
}

// busFsync reads the JetStream storage setting of the NATS server whose
// monitoring endpoint is monitor (its /varz).
func busFsync(ctx context.Context, monitor string) (always bool, interval time.Duration, err error) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, "GET", strings.TrimSuffix(monitor, "/")+"/varz", nil)
	if err != nil {
		return false, 0, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return false, 0, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return false, 0, fmt.Errorf("%s/varz: %s", monitor, resp.Status)
	}
	var v struct {
		JetStream struct {
			Config *struct {
				SyncInterval time.Duration `json:"sync_interval"`
				SyncAlways   bool          `json:"sync_always"`
			} `json:"config"`
		} `json:"jetstream"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&v); err != nil {
		return false, 0, fmt.Errorf("%s/varz: %w", monitor, err)
	}
	if v.JetStream.Config == nil {
		return false, 0, fmt.Errorf("%s/varz: no JetStream configuration (is JetStream enabled?)", monitor)
	}
	return v.JetStream.Config.SyncAlways, v.JetStream.Config.SyncInterval, nil
}
