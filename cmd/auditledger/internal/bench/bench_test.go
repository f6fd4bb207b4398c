package bench

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/spf13/cobra"

	"github.com/auditledger/auditledger/cmd/auditledger/internal/cli"
	"github.com/auditledger/auditledger/events"
	"github.com/auditledger/auditledger/events/eventstest"
	"github.com/auditledger/auditledger/ledger/bus/emitter"
	"github.com/auditledger/auditledger/test/pgtest"
)

// TestBenchProxyRuns runs the proxy benchmark briefly against a real
// PostgreSQL: it must complete and print a row per client count and
// script. It asserts nothing about speed.
func TestBenchProxyRuns(t *testing.T) {
	pg := pgtest.StartT(t)
	var out bytes.Buffer
	err := run(context.Background(), []string{"bench", "proxy", "--upstream", pg.DSN(pg.NewDatabase(t)), "--clients", "2", "--duration", "1s", "--scale", "1"}, nil, &out, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"select-only", "tpcb-like", "%", "Go TCP relay, bytes copied", "relay only, events discarded", "relay + local fsync per group, no bus", "audit path", "hop CPU over the relay's", "record stored p50/p99",
		"bus and writer over relay-fsync", "Go TCP relay + local fsync per group", "durable record over copy"} {
		if !strings.Contains(out.String(), want) {
			t.Fatalf("output lacks %q:\n%s", want, out.String())
		}
	}
	// Every proxy row, and the local-fsync floor, times its statements'
	// records.
	stored := regexp.MustCompile(`\d+\.\d\d/\d+\.\d\d ms`)
	for _, line := range strings.Split(out.String(), "\n") {
		if (strings.Contains(line, "proxy, fsync") || strings.Contains(line, "local fsync per group")) && strings.Contains(line, "%") && !strings.Contains(line, "machine") && !stored.MatchString(line) {
			t.Fatalf("proxy row without record stored latency: %q\n%s", line, out.String())
		}
	}
	t.Log(out.String())

	// With the writer elsewhere, the proxy rows still store every record,
	// the local journal's too. Two runs per row, each profiled on its own;
	// 3 s each, as a TPC-B-like transaction through the proxy took more
	// than 1 s on a machine busy with other builds (pgbench then counts
	// none, and the bench has no figure to print).
	out.Reset()
	prof := filepath.Join(t.TempDir(), "cpu")
	err = run(context.Background(), []string{"bench", "proxy", "--upstream", pg.DSN(pg.NewDatabase(t)), "--clients", "2", "--duration", "3s", "--scale", "1",
		"--paths", "proxy", "--sync", "interval", "--durability", "before-response,local-journal", "--writer=false", "--runs", "2", "--cpuprofile", prof}, nil, &out, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	// --cpuprofile: the start in FILE, each run and what follows it in
	// files of their own, every one a profile (gzip-compressed).
	wantProfiles := []string{prof}
	for _, d := range []string{"before-response", "local-journal"} {
		for _, script := range []string{"select-only", "tpcb-like"} {
			for _, n := range []string{"1", "2"} {
				name := fmt.Sprintf("%s.proxy-fsync-interval-%s.2.%s.%s", prof, d, script, n)
				wantProfiles = append(wantProfiles, name, name+".after")
			}
		}
	}
	for _, f := range wantProfiles {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatalf("--cpuprofile: %v", err)
		}
		if len(b) < 2 || b[0] != 0x1f || b[1] != 0x8b {
			t.Fatalf("--cpuprofile: %s is not a gzip-compressed profile (%d bytes)", f, len(b))
		}
	}
	if got, _ := filepath.Glob(prof + "*"); len(got) != len(wantProfiles) {
		t.Fatalf("--cpuprofile wrote %d files, want %d: %v", len(got), len(wantProfiles), got)
	}
	// --runs 2: each row is one of two runs, with their range.
	if !strings.Contains(out.String(), "ledger writer not running") || !stored.MatchString(out.String()) ||
		!strings.Contains(out.String(), "TPS of 2 runs") || !regexp.MustCompile(`ms  \d+–\d+\n`).MatchString(out.String()) {
		t.Fatalf("--writer=false:\n%s", out.String())
	}
	if !strings.Contains(out.String(), "proxy, fsync interval, local-journal") {
		t.Fatalf("no local-journal row:\n%s", out.String())
	}
}

// TestBenchLedgerRuns runs the ledger benchmark on a small log.
func TestBenchLedgerRuns(t *testing.T) {
	var out bytes.Buffer
	if err := run(context.Background(), []string{"bench", "ledger", "--n", "3000", "--segment-size", "1000", "--proofs", "100"}, nil, &out, io.Discard); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.String(), "verify (full store, signatures)") || !strings.Contains(out.String(), "p99") {
		t.Fatalf("output:\n%s", out.String())
	}
}

// TestBenchReadRuns runs the read benchmark on a small log against a
// real PostgreSQL: every request kind, of the API and of the signed-in
// console, must answer 200 and print its percentiles; the timeline must
// hold its session whole. It asserts nothing about speed.
func TestBenchReadRuns(t *testing.T) {
	pg := pgtest.StartT(t)
	var out bytes.Buffer
	err := run(context.Background(), []string{"bench", "read", "--database", pg.DSN(pg.NewDatabase(t)), "--n", "20000", "--rate", "2000", "--follow", "300ms", "--requests", "5"}, nil, &out, io.Discard)
	if err != nil {
		t.Fatalf("%v\n%s", err, out.String())
	}
	t.Log(out.String())
	for _, want := range []string{"API sessions, first page", "API sessions, both tenants", "API sessions, actor=", "API sessions, after= far in", "API session timeline",
		"API events, actor+type", "API events, actor+type+since", "API inclusion proof", "console sessions page", "console sessions, who+type", "console session timeline"} {
		if !regexp.MustCompile(`(?m)^  ` + regexp.QuoteMeta(want) + `.*(\s+\d+(\.\d+)?(µs|ms|s)){4}$`).MatchString(out.String()) {
			t.Errorf("no p50/p95/p99/max of %q", want)
		}
	}
	for _, want := range []string{"rebuild", "projector lag"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("output lacks %q", want)
		}
	}
	if !regexp.MustCompile(`\d+ sessions of 4 tenants, \d+ of 1,000 events or more`).MatchString(out.String()) {
		t.Errorf("no log summary:\n%s", out.String())
	}
}

