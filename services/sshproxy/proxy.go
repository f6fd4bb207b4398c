package sshproxy

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/auditledger/auditledger/events"
	"github.com/auditledger/auditledger/ledger/piikeys"
	"github.com/auditledger/auditledger/services/access"
	"github.com/auditledger/auditledger/services/approvals"
	"github.com/auditledger/auditledger/services/gateway"
	"github.com/auditledger/auditledger/services/identity"
	"github.com/auditledger/auditledger/services/telemetry"
)

// Errors of the SSH gateway.
var (
	// ErrConfig: New was given a configuration it cannot run.
	ErrConfig = errors.New("ssh gateway configuration")
	// ErrHostKeyChanged: a target presented a host key other than the
	// one pinned for it.
	ErrHostKeyChanged = errors.New("the target's host key is not the one pinned for it")
)

// Target is an SSH server the gateway logs in to.
type Target struct {
	// Name is how clients name it: ssh LOGIN+NAME@gateway. Required.
	Name string
	// Addr is its host:port. Required.
	Addr string
	// HostKeys are its pinned host keys (authorized_keys format, as
	// ssh-keyscan prints them without the host name); a target that
	// presents another is refused. Required: the gateway never trusts
	// on first use.
	HostKeys []string
	// Logins are the accounts users may name; empty: any.
	Logins []string

	pinned []ssh.PublicKey
}

// Config configures the SSH gateway.
type Config struct {
	// Addr is the SSH address clients use (host:port), returned by the
	// login endpoint. Optional.
	Addr string
	// Keys are the certificate authorities and host key (OpenKeys).
	// Required.
	Keys *Keys
	// Auth verifies the OIDC tokens the login endpoint exchanges for
	// certificates; its audience is the gateway. Nil: the login endpoint
	// refuses every request.
	Auth identity.Authenticator
	// Targets are the servers clients may name. At least one is
	// required.
	Targets []Target
	// Policy is what the gateway enforces; nil means DefaultPolicy.
	Policy *Policy
	// Emitter stores the events. Required.
	Emitter gateway.Recorder
	// Tenant of the events. Required.
	Tenant string
	// Instance names this gateway in events; empty means "sshgw".
	Instance string
	// FailOpen: see gateway.Config.
	FailOpen bool
	// Approvals decides held commands; nil refuses a policy with approve
	// rules.
	Approvals *approvals.Broker
	// Access, if set, admits a session program on a target its rules name
	// only inside a live access grant, and kills it (closing the channel
	// and the target's session) when the grant ends or is revoked.
	Access *access.Watcher
	// AccessTick: gateway.Config.AccessTick (zero: 100 ms).
	AccessTick time.Duration
	// PII holds the personal-data keys (gateway.Config.Keys); nil: no
	// keyed digests.
	PII *piikeys.Store
	// StateDir holds the journal of open sessions (gateway.Config);
	// empty: none.
	StateDir string
	// FlushAfter is how long a terminal byte waits before it is recorded;
	// zero means 50 ms.
	FlushAfter time.Duration
	// DialTimeout bounds the connection to a target; zero means 10 s.
	DialTimeout time.Duration
	// Metrics, if set, counts what is recorded.
	Metrics *telemetry.Proxy
	// Logger; nil means slog.Default().
	Logger *slog.Logger
	// RevokedKeys is the OpenSSH KRL of revoked user certificates and
	// keys, read again whenever it changes; empty means KRLFile in the
	// keys directory. No file there: nothing is revoked; a configured path
	// with no file, or a file that cannot be read or parsed, refuses every
	// login. Open connections whose user
	// certificate (or its CA) a new version revokes are closed.
	RevokedKeys string
	// RevokedKeysPoll is how often the KRL file is checked for a change
	// that closes open connections; zero means one second.
	RevokedKeysPoll time.Duration
	// Clock measures the limits (max_duration, idle_timeout) and the
	// validity of user certificates; nil means the system clock.
	Clock Clock
}

