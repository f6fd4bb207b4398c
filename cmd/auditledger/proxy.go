package main

import (
	"context"
	"crypto/tls"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/auditledger/auditledger/events"
	"github.com/auditledger/auditledger/events/emitter"
	"github.com/auditledger/auditledger/services/approvals"
	"github.com/auditledger/auditledger/services/httpproxy"
	"github.com/auditledger/auditledger/services/identity"
	"github.com/auditledger/auditledger/services/pgproxy"
)

// proxyFlags are the flags both proxies share.
type proxyFlags struct {
	listen, natsURL, tenant, target, policy, spool *string
	tlsCert, tlsKey                                *string
	failOpen                                       *bool
	auth                                           authFlags
}

func addProxyFlags(fs *flag.FlagSet, listen string) proxyFlags {
	return proxyFlags{
		listen:   fs.String("listen", listen, "address clients connect to"),
		auth:     addAuthFlags(fs),
		natsURL:  fs.String("nats", nats.DefaultURL, "NATS server URL"),
		tenant:   fs.String("tenant", "default", "tenant of the recorded events"),
		target:   fs.String("target", "", "the target's name in events"),
		policy:   fs.String("policy", "", "policy file: masking, deny and approval rules (docs/POLICY.md)"),
		failOpen: fs.Bool("fail-open", false, "forward commands whose records can only be spooled (needs --spool); default: refuse them"),
		spool:    fs.String("spool", "", "spool records here while NATS is unreachable"),
		tlsCert:  fs.String("tls-cert", "", "certificate (PEM) for TLS from clients"),
		tlsKey:   fs.String("tls-key", "", "private key (PEM) for --tls-cert"),
	}
}

// tls loads the certificate for TLS from clients, if one is configured.
func (f proxyFlags) tls(cmd string) (*tls.Config, error) {
	c, err := loadTLS(*f.tlsCert, *f.tlsKey)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", cmd, err)
	}
	return c, nil
}

// producer is what a proxy records with: the bus, an emitter and the
// approvals broker.
type producer struct {
	nc       *nats.Conn
	em       *emitter.Emitter
	broker   *approvals.Broker
	auth     identity.Authenticator
	authDesc string
	log      *slog.Logger
}

func (f proxyFlags) connect(ctx context.Context, cmd, kind string, stderr io.Writer) (*producer, error) {
	if *f.failOpen && *f.spool == "" {
		return nil, fmt.Errorf("%s: --fail-open needs --spool DIR, where records wait for the bus", cmd)
	}
	auth, desc, err := f.auth.authenticator(ctx, cmd)
	if err != nil {
		return nil, err
	}
	nc, err := nats.Connect(*f.natsURL, nats.Name("auditledger-"+kind), nats.MaxReconnects(-1), nats.RetryOnFailedConnect(*f.failOpen))
	if err != nil {
		return nil, fmt.Errorf("%s: connect %s: %w", cmd, *f.natsURL, err)
	}
	js, err := jetstream.New(nc)
	if err != nil {
		nc.Close()
		return nil, err
	}
	em, err := emitter.New(emitter.Config{JetStream: js, SpoolDir: *f.spool, Timeout: 2 * time.Second})
	if err != nil {
		nc.Close()
		return nil, err
	}
	p := &producer{nc: nc, em: em, auth: auth, authDesc: desc, log: slog.New(slog.NewTextHandler(stderr, nil))}
	bctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	p.broker, err = approvals.New(bctx, approvals.Config{JetStream: js, Emitter: em, Source: events.Source{Kind: kind, Instance: kind}, Logger: p.log})
	if err != nil && !*f.failOpen {
		p.close()
		return nil, fmt.Errorf("%s: %w", cmd, err)
	}
	return p, nil
}

func (p *producer) close() {
	p.em.Close()
	p.nc.Close()
}

