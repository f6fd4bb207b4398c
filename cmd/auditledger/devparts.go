package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"strings"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/auditledger/auditledger/events"
	"github.com/auditledger/auditledger/events/emitter"
	"github.com/auditledger/auditledger/ledger/service"
	"github.com/auditledger/auditledger/services/api"
	"github.com/auditledger/auditledger/services/approvals"
	"github.com/auditledger/auditledger/services/httpproxy"
	"github.com/auditledger/auditledger/services/identity"
	"github.com/auditledger/auditledger/services/oidcdev"
	"github.com/auditledger/auditledger/services/pgproxy"
)

// devUsers are the identities of the development OpenID provider. Their
// secrets are public on purpose: dev listens on loopback only, and every
// event they cause is marked dev_identity.
var devUsers = []oidcdev.User{
	{Name: "alice", Secret: "alice-dev-secret", Email: "alice@dev.auditledger.local", Groups: []string{"dba"}},
	{Name: "bob", Secret: "bob-dev-secret", Email: "bob@dev.auditledger.local", Groups: []string{"approver"}},
	{Name: "carol", Secret: "carol-dev-secret", Email: "carol@dev.auditledger.local", Groups: []string{"auditor"}},
	{Name: "agent", Secret: "agent-dev-secret", Groups: []string{"agents"}, Machine: true},
}

// devParts are the producers and the API that `dev` runs beside the
// ledger writer.
type devParts struct {
	issuer, apiAddr, proxyAddr string
	httpAddr, httpUpstream     string
	waits                      []func() error
	em                         *emitter.Emitter
}

type devPartsConfig struct {
	oidcAddr, apiAddr, proxyAddr, policy string
	httpAddr, httpUpstream, httpPolicy   string
	js                                   jetstream.JetStream
	log                                  *slog.Logger
}

func startDevParts(ctx context.Context, c devPartsConfig) (*devParts, error) {
	idp, err := oidcdev.Listen(c.oidcAddr, oidcdev.Config{Audience: "auditledger", Users: devUsers})
	if err != nil {
		return nil, fmt.Errorf("--oidc %s: %w", c.oidcAddr, err)
	}
	context.AfterFunc(ctx, func() { idp.Close() })
	d := &devParts{issuer: idp.Issuer}
	auth, err := identity.NewOIDC(ctx, identity.OIDCConfig{Issuer: idp.Issuer, Audience: "auditledger", Dev: true})
	if err != nil {
		return nil, err
	}
	if d.em, err = emitter.New(emitter.Config{JetStream: c.js}); err != nil {
		return nil, err
	}
	broker, err := approvals.New(ctx, approvals.Config{JetStream: c.js, Emitter: d.em,
		Source: events.Source{Kind: "api", Instance: "dev"}, Logger: c.log})
	if err != nil {
		return nil, err
	}
	h, err := api.New(api.Config{Auth: auth, Approvals: broker, Logger: c.log})
	if err != nil {
		return nil, err
	}
	addr, wait, err := service.ListenAndServe(ctx, c.apiAddr, h)
	if err != nil {
		return nil, fmt.Errorf("--api %s: %w", c.apiAddr, err)
	}
	d.apiAddr = addr.String()
	d.waits = append(d.waits, wait)

	if c.httpUpstream != "" {
		var pol *httpproxy.Policy
		if c.httpPolicy != "" {
			if pol, err = httpproxy.LoadPolicy(c.httpPolicy); err != nil {
				return nil, err
			}
		}
		hp, err := httpproxy.New(httpproxy.Config{Upstream: c.httpUpstream, Auth: auth, Emitter: d.em, Tenant: "default",
			Instance: "dev", Target: "dev-http", Policy: pol, Approvals: broker, Logger: c.log})
		if err != nil {
			return nil, err
		}
		addr, wait, err := service.ListenAndServe(ctx, c.httpAddr, hp)
		if err != nil {
			return nil, fmt.Errorf("--proxy-http %s: %w", c.httpAddr, err)
		}
		d.httpAddr, d.httpUpstream = addr.String(), c.httpUpstream
		d.waits = append(d.waits, wait)
	}
	upstream := os.Getenv("AUDITLEDGER_PROXY_UPSTREAM")
	if upstream == "" {
		return d, nil
	}
	var pol *pgproxy.Policy
	if c.policy != "" {
		if pol, err = pgproxy.LoadPolicy(c.policy); err != nil {
			return nil, err
		}
	}
	p, err := pgproxy.New(pgproxy.Config{Upstream: upstream, Auth: auth, Emitter: d.em, Tenant: "default",
		Instance: "dev", Target: "dev", Policy: pol, Approvals: broker, Logger: c.log})
	if err != nil {
		return nil, err
	}
	ln, err := net.Listen("tcp", c.proxyAddr)
	if err != nil {
		return nil, fmt.Errorf("--proxy %s: %w", c.proxyAddr, err)
	}
	d.proxyAddr = ln.Addr().String()
	errc := make(chan error, 1)
	go func() { errc <- p.Serve(ctx, ln) }()
	d.waits = append(d.waits, func() error { return <-errc })
	return d, nil
}

// wait waits for the parts to stop (after ctx ends).
func (d *devParts) wait() error {
	var first error
	for _, w := range d.waits {
		if err := w(); err != nil && first == nil {
			first = err
		}
	}
	if err := d.em.Close(); err != nil && first == nil {
		first = err
	}
	return first
}

func (d *devParts) banner(w io.Writer) {
	var names []string
	for _, u := range devUsers {
		kind := strings.Join(u.Groups, ",")
		if u.Machine {
			kind += ", machine"
		}
		names = append(names, fmt.Sprintf("%s (%s)", u.Name, kind))
	}
	fmt.Fprintf(w, `  identity (dev)    %s   development OpenID provider; users %s;
                    each user's secret is NAME-dev-secret
  API               http://%s   approvals (needs a token)
`, d.issuer, strings.Join(names, ", "), d.apiAddr)
	if d.proxyAddr == "" {
		fmt.Fprintf(w, "  postgres proxy    off: set AUDITLEDGER_PROXY_UPSTREAM=postgres://USER:PASSWORD@HOST/DB to run it\n")
	} else {
		fmt.Fprintf(w, "  postgres proxy    %s   clients use an OIDC token as their password\n", d.proxyAddr)
	}
	if d.httpAddr != "" {
		fmt.Fprintf(w, "  http proxy        http://%s → %s   clients send Authorization: Bearer TOKEN\n", d.httpAddr, d.httpUpstream)
	}
	fmt.Fprintf(w, `  get a token:
    export AUDITLEDGER_TOKEN=$(AUDITLEDGER_CLIENT_SECRET=bob-dev-secret auditledger token --issuer %s --client-id bob)
    auditledger approvals list --api http://%s
`, d.issuer, d.apiAddr)
}
