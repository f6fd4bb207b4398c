package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/spf13/cobra"

	"github.com/auditledger/auditledger/cmd/auditledger/internal/cli"
	"github.com/auditledger/auditledger/services/policy"
)

func policyMigrate(c *cobra.Command) cli.Run {
	fs := cli.Describe(c, "policy migrate FILE [--keep-exemptions] [-o OUT]",
		"Rewrites a version-1 gateway policy file as version 2, keeping comments and\nkey order. Version 1 limits a rule with groups: to members of those groups,\nexempting everyone else without saying so; version 2 applies every rule to\neveryone and names exemptions with exempt:. By default the migrated rule\napplies to everyone, with the old exemption written as a comment in the rule,\nand each dropped exemption is named on stderr; --keep-exemptions writes it as\nexempt: {outside_groups: [...]}, the same effect as version 1.")
	keep := fs.Bool("keep-exemptions", false, "write version 1's exemptions by omission as exempt: {outside_groups: [...]} (same effect as version 1)")
	out := fs.StringP("out", "o", "", "file to write the version-2 policy to (default: stdout)")
	c.Args = cli.AtMostOne
	return func(_ context.Context, args []string, _ io.Reader, stdout, stderr io.Writer) error {
		if len(args) == 0 {
			return cli.Usagef("policy migrate: name the policy FILE (see -h)")
		}
		b, err := os.ReadFile(args[0])
		if err != nil {
			return err
		}
		v2, notes, err := policy.Migrate(args[0], b, *keep)
		if err != nil {
			return err
		}
		for _, n := range notes {
			fmt.Fprintln(stderr, "policy migrate:", n)
		}
		if *out == "" {
			_, err = stdout.Write(v2)
			return err
		}
		return os.WriteFile(*out, v2, 0o644)
	}
}

func policyExplain(c *cobra.Command) cli.Run {
	fs := cli.Describe(c, "policy explain --policy FILE [--group G]... [--user U]",
		"Prints what a gateway's policy (PostgreSQL, HTTP or Kubernetes) does to each\nrequester: what is refused (deny rules), held for an approver (approve rules),\nmasked (mask rules), allowed (a Kubernetes gateway's allow rules, which let\nrequesters read secrets) and run unheld (rules they are exempt from, and\neverything else). Without --group or --user, for a member of each group and\neach user an exemption names, and for anyone else. For a version-1 file it\nalso lists the exemptions the file makes by omission.")
	file := fs.String("policy", "", "the policy file")
	groups := fs.StringArray("group", nil, "a group the requester is a member of (repeat for several)")
	user := fs.String("user", "", "the requester's subject, as events record it (actor.subject)")
	return func(_ context.Context, _ []string, _ io.Reader, stdout, _ io.Writer) error {
		if err := cli.Required(fs, "policy"); err != nil {
			return err
		}
		p, err := policy.Load(*file)
		if err != nil {
			return err
		}
		whos := policy.Everyone(p)
		if *user != "" || len(*groups) > 0 {
			label := "user " + *user
			if *user == "" {
				label = "any user"
			}
			if len(*groups) > 0 {
				label += " in group " + strings.Join(*groups, ", ")
			} else {
				label += " in no group"
			}
			whos = []policy.Who{{User: *user, Groups: *groups, Label: label}}
		}
		return policy.Print(stdout, p, whos)
	}
}
