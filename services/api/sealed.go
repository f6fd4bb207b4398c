package api

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"time"

	"github.com/auditledger/auditledger/events"
	"github.com/auditledger/auditledger/ledger/piikeys"
	"github.com/auditledger/auditledger/services/gateway"
)

// Sealed fields (docs/FORMAT.md §1.6): the API seals the e-mail of the
// actor of its own events, and opens the sealed e-mail of the events it
// returns, beside the exact record (which stays as sealed).

// fieldActorEmail is the sealed actor e-mail's field name (the additional
// data of its sealing).
const fieldActorEmail = "actor.email"

// Shown in place of an e-mail that cannot be opened.
const (
	// ErasedEmail: the subject was erased (their key destroyed).
	ErasedEmail = "(erased)"
	// SealedEmail: the API has no key store to open it with.
	SealedEmail = "(sealed)"
	// UnreadableEmail: the key store could not open it (unreachable,
	// or the field is damaged); the API's log says why.
	UnreadableEmail = "(unreadable)"
)

// sealActor is actor as the API's events carry it: the e-mail sealed
// under the subject's key, or left out without a key store or when the
// key cannot be had — never in clear; then a personal subject or group
// as the gateways record it (gateway.RecordedActor), so that the API's
// decider and a gateway's requester compare alike.
func (a *api) sealActor(ctx context.Context, actor events.Actor, tenant string) events.Actor {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	switch {
	case actor.Email == "" || strings.HasPrefix(actor.Email, events.SealedPrefix):
	case a.cfg.Keys == nil:
		actor.Email = ""
	default:
		// Sealed under the raw subject, which erasure names.
		tok, err := a.cfg.Keys.Seal(ctx, tenant, actor.Issuer, actor.Subject, fieldActorEmail, actor.Email)
		if err != nil {
			a.cfg.Logger.Warn("actor e-mail not sealed: recorded without it", "err", err)
			tok = ""
		}
		actor.Email = tok
	}
	actor, err := gateway.RecordedActor(ctx, a.cfg.Keys, tenant, actor)
	if err != nil {
		a.cfg.Logger.Warn("actor subject recorded as a placeholder", "tenant", tenant, "err", err)
	}
	return actor
}

// opener opens the sealed e-mails of one answer, each token once.
type opener struct {
	a    *api
	ctx  context.Context
	seen map[string]string
}

func (a *api) opener(ctx context.Context) *opener {
	return &opener{a: a, ctx: ctx, seen: map[string]string{}}
}

// actorEmail is the e-mail of the actor of event (its JSON), as a reader
// sees it: opened when sealed, ErasedEmail once the subject was erased,
// as recorded when plain, empty when there is none.
func (o *opener) actorEmail(tenant string, event []byte) string {
	var ev struct {
		Actor struct {
			Email string `json:"email"`
		} `json:"actor"`
	}
	if json.Unmarshal(event, &ev) != nil || ev.Actor.Email == "" {
		return ""
	}
	tok := ev.Actor.Email
	if _, _, ok := piikeys.ParseToken(tok); !ok {
		return tok
	}
	if v, ok := o.seen[tenant+"\n"+tok]; ok {
		return v
	}
	v := SealedEmail
	if o.a.cfg.Keys != nil {
		var err error
		v, err = o.a.cfg.Keys.Unseal(o.ctx, tenant, fieldActorEmail, tok)
		switch {
		case errors.Is(err, piikeys.ErrErased):
			v = ErasedEmail
		case err != nil:
			o.a.cfg.Logger.Warn("sealed actor e-mail not opened", "tenant", tenant, "err", err)
			v = UnreadableEmail
		}
	}
	o.seen[tenant+"\n"+tok] = v
	return v
}
