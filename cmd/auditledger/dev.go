package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/nats-io/nats.go"
	"github.com/spf13/cobra"

	"github.com/auditledger/auditledger/cmd/auditledger/internal/busdial"
	"github.com/auditledger/auditledger/cmd/auditledger/internal/cli"
	"github.com/auditledger/auditledger/cmd/auditledger/internal/keyfile"
	"github.com/auditledger/auditledger/internal/devpg"
	"github.com/auditledger/auditledger/internal/health"
	"github.com/auditledger/auditledger/internal/oidcdev"
	"github.com/auditledger/auditledger/ledger"
	"github.com/auditledger/auditledger/ledger/bus"
	"github.com/auditledger/auditledger/ledger/bus/emitter"
	"github.com/auditledger/auditledger/ledger/bus/nkeyauth"
	"github.com/auditledger/auditledger/ledger/file"
	"github.com/auditledger/auditledger/projections"
	"github.com/auditledger/auditledger/services/identity"
)

func devCmd(c *cobra.Command) cli.Run {
	fs := cli.Describe(c, "dev [--data DIR] [--nats-port N] [--postgres-port N] [--policy FILE] [--http-upstream URL] [--projection=false]",
		"Runs the whole ledger in one process on embedded defaults: a NATS server with\nJetStream (file store in DIR/nats), the ledger writer consuming AUDIT_EVENTS, and\na local segment store in DIR/store (read-only files; no Object Lock),\nsigned with a key created in DIR/keys on first start; a development OpenID provider with four users\n(alice, bob, carol, agent; marked dev_identity in every event), the API\n(approvals; events, sessions and proofs), the projector feeding it (into\n$AUDITLEDGER_DATABASE_URL, or a PostgreSQL server dev runs from the\ninstalled binaries in DIR/postgres, kept across restarts, stopped with dev;\nas root it runs as the postgres user, in a temporary cluster removed with dev\nwhen that user cannot reach DIR), and, when $AUDITLEDGER_PROXY_UPSTREAM\nnames a PostgreSQL database, the PostgreSQL proxy in front of it; with\n--http-upstream, the HTTP proxy; with --ssh-upstream (and its pinned\n--ssh-host-key), the SSH gateway, its keys in DIR/ssh-keys (the target trusts\nDIR/ssh-keys/target_ca.pub); with --kube-upstream (and --kube-ca,\n--kube-token-file), the Kubernetes gateway, its CA in DIR/kube-keys. One dev per DIR (DIR/auditledger.lock). Ports\nare 7340-7345 by default, NATS 4222. Stop it with Ctrl-C; run it again to\ncontinue.")
	dataDir := fs.String("data", "auditledger-data", "directory for all state (created if missing)")
	port := fs.Int("nats-port", 4222, "NATS client port on 127.0.0.1 (-1 for any free port)")
	batch := fs.Int("batch", 5000, "events per sealed segment, at most")
	maxWait := fs.Duration("max-wait", 250*time.Millisecond, "longest wait to fill a batch (group-commit latency)")
	verifyEvery := fs.Duration("verify-every", 24*time.Hour, "how often the writer verifies the whole log and seals what it found (ledger.verification): at start when the log holds records, then this often (a new log: first this long after the start)")
	httpAddr := fs.String("http", defaultHTTPAddr, "address for /metrics, /healthz and /readyz")
	oidcAddr := fs.String("oidc", defaultOIDCAddr, "address of the development OpenID provider")
	apiAddr := fs.String("api", defaultAPIAddr, "address of the API")
	proxyAddr := fs.String("proxy", defaultPGProxyAddr, "address of the PostgreSQL proxy (runs when $AUDITLEDGER_PROXY_UPSTREAM is set)")
	pgPort := fs.Int("postgres-port", defaultDevPGPort, "port on 127.0.0.1 of the PostgreSQL server dev runs for the projection (0: any free port)")
	policy := fs.String("policy", "", "the PostgreSQL proxy's policy file (docs/POLICY.md)")
	httpUpstream := fs.String("http-upstream", "", "run the HTTP proxy in front of this URL")
	proxyHTTPAddr := fs.String("proxy-http", defaultHTTPProxyAddr, "address of the HTTP proxy (runs with --http-upstream)")
	httpPolicy := fs.String("http-policy", "", "the HTTP proxy's policy file (docs/POLICY.md)")
	sshUpstream := fs.String("ssh-upstream", "", "run the SSH gateway in front of this sshd (host:port), as target dev-ssh")
	sshHostKey := fs.String("ssh-host-key", "", "the --ssh-upstream server's host key, pinned (as ssh-keyscan prints it, without the host name)")
	sshAddr := fs.String("proxy-ssh", defaultSSHProxyAddr, "address of the SSH gateway (runs with --ssh-upstream)")
	sshLogin := fs.String("ssh-login", defaultSSHLoginAddr, "address of the SSH gateway's login endpoint (auditledger login ssh)")
	sshPolicy := fs.String("ssh-policy", "", "the SSH gateway's policy file (docs/POLICY.md)")
	kubeUpstream := fs.String("kube-upstream", "", "run the Kubernetes gateway in front of this API server (https://HOST:PORT), as cluster dev-kube")
	kubeCA := fs.String("kube-ca", "", "the --kube-upstream API server's CA certificate (PEM)")
	kubeTokenFile := fs.String("kube-token-file", "", "the gateway's own token at the API server (a service account allowed to impersonate)")
	kubeAddr := fs.String("proxy-kube", defaultKubeGatewayAddr, "address of the Kubernetes gateway (runs with --kube-upstream)")
	kubePolicy := fs.String("kube-policy", "", "the Kubernetes gateway's policy file (docs/POLICY.md)")
	syslogAddr := fs.String("forward-syslog", "", "forward every sealed record to this syslog receiver (host:port, RFC 5425 over TLS)")
	syslogCA := fs.String("forward-syslog-ca", "", "CAs of the syslog receiver's certificate (PEM; default: the system's)")
	hecURL := fs.String("forward-hec", "", "forward to this Splunk HTTP Event Collector (base URL; token in $AUDITLEDGER_HEC_TOKEN; indexer acknowledgement on)")
	webhookURL := fs.String("forward-webhook", "", "forward to this HTTPS webhook (HMAC key in $AUDITLEDGER_WEBHOOK_SECRET)")
	forwardFormat := fs.String("forward-format", "", "the forwarders' rendering: json, ocsf or cef (default: cef to syslog, ocsf to HEC, json to the webhook)")
	projection := fs.Bool("projection", true, "project the log into PostgreSQL and serve the read API (events, sessions, proofs): into $AUDITLEDGER_DATABASE_URL, or a server dev starts from the installed PostgreSQL binaries in DIR/postgres")
	syncMode := fs.String("sync", "always", `JetStream fsync: "always" (an acknowledged event survives power loss) or "interval" (every 2 minutes: survives a process crash only)`)
	return stopClean(func(ctx context.Context, args []string, _ io.Reader, stdout, stderr io.Writer) error {
		if *syncMode != "always" && *syncMode != "interval" {
			return fmt.Errorf("dev: --sync must be always or interval")
		}
		log := cli.Logger(ctx, stderr, "text", "info")
		abs, err := filepath.Abs(*dataDir)
		if err != nil {
			return err
		}
		// A new data directory is the user's alone; as root, others may pass
		// through it (not list it), so that the postgres user reaches the
		// projection database's cluster in DATA/postgres.
		if _, err := os.Stat(abs); errors.Is(err, os.ErrNotExist) {
			mode := os.FileMode(0o700)
			if os.Geteuid() == 0 {
				mode = 0o711
			}
			if err := os.MkdirAll(abs, mode); err != nil {
				return fmt.Errorf("dev: --data: %w", err)
			}
			os.Chmod(abs, mode) // whatever the umask
		}
		// One dev per data directory, before anything in it is touched.
		// Two on one directory would run two NATS servers on one JetStream
		// store, and each would stop the other's PostgreSQL.
		unlock, err := lockDir(abs)
		if err != nil {
			return fmt.Errorf("dev: --data: %w", err)
		}
		defer unlock()
		// A busy port is named with its flag before anything starts (the
		// proxies' only when they will run).
		ports := []portFlag{{"nats-port", net.JoinHostPort("127.0.0.1", strconv.Itoa(*port))}, {"http", *httpAddr}, {"oidc", *oidcAddr}, {"api", *apiAddr}}
		if *projection && os.Getenv("AUDITLEDGER_DATABASE_URL") == "" {
			ports = append(ports, portFlag{"postgres-port", net.JoinHostPort("127.0.0.1", strconv.Itoa(*pgPort))})
		}
		if os.Getenv("AUDITLEDGER_PROXY_UPSTREAM") != "" {
			ports = append(ports, portFlag{"proxy", *proxyAddr})
		}
		if *httpUpstream != "" {
			ports = append(ports, portFlag{"proxy-http", *proxyHTTPAddr})
		}
		if *sshUpstream != "" {
			if *sshHostKey == "" {
				return cli.Usagef("--ssh-upstream needs --ssh-host-key: the gateway never trusts a host key on first use (ssh-keyscan HOST prints it)")
			}
			ports = append(ports, portFlag{"proxy-ssh", *sshAddr}, portFlag{"ssh-login", *sshLogin})
		}
		if *kubeUpstream != "" {
			if *kubeCA == "" || *kubeTokenFile == "" {
				return cli.Usagef("--kube-upstream needs --kube-ca (the gateway never skips certificate verification) and --kube-token-file (its credential at the API server)")
			}
			ports = append(ports, portFlag{"proxy-kube", *kubeAddr})
		}
		if err := checkPorts(ports); err != nil {
			return fmt.Errorf("dev: %w", err)
		}
		_, vkeyPath, err := devKey(filepath.Join(abs, "keys"), "ledger", "dev.auditledger.local/log", stdout)
		if err != nil {
			return err
		}
		// The API signs approval decisions with its own key; the proxies
		// check them with its verifier key.
		if _, _, err := devKey(filepath.Join(abs, "keys"), "approvals", "dev.auditledger.local/approvals", stdout); err != nil {
			return err
		}
		// dev's proxies and API attest their events as the producer "dev"
		// (verify --producers keys/producer.vkey checks them; emit's samples,
		// from other producers, stay unattested).
		if _, _, err := devKey(filepath.Join(abs, "keys"), "producer", "dev", stdout); err != nil {
			return err
		}

		// The projection database: the one named, or a cluster of dev's own,
		// kept in the data directory and stopped after everything else.
		database, projectionLine := "", "off (--projection=false)"
		if *projection {
			database, projectionLine = os.Getenv("AUDITLEDGER_DATABASE_URL"), "AUDITLEDGER_DATABASE_URL"
			if database == "" {
				pg, removePG, err := startDevPostgres(ctx, abs, *pgPort, log)
				switch {
				case errors.Is(err, devpg.ErrNotInstalled):
					log.Warn("read path off: "+err.Error(), "to turn it on", devpg.Install+", or set AUDITLEDGER_DATABASE_URL")
					projectionLine = "off: no PostgreSQL server installed (" + devpg.Install + ")"
				case err != nil:
					return fmt.Errorf("dev: the projection database: %w\n(set AUDITLEDGER_DATABASE_URL to use a database of your own, or run with --projection=false)", err)
				default:
					defer func() {
						if err := pg.Stop(); err != nil {
							log.Warn("stopping the projection database", "err", err)
						}
						removePG()
					}()
					database = pg.URL()
					// For the commands that read the projection directly
					// (evidence build, projections rebuild): the URL with its
					// password, readable by dev's user only.
					urlFile := filepath.Join(abs, "projection.url")
					os.Remove(urlFile)
					if err := keyfile.WriteNew(urlFile, database+"\n", 0o600); err != nil {
						return fmt.Errorf("dev: %w", err)
					}
					projectionLine = fmt.Sprintf("%s   PostgreSQL %s run by dev in %s; the URL with its password: %s", pg.Redacted(), pg.Version, pg.Dir, urlFile)
				}
			}
		}

		// The key evidence bundles are signed with (an SSH key, apart from
		// the log's checkpoint key).
		if _, err := os.Stat(filepath.Join(abs, "keys", "evidence")); err != nil {
			if err := keyfile.WriteEvidenceKey(filepath.Join(abs, "keys"), "dev.auditledger.local/log"); err != nil {
				return err
			}
			fmt.Fprintf(stdout, "created evidence signing key %s\n", filepath.Join(abs, "keys", "evidence"))
		}

		natsKeys := filepath.Join(abs, "nats-keys")
		// dev's proxies publish as the producer "dev", with its own seed.
		ns, dial, err := busdial.StartEmbedded("auditledger-dev", filepath.Join(abs, "nats"), natsKeys, *port, *syncMode == "always", false, "dev")
		if err != nil {
			return fmt.Errorf("dev: %w (port in use? choose another with --nats-port)", err)
		}
		defer ns.Shutdown()
		dial.Log = log
		defer dial.Close()
		_, js, err := dial.Connect(bus.Ledger)
		if err != nil {
			return err
		}
		store, err := file.New(filepath.Join(abs, "store"))
		if err != nil {
			return err
		}
		// A part that fails ends dev: its HTTP server too.
		ctx, cancel := context.WithCancel(ctx)
		defer cancel()
		metrics := &health.Health{}
		addr, wait, err := health.ListenAndServe(ctx, *httpAddr, metrics.Handler())
		if err != nil {
			return fmt.Errorf("dev: --http %s: %w", *httpAddr, err)
		}
		if err := bus.EnsureStreams(ctx, js, bus.StreamOptions{}); err != nil {
			return err
		}
		// The development OpenID provider, its signing key kept in DATA/keys
		// so that tokens survive a restart; it serves its users and groups
		// over SCIM 2.0 too, to the API's identity snapshots (the bearer
		// token in DATA/keys/scim-token).
		scimToken, err := devSCIMToken(filepath.Join(abs, "keys", "scim-token"))
		if err != nil {
			return fmt.Errorf("dev: %w", err)
		}
		idp, err := oidcdev.Listen(*oidcAddr, oidcdev.Config{Audience: "auditledger", Users: devUsers, KeyFile: filepath.Join(abs, "keys", "oidc-dev.pem"), SCIMToken: scimToken,
			LoginClients: devLoginClients})
		if err != nil {
			return fmt.Errorf("dev: --oidc %s: %w", *oidcAddr, err)
		}
		defer idp.Close()
		auth, err := identity.NewOIDC(ctx, identity.OIDCConfig{Issuer: idp.Issuer, Audience: "auditledger", Dev: true})
		if err != nil {
			return fmt.Errorf("dev: %w", err)
		}
		// The projection's schema before any part starts: the API answers
		// from its first request, and the projector, which migrates too,
		// may not have run yet (its migration is then a no-op).
		if database != "" {
			if err := migrateProjection(ctx, database); err != nil {
				return fmt.Errorf("dev: %w", err)
			}
		}
		cfg, roles := devConfig{data: abs, issuer: idp.Issuer, database: database, apiAddr: *apiAddr, proxyAddr: *proxyAddr, policy: *policy,
			httpAddr: *proxyHTTPAddr, httpUpstream: *httpUpstream, httpPolicy: *httpPolicy, batch: *batch, maxWait: *maxWait, verifyEvery: *verifyEvery,
			syslogAddr: *syslogAddr, syslogCA: *syslogCA, hecURL: *hecURL, webhookURL: *webhookURL, forwardFormat: *forwardFormat,
			sshAddr: *sshAddr, sshLogin: *sshLogin, sshUpstream: *sshUpstream, sshHostKey: *sshHostKey, sshPolicy: *sshPolicy,
			kubeAddr: *kubeAddr, kubeUpstream: *kubeUpstream, kubeCA: *kubeCA, kubeTokenFile: *kubeTokenFile, kubePolicy: *kubePolicy}.serveConfig(auth)
		e := newEnv(cfg, dial, metrics, log)
		var sealedAtStart uint64
		var last *ledger.Log
		e.onWriter = func(l *ledger.Log) {
			last, sealedAtStart = l, l.Size()
			fmt.Fprintf(stdout, `auditledger dev — development mode, not for production
  NATS (JetStream)  %s   streams AUDIT_EVENTS, AUDIT_LEDGER, AUDIT_REJECTED; fsync %s
                    one nkey per bus role in %s (admin, ledger, api, proxy, reader, producer-dev)
  segment store     %s   (%d records sealed so far)
  verifier key      %s
  metrics, health   http://%s/metrics  /healthz  /readyz
  try:
    auditledger emit --nats %s --nkey %s < ledger/testdata/sample.jsonl
    auditledger verify --store %s --vkey %s
    nats --server %s --nkey %s --inbox-prefix %s sub 'audit.live.>'    # each record as it is sealed, with the stock nats CLI
`, ns.ClientURL(), *syncMode, natsKeys, store, l.Size(), vkeyPath, addr,
				ns.ClientURL(), nkeyauth.SeedFile(natsKeys, bus.Proxy), store.Dir(), vkeyPath,
				ns.ClientURL(), nkeyauth.SeedFile(natsKeys, bus.Reader), bus.Reader.InboxPrefix())
			devBanner(stdout, e, idp.Issuer, projectionLine)
		}
		// Every part runs under one supervisor: one that fails stops dev.
		err = runRoles(ctx, e, roles)
		cancel()
		if last != nil {
			fmt.Fprintf(stdout, "auditledger dev: stopped; %d events sealed this run, log size %d\n", last.Size()-sealedAtStart, last.Size())
		}
		if err != nil {
			err = fmt.Errorf("dev: %w", err)
		}
		if werr := wait(); err == nil {
			err = werr
		}
		return err
	})
}

