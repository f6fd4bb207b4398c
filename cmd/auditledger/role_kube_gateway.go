package main

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"os"

	"github.com/auditledger/auditledger/ledger/bus"
	"github.com/auditledger/auditledger/services/identity"
	"github.com/auditledger/auditledger/services/kubegateway"
	"github.com/auditledger/auditledger/services/telemetry"
)

// kubeGatewayRole is the kube-gateway role: the Kubernetes gateway
// (services/kubegateway), a TLS endpoint kubectl talks to as to an API
// server. It connects to the bus as bus.Proxy, or as its producer when the
// keys directory holds that producer's seed.
type kubeGatewayRole struct {
	Listen string `yaml:"listen"`
	// Upstream is the API server's https:// URL; UpstreamCA the PEM file
	// of the CA its serving certificate must chain to.
	Upstream   string `yaml:"upstream"`
	UpstreamCA string `yaml:"upstream_ca"`
	// The gateway's own credential at the API server (allowed to
	// impersonate): a token file, or a client certificate and key.
	TokenFile  string `yaml:"token_file"`
	ClientCert string `yaml:"client_cert"`
	ClientKey  string `yaml:"client_key"`
	// The serving certificate: TLSCert, TLSKey and TLSCA (the CA clients
	// trust) from an operator's PKI, or else one made at each start,
	// signed by a CA kept in KeysDir for HostNames.
	TLSCert   string   `yaml:"tls_cert"`
	TLSKey    string   `yaml:"tls_key"`
	TLSCA     string   `yaml:"tls_ca"`
	KeysDir   string   `yaml:"keys_dir"`
	HostNames []string `yaml:"host_names"`
	// Audience the clients' OIDC tokens must carry; empty: oidc.audience.
	Audience string `yaml:"audience"`
	// Cluster names the cluster in events; empty: kubernetes.
	Cluster     string `yaml:"cluster"`
	UserPrefix  string `yaml:"user_prefix"`
	GroupPrefix string `yaml:"group_prefix"`
	Policy      string `yaml:"policy"`
	FailOpen    bool   `yaml:"fail_open"`
	Spool       string `yaml:"spool"`
	StateDir    string `yaml:"state_dir"`
}

func (c *kubeGatewayRole) setDefaults() {
	c.Listen, c.HostNames = defaultKubeGatewayAddr, []string{"localhost", "127.0.0.1"}
}

func (c *kubeGatewayRole) envOverrides() []envOverride {
	return []envOverride{
		{"AUDITLEDGER_KUBE_GATEWAY_LISTEN", func(v string) error { c.Listen = v; return nil }},
		{"AUDITLEDGER_KUBE_GATEWAY_UPSTREAM", func(v string) error { c.Upstream = v; return nil }},
		{"AUDITLEDGER_KUBE_GATEWAY_UPSTREAM_CA", func(v string) error { c.UpstreamCA = v; return nil }},
		{"AUDITLEDGER_KUBE_GATEWAY_TOKEN_FILE", func(v string) error { c.TokenFile = v; return nil }},
		{"AUDITLEDGER_KUBE_GATEWAY_KEYS_DIR", func(v string) error { c.KeysDir = v; return nil }},
		{"AUDITLEDGER_KUBE_GATEWAY_POLICY", func(v string) error { c.Policy = v; return nil }},
		{"AUDITLEDGER_KUBE_GATEWAY_STATE_DIR", func(v string) error { c.StateDir = v; return nil }},
	}
}

func (c *kubeGatewayRole) failsOpen() bool { return c.FailOpen }

