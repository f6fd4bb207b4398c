package bench

import (
	"bytes"
	"cmp"
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
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/spf13/cobra"

	"github.com/auditledger/auditledger/cmd/auditledger/internal/busdial"
	"github.com/auditledger/auditledger/cmd/auditledger/internal/cli"
	"github.com/auditledger/auditledger/events"
	"github.com/auditledger/auditledger/ledger"
	"github.com/auditledger/auditledger/ledger/bus"
	"github.com/auditledger/auditledger/ledger/bus/emitter"
	"github.com/auditledger/auditledger/ledger/file"
	"github.com/auditledger/auditledger/ledger/writer"
	"github.com/auditledger/auditledger/services/gateway"
	"github.com/auditledger/auditledger/services/identity"
	"github.com/auditledger/auditledger/services/pgproxy"
)

// Proxy is `auditledger bench proxy`: it runs pgbench directly and through the PostgreSQL proxy, side by side.
func Proxy(c *cobra.Command) cli.Run {
	fs := cli.Describe(c, "bench proxy --upstream URL [--clients 4,16] [--duration 10s] [--runs N] [--scale 10] [--sync always,interval] [--durability before-response,before-forward,local-journal] [--writer=false]",
		"Runs pgbench, select-only and TPC-B-like, at each client count against one\nPostgreSQL database along every path a team might choose, and prints TPS,\naverage latency and each path's share of the direct and pgbouncer figures:\n\n  direct      straight to PostgreSQL\n  pgbouncer   through Debian's pgbouncer in session pooling (the cost of a bare hop)\n  pgaudit     direct, with pgaudit.log = 'all' (needs pgaudit in the server's\n              shared_preload_libraries; skipped otherwise)\n  copy        through a bare Go TCP relay (io.Copy both ways, no protocol):\n              what any hop written in Go costs on these cores\n  copy-fsync  the same relay, each response held until a 1.1 KB record of it\n              is appended to a local file and fsynced, in groups (what queued\n              while the last fsync ran): the least any hop can cost that makes\n              a record durable before it releases a result\n  relay       through the auditledger proxy with every event built and encoded,\n              then discarded: what the relay costs without storing anything,\n              a floor for the proxy rows\n  relay-fsync the proxy with every event appended to a local file and fsynced\n              in groups before its statement's result is released: the proxy\n              made durable before the response with no bus and no ledger,\n              a floor for the fsync-always proxy rows\n  proxy       through the auditledger proxy, the ledger writer sealing what it\n              records, on an embedded NATS — once per JetStream fsync setting\n              and durability mode\n\ncopy, copy-fsync, relay and relay-fsync are yardsticks, never ways to run\nthe proxy. The first lines say what an fsync costs on the disk the bench\nwrites to; under the table, each row's machine CPU per transaction is set\nagainst what 80 % and 50 % of pgbouncer's TPS allow, and for the relay and\nproxy rows the mean time of each stage of a statement (client, judge, event,\nencode, forward, target, hold, respond; stored, split into queued and publish)\nis printed beside the CPU per statement.\n\nEverything runs on this machine's cores. pgbench (and pgbouncer for its\nrow) must be on PATH; the database is initialised with pgbench -i first.")
	upstream := fs.String("upstream", "", "postgres:// URL of a database to benchmark, as a superuser for the pgaudit row (it is overwritten by pgbench -i)")
	clientsArg := fs.String("clients", "4,16", "comma-separated client counts")
	duration := fs.Duration("duration", 10*time.Second, "length of each pgbench run")
	scale := fs.Int("scale", 10, "pgbench scale factor")
	syncArg := fs.String("sync", "interval,always", "JetStream fsync settings to run the proxy with: interval, always")
	durArg := fs.String("durability", "before-response,before-forward", "proxy durability modes to run: before-response, before-forward, local-journal (the proxy's own fsynced journal, drained to the bus)")
	pathsArg := fs.String("paths", "direct,pgbouncer,pgaudit,copy,copy-fsync,relay,relay-fsync,proxy", "paths to measure")
	policyFile := fs.String("policy", "", "run the proxy with this policy (docs/POLICY.md): the cost of parsing and classifying every statement")
	sign := fs.String("producer-sig", "none", "producer authenticity to measure: none, attest (one signature per batch) or each (every event signed)")
	cpuProfile := fs.String("cpuprofile", "", "write a CPU profile of the proxy, NATS and the writer (this process) to FILE: each pgbench run's own to FILE.<path>.<clients>.<script>, what follows it to that name with .after added, the start to FILE (go tool pprof FILE FILE.* reads them all)")
	runs := fs.Int("runs", 1, "pgbench runs per path, client count and script; with more than one, each row is the run of median TPS and shows the range")
	writerWait := fs.Duration("writer-max-wait", 250*time.Millisecond, "the ledger writer's longest wait to fill a segment (serve's ledger.max_wait): at a low rate, how often it seals")
	withWriter := fs.Bool("writer", true, "run the ledger writer in this process, sealing what the proxy records; false measures the proxy with the writer on another node (events are stored on the bus, not sealed here)")
	return func(ctx context.Context, args []string, _ io.Reader, stdout, stderr io.Writer) error {
		stopProfile, err := startCPUProfile(*cpuProfile)
		if err != nil {
			return err
		}
		defer func() { stopProfile() }()
		// cutProfile ends the profile being written and starts the next
		// into FILE.name, so that each pgbench run's samples (one script,
		// one client count, one path) can be read against what the run
		// reports: a profile of the whole process mixes them.
		cutProfile := func(name string) error {
			if *cpuProfile == "" {
				return nil
			}
			stopProfile()
			stopProfile, err = startCPUProfile(*cpuProfile + "." + name)
			return err
		}
		if err := cli.Required(fs, "upstream"); err != nil {
			return err
		}
		u, err := url.Parse(*upstream)
		if err != nil || u.Scheme != "postgres" && u.Scheme != "postgresql" {
			return fmt.Errorf("bench proxy: --upstream must be a postgres:// URL")
		}
		var clients []string
		for _, c := range strings.Split(*clientsArg, ",") {
			if n, err := strconv.Atoi(strings.TrimSpace(c)); err != nil || n < 1 {
				return fmt.Errorf("bench proxy: --clients: %q is not a positive number", c)
			}
			clients = append(clients, strings.TrimSpace(c))
		}
		syncs, err := fsyncSettings("bench proxy", *syncArg)
		if err != nil {
			return err
		}
		var durabilities []pgproxy.Durability
		for _, d := range strings.Split(*durArg, ",") {
			if d != string(pgproxy.BeforeForward) && d != string(pgproxy.BeforeResponse) && d != string(pgproxy.LocalJournal) {
				return fmt.Errorf("bench proxy: --durability %q, want before-response, before-forward or local-journal", d)
			}
			durabilities = append(durabilities, pgproxy.Durability(d))
		}
		paths := map[string]bool{}
		for _, p := range strings.Split(*pathsArg, ",") {
			if !slices.Contains([]string{"direct", "pgbouncer", "pgaudit", "copy", "copy-fsync", "relay", "relay-fsync", "proxy"}, p) {
				return fmt.Errorf("bench proxy: --paths: %q unknown (direct, pgbouncer, pgaudit, copy, copy-fsync, relay, relay-fsync, proxy)", p)
			}
			paths[p] = true
		}
		if *runs < 1 {
			return fmt.Errorf("bench proxy: --runs %d, want 1 or more", *runs)
		}
		if *sign != "none" && *sign != "attest" && *sign != "each" {
			return fmt.Errorf("bench proxy: --producer-sig %q, want none, attest or each", *sign)
		}
		var pol *pgproxy.Policy
		if *policyFile != "" {
			if pol, err = pgproxy.LoadPolicy(*policyFile); err != nil {
				return err
			}
		}
		if out, err := exec.CommandContext(ctx, "pgbench", "-i", "-q", "-s", strconv.Itoa(*scale), *upstream).CombinedOutput(); err != nil {
			return fmt.Errorf("bench proxy: pgbench -i: %v\n%s", err, out)
		}
		dir, err := os.MkdirTemp("", "auditledger-bench-proxy-")
		if err != nil {
			return err
		}
		defer os.RemoveAll(dir)

		var all []*benchPath
		if paths["direct"] {
			all = append(all, &benchPath{name: "direct", url: *upstream})
		}
		if paths["pgbouncer"] {
			p := &benchPath{name: "pgbouncer (session pooling)"}
			if p.url, err = startPgbouncer(ctx, dir, u); err != nil {
				p.skipped = err.Error()
			}
			p.cpu = func() time.Duration { return pgbouncerCPU(dir) }
			defer stopPgbouncer(dir)
			all = append(all, p)
		}
		if paths["pgaudit"] {
			p := &benchPath{name: "pgaudit (log = all)", url: *upstream}
			db := strings.TrimPrefix(u.Path, "/")
			if err := pgauditLoaded(ctx, *upstream); err != nil {
				p.skipped = err.Error()
			} else {
				p.before = func() error {
					return execSQL(ctx, *upstream, fmt.Sprintf(`ALTER DATABASE %s SET pgaudit.log = 'all'`, pgx.Identifier{db}.Sanitize()))
				}
				p.after = func() error {
					return execSQL(ctx, *upstream, fmt.Sprintf(`ALTER DATABASE %s RESET pgaudit.log`, pgx.Identifier{db}.Sanitize()))
				}
			}
			all = append(all, p)
		}
		if paths["copy"] {
			p := &benchPath{name: "Go TCP relay, bytes copied", kind: "copy", cpu: selfCPU}
			cctx, stopCopy := context.WithCancel(ctx)
			defer stopCopy()
			if p.url, err = startCopyRelay(cctx, u, nil); err != nil {
				return err
			}
			all = append(all, p)
		}
		if paths["copy-fsync"] {
			// Each response waits for an fsync covering a record of the
			// size the proxy writes per statement (two events): the least
			// any hop can cost that makes a record durable before it
			// releases a result, understanding nothing of what it relays.
			fr, err := newFsyncRecorder(filepath.Join(dir, "copy-fsync.log"))
			if err != nil {
				return err
			}
			defer fr.close()
			record := bytes.Repeat([]byte{'x'}, 1100)
			waits := &waitTimes{}
			p := &benchPath{name: "Go TCP relay + local fsync per group", kind: "copy-fsync", cpu: selfCPU, target: 0.5, stored: fr.stored, waits: waits}
			cctx, stopCopy := context.WithCancel(ctx)
			defer stopCopy()
			hold := func() error {
				defer waits.since(time.Now())
				return fr.store(record)
			}
			if p.url, err = startCopyRelay(cctx, u, hold); err != nil {
				return err
			}
			all = append(all, p)
		}
		if paths["relay"] {
			// Before-response forwards at once and releases the result when
			// the record is stored, which a discarding recorder reports at once.
			p := &benchPath{name: "relay only, events discarded", kind: "relay", cpu: selfCPU, stages: &gateway.Stages{}}
			url, stopRelay, err := startBenchProxy(ctx, discardRecorder{}, pol, *upstream, pgproxy.BeforeResponse, p.stages)
			if err != nil {
				return err
			}
			defer stopRelay()
			p.url = url
			all = append(all, p)
		}
		if paths["relay-fsync"] {
			fr, err := newFsyncRecorder(filepath.Join(dir, "fsync-floor.log"))
			if err != nil {
				return err
			}
			defer fr.close()
			waits := &timedRecorder{rec: fr}
			p := &benchPath{name: "relay + local fsync per group, no bus", kind: "relay-fsync", cpu: selfCPU, target: 0.5, stored: fr.stored, waits: &waits.waitTimes}
			url, stopFloor, err := startBenchProxy(ctx, waits, pol, *upstream, pgproxy.BeforeResponse, nil)
			if err != nil {
				return err
			}
			defer stopFloor()
			p.url = url
			all = append(all, p)
		}
		proxies := map[string][]*benchPath{} // by fsync setting
		if paths["proxy"] {
			for _, s := range syncs {
				for _, d := range durabilities {
					// The targets: 80% of pgbouncer's TPS with fsync interval,
					// 50% with fsync always.
					target := 0.8
					if s == "always" {
						target = 0.5
					}
					p := &benchPath{name: fmt.Sprintf("proxy, fsync %s, %s", s, d), proxy: true, cpu: selfCPU, target: target, stages: &gateway.Stages{}}
					proxies[s] = append(proxies[s], p)
					all = append(all, p)
				}
			}
		}

		where := fmt.Sprintf("running in this process, sealing at least every %v", *writerWait)
		if !*withWriter {
			where = "not running (on another node: events are stored on the bus, not sealed here)"
		}
		fmt.Fprintf(stdout, "auditledger bench proxy: pgbench -T %v, scale %d, producer signatures %s, policy %q, bus authentication on, ledger writer %s\n", *duration, *scale, *sign, *policyFile, where)
		fmt.Fprintf(stdout, "machine: %s, %s\n", cpuModel(), runtimeVersion())
		disk, err := diskFsync(dir, 1000, 4500)
		if err != nil {
			return fmt.Errorf("bench proxy: fsync probe in %s: %w", dir, err)
		}
		fmt.Fprintf(stdout, "disk under %s: %s\n", os.TempDir(), disk)
		results := map[string]map[*benchPath]pgbenchResult{} // by clients/script
		key := func(c, script string) string { return c + "/" + script }
		// measure runs pgbench once on p and reads what the run cost.
		measure := func(p *benchPath, c, script string, i int) (pgbenchResult, error) {
			if p.before != nil {
				if err := p.before(); err != nil {
					return pgbenchResult{}, err
				}
			}
			name := fmt.Sprintf("%s.%s.%s", profileName(p.name), c, script)
			if *runs > 1 {
				name += fmt.Sprintf(".%d", i+1)
			}
			if err := cutProfile(name); err != nil {
				return pgbenchResult{}, err
			}
			var cpu0 time.Duration
			if p.cpu != nil {
				cpu0 = p.cpu()
			}
			var ev0, msg0 uint64
			if p.stored != nil {
				ev0, msg0 = p.stored()
			}
			if p.waits != nil {
				p.waits.take()
			}
			p.stages.Take()
			var q0, pub0, n0 uint64
			if p.bus != nil {
				q0, pub0, n0 = p.bus()
			}
			busy0, idle0 := machineCPU()
			r, err := pgbench(ctx, []string{"-n", "-T", strconv.Itoa(int(duration.Seconds())), "-c", c, "-j", "2", "-b", script, p.url})
			busy1, idle1 := machineCPU()
			r.machine, r.idle = busy1-busy0, idle1-idle0
			if p.cpu != nil && err == nil {
				r.cpu = p.cpu() - cpu0
			}
			if p.stored != nil {
				ev1, msg1 := p.stored()
				r.events, r.messages = ev1-ev0, msg1-msg0
			}
			if p.waits != nil {
				r.waits = p.waits.take()
			}
			r.stages = p.stages.Take()
			if p.bus != nil {
				q1, pub1, n1 := p.bus()
				r.queued, r.publishing, r.timed = time.Duration(q1-q0), time.Duration(pub1-pub0), n1-n0
			}
			if perr := cutProfile(name + ".after"); perr != nil && err == nil {
				err = perr
			}
			if p.after != nil {
				if aerr := p.after(); aerr != nil && err == nil {
					err = aerr
				}
			}
			return r, err
		}
		// run measures p --runs times per client count and script and keeps
		// the run of median TPS, with the lowest and highest TPS seen.
		run := func(p *benchPath) error {
			if p.skipped != "" {
				return nil
			}
			for _, c := range clients {
				for _, script := range []string{"select-only", "tpcb-like"} {
					var rs []pgbenchResult
					for i := range *runs {
						r, err := measure(p, c, script, i)
						if err != nil {
							return fmt.Errorf("bench proxy: %s: %w", p.name, err)
						}
						rs = append(rs, r)
					}
					slices.SortFunc(rs, func(a, b pgbenchResult) int { return cmp.Compare(a.tps, b.tps) })
					r := rs[len(rs)/2]
					r.lo, r.hi = rs[0].tps, rs[len(rs)-1].tps
					if results[key(c, script)] == nil {
						results[key(c, script)] = map[*benchPath]pgbenchResult{}
					}
					results[key(c, script)][p] = r
				}
			}
			return nil
		}
		for _, p := range all {
			if p.proxy {
				continue
			}
			if err := run(p); err != nil {
				return err
			}
		}
		for _, s := range syncs {
			if len(proxies[s]) == 0 {
				continue
			}
			// The bus's modes share one ledger; the local journal has
			// its own, its emitter writing through the journal.
			for _, journal := range []bool{false, true} {
				if !slices.ContainsFunc(durabilities, func(d pgproxy.Durability) bool { return (d == pgproxy.LocalJournal) == journal }) {
					continue
				}
				err := benchLedger(ctx, filepath.Join(dir, fmt.Sprintf("fsync-%s-journal-%v", s, journal)), s == "always", *withWriter, *writerWait, *sign, journal, func(em *emitter.Emitter) error {
					for i, d := range durabilities {
						if (d == pgproxy.LocalJournal) != journal {
							continue
						}
						proxies[s][i].stored = func() (uint64, uint64) {
							st := &em.Stats
							grouped, singles := st.GroupedEvents.Load(), st.Singles.Load()
							return grouped + singles, st.Groups.Load() + singles
						}
						proxies[s][i].bus = func() (uint64, uint64, uint64) {
							return em.Stats.Queued.Load(), em.Stats.Publishing.Load(), em.Stats.Timed.Load()
						}
						waits := &timedRecorder{rec: em}
						proxies[s][i].waits = &waits.waitTimes
						url, stopProxy, err := startBenchProxy(ctx, waits, pol, *upstream, d, proxies[s][i].stages)
						if err != nil {
							return err
						}
						proxies[s][i].url = url
						err = run(proxies[s][i])
						stopProxy()
						if err != nil {
							return err
						}
					}
					return nil
				})
				if err != nil {
					return err
				}
			}
		}

		spreadHeader := ""
		if *runs > 1 {
			spreadHeader = fmt.Sprintf("  TPS of %d runs", *runs)
		}
		fmt.Fprintf(stdout, "  %-7s %-11s %-40s %9s %11s %9s %12s %12s %14s %5s %10s %19s%s\n", "clients", "script", "path", "TPS", "latency", "of direct", "of pgbouncer", "hop CPU/tx", "machine CPU/tx", "idle", "events/msg", "record stored p50/p99", spreadHeader)
		for _, c := range clients {
			for _, script := range []string{"select-only", "tpcb-like"} {
				rs := results[key(c, script)]
				var direct, bouncer float64
				for p, r := range rs {
					switch {
					case p.name == "direct":
						direct = r.tps
					case strings.HasPrefix(p.name, "pgbouncer"):
						bouncer = r.tps
					}
				}
				for _, p := range all {
					if p.skipped != "" {
						fmt.Fprintf(stdout, "  %-7s %-11s %-40s skipped: %s\n", c, script, p.name, p.skipped)
						continue
					}
					r := rs[p]
					share := func(base float64) string {
						if base == 0 {
							return "-"
						}
						return fmt.Sprintf("%.0f%%", 100*r.tps/base)
					}
					txs := r.tps * duration.Seconds()
					perTx, machine, idle, group, waited := "-", "-", "-", "-", "-"
					if r.cpu > 0 {
						perTx = fmt.Sprintf("%.0f µs", float64(r.cpu.Microseconds())/txs)
					}
					if r.machine > 0 {
						machine = fmt.Sprintf("%.0f µs", float64(r.machine.Microseconds())/txs)
						idle = fmt.Sprintf("%.0f%%", 100*float64(r.idle)/float64(r.machine+r.idle))
					}
					if r.messages > 0 {
						group = fmt.Sprintf("%.1f", float64(r.events)/float64(r.messages))
					}
					if n := len(r.waits); n > 0 {
						ms := func(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
						waited = fmt.Sprintf("%.2f/%.2f ms", ms(r.waits[n/2]), ms(r.waits[n*99/100]))
					}
					spread := ""
					if *runs > 1 {
						spread = fmt.Sprintf("  %.0f–%.0f", r.lo, r.hi)
					}
					fmt.Fprintf(stdout, "  %-7s %-11s %-40s %9.0f %11s %9s %12s %12s %14s %5s %10s %19s%s\n", c, script, p.name, r.tps, r.latency, share(direct), share(bouncer), perTx, machine, idle, group, waited, spread)
				}
			}
		}
		printBudget(stdout, clients, *duration, all, func(c, script string, p *benchPath) (pgbenchResult, bool) {
			r, ok := results[key(c, script)][p]
			return r, ok
		})
		printStages(stdout, clients, all, func(c, script string, p *benchPath) (pgbenchResult, bool) {
			r, ok := results[key(c, script)][p]
			return r, ok
		})
		return nil
	}
}

// printBudget says, for each proxy and yardstick row, what share of
// pgbouncer's TPS the cores could give it at most: with every core busy,
// TPS is the cores' time over the machine's CPU per transaction, so
// reaching a share s of pgbouncer's TPS needs the whole machine
// (pgbench, PostgreSQL, the hop, NATS and the writer) at no more than
// pgbouncer's machine CPU/tx ÷ s. It also splits each row's cost over the
// row beneath it: the fsync yardsticks over their relays (what making a
// record durable before the response costs, per record), each proxy row
// over the relay (the audit path: storing, fsyncs, the writer, and the
// slower round trip PostgreSQL and pgbench see, per event), and the
// fsync-always proxy rows over relay-fsync (what the bus and the writer
// add to a record fsynced before the response).
func printBudget(w io.Writer, clients []string, d time.Duration, all []*benchPath, result func(c, script string, p *benchPath) (pgbenchResult, bool)) {
	perTx := func(r pgbenchResult) float64 { return float64(r.machine.Microseconds()) / (r.tps * d.Seconds()) }
	header := false
	for _, c := range clients {
		for _, script := range []string{"select-only", "tpcb-like"} {
			var bouncer pgbenchResult
			kinds := map[string]pgbenchResult{}
			for _, p := range all {
				r, ok := result(c, script, p)
				switch {
				case !ok:
				case strings.HasPrefix(p.name, "pgbouncer"):
					bouncer = r
				case p.kind != "":
					kinds[p.kind] = r
				}
			}
			if bouncer.machine == 0 || bouncer.tps == 0 {
				continue
			}
			for _, p := range all {
				r, ok := result(c, script, p)
				if !ok || !p.proxy && p.kind == "" || r.machine == 0 {
					continue
				}
				if !header {
					fmt.Fprintf(w, "\nCPU budget (every core busy: TPS = cores' time / machine CPU per transaction):\n")
					header = true
				}
				fmt.Fprintf(w, "  %-3s %-11s %-40s machine %4.0f µs/tx; 80%% of pgbouncer needs ≤ %4.0f, 50%% ≤ %4.0f; the cores allow at most %3.0f%% at this cost\n",
					c, script, p.name, perTx(r), perTx(bouncer)/0.8, perTx(bouncer)/0.5, 100*perTx(bouncer)/perTx(r))
				if r.events == 0 {
					continue
				}
				perRecord := float64(r.events) / (r.tps * d.Seconds())
				// over prints what r costs above base; with room, also what
				// r's target leaves above base.
				over := func(what string, base pgbenchResult, unit string, room bool) {
					if base.machine == 0 {
						return
					}
					cost := perTx(r) - perTx(base)
					line := fmt.Sprintf("%s %4.0f µs/tx = %4.1f µs per %s (%.1f per tx)", what, cost, cost/perRecord, unit, perRecord)
					if room && p.target > 0 {
						left := perTx(bouncer)/p.target - perTx(base)
						if left <= 0 {
							line += fmt.Sprintf("; for %.0f%% nothing is left: the row beneath costs more", 100*p.target)
						} else {
							line += fmt.Sprintf("; for %.0f%% it may cost %4.0f µs/tx = %4.1f µs per %s", 100*p.target, left, left/perRecord, unit)
						}
					}
					fmt.Fprintf(w, "  %-3s %-11s %-40s %s\n", "", "", "", line)
				}
				switch {
				case p.kind == "copy-fsync":
					over("durable record over copy", kinds["copy"], "record", true)
				case p.kind == "relay-fsync" || p.proxy:
					over("audit path over the relay", kinds["relay"], "event", true)
					// The same in this process's CPU alone (the proxy, NATS and
					// the writer), which other work on a shared machine does not
					// enter, as it enters the machine's.
					if relay := kinds["relay"]; p.proxy && r.cpu > 0 && relay.cpu > 0 && relay.tps > 0 {
						hopTx := func(r pgbenchResult) float64 { return float64(r.cpu.Microseconds()) / (r.tps * d.Seconds()) }
						cost := hopTx(r) - hopTx(relay)
						fmt.Fprintf(w, "  %-3s %-11s %-40s %s\n", "", "", "", fmt.Sprintf("of which in this process (hop CPU over the relay's) %4.0f µs/tx = %4.1f µs per event", cost, cost/perRecord))
					}
				}
				if p.proxy && p.target == 0.5 {
					over("bus and writer over relay-fsync", kinds["relay-fsync"], "event", false)
				}
			}
		}
	}
}

// withBenchLedger runs an embedded NATS (fsync always or interval), with
// writer the ledger writer on a local store, and an emitter with the
// proxy's bus role, for the length of fn.
func withBenchLedger(ctx context.Context, dir string, syncAlways, withWriter bool, maxWait time.Duration, sign string, fn func(*emitter.Emitter) error) error {
	return benchLedger(ctx, dir, syncAlways, withWriter, maxWait, sign, false, fn)
}

// benchBus starts an embedded NATS in dir (its keys in dir/nats-keys)
// with the streams set up, and connects as the ledger writer.
func benchBus(ctx context.Context, dir string, syncAlways bool) (_ *busdial.Dialer, ledgerJS jetstream.JetStream, stop func(), err error) {
	ns, dial, err := busdial.StartEmbedded("auditledger-bench", filepath.Join(dir, "nats"), filepath.Join(dir, "nats-keys"), -1, syncAlways, true)
	if err != nil {
		return nil, nil, nil, err
	}
	stop = func() { dial.Close(); ns.Shutdown() }
	if _, ledgerJS, err = dial.Connect(bus.Ledger); err == nil {
		err = bus.EnsureStreams(ctx, ledgerJS, bus.StreamOptions{})
	}
	if err != nil {
		stop()
		return nil, nil, nil, err
	}
	return dial, ledgerJS, stop, nil
}

// benchLedger is withBenchLedger; with journal, the emitter's spool in
// dir is the local journal every event goes through (durability
// local-journal).
func benchLedger(ctx context.Context, dir string, syncAlways, withWriter bool, maxWait time.Duration, sign string, journal bool, fn func(*emitter.Emitter) error) error {
	dial, ledgerJS, stop, err := benchBus(ctx, dir, syncAlways)
	if err != nil {
		return err
	}
	defer stop()
	store, err := file.New(filepath.Join(dir, "store"))
	if err != nil {
		return err
	}
	skey, _, _ := ledger.GenerateKey(nil, "bench.auditledger.local/log")
	signer, _ := ledger.NewNoteSigner(skey)
	if withWriter {
		wctx, stopWriter := context.WithCancel(ctx)
		written := make(chan error, 1)
		go func() {
			written <- writer.Run(wctx, writer.Config{JetStream: ledgerJS, Store: store, Signer: signer, MaxWait: maxWait,
				IndexDir: filepath.Join(dir, "index"), Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
		}()
		defer func() { stopWriter(); <-written }()
	}

	_, js, err := dial.Connect(bus.Proxy)
	if err != nil {
		return err
	}
	ecfg := emitter.Config{JetStream: js}
	if journal {
		ecfg.SpoolDir, ecfg.Journal = filepath.Join(dir, "journal"), true
	}
	pskey, _, _ := ledger.GenerateKey(nil, "pgproxy-bench")
	psigner, _ := ledger.NewNoteSigner(pskey)
	switch sign {
	case "each":
		ecfg.Sign = func(b []byte) string { return ledger.SignEvent(psigner, b) }
	case "attest":
		ecfg.Attester = ledger.NewProducerAttester(psigner)
	}
	em, err := emitter.New(ecfg)
	if err != nil {
		return err
	}
	defer em.Close()
	return fn(em)
}

// startBenchProxy serves the PostgreSQL proxy on a loopback port and
// returns the URL pgbench connects with.
func startBenchProxy(ctx context.Context, em pgproxy.Recorder, pol *pgproxy.Policy, upstream string, d pgproxy.Durability, stages *gateway.Stages) (string, func(), error) {
	var pw [8]byte
	rand.Read(pw[:])
	secret := hex.EncodeToString(pw[:])
	p, err := pgproxy.New(pgproxy.Config{Policy: pol, Upstream: upstream, Auth: identity.StaticUsers{"bench": secret}, Emitter: em,
		Tenant: "bench", Instance: "pgproxy-bench", Durability: d, Stages: stages, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		return "", nil, err
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", nil, err
	}
	pctx, stop := context.WithCancel(ctx)
	go p.Serve(pctx, ln)
	u, _ := url.Parse(upstream)
	return fmt.Sprintf("postgres://bench:%s@%s/%s?sslmode=disable", secret, ln.Addr(), strings.TrimPrefix(u.Path, "/")), stop, nil
}

// startCopyRelay serves a relay that copies bytes both ways between each
// client and a connection of its own to upstream, understanding nothing:
// the least any hop written in Go can cost. With hold, every read from
// upstream waits for hold before it is passed on (copy-fsync: a record
// fsynced first). It stops with ctx.
func startCopyRelay(ctx context.Context, upstream *url.URL, hold func() error) (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	context.AfterFunc(ctx, func() { ln.Close() })
	target := upstream.Host
	if upstream.Port() == "" {
		target = net.JoinHostPort(upstream.Hostname(), "5432")
	}
	go serveEach(ln, func(c net.Conn) {
		up, err := net.Dial("tcp", target)
		if err != nil {
			return
		}
		defer up.Close()
		go func() {
			io.Copy(up, c)
			up.Close()
		}()
		if hold == nil {
			io.Copy(c, up)
			return
		}
		buf := make([]byte, 32<<10)
		for {
			n, err := up.Read(buf)
			if n > 0 {
				if hold() != nil {
					return
				}
				if _, werr := c.Write(buf[:n]); werr != nil {
					return
				}
			}
			if err != nil {
				return
			}
		}
	})
	v := *upstream
	v.Host = ln.Addr().String()
	return v.String(), nil
}

// serveEach runs handle on each connection ln accepts, each in its own
// goroutine, and closes the connection after; it returns when ln closes.
func serveEach(ln net.Listener, handle func(net.Conn)) {
	for {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		go func() {
			defer c.Close()
			handle(c)
		}()
	}
}

// discardRecorder encodes each event as the emitter would, then drops it
// and reports it stored: the relay path of bench proxy, which measures
// what the proxy costs before anything is stored.
type discardRecorder struct{}

func (discardRecorder) Emit(_ context.Context, ev *events.Event) (emitter.Result, error) {
	if _, err := ev.Marshal(); err != nil {
		return emitter.Result{}, err
	}
	return emitter.Result{ID: ev.ID}, nil
}

func (d discardRecorder) EmitAsync(ctx context.Context, ev *events.Event, done func(emitter.Result)) error {
	r, err := d.Emit(ctx, ev)
	if err != nil {
		return err
	}
	done(r)
	return nil
}

// waitTimes collects how long records waited to be stored.
type waitTimes struct {
	mu    sync.Mutex
	waits []time.Duration
}

// since notes one wait, from start until now.
func (w *waitTimes) since(start time.Time) {
	d := time.Since(start)
	w.mu.Lock()
	w.waits = append(w.waits, d)
	w.mu.Unlock()
}

// take returns the waits noted since the last take, sorted.
func (w *waitTimes) take() []time.Duration {
	w.mu.Lock()
	got := w.waits
	w.waits = nil
	w.mu.Unlock()
	slices.Sort(got)
	return got
}

// timedRecorder stores through rec and times each statement's record
// (command.executed) from emitting to stored.
type timedRecorder struct {
	rec pgproxy.Recorder
	waitTimes
}

func (t *timedRecorder) note(ev *events.Event, start time.Time) {
	if ev.Type == events.CommandExecuted {
		t.since(start)
	}
}

func (t *timedRecorder) Emit(ctx context.Context, ev *events.Event) (emitter.Result, error) {
	start := time.Now()
	r, err := t.rec.Emit(ctx, ev)
	t.note(ev, start)
	return r, err
}

// EmitLater holds ev for the next group, as the emitter does for what
// nothing waits on.
func (t *timedRecorder) EmitLater(ctx context.Context, ev *events.Event, done func(emitter.Result)) error {
	l, ok := t.rec.(interface {
		EmitLater(context.Context, *events.Event, func(emitter.Result)) error
	})
	if !ok {
		return t.EmitAsync(ctx, ev, done)
	}
	start := time.Now()
	return l.EmitLater(ctx, ev, func(r emitter.Result) {
		t.note(ev, start)
		done(r)
	})
}

func (t *timedRecorder) EmitAsync(ctx context.Context, ev *events.Event, done func(emitter.Result)) error {
	start := time.Now()
	return t.rec.EmitAsync(ctx, ev, func(r emitter.Result) {
		t.note(ev, start)
		done(r)
	})
}

// startPgbouncer runs pgbouncer in session pooling in front of upstream
// and returns the URL clients use. pgbouncer refuses to run as root: as
// root it is started with -u postgres.
func startPgbouncer(ctx context.Context, dir string, upstream *url.URL) (string, error) {
	bin, err := exec.LookPath("pgbouncer")
	if err != nil {
		return "", fmt.Errorf("pgbouncer not on PATH (Debian: apt-get install pgbouncer)")
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	user := upstream.User.Username()
	pass, _ := upstream.User.Password()
	host, pgPort := upstream.Hostname(), upstream.Port()
	if pgPort == "" {
		pgPort = "5432"
	}
	db := strings.TrimPrefix(upstream.Path, "/")
	conn := fmt.Sprintf("host=%s port=%s dbname=%s user=%s", host, pgPort, db, user)
	if pass != "" {
		conn += " password=" + pass
	}
	bdir := filepath.Join(dir, "pgbouncer")
	if err := os.MkdirAll(bdir, 0o755); err != nil {
		return "", err
	}
	os.Chmod(dir, 0o755)
	ini := fmt.Sprintf(`[databases]
%s = %s
[pgbouncer]
listen_addr = 127.0.0.1
listen_port = %d
unix_socket_dir =
auth_type = trust
auth_file = %s
pool_mode = session
max_client_conn = 500
default_pool_size = 64
pidfile = %s
logfile = %s
`, db, conn, port, filepath.Join(bdir, "users.txt"), filepath.Join(bdir, "pgbouncer.pid"), filepath.Join(bdir, "pgbouncer.log"))
	if err := os.WriteFile(filepath.Join(bdir, "users.txt"), []byte(fmt.Sprintf("%q \"\"\n", user)), 0o644); err != nil {
		return "", err
	}
	if err := os.WriteFile(filepath.Join(bdir, "pgbouncer.ini"), []byte(ini), 0o644); err != nil {
		return "", err
	}
	args := []string{"-d", filepath.Join(bdir, "pgbouncer.ini")}
	if os.Geteuid() == 0 {
		args = append([]string{"-u", "postgres"}, args...)
		exec.Command("chown", "-R", "postgres", bdir).Run()
	}
	if out, err := exec.CommandContext(ctx, bin, args...).CombinedOutput(); err != nil {
		return "", fmt.Errorf("pgbouncer did not start: %v %s", err, out)
	}
	bouncer := fmt.Sprintf("postgres://%s@127.0.0.1:%d/%s?sslmode=disable", url.PathEscape(user), port, db)
	for range 50 {
		if err := execSQL(ctx, bouncer, "SELECT 1"); err == nil {
			return bouncer, nil
		}
		time.Sleep(100 * time.Millisecond)
	}
	log, _ := os.ReadFile(filepath.Join(bdir, "pgbouncer.log"))
	return "", fmt.Errorf("pgbouncer does not answer on port %d: %s", port, log)
}

func stopPgbouncer(dir string) {
	pid, err := os.ReadFile(filepath.Join(dir, "pgbouncer", "pgbouncer.pid"))
	if err != nil {
		return
	}
	if n, err := strconv.Atoi(strings.TrimSpace(string(pid))); err == nil {
		if p, err := os.FindProcess(n); err == nil {
			p.Signal(os.Interrupt)
		}
	}
}

// pgauditLoaded reports why the pgaudit row cannot run, if it cannot.
func pgauditLoaded(ctx context.Context, dsn string) error {
	c, err := pgx.Connect(ctx, dsn)
	if err != nil {
		return err
	}
	defer c.Close(ctx)
	var libs string
	if err := c.QueryRow(ctx, "SHOW shared_preload_libraries").Scan(&libs); err != nil {
		return err
	}
	if !strings.Contains(libs, "pgaudit") {
		return fmt.Errorf("pgaudit is not in the server's shared_preload_libraries (Debian: postgresql-NN-pgaudit, then shared_preload_libraries = 'pgaudit' and a restart)")
	}
	return nil
}

func execSQL(ctx context.Context, dsn, sql string) error {
	c, err := pgx.Connect(ctx, dsn)
	if err != nil {
		return err
	}
	defer c.Close(ctx)
	_, err = c.Exec(ctx, sql)
	return err
}

// benchPath is one path of bench proxy: a URL pgbench connects to, or
// the reason it is skipped.
type benchPath struct {
	name, url, skipped string
	proxy              bool // run per fsync setting, below
	// kind names a yardstick row: copy, copy-fsync, relay (the proxy
	// storing nothing: the floor of the proxy rows) or relay-fsync (the
	// proxy fsyncing a local file: the floor of the fsync-always rows).
	kind          string
	target        float64      // share of pgbouncer's TPS a proxy row aims at
	before, after func() error // around each run (pgaudit on, off)
	// cpu, if set, reads the CPU time the hop has used so far: the
	// CPU it spends per transaction is what it costs.
	cpu func() time.Duration
	// stored, if set, reads how many events the hop has recorded
	// and in how many bus messages (one fsync each under
	// sync always).
	stored func() (events, messages uint64)
	// waits, if set, times each statement's record from emitting to
	// stored: what a statement waits for before its result (or, before
	// forward, the statement itself) may go on.
	waits *waitTimes
	// stages, if set, times each statement's stages in the proxy.
	stages *gateway.Stages
	// bus, if set, reads the emitter's running totals of how long events
	// waited on waited for their group and how long groups took to be
	// stored, and over how many events.
	bus func() (queued, publishing, events uint64)
}

type pgbenchResult struct {
	tps     float64
	lo, hi  float64 // lowest and highest TPS of the runs (--runs)
	latency string
	waits   []time.Duration // command.executed records, emit → stored, sorted
	cpu     time.Duration   // CPU the hop used during the run, if measured
	// machine and idle are the CPU time all processes used, and the
	// time the cores stood idle, during the run: when idle is near
	// zero, TPS is the cores' time divided by machine CPU per
	// transaction, and a hop costs TPS in proportion to its CPU.
	machine, idle time.Duration
	// events recorded during the run, in messages stored on the bus.
	events, messages uint64
	stages           []gateway.StageTotal // where statements' time went
	// queued and publishing: the emitter's totals over the run's timed
	// events, those waited on (waiting for their group; the group being
	// stored).
	queued, publishing time.Duration
	timed              uint64
}

// machineCPU reads the busy and idle time of all cores so far, from
// /proc/stat (Linux; zero elsewhere). Ticks are 1/100 s.
func machineCPU() (busy, idle time.Duration) {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0, 0
	}
	line, _, _ := strings.Cut(string(b), "\n")
	f := strings.Fields(line)
	if len(f) < 8 || f[0] != "cpu" {
		return 0, 0
	}
	// user nice system idle iowait irq softirq steal ...
	for i, v := range f[1:] {
		n, _ := strconv.ParseInt(v, 10, 64)
		switch {
		case i == 3 || i == 4:
			idle += time.Duration(n) * 10 * time.Millisecond
		case i < 8:
			busy += time.Duration(n) * 10 * time.Millisecond
		}
	}
	return busy, idle
}

// selfCPU is the CPU time this process (proxy, NATS and writer) has used.
func selfCPU() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// pgbouncerCPU is the CPU time the pgbouncer of dir has used (Linux).
func pgbouncerCPU(dir string) time.Duration {
	pid, err := os.ReadFile(filepath.Join(dir, "pgbouncer", "pgbouncer.pid"))
	if err != nil {
		return 0
	}
	stat, err := os.ReadFile("/proc/" + strings.TrimSpace(string(pid)) + "/stat")
	if err != nil {
		return 0
	}
	// Fields after the command name (which ends with ')'): utime and
	// stime are the 12th and 13th, in clock ticks of 1/100 s.
	f := strings.Fields(string(stat[strings.LastIndexByte(string(stat), ')')+1:]))
	if len(f) < 13 {
		return 0
	}
	ut, _ := strconv.ParseInt(f[11], 10, 64)
	st, _ := strconv.ParseInt(f[12], 10, 64)
	return time.Duration(ut+st) * 10 * time.Millisecond
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

// printStages prints, for each row whose statements were timed (the
// relay and proxy rows), where one statement's time went: the mean of
// each stage per statement (services/gateway.Stage), in the order a
// statement passes them, with the emitter's split of the wait for the
// bus (queued behind the group in flight, then the group's publish and
// acknowledgement) and the hop's CPU per statement beside them.
func printStages(w io.Writer, clients []string, all []*benchPath, result func(c, script string, p *benchPath) (pgbenchResult, bool)) {
	header := false
	for _, c := range clients {
		for _, script := range []string{"select-only", "tpcb-like"} {
			for _, p := range all {
				r, ok := result(c, script, p)
				if !ok || len(r.stages) == 0 {
					continue
				}
				stmts := r.stages[gateway.StageEncode].Count
				if stmts == 0 {
					continue
				}
				if !header {
					fmt.Fprintf(w, "\nWhere a statement's time goes (mean µs per statement; stored overlaps forward, target and hold before the response):\n")
					fmt.Fprintf(w, "  %-3s %-11s %-40s", "", "", "")
					for _, st := range r.stages {
						fmt.Fprintf(w, " %8s", st.Stage)
					}
					fmt.Fprintf(w, " %8s %8s %8s %10s\n", "queued", "publish", "events", "hop CPU")
					header = true
				}
				fmt.Fprintf(w, "  %-3s %-11s %-40s", c, script, p.name)
				per := func(x time.Duration) float64 { return float64(x.Nanoseconds()) / 1000 / float64(stmts) }
				for _, st := range r.stages {
					fmt.Fprintf(w, " %8.1f", per(st.Total))
				}
				queued, publish, evs := "-", "-", "-"
				if r.timed > 0 {
					perEv := func(x time.Duration) float64 { return float64(x.Nanoseconds()) / 1000 / float64(r.timed) }
					queued, publish = fmt.Sprintf("%.1f", perEv(r.queued)), fmt.Sprintf("%.1f", perEv(r.publishing))
				}
				if r.events > 0 {
					evs = fmt.Sprintf("%.2f", float64(r.events)/float64(stmts))
				}
				cpu := "-"
				if r.cpu > 0 {
					cpu = fmt.Sprintf("%.1f", float64(r.cpu.Nanoseconds())/1000/float64(stmts))
				}
				fmt.Fprintf(w, " %8s %8s %8s %10s\n", queued, publish, evs, cpu)
			}
		}
	}
	if header {
		fmt.Fprintf(w, "  (queued and publish: the mean over the events waited on, the commands; events: stored per statement; hop CPU: the proxy process's per statement, NATS and the writer included)\n")
	}
}

// profileName is a path's name as part of a file name: "proxy, fsync
// interval, before-response" becomes "proxy-fsync-interval-before-response".
func profileName(path string) string {
	return strings.Trim(regexp.MustCompile(`[^A-Za-z0-9]+`).ReplaceAllString(path, "-"), "-")
}
