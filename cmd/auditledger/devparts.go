package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/auditledger/auditledger/cmd/auditledger/internal/cli"
	"github.com/auditledger/auditledger/events/detect"
	"github.com/auditledger/auditledger/internal/oidcdev"
	"github.com/auditledger/auditledger/services/identity"
	"github.com/auditledger/auditledger/services/kubegateway"
)

// devUsers are the identities of the development OpenID provider. Their
// secrets are public on purpose: dev listens on loopback only, and every
// event they cause is marked dev_identity. Their scopes (the API's
// tenant:NAME and target:NAME groups) are dev's two tenants: its own
// events' (default) and the README's sample events' (acme).
var devUsers = []oidcdev.User{
	{Name: "alice", Secret: "alice-dev-secret", Email: "alice@dev.auditledger.local", Groups: []string{"dba", "tenant:default", "tenant:acme"}},
	{Name: "bob", Secret: "bob-dev-secret", Email: "bob@dev.auditledger.local", Groups: []string{"approver", "tenant:default", "tenant:acme", "target:*"}},
	{Name: "carol", Secret: "carol-dev-secret", Email: "carol@dev.auditledger.local", Groups: []string{"auditor", "tenant:default", "tenant:acme", "target:*"}},
	{Name: "agent", Secret: "agent-dev-secret", Groups: []string{"agents"}, Machine: true},
}

// devLoginClients: the console, served by dev's API on whatever
// loopback port it listens on.
var devLoginClients = []oidcdev.LoginClient{{ID: devConsoleClient,
	RedirectGlobs: []string{"http://127.0.0.1:*/console/callback", "http://localhost:*/console/callback", "http://[[]::1]:*/console/callback"}}}

const devConsoleClient = "auditledger-console"

// devConfig is `dev`'s configuration of serve's roles, for one machine:
// the API, the proxies that have somewhere to point, and the ledger
// writer, all authenticating against the development provider.
type devConfig struct {
	data, issuer                       string
	database                           string // the projection database; empty: none
	apiAddr, proxyAddr, policy         string
	httpAddr, httpUpstream, httpPolicy string
	batch                              int
	maxWait                            time.Duration
	// verifyEvery is how often the writer verifies the whole log.
	verifyEvery time.Duration
	// SIEM forwarders, each run when its destination is given.
	syslogAddr, syslogCA, hecURL, webhookURL, forwardFormat string
	// The SSH gateway, run when its upstream is given.
	sshAddr, sshLogin, sshUpstream, sshHostKey, sshPolicy string
	// The Kubernetes gateway, run when its upstream is given.
	kubeAddr, kubeUpstream, kubeCA, kubeTokenFile, kubePolicy string
}

