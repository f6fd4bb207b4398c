package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/nats-io/nats.go"
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/auditledger/auditledger/cmd/auditledger/internal/busdial"
	"github.com/auditledger/auditledger/cmd/auditledger/internal/cli"
	"github.com/auditledger/auditledger/internal/health"
	"github.com/auditledger/auditledger/services/pgproxy"
)

// proxyFlags are the flags both proxies share.
type proxyFlags struct {
	listen, natsURL, nkey, tenant, target, policy *string
	instance                                      *string
	spool, approvalsVKey                          *string
	tlsCert, tlsKey                               *string
	failOpen                                      *bool
	auth                                          authFlags
}

func addProxyFlags(fs *pflag.FlagSet, listen string) proxyFlags {
	return proxyFlags{
		listen:        fs.String("listen", listen, "address clients connect to"),
		auth:          addAuthFlags(fs),
		natsURL:       fs.String("nats", nats.DefaultURL, "NATS server URL"),
		nkey:          fs.String("nkey", "", "NATS nkey seed file: producer-NAME.nk of this proxy (with --instance NAME), or the shared proxy.nk (auditledger keys nats; dev prints it)"),
		tenant:        fs.String("tenant", "default", "tenant of the recorded events"),
		instance:      fs.String("instance", "", "this proxy's name in events (source.instance); with per-producer bus credentials, the NAME of its producer-NAME.nk (default pgproxy or httpproxy)"),
		target:        fs.String("target", "", "the target's name in events"),
		policy:        fs.String("policy", "", "policy file: masking, deny and approval rules (docs/POLICY.md)"),
		failOpen:      fs.Bool("fail-open", false, "forward commands whose records can only be spooled (needs --spool); default: refuse them"),
		spool:         fs.String("spool", "", "spool records here while NATS is unreachable"),
		approvalsVKey: fs.String("approvals-vkey", "", "the API's verifier key (approvals.vkey): approval rules act only on decisions it signed"),
		tlsCert:       fs.String("tls-cert", "", "certificate (PEM) for TLS from clients"),
		tlsKey:        fs.String("tls-key", "", "private key (PEM) for --tls-cert"),
	}
}

// run runs one proxy role of serve, configured from the flags by set,
// and prints a banner naming the address it bound.
func (f proxyFlags) run(ctx context.Context, cmd, role string, set func(*serveConfig), stdout, stderr io.Writer, banner string) (err error) {
	defer func() {
		if stopped(ctx, err) {
			err = nil // stopped while starting: a clean exit
		}
	}()
	if *f.failOpen && *f.spool == "" {
		return fmt.Errorf("%s: --fail-open needs --spool DIR, where records wait for the bus", cmd)
	}
	auth, desc, err := f.auth.authenticator(ctx, cmd)
	if err != nil {
		return err
	}
	cfg := defaultServeConfig()
	cfg.auth, cfg.Tenant = auth, *f.tenant
	cfg.Approvals.VKey = *f.approvalsVKey
	set(&cfg)
	if *f.instance != "" {
		cfg.instance = *f.instance
	}
	dial := &busdial.Dialer{URL: *f.natsURL, Name: "auditledger", SeedFile: *f.nkey, Retry: *f.failOpen, Log: cli.Logger(ctx, stderr, "text", "info")}
	defer dial.Close()
	// A standalone proxy serves no /metrics (run it under serve for
	// that); its roles still register their metrics and readiness.
	e := newEnv(&cfg, dial, &health.Health{}, dial.Log)
	return runRoles(ctx, e, []string{role}, func() {
		fmt.Fprintf(stdout, "auditledger %s on %s%s (clients authenticate with %s); recording to %s\n",
			cmd, e.addr(role), banner, desc, *f.natsURL)
	})
}

