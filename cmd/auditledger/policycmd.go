package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/auditledger/auditledger/services/policy"
)

func policyMigrate(_ context.Context, args []string, _ io.Reader, stdout, stderr io.Writer) error {
	fs := newFlags("policy migrate FILE [--keep-exemptions] [-o OUT]", "Rewrites a version-1 policy file as version 2, keeping comments and key order.\nVersion 1 limits a rule with groups: to members of those groups, exempting\neveryone else without saying so; version 2 applies every rule to everyone\nand names exemptions with exempt:. By default the migrated rule applies to\neveryone, with the old exemption written as a comment above it, and each\ndropped exemption is named on stderr; --keep-exemptions writes it as\nexempt: {outside_groups: [...]}, the same effect as version 1.", stderr)
	keep := fs.Bool("keep-exemptions", false, "write version 1's exemptions by omission as exempt: {outside_groups: [...]} (same effect as version 1)")
	out := fs.String("o", "", "file to write the version-2 policy to (default: stdout)")
	file, err := parseWithFile(fs, args)
	if err != nil {
		return err
	}
	b, err := os.ReadFile(file)
	if err != nil {
		return err
	}
	v2, notes, err := policy.Migrate(file, b, *keep)
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

func policyExplain(_ context.Context, args []string, _ io.Reader, stdout, stderr io.Writer) error {
	fs := newFlags("policy explain --policy FILE [--group G]... [--user U]", "Prints what a gateway's policy (PostgreSQL or HTTP) does to each requester:\nwhat is refused (deny rules), held for an approver (approve rules), masked\n(mask rules) and run unheld (rules they are exempt from, and everything\nelse). Without --group or --user, for a member of each group and each user an\nexemption names, and for anyone else. For a version-1 file it also lists the\nexemptions the file makes by omission.", stderr)
	file := fs.String("policy", "", "the policy file")
	var groups listFlag
	fs.Var(&groups, "group", "a group the requester is a member of (repeat for several)")
	user := fs.String("user", "", "the requester's subject, as events record it (actor.subject)")
	if err := parse(fs, args); err != nil {
		return err
	}
	if err := required(fs, "policy"); err != nil {
		return err
	}
	p, err := policy.Load(*file)
	if err != nil {
		return err
	}
	whos := policy.Everyone(p)
	if *user != "" || len(groups) > 0 {
		label := "user " + *user
		if *user == "" {
			label = "any user"
		}
		if len(groups) > 0 {
			label += " in group " + strings.Join(groups, ", ")
		} else {
			label += " in no group"
		}
		whos = []policy.Who{{User: *user, Groups: groups, Label: label}}
	}
	return policy.Print(stdout, p, whos)
}

// parseWithFile parses flags before and after one FILE argument.
func parseWithFile(fs *flag.FlagSet, args []string) (string, error) {
	var file string
	for i, a := range args {
		if a != "" && a[0] != '-' && (i == 0 || !takesValue(fs, args[i-1])) {
			file, args = a, append(args[:i:i], args[i+1:]...)
			break
		}
	}
	if err := parse(fs, args); err != nil {
		return "", err
	}
	if file == "" {
		return "", fmt.Errorf("%s: name the policy FILE (see -h)", strings.Join(strings.Fields(fs.Name())[:2], " "))
	}
	return file, nil
}

// takesValue reports whether arg is a flag of fs that reads the next
// argument as its value.
func takesValue(fs *flag.FlagSet, arg string) bool {
	name, _, hasValue := strings.Cut(strings.TrimLeft(arg, "-"), "=")
	f := fs.Lookup(name)
	if f == nil || hasValue || !strings.HasPrefix(arg, "-") {
		return false
	}
	b, ok := f.Value.(interface{ IsBoolFlag() bool })
	return !ok || !b.IsBoolFlag()
}

// listFlag collects a repeated flag.
type listFlag []string

func (l *listFlag) String() string { return strings.Join(*l, ",") }

func (l *listFlag) Set(v string) error {
	*l = append(*l, v)
	return nil
}
