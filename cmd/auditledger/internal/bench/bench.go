package bench

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"runtime/trace"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/auditledger/auditledger/cmd/auditledger/internal/cli"
	"github.com/auditledger/auditledger/cmd/auditledger/internal/eventimport"
	"github.com/auditledger/auditledger/events"
	"github.com/auditledger/auditledger/ledger"
	"github.com/auditledger/auditledger/ledger/file"
)

// Ledger is `auditledger bench ledger`: it measures append+seal, verify and proof speed on a local store.
func Ledger(c *cobra.Command) cli.Run {
	fs := cli.Describe(c, "bench ledger [--n N] [--size BYTES] [--segment-size N] [--dir DIR]",
		"Generates N valid events of about BYTES bytes each, then measures on a local\nstore with durable (fsynced) sealing: validation alone, the append path\n(validate + sequence + hash + seal + sign, as \"append\" runs it), a full\nverify, and inclusion-proof generation latency on the loaded tree. Prints\nrecords/s per phase, proof latency percentiles and peak memory.")
	n := fs.Int("n", 1_000_000, "events to append")
	size := fs.Int("size", 512, "approximate encoded size of each event in bytes")
	segSize := fs.Int("segment-size", 10000, "records per sealed segment")
	dir := fs.String("dir", "", "store directory (default: a temporary directory, removed afterwards)")
	proofs := fs.Int("proofs", 100_000, "inclusion proofs to generate for the latency figures")
	return func(ctx context.Context, args []string, _ io.Reader, stdout, stderr io.Writer) error {
		if *n < 1 || *size < 300 || *size > events.MaxSize {
			return fmt.Errorf("bench ledger: need --n ≥ 1 and 300 ≤ --size ≤ %d", events.MaxSize)
		}
		if *dir == "" {
			d, err := os.MkdirTemp("", "auditledger-bench-")
			if err != nil {
				return err
			}
			defer os.RemoveAll(d)
			*dir = d
		}
		store, err := file.New(filepath.Join(*dir, "log"))
		if err != nil {
			return err
		}
		skey, _, err := ledger.GenerateKey(nil, "bench.auditledger.local/log")
		if err != nil {
			return err
		}
		signer, _ := ledger.NewNoteSigner(skey)

		fmt.Fprintf(stdout, "auditledger bench ledger: %d events of %d bytes, segments of %d, store %s\n", *n, *size, *segSize, store)
		fmt.Fprintf(stdout, "machine: %s, %d CPUs (GOMAXPROCS %d), %s %s/%s\n", cpuModel(), runtime.NumCPU(), runtime.GOMAXPROCS(0), runtime.Version(), runtime.GOOS, runtime.GOARCH)

		input := genEvents(*n, *size)

		start := time.Now()
		if err := validateAll(input); err != nil {
			return err
		}
		report(stdout, "validate only", *n, time.Since(start))

		// Seal alone: pre-validated events into a second store, to show what
		// the ledger costs without JSON decoding.
		sealStore, err := file.New(filepath.Join(*dir, "seal-only"))
		if err != nil {
			return err
		}
		sealLog, err := ledger.Open(ctx, ledger.Config{Store: sealStore, Signer: signer})
		if err != nil {
			return err
		}
		lines := bytes.Split(bytes.TrimSuffix(input, []byte("\n")), []byte("\n"))
		start = time.Now()
		for i := 0; i < len(lines); i += *segSize {
			batch := make([]ledger.Entry, 0, *segSize)
			for _, l := range lines[i:min(i+*segSize, len(lines))] {
				batch = append(batch, ledger.Entry{Event: l})
			}
			if _, err := sealLog.Append(ctx, batch); err != nil {
				return err
			}
		}
		report(stdout, "seal only (pre-validated; hash, fsync, sign)", *n, time.Since(start))
		lines = nil

		log, err := ledger.Open(ctx, ledger.Config{Store: store, Signer: signer})
		if err != nil {
			return err
		}
		start = time.Now()
		st, err := eventimport.Import(ctx, bytes.NewReader(input), log, *segSize, func(line int, _ []byte, err error) {
			fmt.Fprintf(stderr, "line %d rejected: %v\n", line, err)
		})
		if err != nil {
			return err
		}
		if st.Appended != *n {
			return fmt.Errorf("bench ledger: appended %d of %d", st.Appended, *n)
		}
		report(stdout, "append + seal (validate, hash, fsync, sign)", *n, time.Since(start))

		runtime.GC()
		start = time.Now()
		rep, err := ledger.Verify(ctx, store, ledger.VerifyOptions{Verifier: signer.Verifier()})
		if err != nil {
			return err
		}
		el := time.Since(start)
		report(stdout, "verify (full store, signatures)", int(rep.Size), el)
		fmt.Fprintf(stdout, "  %-44s %12.0f records/s per core\n", "", float64(rep.Size)/el.Seconds()/float64(runtime.GOMAXPROCS(0)))

		start = time.Now()
		rep, err = ledger.Verify(ctx, store, ledger.VerifyOptions{Verifier: signer.Verifier(), KeepTree: true})
		if err != nil {
			return err
		}
		report(stdout, "load with full tree (for proofs)", int(rep.Size), time.Since(start))

		lat := make([]time.Duration, *proofs)
		total := rep.Size
		for i := range lat {
			idx := rand.Uint64N(total)
			t := time.Now()
			p, err := rep.Tree.InclusionProof(idx, total)
			lat[i] = time.Since(t)
			if err != nil || len(p) == 0 && total > 1 {
				return fmt.Errorf("bench ledger: proof %d: %v", idx, err)
			}
		}
		slices.Sort(lat)
		pct := func(q float64) time.Duration { return lat[min(len(lat)-1, int(q*float64(len(lat))))] }
		fmt.Fprintf(stdout, "  %-44s p50 %v  p99 %v  max %v  (%d proofs, tree size %d)\n", "inclusion proof generation", pct(0.50), pct(0.99), lat[len(lat)-1], len(lat), total)
		fmt.Fprintf(stdout, "  %-44s %d MiB\n", "peak memory (max RSS)", maxRSS()>>20)
		return nil
	}
}

