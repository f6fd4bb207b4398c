package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/auditledger/auditledger/events/emitter"
	"github.com/auditledger/auditledger/ledger"
	"github.com/auditledger/auditledger/ledger/bus"
	"github.com/auditledger/auditledger/services/identity"
	"github.com/auditledger/auditledger/services/pgproxy"
)

func benchProxy(ctx context.Context, args []string, _ io.Reader, stdout, stderr io.Writer) error {
	fs := newFlags("bench proxy --upstream URL [--clients 1,4,16] [--duration 8s] [--scale 10]",
		"Runs pgbench against a PostgreSQL database directly and through the proxy (with\nan embedded NATS recording every statement), select-only and TPC-B-like, for\neach client count, and prints TPS, average latency and the ratio. pgbench must\nbe on PATH; the database is initialised with pgbench -i first.", stderr)
	upstream := fs.String("upstream", "", "postgres:// URL of a database to benchmark (it is overwritten by pgbench -i)")
	clientsArg := fs.String("clients", "1,4,16", "comma-separated client counts")
	duration := fs.Duration("duration", 8*time.Second, "length of each pgbench run")
	scale := fs.Int("scale", 10, "pgbench scale factor")
	syncMode := fs.String("sync", "interval", "JetStream fsync of the embedded NATS: always or interval")
	durability := fs.String("durability", "before-forward", "when a statement's record must be stored: before-forward or before-response")
	policyFile := fs.String("policy", "", "run the proxy with this policy (docs/POLICY.md): the cost of parsing and classifying every statement")
	sign := fs.String("producer-sig", "none", "producer authenticity to measure: none, attest (one signature per batch) or each (every event signed)")
	cpuProfile := fs.String("cpuprofile", "", "write a CPU profile of the proxy and NATS (this process) to FILE")
	if err := parse(fs, args); err != nil {
		return err
	}
	stop, err := startCPUProfile(*cpuProfile)
	if err != nil {
		return err
	}
	defer stop()
	if err := required(fs, "upstream"); err != nil {
		return err
	}
	u, err := url.Parse(*upstream)
	if err != nil || u.Scheme != "postgres" && u.Scheme != "postgresql" {
		return fmt.Errorf("bench proxy: --upstream must be a postgres:// URL")
	}
	db := strings.TrimPrefix(u.Path, "/")
	var clients []string
	for _, c := range strings.Split(*clientsArg, ",") {
		if n, err := strconv.Atoi(strings.TrimSpace(c)); err != nil || n < 1 {
			return fmt.Errorf("bench proxy: --clients: %q", c)
		}
		clients = append(clients, strings.TrimSpace(c))
	}
	if *durability != string(pgproxy.BeforeForward) && *durability != string(pgproxy.BeforeResponse) {
		return fmt.Errorf("bench proxy: --durability %q, want before-forward or before-response", *durability)
	}
	if out, err := exec.CommandContext(ctx, "pgbench", "-i", "-q", "-s", strconv.Itoa(*scale), *upstream).CombinedOutput(); err != nil {
		return fmt.Errorf("bench proxy: pgbench -i: %v\n%s", err, out)
	}

	dir, err := os.MkdirTemp("", "auditledger-bench-proxy-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	ns, dial, err := startEmbeddedNATS("auditledger-bench", filepath.Join(dir, "nats"), filepath.Join(dir, "nats-keys"), -1, *syncMode == "always", true)
	if err != nil {
		return err
	}
	defer ns.Shutdown()
	defer dial.close()
	_, ledgerJS, err := dial.connect(bus.Ledger)
	if err != nil {
		return err
	}
	if err := bus.EnsureStreams(ctx, ledgerJS, bus.StreamOptions{}); err != nil {
		return err
	}
	_, js, err := dial.connect(bus.Proxy)
	if err != nil {
		return err
	}
	ecfg := emitter.Config{JetStream: js}
	pskey, _, _ := ledger.GenerateKey(nil, "pgproxy-bench")
	psigner, _ := ledger.NewNoteSigner(pskey)
	switch *sign {
	case "each":
		ecfg.Sign = func(b []byte) string { return ledger.SignEvent(psigner, b) }
	case "attest":
		ecfg.Attester = ledger.NewProducerAttester(psigner)
	case "none":
	default:
		return fmt.Errorf("bench proxy: --producer-sig %q, want none, attest or each", *sign)
	}
	em, _ := emitter.New(ecfg)
	var pw [8]byte
	rand.Read(pw[:])
	secret := hex.EncodeToString(pw[:])
	var pol *pgproxy.Policy
	if *policyFile != "" {
		if pol, err = pgproxy.LoadPolicy(*policyFile); err != nil {
			return err
		}
	}
	p, err := pgproxy.New(pgproxy.Config{Policy: pol, Upstream: *upstream, Auth: identity.StaticUsers{"bench": secret}, Emitter: em,
		Tenant: "bench", Instance: "pgproxy-bench", Durability: pgproxy.Durability(*durability), Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	pctx, stop := context.WithCancel(ctx)
	defer stop()
	go p.Serve(pctx, ln)
	viaProxy := fmt.Sprintf("postgres://bench:%s@%s/%s?sslmode=disable", secret, ln.Addr(), db)

	fmt.Fprintf(stdout, "auditledger bench proxy: pgbench -T %v, scale %d, durability %s, JetStream fsync %s, producer signatures %s, policy %q, bus authentication on\n", *duration, *scale, *durability, *syncMode, *sign, *policyFile)
	fmt.Fprintf(stdout, "machine: %s, %s\n", cpuModel(), runtimeVersion())
	fmt.Fprintf(stdout, "  %-8s %-12s %22s %22s %6s\n", "clients", "script", "direct TPS (latency)", "proxy TPS (latency)", "ratio")
	for _, c := range clients {
		for _, script := range []struct{ name, flag string }{{"select-only", "-S"}, {"tpcb-like", "-b"}} {
			flags := []string{"-n", "-T", strconv.Itoa(int(duration.Seconds())), "-c", c, "-j", "2", script.flag}
			if script.flag == "-b" {
				flags = append(flags, "tpcb-like")
			}
			d, err := pgbench(ctx, append(flags, *upstream))
			if err != nil {
				return err
			}
			x, err := pgbench(ctx, append(flags, viaProxy))
			if err != nil {
				return err
			}
			fmt.Fprintf(stdout, "  %-8s %-12s %10.0f (%7s) %10.0f (%7s) %5.0f%%\n", c, script.name, d.tps, d.latency, x.tps, x.latency, 100*x.tps/d.tps)
		}
	}
	return nil
}

type pgbenchResult struct {
	tps     float64
	latency string
}

var (
	tpsRe = regexp.MustCompile(`tps = ([0-9.]+)`)
	latRe = regexp.MustCompile(`latency average = ([0-9.]+ ms)`)
)

func pgbench(ctx context.Context, args []string) (pgbenchResult, error) {
	out, err := exec.CommandContext(ctx, "pgbench", args...).CombinedOutput()
	t, l := tpsRe.FindSubmatch(out), latRe.FindSubmatch(out)
	if err != nil || t == nil || l == nil {
		return pgbenchResult{}, fmt.Errorf("pgbench %s: %v\n%s", strings.Join(args[:len(args)-1], " "), err, out)
	}
	tps, _ := strconv.ParseFloat(string(t[1]), 64)
	return pgbenchResult{tps: tps, latency: string(l[1])}, nil
}
