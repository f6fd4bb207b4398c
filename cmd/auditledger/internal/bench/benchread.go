package bench

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"path/filepath"
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
	"github.com/auditledger/auditledger/services/identity"
)

// auditor is the identity the read benchmark calls the API as: an
// auditor of every target of the benchmark's tenant, as dev's carol is.
var auditor = oidcdev.User{Name: "carol", Secret: "carol-dev-secret", Email: "carol@dev.auditledger.local", Groups: []string{"auditor", "tenant:acme", "target:*"}}

// Read measures the read path on a log of --n events: the rebuild,
// the live projector's lag while events are sealed at --rate, and the
// API's latency for a filtered query, a session timeline and an inclusion
// proof.
func Read(c *cobra.Command) cli.Run {
	fs := cli.Describe(c, "bench read --database URL [--n 1000000] [--rate 10000] [--requests 1000]",
		"Measures the read path on this machine: builds a log of N events (segments of\n10,000) in a temporary local store, rebuilds the projection into the database\n(its tables are replaced), then seals events at RATE per second for ten\nseconds while the projector follows (lag: from a segment's seal to its rows\ncommitted), then times the API — a filtered events query, a session timeline\nand an inclusion proof — each answer recorded as audit.accessed on an\nembedded NATS, as in production.")
	database := fs.String("database", os.Getenv("AUDITLEDGER_DATABASE_URL"), "postgres:// URL of a database to use (default $AUDITLEDGER_DATABASE_URL)")
	n := fs.Int("n", 1_000_000, "events in the log")
	rate := fs.Int("rate", 10_000, "events per second sealed while the projector follows")
	requests := fs.Int("requests", 1000, "API requests of each kind")
	return func(ctx context.Context, args []string, _ io.Reader, stdout, stderr io.Writer) error {
		bl, err := newBenchLog(ctx, "bench read", *database)
		if err != nil {
			return err
		}
		defer bl.close()
		dir, db, signer, l := bl.dir, bl.db, bl.signer, bl.log
		fmt.Fprintf(stdout, "auditledger bench read: %d events, then %d events/s for 10s, %d requests of each kind\n", *n, *rate, *requests)
		fmt.Fprintf(stdout, "machine: %s, %s\n", cpuModel(), runtimeVersion())
		seq := 0
		appendN := func(k int) error {
			es := make([]ledger.Entry, k)
			for i := range es {
				es[i] = ledger.Entry{Event: benchReadEvent(seq)}
				seq++
			}
			_, err := l.Append(ctx, es)
			return err
		}
		start := time.Now()
		for seq < *n {
			if err := appendN(min(10_000, *n-seq)); err != nil {
				return err
			}
		}
		fmt.Fprintf(stdout, "  log built                 %d events in %v\n", *n, time.Since(start).Round(time.Millisecond))
		cfg := bl.projection()
		start = time.Now()
		if err := projections.Rebuild(ctx, cfg, nil); err != nil {
			return err
		}
		took := time.Since(start)
		fmt.Fprintf(stdout, "  rebuild                   %.0f events/s (%d in %v)\n", float64(*n)/took.Seconds(), *n, took.Round(time.Millisecond))

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
		end := time.Now().Add(10 * time.Second)
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

		// The API, as the api role runs it.
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
		idp, err := oidcdev.Listen("127.0.0.1:0", oidcdev.Config{Audience: "auditledger", Users: []oidcdev.User{auditor}})
		if err != nil {
			return err
		}
		defer idp.Close()
		auth, err := identity.NewOIDC(ctx, identity.OIDCConfig{Issuer: idp.Issuer, Audience: "auditledger", Dev: true})
		if err != nil {
			return err
		}
		h, err := api.New(api.Config{Auth: auth, Approvals: broker, Emitter: em, DB: db, Tenant: "acme", Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
		if err != nil {
			return err
		}
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return err
		}
		sctx, stopAPI := context.WithCancel(ctx)
		defer stopAPI()
		go health.Serve(sctx, ln, h)
		token, err := identity.ClientCredentialsToken(ctx, idp.Issuer, auditor.Name, auditor.Secret)
		if err != nil {
			return err
		}
		size := l.Size()
		kinds := []struct {
			name string
			path func() string
		}{
			{"events, filtered (100)", func() string {
				return fmt.Sprintf("/v1/events?actor=u%d&type=command.executed&since=2026-11-27T10:00:00Z&limit=100", rand.IntN(50))
			}},
			{"session timeline", func() string { return fmt.Sprintf("/v1/sessions/s%d?tenant=acme", rand.IntN(*n/100)) }},
			{"inclusion proof", func() string { return fmt.Sprintf("/v1/proofs/inclusion?index=%d", rand.Uint64N(size)) }},
		}
		client := &http.Client{}
		for _, k := range kinds {
			var lat []time.Duration
			for range *requests {
				req, _ := http.NewRequestWithContext(ctx, "GET", "http://"+ln.Addr().String()+k.path(), nil)
				req.Header.Set("Authorization", "Bearer "+token)
				t0 := time.Now()
				resp, err := client.Do(req)
				if err != nil {
					return err
				}
				body, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				if resp.StatusCode != 200 {
					return fmt.Errorf("bench read: %s: %d %s", k.name, resp.StatusCode, strings.TrimSpace(string(body)))
				}
				lat = append(lat, time.Since(t0))
			}
			slices.Sort(lat)
			fmt.Fprintf(stdout, "  API %-22s p50 %v  p99 %v  max %v\n", k.name, pct(lat, 0.5), pct(lat, 0.99), lat[len(lat)-1].Round(time.Microsecond))
		}
		fmt.Fprintf(stdout, "  (each API answer includes storing its audit.accessed event on NATS with fsync)\n")
		return nil
	}
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
