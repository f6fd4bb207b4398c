package bench

import (
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/spf13/cobra"
	"github.com/synadia-io/orbit.go/jetstreamext"

	"github.com/auditledger/auditledger/cmd/auditledger/internal/busdial"
	"github.com/auditledger/auditledger/cmd/auditledger/internal/cli"
	"github.com/auditledger/auditledger/ledger/bus"
)

// Bus measures how producers can get events stored by JetStream —
// the first hop of group commit — before the emitter chooses one: one
// acknowledged publish per event, one message carrying a batch of events,
// JetStream's atomic batch publish, and its fast-ingest batch publish.
func Bus(c *cobra.Command) cli.Run {
	fs := cli.Describe(c, "bench bus [--n N] [--size BYTES] [--producers P] [--batch B] [--sync always,interval] [--modes ...]",
		"Measures the ways a producer can have events stored by JetStream, on the embedded\nserver with file storage: one acknowledged publish per event (individual), one\nmessage carrying B events (message), JetStream atomic batch publish of B\nmessages (atomic), and fast-ingest batch publish committed every B messages\n(fast). Prints events/s and the latency from publish to acknowledgement per\nmode and fsync setting; each run starts on fresh state.")
	n := fs.Int("n", 100_000, "events per run")
	size := fs.Int("size", 512, "approximate encoded event size in bytes")
	producers := fs.Int("producers", 4, "concurrent producers")
	batch := fs.Int("batch", 100, "events per batch (message, atomic and fast modes)")
	syncArg := fs.String("sync", "always,interval", "JetStream fsync settings to run: always, interval")
	modesArg := fs.String("modes", "individual,message,atomic,fast", "publish modes to run")
	return func(ctx context.Context, args []string, _ io.Reader, stdout, stderr io.Writer) error {
		if *producers < 1 || *batch < 1 || *n < *producers {
			return fmt.Errorf("bench bus: --producers and --batch must be positive, and --n at least --producers")
		}
		syncs, err := fsyncSettings("bench bus", *syncArg)
		if err != nil {
			return err
		}
		lines := genLines(*n, *size)
		fmt.Fprintf(stdout, "auditledger bench bus: %d events of %d bytes, %d producers, batches of %d\n", *n, *size, *producers, *batch)
		fmt.Fprintf(stdout, "machine: %s, %d CPUs, %s\n", cpuModel(), runtime.NumCPU(), runtime.Version())
		for _, sync := range syncs {
			for _, mode := range strings.Split(*modesArg, ",") {
				res, err := busRun(ctx, lines, mode, *producers, *batch, sync == "always")
				if err != nil {
					fmt.Fprintf(stdout, "  fsync %-8s %-10s  failed: %v\n", sync, mode, err)
					continue
				}
				fmt.Fprintf(stdout, "  fsync %-8s %-10s %8.0f events/s   ack latency p50 %v  p99 %v  (%d acknowledgements)\n",
					sync, mode, res.rate, res.p50, res.p99, res.acks)
			}
		}
		return nil
	}
}

type busResult struct {
	rate     float64
	p50, p99 time.Duration
	acks     int
}

func busRun(ctx context.Context, lines []string, mode string, producers, batch int, syncAlways bool) (busResult, error) {
	dir, err := os.MkdirTemp("", "auditledger-bench-bus-")
	if err != nil {
		return busResult{}, err
	}
	defer os.RemoveAll(dir)
	ns, dial, err := busdial.StartEmbedded("auditledger-bench", filepath.Join(dir, "nats"), filepath.Join(dir, "nats-keys"), -1, syncAlways, true)
	if err != nil {
		return busResult{}, err
	}
	defer ns.Shutdown()
	defer dial.Close()
	_, admin, err := dial.Connect(bus.Admin)
	if err != nil {
		return busResult{}, err
	}
	if _, err := admin.CreateStream(ctx, jetstream.StreamConfig{Name: "BENCH", Subjects: []string{"bench.>"}, Storage: jetstream.FileStorage,
		Duplicates: 10 * time.Minute, AllowAtomicPublish: true, AllowBatchPublish: true, MaxMsgSize: 8 << 20}); err != nil {
		return busResult{}, err
	}
	var mu sync.Mutex
	var lat []time.Duration
	record := func(d time.Duration) { mu.Lock(); lat = append(lat, d); mu.Unlock() }
	per := (len(lines) + producers - 1) / producers
	errs := make([]error, producers)
	start := time.Now()
	var wg sync.WaitGroup
	for p := range producers {
		part := lines[min(p*per, len(lines)):min((p+1)*per, len(lines))]
		nc, _, err := dial.Connect(bus.Admin)
		if err != nil {
			return busResult{}, err
		}
		js, _ := jetstream.New(nc, jetstream.WithPublishAsyncMaxPending(8192))
		wg.Go(func() { errs[p] = busProduce(ctx, js, part, mode, batch, p, record) })
	}
	wg.Wait()
	elapsed := time.Since(start)
	if err := errorsJoin(errs); err != nil {
		return busResult{}, err
	}
	slices.Sort(lat)
	if len(lat) == 0 {
		return busResult{}, fmt.Errorf("no acknowledgements")
	}
	return busResult{rate: float64(len(lines)) / elapsed.Seconds(), p50: lat[len(lat)/2].Round(time.Microsecond),
		p99: lat[len(lat)*99/100].Round(time.Microsecond), acks: len(lat)}, nil
}