// TestBenchBusRuns runs every publish mode of the bus benchmark briefly;
// each must get every event acknowledged.
func TestBenchBusRuns(t *testing.T) {
	var out bytes.Buffer
	if err := run(context.Background(), []string{"bench", "bus", "--n", "400", "--producers", "2", "--batch", "50", "--sync", "interval"}, nil, &out, io.Discard); err != nil {
		t.Fatal(err)
	}
	for _, mode := range []string{"individual", "message", "atomic", "fast"} {
		if !strings.Contains(out.String(), mode) || strings.Contains(out.String(), "failed") {
			t.Fatalf("mode %s:\n%s", mode, out.String())
		}
	}
	if !strings.Contains(out.String(), "(400 acknowledgements)") || !strings.Contains(out.String(), "(8 acknowledgements)") {
		t.Fatalf("acknowledgements:\n%s", out.String())
	}
}

// TestBenchForwardRuns drains a small backlog through every forwarder to
// the benchmark's own receivers, then a second of live load; each must
// report both phases.
func TestBenchForwardRuns(t *testing.T) {
	var out bytes.Buffer
	if err := run(context.Background(), []string{"bench", "forward", "--n", "2000", "--rate", "500", "--seconds", "1"}, nil, &out, io.Discard); err != nil {
		t.Fatal(err)
	}
	for _, fw := range []string{"syslog", "hec", "webhook"} {
		for _, phase := range []string{"backlog", "live"} {
			if !regexp.MustCompile(fw + `\s+\S+\s+` + phase + `\s+\d+ events/s`).MatchString(out.String()) {
				t.Fatalf("no %s %s figure:\n%s", fw, phase, out.String())
			}
		}
	}
}

// TestFsyncRecorderStoresEveryEvent: the fsync yardsticks of bench proxy
// report a record stored only once it is in their file, and close stores
// what is still queued — or they would measure less than they claim.
func TestFsyncRecorderStoresEveryEvent(t *testing.T) {
	path := filepath.Join(t.TempDir(), "floor.log")
	r, err := newFsyncRecorder(path)
	if err != nil {
		t.Fatal(err)
	}
	const n = 500
	var waited sync.WaitGroup
	var stored, async atomic.Int64
	for i := range n / 2 {
		ev := eventstest.Command(fmt.Sprintf("ev-%04d", i), "SELECT 1")
		waited.Go(func() {
			if _, err := r.Emit(context.Background(), ev); err != nil {
				t.Error(err)
			}
			stored.Add(1)
		})
	}
	// copy-fsync stores bare records.
	raw, err := eventstest.Command("bare", "SELECT 1").Marshal()
	if err != nil {
		t.Fatal(err)
	}
	if err := r.store(raw); err != nil {
		t.Fatal(err)
	}
	waited.Wait()
	// Not waited for: close must store them.
	for i := n / 2; i < n; i++ {
		ev := eventstest.Command(fmt.Sprintf("ev-%04d", i), "SELECT 1")
		if err := r.EmitAsync(context.Background(), ev, func(res emitter.Result) {
			if res.Err != nil || res.ID != ev.ID {
				t.Errorf("%s: %+v", ev.ID, res)
			}
			async.Add(1)
		}); err != nil {
			t.Fatal(err)
		}
	}
	if err := r.close(); err != nil {
		t.Fatal(err)
	}
	if err := r.EmitAsync(context.Background(), eventstest.Command("late", "SELECT 1"), func(emitter.Result) {}); err == nil {
		t.Fatal("a closed floor took an event")
	}
	stored.Add(async.Load())
	evs, syncs := r.stored()
	if stored.Load() != n || evs != n+1 || syncs == 0 || syncs > n+1 {
		t.Fatalf("reported %d stored, counted %d records in %d fsyncs, want %d and %d", stored.Load(), evs, syncs, n, n+1)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	for _, line := range bytes.Split(bytes.TrimSuffix(b, []byte("\n")), []byte("\n")) {
		ev, err := events.Parse(line)
		if err != nil {
			t.Fatalf("line %q: %v", line, err)
		}
		seen[ev.ID] = true
	}
	if len(seen) != n+1 || !seen["bare"] {
		t.Fatalf("file holds %d distinct events, want %d", len(seen), n+1)
	}
}

// run runs `auditledger bench NAME ARGS...` as the command tree does.
func run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	build := map[string]cli.Build{"ledger": Ledger, "ingest": Ingest, "proxy": Proxy, "bus": Bus, "read": Read, "evidence": Evidence, "forward": Forward}[args[1]]
	root, group, c := &cobra.Command{Use: "auditledger"}, &cobra.Command{Use: "bench"}, &cobra.Command{Use: args[1]}
	root.AddCommand(group)
	group.AddCommand(c)
	r := build(c)
	c.RunE = func(c *cobra.Command, a []string) error { return r(c.Context(), a, stdin, stdout, stderr) }
	root.SetArgs(args)
	root.SilenceUsage = true
	return root.ExecuteContext(ctx)
}
