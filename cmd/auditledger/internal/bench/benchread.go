package bench

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/spf13/cobra"

	"github.com/auditledger/auditledger/cmd/auditledger/internal/busdial"
	"github.com/auditledger/auditledger/cmd/auditledger/internal/cli"
	"github.com/auditledger/auditledger/events"
	"github.com/auditledger/auditledger/internal/health"
	"github.com/auditledger/auditledger/internal/oidcdev"
	"github.com/auditledger/auditledger/ledger"
	"github.com/auditledger/auditledger/ledger/bus"
	"github.com/auditledger/auditledger/ledger/bus/emitter"
	"github.com/auditledger/auditledger/ledger/file"
	"github.com/auditledger/auditledger/projections"
	"github.com/auditledger/auditledger/services/api"
	"github.com/auditledger/auditledger/services/approvals"
	"github.com/auditledger/auditledger/services/console"
	"github.com/auditledger/auditledger/services/identity"
)

// auditor is the identity the read benchmark calls the API as, and signs
// in to the console as: an auditor of two of the log's four tenants and
// every target, as dev's carol is of one.
var auditor = oidcdev.User{Name: "carol", Secret: "carol-dev-secret", Email: "carol@dev.auditledger.local",
	Groups: []string{"auditor", "tenant:acme", "tenant:globex", "target:*"}}

