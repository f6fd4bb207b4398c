package main

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/auditledger/auditledger/cmd/auditledger/internal/cli"
	"github.com/auditledger/auditledger/services/access"
	"github.com/auditledger/auditledger/services/api"
)

func accessReview(c *cobra.Command) cli.Run {
	fs := cli.Describe(c, "access review --tenant T --from DATE --to DATE [--json] [--sign-off --reason TEXT]",
		"Lists, for an access review, the just-in-time grants the tenant's\nidentities held in the period (a grant counts when its window overlaps it):\nby identity, each grant's target, window, revocation, approvers, break-glass\nflag and the sessions it admitted. Break-glass grants are marked \"review\nrequired\". Only the access broker's signed grants count; any other record\nunder access.granted is listed as unverified, with why. SSH certificates\nissued in the period are listed apart. Read through the API\n(GET /v1/access-reviews) with your token: the approver, security or\nauditor role, the tenant and every target in scope. DATE is RFC 3339 or\nYYYY-MM-DD (midnight UTC); the period is [--from, --to).\n\nWith --sign-off, you sign the listing you read off (POST\n/v1/access-reviews, the approver or security role): the API records\naccess.reviewed with you as the reviewer, as your token names you, and the\nSHA-256 of the listing exactly as --json prints it (docs/FORMAT.md §13.1).\nIt is refused, and the refusal recorded, when you held a grant in the\nperiod, lack the role or scope, or the listing changed since it was read.\nThere is no operator path around the API for a sign-off. Revoke what should\nnot be held with `access revoke`.")
	af := addAPIFlags(fs)
	tenant := fs.String("tenant", "", "the tenant")
	from := fs.String("from", "", "start of the period (included)")
	to := fs.String("to", "", "end of the period (excluded)")
	asJSON := fs.Bool("json", false, "print the listing as JSON (the bytes a sign-off's listing_sha256 covers)")
	signOff := fs.Bool("sign-off", false, "sign the listing off, recorded as access.reviewed")
	reason := fs.String("reason", "", "your conclusion (required with --sign-off)")
	return func(ctx context.Context, args []string, _ io.Reader, stdout, stderr io.Writer) error {
		if err := cli.Required(fs, "tenant", "from", "to"); err != nil {
			return err
		}
		if *signOff {
			if err := cli.Required(fs, "reason"); err != nil {
				return err
			}
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
		q := "?" + url.Values{"tenant": {*tenant}, "from": {start.Format(time.RFC3339)}, "to": {end.Format(time.RFC3339)}}.Encode()
		listing, err := af.do(ctx, http.MethodGet, "/v1/access-reviews"+q, nil)
		if err != nil {
			return err
		}
		var l access.Listing
		if err := json.Unmarshal(listing, &l); err != nil {
			return fmt.Errorf("access review: the API's listing: %w", err)
		}
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
		sum := sha256.Sum256(listing)
		var out api.AccessReviewed
		if err := af.call(ctx, http.MethodPost, "/v1/access-reviews"+q, api.AccessReviewSignOff{Reason: *reason, ListingSHA256: hex.EncodeToString(sum[:])}, &out); err != nil {
			return err
		}
		fmt.Fprintf(stderr, "signed off as %s: %d grant(s) of %d identities, %d unverified record(s), listing sha256 %s, recorded as access.reviewed %s\n",
			out.By, out.Grants, out.Holders, out.Unverified, out.ListingSHA256, out.EventID)
		return nil
	}
}

// printReview prints the listing as a table per identity, then the
// unverified records and the SSH certificates.
func printReview(w io.Writer, l *access.Listing) error {
	fmt.Fprintf(w, "access review of tenant %s, %s to %s\n", l.Tenant, l.From.Format(time.RFC3339), l.To.Format(time.RFC3339))
	if len(l.Grants) == 0 {
		fmt.Fprintln(w, "no grants held in the period")
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
	if tw != nil {
		if err := tw.Flush(); err != nil {
			return err
		}
	}
	if len(l.Unverified) > 0 {
		rows := make([][]any, len(l.Unverified))
		for i, u := range l.Unverified {
			rows[i] = []any{u.RecordIndex, u.Holder, u.Target, u.AccessID, u.Source, u.Reason}
		}
		if err := printSection(w, fmt.Sprintf("not counted: %d record(s) under access.granted that are not the access broker's signed grants", len(rows)),
			"INDEX\tHOLDER\tTARGET\tACCESS ID\tSOURCE\tWHY", rows); err != nil {
			return err
		}
	}
	if len(l.SSHCertificates) > 0 {
		rows := make([][]any, len(l.SSHCertificates))
		for i, c := range l.SSHCertificates {
			rows[i] = []any{c.Holder, c.Serial, c.IssuedAt.Format(time.RFC3339), c.ValidBefore, c.RecordedAs}
		}
		if err := printSection(w, fmt.Sprintf("SSH user certificates issued (credentials, not grants): %d", len(rows)),
			"HOLDER\tSERIAL\tISSUED\tVALID BEFORE\tRECORDED AS", rows); err != nil {
			return err
		}
	}
	return nil
}

// printSection prints a titled table, its columns tab-separated in head.
func printSection(w io.Writer, title, head string, rows [][]any) error {
	fmt.Fprintf(w, "\n%s\n", title)
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "  "+head)
	for _, row := range rows {
		cells := make([]string, len(row))
		for i, c := range row {
			cells[i] = fmt.Sprint(c)
		}
		fmt.Fprintln(tw, "  "+strings.Join(cells, "\t"))
	}
	return tw.Flush()
}
