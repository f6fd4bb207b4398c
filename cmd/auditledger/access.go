package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/auditledger/auditledger/cmd/auditledger/internal/cli"
	"github.com/auditledger/auditledger/events"
	"github.com/auditledger/auditledger/services/access"
	"github.com/auditledger/auditledger/services/api"
)

// accessWatcher follows the access grants for a gateway whose policy file
// has access rules, or returns nil when it has none. It needs the API's
// verifier key (approvals.vkey): a gateway that cannot check grants
// refuses to start rather than admit sessions it cannot judge.
func (e *env) accessWatcher(ctx context.Context, p *producer, policy, role string, log *slog.Logger) (*access.Watcher, func(context.Context), error) {
	if policy == "" {
		return nil, nil, nil
	}
	rules, err := access.LoadRules(policy)
	if err != nil || len(rules) == 0 {
		return nil, nil, err
	}
	if e.cfg.Approvals.VKey == "" {
		return nil, nil, fmt.Errorf("%s: the policy's access rules need approvals.vkey, the API's verifier key, to check grants", policy)
	}
	v, err := loadVerifier(e.cfg.Approvals.VKey)
	if err != nil {
		return nil, nil, fmt.Errorf("approvals.vkey: %w", err)
	}
	bctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	w, err := access.NewWatcher(bctx, access.WatcherConfig{JetStream: p.js, Verifier: v, Rules: rules, Emitter: p.em,
		Source: events.Source{Kind: role, Instance: e.cfg.instanceName()}, Stale: time.Duration(e.cfg.Access.Stale), Logger: log})
	if err != nil {
		return nil, nil, fmt.Errorf("%s: access rules: %w", policy, err)
	}
	run := func(ctx context.Context) {
		if err := w.Run(ctx); err != nil && ctx.Err() == nil {
			log.Error("access grant watch ended: targets that need a grant are refused", "err", err)
		}
	}
	return w, run, nil
}

func accessRequest(c *cobra.Command) cli.Run {
	fs := cli.Describe(c, "access request --target T [--start TIME] --for DURATION --reason TEXT [--tenant T]",
		"Asks for just-in-time access to a target (its name, as events record it)\nfor a bounded time. Reviewers from the groups the target's access rule names\napprove or deny it (never you); once approved, the gateways admit your\nsessions to the target from --start (default: the approval) for --for, and end\nthem when the grant ends or is revoked. A request not approved before its\nstart expires. Prints the request's id.")
	af := addAPIFlags(fs)
	target := fs.String("target", "", "the target's name (required)")
	start := fs.String("start", "", "when the access begins, RFC 3339 (2026-12-07T14:00:00Z) or a delay from now (+30m); default: when approved")
	dur := fs.String("for", "", "how long, e.g. 2h (required; at most the rule's max_duration)")
	reason := fs.String("reason", "", "why the access is needed (required)")
	tenant := fs.String("tenant", "", "the tenant (default: your one tenant, or the API's)")
	asJSON := fs.Bool("json", false, "print the request as JSON")
	return func(ctx context.Context, args []string, _ io.Reader, stdout, stderr io.Writer) error {
		if err := cli.Required(fs, "target", "for", "reason"); err != nil {
			return err
		}
		st := *start
		if d, ok := strings.CutPrefix(st, "+"); ok {
			delay, err := time.ParseDuration(d)
			if err != nil {
				return fmt.Errorf("access request: --start %s: want RFC 3339 or +DURATION", st)
			}
			st = time.Now().Add(delay).UTC().Format(time.RFC3339)
		}
		var r access.Request
		if err := af.call(ctx, http.MethodPost, "/v1/access-requests", api.AccessAsk{Tenant: *tenant, Target: *target, Start: st, Duration: *dur, Reason: *reason}, &r); err != nil {
			return err
		}
		return printAccess(stdout, &r, *asJSON)
	}
}

func accessBreakGlass(c *cobra.Command) cli.Run {
	fs := cli.Describe(c, "access break-glass --target T --reason TEXT [--tenant T]",
		"Takes an emergency grant on a target at once, without approval, for the\nfixed duration its access rule's break_glass names. Only members of its\nbreak-glass groups may; the grant is recorded with break_glass and\nreview_required, so that it alerts and is reviewed afterwards.")
	af := addAPIFlags(fs)
	target := fs.String("target", "", "the target's name (required)")
	reason := fs.String("reason", "", "what the emergency is (required)")
	tenant := fs.String("tenant", "", "the tenant (default: your one tenant, or the API's)")
	asJSON := fs.Bool("json", false, "print the grant as JSON")
	return func(ctx context.Context, args []string, _ io.Reader, stdout, stderr io.Writer) error {
		if err := cli.Required(fs, "target", "reason"); err != nil {
			return err
		}
		var r access.Request
		if err := af.call(ctx, http.MethodPost, "/v1/access-requests", api.AccessAsk{Tenant: *tenant, Target: *target, Reason: *reason, BreakGlass: true}, &r); err != nil {
			return err
		}
		return printAccess(stdout, &r, *asJSON)
	}
}