// startDevPostgres starts dev's own PostgreSQL cluster for the data
// directory (as the postgres user when root), creating it on first start.
// remove, called after the server has stopped, removes a temporary
// cluster (devpg.Location); it does nothing to one in the data directory.
func startDevPostgres(ctx context.Context, data string, port int, log *slog.Logger) (pg *devpg.Server, remove func(), err error) {
	if _, err := devpg.BinDir(); err != nil {
		return nil, nil, err
	}
	as, err := devpg.Unprivileged()
	if err != nil {
		return nil, nil, err
	}
	dir, ephemeral, err := devpg.Location(data, as)
	if err != nil {
		return nil, nil, err
	}
	remove = func() {}
	if ephemeral {
		log.Warn("the postgres user cannot reach the data directory (a directory above it is closed to other users): the projection database lives in a temporary cluster, removed when dev stops and rebuilt from the store at each start; to keep it, give --data a directory others may pass through (chmod o+x on each directory above it)", "cluster", dir)
		remove = func() {
			if err := os.RemoveAll(dir); err != nil {
				log.Warn("removing the temporary projection cluster", "cluster", dir, "err", err)
			}
		}
	}
	pg, err = devpg.Start(ctx, devpg.Config{Dir: dir, As: as, Port: port})
	if err != nil {
		remove()
		return nil, nil, err
	}
	if pg.Created {
		log.Info("created the projection database's cluster", "dir", dir, "version", pg.Version)
	}
	log.Info("projection database up", "url", pg.Redacted())
	return pg, remove, nil
}

