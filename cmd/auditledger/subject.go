package main

import (
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/spf13/cobra"

	"github.com/auditledger/auditledger/cmd/auditledger/internal/cli"
	"github.com/auditledger/auditledger/events"
	"github.com/auditledger/auditledger/ledger/piikeys"
)

// A data subject's legal hold: while it is set, erase refuses them. Each
// change is recorded, naming the subject's pseudonym only. The order errs
// on the side of the hold: it is set before subject_hold.set is recorded,
// and lifted only after subject_hold.released is.

func subjectHold(c *cobra.Command) cli.Run {
	return subjectCommand(c, "subject hold", "subject hold --subject SUBJECT --issuer ISSUER --tenant T --reason TEXT [--nats URL] [--nkey FILE | --creds FILE] [--operator NAME]",
		"Places a data subject under legal hold: erase refuses them until subject release.\nThe hold is set in AUDIT_PII_KEYS, then recorded as subject_hold.set (the\nsubject's pseudonym, the reason and the operator); a hold that could not be\nrecorded stays set, and the exit code is 1.",
		true, func(ctx context.Context, k *keyAdmin, f subjectFlags, stdout io.Writer) error {
			// The pseudonym is made if the subject has none yet: their fields
			// sealed later are sealed under it, and the hold names them.
			p, err := k.keys.Pseudonym(ctx, *f.tenant, *f.issuer, *f.subject)
			if err != nil {
				return fmt.Errorf("subject hold: %w", err)
			}
			if err := k.keys.Hold(ctx, *f.tenant, *f.issuer, *f.subject, *f.reason, k.operator); err != nil {
				return fmt.Errorf("subject hold: nothing held: %w", err)
			}
			id := eventID("subject-hold", p) + "/set"
			if err := k.record(ctx, events.SubjectHoldSet, id, map[string]any{"pseudonym": p, "reason": *f.reason}); err != nil {
				return cli.Failed(fmt.Errorf("subject hold: the hold is set but not recorded: %w", err))
			}
			fmt.Fprintf(stdout, "held: erase refuses this subject until subject release\n  pseudonym  %s\n  recorded   subject_hold.set %s\n", p, id)
			return nil
		})
}

func subjectRelease(c *cobra.Command) cli.Run {
	return subjectCommand(c, "subject release", "subject release --subject SUBJECT --issuer ISSUER --tenant T [--reason TEXT] [--nats URL] [--nkey FILE | --creds FILE] [--operator NAME]",
		"Lifts a data subject's legal hold. subject_hold.released (pseudonym, reason,\noperator) is recorded first; the hold is lifted only once it is stored.",
		false, func(ctx context.Context, k *keyAdmin, f subjectFlags, stdout io.Writer) error {
			held, _, err := k.keys.Held(ctx, *f.tenant, *f.issuer, *f.subject)
			if err != nil {
				return fmt.Errorf("subject release: %w", err)
			}
			if !held {
				return cli.Failed(fmt.Errorf("subject release: the subject is not under legal hold; nothing recorded"))
			}
			p, err := k.keys.Pseudonym(ctx, *f.tenant, *f.issuer, *f.subject)
			if err != nil {
				return fmt.Errorf("subject release: %w", err)
			}
			id := eventID("subject-hold", p) + "/released"
			if err := k.record(ctx, events.SubjectHoldReleased, id, map[string]any{"pseudonym": p, "reason": *f.reason}); err != nil {
				return fmt.Errorf("subject release: the hold stays: %w", err)
			}
			if err := k.keys.Release(ctx, *f.tenant, *f.issuer, *f.subject); err != nil {
				return fmt.Errorf("subject release: subject_hold.released %s is recorded, but the hold could not be lifted (it stays; run release again): %w", id, err)
			}
			fmt.Fprintf(stdout, "released: the subject may be erased\n  pseudonym  %s\n  recorded   subject_hold.released %s\n", p, id)
			return nil
		})
}

func subjectStatus(c *cobra.Command) cli.Run {
	return subjectCommand(c, "subject status", "subject status --subject SUBJECT --issuer ISSUER --tenant T [--nats URL] [--nkey FILE | --creds FILE]",
		"Prints a data subject's pseudonym (if they have a key: fields of theirs may be\nsealed) and whether they are under legal hold, and why. Changes nothing.",
		false, func(ctx context.Context, k *keyAdmin, f subjectFlags, stdout io.Writer) error {
			p, err := k.keys.PseudonymOf(ctx, *f.tenant, *f.issuer, *f.subject)
			switch {
			case errors.Is(err, piikeys.ErrNoSubject):
				fmt.Fprintf(stdout, "key        none (nothing of theirs sealed, or erased)\n")
			case err != nil:
				return fmt.Errorf("subject status: %w", err)
			default:
				fmt.Fprintf(stdout, "key        present\npseudonym  %s\n", p)
			}
			held, why, err := k.keys.Held(ctx, *f.tenant, *f.issuer, *f.subject)
			if err != nil {
				return fmt.Errorf("subject status: %w", err)
			}
			if held {
				fmt.Fprintf(stdout, "legal hold yes (%s): erase refuses them\n", why)
			} else {
				fmt.Fprintf(stdout, "legal hold no\n")
			}
			return nil
		})
}
