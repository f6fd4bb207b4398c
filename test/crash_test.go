package test

import (
	"bufio"
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/auditledger/auditledger/events"
	"github.com/auditledger/auditledger/events/eventstest"
	"github.com/auditledger/auditledger/ledger"
	"github.com/auditledger/auditledger/ledger/bus"
	"github.com/auditledger/auditledger/ledger/bus/emitter"
	"github.com/auditledger/auditledger/ledger/file"
	"github.com/auditledger/auditledger/test/natstest"
)

// serveConfig writes a serve configuration for a local store, connecting
// to srv with the bus roles' seeds.
func serveConfig(t *testing.T, srv *natstest.Server, store, key string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "auditledger.yaml")
	cfg := fmt.Sprintf(`roles: [ledger]
log: {format: text, level: info}
http: {listen: "127.0.0.1:0"}
nats: {url: %q, nkeys: %q}
ledger:
  store: %q
  key: %q
  batch: 500
  max_wait: 20ms
  lease_ttl: 1s
`, srv.ClientURL(), srv.KeysDir, store, key)
	if err := os.WriteFile(p, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	logOnFailure(t, "serve.log", filepath.Join(filepath.Dir(p), "serve.log"))
	return p
}

// logOnFailure shows the end of the log at path, named name, when the
// test fails.
func logOnFailure(t *testing.T, name, path string) {
	t.Cleanup(func() {
		if t.Failed() {
			b, _ := os.ReadFile(path)
			if len(b) > 20000 {
				b = b[len(b)-20000:]
			}
			t.Logf("%s (end):\n%s", name, b)
		}
	})
}

func startServe(t *testing.T, config string) *exec.Cmd {
	t.Helper()
	return startServeEnv(t, config, nil)
}

// producer publishes events until stopped and remembers which ids
// JetStream acknowledged. With unsealed set, it pauses while more than
// maxUnsealed events wait to be sealed: the writer always has work, and
// the log's final drain stays short.
type producer struct {
	mu          sync.Mutex
	acked       map[string]bool
	unsealed    func(ctx context.Context) int
	maxUnsealed int
}

func (p *producer) count() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.acked)
}

func (p *producer) run(ctx context.Context, t *testing.T, em *emitter.Emitter) {
	for i := 0; ctx.Err() == nil; i++ {
		ev := eventstest.Command("crash-"+strconv.Itoa(i), "SELECT 1")
		if _, err := em.Emit(ctx, ev); err == nil {
			p.mu.Lock()
			p.acked[ev.ID] = true
			p.mu.Unlock()
		}
		if i%5 == 0 {
			time.Sleep(time.Millisecond) // a steady stream, not a flood
		}
		for i%50 == 0 && p.unsealed != nil && ctx.Err() == nil && p.unsealed(ctx) > p.maxUnsealed {
			time.Sleep(10 * time.Millisecond) // until the writer catches up
		}
	}
}

// unsealedEvents is the number of events the writer's consumer has yet to
// seal, or 0 while there is no consumer (a writer taking over recreates
// it).
func unsealedEvents(js jetstream.JetStream) func(ctx context.Context) int {
	return func(ctx context.Context) int {
		cons, err := js.Consumer(ctx, bus.EventsStream, "ledger")
		if err != nil {
			return 0
		}
		info, err := cons.Info(ctx)
		if err != nil {
			return 0
		}
		return int(info.NumPending) + info.NumAckPending
	}
}

