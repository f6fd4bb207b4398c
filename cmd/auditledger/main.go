// Command auditledger is the tamper-evident audit ledger: it appends audit
// events to a hash-chained Merkle log sealed in write-once segments, signs
// checkpoints, and verifies stores and proofs offline.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime"
	"runtime/debug"
	"slices"
	"strings"
	"syscall"

	"github.com/auditledger/auditledger/internal/yamlstrict"
)

const usage = `auditledger — tamper-evident audit ledger

Usage:
  auditledger <command> [flags]

Commands:
  dev               run the whole ledger on embedded defaults (NATS JetStream, local store, dev key)
  serve             run production roles against external NATS, S3 and a key file (--config FILE)
  proxy postgres    PostgreSQL wire proxy that records every statement and result digest
  proxy http        HTTP reverse proxy that records every request and response digest
  approvals list    approval requests that proxies hold (also: approvals approve ID, approvals deny ID)
  query events      sealed events from the API's read path, filtered (also: query session ID)
  policy migrate    rewrite a version-1 gateway policy as version 2 (exemptions stated, never by omission)
  policy explain    print what a policy refuses, holds, masks and lets run unheld, per group or user
  token             get an OIDC access token with the client-credentials grant
  oidc-dev          serve dev's development OpenID provider on its own (to try a gateway)
  emit              publish events (JSON lines on stdin) to AUDIT_EVENTS, durably
  keys generate     create a checkpoint signing key and its public verifier key
  keys nats         create one NATS nkey per bus role and the server's authorization block
  keys evidence     create the SSH key evidence bundles are signed with, and its allowed_signers
  store init        create an S3 bucket with Object Lock (or check it), or a local store directory
  append            validate events (JSON lines on stdin), seal them into segments, sign a checkpoint
  verify            check a whole store offline: records, chain, tree, checkpoints, signatures, locks
  checkpoint        print the latest signed checkpoint of a store
  log               print the sealed records of a store, as a table or JSON lines, filtered
  tail              follow the sealed records live from the bus: readable, or JSON, OCSF, CEF
  projections rebuild  rebuild the PostgreSQL projection of a log from its store alone
  evidence build    write a signed evidence bundle (tenant, framework, period) an auditor checks offline
  evidence verify   check an evidence bundle offline: signature, files, checkpoints, proofs, completeness
  proof inclusion   print a C2SP tlog-proof that one record is in the log
  proof consistency print an RFC 9162 consistency proof between two tree sizes
  proof verify      check a tlog-proof against a record and a verifier key, offline
  bench ledger      measure append+seal, verify and proof speed on a local store
  bench ingest      measure end-to-end ingestion (publish → sealed) on the embedded NATS server
  bench proxy       pgbench directly and through the PostgreSQL proxy, side by side
  bench bus         compare ways of having events stored by JetStream (one each, batched, atomic, fast)
  bench read        measure the read path: projection rebuild, projector lag, API latency
  bench evidence    measure building and verifying an evidence bundle (time, peak memory)
  bench forward     measure the SIEM forwarders: backlog events/s, sealed→received latency
  version           print the version, source revision and Go toolchain of this binary

Store URLs: a directory, file:///path, or
  s3://bucket/prefix?endpoint=host:port&region=R&insecure=1&retention=7y
  (credentials from AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY).

Run "auditledger <command> -h" for the flags of a command.
`

// exitError carries an exit code; main prints nothing more for code 1
// errors that the command already reported.
type exitError struct {
	code int
	err  error
}

func (e *exitError) Error() string { return e.err.Error() }

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	err := run(ctx, os.Args[1:], os.Stdin, os.Stdout, os.Stderr)
	if err == nil {
		return
	}
	if errors.Is(err, flag.ErrHelp) {
		os.Exit(0)
	}
	code := 2
	var ee *exitError
	if errors.As(err, &ee) {
		code = ee.code
	}
	fmt.Fprintln(os.Stderr, "auditledger:", err)
	os.Exit(code)
}

type command func(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) error

