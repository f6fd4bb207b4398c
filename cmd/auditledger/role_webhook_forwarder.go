package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"

	"github.com/auditledger/auditledger/services/siem"
)

// webhookForwarderRole is the webhook-forwarder role: sealed records to an
// HTTPS endpoint, signed with $AUDITLEDGER_WEBHOOK_SECRET, as
// bus.Forwarder("webhook").
type webhookForwarderRole struct {
	forwardCommon `yaml:",inline"`
	URL           string `yaml:"url"` // the secret: AUDITLEDGER_WEBHOOK_SECRET
}

func (c *webhookForwarderRole) envOverrides() []envOverride {
	return []envOverride{
		{"AUDITLEDGER_WEBHOOK_FORWARDER_URL", func(v string) error { c.URL = v; return nil }},
	}
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
