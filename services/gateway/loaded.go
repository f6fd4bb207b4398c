package gateway

import (
	"context"
	"fmt"
	"time"

	"github.com/auditledger/auditledger/events"
	"github.com/auditledger/auditledger/events/detect"
	"github.com/auditledger/auditledger/services/internal/policyfile"
)

// PolicyLoaded is the payload of policy.loaded: the file, its version
// and digest, and the exemptions it makes by omission (always a list,
// empty for a file that makes none).
func PolicyLoaded(l *policyfile.Loaded) map[string]any {
	om := l.Omissions
	if om == nil {
		om = []policyfile.Omission{}
	}
	return map[string]any{"file": l.Source.File, "version": l.Source.Version, "sha256": l.Source.SHA256,
		"exemptions_by_omission": om}
}

// recordPolicyLoaded records policy.loaded, stored, before the gateway
// serves: each start is on record, with the file it enforced.
func (g *Gateway) recordPolicyLoaded(ctx context.Context) error {
	l := g.cfg.Policy
	if l == nil {
		return nil
	}
	body, err := encodePayload(PolicyLoaded(l), nil)
	if err != nil {
		return err
	}
	ev := &events.Event{Version: events.Version, Type: events.PolicyLoaded, Time: time.Now().UTC(), Tenant: g.cfg.Tenant,
		Source: g.source, Actor: events.Actor{Issuer: "auditledger", Subject: g.cfg.Instance, Kind: events.Machine}, Payload: body}
	ev.ID = "policy-loaded/" + detect.RandomHex(8)
	if err := g.emit(ctx, ev); err != nil {
		return fmt.Errorf("%s: policy.loaded for %s: %w: %w; the gateway does not start", g.cfg.Name, l.Source.File, ErrNotRecorded, err)
	}
	switch {
	case len(l.Omissions) > 0:
		g.cfg.Logger.Warn("the policy exempts groups by omission (version 1): migrate it to version 2 with auditledger policy migrate",
			"file", l.Source.File, "exemptions", len(l.Omissions))
	case l.Source.Version == 1:
		g.cfg.Logger.Warn("the policy is version 1, where a rule limited to groups exempts everyone else: migrate it to version 2 with auditledger policy migrate",
			"file", l.Source.File)
	}
	return nil
}
