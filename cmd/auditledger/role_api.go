package main

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/auditledger/auditledger/events"
	"github.com/auditledger/auditledger/internal/health"
	"github.com/auditledger/auditledger/ledger"
	"github.com/auditledger/auditledger/ledger/bulk"
	"github.com/auditledger/auditledger/ledger/bus"
	"github.com/auditledger/auditledger/ledger/storeurl"
	"github.com/auditledger/auditledger/projections"
	"github.com/auditledger/auditledger/services/access"
	"github.com/auditledger/auditledger/services/api"
	"github.com/auditledger/auditledger/services/console"
	"github.com/auditledger/auditledger/services/directory"
	"github.com/auditledger/auditledger/services/telemetry"
)

// apiRole is the api role: the HTTP API (approvals, the read path, evidence
// bundles). It connects to the bus as bus.API, creates the approvals bucket
// and signs every approval decision.
type apiRole struct {
	Listen string              `yaml:"listen"`
	Roles  map[string][]string `yaml:"roles"`
	// Scope: which tenants and targets a caller's roles reach, from
	// its groups (services/api scope.go).
	Scope struct {
		TenantPrefix string `yaml:"tenant_prefix"` // empty: "tenant:"
		TargetPrefix string `yaml:"target_prefix"` // empty: "target:"
		// Unscoped: what a caller in no tenant (target) group
		// reaches: "none" (empty: the same) or "all".
		Unscoped string `yaml:"unscoped"`
	} `yaml:"scope"`
	// Evidence bundles: the SSH key signing them, where they are
	// kept, and the log's verifier key they ship.
	// AccessPolicy is a policy file whose access rules the API applies
	// to just-in-time access requests (the gateways' policy files name
	// the same rules); empty: access requests are answered 503.
	AccessPolicy string `yaml:"access_policy"`
	// AccessPeers are the instance names of the other api instances
	// (signing grants with the same approvals.key): access reviews
	// count their grants too. This instance's always count.
	AccessPeers []string `yaml:"access_peers"`
	EvidenceKey string   `yaml:"evidence_key"`
	// Store is the segment store the API reads bulk pieces from
	// (bulk/<name>, docs/FORMAT.md §1.7) for a session's cast; empty:
	// ledger.store when set, else none: the pieces the writer stored
	// (and deleted from AUDIT_BULK) are then not played.
	Store string `yaml:"store"`
	// Console serves the web console at /console/ (services/console)
	// when ClientID is set: the console's client at the OpenID provider
	// (oidc.issuer), public (PKCE) or with ClientSecret; URL is its
	// external address ending in /console/ (empty: http://LISTEN/console/,
	// allowed on a loopback address only). Its redirect URI is URL +
	// "callback".
	Console struct {
		ClientID     string `yaml:"client_id"`
		ClientSecret string `yaml:"client_secret"`
		URL          string `yaml:"url"`
	} `yaml:"console"`
	EvidenceDir string `yaml:"evidence_dir"`
	LogVKey     string `yaml:"log_vkey"`
	// Directory: the identity provider's users and groups, recorded as
	// identity.snapshot at start and every Every (services/directory),
	// read over SCIM 2.0 when SCIMURL is set, else the identities and
	// groups seen in tokens (from the projection).
	Directory struct {
		SCIMURL       string   `yaml:"scim_url"`
		SCIMTokenFile string   `yaml:"scim_token_file"`
		Subject       string   `yaml:"subject"` // the SCIM attribute tokens' sub is: userName (default), id or externalId
		Tenants       []string `yaml:"tenants"` // empty: serve's tenant
		Every         duration `yaml:"every"`   // 0: 24h
	} `yaml:"directory"`
}

func (c *apiRole) setDefaults() { c.Listen = defaultAPIAddr }

