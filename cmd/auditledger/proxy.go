package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/auditledger/auditledger/events/emitter"
	"github.com/auditledger/auditledger/services/pgproxy"
)

func proxyPostgres(ctx context.Context, args []string, _ io.Reader, stdout, stderr io.Writer) error {
	fs := newFlags("proxy postgres --listen ADDR --users FILE [--policy FILE] [--nats URL] [--tenant T]",
		"Runs the PostgreSQL wire proxy. Clients connect to ADDR with their own identity\nas user and password; the proxy connects to the target with the credentials in\n$AUDITLEDGER_PROXY_UPSTREAM (a postgres:// URL, kept out of the process list),\nrecords every statement on NATS before forwarding it (fail closed), and a\ndigest of every result. --users is a development users file (YAML, user:\npassword); identities from it are marked dev_identity in the ledger. OIDC\ntokens as passwords come next.", stderr)
	listen := fs.String("listen", "127.0.0.1:6432", "address clients connect to")
	auth := addAuthFlags(fs)
	natsURL := fs.String("nats", nats.DefaultURL, "NATS server URL")
	tenant := fs.String("tenant", "default", "tenant of the recorded events")
	target := fs.String("target", "", "the target's name in events")
	policyPath := fs.String("policy", "", "policy file: masking and deny rules (docs/POLICY.md)")
	failOpen := fs.Bool("fail-open", false, "run statements whose records can only be spooled (needs --spool); default: refuse them")
	spoolDir := fs.String("spool", "", "spool records here while NATS is unreachable")
	durability := fs.String("durability", "before-forward", "before-forward: a statement runs only once its record is stored; before-response: it runs at once, and its result waits for the record")
	if err := parse(fs, args); err != nil {
		return err
	}
	upstream := os.Getenv("AUDITLEDGER_PROXY_UPSTREAM")
	if upstream == "" {
		return fmt.Errorf("proxy postgres: set AUDITLEDGER_PROXY_UPSTREAM to the target's postgres:// URL (with the credentials the proxy uses)")
	}
	authn, authDesc, err := auth.authenticator(ctx, "proxy postgres")
	if err != nil {
		return err
	}
	nc, err := nats.Connect(*natsURL, nats.Name("auditledger-pgproxy"), nats.MaxReconnects(-1), nats.RetryOnFailedConnect(*failOpen))
	if err != nil {
		return fmt.Errorf("proxy postgres: connect %s: %w", *natsURL, err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		return err
	}
	if *failOpen && *spoolDir == "" {
		return fmt.Errorf("proxy postgres: --fail-open needs --spool DIR, where records wait for the bus")
	}
	em, err := emitter.New(emitter.Config{JetStream: js, SpoolDir: *spoolDir, Timeout: 2 * time.Second})
	if err != nil {
		return err
	}
	defer em.Close()
	log := slog.New(slog.NewTextHandler(stderr, nil))
	var pol *pgproxy.Policy
	if *policyPath != "" {
		if pol, err = pgproxy.LoadPolicy(*policyPath); err != nil {
			return err
		}
	}
	p, err := pgproxy.New(pgproxy.Config{Upstream: upstream, Auth: authn, Emitter: em, Tenant: *tenant, Target: *target, Logger: log, Policy: pol, FailOpen: *failOpen, Durability: pgproxy.Durability(*durability)})
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "auditledger proxy postgres on %s (clients authenticate with %s); recording to %s\n",
		ln.Addr(), authDesc, nc.ConnectedUrlRedacted())
	return p.Serve(ctx, ln)
}