// serveConfig is dev as serve would run it, and the roles in the order
// they start (the api first: it creates the approvals bucket the proxies
// use).
func (d devConfig) serveConfig(auth identity.Authenticator) (*serveConfig, []string) {
	keys := filepath.Join(d.data, "keys")
	cfg := defaultServeConfig()
	cfg.auth, cfg.instance, cfg.database = auth, "dev", d.database
	cfg.OIDC.Issuer = d.issuer
	cfg.API.Listen = d.apiAddr
	cfg.API.Console.ClientID = devConsoleClient
	cfg.API.EvidenceKey, cfg.API.EvidenceDir, cfg.API.LogVKey = filepath.Join(keys, "evidence"), filepath.Join(d.data, "evidence"), filepath.Join(keys, "ledger.vkey")
	// Identity snapshots from the development provider's SCIM service.
	cfg.API.Directory.SCIMURL, cfg.API.Directory.SCIMTokenFile = d.issuer+"/scim/v2", filepath.Join(keys, "scim-token")
	cfg.Approvals.Key, cfg.Approvals.VKey = filepath.Join(keys, "approvals.key"), filepath.Join(keys, "approvals.vkey")
	cfg.ProducerKey = filepath.Join(keys, "producer.key")
	// The API applies the access rules of the first policy given (a
	// gateway's policy names the rules of its own targets).
	for _, p := range []string{d.policy, d.httpPolicy, d.sshPolicy} {
		if p != "" {
			cfg.API.AccessPolicy = p
			break
		}
	}
	cfg.PostgresProxy.Listen, cfg.PostgresProxy.Policy, cfg.PostgresProxy.Target = d.proxyAddr, d.policy, "dev"
	cfg.PostgresProxy.StateDir = filepath.Join(d.data, "postgres-proxy")
	cfg.HTTPProxy.Listen, cfg.HTTPProxy.Upstream, cfg.HTTPProxy.Policy, cfg.HTTPProxy.Target = d.httpAddr, d.httpUpstream, d.httpPolicy, "dev-http"
	cfg.Ledger.Store, cfg.Ledger.Key = filepath.Join(d.data, "store"), filepath.Join(keys, "ledger.key")
	cfg.Ledger.Index = filepath.Join(d.data, "ledger-index")
	cfg.Ledger.Batch, cfg.Ledger.MaxWait, cfg.Ledger.LeaseTTL = d.batch, duration(d.maxWait), duration(2*time.Second)
	if d.verifyEvery > 0 {
		cfg.Ledger.VerifyEvery = duration(d.verifyEvery)
	}
	roles := []string{"api"}
	if d.httpUpstream != "" {
		roles = append(roles, "http-proxy")
	}
	if os.Getenv("AUDITLEDGER_PROXY_UPSTREAM") != "" {
		roles = append(roles, "postgres-proxy")
	}
	if d.sshUpstream != "" {
		cfg.SSHProxy.Listen, cfg.SSHProxy.LoginListen, cfg.SSHProxy.Policy = d.sshAddr, d.sshLogin, d.sshPolicy
		cfg.SSHProxy.KeysDir, cfg.SSHProxy.StateDir = filepath.Join(d.data, "ssh-keys"), filepath.Join(d.data, "ssh-proxy")
		cfg.SSHProxy.Targets = []sshTargetConf{{Name: "dev-ssh", Addr: d.sshUpstream, HostKeys: []string{d.sshHostKey}}}
		roles = append(roles, "ssh-proxy")
	}
	if d.kubeUpstream != "" {
		k := &cfg.KubeGateway
		k.Listen, k.Upstream, k.UpstreamCA, k.TokenFile, k.Policy = d.kubeAddr, d.kubeUpstream, d.kubeCA, d.kubeTokenFile, d.kubePolicy
		k.KeysDir, k.StateDir, k.Cluster = filepath.Join(d.data, "kube-keys"), filepath.Join(d.data, "kube-gateway"), "dev-kube"
		roles = append(roles, "kube-gateway")
	}
	// With a projection database, dev projects the log into it, and the
	// API serves the read path from it.
	if d.database != "" {
		cfg.Projector.VKey, cfg.Projector.Store = filepath.Join(keys, "ledger.vkey"), cfg.Ledger.Store
		roles = append(roles, "projector")
	}
	// SIEM forwarders, their parked records in DATA/parked.
	common := forwardCommon{Format: d.forwardFormat}
	if d.syslogAddr != "" {
		cfg.SyslogForwarder = syslogForwarderRole{forwardCommon: common, Addr: d.syslogAddr, TLS: true, CAFile: d.syslogCA}
		cfg.SyslogForwarder.Parked = filepath.Join(d.data, "parked", "syslog.jsonl")
		roles = append(roles, "syslog-forwarder")
	}
	if d.hecURL != "" {
		cfg.HECForwarder = hecForwarderRole{forwardCommon: common, URL: d.hecURL, Ack: true}
		cfg.HECForwarder.Parked = filepath.Join(d.data, "parked", "hec.jsonl")
		roles = append(roles, "hec-forwarder")
	}
	if d.webhookURL != "" {
		cfg.WebhookForwarder = webhookForwarderRole{forwardCommon: common, URL: d.webhookURL}
		cfg.WebhookForwarder.Parked = filepath.Join(d.data, "parked", "webhook.jsonl")
		roles = append(roles, "webhook-forwarder")
	}
	cfg.Roles = append(roles, "ledger")
	return &cfg, cfg.Roles
}

