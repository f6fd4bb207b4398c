package bench

import (
	"bufio"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"math/big"
	"net"
	"net/http"
	"regexp"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/spf13/cobra"

	"github.com/auditledger/auditledger/cmd/auditledger/internal/cli"
	"github.com/auditledger/auditledger/ledger"
	"github.com/auditledger/auditledger/ledger/bus"
	"github.com/auditledger/auditledger/ledger/bus/emitter"
	"github.com/auditledger/auditledger/ledger/writer"
	"github.com/auditledger/auditledger/services/siem"
)

// Forward measures each forwarder against a receiver on loopback:
// how fast it drains a backlog, and the latency from a record's sealing to
// its receipt while events are sealed at a steady rate.
func Forward(c *cobra.Command) cli.Run {
	fs := cli.Describe(c, "bench forward [--n 200000] [--rate 20000] [--seconds 10] [--forwarders syslog,hec,webhook] [--latency D] [--batch N] [--inflight N]",
		"Measures the SIEM forwarders on this machine: the embedded NATS server and the\nledger writer seal N events, then each forwarder drains that backlog to a\nreceiver on loopback (syslog over TLS with octet counting, an HTTP Event\nCollector with indexer acknowledgement, a signed webhook), and then forwards\nwhile events are sealed at RATE per second for SECONDS, timing each record\nfrom its sealing to its receipt. The receivers are minimal Go servers, so\nthe figures are the forwarder's (with NATS and the writer on the same cores);\n--latency makes the HTTP receivers take D to answer each request, as a remote\nSIEM would.")
	n := fs.Int("n", 200_000, "events in the backlog")
	rate := fs.Int("rate", 20_000, "events per second sealed during the live phase")
	seconds := fs.Int("seconds", 10, "length of the live phase")
	which := fs.String("forwarders", "syslog,hec,webhook", "forwarders to measure")
	format := fs.String("format", "", "rendering (default: each forwarder's: cef, ocsf, json)")
	cpuProfile := fs.String("cpuprofile", "", "write a CPU profile of this process to FILE")
	latency := fs.Duration("latency", 0, "time the HEC and webhook receivers take to answer each request")
	batch := fs.Int("batch", 0, "the forwarders' batch (0: the default, 500)")
	inflight := fs.Int("inflight", 0, "the forwarders' requests in flight (0: the default, 4)")
	return func(ctx context.Context, args []string, _ io.Reader, stdout, stderr io.Writer) error {
		stop, err := startCPUProfile(*cpuProfile)
		if err != nil {
			return err
		}
		defer stop()
		fmt.Fprintf(stdout, "auditledger bench forward: backlog %d events, then %d events/s for %ds; receiver latency %v, batch %d, inflight %d (0: default)\nmachine: %s, %d CPUs, %s\n", *n, *rate, *seconds, *latency, *batch, *inflight, cpuModel(), runtime.NumCPU(), runtimeVersion())
		for _, name := range strings.Split(*which, ",") {
			o := forwardOpts{format: *format, n: *n, rate: *rate, seconds: *seconds, latency: *latency, batch: *batch, inflight: *inflight}
			if err := forwardRun(ctx, stdout, strings.TrimSpace(name), o); err != nil {
				return fmt.Errorf("bench forward: %s: %w", name, err)
			}
		}
		return nil
	}
}

// benchReceiver counts the records a receiver got, by ledger index, with
// when it got them.
type benchReceiver struct {
	mu   sync.Mutex
	got  map[uint64]time.Time
	want uint64 // all indexes below this received: done is closed
	done chan struct{}
}

func (r *benchReceiver) received(idx uint64) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if _, ok := r.got[idx]; !ok {
		r.got[idx] = time.Now()
		if uint64(len(r.got)) == r.want && r.done != nil {
			close(r.done)
			r.done = nil
		}
	}
}

func (r *benchReceiver) expect(n uint64) chan struct{} {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.want = n
	ch := make(chan struct{})
	if uint64(len(r.got)) >= n {
		close(ch)
	} else {
		r.done = ch
	}
	return ch
}

// forwardOpts are bench forward's settings for one run.
type forwardOpts struct {
	format           string
	n, rate, seconds int
	latency          time.Duration
	batch, inflight  int
}