func errorsJoin(errs []error) error {
	for _, e := range errs {
		if e != nil {
			return e
		}
	}
	return nil
}

// busProduce publishes part in the given mode and records the latency of
// each acknowledgement.
func busProduce(ctx context.Context, js jetstream.JetStream, part []string, mode string, batch, producer int, record func(time.Duration)) error {
	msg := func(i int, data []byte) *nats.Msg {
		m := nats.NewMsg("bench.events." + strconv.Itoa(producer))
		m.Data = data
		m.Header.Set(nats.MsgIdHdr, fmt.Sprintf("p%d-%d", producer, i))
		return m
	}
	switch mode {
	case "individual":
		type pending struct {
			f    jetstream.PubAckFuture
			sent time.Time
		}
		var window []pending
		wait := func(p pending) error {
			select {
			case <-p.f.Ok():
				record(time.Since(p.sent))
				return nil
			case err := <-p.f.Err():
				return err
			case <-ctx.Done():
				return ctx.Err()
			}
		}
		for i, l := range part {
			f, err := js.PublishMsgAsync(msg(i, []byte(l)))
			if err != nil {
				return err
			}
			window = append(window, pending{f, time.Now()})
			if len(window) >= 4096 {
				for _, p := range window[:2048] {
					if err := wait(p); err != nil {
						return err
					}
				}
				window = window[2048:]
			}
		}
		for _, p := range window {
			if err := wait(p); err != nil {
				return err
			}
		}
	case "message":
		// Length-prefixed events in one message; the writer would split
		// them and deduplicate by event id itself.
		var futures []jetstream.PubAckFuture
		var sent []time.Time
		for lo := 0; lo < len(part); lo += batch {
			var b []byte
			for _, l := range part[lo:min(lo+batch, len(part))] {
				b = binary.BigEndian.AppendUint32(b, uint32(len(l)))
				b = append(b, l...)
			}
			f, err := js.PublishMsgAsync(msg(lo, b))
			if err != nil {
				return err
			}
			futures, sent = append(futures, f), append(sent, time.Now())
		}
		for i, f := range futures {
			select {
			case <-f.Ok():
				record(time.Since(sent[i]))
			case err := <-f.Err():
				return err
			case <-ctx.Done():
				return ctx.Err()
			}
		}
	case "atomic":
		for lo := 0; lo < len(part); lo += batch {
			var msgs []*nats.Msg
			for j, l := range part[lo:min(lo+batch, len(part))] {
				m := msg(lo+j, []byte(l))
				msgs = append(msgs, m)
			}
			t := time.Now()
			if _, err := jetstreamext.PublishMsgBatch(ctx, js, msgs); err != nil {
				return err
			}
			record(time.Since(t))
		}
	case "fast":
		// One fast-ingest batch per B events, committed with its last.
		for lo := 0; lo < len(part); lo += batch {
			t := time.Now()
			fp, err := jetstreamext.NewFastPublisher(js)
			if err != nil {
				return err
			}
			chunk := part[lo:min(lo+batch, len(part))]
			for j, l := range chunk[:len(chunk)-1] {
				if _, err := fp.AddMsg(msg(lo+j, []byte(l))); err != nil {
					return err
				}
			}
			last := len(chunk) - 1
			if _, err := fp.CommitMsg(ctx, msg(lo+last, []byte(chunk[last]))); err != nil {
				return err
			}
			record(time.Since(t))
		}
	default:
		return fmt.Errorf("mode %q unknown (individual, message, atomic, fast)", mode)
	}
	return nil
}