func proxyPostgres(c *cobra.Command) cli.Run {
	fs := cli.Describe(c, "proxy postgres --listen ADDR (--oidc-issuer URL | --users FILE) [--policy FILE] [--nats URL]",
		"Runs the PostgreSQL wire proxy. Clients connect to ADDR with an OIDC access\ntoken as their password (the user name is recorded, not trusted); the proxy\nconnects to the target with the credentials in $AUDITLEDGER_PROXY_UPSTREAM (a\npostgres:// URL, kept out of the process list), records every statement on\nNATS before forwarding it (fail closed), and a digest of every result. The\npolicy masks result columns, refuses statements and holds others for an\napproval. --users is a development users file (YAML, user: password) whose\nidentities are marked dev_identity in the ledger.")
	pf := addProxyFlags(fs, defaultPGProxyAddr)
	durability := fs.String("durability", "before-forward", "before-forward: a statement runs only once the bus has stored its record; before-response: it runs at once, and its result waits for the record; local-journal: it runs once its record is fsynced to the journal in --spool DIR, which the bus drains (survives a crash and a bus outage, not the loss of this host's disk before the drain)")
	requireTLS := fs.Bool("require-tls", false, "refuse clients that do not use TLS (needs --tls-cert)")
	databases := fs.String("databases", "", "comma-separated databases clients may name; others are refused and recorded (default: the upstream URL's database only)")
	return func(ctx context.Context, args []string, _ io.Reader, stdout, stderr io.Writer) error {
		if os.Getenv("AUDITLEDGER_PROXY_UPSTREAM") == "" {
			return fmt.Errorf("proxy postgres: set AUDITLEDGER_PROXY_UPSTREAM to the target's postgres:// URL (with the credentials the proxy uses)")
		}
		if *durability == string(pgproxy.LocalJournal) && *pf.spool == "" {
			return fmt.Errorf("proxy postgres: --durability local-journal needs --spool DIR, the journal on this host's disk")
		}
		return pf.run(ctx, "proxy postgres", "postgres-proxy", func(c *serveConfig) {
			c.instance = "pgproxy" // as the package names itself
			pp := &c.PostgresProxy
			pp.Listen, pp.Policy, pp.Target, pp.Durability = *pf.listen, *pf.policy, *pf.target, *durability
			pp.FailOpen, pp.Spool, pp.TLSCert, pp.TLSKey, pp.RequireTLS = *pf.failOpen, *pf.spool, *pf.tlsCert, *pf.tlsKey, *requireTLS
			if *databases != "" {
				pp.Databases = strings.Split(*databases, ",")
			}
		}, stdout, stderr, "")
	}
}

func proxyHTTP(c *cobra.Command) cli.Run {
	fs := cli.Describe(c, "proxy http --listen ADDR --upstream URL --oidc-issuer URL [--policy FILE]",
		"Runs the HTTP reverse proxy. Clients send an OIDC access token as\nAuthorization: Bearer; the proxy records each request (method, path, query,\nbody digest) on NATS before forwarding it (fail closed), forwards it with its\nown credentials — $AUDITLEDGER_PROXY_UPSTREAM_AUTHORIZATION, if set, becomes\nthe upstream Authorization header; the client's is never forwarded —, masks\nJSON response fields, and records a digest of every response as the client\nreceived it. The policy masks fields, refuses requests and holds others for\nan approval.")
	pf := addProxyFlags(fs, defaultHTTPProxyAddr)
	upstream := fs.String("upstream", "", "base URL of the service behind the proxy (no credentials in it)")
	return func(ctx context.Context, args []string, _ io.Reader, stdout, stderr io.Writer) error {
		if err := cli.Required(fs, "upstream"); err != nil {
			return err
		}
		if *pf.auth.users != "" {
			// Bearer tokens carry no user name to look a password up by.
			return fmt.Errorf("proxy http: clients send bearer tokens; --users is for proxy postgres, use --oidc-issuer (dev runs a development issuer)")
		}
		return pf.run(ctx, "proxy http", "http-proxy", func(c *serveConfig) {
			c.instance = "httpproxy" // as the package names itself
			hp := &c.HTTPProxy
			hp.Listen, hp.Upstream, hp.Policy, hp.Target = *pf.listen, *upstream, *pf.policy, *pf.target
			hp.FailOpen, hp.Spool, hp.TLSCert, hp.TLSKey = *pf.failOpen, *pf.spool, *pf.tlsCert, *pf.tlsKey
		}, stdout, stderr, " → "+*upstream)
	}
}
