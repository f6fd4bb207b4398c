package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.yaml.in/yaml/v3"

	"github.com/auditledger/auditledger/ledger/ingest"
	"github.com/auditledger/auditledger/ledger/service"
	"github.com/auditledger/auditledger/ledger/storeurl"
)

// serveConfig is the file `serve --config` reads. deploy/auditledger.yaml
// documents every field; the AUDITLEDGER_* variables in loadServeConfig
// override the file.
type serveConfig struct {
	Roles []string `yaml:"roles"`
	Log   struct {
		Format string `yaml:"format"`
		Level  string `yaml:"level"`
	} `yaml:"log"`
	HTTP struct {
		Listen string `yaml:"listen"`
	} `yaml:"http"`
	NATS struct {
		URL        string   `yaml:"url"`
		Creds      string   `yaml:"creds"`
		Replicas   int      `yaml:"replicas"`
		Duplicates duration `yaml:"duplicates"`
	} `yaml:"nats"`
	Ledger struct {
		Store    string   `yaml:"store"`
		Key      string   `yaml:"key"`
		Consumer string   `yaml:"consumer"`
		Batch    int      `yaml:"batch"`
		MaxWait  duration `yaml:"max_wait"`
		LeaseTTL duration `yaml:"lease_ttl"`
	} `yaml:"ledger"`
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
	c.Log.Format, c.Log.Level = "json", "info"
	c.HTTP.Listen = "127.0.0.1:9090"
	c.NATS.URL = nats.DefaultURL
	c.NATS.Replicas = 1
	c.NATS.Duplicates = duration(10 * time.Minute)
	c.Ledger.Consumer = "ledger"
	c.Ledger.Batch = 5000
	c.Ledger.MaxWait = duration(50 * time.Millisecond)
	c.Ledger.LeaseTTL = duration(5 * time.Second)
	return c
}

// loadServeConfig reads path (if any) over the defaults, then applies
// environment overrides, then checks the result.
func loadServeConfig(path string, env func(string) string) (serveConfig, error) {
	c := defaultServeConfig()
	if path != "" {
		b, err := os.ReadFile(path)
		if err != nil {
			return c, err
		}
		dec := yaml.NewDecoder(bytes.NewReader(b))
		dec.KnownFields(true)
		if err := dec.Decode(&c); err != nil && err != io.EOF {
			return c, fmt.Errorf("config %s: %w", path, err)
		}
	}
	overrides := []struct {
		name string
		set  func(string) error
	}{
		{"AUDITLEDGER_ROLES", func(v string) error { c.Roles = strings.Split(v, ","); return nil }},
		{"AUDITLEDGER_LOG_FORMAT", func(v string) error { c.Log.Format = v; return nil }},
		{"AUDITLEDGER_LOG_LEVEL", func(v string) error { c.Log.Level = v; return nil }},
		{"AUDITLEDGER_HTTP_LISTEN", func(v string) error { c.HTTP.Listen = v; return nil }},
		{"AUDITLEDGER_NATS_URL", func(v string) error { c.NATS.URL = v; return nil }},
		{"AUDITLEDGER_NATS_CREDS", func(v string) error { c.NATS.Creds = v; return nil }},
		{"AUDITLEDGER_NATS_REPLICAS", func(v string) (err error) { c.NATS.Replicas, err = strconv.Atoi(v); return }},
		{"AUDITLEDGER_NATS_DUPLICATES", func(v string) error { return setDuration(&c.NATS.Duplicates, v) }},
		{"AUDITLEDGER_LEDGER_STORE", func(v string) error { c.Ledger.Store = v; return nil }},
		{"AUDITLEDGER_LEDGER_KEY", func(v string) error { c.Ledger.Key = v; return nil }},
		{"AUDITLEDGER_LEDGER_CONSUMER", func(v string) error { c.Ledger.Consumer = v; return nil }},
		{"AUDITLEDGER_LEDGER_BATCH", func(v string) (err error) { c.Ledger.Batch, err = strconv.Atoi(v); return }},
		{"AUDITLEDGER_LEDGER_MAX_WAIT", func(v string) error { return setDuration(&c.Ledger.MaxWait, v) }},
		{"AUDITLEDGER_LEDGER_LEASE_TTL", func(v string) error { return setDuration(&c.Ledger.LeaseTTL, v) }},
	}
	for _, o := range overrides {
		if v := env(o.name); v != "" {
			if err := o.set(v); err != nil {
				return c, fmt.Errorf("%s=%q: %w", o.name, v, err)
			}
		}
	}
	return c, c.check()
}

