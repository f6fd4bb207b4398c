package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"

	"github.com/auditledger/auditledger/services/siem"
)

// hecForwarderRole is the hec-forwarder role: sealed records to a Splunk
// HTTP Event Collector, as bus.Forwarder("hec"). The token is read from
// $AUDITLEDGER_HEC_TOKEN.
type hecForwarderRole struct {
	forwardCommon `yaml:",inline"`
	URL           string `yaml:"url"` // the token: AUDITLEDGER_HEC_TOKEN
	Index         string `yaml:"index"`
	SourceType    string `yaml:"sourcetype"`
	Ack           bool   `yaml:"ack"`
}

func (c *hecForwarderRole) envOverrides() []envOverride {
	return []envOverride{
		{"AUDITLEDGER_HEC_FORWARDER_URL", func(v string) error { c.URL = v; return nil }},
	}
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
