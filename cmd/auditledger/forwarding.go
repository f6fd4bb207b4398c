package main

import (
	"context"
	"fmt"
	"log/slog"
	"slices"

	"github.com/auditledger/auditledger/ledger/bus"
	"github.com/auditledger/auditledger/services/siem"
)

// forwardCommon is what every forwarder section has. forwardCommon is what
// the SIEM forwarder roles share: each follows AUDIT_LEDGER with its own
// durable consumer, as its own bus principal, bus.Forwarder(name), which may
// use that consumer and no other (docs/SIEM.md).
type forwardCommon struct {
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
	_, js, err := e.dial.Connect(bus.Forwarder(name))
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
