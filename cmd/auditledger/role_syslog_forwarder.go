package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"log/slog"
	"os"
	"strings"

	"github.com/auditledger/auditledger/services/siem"
)

// syslogForwarderRole is the syslog-forwarder role: sealed records to a
// syslog receiver (RFC 5424 over TCP or TLS), as bus.Forwarder("syslog").
type syslogForwarderRole struct {
	forwardCommon `yaml:",inline"`
	Addr          string `yaml:"addr"`
	TLS           bool   `yaml:"tls"`
	// CAFile holds the CAs that sign the receiver's certificate
	// (default: the system's).
	CAFile   string `yaml:"ca_file"`
	Facility int    `yaml:"facility"`
}

func (c *syslogForwarderRole) envOverrides() []envOverride {
	return []envOverride{
		{"AUDITLEDGER_SYSLOG_FORWARDER_ADDR", func(v string) error { c.Addr = v; return nil }},
	}
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
