package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"time"

	"github.com/auditledger/auditledger/internal/health"
	"github.com/auditledger/auditledger/ledger/bus"
	"github.com/auditledger/auditledger/services/identity"
	"github.com/auditledger/auditledger/services/sshproxy"
	"github.com/auditledger/auditledger/services/telemetry"
)

// sshProxyRole is the ssh-proxy role: the SSH gateway
// (services/sshproxy), and its login endpoint, which exchanges OIDC
// tokens for user certificates. It connects to the bus as bus.Proxy, or
// as its producer when the keys directory holds that producer's seed.
type sshProxyRole struct {
	Listen string `yaml:"listen"`
	// LoginListen serves the login endpoint (`auditledger login ssh`).
	LoginListen string `yaml:"login_listen"`
	// HostNames are the names clients reach the gateway by: its host
	// certificate's principals.
	HostNames []string `yaml:"host_names"`
	// KeysDir holds the user, host and target CAs and the host key
	// (created when missing), and the revocation list (revoked_keys).
	KeysDir string `yaml:"keys_dir"`
	// RevokedKeys is the OpenSSH KRL of revoked user certificates, read
	// again when it changes; empty: keys_dir/revoked_keys.
	RevokedKeys string `yaml:"revoked_keys"`
	// Audience the OIDC tokens exchanged for certificates must carry;
	// empty: oidc.audience.
	Audience string          `yaml:"audience"`
	Targets  []sshTargetConf `yaml:"targets"`
	Policy   string          `yaml:"policy"`
	FailOpen bool            `yaml:"fail_open"`
	Spool    string          `yaml:"spool"`
	StateDir string          `yaml:"state_dir"`
}

// sshTargetConf is one SSH server clients may name.
type sshTargetConf struct {
	Name     string   `yaml:"name"`
	Addr     string   `yaml:"addr"`
	HostKeys []string `yaml:"host_keys"`
	Logins   []string `yaml:"logins"`
}

func (c *sshProxyRole) setDefaults() {
	c.Listen, c.LoginListen, c.HostNames = defaultSSHProxyAddr, defaultSSHLoginAddr, []string{"localhost", "127.0.0.1"}
}

func (c *sshProxyRole) envOverrides() []envOverride {
	return []envOverride{
		{"AUDITLEDGER_SSH_PROXY_LISTEN", func(v string) error { c.Listen = v; return nil }},
		{"AUDITLEDGER_SSH_PROXY_LOGIN_LISTEN", func(v string) error { c.LoginListen = v; return nil }},
		{"AUDITLEDGER_SSH_PROXY_KEYS_DIR", func(v string) error { c.KeysDir = v; return nil }},
		{"AUDITLEDGER_SSH_PROXY_POLICY", func(v string) error { c.Policy = v; return nil }},
		{"AUDITLEDGER_SSH_PROXY_STATE_DIR", func(v string) error { c.StateDir = v; return nil }},
	}
}

func (c *sshProxyRole) failsOpen() bool { return c.FailOpen }

func (c *sshProxyRole) check(cfg *serveConfig) error {
	switch {
	case cfg.OIDC.Issuer == "" && cfg.auth == nil:
		return errors.New("oidc.issuer: required by the ssh-proxy role (the provider whose tokens are exchanged for certificates)")
	case c.KeysDir == "":
		return errors.New("ssh_proxy.keys_dir: required by the ssh-proxy role (its certificate authorities and host key)")
	case len(c.Targets) == 0:
		return errors.New("ssh_proxy.targets: the ssh-proxy role needs at least one target")
	case c.FailOpen && c.Spool == "":
		return errors.New("ssh_proxy.fail_open needs ssh_proxy.spool")
	}
	for i, t := range c.Targets {
		if t.Name == "" || t.Addr == "" || len(t.HostKeys) == 0 {
			return fmt.Errorf("ssh_proxy.targets[%d]: name, addr and host_keys are required (the gateway never trusts a host key on first use)", i)
		}
	}
	return nil
}

func (c *sshProxyRole) prepare(ctx context.Context, e *env, log *slog.Logger) (func(context.Context) error, error) {
	var pol *sshproxy.Policy
	if c.Policy != "" {
		var err error
		if pol, err = sshproxy.LoadPolicy(c.Policy); err != nil {
			return nil, err
		}
	}
	keys, err := sshproxy.OpenKeys(c.KeysDir, c.HostNames)
	if err != nil {
		return nil, fmt.Errorf("ssh_proxy.keys_dir: %w", err)
	}
	var auth identity.Authenticator
	if a := e.cfg.OIDC; c.Audience != "" && e.cfg.auth == nil {
		if auth, err = identity.NewOIDC(ctx, identity.OIDCConfig{Issuer: a.Issuer, Audience: c.Audience, GroupsClaim: a.GroupsClaim, Dev: a.DevIdentities}); err != nil {
			return nil, err
		}
	}
	p, err := e.producer(ctx, recording{role: "ssh-proxy", principal: bus.Proxy, spool: c.Spool, failOpen: c.FailOpen}, log)
	if err != nil {
		return nil, err
	}
	if auth == nil {
		auth = p.auth
	}
	var targets []sshproxy.Target
	for _, t := range c.Targets {
		targets = append(targets, sshproxy.Target{Name: t.Name, Addr: t.Addr, HostKeys: t.HostKeys, Logins: t.Logins})
	}
	ln, err := e.listen("ssh-proxy", c.Listen, p, c.FailOpen)
	if err != nil {
		return nil, fmt.Errorf("ssh_proxy.listen: %w", err)
	}
	aw, runAccess, err := e.accessWatcher(ctx, p, c.Policy, "ssh-proxy", log)
	if err != nil {
		ln.Close()
		p.em.Close()
		return nil, err
	}
	px, err := sshproxy.New(sshproxy.Config{Addr: ln.Addr().String(), Keys: keys, Auth: auth, Targets: targets, Policy: pol, Emitter: p.em,
		Tenant: e.cfg.Tenant, Instance: e.cfg.instanceName(), FailOpen: c.FailOpen, Approvals: p.broker, Access: aw, PII: p.keys, StateDir: c.StateDir, RevokedKeys: c.RevokedKeys,
		Metrics: telemetry.NewProxy(e.health.Registry(), "ssh"), Logger: log})
	if err != nil {
		ln.Close()
		p.em.Close()
		return nil, err
	}
	lln, err := net.Listen("tcp", c.LoginListen)
	if err != nil {
		ln.Close()
		p.em.Close()
		return nil, fmt.Errorf("ssh_proxy.login_listen: %w", inUse(c.LoginListen, err))
	}
	e.listening("ssh-login", lln.Addr().String())
	log.Info("SSH gateway listening", "addr", ln.Addr().String(), "login", "http://"+lln.Addr().String()+sshproxy.CertPath,
		"host_ca", keys.KnownHostsLines([]string{"*"}, time.Now()))
	return func(ctx context.Context) error {
		if runAccess != nil {
			go runAccess(ctx)
		}
		return p.closing(func() error {
			var wg sync.WaitGroup
			var herr error
			wg.Go(func() { herr = health.Serve(ctx, lln, px.CertHandler()) })
			err := px.Serve(ctx, ln)
			wg.Wait()
			return errors.Join(err, herr)
		})
	}, nil
}
