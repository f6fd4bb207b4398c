// Package emitter is the library proxies use to publish audit events onto
// NATS JetStream. An event counts as emitted only once JetStream has
// acknowledged storing it; publishing is asynchronous with a bound on the
// events in flight, and failed publishes are retried with backoff. The
// event id is sent as Nats-Msg-Id, so a retry after a lost acknowledgement
// is stored once.
package emitter

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/auditledger/auditledger/events"
)

// Config configures an Emitter.
type Config struct {
	JetStream jetstream.JetStream // required
	// MaxInFlight bounds publishes awaiting acknowledgement; zero means 4096.
	MaxInFlight int
	// Retries per event before Emit gives up; zero means 5. Between tries
	// the wait doubles from 50ms.
	Retries int
}

// Emitter publishes events. It is safe for concurrent use.
type Emitter struct {
	cfg  Config
	slot chan struct{}
	wg   sync.WaitGroup
}

// New returns an Emitter.
func New(cfg Config) (*Emitter, error) {
	if cfg.JetStream == nil {
		return nil, errors.New("emitter: Config.JetStream is required")
	}
	if cfg.MaxInFlight <= 0 {
		cfg.MaxInFlight = 4096
	}
	if cfg.Retries <= 0 {
		cfg.Retries = 5
	}
	return &Emitter{cfg: cfg, slot: make(chan struct{}, cfg.MaxInFlight)}, nil
}

// Result is the outcome of one asynchronous publish.
type Result struct {
	ID  string
	Seq uint64 // stream sequence, when stored
	Err error
}

// EmitRaw publishes an encoded event after validating it, and calls done
// (from another goroutine) once JetStream has stored it or every retry
// failed. It blocks while MaxInFlight publishes are pending.
func (e *Emitter) EmitRaw(ctx context.Context, raw []byte, done func(Result)) error {
	ev, err := events.Parse(raw)
	if err != nil {
		return err
	}
	select {
	case e.slot <- struct{}{}:
	case <-ctx.Done():
		return ctx.Err()
	}
	e.wg.Add(1)
	go func() {
		defer e.wg.Done()
		defer func() { <-e.slot }()
		seq, err := e.publish(ctx, ev, raw)
		done(Result{ID: ev.ID, Seq: seq, Err: err})
	}()
	return nil
}

// Emit publishes ev and waits until JetStream has stored it.
func (e *Emitter) Emit(ctx context.Context, ev *events.Event) (uint64, error) {
	raw, err := ev.Marshal()
	if err != nil {
		return 0, err
	}
	return e.publish(ctx, ev, raw)
}

func (e *Emitter) publish(ctx context.Context, ev *events.Event, raw []byte) (uint64, error) {
	msg := nats.NewMsg(events.Subject(ev.Tenant, ev.Type))
	msg.Data = raw
	msg.Header.Set(nats.MsgIdHdr, ev.ID)
	wait := 50 * time.Millisecond
	var last error
	for try := 0; try <= e.cfg.Retries; try++ {
		if try > 0 {
			t := time.NewTimer(wait)
			select {
			case <-t.C:
			case <-ctx.Done():
				t.Stop()
				return 0, ctx.Err()
			}
			wait *= 2
		}
		f, err := e.cfg.JetStream.PublishMsgAsync(msg)
		if err != nil {
			last = err
			continue
		}
		select {
		case ack := <-f.Ok():
			return ack.Sequence, nil
		case err := <-f.Err():
			last = err
		case <-ctx.Done():
			return 0, ctx.Err()
		}
	}
	return 0, fmt.Errorf("emitter: event %s not stored after %d tries: %w", ev.ID, e.cfg.Retries+1, last)
}

// Wait blocks until every EmitRaw publish has finished.
func (e *Emitter) Wait() { e.wg.Wait() }

// Session numbers the events of one session from 1, so a gap in a
// session's sequence is visible in the ledger.
type Session struct {
	ID   string
	mu   sync.Mutex
	next uint64
}

// Next stamps ev with the session id and its next sequence number.
func (s *Session) Next(ev *events.Event) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.next++
	ev.SessionID, ev.SessionSeq = s.ID, s.next
}