func (c *apiRole) envOverrides() []envOverride {
	return []envOverride{
		{"AUDITLEDGER_API_LISTEN", func(v string) error { c.Listen = v; return nil }},
		{"AUDITLEDGER_API_ACCESS_POLICY", func(v string) error { c.AccessPolicy = v; return nil }},
		{"AUDITLEDGER_API_EVIDENCE_KEY", func(v string) error { c.EvidenceKey = v; return nil }},
		{"AUDITLEDGER_API_EVIDENCE_DIR", func(v string) error { c.EvidenceDir = v; return nil }},
		{"AUDITLEDGER_API_STORE", func(v string) error { c.Store = v; return nil }},
		{"AUDITLEDGER_API_LOG_VKEY", func(v string) error { c.LogVKey = v; return nil }},
		{"AUDITLEDGER_API_SCOPE_UNSCOPED", func(v string) error { c.Scope.Unscoped = v; return nil }},
		{"AUDITLEDGER_API_CONSOLE_CLIENT_ID", func(v string) error { c.Console.ClientID = v; return nil }},
		{"AUDITLEDGER_API_CONSOLE_CLIENT_SECRET", func(v string) error { c.Console.ClientSecret = v; return nil }},
		{"AUDITLEDGER_API_CONSOLE_URL", func(v string) error { c.Console.URL = v; return nil }},
		{"AUDITLEDGER_API_DIRECTORY_SCIM_URL", func(v string) error { c.Directory.SCIMURL = v; return nil }},
		{"AUDITLEDGER_API_DIRECTORY_SCIM_TOKEN_FILE", func(v string) error { c.Directory.SCIMTokenFile = v; return nil }},
	}
}

func (c *apiRole) check(cfg *serveConfig) error {
	if cfg.OIDC.Issuer == "" && cfg.auth == nil {
		return fmt.Errorf("oidc.issuer: required by the api role (the provider whose tokens callers send)")
	}
	if cfg.Approvals.Key == "" {
		return fmt.Errorf("approvals.key: required by the api role, which signs every approval decision (a key file from `auditledger keys generate --file approvals`)")
	}
	if (c.EvidenceKey != "") != (c.LogVKey != "") || (c.EvidenceKey != "") != (c.EvidenceDir != "") {
		return fmt.Errorf("api.evidence_key, api.evidence_dir and api.log_vkey: give all three to serve evidence bundles, or none")
	}
	if _, err := c.scope(); err != nil {
		return err
	}
	d := c.Directory
	switch {
	case (d.SCIMURL != "") != (d.SCIMTokenFile != ""):
		return fmt.Errorf("api.directory.scim_url and scim_token_file: give both (the SCIM service and the file holding its bearer token), or neither")
	case d.Subject != "" && d.Subject != string(directory.SubjectUserName) && d.Subject != string(directory.SubjectID) && d.Subject != string(directory.SubjectExternalID):
		return fmt.Errorf("api.directory.subject: %q is not userName, id or externalId (the SCIM attribute the tokens' sub is)", d.Subject)
	}
	for _, t := range d.Tenants {
		if !tenantName.MatchString(t) {
			return fmt.Errorf("api.directory.tenants: %q is not a tenant", t)
		}
	}
	return nil
}

// directoryRecorders are the identity snapshots the API records: one per
// tenant, read over SCIM or, without it, from the projection's events;
// none when neither is there.
func (c *apiRole) directoryRecorders(e *env, p *producer, db *pgxpool.Pool, log *slog.Logger) ([]*directory.Recorder, error) {
	d := c.Directory
	var read func(ctx context.Context, tenant string) (*directory.Snapshot, error)
	issuer := e.cfg.OIDC.Issuer
	switch {
	case d.SCIMURL != "":
		tok, err := os.ReadFile(d.SCIMTokenFile)
		if err != nil {
			return nil, fmt.Errorf("api.directory.scim_token_file: %w", err)
		}
		client := &directory.SCIM{BaseURL: d.SCIMURL, Token: strings.TrimSpace(string(tok))}
		sub := directory.SubjectOf(d.Subject)
		read = func(ctx context.Context, _ string) (*directory.Snapshot, error) {
			return directory.FromSCIM(ctx, client, sub)
		}
		log.Info("identity snapshots over SCIM", "url", d.SCIMURL)
	case db != nil:
		reader := projections.NewReader(db)
		read = func(ctx context.Context, tenant string) (*directory.Snapshot, error) {
			since := time.Now().Add(-24 * time.Hour)
			seen, err := reader.IdentitiesSeen(ctx, tenant, issuer, since)
			if err != nil {
				return nil, err
			}
			ss := make([]directory.Seen, len(seen))
			for i, x := range seen {
				ss[i] = directory.Seen(x)
			}
			return directory.FromTokens(ss, since), nil
		}
		log.Info("identity snapshots from the groups seen in tokens: set api.directory.scim_url for the provider's directory")
	default:
		log.Info("identity snapshots off: set api.directory.scim_url, or AUDITLEDGER_DATABASE_URL for the groups seen in tokens")
		return nil, nil
	}
	tenants := d.Tenants
	if len(tenants) == 0 {
		tenants = []string{e.cfg.Tenant}
	}
	var out []*directory.Recorder
	for _, t := range tenants {
		out = append(out, &directory.Recorder{
			Read: func(ctx context.Context) (*directory.Snapshot, error) { return read(ctx, t) },
			Emit: func(ctx context.Context, ev *events.Event) error { _, err := p.em.Emit(ctx, ev); return err },
			Keys: p.keys, Tenant: t, Issuer: issuer, Source: events.Source{Kind: "api", Instance: e.cfg.instanceName()},
			Every: time.Duration(d.Every), Logger: log,
		})
	}
	return out, nil
}