func setDuration(d *duration, v string) error {
	x, err := time.ParseDuration(v)
	*d = duration(x)
	return err
}

func (c *serveConfig) check() error {
	if len(c.Roles) == 0 {
		return fmt.Errorf("roles: none given (available: ledger)")
	}
	for _, r := range c.Roles {
		if r != "ledger" {
			return fmt.Errorf("roles: %q is not available in this version (available: ledger)", r)
		}
	}
	if !slices.Contains([]string{"json", "text"}, c.Log.Format) {
		return fmt.Errorf("log.format: %q, want json or text", c.Log.Format)
	}
	if !slices.Contains([]string{"debug", "info", "warn", "error"}, c.Log.Level) {
		return fmt.Errorf("log.level: %q, want debug, info, warn or error", c.Log.Level)
	}
	switch {
	case c.Ledger.Store == "":
		return fmt.Errorf("ledger.store: required (a directory or s3://bucket/prefix?endpoint=...)")
	case c.Ledger.Key == "":
		return fmt.Errorf("ledger.key: required (a key file from `auditledger keys generate`)")
	case c.NATS.Replicas < 1 || c.NATS.Replicas > 5:
		return fmt.Errorf("nats.replicas: %d, want 1 to 5", c.NATS.Replicas)
	case c.Ledger.Batch < 1:
		return fmt.Errorf("ledger.batch: must be positive")
	case c.Ledger.MaxWait <= 0 || c.Ledger.LeaseTTL < duration(time.Second):
		return fmt.Errorf("ledger.max_wait must be positive and ledger.lease_ttl at least 1s")
	}
	return nil
}

func serveCmd(ctx context.Context, args []string, _ io.Reader, stdout, stderr io.Writer) error {
	fs := newFlags("serve --config FILE",
		"Runs the production roles against an external NATS JetStream, a segment store\n(S3 with Object Lock in production) and a key file. deploy/auditledger.yaml\ndocuments every setting; AUDITLEDGER_* environment variables override the\nfile. Serves /metrics, /healthz and /readyz on http.listen.", stderr)
	path := fs.String("config", "", "YAML configuration file")
	printCfg := fs.Bool("print-config", false, "print the effective configuration and exit")
	if err := parse(fs, args); err != nil {
		return err
	}
	cfg, err := loadServeConfig(*path, os.Getenv)
	if err != nil {
		return err
	}
	if *printCfg {
		return yaml.NewEncoder(stdout).Encode(cfg)
	}
	var level slog.Level
	level.UnmarshalText([]byte(cfg.Log.Level))
	hopts := &slog.HandlerOptions{Level: level}
	var h slog.Handler = slog.NewJSONHandler(stderr, hopts)
	if cfg.Log.Format == "text" {
		h = slog.NewTextHandler(stderr, hopts)
	}
	log := slog.New(h)

	signer, err := loadSigner(cfg.Ledger.Key)
	if err != nil {
		return err
	}
	store, err := storeurl.Open(ctx, cfg.Ledger.Store)
	if err != nil {
		return err
	}
	nopts := []nats.Option{nats.Name("auditledger-ledger"), nats.MaxReconnects(-1), nats.ReconnectWait(250 * time.Millisecond)}
	if cfg.NATS.Creds != "" {
		nopts = append(nopts, nats.UserCredentials(cfg.NATS.Creds))
	}
	nc, err := nats.Connect(cfg.NATS.URL, nopts...)
	if err != nil {
		return fmt.Errorf("serve: connect %s: %w", cfg.NATS.URL, err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		return err
	}
	metrics := &service.Metrics{}
	addr, wait, err := service.ListenAndServe(ctx, cfg.HTTP.Listen, metrics.Handler())
	if err != nil {
		return fmt.Errorf("serve: http.listen %s: %w", cfg.HTTP.Listen, err)
	}
	log.Info("auditledger serving", "roles", cfg.Roles, "nats", nc.ConnectedUrlRedacted(), "store", store.Store.String(),
		"origin", signer.Name(), "http", addr.String())
	err = service.Run(ctx, service.Config{
		JetStream: js, Store: store.Store, Signer: signer, Retention: store.Retention,
		Streams:  ingest.StreamOptions{Replicas: cfg.NATS.Replicas, Duplicates: time.Duration(cfg.NATS.Duplicates)},
		Consumer: cfg.Ledger.Consumer, BatchSize: cfg.Ledger.Batch, MaxWait: time.Duration(cfg.Ledger.MaxWait),
		LeaseTTL: time.Duration(cfg.Ledger.LeaseTTL), Logger: log, Metrics: metrics,
	})
	if werr := wait(); err == nil {
		err = werr
	}
	return err
}