// Read measures the read path on a log of --n events: the rebuild,
// the live projector's lag while events are sealed at --rate, and the
// latency of the API's and the console's reads: session lists, a
// 1,000-event timeline, filtered events and an inclusion proof.
func Read(c *cobra.Command) cli.Run {
	fs := cli.Describe(c, "bench read --database URL [--n 1000000] [--rate 10000] [--follow 10s] [--requests 1000] [--cpuprofile FILE]",
		"Measures the read path on this machine: builds a log of N events (segments of\n10,000; the sessions of four tenants interleaved, most of a few statements,\nsome of 1,000 and more) in a temporary local store, rebuilds the projection\ninto the database (its tables are replaced), then seals events at RATE per\nsecond for FOLLOW while the projector follows (lag: from a segment's seal to\nits rows committed), then times, one request at a time over loopback, the\nAPI with a bearer token and the console signed in through the OpenID\nprovider's login page: the session list (first page, filtered by actor, a\npage far in, every tenant in scope), a session timeline of 1,000 events,\nfiltered events and an inclusion proof. Each answer is recorded as\naudit.accessed on an embedded NATS, as in production. Prints p50, p95 and\np99 of each.")
	database := fs.String("database", os.Getenv("AUDITLEDGER_DATABASE_URL"), "postgres:// URL of a database to use (default $AUDITLEDGER_DATABASE_URL)")
	n := fs.Int("n", 1_000_000, "events in the log")
	rate := fs.Int("rate", 10_000, "events per second sealed while the projector follows")
	follow := fs.Duration("follow", 10*time.Second, "how long events are sealed at --rate while the projector follows")
	requests := fs.Int("requests", 1000, "requests of each kind")
	cpuProfile := fs.String("cpuprofile", "", "write a CPU profile of this process while the requests are timed to FILE")
	return func(ctx context.Context, args []string, _ io.Reader, stdout, stderr io.Writer) error {
		if *n < 1 || *rate < 1 || *requests < 1 || *follow < 100*time.Millisecond {
			return fmt.Errorf("bench read: need --n, --rate and --requests ≥ 1 and --follow ≥ 100ms")
		}
		bl, err := newBenchLog(ctx, "bench read", *database)
		if err != nil {
			return err
		}
		defer bl.close()
		dir, db, signer, l := bl.dir, bl.db, bl.signer, bl.log
		fmt.Fprintf(stdout, "auditledger bench read: %d events, then %d events/s for %v, %d requests of each kind\n", *n, *rate, *follow, *requests)
		fmt.Fprintf(stdout, "machine: %s, %d CPUs, %s, load average %s\n", cpuModel(), runtime.NumCPU(), runtimeVersion(), loadAverage())
		gen := newReadLog()
		appendN := func(k int) error {
			es := make([]ledger.Entry, k)
			for i := range es {
				es[i] = ledger.Entry{Event: gen.next()}
			}
			_, err := l.Append(ctx, es)
			return err
		}
		start := time.Now()
		for gen.n < *n {
			if err := appendN(min(10_000, *n-gen.n)); err != nil {
				return err
			}
		}
		sessions, long, largest := gen.stats()
		fmt.Fprintf(stdout, "  log built                 %d events in %v: %d sessions of 4 tenants, %d of 1,000 events or more, the largest %d\n",
			*n, time.Since(start).Round(time.Millisecond), sessions, long, largest)
		cfg := bl.projection()
		start = time.Now()
		if err := projections.Rebuild(ctx, cfg, nil); err != nil {
			return err
		}
		took := time.Since(start)
		fmt.Fprintf(stdout, "  rebuild                   %.0f events/s (%d in %v)\n", float64(*n)/took.Seconds(), *n, took.Round(time.Millisecond))
		// What the read side's figures are taken from: the log built,
		// not the events sealed while the projector follows.
		acmeIDs, timelines := gen.ids("acme"), gen.timelines("acme", 1000)

		// Lag: segments sealed at the rate, each timed from its seal to the
		// projector's commit.
		sealed := map[uint64]time.Time{}
		var lags []time.Duration
		applied := make(chan ledger.Position, 1024)
		cfg.Applied = func(p ledger.Position) { applied <- p }
		pctx, stopProjector := context.WithCancel(ctx)
		defer stopProjector()
		done := make(chan error, 1)
		go func() { done <- projections.Run(pctx, cfg) }()
		per := max(1, *rate/10)
		tick := time.NewTicker(100 * time.Millisecond)
		end := time.Now().Add(*follow)
		collect := func() {
			for {
				select {
				case p := <-applied:
					if t, ok := sealed[p.Size]; ok {
						lags = append(lags, time.Since(t))
					}
				default:
					return
				}
			}
		}
		for time.Now().Before(end) {
			<-tick.C
			if err := appendN(per); err != nil {
				return err
			}
			sealed[l.Size()] = time.Now()
			collect()
		}
		tick.Stop()
		for deadline := time.Now().Add(30 * time.Second); len(lags) < len(sealed) && time.Now().Before(deadline); {
			select {
			case p := <-applied:
				if t, ok := sealed[p.Size]; ok {
					lags = append(lags, time.Since(t))
				}
			case <-time.After(time.Second):
			}
		}
		stopProjector()
		if err := <-done; err != nil {
			return err
		}
		slices.Sort(lags)
		if len(lags) > 0 {
			fmt.Fprintf(stdout, "  projector lag at %d/s     p50 %v  p99 %v  max %v  (%d segments of %d)\n", *rate,
				pct(lags, 0.5), pct(lags, 0.99), lags[len(lags)-1].Round(time.Millisecond), len(lags), per)
		}

		// The API and the console, as the api role runs them.
		ns, dial, err := busdial.StartEmbedded("auditledger-bench-read", filepath.Join(dir, "nats"), filepath.Join(dir, "nats-keys"), -1, true, true)
		if err != nil {
			return err
		}
		defer ns.Shutdown()
		defer dial.Close()
		_, ljs, err := dial.Connect(bus.Ledger)
		if err != nil {
			return err
		}
		if err := bus.EnsureStreams(ctx, ljs, bus.StreamOptions{}); err != nil {
			return err
		}
		_, js, err := dial.Connect(bus.API)
		if err != nil {
			return err
		}
		em, err := emitter.New(emitter.Config{JetStream: js})
		if err != nil {
			return err
		}
		defer em.Close()
		broker, err := approvals.New(ctx, approvals.Config{JetStream: js, Emitter: em, Create: true, Signer: signer, Source: events.Source{Kind: "api", Instance: "bench"}})
		if err != nil {
			return err
		}
		idp, err := oidcdev.Listen("127.0.0.1:0", oidcdev.Config{Audience: "auditledger", Users: []oidcdev.User{auditor},
			LoginClients: []oidcdev.LoginClient{{ID: "auditledger-console", RedirectGlobs: []string{"http://127.0.0.1:*/console/callback"}}}})
		if err != nil {
			return err
		}
		defer idp.Close()
		auth, err := identity.NewOIDC(ctx, identity.OIDCConfig{Issuer: idp.Issuer, Audience: "auditledger", Dev: true})
		if err != nil {
			return err
		}
		quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
		h, err := api.NewServer(api.Config{Auth: auth, Approvals: broker, Emitter: em, DB: db, Tenant: "acme", Logger: quiet})
		if err != nil {
			return err
		}
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return err
		}
		base := "http://" + ln.Addr().String()
		con, err := console.New(console.Config{API: h, Auth: auth, Issuer: idp.Issuer, ClientID: "auditledger-console", URL: base + "/console/", Logger: quiet})
		if err != nil {
			return err
		}
		mux := http.NewServeMux()
		mux.Handle("/console/", con)
		mux.Handle("/", h)
		sctx, stopAPI := context.WithCancel(ctx)
		defer stopAPI()
		go health.Serve(sctx, ln, mux)
		token, err := identity.ClientCredentialsToken(ctx, idp.Issuer, auditor.Name, auditor.Secret)
		if err != nil {
			return err
		}
		bearer := &http.Client{}
		browser, err := signIn(ctx, base, idp.Issuer, auditor)
		if err != nil {
			return err
		}

		size := l.Size()
		actor := func() string { return fmt.Sprintf("u%d", rand.IntN(10)) }
		timeline := func() *readSession { return timelines[rand.IntN(len(timelines))] }
		kinds := []struct {
			name   string
			client *http.Client
			path   func() string
			// check, when set, checks an answer's body (outside the timing).
			check func(path string, body []byte) error
		}{
			{"API sessions, first page (100)", bearer, func() string { return "/v1/sessions?tenant=acme&limit=100" }, nil},
			{"API sessions, both tenants (100)", bearer, func() string { return "/v1/sessions?limit=100" }, nil},
			{"API sessions, actor= (100)", bearer, func() string { return "/v1/sessions?tenant=acme&actor=" + actor() + "&limit=100" }, nil},
			{"API sessions, after= far in (100)", bearer, func() string {
				// A page in the last fifth of the list, by its keyset cursor.
				return "/v1/sessions?tenant=acme&limit=100&after=" + acmeIDs[len(acmeIDs)*4/5+rand.IntN(max(1, len(acmeIDs)/5))]
			}, nil},
			{fmt.Sprintf("API session timeline (%d)", timelines[0].seq), bearer, func() string {
				return "/v1/sessions/" + timeline().id + "?tenant=acme"
			}, checkTimeline(timelines)},
			{"API events, actor+type (100)", bearer, func() string {
				return "/v1/events?tenant=acme&actor=" + actor() + "&type=command.executed&limit=100"
			}, nil},
			{"API events, actor+type+since (100)", bearer, func() string {
				return "/v1/events?actor=" + actor() + "&type=command.executed&since=2026-11-27T10:05:00Z&limit=100"
			}, nil},
			{"API inclusion proof", bearer, func() string { return fmt.Sprintf("/v1/proofs/inclusion?index=%d", gen.index(size)) }, nil},
			{"console sessions page (50)", browser, func() string { return "/console/sessions" }, nil},
			{"console sessions, who+type (50)", browser, func() string {
				return "/console/sessions?tenant=acme&who=" + actor() + "&type=command.executed"
			}, nil},
			{fmt.Sprintf("console session timeline (%d)", timelines[0].seq), browser, func() string {
				return "/console/sessions/acme/" + timeline().id
			}, nil},
		}
		stopProfile, err := startCPUProfile(*cpuProfile)
		if err != nil {
			return err
		}
		defer stopProfile()
		fmt.Fprintf(stdout, "  %-38s %9s %9s %9s %9s\n", "request (rows)", "p50", "p95", "p99", "max")
		for _, k := range kinds {
			var lat []time.Duration
			for i := range *requests {
				path := k.path()
				req, _ := http.NewRequestWithContext(ctx, "GET", base+path, nil)
				if k.client == bearer {
					req.Header.Set("Authorization", "Bearer "+token)
				}
				t0 := time.Now()
				resp, err := k.client.Do(req)
				if err != nil {
					return err
				}
				body, err := io.ReadAll(resp.Body)
				resp.Body.Close()
				if err != nil {
					return fmt.Errorf("bench read: %s: %w", path, err)
				}
				lat = append(lat, time.Since(t0))
				if resp.StatusCode != 200 {
					return fmt.Errorf("bench read: %s: %s: %d %s", k.name, path, resp.StatusCode, strings.TrimSpace(string(body[:min(len(body), 500)])))
				}
				if k.check != nil && i < 3 {
					if err := k.check(path, body); err != nil {
						return fmt.Errorf("bench read: %s: %s: %w", k.name, path, err)
					}
				}
			}
			slices.Sort(lat)
			fmt.Fprintf(stdout, "  %-38s %9v %9v %9v %9v\n", k.name, pct(lat, 0.5), pct(lat, 0.95), pct(lat, 0.99), lat[len(lat)-1].Round(time.Microsecond))
		}
		fmt.Fprintf(stdout, "  (server time over loopback, one request at a time; each answer includes storing its audit.accessed event on NATS with fsync)\n")
		fmt.Fprintf(stdout, "  load average after: %s\n", loadAverage())
		return nil
	}
}