// TestCrashKill9: the ledger process is killed with SIGKILL at random
// moments while a producer publishes; afterwards the log holds every
// acknowledged event exactly once and verifies. AUDITLEDGER_CRASH_KILLS
// sets the number of kills (default 30, as in CI).
func TestCrashKill9(t *testing.T) {
	kills := 30
	if v := os.Getenv("AUDITLEDGER_CRASH_KILLS"); v != "" {
		kills, _ = strconv.Atoi(v)
	}
	srv := natstest.StartSecure(t)
	_, js := srv.Connect(t)
	keys, storeDir := t.TempDir(), t.TempDir()
	mustRun(t, nil, nil, "keys", "generate", "--out", keys)
	config := serveConfig(t, srv, storeDir, filepath.Join(keys, "ledger.key"))
	if err := bus.EnsureStreams(t.Context(), js, bus.StreamOptions{}); err != nil {
		t.Fatal(err)
	}
	em, _ := emitter.New(emitter.Config{JetStream: js})
	// At most 2,000 events (four of the writer's batches) wait to be
	// sealed: each writer started has full batches to fetch and seal,
	// and the clean run at the end does not drain tens of thousands.
	p := &producer{acked: map[string]bool{}, unsealed: unsealedEvents(js), maxUnsealed: 2000}
	ctx, stopProducer := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Go(func() { p.run(ctx, t, em) })

	seed := uint64(time.Now().UnixNano())
	rng := rand.New(rand.NewPCG(seed, 1))
	t.Logf("kill-time seed %d", seed)
	leases := func() jetstream.KeyValue {
		var kv jetstream.KeyValue
		natstest.CheckFor(t, 30*time.Second, 20*time.Millisecond, func() (err error) {
			kv, err = js.KeyValue(t.Context(), bus.LeaseBucket)
			return err
		})
		return kv
	}
	var kv jetstream.KeyValue
	for k := range kills {
		cmd := startServe(t, config)
		if kv == nil {
			kv = leases()
		}
		// Kill only a process that has become the writer, at a random
		// moment of its work: mid-fetch, mid-seal, mid-publish or mid-ack.
		pid := fmt.Sprintf("-%d-", cmd.Process.Pid)
		natstest.CheckFor(t, 30*time.Second, 5*time.Millisecond, func() error {
			e, err := kv.Get(t.Context(), "ledger")
			if err != nil {
				return err
			}
			if !strings.Contains(string(e.Value()), pid) {
				return fmt.Errorf("lease held by %s", e.Value())
			}
			return nil
		})
		time.Sleep(time.Duration(rng.IntN(800)) * time.Millisecond)
		cmd.Process.Signal(syscall.SIGKILL)
		cmd.Wait()
		if k%10 == 9 {
			st, _ := file.New(storeDir)
			names, _ := st.List(t.Context(), ledger.SegmentPrefix)
			t.Logf("after %d kills: %d segments sealed, %d events acknowledged", k+1, len(names), p.count())
		}
	}
	stopProducer()
	wg.Wait()

	// A last, clean run drains the stream.
	cmd := startServe(t, config)
	waitDrained(t, js, 120*time.Second)
	cmd.Process.Signal(syscall.SIGTERM)
	cmd.Wait()

	count := sealedOnce(t, storeDir, keys, p.acked)
	t.Logf("%d kills; %d events acknowledged, %d sealed exactly once", kills, len(p.acked), len(count))
}