// scope is the API's reading of tenant and target scopes from groups.
func (c *apiRole) scope() (api.ScopeConfig, error) {
	s := api.ScopeConfig{TenantPrefix: c.Scope.TenantPrefix, TargetPrefix: c.Scope.TargetPrefix}
	switch c.Scope.Unscoped {
	case "", "none":
	case "all":
		s.UnscopedAll = true
	default:
		return s, fmt.Errorf("api.scope.unscoped: %q is not none or all (what a caller in no tenant:NAME or target:NAME group reaches)", c.Scope.Unscoped)
	}
	if s.TenantPrefix != "" && s.TenantPrefix == s.TargetPrefix {
		return s, fmt.Errorf("api.scope: tenant_prefix and target_prefix are both %q: a group would name a tenant and a target at once", s.TenantPrefix)
	}
	return s, nil
}

// evidence loads what the API needs to build evidence bundles, if
// configured; the grant key bundles check grants with is the verifier
// of approvalsKey, with which this role signs them.
func (c *apiRole) evidence(approvalsKey string) (*api.EvidenceConfig, error) {
	if c.EvidenceKey == "" {
		return nil, nil
	}
	signer, err := loadEvidenceKey(c.EvidenceKey)
	if err != nil {
		return nil, fmt.Errorf("api.evidence_key: %w", err)
	}
	v, err := loadVerifier(c.LogVKey)
	if err != nil {
		return nil, fmt.Errorf("api.log_vkey: %w", err)
	}
	grants, err := loadSigner(approvalsKey)
	if err != nil {
		return nil, fmt.Errorf("approvals.key: %w", err)
	}
	return &api.EvidenceConfig{Dir: c.EvidenceDir, Signer: signer, LogVKey: v.String(), GrantVKey: grants.Verifier().String(), Generator: versionString()}, nil
}

func (c *apiRole) prepare(ctx context.Context, e *env, log *slog.Logger) (func(context.Context) error, error) {
	p, err := e.producer(ctx, recording{role: "api", principal: bus.API, decides: true}, log)
	if err != nil {
		return nil, err
	}
	roles := map[api.Role][]string{}
	for r, groups := range c.Roles {
		roles[api.Role(r)] = groups
	}
	if len(roles) == 0 {
		roles = nil // each role held by the group of its name
	}
	// The read path queries the projection, when there is one.
	var db *pgxpool.Pool
	if dsn := e.cfg.databaseURL(); dsn != "" {
		if db, err = pgxpool.New(ctx, dsn); err != nil {
			p.em.Close()
			return nil, fmt.Errorf("AUDITLEDGER_DATABASE_URL: %w", err)
		}
	} else {
		log.Info("read path off: set AUDITLEDGER_DATABASE_URL to the projection database to serve /v1/events and proofs")
	}
	ev, err := c.evidence(e.cfg.Approvals.Key)
	if err != nil {
		p.em.Close()
		return nil, err
	}
	scope, _ := c.scope() // checked by check
	ab, err := c.accessBroker(ctx, e, p, log)
	if err != nil {
		p.em.Close()
		return nil, err
	}
	h, err := api.NewServer(api.Config{Auth: p.auth, Approvals: p.broker, Access: ab, Roles: roles, Scope: scope, Emitter: p.em, Keys: p.keys, Tenant: e.cfg.Tenant, Instance: e.cfg.instanceName(), Logger: log,
		Metrics: telemetry.NewHTTP(e.health.Registry(), "api"), DB: db, Evidence: ev, Bus: p.js, BulkStore: c.bulkStore(e, log)})
	if err != nil {
		p.em.Close()
		return nil, err
	}
	dirs, err := c.directoryRecorders(e, p, db, log)
	if err != nil {
		p.em.Close()
		return nil, err
	}
	ln, err := e.listen("api", c.Listen, p, false)
	if err != nil {
		return nil, fmt.Errorf("api.listen: %w", err)
	}
	if db != nil {
		// The read path is ready once the projector has created the
		// projection's schema; until then reads answer 503.
		e.health.AddReadiness("api read path", func() (string, error) {
			rctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			defer cancel()
			if err := projections.SchemaReady(rctx, db); err != nil {
				return "", err
			}
			return "projection schema current", nil
		})
	}
	log.Info("API listening", "addr", ln.Addr().String())
	var handler http.Handler = h
	if c.Console.ClientID != "" {
		u := c.Console.URL
		if u == "" {
			u = "http://" + ln.Addr().String() + "/console/"
		}
		con, err := console.New(console.Config{API: h, Auth: p.auth, Issuer: e.cfg.OIDC.Issuer, ClientID: c.Console.ClientID,
			ClientSecret: c.Console.ClientSecret, URL: u, Logger: log})
		if err != nil {
			ln.Close()
			p.em.Close()
			return nil, fmt.Errorf("api.console: %w", err)
		}
		mux := http.NewServeMux()
		mux.Handle("/console/", con)
		mux.Handle("/console", http.RedirectHandler("/console/", http.StatusMovedPermanently))
		mux.Handle("/", h)
		handler = mux
		log.Info("console listening", "url", u)
	}
	return func(ctx context.Context) error {
		if db != nil {
			defer db.Close()
		}
		if ab != nil {
			go sweepAccess(ctx, ab, log)
		}
		for _, d := range dirs {
			go d.Run(ctx)
		}
		return p.closing(func() error { return health.Serve(ctx, ln, handler) })
	}, nil
}

