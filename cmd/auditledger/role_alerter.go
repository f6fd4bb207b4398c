package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"slices"
	"time"

	"github.com/auditledger/auditledger/ledger/bus"
	"github.com/auditledger/auditledger/ledger/bus/emitter"
	"github.com/auditledger/auditledger/services/alerts"
	"github.com/auditledger/auditledger/services/siem"
)

// alerterRole is the alerter role: rules over sealed records, alerts to
// Slack-compatible webhooks, the signed webhook and the bus
// (docs/ALERTS.md). It follows AUDIT_LEDGER as bus.Forwarder("alerter")
// with the forwarders' machinery, and stores alert.raised events as a
// producer.
type alerterRole struct {
	alerts.Settings `yaml:",inline"`
	// RulesFile holds the destinations and rules instead of this section.
	RulesFile string `yaml:"rules_file"`
	// API is the API's base URL, shown to reviewers with how to decide.
	API string `yaml:"api_url"`
	// Batch is the most records per evaluation round (default 100).
	Batch int `yaml:"batch"`
	// Parked is the file records whose alert a destination refused for
	// good are appended to, with the reason.
	Parked string `yaml:"parked"`
	// State is the file the index of the last record alerted is kept in,
	// so a restart does not alert it again (empty: at least once).
	State string `yaml:"state"`

	rules []*alerts.Rule
	set   alerts.Settings
}

func (c *alerterRole) setDefaults() { c.Batch = 100 }

func (c *alerterRole) envOverrides() []envOverride {
	return []envOverride{
		{"AUDITLEDGER_ALERTER_RULES_FILE", func(v string) error { c.RulesFile = v; return nil }},
		{"AUDITLEDGER_ALERTER_API_URL", func(v string) error { c.API = v; return nil }},
		{"AUDITLEDGER_ALERTER_PARKED", func(v string) error { c.Parked = v; return nil }},
		{"AUDITLEDGER_ALERTER_STATE", func(v string) error { c.State = v; return nil }},
	}
}

func (c *alerterRole) check(*serveConfig) error {
	c.set = c.Settings
	if c.RulesFile != "" {
		if len(c.Destinations) > 0 || len(c.Rules) > 0 {
			return fmt.Errorf("alerter.rules_file: give destinations and rules in the section or in rules_file, not both")
		}
		s, err := alerts.ReadRulesFile(c.RulesFile)
		if err != nil {
			return fmt.Errorf("alerter.rules_file: %w", err)
		}
		c.set = s
	}
	section := "alerter"
	if c.RulesFile != "" {
		section = c.RulesFile
	}
	rules, err := c.set.Check(section, os.Getenv)
	if err != nil {
		return err
	}
	if len(c.set.Rules) == 0 {
		// The built-in break-glass rule alone is not a configuration: a
		// missing rules list is a mistake, not a choice.
		return fmt.Errorf("alerter.rules: none given: the alerter would raise nothing but the built-in %s alert (docs/ALERTS.md)", alerts.BreakGlassRule)
	}
	if c.Batch < 0 {
		return fmt.Errorf("alerter.batch %d: want 0 (the default) or more", c.Batch)
	}
	c.rules = rules
	return nil
}

func (c *alerterRole) prepare(ctx context.Context, e *env, log *slog.Logger) (func(context.Context) error, error) {
	_, js, err := e.dial.Connect(bus.Forwarder(alerts.Name))
	if err != nil {
		return nil, err
	}
	// alert.raised events are stored as the process's producer when the
	// keys directory holds its seed, else as the shared proxy role.
	var em *emitter.Emitter
	if slices.ContainsFunc(c.set.Destinations, func(d alerts.DestinationConfig) bool { return d.Kind == alerts.KindEvent }) {
		principal := bus.Proxy
		if e.dial.HasSeed(bus.Producer(e.cfg.instanceName())) {
			principal = bus.Producer(e.cfg.instanceName())
		}
		_, pjs, err := e.dial.Connect(principal)
		if err != nil {
			return nil, err
		}
		if em, err = emitter.New(emitter.Config{JetStream: pjs, Timeout: 2 * time.Second, Logger: log}); err != nil {
			return nil, err
		}
	}
	var sinks []*alerts.Sink
	for _, d := range c.set.Destinations {
		var sem alerts.Emitter
		if em != nil {
			sem = em
		}
		sinks = append(sinks, alerts.SinkFor(d, os.Getenv, sem))
	}
	a, err := alerts.New(alerts.Config{Rules: c.rules, Sinks: sinks, API: c.API, State: c.State, Instance: e.cfg.instanceName(), Registry: e.health.Registry(), Logger: log})
	if err == nil {
		var f *siem.Forwarder
		f, err = siem.New(siem.Config{Name: alerts.Name, JetStream: js, Destination: a, Format: siem.JSON, Batch: c.Batch, Parked: c.Parked,
			Registry: e.health.Registry(), Logger: log})
		if err == nil {
			e.health.AddReadiness("alerter", func() (string, error) { return fmt.Sprintf("%d rules, %d destinations", len(c.rules), len(sinks)), nil })
			return func(ctx context.Context) error {
				err := f.Run(ctx)
				if em != nil {
					em.Close()
				}
				return err
			}, nil
		}
	}
	if em != nil {
		em.Close()
	}
	return nil, err
}
