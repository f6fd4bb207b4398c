package bench

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/auditledger/auditledger/cmd/auditledger/internal/cli"
	"github.com/auditledger/auditledger/cmd/auditledger/internal/keyfile"
	"github.com/auditledger/auditledger/ledger"
	"github.com/auditledger/auditledger/ledger/bus"
	"github.com/auditledger/auditledger/ledger/bus/nkeyauth"
	"github.com/auditledger/auditledger/projections"
)

// Evidence measures building and verifying an evidence bundle of
// --n events of one tenant, each in its own process so that its time and
// peak memory are its own.
func Evidence(c *cobra.Command) cli.Run {
	fs := cli.Describe(c, "bench evidence --database URL [--n 1000000] [--others 10]",
		"Measures evidence bundles on this machine: builds a log of N events of the\ntenant acme with one event of another tenant after every OTHERS (segments of\n10,000) in a temporary local store, rebuilds the projection into the\ndatabase (its tables are replaced), then runs `auditledger evidence build`\nfor acme over the whole log and `auditledger evidence verify` on the bundle,\neach as its own process, and prints their time and peak memory (max RSS).")
	database := fs.String("database", os.Getenv("AUDITLEDGER_DATABASE_URL"), "postgres:// URL of a database to use (default $AUDITLEDGER_DATABASE_URL)")
	n := fs.Int("n", 1_000_000, "events of the tenant in the bundle")
	others := fs.Int("others", 10, "one event of another tenant after every OTHERS of the tenant's (0: none)")
	return func(ctx context.Context, args []string, _ io.Reader, stdout, stderr io.Writer) error {
		bl, err := newBenchLog(ctx, "bench evidence", *database)
		if err != nil {
			return err
		}
		defer bl.close()
		dir, l := bl.dir, bl.log
		fmt.Fprintf(stdout, "auditledger bench evidence: %d events of the tenant, one of another after every %d\n", *n, *others)
		fmt.Fprintf(stdout, "machine: %s, %s\n", cpuModel(), runtimeVersion())
		start := time.Now()
		var es []ledger.Entry
		total := 0
		for i := 0; i < *n; i++ {
			es = append(es, ledger.Entry{Event: benchReadEvent(i)})
			if *others > 0 && i%*others == *others-1 {
				ev := bytes.Replace(benchReadEvent(i), []byte(`"tenant":"acme"`), []byte(`"tenant":"globex"`), 1)
				es = append(es, ledger.Entry{Event: bytes.Replace(ev, []byte(`"id":"ev-`), []byte(`"id":"other-`), 1)})
			}
			if len(es) >= 10_000 || i == *n-1 {
				if _, err := l.Append(ctx, es); err != nil {
					return err
				}
				total += len(es)
				es = es[:0]
			}
		}
		fmt.Fprintf(stdout, "  log built     %d records in %v\n", total, time.Since(start).Round(time.Millisecond))
		start = time.Now()
		if err := projections.Rebuild(ctx, bl.projection(), nil); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "  projected     in %v\n", time.Since(start).Round(time.Millisecond))

		// The keys, as files, for the two commands.
		keyFile, vkeyFile, bundle := filepath.Join(dir, "evidence"), filepath.Join(dir, "log.vkey"), filepath.Join(dir, "bundle.zip")
		if err := keyfile.WriteEvidenceKey(dir, "bench.auditledger.local/log"); err != nil {
			return err
		}
		if err := os.WriteFile(vkeyFile, []byte(bl.vkey+"\n"), 0o644); err != nil {
			return err
		}
		// The build records its export on the bus before it releases the
		// bundle: an embedded NATS with the streams, the build its admin.
		dial, _, stopBus, err := benchBus(ctx, dir, false)
		if err != nil {
			return err
		}
		defer stopBus()
		self, err := os.Executable()
		if err != nil {
			return err
		}
		// Peak memory through GNU time: a child forked from this process would
		// report this process's resident set at fork as its own peak (Linux
		// carries it across exec), GNU time's child starts small.
		gnuTime, _ := exec.LookPath("/usr/bin/time")
		rssFile := filepath.Join(dir, "rss")
		timed := func(what string, args ...string) error {
			cmd := exec.CommandContext(ctx, self, args...)
			if gnuTime != "" {
				cmd = exec.CommandContext(ctx, gnuTime, append([]string{"-f", "%M", "-o", rssFile, self}, args...)...)
			}
			cmd.Env = append(os.Environ(), "AUDITLEDGER_DATABASE_URL="+*database)
			var out bytes.Buffer
			cmd.Stdout, cmd.Stderr = &out, &out
			began := time.Now()
			err := cmd.Run()
			took := time.Since(began)
			if err != nil {
				return fmt.Errorf("%s: %v\n%s", what, err, out.String())
			}
			ru := cmd.ProcessState.SysUsage().(*syscall.Rusage)
			cpu := time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
			peak := "unknown (install GNU time: /usr/bin/time)"
			if b, err := os.ReadFile(rssFile); err == nil && gnuTime != "" {
				var kib int64
				fmt.Sscan(string(b), &kib)
				peak = fmt.Sprintf("%d MiB", kib>>10)
			}
			fmt.Fprintf(stdout, "  %-13s %v, peak memory %s, CPU %v\n", what, took.Round(time.Millisecond), peak, cpu.Round(time.Millisecond))
			if line, _, _ := strings.Cut(out.String(), "\n"); line != "" {
				fmt.Fprintf(stdout, "                %s\n", line)
			}
			return nil
		}
		if err := timed("build", "evidence", "build", "--tenant", "acme", "--from", "2000-01-01", "--to", "2100-01-01",
			"--out", bundle, "--key", keyFile, "--vkey", vkeyFile, "--nats", dial.URL, "--nkey", nkeyauth.SeedFile(filepath.Join(dir, "nats-keys"), bus.Admin)); err != nil {
			return err
		}
		if err := timed("verify", "evidence", "verify", bundle, "--vkey", vkeyFile, "--allowed-signers", filepath.Join(dir, "allowed_signers"), "--allow-unlocked"); err != nil {
			return err
		}
		return nil
	}
}
