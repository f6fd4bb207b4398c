package main

import (
	"context"
	"fmt"

	"github.com/spf13/pflag"

	"github.com/auditledger/auditledger/events"
	"github.com/auditledger/auditledger/ledger/piikeys"
	"github.com/auditledger/auditledger/services/api"
)

// sealedOpener shows the sealed actor e-mails (docs/FORMAT.md §1.6) of
// records a command read itself (log, tail), opened by the API (POST
// /v1/sealed/open) under the caller's token: so the API's roles and
// scopes decide who sees them, and each opening is recorded. Nil opens
// nothing.
type sealedOpener struct {
	af    apiFlags
	shown map[string]string // by tenant and token
}

// addOpenFlags adds --open and the API's flags; the opener is nil
// unless --open is given.
func addOpenFlags(fs *pflag.FlagSet) func() *sealedOpener {
	open := fs.Bool("open", false, "show sealed actor e-mails opened, through the API (POST /v1/sealed/open: role auditor or security, your tenants; each opening is recorded)")
	af := addAPIFlags(fs)
	return func() *sealedOpener {
		if !*open {
			return nil
		}
		return &sealedOpener{af: af, shown: map[string]string{}}
	}
}

// open asks the API for the e-mails of evs not opened yet.
func (o *sealedOpener) open(ctx context.Context, evs []*events.Event) error {
	if o == nil {
		return nil
	}
	var req api.OpenRequest
	asked := map[string]bool{}
	for _, ev := range evs {
		k := ev.Tenant + "\n" + ev.Actor.Email
		if _, _, ok := piikeys.ParseToken(ev.Actor.Email); !ok || asked[k] {
			continue
		}
		if _, ok := o.shown[k]; ok {
			continue
		}
		asked[k] = true
		req.Fields = append(req.Fields, api.SealedField{Tenant: ev.Tenant, Token: ev.Actor.Email})
	}
	for len(req.Fields) > 0 {
		chunk := api.OpenRequest{Fields: req.Fields[:min(len(req.Fields), api.MaxOpen)]}
		req.Fields = req.Fields[len(chunk.Fields):]
		var res api.OpenResult
		if err := o.af.call(ctx, "POST", "/v1/sealed/open", chunk, &res); err != nil {
			return fmt.Errorf("opening sealed e-mails: %w", err)
		}
		if len(res.Values) != len(chunk.Fields) {
			return fmt.Errorf("opening sealed e-mails: %d values for %d fields", len(res.Values), len(chunk.Fields))
		}
		for i, f := range chunk.Fields {
			o.shown[f.Tenant+"\n"+f.Token] = res.Values[i]
		}
	}
	return nil
}

// email is ev's actor e-mail as opened, or "" (not sealed, not opened).
func (o *sealedOpener) email(ev *events.Event) string {
	if o == nil {
		return ""
	}
	return o.shown[ev.Tenant+"\n"+ev.Actor.Email]
}

// actor is ev's actor subject, with the opened e-mail beside it.
func (o *sealedOpener) actor(ev *events.Event) string {
	if e := o.email(ev); e != "" {
		return ev.Actor.Subject + " <" + e + ">"
	}
	return ev.Actor.Subject
}
