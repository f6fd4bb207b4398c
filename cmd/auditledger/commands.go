package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/auditledger/auditledger/cmd/auditledger/internal/bench"
	"github.com/auditledger/auditledger/cmd/auditledger/internal/cli"
	"github.com/auditledger/auditledger/internal/yamlstrict"
)

// commandTable is the command tree, one row per command: its path, a one-line
// summary, and the function that defines its flags (with describe) and
// returns what runs. Adding a command is a file with that function and a
// row here (docs/ARCHITECTURE.md, "Add a command").
func commandTable() []command {
	return []command{
		{"dev", "run the whole ledger on embedded defaults (NATS JetStream, local store, dev key)", devCmd},
		{"serve", "run production roles against external NATS, S3 and a key file (--config FILE)", serveCmd},
		{"proxy postgres", "PostgreSQL wire proxy that records every statement and result digest", proxyPostgres},
		{"proxy http", "HTTP reverse proxy that records every request and response digest", proxyHTTP},
		{"approvals list", "approval requests that proxies hold", approvalsList},
		{"access request", "ask for just-in-time access to a target", accessRequest},
		{"access list", "list access requests and grants", accessList},
		{"access approve", "approve an access request", accessApprove},
		{"access deny", "deny an access request", accessDeny},
		{"access revoke", "revoke an access grant or withdraw a request", accessRevoke},
		{"access break-glass", "take an emergency grant without approval", accessBreakGlass},
		{"access review", "list the grants held in a period and sign the review off", accessReview},
		{"approvals approve", "grant a pending approval request", approvalsApprove},
		{"approvals deny", "deny a pending approval request", approvalsDeny},
		{"query events", "sealed events from the API's read path, filtered", queryEvents},
		{"query session", "one session's timeline from the API's read path, and its gaps", querySession},
		{"policy migrate", "rewrite a version-1 gateway policy as version 2 (exemptions stated, never by omission)", policyMigrate},
		{"policy explain", "print what a policy refuses, holds, masks and lets run unheld, per group or user", policyExplain},
		{"login ssh", "get a short-lived SSH user certificate from the SSH gateway for an OIDC token, and the ssh_config to use it", loginSSH},
		{"kubeconfig", "write a kubeconfig for the Kubernetes gateway (TLS verified against its CA, tokens from kube-credential)", kubeconfigCmd},
		{"kube-credential", "print a Kubernetes ExecCredential with an OIDC token (the exec plugin of kubeconfig's kubeconfigs)", kubeCredential},
		{"token", "get an OIDC access token with the client-credentials grant", tokenCmd},
		{"oidc-dev", "serve dev's development OpenID provider on its own (to try a gateway)", oidcDev},
		{"emit", "publish events (JSON lines on stdin) to AUDIT_EVENTS, durably", emitCmd},
		{"erase", "erase a data subject: destroy the key of their sealed fields, recorded by pseudonym", eraseCmd},
		{"subject hold", "place a data subject under legal hold: erase refuses them", subjectHold},
		{"subject release", "lift a data subject's legal hold", subjectRelease},
		{"subject status", "print a data subject's pseudonym and legal hold", subjectStatus},
		{"keys generate", "create a checkpoint signing key and its public verifier key", keysGenerate},
		{"keys nats", "create one NATS nkey per bus principal and the server's authorization block", keysNATS},
		{"keys evidence", "create the SSH key evidence bundles are signed with, and its allowed_signers", keysEvidence},
		{"keys ssh-ca", "rotate the SSH gateway's user or host CA, or stage and activate its next target CA", keysSSHCA},
		{"keys pii", "create the personal-data keys bucket and tenants' search keys; list which tenants have one (never a key)", keysPII},
		{"store init", "create an S3 bucket with Object Lock (or check it), or a local store directory", storeInit},
		{"append", "validate events (JSON lines on stdin), seal them into segments, sign a checkpoint", appendCmd},
		{"verify", "check a whole store offline: records, chain, tree, checkpoints, signatures, locks, retention, legal holds", verifyCmd},
		{"legal-hold set", "record (as a legal_hold.set event), then put a range of segments under legal hold", legalHoldSet},
		{"legal-hold release", "record (as a legal_hold.released event), then release a range of segments' legal hold", legalHoldRelease},
		{"legal-hold status", "list a range of segments with their lock and legal hold as the store reports them", legalHoldStatus},
		{"replay", "play a terminal session the SSH gateway recorded, from a store, in this terminal", replayCmd},
		{"export cast", "write a terminal session the SSH gateway recorded, from a store, as an asciicast v2 file", exportCast},
		{"checkpoint", "print the latest signed checkpoint of a store", checkpointCmd},
		{"log", "print the sealed records of a store, as a table or JSON lines, filtered", logCmd},
		{"scan", "report sealed text a value detector matches (card numbers, e-mails, …), never the value", scanCmd},
		{"tail", "follow the sealed records live from the bus: readable, or JSON, OCSF, CEF", tailCmd},
		{"projections rebuild", "rebuild the PostgreSQL projection of a log from its store alone", projectionsRebuild},
		{"evidence build", "write a signed evidence bundle (tenant, framework, period) an auditor checks offline", evidenceBuild},
		{"evidence verify", "check an evidence bundle offline: signature, files, checkpoints, proofs, completeness, re-derived control tables", evidenceVerify},
		{"evidence sample", "draw a reproducible sample of a control's population, each item with its inclusion proof", evidenceSample},
		{"proof inclusion", "print a C2SP tlog-proof that one record is in the log", proofInclusion},
		{"proof consistency", "print an RFC 9162 consistency proof between two tree sizes", proofConsistency},
		{"proof verify", "check a tlog-proof against a record and a verifier key, offline", proofVerify},
		{"bench ledger", "measure append+seal, verify and proof speed on a local store", bench.Ledger},
		{"bench ingest", "measure end-to-end ingestion (publish → sealed) on the embedded NATS server", bench.Ingest},
		{"bench proxy", "pgbench directly and through the PostgreSQL proxy, side by side", bench.Proxy},
		{"bench bus", "compare ways of having events stored by JetStream (one each, batched, atomic, fast)", bench.Bus},
		{"bench read", "measure the read path: projection rebuild, projector lag, API and console latency", bench.Read},
		{"bench evidence", "measure building and verifying an evidence bundle (time, peak memory)", bench.Evidence},
		{"bench ssh", "measure the SSH gateway: bulk output and keystroke echo, directly and through it", bench.SSH},
		{"bench kube", "measure the Kubernetes gateway: kubectl get and list latency, exec throughput, directly and through it", bench.Kube},
		{"bench forward", "measure the SIEM forwarders: backlog events/s, sealed→received latency", bench.Forward},
		{"version", "print the version, source revision and Go toolchain of this binary", versionCmd},
		{"man", "write a man page for every command into a directory", manCmd},
		{"reference", "write the Markdown command reference (docs/cli) into a directory", referenceCmd},
	}
}

