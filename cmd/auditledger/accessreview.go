package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/nats-io/nats.go"
	"github.com/spf13/cobra"

	"github.com/auditledger/auditledger/cmd/auditledger/internal/cli"
	"github.com/auditledger/auditledger/events"
	"github.com/auditledger/auditledger/ledger/bus"
	"github.com/auditledger/auditledger/projections"
)

// reviewedGrant is one grant of an access review's listing, as --json
// prints it and access.reviewed's listing_sha256 covers it
// (docs/FORMAT.md §13.1).
type reviewedGrant struct {
	AccessID       string    `json:"access_id"`
	Holder         string    `json:"holder"`
	Target         string    `json:"target"`
	Rule           string    `json:"rule"`
	NotBefore      time.Time `json:"not_before"`
	NotAfter       time.Time `json:"not_after"`
	RevokedAt      time.Time `json:"revoked_at,omitzero"`
	Approvers      []string  `json:"approvers"`
	BreakGlass     bool      `json:"break_glass"`
	ReviewRequired bool      `json:"review_required"`
	Sessions       int64     `json:"sessions"`
	GrantIndex     uint64    `json:"grant_index"`
}

// accessListing is the listing of an access review: the tenant, the
// period and its grants by holder, then start.
type accessListing struct {
	Tenant string          `json:"tenant"`
	From   time.Time       `json:"from"`
	To     time.Time       `json:"to"`
	Grants []reviewedGrant `json:"grants"`
}

// bytes is the listing as --json prints it: the exact bytes a sign-off's
// listing_sha256 covers.
func (l *accessListing) bytes() []byte {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetIndent("", "  ")
	_ = enc.Encode(l) // plain values only
	return b.Bytes()
}

