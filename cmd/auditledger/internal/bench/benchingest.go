package bench

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/spf13/cobra"

	"github.com/auditledger/auditledger/cmd/auditledger/internal/busdial"
	"github.com/auditledger/auditledger/cmd/auditledger/internal/cli"
	"github.com/auditledger/auditledger/ledger"
	"github.com/auditledger/auditledger/ledger/bus"
	"github.com/auditledger/auditledger/ledger/bus/emitter"
	"github.com/auditledger/auditledger/ledger/file"
	"github.com/auditledger/auditledger/ledger/writer"
)

// Ingest is `auditledger bench ingest`: it measures end-to-end ingestion (publish → sealed) on an embedded NATS server.
func Ingest(c *cobra.Command) cli.Run {
	fs := cli.Describe(c, "bench ingest [--n N] [--size BYTES] [--producers 1,4,16] [--sync always|interval]",
		"Measures end-to-end ingestion on the embedded NATS server with file storage:\nproducers publish events asynchronously through the emitter library, the ledger\nwriter seals them, and the time from publish to the sealed record appearing on\nAUDIT_LEDGER is recorded. Prints events/s and latency percentiles for each\nproducer concurrency, each run on fresh state.")
	n := fs.Int("n", 200_000, "events per run")
	size := fs.Int("size", 512, "approximate encoded event size in bytes")
	producersArg := fs.String("producers", "1,4,16", "comma-separated producer concurrencies")
	batch := fs.Int("batch", 5000, "events per sealed segment, at most")
	maxWait := fs.Duration("max-wait", 20*time.Millisecond, "longest wait to fill a batch")
	syncMode := fs.String("sync", "always,interval", "JetStream fsync settings to run, comma-separated: always, interval")
	rate := fs.Int("rate", 0, "total publish rate in events/s (0: as fast as the producers can)")
	sign := fs.String("producer-sig", "none", "producer authenticity to measure: none, attest (one signature per batch of 256 events) or each (every event signed, every signature checked by the writer)")
	cpuProfile := fs.String("cpuprofile", "", "write a CPU profile of this process (producers, NATS and the writer) to FILE")
	return func(ctx context.Context, args []string, _ io.Reader, stdout, stderr io.Writer) error {
		stop, err := startCPUProfile(*cpuProfile)
		if err != nil {
			return err
		}
		defer stop()
		if *sign != "none" && *sign != "attest" && *sign != "each" {
			return fmt.Errorf("bench ingest: --producer-sig %q, want none, attest or each", *sign)
		}
		var producers []int
		for _, p := range strings.Split(*producersArg, ",") {
			v, err := strconv.Atoi(strings.TrimSpace(p))
			if err != nil || v < 1 {
				return fmt.Errorf("bench ingest: --producers: %q is not a positive number", p)
			}
			producers = append(producers, v)
		}
		fmt.Fprintf(stdout, "auditledger bench ingest: %d events of %d bytes per run, batch %d, max wait %v, JetStream fsync %s, producer signatures %s\n", *n, *size, *batch, *maxWait, *syncMode, *sign)
		fmt.Fprintf(stdout, "machine: %s, %d CPUs, %s\n", cpuModel(), runtime.NumCPU(), runtime.Version())
		syncs, err := fsyncSettings("bench ingest", *syncMode)
		if err != nil {
			return err
		}
		lines := genLines(*n, *size)
		for _, sync := range syncs {
			for _, p := range producers {
				fmt.Fprintf(stdout, "  fsync %-8s", sync)
				if err := ingestRun(ctx, stdout, lines, p, *rate, *batch, *maxWait, sync == "always", *sign); err != nil {
					return err
				}
			}
		}
		fmt.Fprintf(stdout, "  peak memory (max RSS) %d MiB\n", maxRSS()>>20)
		return nil
	}
}