// TestCrashKillProducerMidGroup: `auditledger emit`, flooded with events
// so that its emitter always has groups in flight, is killed with SIGKILL
// at random moments; each restart sends again the last events the killed
// one was given, acknowledged or not, as a gateway with a spool would.
// Afterwards every event emit reported stored is in the log exactly once,
// nothing is sealed twice, and the log verifies.
// AUDITLEDGER_PRODUCER_KILLS sets the number of kills (default 8).
func TestCrashKillProducerMidGroup(t *testing.T) {
	kills := 8
	if v := os.Getenv("AUDITLEDGER_PRODUCER_KILLS"); v != "" {
		kills, _ = strconv.Atoi(v)
	}
	srv := natstest.StartSecure(t)
	_, js := srv.Connect(t)
	keys, storeDir := t.TempDir(), t.TempDir()
	mustRun(t, nil, nil, "keys", "generate", "--out", keys)
	if err := bus.EnsureStreams(t.Context(), js, bus.StreamOptions{}); err != nil {
		t.Fatal(err)
	}
	serve := startServe(t, serveConfig(t, srv, storeDir, filepath.Join(keys, "ledger.key")))

	seed := uint64(time.Now().UnixNano())
	rng := rand.New(rand.NewPCG(seed, 2))
	t.Logf("kill-time seed %d", seed)
	acked := map[string]bool{}
	const resend = 3000 // events given again to the next producer
	next := 0
	for k := range kills {
		cmd := exec.Command(binary, "emit", "--nats", srv.ClientURL(), "--nkey", filepath.Join(srv.KeysDir, "proxy.nk"), "--ids")
		stdin, _ := cmd.StdinPipe()
		stdout, _ := cmd.StdoutPipe()
		var stderr strings.Builder
		cmd.Stderr = &stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		from := max(0, next-resend)
		var fed sync.WaitGroup
		fed.Go(func() {
			w := bufio.NewWriterSize(stdin, 1<<16)
			for i := from; ; i++ {
				raw, _ := eventstest.Command("producer-"+strconv.Itoa(i), "SELECT "+strconv.Itoa(i)).Marshal()
				w.Write(append(raw, '\n'))
				if i%256 == 0 && w.Flush() != nil {
					next = i // the producer is gone
					return
				}
			}
		})
		var ids []string
		read := make(chan struct{})
		first := make(chan struct{})
		go func() {
			defer close(read)
			sc := bufio.NewScanner(stdout)
			for sc.Scan() {
				if ids = append(ids, sc.Text()); len(ids) == 1 {
					close(first)
				}
			}
		}()
		// Killed at a random moment once it is storing: how long emit
		// takes to start depends on how busy the cores are.
		select {
		case <-first:
		case <-read:
		case <-time.After(60 * time.Second):
		}
		time.Sleep(time.Duration(rng.IntN(700)) * time.Millisecond)
		cmd.Process.Signal(syscall.SIGKILL)
		<-read
		cmd.Wait()
		stdin.Close()
		fed.Wait()
		if len(ids) == 0 {
			t.Fatalf("producer %d stored nothing before it was killed; stderr:\n%s", k, stderr.String())
		}
		for _, id := range ids {
			if strings.HasPrefix(id, "spooled ") {
				t.Fatalf("producer without a spool reported %q", id)
			}
			acked[id] = true
		}
		t.Logf("producer %d: fed from event %d, %d stored before SIGKILL", k, from, len(ids))
	}
	waitDrained(t, js, 120*time.Second)
	serve.Process.Signal(syscall.SIGTERM)
	serve.Wait()

	count := sealedOnce(t, storeDir, keys, acked)
	t.Logf("%d producer kills; %d events reported stored, %d records sealed", kills, len(acked), len(count))
}