// devBanner prints where dev's identity provider, API, projection
// database and proxies are.
func devBanner(w io.Writer, e *env, issuer, projection string) {
	apiAddr, proxyAddr, httpAddr := e.addr("api"), e.addr("postgres-proxy"), e.addr("http-proxy")
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
  API               http://%s   approvals, events, sessions, proofs (needs a token)
  console           http://%s/console/   sign in as carol / carol-dev-secret (an auditor)
  projection        %s
`, issuer, strings.Join(names, ", "), apiAddr, apiAddr, projection)
	if proxyAddr == "" {
		fmt.Fprintf(w, "  postgres proxy    off: set AUDITLEDGER_PROXY_UPSTREAM=postgres://USER:PASSWORD@HOST/DB to run it\n")
	} else {
		fmt.Fprintf(w, "  postgres proxy    %s   clients use an OIDC token as their password\n", proxyAddr)
	}
	if httpAddr != "" {
		fmt.Fprintf(w, "  http proxy        http://%s → %s   clients send Authorization: Bearer TOKEN\n", httpAddr, e.cfg.HTTPProxy.Upstream)
	}
	if sshAddr := e.addr("ssh-proxy"); sshAddr != "" {
		fmt.Fprintf(w, "  ssh gateway       %s → %s (target dev-ssh; it trusts %s)\n", sshAddr, e.cfg.SSHProxy.Targets[0].Addr,
			filepath.Join(e.cfg.SSHProxy.KeysDir, "target_ca.pub"))
		fmt.Fprintf(w, "                    AUDITLEDGER_CLIENT_SECRET=alice-dev-secret auditledger login ssh --gateway http://%s --issuer %s --client-id alice\n",
			e.addr("ssh-login"), issuer)
	}
	if kubeAddr := e.addr("kube-gateway"); kubeAddr != "" {
		fmt.Fprintf(w, "  kube gateway      https://%s → %s (cluster dev-kube; CA %s)\n", kubeAddr, e.cfg.KubeGateway.Upstream,
			filepath.Join(e.cfg.KubeGateway.KeysDir, kubegateway.CAFile))
		fmt.Fprintf(w, "                    auditledger kubeconfig --cluster dev-kube --server https://%s --ca-file %s --issuer %s --client-id alice > kubeconfig\n",
			kubeAddr, filepath.Join(e.cfg.KubeGateway.KeysDir, kubegateway.CAFile), issuer)
		fmt.Fprintf(w, "                    AUDITLEDGER_CLIENT_SECRET=alice-dev-secret kubectl --kubeconfig kubeconfig get pods\n")
	}
	for _, f := range []struct{ name, dest, format string }{
		{"syslog", e.cfg.SyslogForwarder.Addr, e.cfg.SyslogForwarder.Format},
		{"hec", e.cfg.HECForwarder.URL, e.cfg.HECForwarder.Format},
		{"webhook", e.cfg.WebhookForwarder.URL, e.cfg.WebhookForwarder.Format},
	} {
		if f.dest != "" {
			fmt.Fprintf(w, "  forwarder         %s → %s (%s)   docs/SIEM.md\n", f.name, f.dest, f.format)
		}
	}
	fmt.Fprintf(w, `  get a token:
    export AUDITLEDGER_TOKEN=$(AUDITLEDGER_CLIENT_SECRET=bob-dev-secret auditledger token --issuer %s --client-id bob)
    auditledger approvals list --api http://%s
`, issuer, apiAddr)
}

// oidcDev serves `dev`'s development OpenID provider on its own, for a
// gateway run by `serve` (the compose stack's gateway profile) to be tried
// without a real identity provider.
func oidcDev(c *cobra.Command) cli.Run {
	fs := cli.Describe(c, "oidc-dev [--listen ADDR] [--issuer URL] [--key FILE]",
		"Serves the development OpenID provider of `auditledger dev` on its own: the\nusers alice (group dba), bob (approver), carol (auditor) and agent (a\nmachine), each getting a token with `auditledger token --client-id NAME` and\nthe secret NAME-dev-secret. Their secrets are public: for trying a gateway,\nnever for production. Set serve's oidc.dev_identities (or\nAUDITLEDGER_OIDC_DEV_IDENTITIES=true) so that their events say so.")
	listen := fs.String("listen", defaultOIDCAddr, "address to serve on")
	issuer := fs.String("issuer", "", "the issuer URL clients and verifiers use (default http://ADDR); behind a proxy or in a container network, the name they reach it by")
	key := fs.String("key", "", "file keeping the signing key across restarts (created, mode 0600); without it tokens do not survive a restart")
	return func(ctx context.Context, args []string, _ io.Reader, stdout, stderr io.Writer) error {
		srv, err := oidcdev.Listen(*listen, oidcdev.Config{Issuer: *issuer, Audience: "auditledger", Users: devUsers, KeyFile: *key, LoginClients: devLoginClients})
		if err != nil {
			return err
		}
		defer srv.Close()
		fmt.Fprintf(stdout, "development OpenID provider at %s (audience auditledger); users:", srv.Issuer)
		for _, u := range devUsers {
			fmt.Fprintf(stdout, " %s", u.Name)
		}
		fmt.Fprintln(stdout)
		<-ctx.Done()
		return nil
	}
}

// devSCIMToken reads the development provider's SCIM bearer token from
// path, or makes one there (mode 0600).
func devSCIMToken(path string) (string, error) {
	if b, err := os.ReadFile(path); err == nil {
		if tok := strings.TrimSpace(string(b)); tok != "" {
			return tok, nil
		}
	} else if !errors.Is(err, fs.ErrNotExist) {
		return "", err
	}
	tok := detect.RandomHex(32)
	if err := os.WriteFile(path, []byte(tok+"\n"), 0o600); err != nil {
		return "", fmt.Errorf("keeping the SCIM token: %w", err)
	}
	return tok, nil
}