// command is one row of the command tree.
type command struct {
	path  string
	short string
	build cli.Build
}

// groups are the commands that only hold subcommands.
var groups = map[string]string{
	"proxy":       "run a gateway on its own: PostgreSQL or HTTP",
	"export":      "write recorded sessions in formats other tools play (export cast: asciicast v2)",
	"login":       "get credentials from a gateway (login ssh: an SSH user certificate)",
	"approvals":   "list and decide the approval requests that gateways hold",
	"access":      "just-in-time access: ask for, decide, revoke and list time-bound grants",
	"query":       "read sealed events and sessions through the API",
	"policy":      "rewrite and explain gateway policy files",
	"keys":        "create signing, bus, evidence and personal-data keys",
	"store":       "prepare a segment store",
	"legal-hold":  "put segments under legal hold, release them, and list holds (each change recorded as an event)",
	"subject":     "a data subject's legal hold (erase refuses held subjects)",
	"projections": "manage the PostgreSQL projection",
	"evidence":    "build and verify evidence bundles",
	"proof":       "print and check inclusion and consistency proofs",
	"bench":       "measure the ledger, the bus, the proxy, the read path and the forwarders",
}

// hidden commands serve the build (go generate), not users.
var hidden = []string{"reference"}

const rootLong = `auditledger — tamper-evident audit ledger

Store URLs: a directory, file:///path, or
  s3://bucket/prefix?endpoint=host:port&region=R&insecure=1&retention=7y
  (credentials from AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY).
docs/COMMANDS.md describes each command with examples.`

// run runs the command line args. Errors are printed on stderr, a wrong
// command line followed by the usage line of the command.
func run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	if len(args) > 0 && args[0] == "-version" { // the flag package's spelling, kept
		args = append([]string{"--version"}, args[1:]...)
	}
	root := newRoot()
	root.SetArgs(args)
	root.SetIn(stdin)
	root.SetOut(stdout)
	root.SetErr(stderr)
	c, err := root.ExecuteContextC(ctx)
	if err == nil {
		return nil
	}
	fmt.Fprintln(stderr, "auditledger:", err)
	var ue *cli.UsageError
	if errors.As(err, &ue) {
		use := c.UseLine()
		if c.HasAvailableSubCommands() {
			use = c.CommandPath() + " COMMAND [flags]"
		}
		fmt.Fprintf(stderr, "Usage: %s\nRun '%s --help' for more.\n", use, c.CommandPath())
	}
	return err
}

