package emitter

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"sync"
	"time"

	"github.com/go-json-experiment/json/jsontext"

	"github.com/auditledger/auditledger/events"
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
// attestation and emits one producer.attested event per batch.
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
}

func newAttestation(e *Emitter, a Attester, every int, interval time.Duration) *attestation {
	var b [8]byte
	rand.Read(b[:])
	at := &attestation{e: e, a: a, every: every, boot: hex.EncodeToString(b[:]), ticker: time.NewTicker(interval), done: make(chan struct{})}
	at.wg.Go(func() {
		for {
			select {
			case <-at.done:
				return
			case <-at.ticker.C:
				at.flush()
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
	if err == nil {
		ev := &events.Event{
			Version: events.Version, ID: fmt.Sprintf("attest/%s/%s/%d", events.ProducerToken(at.a.Name()), at.boot, seq),
			Type: events.ProducerAttested, Time: time.Now().UTC(), Tenant: AttestationTenant,
			Source:  events.Source{Kind: "producer", Instance: at.a.Name()},
			Actor:   events.Actor{Issuer: "auditledger", Subject: at.a.Name(), Kind: events.Machine},
			Payload: jsontext.Value(payload),
		}
		err = at.e.EmitAsync(context.Background(), ev, func(r Result) {
			if r.Err != nil {
				at.e.cfg.Logger.Error("producer attestation not recorded: its events stay unattested", "event_id", r.ID, "events", len(batch), "err", r.Err)
			}
		})
	}
	if err != nil {
		at.e.cfg.Logger.Error("producer attestation not recorded: its events stay unattested", "seq", seq, "events", len(batch), "err", err)
	}
}

// close attests what is left and stops the timer.
func (at *attestation) close() {
	at.once.Do(func() {
		at.ticker.Stop()
		close(at.done)
		at.wg.Wait()
		at.flush()
	})
}

// AttestationTenant is the tenant of producer.attested events: they
// belong to the producer, not to one tenant.
const AttestationTenant = "_producers"