// Proxy is the SSH gateway.
type Proxy struct {
	cfg     Config
	g       *gateway.Gateway
	keys    *Keys
	pol     *Policy
	targets map[string]*Target
	server  *ssh.ServerConfig
	log     *slog.Logger
	clock   Clock
	krl     *krlFile

	mu     sync.Mutex
	conns  map[*ssh.ServerConn]struct{}
	live   map[*conn]struct{} // authenticated connections, checked again when the KRL changes
	active map[string]int     // open connections per user (issuer and subject)
	wg     sync.WaitGroup
}

// New checks cfg.
func New(cfg Config) (*Proxy, error) {
	if cfg.Keys == nil || len(cfg.Targets) == 0 {
		return nil, fmt.Errorf("%w: Keys and at least one target are required", ErrConfig)
	}
	if cfg.FlushAfter <= 0 {
		cfg.FlushAfter = 50 * time.Millisecond
	}
	if cfg.DialTimeout <= 0 {
		cfg.DialTimeout = 10 * time.Second
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Clock == nil {
		cfg.Clock = systemClock{}
	}
	if cfg.RevokedKeysPoll <= 0 {
		cfg.RevokedKeysPoll = time.Second
	}
	krlRequired := cfg.RevokedKeys != ""
	if cfg.RevokedKeys == "" {
		cfg.RevokedKeys = filepath.Join(cfg.Keys.Dir, KRLFile)
	}
	pol := cfg.Policy
	if pol == nil {
		pol = DefaultPolicy()
	}
	if len(pol.Approve) > 0 && cfg.Approvals == nil {
		return nil, fmt.Errorf("%w: the policy has approve rules, and no approvals broker is configured", ErrConfig)
	}
	p := &Proxy{cfg: cfg, keys: cfg.Keys, pol: pol, targets: map[string]*Target{}, log: cfg.Logger, clock: cfg.Clock, krl: &krlFile{path: cfg.RevokedKeys, required: krlRequired}, conns: map[*ssh.ServerConn]struct{}{}, live: map[*conn]struct{}{}, active: map[string]int{}}
	for i := range cfg.Targets {
		t := cfg.Targets[i]
		if t.Name == "" || t.Addr == "" || strings.Contains(t.Name, "+") {
			return nil, fmt.Errorf("%w: target %q: a name without + and an address are required", ErrConfig, t.Name)
		}
		if len(t.HostKeys) == 0 {
			return nil, fmt.Errorf("%w: target %s: pin its host key (host_keys)", ErrConfig, t.Name)
		}
		for _, k := range t.HostKeys {
			pub, _, _, _, err := ssh.ParseAuthorizedKey([]byte(k))
			if err != nil {
				return nil, fmt.Errorf("%w: target %s: host key %q: %v", ErrConfig, t.Name, k, err)
			}
			t.pinned = append(t.pinned, pub)
		}
		if p.targets[t.Name] != nil {
			return nil, fmt.Errorf("%w: target %s named twice", ErrConfig, t.Name)
		}
		p.targets[t.Name] = &t
	}
	gcfg := gateway.Config{Name: "sshgw", Kind: "ssh-proxy", Instance: cfg.Instance, Tenant: cfg.Tenant, Emitter: cfg.Emitter,
		FailOpen: cfg.FailOpen, Approvals: cfg.Approvals, Access: cfg.Access, AccessTick: cfg.AccessTick, Keys: cfg.PII, StateDir: cfg.StateDir, Metrics: cfg.Metrics, Logger: cfg.Logger}
	if cfg.Policy != nil {
		gcfg.Policy = cfg.Policy.Info()
	}
	g, err := gateway.New(gcfg)
	if err != nil {
		return nil, err
	}
	p.g = g
	host, err := cfg.Keys.HostSigner()
	if err != nil {
		return nil, err
	}
	p.server = &ssh.ServerConfig{PublicKeyCallback: p.checkUser, ServerVersion: "SSH-2.0-auditledger"}
	p.server.AddHostKey(host)
	return p, nil
}

// knownHosts are the @cert-authority lines for the gateway's address:
// the host CA's, and during a rotation's overlap the retired one's.
func (p *Proxy) knownHosts() string {
	pats := []string{"*"}
	if host, port, err := net.SplitHostPort(p.cfg.Addr); err == nil {
		pats = nil
		for _, h := range p.keys.HostCert.ValidPrincipals {
			if port == "22" {
				pats = append(pats, h)
			} else {
				pats = append(pats, "["+h+"]:"+port)
			}
		}
		_ = host
	}
	return p.keys.KnownHostsLines(pats, p.clock.Now())
}

// Close releases the state directory.
func (p *Proxy) Close() error { return p.g.Close() }

// Serve records the policy and the sessions a crash left open, then
// accepts SSH connections on ln until ctx ends; it returns once every
// session has ended.
func (p *Proxy) Serve(ctx context.Context, ln net.Listener) error {
	defer p.g.Close()
	if err := p.g.Start(ctx); err != nil {
		ln.Close()
		return err
	}
	stop := context.AfterFunc(ctx, func() {
		ln.Close()
		p.mu.Lock()
		for c := range p.conns {
			c.Close()
		}
		p.mu.Unlock()
	})
	defer stop()
	watching := make(chan struct{})
	watchCtx, stopWatch := context.WithCancel(ctx)
	go func() { defer close(watching); p.watchKRL(watchCtx) }()
	defer func() { stopWatch(); <-watching }()
	var err error
	for {
		var c net.Conn
		c, err = ln.Accept()
		if err != nil {
			break
		}
		p.wg.Go(func() { p.serveConn(ctx, c) })
	}
	p.wg.Wait()
	if ctx.Err() != nil {
		return nil
	}
	return err
}

// userName splits LOGIN+TARGET.
func userName(u string) (login, target string, ok bool) {
	i := strings.LastIndexByte(u, '+')
	if i <= 0 || i == len(u)-1 {
		return "", "", false
	}
	return u[:i], u[i+1:], true
}

const permIdentity = "identity"

// checkUser admits a user certificate signed by the user CA (or one kept
// after a rotation), valid now, not revoked, for a known target and an
// allowed login. A refusal is recorded (authn.failed) and its reason
// shown to the client.
func (p *Proxy) checkUser(meta ssh.ConnMetadata, key ssh.PublicKey) (*ssh.Permissions, error) {
	refuse := func(reason string) (*ssh.Permissions, error) {
		s := p.g.Session(events.Target{Kind: "ssh"})
		s.RecordOrLog(context.Background(), events.AuthnFailed, map[string]any{"client_addr": meta.RemoteAddr().String(),
			"user": meta.User(), "client_version": string(meta.ClientVersion()), "reason": reason})
		return nil, &ssh.BannerError{Err: errors.New(reason), Message: "auditledger: " + reason + "\r\n"}
	}
	cert, ok := key.(*ssh.Certificate)
	if !ok {
		return refuse("a certificate from `auditledger login ssh` is required; plain keys are refused")
	}
	if cert.CertType != ssh.UserCert {
		return refuse("not a user certificate")
	}
	if !p.keys.isUserAuthority(cert.SignatureKey, p.clock.Now()) {
		return refuse("the certificate is signed by a certificate authority the gateway does not trust (" + fingerprint(cert.SignatureKey) + ")")
	}
	krl, err := p.krl.get()
	if err != nil {
		p.log.Error("revocation list unreadable: refusing every certificate", "err", err)
		return refuse("the gateway cannot read its revocation list (KRL)")
	}
	if krl != nil {
		if why := krl.Revoked(cert); why != "" {
			return refuse(why + " (KRL version " + strconv.FormatUint(krl.Version, 10) + ")")
		}
	}
	checker := ssh.CertChecker{SupportedCriticalOptions: []string{}, Clock: p.clock.Now}
	if err := checker.CheckCert(cert.KeyId, cert); err != nil {
		return refuse(strings.TrimPrefix(err.Error(), "ssh: "))
	}
	login, target, ok := userName(meta.User())
	if !ok {
		return refuse(fmt.Sprintf("name the login and the target: ssh LOGIN+TARGET@gateway (not %q)", meta.User()))
	}
	t := p.targets[target]
	if t == nil {
		return refuse(fmt.Sprintf("unknown target %q", target))
	}
	if len(t.Logins) > 0 && !anyGlob(t.Logins, login) {
		return refuse(fmt.Sprintf("login %q is not open on target %s", login, target))
	}
	return &ssh.Permissions{ExtraData: map[any]any{permIdentity: cert}}, nil
}

// conn is one client connection and its connection to the target.
type conn struct {
	p       *Proxy
	sc      *ssh.ServerConn
	id      gateway.Identity
	cert    *ssh.Certificate
	login   string
	target  *Target
	tc      *ssh.Client // nil when dialErr is set
	dialErr error
	// refuse, when set, refuses every channel: a limit was reached,
	// the limit rule refuseRule's.
	refuse, refuseRule string
	// closing is why the gateway closed the connection (a limit, the
	// certificate's expiry), recorded in each session's end.
	closing    atomic.Value // string
	lastActive atomic.Int64 // unix nanoseconds of the last byte either way, by the gateway's clock

	mu   sync.Mutex
	open map[ssh.Channel]struct{} // the client's session channels, told why the gateway closes
}

// touch notes activity, for the idle timeout.
func (c *conn) touch() { c.lastActive.Store(c.p.clock.Now().UnixNano()) }

// track adds (or, with add false, removes) a session channel the client
// is told on when the gateway closes the connection.
func (c *conn) track(ch ssh.Channel, add bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if add {
		c.open[ch] = struct{}{}
	} else {
		delete(c.open, ch)
	}
}

// closeWith closes the connection for a reason its sessions record; each
// open session's stderr says why first, so the client's user reads it.
func (c *conn) closeWith(reason string) {
	if !c.closing.CompareAndSwap(nil, reason) {
		return
	}
	c.p.log.Info("closing an SSH connection", "reason", reason, "subject", c.id.Subject, "target", c.target.Name)
	c.mu.Lock()
	var told sync.WaitGroup
	for ch := range c.open {
		told.Go(func() {
			fmt.Fprintf(ch.Stderr(), "\r\nauditledger: the gateway closed this connection: %s\r\n", reason)
		})
	}
	c.mu.Unlock()
	// A client that reads nothing (its window full) is not waited for.
	done := make(chan struct{})
	go func() { told.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(2 * time.Second):
	}
	c.sc.Close()
}

// closeReason is why the gateway closed the connection, or "".
func (c *conn) closeReason() string {
	r, _ := c.closing.Load().(string)
	return r
}

func (p *Proxy) serveConn(ctx context.Context, nc net.Conn) {
	defer nc.Close()
	nc.SetDeadline(time.Now().Add(30 * time.Second)) // the handshake
	sc, chans, reqs, err := ssh.NewServerConn(nc, p.server)
	if err != nil {
		p.log.Debug("ssh handshake failed", "client_addr", nc.RemoteAddr().String(), "err", err)
		return
	}
	nc.SetDeadline(time.Time{})
	p.mu.Lock()
	p.conns[sc] = struct{}{}
	p.mu.Unlock()
	defer func() {
		p.mu.Lock()
		delete(p.conns, sc)
		p.mu.Unlock()
		sc.Close()
	}()
	cert := sc.Permissions.ExtraData[permIdentity].(*ssh.Certificate)
	login, tname, _ := userName(sc.User())
	c := &conn{p: p, sc: sc, id: identityOf(cert), cert: cert, login: login, target: p.targets[tname], open: map[ssh.Channel]struct{}{}}
	c.touch()
	// Watched for revocation from now on; a KRL that changed since the
	// login was checked (before the watcher knew this connection) is
	// checked here.
	p.mu.Lock()
	p.live[c] = struct{}{}
	p.mu.Unlock()
	defer func() {
		p.mu.Lock()
		delete(p.live, c)
		p.mu.Unlock()
	}()
	if krl, err := p.krl.get(); err == nil && krl != nil {
		if why := revokedReason(krl, cert); why != "" {
			go c.closeWith(why)
		}
	}
	lim := p.pol.For(c.id.Subject, c.id.Groups, c.target.Name).limits
	who := c.id.Issuer + "\x00" + c.id.Subject
	p.mu.Lock()
	if lim.maxSessions > 0 && p.active[who] >= lim.maxSessions {
		c.refuse = fmt.Sprintf("%s has %d sessions open, the most allowed (limit rule %s)", c.id.Subject, p.active[who], lim.sessionsRule)
		c.refuseRule = lim.sessionsRule
	} else {
		p.active[who]++
		defer func() {
			p.mu.Lock()
			if p.active[who]--; p.active[who] == 0 {
				delete(p.active, who)
			}
			p.mu.Unlock()
		}()
	}
	p.mu.Unlock()
	if c.refuse == "" {
		c.tc, c.dialErr = p.dial(ctx, c)
		if c.tc != nil {
			defer c.tc.Close()
		}
	}
	// A certificate that expires mid-session ends the session.
	if cert.ValidBefore != ssh.CertTimeInfinity {
		expiry := time.Unix(int64(min(cert.ValidBefore, uint64(1<<62))), 0).Sub(p.clock.Now())
		defer p.clock.AfterFunc(expiry, func() { c.closeWith("certificate expired") })()
	}
	// A certificate from a retired user CA ends with the CA's overlap.
	if until, ok := p.keys.userAuthorityUntil(cert.SignatureKey); ok {
		defer p.clock.AfterFunc(until.Sub(p.clock.Now()), func() { c.closeWith(ReasonCARetired) })()
	}
	if lim.maxDuration > 0 {
		defer p.clock.AfterFunc(lim.maxDuration, func() {
			c.closeWith("max_duration " + lim.maxDuration.String() + " (limit rule " + lim.durationRule + ")")
		})()
	}
	if lim.idle > 0 {
		w := &idleWatch{c: c, idle: lim.idle, rule: lim.idleRule}
		w.arm(lim.idle)
		defer w.stop()
	}
	go c.globalRequests(ctx, reqs)
	var wg sync.WaitGroup
	for nch := range chans {
		switch nch.ChannelType() {
		case "session":
			wg.Go(func() { c.session(ctx, nch) })
		case "direct-tcpip":
			wg.Go(func() { c.directTCPIP(ctx, nch) })
		default:
			c.refused(ctx, "channel "+nch.ChannelType(), "", "the gateway opens no "+nch.ChannelType()+" channels")
			nch.Reject(ssh.UnknownChannelType, "auditledger: "+nch.ChannelType()+" channels are not relayed")
		}
	}
	// The client is gone. Its sessions end what still runs on the target
	// (hangUp: SIGHUP, then SIGKILL; signal requests, which must reach
	// the target before the connection closes, as sshd lets a program
	// without a terminal run on after its connection is gone); then the
	// connection to the target closes. What the target refused to signal
	// and reads no input may still run there (HangupRefused).
	ended := make(chan struct{})
	go func() { wg.Wait(); close(ended) }()
	select {
	case <-ended:
	case <-time.After(hangUpGrace + killGrace + time.Second):
	}
	if c.tc != nil {
		c.tc.Close()
	}
	<-ended
}

// ReasonCARetired is why a connection whose user certificate a retired
// user CA signed is closed when the rotation's overlap ends.
const ReasonCARetired = "the user certificate's CA was retired and its overlap has ended"

// ReasonRevokedPrefix begins the reason a connection is closed for when
// the KRL revokes its user certificate or its CA: what revoked it and the
// KRL's version follow.
const ReasonRevokedPrefix = "user certificate revoked: "

func revokedReason(krl *KRL, cert *ssh.Certificate) string {
	why := krl.Revoked(cert)
	if why == "" {
		return ""
	}
	return ReasonRevokedPrefix + why + " (KRL version " + strconv.FormatUint(krl.Version, 10) + ")"
}

// watchKRL checks the KRL file every RevokedKeysPoll until ctx ends; when
// a new version is read, every open connection it revokes is closed, its
// client told why. A KRL that cannot be read refuses new logins (at
// checkUser) and closes nothing: open connections are checked again once
// it reads.
func (p *Proxy) watchKRL(ctx context.Context) {
	t := time.NewTicker(p.cfg.RevokedKeysPoll)
	defer t.Stop()
	var last *KRL
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		krl, err := p.krl.get()
		if err != nil || krl == nil || krl == last {
			continue
		}
		last = krl
		var revoked []*conn
		reasons := map[*conn]string{}
		p.mu.Lock()
		for c := range p.live {
			if why := revokedReason(krl, c.cert); why != "" {
				revoked = append(revoked, c)
				reasons[c] = why
			}
		}
		p.mu.Unlock()
		p.log.Info("revocation list read", "path", p.cfg.RevokedKeys, "version", krl.Version, "connections_closed", len(revoked))
		for _, c := range revoked {
			go c.closeWith(reasons[c])
		}
	}
}