func accessReview(c *cobra.Command) cli.Run {
	fs := cli.Describe(c, "access review --tenant T --from DATE --to DATE [--json] [--sign-off --reason TEXT --operator NAME --nats URL --nkey FILE | --creds FILE] [--database URL]",
		"Lists, for an access review, the just-in-time grants the tenant's\nidentities held in the period (a grant counts when its window overlaps it):\nby identity, each grant's target, window, revocation, approvers, break-glass\nflag and the sessions it admitted. Break-glass grants are marked \"review\nrequired\". Read from the projection ($AUDITLEDGER_DATABASE_URL unless\n--database). DATE is RFC 3339 or YYYY-MM-DD (midnight UTC); the period is\n[--from, --to).\n\nWith --sign-off, the reviewer (--operator) signs the listing off: it is\nrecorded as access.reviewed (docs/FORMAT.md §13.1: the period, the counts,\nthe reviewer, the reason and the SHA-256 of the listing exactly as --json\nprints it) on the bus as the admin role. A reviewer who held a grant in the\nperiod may not sign it off. Revoke what should not be held with `access\nrevoke`.")
	tenant := fs.String("tenant", "", "the tenant")
	from := fs.String("from", "", "start of the period (included)")
	to := fs.String("to", "", "end of the period (excluded)")
	asJSON := fs.Bool("json", false, "print the listing as JSON (the bytes a sign-off's listing_sha256 covers)")
	signOff := fs.Bool("sign-off", false, "record the review's sign-off as access.reviewed")
	reason := fs.String("reason", "", "the reviewer's conclusion (required with --sign-off)")
	database := fs.String("database", "", "postgres:// URL of the projection database (default $AUDITLEDGER_DATABASE_URL)")
	natsURL := fs.String("nats", nats.DefaultURL, "NATS server URL, to record the sign-off")
	nkey := fs.String("nkey", "", "NATS nkey seed file of the admin bus role (auditledger keys nats: admin.nk; dev: auditledger-data/nats-keys/admin.nk)")
	creds := fs.String("creds", "", "NATS JWT credentials file of an admin user (decentralized auth), instead of --nkey")
	operator := fs.String("operator", "", "the reviewer, as the sign-off records them (default: the OS user @ the host name)")
	return func(ctx context.Context, args []string, _ io.Reader, stdout, stderr io.Writer) error {
		if *database == "" {
			*database = os.Getenv("AUDITLEDGER_DATABASE_URL")
		}
		if err := cli.Required(fs, "tenant", "from", "to"); err != nil {
			return err
		}
		if *signOff {
			if err := cli.Required(fs, "reason"); err != nil {
				return err
			}
		}
		if *database == "" {
			return errors.New("access review: give --database or set AUDITLEDGER_DATABASE_URL")
		}
		start, err := parseDate("from", *from)
		if err != nil {
			return err
		}
		end, err := parseDate("to", *to)
		if err != nil {
			return err
		}
		if !start.Before(end) {
			return fmt.Errorf("access review: --from %s is not before --to %s", start.Format(time.RFC3339), end.Format(time.RFC3339))
		}
		db, err := pgxpool.New(ctx, *database)
		if err != nil {
			return fmt.Errorf("access review: --database: %w", err)
		}
		defer db.Close()
		held, err := projections.NewReader(db).HeldGrants(ctx, *tenant, start, end)
		if err != nil {
			return fmt.Errorf("access review: %w", err)
		}
		l := accessListing{Tenant: *tenant, From: start, To: end, Grants: make([]reviewedGrant, 0, len(held))}
		for _, h := range held {
			approvers := h.Approvers
			if approvers == nil {
				approvers = []string{}
			}
			l.Grants = append(l.Grants, reviewedGrant{AccessID: h.AccessID, Holder: h.Holder, Target: h.Target, Rule: h.Rule,
				NotBefore: h.NotBefore, NotAfter: h.NotAfter, RevokedAt: h.Ended, Approvers: approvers,
				BreakGlass: h.BreakGlass, ReviewRequired: h.BreakGlass, Sessions: h.Sessions, GrantIndex: h.GrantIndex})
		}
		listing := l.bytes()
		if *asJSON {
			if _, err := stdout.Write(listing); err != nil {
				return err
			}
		} else if err := printReview(stdout, &l); err != nil {
			return err
		}
		if !*signOff {
			return nil
		}
		by := operatorName(*operator)
		holders, sessions, breakGlass := map[string]bool{}, int64(0), 0
		for _, g := range l.Grants {
			holders[g.Holder] = true
			sessions += g.Sessions
			if g.BreakGlass {
				breakGlass++
			}
		}
		if holders[by] {
			return fmt.Errorf("access review: %s held a grant in the period and may not sign its review off: another reviewer must", by)
		}
		sum := sha256.Sum256(listing)
		digest := hex.EncodeToString(sum[:])
		payload, _ := json.Marshal(map[string]any{"tenant": *tenant, "from": start.Format(time.RFC3339), "to": end.Format(time.RFC3339),
			"grants": len(l.Grants), "holders": len(holders), "sessions": sessions, "break_glass": breakGlass,
			"listing_sha256": digest, "reason": *reason, "by": by})
		id := sha256.Sum256([]byte(digest + "\n" + by + "\n" + *reason))
		ev := &events.Event{Version: events.Version, ID: "access-review/" + hex.EncodeToString(id[:16]), Type: events.AccessReviewed, Time: time.Now().UTC(), Tenant: *tenant,
			Source: events.Source{Kind: "cli", Instance: bus.AdminInstance},
			Actor:  events.Actor{Issuer: cliIssuer, Subject: by, Kind: events.Human},
			Target: &events.Target{Kind: "access-review", Name: *tenant}, Payload: payload}
		rec, err := dialRecorder(ctx, stderr, "auditledger-access-review", *natsURL, *nkey, *creds, bus.Admin)
		if err != nil {
			return fmt.Errorf("access review: the bus, to record the sign-off: %w", err)
		}
		defer rec.close()
		if err := rec.record(ctx, ev, time.Minute); err != nil {
			return fmt.Errorf("access review: the sign-off was not recorded: %w", err)
		}
		fmt.Fprintf(stderr, "signed off as %s: %d grant(s) of %d identities, listing sha256 %s, recorded as access.reviewed %s\n", by, len(l.Grants), len(holders), digest, ev.ID)
		return nil
	}
}

// printReview prints the listing as a table per identity.
func printReview(w io.Writer, l *accessListing) error {
	fmt.Fprintf(w, "access review of tenant %s, %s to %s\n", l.Tenant, l.From.Format(time.RFC3339), l.To.Format(time.RFC3339))
	if len(l.Grants) == 0 {
		fmt.Fprintln(w, "no grants held in the period")
		return nil
	}
	var tw *tabwriter.Writer
	holder := ""
	for i, g := range l.Grants {
		if i == 0 || g.Holder != holder {
			if tw != nil {
				if err := tw.Flush(); err != nil {
					return err
				}
			}
			holder = g.Holder
			fmt.Fprintf(w, "\n%s\n", holder)
			tw = tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "  TARGET\tFROM\tUNTIL\tAPPROVERS\tSESSIONS\tACCESS ID\tNOTE")
		}
		until := g.NotAfter.Format(time.RFC3339)
		if !g.RevokedAt.IsZero() {
			until = g.RevokedAt.Format(time.RFC3339) + " (revoked)"
		}
		approvers := strings.Join(g.Approvers, ",")
		if approvers == "" {
			approvers = "-"
		}
		note := "-"
		if g.BreakGlass {
			note = "break-glass: review required"
		}
		fmt.Fprintf(tw, "  %s\t%s\t%s\t%s\t%d\t%s\t%s\n", g.Target, g.NotBefore.Format(time.RFC3339), until, approvers, g.Sessions, g.AccessID, note)
	}
	return tw.Flush()
}
