package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"log/slog"
	"os"
	"slices"
	"strings"

	"github.com/auditledger/auditledger/ledger/bus"
	"github.com/auditledger/auditledger/services/siem"
)

// The SIEM forwarder roles: each follows AUDIT_LEDGER with its own
// durable consumer, as its own bus role, bus.Forwarder(name), which may
// use that consumer and no other (docs/SIEM.md).
type (
	// forwardCommon is what every forwarder section has.
	forwardCommon struct {
		Format  string   `yaml:"format"`
		Tenants []string `yaml:"tenants"`
		Types   []string `yaml:"types"`
		Batch   int      `yaml:"batch"`
		// Inflight is how many batches may be at the destination at
		// once (0: 4; syslog always 1).
		Inflight int `yaml:"inflight"`
		// Parked is the file records the destination refuses for good
		// are appended to.
		Parked string `yaml:"parked"`
	}
	syslogForwarderRole struct {
		forwardCommon `yaml:",inline"`
		Addr          string `yaml:"addr"`
		TLS           bool   `yaml:"tls"`
		// CAFile holds the CAs that sign the receiver's certificate
		// (default: the system's).
		CAFile   string `yaml:"ca_file"`
		Facility int    `yaml:"facility"`
	}
	hecForwarderRole struct {
		forwardCommon `yaml:",inline"`
		URL           string `yaml:"url"` // the token: AUDITLEDGER_HEC_TOKEN
		Index         string `yaml:"index"`
		SourceType    string `yaml:"sourcetype"`
		Ack           bool   `yaml:"ack"`
	}
	webhookForwarderRole struct {
		forwardCommon `yaml:",inline"`
		URL           string `yaml:"url"` // the secret: AUDITLEDGER_WEBHOOK_SECRET
	}
)

func (c *forwardCommon) check(section string, defaultFormat siem.Format) error {
	if c.Format == "" {
		c.Format = string(defaultFormat)
	}
	if !slices.Contains(siem.Formats, siem.Format(c.Format)) {
		return fmt.Errorf("%s.format %q: want json, ocsf or cef", section, c.Format)
	}
	if c.Batch < 0 || c.Inflight < 0 {
		return fmt.Errorf("%s: batch %d, inflight %d: want 0 (the default) or more", section, c.Batch, c.Inflight)
	}
	if _, err := siem.ParseTypes(c.Types); err != nil {
		return fmt.Errorf("%s.types: %w", section, err)
	}
	return nil
}

// run connects as forwarder name's bus role and runs a forwarder to dest.
func (c *forwardCommon) run(e *env, name string, dest siem.Destination, log *slog.Logger) (func(context.Context) error, error) {
	_, js, err := e.dial.connect(bus.Forwarder(name))
	if err != nil {
		return nil, err
	}
	types, _ := siem.ParseTypes(c.Types) // checked by check
	f, err := siem.New(siem.Config{Name: name, JetStream: js, Destination: dest, Format: siem.Format(c.Format), Filter: siem.Filter{Tenants: c.Tenants, Types: types},
		Batch: c.Batch, Inflight: c.Inflight, Parked: c.Parked, Registry: e.health.Registry(), Logger: log})
	if err != nil {
		return nil, err
	}
	e.health.AddReadiness(name, func() (string, error) { return "forwarding to " + dest.String(), nil })
	return f.Run, nil
}

func (c *syslogForwarderRole) check(*serveConfig) error {
	if c.Addr == "" {
		return fmt.Errorf("syslog_forwarder.addr: required (host:port of the syslog receiver)")
	}
	return c.forwardCommon.check("syslog_forwarder", siem.CEF)
}

func (c *syslogForwarderRole) prepare(ctx context.Context, e *env, log *slog.Logger) (func(context.Context) error, error) {
	dest := &siem.Syslog{Addr: c.Addr, Facility: c.Facility}
	if c.TLS {
		host, _, _ := strings.Cut(c.Addr, ":")
		dest.TLS = &tls.Config{ServerName: host, MinVersion: tls.VersionTLS12}
		if c.CAFile != "" {
			pem, err := os.ReadFile(c.CAFile)
			if err != nil {
				return nil, fmt.Errorf("syslog_forwarder.ca_file: %w", err)
			}
			pool := x509.NewCertPool()
			if !pool.AppendCertsFromPEM(pem) {
				return nil, fmt.Errorf("syslog_forwarder.ca_file %s: no PEM certificate in it", c.CAFile)
			}
			dest.TLS.RootCAs = pool
		}
	}
	return c.run(e, "syslog", dest, log)
}

func (c *hecForwarderRole) check(*serveConfig) error {
	if c.URL == "" {
		return fmt.Errorf("hec_forwarder.url: required (the collector's base URL, e.g. https://splunk:8088)")
	}
	if os.Getenv("AUDITLEDGER_HEC_TOKEN") == "" {
		return fmt.Errorf("hec_forwarder: set AUDITLEDGER_HEC_TOKEN to the collector's token")
	}
	return c.forwardCommon.check("hec_forwarder", siem.OCSF)
}

func (c *hecForwarderRole) prepare(ctx context.Context, e *env, log *slog.Logger) (func(context.Context) error, error) {
	st := c.SourceType
	if st == "" {
		st = "auditledger:" + c.Format
	}
	return c.run(e, "hec", &siem.HEC{URL: c.URL, Token: os.Getenv("AUDITLEDGER_HEC_TOKEN"), Index: c.Index, SourceType: st, Ack: c.Ack}, log)
}

func (c *webhookForwarderRole) check(*serveConfig) error {
	if c.URL == "" {
		return fmt.Errorf("webhook_forwarder.url: required")
	}
	if os.Getenv("AUDITLEDGER_WEBHOOK_SECRET") == "" {
		return fmt.Errorf("webhook_forwarder: set AUDITLEDGER_WEBHOOK_SECRET, the key receivers check the signature with")
	}
	return c.forwardCommon.check("webhook_forwarder", siem.JSON)
}

func (c *webhookForwarderRole) prepare(ctx context.Context, e *env, log *slog.Logger) (func(context.Context) error, error) {
	return c.run(e, "webhook", &siem.Webhook{URL: c.URL, Secret: []byte(os.Getenv("AUDITLEDGER_WEBHOOK_SECRET"))}, log)
}