func report(w io.Writer, phase string, n int, d time.Duration) {
	fmt.Fprintf(w, "  %-44s %12.0f records/s  (%d in %v)\n", phase, float64(n)/d.Seconds(), n, d.Round(time.Millisecond))
}

// genEvents makes n distinct, valid command.executed events, one per line.
// genLines is genEvents as one string per event.
func genLines(n, size int) []string {
	return strings.Split(strings.TrimSuffix(string(genEvents(n, size)), "\n"), "\n")
}

// fsyncSettings parses a --sync list of JetStream fsync settings.
func fsyncSettings(cmd, arg string) ([]string, error) {
	list := strings.Split(arg, ",")
	for _, s := range list {
		if s != "always" && s != "interval" {
			return nil, fmt.Errorf("%s: --sync %q, want always or interval", cmd, s)
		}
	}
	return list, nil
}

func genEvents(n, size int) []byte {
	var b bytes.Buffer
	base := time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC)
	for i := range n {
		start := b.Len()
		fmt.Fprintf(&b, `{"version":1,"id":"bench-%012d","type":"command.executed","time":"%s","tenant":"bench","source":{"kind":"postgres-proxy","instance":"bench-1","version":"0"},"actor":{"issuer":"https://idp.example","subject":"user-%d","email":"`+sealedEmail+`","groups":["dba"],"kind":"human"},"session_id":"s-%d","session_seq":%d,"target":{"kind":"postgres","name":"orders","database":"orders"},"payload":{"statement":"SELECT * FROM orders WHERE id = $1","pad":"`,
			i, base.Add(time.Duration(i)*time.Microsecond).Format(time.RFC3339Nano), i%97, i/100, i%100+1)
		if pad := size - (b.Len() - start) - 4; pad > 0 {
			b.WriteString(strings.Repeat("x", pad))
		}
		b.WriteString("\"}}\n")
	}
	return b.Bytes()
}

func validateAll(input []byte) error {
	lines := bytes.Split(bytes.TrimSuffix(input, []byte("\n")), []byte("\n"))
	workers := runtime.GOMAXPROCS(0)
	per := (len(lines) + workers - 1) / workers
	errs := make([]error, workers)
	var wg sync.WaitGroup
	for w := range workers {
		part := lines[min(w*per, len(lines)):min((w+1)*per, len(lines))]
		wg.Go(func() {
			for _, l := range part {
				if err := events.Validate(l); err != nil {
					errs[w] = err
					return
				}
			}
		})
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			return fmt.Errorf("bench ledger: generated event invalid: %w", err)
		}
	}
	return nil
}

func maxRSS() int64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return ru.Maxrss << 10 // kilobytes on Linux
}

func cpuModel() string {
	b, err := os.ReadFile("/proc/cpuinfo")
	if err != nil {
		return runtime.GOARCH
	}
	for _, l := range strings.Split(string(b), "\n") {
		if k, v, ok := strings.Cut(l, ":"); ok && strings.TrimSpace(k) == "model name" {
			return strings.TrimSpace(v)
		}
	}
	return runtime.GOARCH
}

func runtimeVersion() string { return runtime.Version() + " " + runtime.GOOS + "/" + runtime.GOARCH }

// startCPUProfile writes a CPU profile of this process to path (none if
// empty) until stop is called.
func startCPUProfile(path string) (stop func(), err error) {
	if path == "" {
		return func() {}, nil
	}
	f, err := os.Create(path)
	if err != nil {
		return nil, err
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		f.Close()
		return nil, err
	}
	return func() { pprof.StopCPUProfile(); f.Close() }, nil
}

// startTrace starts an execution trace (runtime/trace) written to path,
// nothing when path is empty.
func startTrace(path string) (stop func(), err error) {
	if path == "" {
		return func() {}, nil
	}
	f, err := os.Create(path)
	if err != nil {
		return nil, err
	}
	if err := trace.Start(f); err != nil {
		f.Close()
		return nil, err
	}
	return func() { trace.Stop(); f.Close() }, nil
}

// sealedEmail stands for an actor's e-mail as gateways record it, sealed
// under the person's key (docs/FORMAT.md §1.6): the size it adds to an
// event is real; the writer refuses an e-mail in clear.
const sealedEmail = "pii1.0123456789abcdef0123456789abcdef.AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8gISIjJCUmJygpKissLS4vMDEyMzQ1Njc4OTo7PD0-P0BBQkNERUZHSA"