// checkTimeline checks that a timeline answer holds the session's events,
// all of them, numbered from 1.
func checkTimeline(timelines []*readSession) func(string, []byte) error {
	return func(path string, body []byte) error {
		var tl api.Timeline
		if err := json.Unmarshal(body, &tl); err != nil {
			return err
		}
		i := slices.IndexFunc(timelines, func(s *readSession) bool { return s.id == tl.SessionID })
		if i < 0 {
			return fmt.Errorf("answered session %q, not one asked for", tl.SessionID)
		}
		if len(tl.Events) != timelines[i].seq || len(tl.Gaps) != 0 {
			return fmt.Errorf("%d events and %d gaps, want %d events and none", len(tl.Events), len(tl.Gaps), timelines[i].seq)
		}
		return nil
	}
}

// signIn signs u in to the console at base through the provider's login
// page, as a browser without JavaScript does, and returns the client
// holding the session cookie.
func signIn(ctx context.Context, base, issuer string, u oidcdev.User) (*http.Client, error) {
	jar, _ := cookiejar.New(nil)
	cl := &http.Client{Jar: jar}
	get, _ := http.NewRequestWithContext(ctx, "GET", base+"/console/login", nil)
	resp, err := cl.Do(get)
	if err != nil {
		return nil, fmt.Errorf("bench read: console sign-in: %w", err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.Contains(string(body), `name="password"`) {
		return nil, fmt.Errorf("bench read: console sign-in did not reach the login page: %d %.300s", resp.StatusCode, body)
	}
	form := url.Values{"id": {resp.Request.URL.Query().Get("id")}, "username": {u.Name}, "password": {u.Secret}}
	post, _ := http.NewRequestWithContext(ctx, "POST", issuer+"/login", strings.NewReader(form.Encode()))
	post.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if resp, err = cl.Do(post); err != nil {
		return nil, fmt.Errorf("bench read: console sign-in: %w", err)
	}
	body, _ = io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.Contains(string(body), "Signed in") {
		return nil, fmt.Errorf("bench read: console sign-in of %s: %d %.300s", u.Name, resp.StatusCode, body)
	}
	return cl, nil
}

// loadAverage is the machine's 1, 5 and 15-minute load averages, or "?".
func loadAverage() string {
	b, err := os.ReadFile("/proc/loadavg")
	if f := strings.Fields(string(b)); err == nil && len(f) >= 3 {
		return strings.Join(f[:3], " ")
	}
	return "?"
}

// pct is the q-quantile of sorted latencies, to the microsecond.
func pct(sorted []time.Duration, q float64) time.Duration {
	return sorted[min(len(sorted)-1, int(q*float64(len(sorted))))].Round(time.Microsecond)
}

// benchReadEvent is event i of the benchmark's log: 50 actors, sessions of
// 100 events, commands and their digests.
func benchReadEvent(i int) []byte {
	t := time.Date(2026, 11, 27, 10, 0, 0, 0, time.UTC).Add(time.Duration(i) * time.Millisecond).Format(time.RFC3339Nano)
	if i%2 == 1 {
		return fmt.Appendf(nil, `{"version":1,"id":"ev-%d","type":"response.digest","time":"%s","tenant":"acme","source":{"kind":"postgres-proxy","instance":"p1"},"actor":{"issuer":"https://idp.example","subject":"u%d","kind":"human"},"session_id":"s%d","session_seq":%d,"target":{"kind":"postgres","name":"orders"},"payload":{"command_id":"ev-%d","rows":1,"bytes":120,"hmac":"hmac:%064x"}}`,
			i, t, i%50, i/100, i%100+1, i-1, i)
	}
	return fmt.Appendf(nil, `{"version":1,"id":"ev-%d","type":"command.executed","time":"%s","tenant":"acme","source":{"kind":"postgres-proxy","instance":"p1"},"actor":{"issuer":"https://idp.example","subject":"u%d","email":"`+sealedEmail+`","kind":"human"},"session_id":"s%d","session_seq":%d,"target":{"kind":"postgres","name":"orders"},"payload":{"statement":"SELECT * FROM orders WHERE id = %d","statement_sha256":"%064x","kind":"SELECT","protocol":"simple"}}`,
		i, t, i%50, i/100, i%100+1, i, i)
}

// benchLog is a bench's log, in a temporary local store with a fresh key,
// and the projection database it is rebuilt into.
type benchLog struct {
	dir    string
	db     *pgxpool.Pool
	store  *file.Store
	signer *ledger.NoteSigner
	vkey   string
	log    *ledger.Log
}

// newBenchLog opens the database (required) and an empty log; cmd names
// the bench in errors.
func newBenchLog(ctx context.Context, cmd, database string) (_ *benchLog, err error) {
	if database == "" {
		return nil, fmt.Errorf("%s: give --database or set AUDITLEDGER_DATABASE_URL", cmd)
	}
	b := &benchLog{}
	if b.dir, err = os.MkdirTemp("", "auditledger-"+strings.ReplaceAll(cmd, " ", "-")+"-"); err != nil {
		return nil, err
	}
	defer func() {
		if err != nil {
			b.close()
		}
	}()
	if b.db, err = pgxpool.New(ctx, database); err != nil {
		return nil, fmt.Errorf("%s: --database: %w", cmd, err)
	}
	skey, vkey, _ := ledger.GenerateKey(nil, "bench.auditledger.local/log")
	b.signer, _ = ledger.NewNoteSigner(skey)
	b.vkey = vkey
	if b.store, err = file.New(filepath.Join(b.dir, "store")); err != nil {
		return nil, err
	}
	if b.log, err = ledger.Open(ctx, ledger.Config{Store: b.store, Signer: b.signer}); err != nil {
		return nil, err
	}
	return b, nil
}

// projection is the projector's configuration for the log, quiet.
func (b *benchLog) projection() projections.Config {
	return projections.Config{DB: b.db, Store: b.store, Verifier: b.signer.Verifier(), Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}
}

func (b *benchLog) close() {
	if b.db != nil {
		b.db.Close()
	}
	os.RemoveAll(b.dir)
}