func ingestRun(ctx context.Context, stdout io.Writer, lines []string, producers, rate, batch int, maxWait time.Duration, syncAlways bool, sign string) error {
	st, err := newBenchStack("auditledger-bench-ingest-", syncAlways)
	if err != nil {
		return err
	}
	defer st.close()
	ledgerJS, js, readerNC, store, signer := st.ledgerJS, st.proxyJS, st.readerNC, st.store, st.signer
	// The generated events claim source instance bench-1.
	var registry *ledger.Producers
	ecfg := emitter.Config{JetStream: js, MaxInFlight: 8192}
	pskey, pvkey, _ := ledger.GenerateKey(nil, "bench-1")
	psigner, _ := ledger.NewNoteSigner(pskey)
	switch sign {
	case "each":
		registry, _ = ledger.ParseProducers(pvkey)
		ecfg.Sign = func(b []byte) string { return ledger.SignEvent(psigner, b) }
	case "attest":
		ecfg.Attester = ledger.NewProducerAttester(psigner)
	}

	var sealed atomic.Int64
	lat := make([]time.Duration, 0, len(lines))
	var latMu sync.Mutex
	allSealed := make(chan struct{})
	// Sealed records appear on AUDIT_LEDGER; the event's own time is when
	// the producer published it.
	sub, err := readerNC.Subscribe(bus.LedgerRecordsSubject, func(m *nats.Msg) {
		now := time.Now()
		recs, err := bus.SplitRecords(m.Data)
		if err != nil {
			return
		}
		for _, rec := range recs {
			// The producer stamped the publish time into the event; read
			// it without decoding the whole event, to keep the bench's own
			// cost low.
			i := bytes.Index(rec, []byte(`"time":"`))
			if i < 0 {
				continue
			}
			sent, err := time.Parse(time.RFC3339Nano, string(rec[i+8:i+8+30]))
			if err != nil {
				continue
			}
			latMu.Lock()
			lat = append(lat, now.Sub(sent))
			latMu.Unlock()
			if sealed.Add(1) == int64(len(lines)) {
				close(allSealed)
			}
		}
	})
	if err != nil {
		return err
	}
	defer sub.Unsubscribe()
	sub.SetPendingLimits(-1, -1)

	rctx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	var writing atomic.Pointer[ledger.Log]
	go func() {
		done <- writer.Run(rctx, writer.Config{JetStream: ledgerJS, Store: store, Signer: signer, BatchSize: batch, MaxWait: maxWait,
			Producers: registry, RequireSigned: registry != nil,
			Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), OnWriter: func(l *ledger.Log) { writing.Store(l) }})
	}()
	defer func() { cancel(); <-done }()
	for {
		if _, err := js.Stream(ctx, "AUDIT_EVENTS"); err == nil {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	em, err := emitter.New(ecfg)
	if err != nil {
		return err
	}
	var failed atomic.Int64
	cpu0 := selfCPU()
	start := time.Now()
	var wg sync.WaitGroup
	per := (len(lines) + producers - 1) / producers
	for p := range producers {
		part := lines[min(p*per, len(lines)):min((p+1)*per, len(lines))]
		wg.Go(func() {
			for j, l := range part {
				if rate > 0 {
					// Open-loop pacing: event j of this producer is due at
					// start + j·producers/rate.
					if d := time.Until(start.Add(time.Duration(float64(j*producers) / float64(rate) * float64(time.Second)))); d > 0 {
						time.Sleep(d)
					}
				}
				// Stamp the publish time into the event, keeping its size.
				raw := []byte(l[:strings.Index(l, `"time":"`)+8] + time.Now().UTC().Format("2006-01-02T15:04:05.000000000Z") + l[strings.Index(l, `","tenant"`):])
				if err := em.EmitRaw(ctx, raw, func(r emitter.Result) {
					if r.Err != nil {
						failed.Add(1)
					}
				}); err != nil {
					failed.Add(1)
				}
			}
		})
	}
	wg.Wait()
	em.Wait()
	published := time.Since(start)
	select {
	case <-allSealed:
	case <-time.After(2 * time.Minute):
		return fmt.Errorf("bench ingest: only %d of %d sealed records seen after 2 minutes (%d publishes failed); log size %d",
			sealed.Load(), len(lines), failed.Load(), logSizeOf(writing.Load()))
	case <-ctx.Done():
		return ctx.Err()
	}
	total := time.Since(start)
	cpu := selfCPU() - cpu0
	latMu.Lock()
	slices.Sort(lat)
	label := "max"
	if rate > 0 {
		label = strconv.Itoa(rate) + "/s"
	}
	fmt.Fprintf(stdout, " producers %-3d rate %-7s %8.0f events/s end to end (published in %v, all sealed in %v)  publish→sealed p50 %v  p99 %v  max %v",
		producers, label, float64(len(lines))/total.Seconds(), published.Round(time.Millisecond), total.Round(time.Millisecond), pct(lat, 0.5), pct(lat, 0.99), lat[len(lat)-1].Round(time.Microsecond))
	latMu.Unlock()
	if f := failed.Load(); f > 0 {
		fmt.Fprintf(stdout, "  (%d publishes failed)", f)
	}
	// Producers, NATS and the writer are all this process: its CPU per
	// event is what the whole audit path costs an event.
	fmt.Fprintf(stdout, "  CPU %.1f µs/event", float64(cpu.Nanoseconds())/1e3/float64(len(lines)))
	if g := em.Stats.Groups.Load(); g > 0 {
		fmt.Fprintf(stdout, "  groups of %.0f events on average, %d published alone", float64(em.Stats.GroupedEvents.Load())/float64(g), em.Stats.Singles.Load())
	}
	fmt.Fprintln(stdout)
	return nil
}

func logSizeOf(l *ledger.Log) uint64 {
	if l == nil {
		return 0
	}
	return l.Size()
}

// benchStack is a bench run's embedded NATS server (file storage,
// authentication) in a temporary directory, a connection per bus role as
// in production, and a local store with a signing key.
type benchStack struct {
	dir      string
	ns       *server.Server
	dial     *busdial.Dialer
	ledgerJS jetstream.JetStream
	proxyJS  jetstream.JetStream // asynchronous publishing for the emitter
	readerNC *nats.Conn
	readerJS jetstream.JetStream
	store    *file.Store
	signer   *ledger.NoteSigner
}

func newBenchStack(prefix string, syncAlways bool) (_ *benchStack, err error) {
	st := &benchStack{}
	if st.dir, err = os.MkdirTemp("", prefix); err != nil {
		return nil, err
	}
	defer func() {
		if err != nil {
			st.close()
		}
	}()
	if st.ns, st.dial, err = busdial.StartEmbedded("auditledger-bench", filepath.Join(st.dir, "nats"), filepath.Join(st.dir, "nats-keys"), -1, syncAlways, true); err != nil {
		return nil, err
	}
	if _, st.ledgerJS, err = st.dial.Connect(bus.Ledger); err != nil {
		return nil, err
	}
	nc, _, err := st.dial.Connect(bus.Proxy)
	if err != nil {
		return nil, err
	}
	st.proxyJS, _ = jetstream.New(nc, jetstream.WithPublishAsyncMaxPending(8192))
	if st.readerNC, st.readerJS, err = st.dial.Connect(bus.Reader); err != nil {
		return nil, err
	}
	if st.store, err = file.New(filepath.Join(st.dir, "store")); err != nil {
		return nil, err
	}
	skey, _, _ := ledger.GenerateKey(nil, "bench.auditledger.local/log")
	st.signer, _ = ledger.NewNoteSigner(skey)
	return st, nil
}

func (st *benchStack) close() {
	if st.dial != nil {
		st.dial.Close()
	}
	if st.ns != nil {
		st.ns.Shutdown()
	}
	os.RemoveAll(st.dir)
}