// sealedOnce verifies the log in storeDir with the CLI, checks that no
// event id in it is sealed twice and that every acknowledged one is there,
// and returns how many times each id is sealed.
func sealedOnce(t *testing.T, storeDir, keys string, acked map[string]bool) map[string]int {
	t.Helper()
	r := mustRun(t, nil, nil, "verify", "--store", storeDir, "--vkey", filepath.Join(keys, "ledger.vkey"))
	t.Logf("verify:\n%s", r.stdout)
	st, _ := file.New(storeDir)
	count := map[string]int{}
	err := ledger.ReadRecords(t.Context(), st, 0, func(idx uint64, rec []byte) error {
		rr, err := ledger.ParseRecord(rec)
		if err != nil {
			return err
		}
		ev, err := events.Parse(rr.Event)
		if err != nil {
			return err
		}
		count[ev.ID]++
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	for id, n := range count {
		if n != 1 {
			t.Errorf("event %s sealed %d times", id, n)
		}
	}
	for id := range acked {
		if count[id] != 1 {
			t.Errorf("acknowledged event %s missing from the log", id)
		}
	}
	return count
}

// TestTwoServeKillHandover: two `serve` processes on one log. Only the
// lease holder writes; SIGKILL it, and the standby takes over within the
// lease TTL and continues the same log, with no index written twice.
func TestTwoServeKillHandover(t *testing.T) {
	srv := natstest.StartSecure(t)
	_, js := srv.Connect(t)
	keys, storeDir := t.TempDir(), t.TempDir()
	mustRun(t, nil, nil, "keys", "generate", "--out", keys)
	config := serveConfig(t, srv, storeDir, filepath.Join(keys, "ledger.key"))
	a, b := startServe(t, config), startServe(t, config)
	var kv jetstream.KeyValue
	natstest.CheckFor(t, 30*time.Second, 20*time.Millisecond, func() (err error) {
		kv, err = js.KeyValue(t.Context(), bus.LeaseBucket)
		return err
	})
	holder := func() string {
		e, err := kv.Get(t.Context(), "ledger")
		if err != nil {
			return ""
		}
		return string(e.Value())
	}
	owns := func(c *exec.Cmd) bool { return strings.Contains(holder(), fmt.Sprintf("-%d-", c.Process.Pid)) }
	natstest.CheckFor(t, 30*time.Second, 20*time.Millisecond, func() error {
		if !owns(a) && !owns(b) {
			return fmt.Errorf("no writer yet (lease: %q)", holder())
		}
		return nil
	})
	writer, standby := a, b
	if owns(b) {
		writer, standby = b, a
	}
	em, _ := emitter.New(emitter.Config{JetStream: js})
	emit := func(from, to int) {
		for i := from; i < to; i++ {
			ev := eventstest.Command("h-"+strconv.Itoa(i), "")
			if _, err := em.Emit(t.Context(), ev); err != nil {
				t.Fatal(err)
			}
		}
	}
	emit(0, 500)
	writer.Process.Signal(syscall.SIGKILL)
	writer.Wait()
	killed := time.Now()
	emit(500, 1000)
	natstest.CheckFor(t, 30*time.Second, 20*time.Millisecond, func() error {
		if !owns(standby) {
			return fmt.Errorf("standby has not taken over (lease: %q)", holder())
		}
		return nil
	})
	t.Logf("standby took over %v after the kill (lease TTL 1s)", time.Since(killed).Round(10*time.Millisecond))
	waitDrained(t, js, 60*time.Second)
	standby.Process.Signal(syscall.SIGTERM)
	standby.Wait()
	r := mustRun(t, nil, nil, "verify", "--store", storeDir, "--vkey", filepath.Join(keys, "ledger.vkey"))
	// The 1000 events, and the clock status each writer sealed when it
	// took the log (ledger.clock.status).
	if n := contextRecords(t, storeDir); n < 2 || !strings.Contains(r.stdout, fmt.Sprintf("records      %d in", 1000+n)) {
		t.Fatalf("verify (%d context records):\n%s", n, r.stdout)
	}
}

// waitDrained waits until the writer's consumer has nothing pending. The
// consumer is looked up each time: a writer taking over recreates it.
func waitDrained(t *testing.T, js jetstream.JetStream, d time.Duration) {
	t.Helper()
	natstest.CheckFor(t, d, 50*time.Millisecond, func() error {
		cons, err := js.Consumer(t.Context(), bus.EventsStream, "ledger")
		if err != nil {
			return err
		}
		info, err := cons.Info(t.Context())
		if err != nil {
			return err
		}
		if n := info.NumPending + uint64(info.NumAckPending); n > 0 {
			return fmt.Errorf("%d events not yet sealed", n)
		}
		// Nothing pending is not enough: a consumer just created may not
		// count yet what it will deliver. Every message acknowledged is.
		s, err := js.Stream(t.Context(), bus.EventsStream)
		if err != nil {
			return err
		}
		si, err := s.Info(t.Context())
		if err != nil {
			return err
		}
		if info.AckFloor.Stream < si.State.LastSeq {
			return fmt.Errorf("events acknowledged up to stream sequence %d of %d (consumer created at %v, delivered up to %d)",
				info.AckFloor.Stream, si.State.LastSeq, info.Created.Format(time.RFC3339Nano), info.Delivered.Stream)
		}
		return nil
	})
}

// contextRecords counts the records of the store in dir that record
// context rather than activity — the writer's clock status, sealed when
// a writer takes the log and hourly, its full verifications (when it
// takes a log holding records, and daily), identity snapshots, and the
// attestations of the producer recording them — so that a test can
// expect its events and these.
func contextRecords(t *testing.T, dir string) int {
	t.Helper()
	st, err := file.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	err = ledger.ReadRecords(t.Context(), st, 0, func(_ uint64, rec []byte) error {
		r, err := ledger.ParseRecord(rec)
		if err != nil {
			return err
		}
		ev, err := events.Parse(r.Event)
		if err != nil {
			return err
		}
		if ev.Type == events.LedgerClockStatus || ev.Type == events.LedgerVerification || ev.Type == events.IdentitySnapshot || ev.Type == events.ProducerAttested {
			n++
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return n
}