// hangUpGrace is how long the program of a session that ended has to
// exit on SIGHUP before it is sent SIGKILL (hangUp).
const hangUpGrace = 5 * time.Second

// idleWatch closes the connection once no byte has passed for idle: a
// timer that, when it fires early (bytes passed since it was set), is set
// again for the time still to go.
type idleWatch struct {
	c    *conn
	idle time.Duration
	rule string

	mu      sync.Mutex
	cancel  func() bool
	stopped bool
}

func (w *idleWatch) arm(d time.Duration) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if !w.stopped {
		w.cancel = w.c.p.clock.AfterFunc(d, w.fire)
	}
}

func (w *idleWatch) fire() {
	quiet := w.c.p.clock.Now().Sub(time.Unix(0, w.c.lastActive.Load()))
	if quiet >= w.idle {
		w.c.closeWith("idle_timeout " + w.idle.String() + " (limit rule " + w.rule + ")")
		return
	}
	w.arm(w.idle - quiet)
}

func (w *idleWatch) stop() {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.stopped = true
	if w.cancel != nil {
		w.cancel()
	}
}

// dial logs in to the target as the session's login, with a certificate
// from the target CA made for this connection alone: key id the OIDC
// subject, so the target's own logs name the person.
func (p *Proxy) dial(ctx context.Context, c *conn) (*ssh.Client, error) {
	signer, err := p.sessionSigner(c)
	if err != nil {
		return nil, err
	}
	hostKey := func(_ string, _ net.Addr, key ssh.PublicKey) error {
		for _, k := range c.target.pinned {
			if keysEqual(k, key) {
				return nil
			}
		}
		return fmt.Errorf("%w: %s presented %s", ErrHostKeyChanged, c.target.Name, fingerprint(key))
	}
	d := net.Dialer{Timeout: p.cfg.DialTimeout}
	nc, err := d.DialContext(ctx, "tcp", c.target.Addr)
	if err != nil {
		return nil, fmt.Errorf("target %s unreachable: %w", c.target.Name, err)
	}
	nc.SetDeadline(time.Now().Add(p.cfg.DialTimeout))
	cc, chans, reqs, err := ssh.NewClientConn(nc, c.target.Addr, &ssh.ClientConfig{User: c.login, Auth: []ssh.AuthMethod{ssh.PublicKeys(signer)},
		HostKeyCallback: hostKey, ClientVersion: "SSH-2.0-auditledger"})
	if err != nil {
		nc.Close()
		if errors.Is(err, ErrHostKeyChanged) {
			return nil, fmt.Errorf("target %s: %w", c.target.Name, errors.Unwrap(err))
		}
		return nil, fmt.Errorf("target %s refused the login as %s: %w", c.target.Name, c.login, err)
	}
	nc.SetDeadline(time.Time{})
	return ssh.NewClient(cc, chans, reqs), nil
}

