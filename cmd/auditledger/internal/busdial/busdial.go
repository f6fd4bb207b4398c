// Package busdial connects each part of an auditledger process to NATS
// with that part's own credentials (the bus principals of ledger/bus), and
// starts the embedded JetStream server that dev and the benchmarks use.
package busdial

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/auditledger/auditledger/ledger/bus"
	"github.com/auditledger/auditledger/ledger/bus/nkeyauth"
)

// Dialer connects each role of the process to NATS with that role's
// own credentials, so each connection may do only its own role's work.
type Dialer struct {
	URL string
	// URLKey names the setting url came from in errors; empty means --nats.
	URLKey string
	Name   string // client name prefix, e.g. auditledger-serve
	// KeysDir holds one nkey seed per bus role (auditledger keys nats);
	// SeedFile, if set instead, is the one seed every role of this
	// process uses (a proxy process given --nkey); creds is a JWT
	// credentials file for decentralized auth. All empty: no credentials.
	KeysDir, SeedFile, Creds string
	Retry                    bool // connect in the background if NATS is down (fail-open proxies)
	// WaitCtx, if set, makes Connect wait for a NATS that does not answer
	// yet (serve started before its bus), until it ends.
	WaitCtx context.Context
	Log     *slog.Logger
	// InProcess, when set, is the embedded server of this very process
	// (StartEmbedded): each role connects to it in memory rather than
	// over loopback TCP, with the same credentials and permissions. A
	// statement's record and its acknowledgement then cost no system
	// call and no socket wake-up on either side. URL still names the
	// server, for the tools of other processes and for errors.
	InProcess nats.InProcessConnProvider

	mu    sync.Mutex
	conns []*nats.Conn
}