// newRoot builds the command tree from commands and groups.
func newRoot() *cobra.Command {
	var logFlags cli.Log
	root := &cobra.Command{
		Use:     "auditledger",
		Short:   "tamper-evident audit ledger",
		Long:    rootLong,
		Version: versionString(),
		PersistentPreRunE: func(c *cobra.Command, _ []string) error {
			if err := logFlags.Check(); err != nil {
				return err
			}
			c.SetContext(cli.WithLog(c.Context(), logFlags))
			return nil
		},
		SilenceErrors: true,
		SilenceUsage:  true,
	}
	root.SetVersionTemplate("{{.Version}}\n")
	root.SetFlagErrorFunc(flagError)
	logFlags.AddFlags(root.PersistentFlags())
	parents := map[string]*cobra.Command{}
	parent := func(path string) *cobra.Command {
		p, _, nested := strings.Cut(path, " ")
		if !nested {
			return root
		}
		if parents[p] == nil {
			g := &cobra.Command{Use: p, Short: groups[p], Args: unknownSub}
			g.RunE = func(c *cobra.Command, _ []string) error {
				var subs []string
				for _, s := range c.Commands() {
					subs = append(subs, s.Name())
				}
				slices.Sort(subs)
				return cli.Usagef("%q needs a subcommand: %s (see auditledger %s -h)", p, strings.Join(subs, ", "), p)
			}
			root.AddCommand(g)
			parents[p] = g
		}
		return parents[p]
	}
	for _, row := range commandTable() {
		words := strings.Fields(row.path)
		c := &cobra.Command{Use: words[len(words)-1], Short: row.short, Args: cli.NoArgs, Hidden: slices.Contains(hidden, row.path)}
		parent(row.path).AddCommand(c)
		runc := row.build(c)
		shortForms(c)
		c.RunE = func(c *cobra.Command, args []string) error {
			return runc(c.Context(), args, c.InOrStdin(), c.OutOrStdout(), c.ErrOrStderr())
		}
	}
	root.Args = unknownSub
	root.RunE = func(c *cobra.Command, _ []string) error { return c.Help() }
	return root
}

// unknownSub answers a command that does not exist below c with the
// nearest one that does.
func unknownSub(c *cobra.Command, args []string) error {
	if len(args) == 0 {
		return nil
	}
	var names []string
	for _, s := range c.Commands() {
		if s.IsAvailableCommand() {
			names = append(names, s.Name())
		}
	}
	asked := strings.TrimPrefix(cli.Path(c)+" "+args[0], " ")
	if near := yamlstrict.Nearest(args[0], names); near != "" {
		return cli.Usagef("unknown command %q: did you mean %q? (see auditledger -h)", asked, strings.TrimPrefix(cli.Path(c)+" "+near, " "))
	}
	return cli.Usagef("unknown command %q; see auditledger -h", asked)
}

// flagError names the flag a command line got wrong, and the nearest
// one the command has.
func flagError(c *cobra.Command, err error) error {
	path := cli.Path(c)
	if path == "" {
		path = "auditledger"
	}
	var names []string
	c.Flags().VisitAll(func(f *pflag.Flag) { names = append(names, f.Name) })
	c.InheritedFlags().VisitAll(func(f *pflag.Flag) { names = append(names, f.Name) })
	var ne *pflag.NotExistError
	if !errors.As(err, &ne) {
		return cli.Usagef("%s: %v (see -h)", path, err)
	}
	if short := ne.GetSpecifiedShortnames(); short != "" {
		if len(short) > 1 && slices.Contains(names, short) {
			return cli.Usagef("%s: -%s: a long flag takes two dashes: --%s", path, short, short)
		}
		return cli.Usagef("%s: unknown flag -%s (see -h)", path, short)
	}
	name := ne.GetSpecifiedName()
	if near := yamlstrict.Nearest(name, names); near != "" {
		return cli.Usagef("%s: unknown flag --%s: did you mean --%s? (see -h)", path, name, near)
	}
	return cli.Usagef("%s: unknown flag --%s (see -h)", path, name)
}

// isTerminal reports whether f is a character device (a terminal).
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}

// shortForms gives every one-letter flag of c its single-dash form (-n 5,
// -v), as the flag package took them. pflag registers a shorthand only as
// a flag is added, so the flags move to a fresh set with theirs filled in;
// they are the same *pflag.Flag values, so what the command holds of its
// own set (values, Lookup, Changed) stays true.
func shortForms(c *cobra.Command) {
	old := c.Flags()
	short := false
	old.VisitAll(func(f *pflag.Flag) {
		if len(f.Name) == 1 && f.Name != "h" && f.Shorthand == "" {
			f.Shorthand, short = f.Name, true
		}
	})
	if !short {
		return
	}
	persistent := c.PersistentFlags()
	c.ResetFlags()
	c.Flags().Init(old.Name(), pflag.ContinueOnError)
	c.Flags().SortFlags = old.SortFlags
	c.Flags().AddFlagSet(old)
	c.PersistentFlags().AddFlagSet(persistent)
}
