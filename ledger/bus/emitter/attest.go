package emitter

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"sync"
	"time"

	"github.com/go-json-experiment/json/jsontext"

	"github.com/auditledger/auditledger/events"
	"github.com/auditledger/auditledger/events/detect"
	"github.com/auditledger/auditledger/ledger/bus"
)

// Attester signs, as one producer, the digests of a batch of its events:
// one signature covers many events, so a producer's events are checkable
// offline for a fraction of the cost of signing each (ledger.Attester,
// docs/FORMAT.md "Producer attestations").
type Attester interface {
	// Name is the producer's name: the source instance of its events.
	Name() string
	// Attest returns the payload of a producer.attested event covering
	// digests, the SHA-256 of each event as published; boot names this
	// run of the producer and seq counts its attestations from 1.
	Attest(boot string, seq uint64, digests [][sha256.Size]byte) (json.RawMessage, error)
}

// attestation collects the digests of the events emitted since the last
// attestation and emits one producer.attested event per batch. An
// attestation the bus does not store is sent again, with backoff, until
// Close — which keeps trying up to its deadline, then counts and logs what
// is left (Stats.AttestationsLost) — so a refusal that passes costs no
// genuine event its attestation.
type attestation struct {
	e      *Emitter
	a      Attester
	every  int
	boot   string
	mu     sync.Mutex
	seq    uint64
	batch  [][sha256.Size]byte
	ticker *time.Ticker
	done   chan struct{}
	wg     sync.WaitGroup
	once   sync.Once
	// Attestations not stored yet: to send again from next on, and the
	// ones awaiting their result. After Close's deadline (closing), a
	// failure is counted lost instead.
	failed   []*events.Event
	inflight int
	backoff  time.Duration
	next     time.Time
	closing  bool
	changed  chan struct{}
}

func newAttestation(e *Emitter, a Attester, every int, interval time.Duration) *attestation {
	at := &attestation{e: e, a: a, every: every, boot: detect.RandomHex(8), ticker: time.NewTicker(interval),
		done: make(chan struct{}), changed: make(chan struct{}, 1)}
	at.wg.Go(func() {
		for {
			select {
			case <-at.done:
				return
			case <-at.ticker.C:
				at.flush()
				at.retry(at.e.life)
			}
		}
	})
	return at
}

// add notes an event about to be published; a full batch is attested.
func (at *attestation) add(ev *events.Event, raw []byte) {
	if ev.Type == events.ProducerAttested {
		return
	}
	at.mu.Lock()
	at.batch = append(at.batch, sha256.Sum256(raw))
	full := len(at.batch) >= at.every
	at.mu.Unlock()
	if full {
		at.flush()
	}
}

// flush attests the events noted so far, if any.
func (at *attestation) flush() {
	at.mu.Lock()
	if len(at.batch) == 0 {
		at.mu.Unlock()
		return
	}
	batch := at.batch
	at.batch = nil
	at.seq++
	seq := at.seq
	at.mu.Unlock()
	payload, err := at.a.Attest(at.boot, seq, batch)
	if err != nil {
		// Signing failed: nothing to send again.
		at.e.Stats.AttestationsLost.Add(1)
		at.e.cfg.Logger.Error("producer attestation not signed: its events stay unattested", "seq", seq, "events", len(batch), "err", err)
		return
	}
	at.send(&events.Event{
		Version: events.Version, ID: fmt.Sprintf("attest/%s/%s/%d", bus.ProducerToken(at.a.Name()), at.boot, seq),
		Type: events.ProducerAttested, Time: time.Now().UTC(), Tenant: AttestationTenant,
		Source:  events.Source{Kind: "producer", Instance: at.a.Name()},
		Actor:   events.Actor{Issuer: "auditledger", Subject: at.a.Name(), Kind: events.Machine},
		Payload: jsontext.Value(payload),
	})
}

// send emits one attestation, in the queue with the events.
func (at *attestation) send(ev *events.Event) {
	at.mu.Lock()
	at.inflight++
	at.mu.Unlock()
	if err := at.e.EmitAsync(context.Background(), ev, func(r Result) { at.result(ev, r.Err, true) }); err != nil {
		at.result(ev, err, true)
	}
}

// result notes how sending ev ended.
func (at *attestation) result(ev *events.Event, err error, queued bool) {
	at.mu.Lock()
	if queued {
		at.inflight--
	}
	switch {
	case err == nil:
		at.backoff = 0
	case at.closing:
		at.e.Stats.AttestationsLost.Add(1)
		at.e.cfg.Logger.Error("producer attestation not recorded at close: its events stay unattested", "event_id", ev.ID, "err", err)
	default:
		if at.backoff == 0 {
			at.e.cfg.Logger.Warn("producer attestation not stored yet: sending it again until the bus takes it", "event_id", ev.ID, "err", err)
		}
		at.backoff = min(max(2*at.backoff, 100*time.Millisecond), 5*time.Second)
		at.next = time.Now().Add(at.backoff)
		at.failed = append(at.failed, ev)
	}
	at.mu.Unlock()
	select {
	case at.changed <- struct{}{}:
	default:
	}
}

// retry sends the failed attestations again once their backoff is over,
// one try each, outside the queue: a bus that keeps refusing them must
// not hold up the events behind them. It stops at the first refusal.
func (at *attestation) retry(ctx context.Context) {
	at.mu.Lock()
	if len(at.failed) == 0 || time.Now().Before(at.next) {
		at.mu.Unlock()
		return
	}
	again := at.failed
	at.failed = nil
	at.mu.Unlock()
	for i, ev := range again {
		raw, err := ev.Marshal()
		if err == nil {
			_, _, err = at.e.publishMsg(ctx, at.e.message(ev, raw), 0, "attestation "+ev.ID)
		}
		if err != nil {
			at.result(ev, err, false)
			at.mu.Lock()
			at.failed = append(at.failed, again[i+1:]...)
			at.mu.Unlock()
			return
		}
		at.result(ev, nil, false)
	}
}

// close attests what is left, stops the timer, and keeps sending what the
// bus has not stored for up to wait; what is left then is counted lost.
func (at *attestation) close(wait time.Duration) {
	at.once.Do(func() {
		at.ticker.Stop()
		close(at.done)
		at.wg.Wait()
		at.flush()
		deadline := time.NewTimer(wait)
		defer deadline.Stop()
		ctx, cancel := context.WithTimeout(at.e.life, wait)
		defer cancel()
		for {
			at.retry(ctx)
			at.mu.Lock()
			pending := at.inflight + len(at.failed)
			until := time.Until(at.next)
			if len(at.failed) == 0 {
				until = wait // only results to wait for
			}
			at.mu.Unlock()
			if pending == 0 {
				return
			}
			t := time.NewTimer(max(until, time.Millisecond))
			select {
			case <-at.changed:
			case <-t.C:
			case <-deadline.C:
				t.Stop()
				at.mu.Lock()
				at.closing = true
				lost := at.failed
				at.failed = nil
				at.mu.Unlock()
				for _, ev := range lost {
					at.e.Stats.AttestationsLost.Add(1)
					at.e.cfg.Logger.Error("producer attestation not recorded at close: its events stay unattested", "event_id", ev.ID)
				}
				return
			}
			t.Stop()
		}
	})
}

// AttestationTenant is the tenant of producer.attested events: they
// belong to the producer, not to one tenant.
const AttestationTenant = "_producers"
