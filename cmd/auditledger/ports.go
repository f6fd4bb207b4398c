package main

import (
	"errors"
	"fmt"
	"net"
	"syscall"
)

// The default ports: one block, 7340–7349, that no well-known tool uses
// (not 9090, Prometheus's; not 6432, pgbouncer's; not 8080/8081 nor 5556,
// dex's). NATS keeps its own 4222: dev runs a NATS server, and the nats
// CLI, emit and serve default to it. Compose uses 7346 and 7347 for the
// gateway's and the projector's health.
const (
	defaultHTTPAddr        = "127.0.0.1:7340" // /metrics, /healthz, /readyz
	defaultAPIAddr         = "127.0.0.1:7341"
	defaultOIDCAddr        = "127.0.0.1:7342" // dev's and oidc-dev's provider
	defaultPGProxyAddr     = "127.0.0.1:7343"
	defaultHTTPProxyAddr   = "127.0.0.1:7344"
	defaultDevPGPort       = 7345 // dev's own PostgreSQL
	defaultSSHProxyAddr    = "127.0.0.1:2222"
	defaultSSHLoginAddr    = "127.0.0.1:7348" // the SSH gateway's login endpoint
	defaultKubeGatewayAddr = "127.0.0.1:7349" // the Kubernetes gateway (TLS)
)

// portFlag is an address a command will listen on and the flag that sets it.
type portFlag struct{ flag, addr string }

// checkPorts tries each address before anything starts, so that a busy
// port is named with the flag that moves it, not found half-way through
// starting. Port 0 (any free port) and -1 are not checked.
func checkPorts(ps []portFlag) error {
	for _, p := range ps {
		_, port, err := net.SplitHostPort(p.addr)
		if err != nil {
			return fmt.Errorf("--%s %q: %w", p.flag, p.addr, err)
		}
		if port == "0" || port == "-1" {
			continue
		}
		ln, err := net.Listen("tcp", p.addr)
		if err != nil {
			if errors.Is(err, syscall.EADDRINUSE) {
				return fmt.Errorf("port %s is in use (flag --%s, now %s): choose another", port, p.flag, p.addr)
			}
			return fmt.Errorf("--%s %s: %w", p.flag, p.addr, err)
		}
		ln.Close()
	}
	return nil
}

// inUse words a busy port for a person: serve's listens are settings,
// not flags, and the caller names the setting.
func inUse(addr string, err error) error {
	if !errors.Is(err, syscall.EADDRINUSE) {
		return err
	}
	_, port, _ := net.SplitHostPort(addr)
	return fmt.Errorf("port %s is in use (%s): choose another: %w", port, addr, err)
}