func (c *kubeGatewayRole) check(cfg *serveConfig) error {
	switch {
	case cfg.OIDC.Issuer == "" && cfg.auth == nil:
		return errors.New("oidc.issuer: required by the kube-gateway role (the provider whose tokens clients present)")
	case c.Upstream == "":
		return errors.New("kube_gateway.upstream: required by the kube-gateway role (the API server's https:// URL)")
	case c.UpstreamCA == "":
		return errors.New("kube_gateway.upstream_ca: required by the kube-gateway role (the API server's CA; the gateway never skips verification)")
	case c.TokenFile == "" && (c.ClientCert == "" || c.ClientKey == ""):
		return errors.New("kube_gateway: the gateway's credential at the API server is required: token_file, or client_cert and client_key")
	case c.TokenFile != "" && c.ClientCert != "":
		return errors.New("kube_gateway: token_file and client_cert: choose one credential")
	case (c.TLSCert != "" || c.TLSKey != "" || c.TLSCA != "") && (c.TLSCert == "" || c.TLSKey == "" || c.TLSCA == ""):
		return errors.New("kube_gateway: tls_cert, tls_key and tls_ca go together")
	case c.TLSCert == "" && c.KeysDir == "":
		return errors.New("kube_gateway.keys_dir: required by the kube-gateway role without tls_cert (its CA and serving certificate)")
	case c.FailOpen && c.Spool == "":
		return errors.New("kube_gateway.fail_open needs kube_gateway.spool")
	}
	return nil
}

func (c *kubeGatewayRole) prepare(ctx context.Context, e *env, log *slog.Logger) (func(context.Context) error, error) {
	var pol *kubegateway.Policy
	if c.Policy != "" {
		var err error
		if pol, err = kubegateway.LoadPolicy(c.Policy); err != nil {
			return nil, err
		}
	}
	ca, err := os.ReadFile(c.UpstreamCA)
	if err != nil {
		return nil, fmt.Errorf("kube_gateway.upstream_ca: %w", err)
	}
	var cert *tls.Certificate
	if c.ClientCert != "" {
		kp, err := tls.LoadX509KeyPair(c.ClientCert, c.ClientKey)
		if err != nil {
			return nil, fmt.Errorf("kube_gateway.client_cert: %w", err)
		}
		cert = &kp
	}
	var serving *kubegateway.ServingCert
	if c.TLSCert != "" {
		serving, err = kubegateway.LoadServingCert(c.TLSCert, c.TLSKey, c.TLSCA)
	} else {
		serving, err = kubegateway.OpenKeys(c.KeysDir, c.HostNames)
	}
	if err != nil {
		return nil, fmt.Errorf("kube_gateway: %w", err)
	}
	var auth identity.Authenticator
	if a := e.cfg.OIDC; c.Audience != "" && e.cfg.auth == nil {
		if auth, err = identity.NewOIDC(ctx, identity.OIDCConfig{Issuer: a.Issuer, Audience: c.Audience, GroupsClaim: a.GroupsClaim, Dev: a.DevIdentities}); err != nil {
			return nil, err
		}
	}
	p, err := e.producer(ctx, recording{role: "kube-gateway", principal: bus.Proxy, spool: c.Spool, failOpen: c.FailOpen}, log)
	if err != nil {
		return nil, err
	}
	if auth == nil {
		auth = p.auth
	}
	aw, runAccess, err := e.accessWatcher(ctx, p, c.Policy, "kube-gateway", log)
	if err != nil {
		p.em.Close()
		return nil, err
	}
	px, err := kubegateway.New(kubegateway.Config{Upstream: c.Upstream, UpstreamCA: ca, TokenFile: c.TokenFile, ClientCert: cert, Serving: serving,
		Auth: auth, Cluster: c.Cluster, UserPrefix: c.UserPrefix, GroupPrefix: c.GroupPrefix, Policy: pol, Emitter: p.em,
		Tenant: e.cfg.Tenant, Instance: e.cfg.instanceName(), FailOpen: c.FailOpen, Approvals: p.broker, Access: aw, PII: p.keys, StateDir: c.StateDir,
		Metrics: telemetry.NewProxy(e.health.Registry(), "kube"), Logger: log})
	if err != nil {
		p.em.Close()
		return nil, err
	}
	ln, err := e.listen("kube-gateway", c.Listen, p, c.FailOpen)
	if err != nil {
		return nil, fmt.Errorf("kube_gateway.listen: %w", err)
	}
	log.Info("Kubernetes gateway listening", "addr", "https://"+ln.Addr().String(), "upstream", c.Upstream)
	return func(ctx context.Context) error {
		if runAccess != nil {
			go runAccess(ctx)
		}
		return p.closing(func() error { return px.Serve(ctx, ln) })
	}, nil
}