func proxyPostgres(ctx context.Context, args []string, _ io.Reader, stdout, stderr io.Writer) error {
	fs := newFlags("proxy postgres --listen ADDR (--oidc-issuer URL | --users FILE) [--policy FILE] [--nats URL]",
		"Runs the PostgreSQL wire proxy. Clients connect to ADDR with an OIDC access\ntoken as their password (the user name is recorded, not trusted); the proxy\nconnects to the target with the credentials in $AUDITLEDGER_PROXY_UPSTREAM (a\npostgres:// URL, kept out of the process list), records every statement on\nNATS before forwarding it (fail closed), and a digest of every result. The\npolicy masks result columns, refuses statements and holds others for an\napproval. --users is a development users file (YAML, user: password) whose\nidentities are marked dev_identity in the ledger.", stderr)
	pf := addProxyFlags(fs, "127.0.0.1:6432")
	durability := fs.String("durability", "before-forward", "before-forward: a statement runs only once its record is stored; before-response: it runs at once, and its result waits for the record")
	requireTLS := fs.Bool("require-tls", false, "refuse clients that do not use TLS (needs --tls-cert)")
	if err := parse(fs, args); err != nil {
		return err
	}
	tlsCfg, err := pf.tls("proxy postgres")
	if err != nil {
		return err
	}
	upstream := os.Getenv("AUDITLEDGER_PROXY_UPSTREAM")
	if upstream == "" {
		return fmt.Errorf("proxy postgres: set AUDITLEDGER_PROXY_UPSTREAM to the target's postgres:// URL (with the credentials the proxy uses)")
	}
	var pol *pgproxy.Policy
	if *pf.policy != "" {
		if pol, err = pgproxy.LoadPolicy(*pf.policy); err != nil {
			return err
		}
	}
	pr, err := pf.connect(ctx, "proxy postgres", "postgres-proxy", stderr)
	if err != nil {
		return err
	}
	defer pr.close()
	p, err := pgproxy.New(pgproxy.Config{Upstream: upstream, Auth: pr.auth, Emitter: pr.em, Tenant: *pf.tenant, Target: *pf.target,
		Logger: pr.log, Policy: pol, Approvals: pr.broker, FailOpen: *pf.failOpen, Durability: pgproxy.Durability(*durability),
		TLS: tlsCfg, RequireTLS: *requireTLS})
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", *pf.listen)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "auditledger proxy postgres on %s (clients authenticate with %s); recording to %s\n",
		ln.Addr(), pr.authDesc, pr.nc.ConnectedUrlRedacted())
	return p.Serve(ctx, ln)
}

func proxyHTTP(ctx context.Context, args []string, _ io.Reader, stdout, stderr io.Writer) error {
	fs := newFlags("proxy http --listen ADDR --upstream URL (--oidc-issuer URL | --users FILE) [--policy FILE]",
		"Runs the HTTP reverse proxy. Clients send an OIDC access token as\nAuthorization: Bearer; the proxy records each request (method, path, query,\nbody digest) on NATS before forwarding it (fail closed), forwards it with its\nown credentials — $AUDITLEDGER_PROXY_UPSTREAM_AUTHORIZATION, if set, becomes\nthe upstream Authorization header; the client's is never forwarded —, masks\nJSON response fields, and records a digest of every response as the client\nreceived it. The policy masks fields, refuses requests and holds others for\nan approval.", stderr)
	pf := addProxyFlags(fs, "127.0.0.1:8081")
	upstream := fs.String("upstream", "", "base URL of the service behind the proxy (no credentials in it)")
	if err := parse(fs, args); err != nil {
		return err
	}
	if err := required(fs, "upstream"); err != nil {
		return err
	}
	tlsCfg, err := pf.tls("proxy http")
	if err != nil {
		return err
	}
	var pol *httpproxy.Policy
	if *pf.policy != "" {
		if pol, err = httpproxy.LoadPolicy(*pf.policy); err != nil {
			return err
		}
	}
	pr, err := pf.connect(ctx, "proxy http", "http-proxy", stderr)
	if err != nil {
		return err
	}
	defer pr.close()
	headers := http.Header{}
	if v := os.Getenv("AUDITLEDGER_PROXY_UPSTREAM_AUTHORIZATION"); v != "" {
		headers.Set("Authorization", v)
	}
	p, err := httpproxy.New(httpproxy.Config{Upstream: *upstream, UpstreamHeaders: headers, Auth: pr.auth, Emitter: pr.em,
		Tenant: *pf.tenant, Target: *pf.target, Policy: pol, Approvals: pr.broker, FailOpen: *pf.failOpen, Logger: pr.log})
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", *pf.listen)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "auditledger proxy http on %s → %s (clients authenticate with %s); recording to %s\n",
		ln.Addr(), *upstream, pr.authDesc, pr.nc.ConnectedUrlRedacted())
	if tlsCfg != nil {
		ln = tls.NewListener(ln, tlsCfg)
	}
	return serveHTTP(ctx, ln, p)
}