func printAccess(w io.Writer, r *access.Request, asJSON bool) error {
	if asJSON {
		return printJSON(w, r)
	}
	switch {
	case r.Status.Live():
		fmt.Fprintf(w, "%s %s: %s on %s from %s until %s\n", r.ID, r.Status, r.Requester.Subject, r.Target,
			r.NotBefore.Local().Format(time.DateTime), r.NotAfter.Local().Format(time.DateTime))
	default:
		fmt.Fprintf(w, "%s %s: %s on %s for %s\n", r.ID, r.Status, r.Requester.Subject, r.Target, r.Duration())
	}
	return nil
}

func accessList(c *cobra.Command) cli.Run {
	fs := cli.Describe(c, "access list [--status pending|approved|used|denied|expired|revoked|all] [--json]",
		"Lists access requests: your own, and, with the approver, security or\nauditor role, those whose tenant and target are in your scope.")
	af := addAPIFlags(fs)
	st := fs.String("status", "all", "which requests: pending, approved, used, denied, expired, revoked or all")
	asJSON := fs.Bool("json", false, "print the requests as JSON")
	return func(ctx context.Context, args []string, _ io.Reader, stdout, stderr io.Writer) error {
		var list []access.Request
		if err := af.list(ctx, "/v1/access-requests", *st, &list); err != nil {
			return err
		}
		if *asJSON {
			return printJSON(stdout, list)
		}
		if len(list) == 0 {
			fmt.Fprintln(stdout, "no access requests")
			return nil
		}
		tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "ID\tSTATUS\tREQUESTER\tTARGET\tFOR\tFROM\tUNTIL\tAPPROVALS\tREASON")
		for _, r := range list {
			from, until := "-", "-"
			if !r.NotBefore.IsZero() {
				from, until = r.NotBefore.Local().Format(time.DateTime), r.NotAfter.Local().Format(time.DateTime)
			}
			status := string(r.Status)
			if r.BreakGlass {
				status += " (break-glass)"
			}
			reason := strings.ReplaceAll(r.Reason, "\n", " ")
			if len(reason) > 40 {
				reason = reason[:37] + "..."
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%d\t%s\n", r.ID, status, r.Requester.Subject, r.Target, r.Duration(), from, until, len(r.Approvals), reason)
		}
		return tw.Flush()
	}
}

func accessApprove(c *cobra.Command) cli.Run { return accessDecide(c, "approve") }
func accessDeny(c *cobra.Command) cli.Run    { return accessDecide(c, "deny") }
func accessRevoke(c *cobra.Command) cli.Run  { return accessDecide(c, "revoke") }

func accessDecide(c *cobra.Command, verb string) cli.Run {
	help := map[string]string{
		"approve": "Approves a pending access request. You must hold the approver role, have\nthe request's tenant and target in scope and be in one of its access rule's\napprover groups; you cannot approve your own. The grant is signed and takes\neffect once the rule's approvals are complete.",
		"deny":    "Denies a pending access request (as approve: role, scope, the rule's\ngroups; never your own).",
		"revoke":  "Revokes a grant, or withdraws a pending request. Its requester may, and so\nmay an approver in scope. Gateways end the grant's open sessions at once.",
	}[verb]
	fs := cli.Describe(c, "access "+verb+" ID --reason TEXT", help)
	af := addAPIFlags(fs)
	reason := fs.String("reason", "", "why (required)")
	c.Args = cli.AtMostOne
	return func(ctx context.Context, args []string, _ io.Reader, stdout, stderr io.Writer) error {
		var r access.Request
		usage := fmt.Sprintf("access %s ID --reason TEXT (see access list)", verb)
		if len(args) == 1 {
			if err := cli.Required(fs, "reason"); err != nil {
				return err
			}
		}
		if err := af.decide(ctx, args, usage, "/v1/access-requests/", verb, *reason, &r); err != nil {
			return err
		}
		return printAccess(stdout, &r, false)
	}
}