// sessionSigner makes a key pair and its certificate from the target CA,
// valid for a few minutes: long enough to log in.
func (p *Proxy) sessionSigner(c *conn) (ssh.Signer, error) {
	s, err := newEd25519Signer()
	if err != nil {
		return nil, err
	}
	now := time.Now()
	perms := map[string]string{"permit-pty": ""}
	v := p.pol.For(c.id.Subject, c.id.Groups, c.target.Name)
	if v.allows(ForwardLocal, "") || v.allows(ForwardRemote, "") {
		perms["permit-port-forwarding"] = ""
	}
	cert := &ssh.Certificate{Key: s.PublicKey(), CertType: ssh.UserCert, KeyId: c.id.Subject, ValidPrincipals: []string{c.login},
		ValidAfter: uint64(now.Add(-time.Minute).Unix()), ValidBefore: uint64(now.Add(5 * time.Minute).Unix()), Serial: randSerial(),
		Permissions: ssh.Permissions{Extensions: perms}}
	if err := cert.SignCert(randReader, p.keys.TargetCA); err != nil {
		return nil, err
	}
	return ssh.NewCertSigner(cert, s)
}

func (c *conn) events() events.Target {
	return events.Target{Kind: "ssh", Name: c.target.Name, Host: c.target.Addr}
}

