package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/auditledger/auditledger/ledger/bus"
	"github.com/auditledger/auditledger/ledger/bus/nkeyauth"
)

// busDialer connects each role of the process to NATS with that role's
// own credentials, so each connection may do only its own role's work.
type busDialer struct {
	url  string
	name string // client name prefix, e.g. auditledger-serve
	// keysDir holds one nkey seed per bus role (auditledger keys nats);
	// seedFile, if set instead, is the one seed every role of this
	// process uses (a proxy process given --nkey); creds is a JWT
	// credentials file for decentralized auth. All empty: no credentials.
	keysDir, seedFile, creds string
	retry                    bool // connect in the background if NATS is down (fail-open proxies)
	// waitCtx, if set, makes connect wait for a NATS that does not answer
	// yet (serve started before its bus), until it ends.
	waitCtx context.Context
	log     *slog.Logger

	mu    sync.Mutex
	conns []*nats.Conn
}

// connect opens a connection as role.
func (d *busDialer) connect(role bus.Role) (*nats.Conn, jetstream.JetStream, error) {
	log := d.log
	if log == nil {
		log = slog.Default()
	}
	opts := []nats.Option{nats.Name(d.name + "-" + string(role)), nats.MaxReconnects(-1),
		nats.ReconnectWait(250 * time.Millisecond), nats.RetryOnFailedConnect(d.retry),
		// No buffering while reconnecting: a publish either reaches the
		// server now or fails, and the emitter retries or spools it. A
		// buffered one could arrive later beside its spooled copy.
		nats.ReconnectBufSize(-1),
		nats.ErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) {
			if errors.Is(err, nats.ErrPermissionViolation) {
				log.Error("NATS refused an operation this bus role may not do", "bus_role", role, "err", err)
				return
			}
			log.Warn("NATS error", "bus_role", role, "err", err)
		})}
	switch {
	case d.seedFile != "" || d.keysDir != "":
		seed := d.seedFile
		if seed == "" {
			seed = nkeyauth.SeedFile(d.keysDir, role)
		}
		o, err := nkeyauth.Options(role, seed)
		if err != nil {
			return nil, nil, err
		}
		opts = append(opts, o...)
	case d.creds != "":
		opts = append(opts, nats.UserCredentials(d.creds))
	}
	nc, err := nats.Connect(d.url, opts...)
	for wait := 250 * time.Millisecond; err != nil && d.waitCtx != nil && unreachable(err); wait = min(2*wait, 5*time.Second) {
		log.Warn("NATS does not answer yet; waiting for it", "url", d.url, "bus_role", role, "retry_in", wait, "err", err)
		select {
		case <-d.waitCtx.Done():
			return nil, nil, fmt.Errorf("connect %s as bus role %s: stopped while waiting for NATS (%v)", d.url, role, err)
		case <-time.After(wait):
		}
		nc, err = nats.Connect(d.url, opts...)
	}
	if err != nil {
		if errors.Is(err, nats.ErrAuthorization) || strings.Contains(strings.ToLower(err.Error()), "authorization violation") {
			return nil, nil, fmt.Errorf("connect %s as bus role %s: NATS refused the credentials (%w); every client needs its role's nkey seed: --nkey DIR/%s.nk for emit and the proxies, nats.nkeys DIR for serve, where DIR is what `auditledger keys nats` wrote (dev prints its own)", d.url, role, err, role)
		}
		return nil, nil, fmt.Errorf("connect %s as bus role %s: %w", d.url, role, err)
	}
	js, err := jetstream.New(nc)
	if err != nil {
		nc.Close()
		return nil, nil, err
	}
	d.mu.Lock()
	d.conns = append(d.conns, nc)
	d.mu.Unlock()
	return nc, js, nil
}

// unreachable tells a NATS that is not there (yet) from one that refused.
func unreachable(err error) bool {
	var ne net.Error
	return errors.Is(err, nats.ErrNoServers) || errors.As(err, &ne)
}

// hasSeed reports whether the keys directory holds role's seed.
func (d *busDialer) hasSeed(role bus.Role) bool {
	if d.keysDir == "" {
		return false
	}
	_, err := os.Stat(nkeyauth.SeedFile(d.keysDir, role))
	return err == nil
}

// close closes every connection the dialer opened.
func (d *busDialer) close() {
	d.mu.Lock()
	defer d.mu.Unlock()
	for _, nc := range d.conns {
		nc.Close()
	}
	d.conns = nil
}

// busRole is the bus role a serve role connects as.
func busRole(role string) bus.Role {
	switch role {
	case "ledger":
		return bus.Ledger
	case "api":
		return bus.API
	default:
		return bus.Proxy
	}
}