// Connect opens a connection as role. A NATS URL that cannot name a
// server is refused at once, never waited for.
func (d *Dialer) Connect(role bus.Principal) (*nats.Conn, jetstream.JetStream, error) {
	log := d.Log
	if log == nil {
		log = slog.Default()
	}
	key := d.URLKey
	if key == "" {
		key = "--nats"
	}
	if err := CheckURL(key, d.URL); err != nil {
		return nil, nil, err
	}
	role = d.Principal(role)
	opts := []nats.Option{nats.Name(d.Name + "-" + string(role)), nats.MaxReconnects(-1),
		nats.ReconnectWait(250 * time.Millisecond), nats.RetryOnFailedConnect(d.Retry),
		// No buffering while reconnecting: a publish either reaches the
		// server now or fails, and the emitter retries or spools it. A
		// buffered one could arrive later beside its spooled copy.
		nats.ReconnectBufSize(-1),
		nats.ErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) {
			if errors.Is(err, nats.ErrPermissionViolation) {
				log.Error("NATS refused an operation this bus role may not do", "bus_role", d.Credential(role), "err", err)
				return
			}
			log.Warn("NATS error", "bus_role", d.Credential(role), "err", err)
		})}
	switch {
	case d.SeedFile != "" || d.KeysDir != "":
		seed := d.SeedFile
		if seed == "" {
			seed = nkeyauth.SeedFile(d.KeysDir, role)
			if _, err := os.Stat(seed); errors.Is(err, os.ErrNotExist) {
				return nil, nil, fmt.Errorf("bus role %s has no seed in %s (%s): run `auditledger keys nats --out %s` again — it keeps the existing seeds, adds the missing ones and rewrites nats-auth.conf — and reload nats-server", role, d.KeysDir, filepath.Base(seed), d.KeysDir)
			}
		}
		o, err := nkeyauth.Options(role, seed)
		if err != nil {
			return nil, nil, err
		}
		opts = append(opts, o...)
	case d.Creds != "":
		opts = append(opts, nats.UserCredentials(d.Creds))
	}
	if d.InProcess != nil {
		opts = append(opts, nats.InProcessServer(d.InProcess))
	}
	nc, err := nats.Connect(d.URL, opts...)
	for wait := 250 * time.Millisecond; err != nil && d.WaitCtx != nil && unreachable(err); wait = min(2*wait, 5*time.Second) {
		log.Warn("NATS does not answer yet; waiting for it", "url", d.URL, "bus_role", role, "retry_in", wait, "err", err)
		select {
		case <-d.WaitCtx.Done():
			return nil, nil, fmt.Errorf("connect %s as bus role %s: stopped while waiting for NATS (%v): %w", d.URL, role, err, d.WaitCtx.Err())
		case <-time.After(wait):
		}
		nc, err = nats.Connect(d.URL, opts...)
	}
	if err != nil {
		if errors.Is(err, nats.ErrAuthorization) || strings.Contains(strings.ToLower(err.Error()), "authorization violation") {
			return nil, nil, fmt.Errorf("connect %s as bus role %s: NATS refused the credentials (%w); every client needs its role's nkey seed: --nkey DIR/%s.nk for emit and the proxies, nats.nkeys DIR for serve, where DIR is what `auditledger keys nats` wrote (dev prints its own)", d.URL, role, err, role)
		}
		return nil, nil, fmt.Errorf("connect %s as bus role %s: %w", d.URL, role, err)
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

// Principal is the bus role a connection asked to be role really has: with a
// single seed file named after a role (reader.nk, producer-pg-1.nk, as
// auditledger keys nats writes them), that role, whose inbox prefix its
// permissions allow and whose name the logs and errors must give.
func (d *Dialer) Principal(want bus.Principal) bus.Principal {
	if d.SeedFile == "" {
		return want
	}
	if r, err := bus.ParsePrincipal(strings.TrimSuffix(filepath.Base(d.SeedFile), ".nk")); err == nil {
		return r
	}
	return want
}

// Credential says which bus role a connection as role uses, and with
// which seed or credentials file, for logs and errors.
func (d *Dialer) Credential(role bus.Principal) string {
	switch {
	case d.SeedFile != "":
		if _, err := bus.ParsePrincipal(strings.TrimSuffix(filepath.Base(d.SeedFile), ".nk")); err != nil {
			return fmt.Sprintf("%s (assumed: the seed %s is not named after a role)", role, d.SeedFile)
		}
		return fmt.Sprintf("%s (seed %s)", role, d.SeedFile)
	case d.KeysDir != "":
		return fmt.Sprintf("%s (seed %s)", role, nkeyauth.SeedFile(d.KeysDir, role))
	case d.Creds != "":
		return fmt.Sprintf("%s (credentials %s)", role, d.Creds)
	}
	return fmt.Sprintf("%s (no credentials)", role)
}

// unreachable tells a NATS that is not there (yet) from one that refused.
// A URL that does not parse (*url.Error is a net.Error too) is not
// unreachable: waiting would not make it parse.
func unreachable(err error) bool {
	var ue *url.Error
	if errors.As(err, &ue) && ue.Op == "parse" {
		return false
	}
	var ne net.Error
	return errors.Is(err, nats.ErrNoServers) || errors.As(err, &ne)
}

// CheckURL checks a comma-separated list of NATS server URLs as the
// nats client reads them (nats:// assumed when no scheme is given): each
// must have a scheme NATS speaks, a host and, if it has a port, a number
// from 1 to 65535. The error names key (the setting) and never shows a
// password in the URL.
func CheckURL(key, list string) error {
	if strings.TrimSpace(list) == "" {
		return fmt.Errorf("%s: empty; want a NATS server URL such as nats://127.0.0.1:4222", key)
	}
	for _, s := range strings.Split(list, ",") {
		s = strings.TrimSpace(s)
		full := s
		if !strings.Contains(s, "://") {
			full = "nats://" + s
		}
		shown := redactURL(s)
		u, err := url.Parse(full)
		if err != nil {
			_, rest, _ := strings.Cut(full, "://")
			if _, hostport, ok := strings.Cut(rest, "@"); ok {
				rest = hostport
			}
			host, _, _ := strings.Cut(rest, "/")
			if i := strings.LastIndex(host, ":"); i >= 0 && !strings.HasSuffix(host, "]") {
				if _, perr := strconv.Atoi(host[i+1:]); perr != nil {
					return fmt.Errorf("%s %q: port %q is not a number from 1 to 65535", key, shown, host[i+1:])
				}
			}
			return fmt.Errorf("%s %q: not a URL (want nats://HOST:PORT)", key, shown)
		}
		switch u.Scheme {
		case "nats", "tls", "ws", "wss":
		default:
			return fmt.Errorf("%s %q: scheme %q is not one NATS speaks (nats, tls, ws or wss)", key, shown, u.Scheme)
		}
		if u.Hostname() == "" {
			return fmt.Errorf("%s %q: no host (want nats://HOST:PORT)", key, shown)
		}
		if p := u.Port(); p != "" {
			if n, err := strconv.Atoi(p); err != nil || n < 1 || n > 65535 {
				return fmt.Errorf("%s %q: port %q is not a number from 1 to 65535", key, shown, p)
			}
		}
	}
	return nil
}

// redactURL hides the user information (a password, a token) of a URL.
func redactURL(s string) string {
	scheme, rest, ok := strings.Cut(s, "://")
	if !ok {
		scheme, rest = "", s
	}
	host, _, _ := strings.Cut(rest, "/")
	if i := strings.LastIndex(host, "@"); i >= 0 {
		rest = "***" + rest[i:]
	}
	if scheme == "" {
		return rest
	}
	return scheme + "://" + rest
}

// HasSeed reports whether the keys directory holds role's seed.
func (d *Dialer) HasSeed(role bus.Principal) bool {
	if d.KeysDir == "" {
		return false
	}
	_, err := os.Stat(nkeyauth.SeedFile(d.KeysDir, role))
	return err == nil
}

// Close closes every connection the dialer opened.
func (d *Dialer) Close() {
	d.mu.Lock()
	defer d.mu.Unlock()
	for _, nc := range d.conns {
		nc.Close()
	}
	d.conns = nil
}

// StartEmbedded runs a single JetStream server on loopback storing in
// storeDir, with one nkey user per bus role whose seeds are in keysDir
// (created on first start), and waits until it accepts connections. The
// dialer connects each role with its own seed, in memory (InProcess);
// other processes reach the server on its loopback port.
func StartEmbedded(name, storeDir, keysDir string, port int, syncAlways, quiet bool, producers ...string) (*server.Server, *Dialer, error) {
	pubs, err := nkeyauth.Generate(keysDir, producers...)
	if err != nil {
		return nil, nil, fmt.Errorf("nats keys: %w", err)
	}
	ns, err := server.NewServer(&server.Options{
		ServerName: name, Host: "127.0.0.1", Port: port,
		JetStream: true, StoreDir: storeDir, SyncAlways: syncAlways, NoSigs: true, NoLog: quiet,
		Nkeys: nkeyauth.Users(pubs),
	})
	if err != nil {
		return nil, nil, fmt.Errorf("nats server: %w", err)
	}
	ns.Start()
	if !ns.ReadyForConnections(10 * time.Second) {
		ns.Shutdown()
		return nil, nil, fmt.Errorf("nats server not ready on 127.0.0.1:%d", port)
	}
	return ns, &Dialer{URL: ns.ClientURL(), Name: name, KeysDir: keysDir, InProcess: ns}, nil
}