// refused records what the gateway refused outside a session's program
// (a forwarding, a channel type) as command.blocked.
func (c *conn) refused(ctx context.Context, what, rule, reason string) {
	s := c.p.g.Session(c.events())
	s.Authenticated(c.id)
	payload := map[string]any{"protocol": "ssh", "kind": what, "statement": what, "reason": reason, "login": c.login,
		"client_addr": c.sc.RemoteAddr().String()}
	if rule != "" {
		payload["rule"] = rule
	}
	s.RecordOrLog(ctx, events.CommandBlocked, payload)
}

// globalRequests answers the client's connection-wide requests: remote
// forwarding is refused (and recorded); keepalives are answered.
func (c *conn) globalRequests(ctx context.Context, reqs <-chan *ssh.Request) {
	for r := range reqs {
		switch r.Type {
		case "tcpip-forward", "streamlocal-forward@openssh.com":
			c.refused(ctx, "forwarding remote", "", "remote forwarding (ssh -R) is not relayed by the gateway")
			r.Reply(false, nil)
		default:
			if r.WantReply {
				r.Reply(false, nil)
			}
		}
	}
}

// directTCPIP relays a local forwarding (ssh -L, ssh -J) when an allow
// rule names it; otherwise it is refused and recorded.
func (c *conn) directTCPIP(ctx context.Context, nch ssh.NewChannel) {
	var d struct {
		Host       string
		Port       uint32
		OriginAddr string
		OriginPort uint32
	}
	ssh.Unmarshal(nch.ExtraData(), &d)
	to := net.JoinHostPort(d.Host, fmt.Sprint(d.Port))
	v := c.p.pol.For(c.id.Subject, c.id.Groups, c.target.Name)
	if !v.allows(ForwardLocal, "") || c.tc == nil {
		c.refused(ctx, "forwarding local "+to, "", "port forwarding is refused unless a policy allow rule names it")
		nch.Reject(ssh.Prohibited, "auditledger: port forwarding to "+to+" is not allowed by the gateway's policy")
		return
	}
	tch, treqs, err := c.tc.OpenChannel("direct-tcpip", nch.ExtraData())
	if err != nil {
		var oc *ssh.OpenChannelError
		if errors.As(err, &oc) {
			nch.Reject(oc.Reason, oc.Message)
		} else {
			nch.Reject(ssh.ConnectionFailed, err.Error())
		}
		return
	}
	cch, creqs, err := nch.Accept()
	if err != nil {
		tch.Close()
		return
	}
	s := c.p.g.Session(c.events())
	s.Authenticated(c.id)
	release, err := s.Admit(ctx, func(string) { cch.Close(); tch.Close() })
	if err != nil {
		cch.Close()
		tch.Close()
		return
	}
	if err := s.Start(ctx, map[string]any{"request": "direct-tcpip", "to": to, "login": c.login, "client_addr": c.sc.RemoteAddr().String()}); err != nil {
		release()
		cch.Close()
		tch.Close()
		return
	}
	go ssh.DiscardRequests(creqs)
	go ssh.DiscardRequests(treqs)
	var in, out int64
	var wg sync.WaitGroup
	wg.Go(func() { in, _ = copyClose(tch, cch, c.touch) })
	wg.Go(func() { out, _ = copyClose(cch, tch, c.touch) })
	wg.Wait()
	cch.Close()
	tch.Close()
	end := map[string]any{"bytes_in": in, "bytes_out": out}
	if r := c.closeReason(); r != "" {
		end["reason"] = r
	}
	s.End(ctx, end)
}