// bulkStore is the store the API reads bulk pieces from: api.store, else
// ledger.store, else none. It is opened when first read, as it exists
// then: a reader never creates a store, and the ledger role of the same
// process may create it after the API starts.
func (c *apiRole) bulkStore(e *env, log *slog.Logger) bulk.Objects {
	url, from := c.Store, "api.store"
	if url == "" {
		url, from = e.cfg.Ledger.Store, "ledger.store"
	}
	if url == "" {
		log.Info("bulk pieces read from AUDIT_BULK only: set api.store to the segment store to play those the writer stored")
		return nil
	}
	return &lazyStore{url: url, from: from}
}

// lazyStore is a store opened on its first read that finds it.
type lazyStore struct {
	url, from string
	mu        sync.Mutex
	st        ledger.SegmentStore
}

func (l *lazyStore) Get(ctx context.Context, name string) ([]byte, error) {
	l.mu.Lock()
	if l.st == nil {
		st, err := storeurl.OpenExisting(ctx, l.url)
		if err != nil {
			l.mu.Unlock()
			return nil, fmt.Errorf("%s (the store the API reads bulk pieces from): %v", l.from, err) // not "no such piece"
		}
		l.st = st.Store
	}
	st := l.st
	l.mu.Unlock()
	return st.Get(ctx, name)
}

// accessBroker makes the access bucket (gateways watch it whether or not
// the API has rules) and, with api.access_policy, the broker that serves
// access requests and signs grants with approvals.key.
func (c *apiRole) accessBroker(ctx context.Context, e *env, p *producer, log *slog.Logger) (*access.Broker, error) {
	bctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if c.AccessPolicy == "" {
		if _, err := access.OpenBucket(bctx, p.js, true, e.cfg.NATS.Replicas); err != nil {
			return nil, err
		}
		log.Info("just-in-time access off: set api.access_policy to the policy file holding the access rules")
		return nil, nil
	}
	rules, err := access.LoadRules(c.AccessPolicy)
	if err != nil {
		return nil, fmt.Errorf("api.access_policy: %w", err)
	}
	signer, err := loadSigner(e.cfg.Approvals.Key)
	if err != nil {
		return nil, fmt.Errorf("approvals.key: %w", err)
	}
	return access.New(bctx, access.Config{JetStream: p.js, Emitter: p.em, Source: events.Source{Kind: "api", Instance: e.cfg.instanceName()},
		Signer: signer, Rules: rules, Peers: c.AccessPeers, Create: true, Replicas: e.cfg.NATS.Replicas, Logger: log})
}

// sweepAccess expires pending requests and ended grants every few
// seconds (access.expired); gateways end sessions at a grant's end on
// their own.
func sweepAccess(ctx context.Context, b *access.Broker, log *slog.Logger) {
	t := time.NewTicker(5 * time.Second)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if err := b.Sweep(ctx); err != nil && ctx.Err() == nil {
				log.Warn("expiring access requests", "err", err)
			}
		}
	}
}