// devKey loads the dev signing key (DIR/STEM.key and .vkey, named name),
// creating it on first start.
func devKey(dir, stem, name string, stdout io.Writer) (*ledger.NoteSigner, string, error) {
	sp, vp := filepath.Join(dir, stem+".key"), filepath.Join(dir, stem+".vkey")
	if _, err := os.Stat(sp); errors.Is(err, fs.ErrNotExist) {
		skey, vkey, err := ledger.GenerateKey(nil, name)
		if err != nil {
			return nil, "", err
		}
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return nil, "", err
		}
		if err := keyfile.WriteNew(sp, skey+"\n", 0o600); err != nil {
			return nil, "", err
		}
		if err := keyfile.WriteNew(vp, vkey+"\n", 0o644); err != nil {
			return nil, "", err
		}
		fmt.Fprintf(stdout, "created signing key %s\n", sp)
	}
	s, err := loadSigner(sp)
	return s, vp, err
}

func emitCmd(c *cobra.Command) cli.Run {
	fs := cli.Describe(c, "emit [--nats URL] < events.jsonl",
		"Publishes one event per line to AUDIT_EVENTS (subject audit.events.<tenant>.<type>,\nNats-Msg-Id = the event id) and waits until JetStream has stored each. Lines\nthat are not valid events, or that hold a value a built-in detector finds\n(reported by event and detector, never by value), are reported with their line\nnumber and reason and not sent; the exit code is 1 if any line was rejected or not stored.")
	url := fs.String("nats", nats.DefaultURL, "NATS server URL")
	nkey := fs.String("nkey", "", "NATS nkey seed file of the proxy bus role (auditledger keys nats; dev prints it)")
	creds := fs.String("creds", "", "NATS JWT credentials file (decentralized auth), instead of --nkey")
	spoolDir := fs.String("spool", "", "spool events to this directory while NATS is unreachable, and deliver them when it returns")
	producerKey := fs.String("producer-key", "", "attest the events with this producer key (keys generate --file NAME --name INSTANCE): one signature per batch; its name must be the events' source instance")
	ids := fs.Bool("ids", false, "print the id of each event on stdout as soon as JetStream has stored it (spooled ones: once spooled, prefixed \"spooled \")")
	return func(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) error {
		dial := &busdial.Dialer{URL: *url, Name: "auditledger-emit", SeedFile: *nkey, Creds: *creds, Retry: *spoolDir != "",
			Log: cli.Logger(ctx, stderr, "text", "warn")}
		defer dial.Close()
		_, js, err := dial.Connect(bus.Proxy)
		if err != nil {
			return fmt.Errorf("emit: %w", err)
		}
		role := dial.Principal(bus.Proxy)
		ecfg := emitter.Config{JetStream: js, SpoolDir: *spoolDir, Logger: dial.Log}
		if *producerKey != "" {
			psigner, err := loadSigner(*producerKey)
			if err != nil {
				return fmt.Errorf("emit: --producer-key: %w", err)
			}
			ecfg.Attester = ledger.NewProducerAttester(psigner)
		}
		em, err := emitter.New(ecfg)
		if err != nil {
			return err
		}
		damage := em.SpoolDamage()
		for _, d := range damage {
			if d.Offset < 0 {
				fmt.Fprintf(stderr, "emit: the spool's position was unreadable: delivering the whole spool again (the bus drops duplicates by event id)\n")
				continue
			}
			fmt.Fprintf(stderr, "emit: spool damaged: %s; the intact events before and after it are delivered\n", d)
		}
		in, done := inputProgress(stdin, stderr, "emitting")
		err = emitLines(ctx, em, in, stdout, stderr, *ids, "bus role "+dial.Credential(role))
		done()
		if em.Spooled() {
			fmt.Fprintf(stderr, "waiting for NATS to deliver the spool in %s (Ctrl-C leaves it for the next run)\n", *spoolDir)
			for em.Spooled() && ctx.Err() == nil {
				time.Sleep(100 * time.Millisecond)
			}
		}
		if cerr := em.Close(); err == nil {
			err = cerr
		}
		// Damage found while draining is reported too (the emitter has logged
		// each region and skipped past it).
		all := em.SpoolDamage()
		for _, d := range all[len(damage):] {
			fmt.Fprintf(stderr, "emit: spool damaged while draining: %s; the intact events after it were delivered\n", d)
		}
		if err == nil && len(all) > 0 {
			err = cli.Failed(fmt.Errorf("emit: the spool in %s was damaged (%d region(s) quarantined beside it): events may be lost", *spoolDir, len(all)))
		}
		return err
	}
}

// migrateProjection creates or updates the projection's schema in the
// database at url.
func migrateProjection(ctx context.Context, url string) error {
	db, err := pgxpool.New(ctx, url)
	if err != nil {
		return fmt.Errorf("the projection database: %w", err)
	}
	defer db.Close()
	return projections.Migrate(ctx, db)
}