func forwardRun(ctx context.Context, stdout io.Writer, name string, o forwardOpts) error {
	format, n, rate, seconds := o.format, o.n, o.rate, o.seconds
	st, err := newBenchStack("auditledger-bench-forward-", false)
	if err != nil {
		return err
	}
	defer st.close()
	dir, ledgerJS, js, readerNC, store, signer := st.dir, st.ledgerJS, st.proxyJS, st.readerNC, st.store, st.signer
	rctx, cancel := context.WithCancel(ctx)
	defer cancel()
	writerDone := make(chan error, 1)
	go func() {
		writerDone <- writer.Run(rctx, writer.Config{JetStream: ledgerJS, Store: store, Signer: signer, BatchSize: 5000, MaxWait: 20 * time.Millisecond,
			Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	}()
	defer func() { cancel(); <-writerDone }()
	for {
		if _, err := js.Stream(ctx, bus.EventsStream); err == nil {
			break
		}
		time.Sleep(10 * time.Millisecond) // the writer makes the streams
	}
	// Sealing times, by index, from AUDIT_LEDGER.
	var sealedMu sync.Mutex
	sealedAt := map[uint64]time.Time{}
	var sealedCount uint64
	sub, err := readerNC.Subscribe(bus.LedgerRecordsSubject, func(m *nats.Msg) {
		recs, _ := bus.SplitRecords(m.Data)
		sealedMu.Lock()
		defer sealedMu.Unlock()
		for _, raw := range recs {
			if r, err := ledger.ParseRecord(raw); err == nil {
				sealedAt[r.Index] = r.Time
				sealedCount++
			}
		}
	})
	if err != nil {
		return err
	}
	defer sub.Unsubscribe()
	sub.SetPendingLimits(-1, -1)
	em, err := emitter.New(emitter.Config{JetStream: js, MaxInFlight: 8192})
	if err != nil {
		return err
	}
	defer em.Close()
	lines := genLines(n+rate*seconds, 512)
	emit := func(part []string, perSecond int) {
		start := time.Now()
		for j, l := range part {
			if perSecond > 0 {
				if d := time.Until(start.Add(time.Duration(float64(j) / float64(perSecond) * float64(time.Second)))); d > 0 {
					time.Sleep(d)
				}
			}
			em.EmitRaw(ctx, []byte(l), func(emitter.Result) {})
		}
		em.Wait()
	}
	waitSealed := func(k uint64) error {
		for deadline := time.Now().Add(2 * time.Minute); ; time.Sleep(20 * time.Millisecond) {
			sealedMu.Lock()
			c := sealedCount
			sealedMu.Unlock()
			if c >= k {
				return nil
			}
			if time.Now().After(deadline) {
				return fmt.Errorf("%d of %d records sealed after 2 minutes", c, k)
			}
		}
	}
	emit(lines[:n], 0)
	if err := waitSealed(uint64(n)); err != nil {
		return err
	}

	rcv := &benchReceiver{got: map[uint64]time.Time{}}
	dest, stop, err := benchDestination(name, dir, rcv, o.latency)
	if err != nil {
		return err
	}
	defer stop()
	if format == "" {
		format = map[string]string{"syslog": "cef", "hec": "ocsf", "webhook": "json"}[name]
	}
	// The forwarder connects as its own bus role, as serve's do.
	_, fjs, err := st.dial.Connect(bus.Forwarder(name))
	if err != nil {
		return err
	}
	f, err := siem.New(siem.Config{Name: name, JetStream: fjs, Destination: dest, Format: siem.Format(format), Batch: o.batch, Inflight: o.inflight, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		return err
	}
	fctx, stopForwarder := context.WithCancel(ctx)
	fdone := make(chan error, 1)
	cpu0 := selfCPU()
	start := time.Now()
	go func() { fdone <- f.Run(fctx) }()
	defer func() { stopForwarder(); <-fdone }()
	select {
	case <-rcv.expect(uint64(n)):
	case <-time.After(5 * time.Minute):
		return fmt.Errorf("the receiver got %d of %d records in 5 minutes", len(rcv.got), n)
	}
	drain := time.Since(start)
	cpu := selfCPU() - cpu0
	fmt.Fprintf(stdout, "  %-8s %-4s backlog  %8.0f events/s (%d in %v), CPU %.1f µs/event\n", name, format, float64(n)/drain.Seconds(), n, drain.Round(time.Millisecond),
		float64(cpu.Microseconds())/float64(n))

	// Live: sealing at the rate while the forwarder follows.
	liveFrom := time.Now()
	emit(lines[n:], rate)
	total := uint64(n + rate*seconds)
	if err := waitSealed(total); err != nil {
		return err
	}
	sealing := time.Since(liveFrom)
	rcv.mu.Lock()
	behind := total - uint64(len(rcv.got))
	rcv.mu.Unlock()
	select {
	case <-rcv.expect(total):
	case <-time.After(2 * time.Minute):
		rcv.mu.Lock()
		got := len(rcv.got)
		rcv.mu.Unlock()
		fmt.Fprintf(stdout, "  %-8s %-4s live     %8.0f events/s offered: %d records behind when sealing ended, still %d behind 2 minutes later\n", name, format,
			float64(rate*seconds)/sealing.Seconds(), behind, total-uint64(got))
		return nil
	}
	var lat []time.Duration
	rcv.mu.Lock()
	sealedMu.Lock()
	for idx := uint64(n); idx < total; idx++ {
		lat = append(lat, rcv.got[idx].Sub(sealedAt[idx]))
	}
	sealedMu.Unlock()
	rcv.mu.Unlock()
	slices.Sort(lat)
	fmt.Fprintf(stdout, "  %-8s %-4s live     %8.0f events/s offered for %v (%d behind when sealing ended): sealed→received p50 %v  p99 %v  max %v\n", name, format,
		float64(rate*seconds)/sealing.Seconds(), sealing.Round(time.Second), behind, pct(lat, 0.50).Round(time.Millisecond),
		pct(lat, 0.99).Round(time.Millisecond), lat[len(lat)-1].Round(time.Millisecond))
	return nil
}

// benchDestination starts a receiver on loopback for a forwarder kind and
// returns the destination pointing at it.
func benchDestination(name, dir string, rcv *benchReceiver, latency time.Duration) (siem.Destination, func(), error) {
	switch name {
	case "syslog":
		cert, pool, err := benchCert()
		if err != nil {
			return nil, nil, err
		}
		ln, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{Certificates: []tls.Certificate{cert}})
		if err != nil {
			return nil, nil, err
		}
		index := regexp.MustCompile(`index="(\d+)"`)
		go serveEach(ln, func(c net.Conn) {
			r := bufio.NewReaderSize(c, 256<<10)
			for {
				lenText, err := r.ReadString(' ')
				if err != nil {
					return
				}
				size, err := strconv.Atoi(strings.TrimSpace(lenText))
				if err != nil {
					return
				}
				msg := make([]byte, size)
				if _, err := io.ReadFull(r, msg); err != nil {
					return
				}
				if m := index.FindSubmatch(msg[:min(len(msg), 200)]); m != nil {
					i, _ := strconv.ParseUint(string(m[1]), 10, 64)
					rcv.received(i)
				}
			}
		})
		return &siem.Syslog{Addr: ln.Addr().String(), TLS: &tls.Config{RootCAs: pool}}, func() { ln.Close() }, nil
	case "hec", "webhook":
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, nil, err
		}
		var mu sync.Mutex
		pending := map[int64][]uint64{}
		var nextAck int64
		mux := http.NewServeMux()
		mux.HandleFunc("/services/collector/event", func(w http.ResponseWriter, r *http.Request) {
			time.Sleep(latency) // a remote collector's time to answer
			dec := json.NewDecoder(r.Body)
			var idx []uint64
			for dec.More() {
				var e struct {
					Fields struct {
						Index uint64 `json:"ledger_index"`
					} `json:"fields"`
				}
				if dec.Decode(&e) != nil {
					http.Error(w, `{"text":"Invalid data format","code":6}`, 400)
					return
				}
				idx = append(idx, e.Fields.Index)
			}
			mu.Lock()
			id := nextAck
			nextAck++
			pending[id] = idx
			mu.Unlock()
			fmt.Fprintf(w, `{"text":"Success","code":0,"ackId":%d}`, id)
		})
		mux.HandleFunc("/services/collector/ack", func(w http.ResponseWriter, r *http.Request) {
			var q struct{ Acks []int64 }
			json.NewDecoder(r.Body).Decode(&q)
			out := map[string]bool{}
			mu.Lock()
			for _, id := range q.Acks {
				for _, i := range pending[id] {
					rcv.received(i)
				}
				delete(pending, id)
				out[strconv.FormatInt(id, 10)] = true
			}
			mu.Unlock()
			json.NewEncoder(w).Encode(map[string]any{"acks": out})
		})
		secret := []byte("bench")
		mux.HandleFunc("/hook", func(w http.ResponseWriter, r *http.Request) {
			body, _ := io.ReadAll(r.Body)
			time.Sleep(latency) // a remote receiver's time to answer
			if err := siem.CheckSignature(secret, r.Header.Get(siem.HeaderTimestamp), r.Header.Get(siem.HeaderSignature), body, time.Now(), 5*time.Minute); err != nil {
				http.Error(w, err.Error(), 401)
				return
			}
			var batch []struct {
				Index uint64 `json:"index"`
			}
			json.Unmarshal(body, &batch)
			for _, b := range batch {
				rcv.received(b.Index)
			}
		})
		srv := &http.Server{Handler: mux}
		go srv.Serve(ln)
		url := "http://" + ln.Addr().String()
		if name == "hec" {
			return &siem.HEC{URL: url, Token: "bench", Ack: true}, func() { srv.Close() }, nil
		}
		return &siem.Webhook{URL: url + "/hook", Secret: secret}, func() { srv.Close() }, nil
	}
	return nil, nil, fmt.Errorf("unknown forwarder %q: want syslog, hec or webhook", name)
}

// benchCert is a self-signed certificate for 127.0.0.1 and a pool
// trusting it.
func benchCert() (tls.Certificate, *x509.CertPool, error) {
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "127.0.0.1"}, NotBefore: time.Now().Add(-time.Hour),
		NotAfter: time.Now().Add(time.Hour), IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, IsCA: true, BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return tls.Certificate{}, nil, err
	}
	c, _ := x509.ParseCertificate(der)
	pool := x509.NewCertPool()
	pool.AddCert(c)
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}, pool, nil
}