func run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		fmt.Fprint(stdout, usage)
		return nil
	}
	if args[0] == "--version" || args[0] == "-version" {
		args = append([]string{"version"}, args[1:]...)
	}
	commands := map[string]command{
		"keys generate":       keysGenerate,
		"keys nats":           keysNATS,
		"keys evidence":       keysEvidence,
		"append":              appendCmd,
		"verify":              verifyCmd,
		"checkpoint":          checkpointCmd,
		"log":                 logCmd,
		"tail":                tailCmd,
		"proof inclusion":     proofInclusion,
		"proof consistency":   proofConsistency,
		"proof verify":        proofVerify,
		"bench ledger":        benchLedger,
		"bench ingest":        benchIngest,
		"bench proxy":         benchProxy,
		"bench bus":           benchBus,
		"bench read":          benchRead,
		"bench evidence":      benchEvidence,
		"bench forward":       benchForward,
		"query events":        queryEvents,
		"query session":       querySession,
		"dev":                 devCmd,
		"emit":                emitCmd,
		"serve":               serveCmd,
		"proxy postgres":      proxyPostgres,
		"proxy http":          proxyHTTP,
		"approvals list":      approvalsList,
		"approvals approve":   approvalsApprove,
		"approvals deny":      approvalsDeny,
		"policy migrate":      policyMigrate,
		"policy explain":      policyExplain,
		"token":               tokenCmd,
		"store init":          storeInit,
		"oidc-dev":            oidcDev,
		"projections rebuild": projectionsRebuild,
		"evidence build":      evidenceBuild,
		"evidence verify":     evidenceVerify,
		"version":             versionCmd,
	}
	if c, ok := commands[args[0]]; ok {
		return c(ctx, args[1:], stdin, stdout, stderr)
	}
	if len(args) >= 2 {
		if c, ok := commands[args[0]+" "+args[1]]; ok {
			return c(ctx, args[2:], stdin, stdout, stderr)
		}
	}
	names := make([]string, 0, len(commands))
	for n := range commands {
		names = append(names, n)
	}
	if len(args) >= 2 && !strings.HasPrefix(args[1], "-") {
		if near := yamlstrict.Nearest(args[0]+" "+args[1], names); near != "" && strings.Contains(near, " ") {
			return fmt.Errorf("unknown command %q: did you mean %q? (see auditledger -h)", args[0]+" "+args[1], near)
		}
	}
	switch args[0] {
	case "keys", "proof", "bench", "proxy", "approvals", "store", "projections", "query", "evidence":
		var subs []string
		for _, n := range names {
			if sub, ok := strings.CutPrefix(n, args[0]+" "); ok {
				subs = append(subs, sub)
			}
		}
		slices.Sort(subs)
		return fmt.Errorf("%q needs a subcommand: %s (see auditledger -h)", args[0], strings.Join(subs, ", "))
	}
	asked := args[0]
	if near := yamlstrict.Nearest(asked, names); near != "" {
		return fmt.Errorf("unknown command %q: did you mean %q? (see auditledger -h)", asked, near)
	}
	return fmt.Errorf("unknown command %q; see auditledger -h", asked)
}

// versionCmd prints what this binary was built from.
func versionCmd(_ context.Context, args []string, _ io.Reader, stdout, stderr io.Writer) error {
	fs := newFlags("version", "Prints the module version, the source revision and the Go toolchain this binary\nwas built from.", stderr)
	if err := parse(fs, args); err != nil {
		return err
	}
	fmt.Fprintln(stdout, versionString())
	return nil
}

func versionString() string {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return "auditledger (no build information)"
	}
	v := "auditledger " + bi.Main.Version
	var rev, modified string
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			rev = s.Value
		case "vcs.modified":
			if s.Value == "true" {
				modified = " (modified)"
			}
		}
	}
	if rev != "" {
		v += " revision " + rev + modified
	}
	return v + " " + bi.GoVersion + " " + runtime.GOOS + "/" + runtime.GOARCH
}

// newFlags makes a FlagSet whose -h prints a synopsis and the flags.
func newFlags(name, synopsis string, stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintf(stderr, "Usage: auditledger %s\n\n%s\n\nFlags:\n", name, synopsis)
		fs.PrintDefaults()
	}
	return fs
}

// parse parses flags and rejects stray arguments; an unknown flag is
// named with the nearest known one, not answered with the whole usage.
func parse(fs *flag.FlagSet, args []string) error {
	if err := unknownFlag(fs, args); err != nil {
		return err
	}
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("%s: unexpected argument %q (see -h)", commandName(fs), fs.Arg(0))
	}
	return nil
}

// unknownFlag walks args as the flag package will and reports the first
// flag fs does not define.
func unknownFlag(fs *flag.FlagSet, args []string) error {
	for i := 0; i < len(args); i++ {
		a := args[i]
		if a == "--" || len(a) < 2 || a[0] != '-' {
			return nil // the flags end here
		}
		name, _, hasValue := strings.Cut(strings.TrimLeft(a, "-"), "=")
		if name == "h" || name == "help" {
			return nil
		}
		f := fs.Lookup(name)
		if f == nil {
			var names []string
			fs.VisitAll(func(f *flag.Flag) { names = append(names, f.Name) })
			if near := yamlstrict.Nearest(name, names); near != "" {
				return fmt.Errorf("%s: unknown flag --%s: did you mean --%s? (see -h)", commandName(fs), name, near)
			}
			return fmt.Errorf("%s: unknown flag --%s (see -h)", commandName(fs), name)
		}
		if b, ok := f.Value.(interface{ IsBoolFlag() bool }); !hasValue && !(ok && b.IsBoolFlag()) {
			i++ // its value
		}
	}
	return nil
}

// commandName is the command of a flag set named by its synopsis
// ("verify --store URL ...": verify).
func commandName(fs *flag.FlagSet) string {
	name := fs.Name()
	if i := strings.IndexAny(name, "-[<"); i > 0 {
		name = name[:i]
	}
	return strings.TrimSpace(name)
}

func required(fs *flag.FlagSet, names ...string) error {
	for _, n := range names {
		if fs.Lookup(n).Value.String() == "" {
			return fmt.Errorf("%s: --%s is required (see -h)", commandName(fs), n)
		}
	}
	return nil
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
