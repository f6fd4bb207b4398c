package gateway

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/auditledger/auditledger/events"
	"github.com/auditledger/auditledger/events/detect"
	"github.com/auditledger/auditledger/ledger/piikeys"
)

// PseudonymPrefix begins an actor subject recorded by its pseudonym
// (docs/FORMAT.md §1.6): "pseudonym:" and 32 lower-case hex digits.
const PseudonymPrefix = "pseudonym:"

// Personal returns the first built-in detector that finds something in
// v, the whole of it or inside it, or "" when none does.
func Personal(v string) string {
	if d := detect.Find([]byte(v)); d != "" {
		return d
	}
	_, counts := detect.Scrub(v)
	for _, d := range detect.Builtin {
		if counts[d] > 0 {
			return d
		}
	}
	return ""
}

// RecordedActor is a as events record it, its e-mail aside (sealed
// under the raw subject's key, before this): a subject a detector finds
// something in — an OIDC sub that is an e-mail address, a static user
// named by address — becomes PseudonymPrefix and the subject's
// pseudonym under tenant (keys.Pseudonym, which makes the subject's key
// on first use, so erasing the raw subject destroys it), and a group a
// detector finds something in becomes detect.Placeholder. Without a key
// store such a subject is recorded as the placeholder; when the store
// fails, too, and the error says why. Never in clear.
//
// The gateways and the API both record actors with it, so a requester
// as the approvals bucket holds it and a decider compare alike
// (identity.Same).
func RecordedActor(ctx context.Context, keys *piikeys.Store, tenant string, a events.Actor) (events.Actor, error) {
	var err error
	if d := personalAt("subject", a.Subject); d != "" {
		raw := a.Subject
		a.Subject = detect.Placeholder(d)
		if keys != nil {
			var p string
			if p, err = keys.Pseudonym(ctx, tenant, a.Issuer, raw); err == nil {
				a.Subject = PseudonymPrefix + p
			} else {
				err = fmt.Errorf("the pseudonym of a personal actor subject (recorded as %s): %w", a.Subject, err)
			}
		}
	}
	cloned := false // the caller's groups are left as they are
	if d := personalAt("issuer", a.Issuer); d != "" {
		a.Issuer = detect.Placeholder(d)
	}
	for i, g := range a.Groups {
		if d := personalAt("groups", g); d != "" {
			if !cloned {
				a.Groups, cloned = slices.Clone(a.Groups), true
			}
			a.Groups[i] = detect.Placeholder(d)
		}
	}
	return a, err
}

// personalAt returns the detector that finds something in v, or "" when
// none does, judged as the writer judges actor.<field> (detect.InEvent,
// which also reads a digest's shape and a pseudonym's exact form): what
// the gateways record of an actor is never what the writer refuses.
func personalAt(field, v string) string {
	if d := Personal(v); d != "" {
		return d
	}
	var inner any = v
	if field == "groups" {
		inner = []string{v}
	}
	b, err := json.Marshal(map[string]map[string]any{"actor": {field: inner}})
	if err != nil {
		return detect.Builtin[0]
	}
	if m, found, _ := detect.InEvent(b); found {
		return m.Detector
	}
	return ""
}

// SealActor is a as every producer records it: the e-mail sealed under
// the raw subject's key (FieldActorEmail, docs/FORMAT.md §1.6), or left
// out without a key store or when sealing fails, never in clear; then the
// subject, issuer and groups as RecordedActor records them. The error,
// when not nil, says what was recorded in place of what (the actor
// returned is always safe to record).
func SealActor(ctx context.Context, keys *piikeys.Store, tenant string, a events.Actor) (events.Actor, error) {
	var errs []error
	switch {
	case a.Email == "" || strings.HasPrefix(a.Email, events.SealedPrefix):
	case keys == nil:
		a.Email = ""
	default:
		// Sealed under the raw subject, which erasure names.
		tok, err := keys.Seal(ctx, tenant, a.Issuer, a.Subject, FieldActorEmail, a.Email)
		if err != nil {
			errs = append(errs, fmt.Errorf("actor e-mail not sealed, recorded without it: %w", err))
			tok = ""
		}
		a.Email = tok
	}
	a, err := RecordedActor(ctx, keys, tenant, a)
	if err != nil {
		errs = append(errs, err)
	}
	return a, errors.Join(errs...)
}
