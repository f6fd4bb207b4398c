package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"

	"github.com/auditledger/auditledger/ledger/service"
	"github.com/auditledger/auditledger/services/identity"
	"github.com/auditledger/auditledger/services/oidcdev"
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
// ledger writer: serve's roles, configured for one machine.
type devParts struct {
	issuer, apiAddr, proxyAddr string
	httpAddr, httpUpstream     string
	waits                      []func() error
}

type devPartsConfig struct {
	oidcAddr, apiAddr, proxyAddr, policy string
	httpAddr, httpUpstream, httpPolicy   string
	approvalsKey, approvalsVKey          string
	producerKey                          string
	oidcKey                              string // the dev provider's signing key, kept across restarts
	metrics                              *service.Metrics
	dial                                 *busDialer
	log                                  *slog.Logger
}

func startDevParts(ctx context.Context, c devPartsConfig) (*devParts, error) {
	idp, err := oidcdev.Listen(c.oidcAddr, oidcdev.Config{Audience: "auditledger", Users: devUsers, KeyFile: c.oidcKey})
	if err != nil {
		return nil, fmt.Errorf("--oidc %s: %w", c.oidcAddr, err)
	}
	context.AfterFunc(ctx, func() { idp.Close() })
	d := &devParts{issuer: idp.Issuer, httpUpstream: c.httpUpstream}

	auth, err := identity.NewOIDC(ctx, identity.OIDCConfig{Issuer: idp.Issuer, Audience: "auditledger", Dev: true})
	if err != nil {
		return nil, err
	}
	cfg := defaultServeConfig()
	cfg.auth, cfg.instance = auth, "dev"
	cfg.OIDC.Issuer = idp.Issuer
	cfg.API.Listen = c.apiAddr
	cfg.Approvals.Key, cfg.Approvals.VKey = c.approvalsKey, c.approvalsVKey
	cfg.ProducerKey = c.producerKey
	cfg.PostgresProxy.Listen, cfg.PostgresProxy.Policy, cfg.PostgresProxy.Target = c.proxyAddr, c.policy, "dev"
	cfg.HTTPProxy.Listen, cfg.HTTPProxy.Upstream, cfg.HTTPProxy.Policy, cfg.HTTPProxy.Target = c.httpAddr, c.httpUpstream, c.httpPolicy, "dev-http"
	// The api role first: it creates the approvals bucket the proxies use.
	type part struct {
		role string
		addr *string
	}
	roles := []part{{"api", &d.apiAddr}}
	if c.httpUpstream != "" {
		roles = append(roles, part{"http-proxy", &d.httpAddr})
	}
	if os.Getenv("AUDITLEDGER_PROXY_UPSTREAM") != "" {
		roles = append(roles, part{"postgres-proxy", &d.proxyAddr})
	}
	for _, p := range roles {
		role, addr := p.role, p.addr
		run, a, err := serveRole(ctx, role, cfg, c.dial, c.metrics, c.log)
		if err != nil {
			return nil, err
		}
		*addr = a
		errc := make(chan error, 1)
		go func() { errc <- run() }()
		d.waits = append(d.waits, func() error { return <-errc })
	}
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
