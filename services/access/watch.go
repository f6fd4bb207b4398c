package access

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/auditledger/auditledger/events"
	"github.com/auditledger/auditledger/ledger"
	"github.com/auditledger/auditledger/ledger/bus/emitter"
	"github.com/auditledger/auditledger/services/identity"
)

// Errors of the gateways' side.
var (
	// ErrNoGrant: no live grant for this identity and target.
	ErrNoGrant = errors.New("no live access grant")
	// ErrStale: the gateway has not heard the grant state for longer than
	// its limit (a bus partition), and fails closed.
	ErrStale = errors.New("the access grant state has not been heard recently; failing closed")
)

// WatcherConfig configures a Watcher (a gateway's side).
type WatcherConfig struct {
	JetStream jetstream.JetStream // required
	// Verifier is the API's verifier key (approvals.vkey). Required: a
	// grant counts only if it verifies.
	Verifier *ledger.NoteVerifier
	Rules    Rules // the access rules the gateway enforces
	// Emitter and Source record a refused (forged) grant. Required.
	Emitter *emitter.Emitter
	Source  events.Source
	// Stale is how long the gateway may go without hearing the grant
	// state before it fails closed; zero means 30 s.
	Stale time.Duration
	// Poll is how often the bucket is asked whether it answers; zero
	// means Stale/4.
	Poll   time.Duration
	Now    func() time.Time // nil: time.Now (tests inject a clock)
	Logger *slog.Logger     // nil: slog.Default()
}

// Watcher follows the access bucket and keeps the verified grants in
// memory, so that admitting a session costs no bus round trip.
type Watcher struct {
	cfg WatcherConfig
	kv  jetstream.KeyValue

	mu      sync.Mutex
	grants  map[string]*Request // verified, with a live status
	heard   time.Time           // when the bucket last answered
	synced  bool                // the initial values are in
	changed chan struct{}
}

// NewWatcher opens the bucket; Run follows it.
func NewWatcher(ctx context.Context, cfg WatcherConfig) (*Watcher, error) {
	if cfg.JetStream == nil || cfg.Emitter == nil || cfg.Source.Kind == "" {
		return nil, errors.New("access: watcher: JetStream, Emitter and Source are required")
	}
	if cfg.Verifier == nil {
		return nil, fmt.Errorf("access: watcher: %w (gateways check grants with approvals.vkey, the API's verifier key)", ErrNoKey)
	}
	if cfg.Stale == 0 {
		cfg.Stale = 30 * time.Second
	}
	if cfg.Poll == 0 {
		cfg.Poll = cfg.Stale / 4
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	kv, err := OpenBucket(ctx, cfg.JetStream, false, 0)
	if err != nil {
		return nil, err
	}
	return &Watcher{cfg: cfg, kv: kv, grants: map[string]*Request{}, changed: make(chan struct{}, 1)}, nil
}

// Rules are the rules the watcher's gateway enforces.
func (w *Watcher) Rules() Rules { return w.cfg.Rules }

// Now is the watcher's clock.
func (w *Watcher) Now() time.Time { return w.cfg.Now() }

// Changed is signalled when a grant is revoked, removed or refused, so
// that sessions are checked at once.
func (w *Watcher) Changed() <-chan struct{} { return w.changed }

func (w *Watcher) signal() {
	select {
	case w.changed <- struct{}{}:
	default:
	}
}

// Run follows the bucket until ctx ends: it applies every change and
// asks the bucket every Poll whether it answers (the heartbeat the
// staleness limit is measured against). A watch that cannot start or ends
// (the bus unreachable) is started again every Poll; meanwhile the state
// goes stale and admitted sessions are ended. It returns ctx's error.
func (w *Watcher) Run(ctx context.Context) error {
	poll := time.NewTicker(w.cfg.Poll)
	defer poll.Stop()
	for {
		watch, err := w.kv.WatchAll(ctx)
		if err == nil {
			err = w.follow(ctx, watch, poll.C)
			watch.Stop()
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		w.cfg.Logger.Warn("access bucket watch ended; starting it again", "err", err)
		w.signal()
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-poll.C:
		}
	}
}

// follow applies one watch's updates until it ends. The initial values
// replace what the watcher held: a grant removed while no watch ran is
// dropped.
func (w *Watcher) follow(ctx context.Context, watch jetstream.KeyWatcher, poll <-chan time.Time) error {
	replayed := map[string]bool{}
	replaying := true
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case e, ok := <-watch.Updates():
			if !ok {
				return errors.New("the watch closed")
			}
			w.mu.Lock()
			w.heard = w.cfg.Now()
			if e == nil {
				for id := range w.grants {
					if !replayed[id] {
						delete(w.grants, id)
					}
				}
				w.synced, replaying = true, false
				w.mu.Unlock()
				w.signal()
				continue
			}
			if replaying {
				replayed[e.Key()] = true
			}
			w.mu.Unlock()
			w.apply(ctx, e)
		case <-poll:
			pctx, cancel := context.WithTimeout(ctx, w.cfg.Poll)
			_, err := w.kv.Status(pctx)
			cancel()
			if err == nil {
				w.mu.Lock()
				w.heard = w.cfg.Now()
				w.mu.Unlock()
			} else {
				w.signal() // sessions are checked against the staleness limit
			}
		}
	}
}

// Synced reports whether the watcher holds the bucket's state.
func (w *Watcher) Synced() bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.synced
}

func (w *Watcher) apply(ctx context.Context, e jetstream.KeyValueEntry) {
	id := e.Key()
	drop := func() {
		w.mu.Lock()
		_, had := w.grants[id]
		delete(w.grants, id)
		w.mu.Unlock()
		if had {
			w.signal()
		}
	}
	if e.Operation() != jetstream.KeyValuePut {
		drop() // deleted or purged: no grant (fail closed)
		return
	}
	var r Request
	if err := json.Unmarshal(e.Value(), &r); err != nil {
		w.cfg.Logger.Error("access bucket entry does not parse; no grant", "access_id", id, "err", err)
		drop()
		return
	}
	if !r.Status.Live() {
		drop()
		return
	}
	if err := Verify(w.cfg.Verifier, &r); err != nil || r.ID != id {
		if err == nil {
			err = fmt.Errorf("stored under key %s", id)
		}
		drop()
		w.refuse(ctx, &r, e.Revision(), err)
		return
	}
	w.mu.Lock()
	w.grants[id] = &r
	w.mu.Unlock()
}

// refuse records a grant that is not the API's (access.denied, by the
// system, naming what was claimed). Its id names the bucket revision, so
// every gateway's copy is one event.
func (w *Watcher) refuse(ctx context.Context, r *Request, rev uint64, why error) {
	w.cfg.Logger.Error("forged access grant refused", "access_id", r.ID, "target", r.Target, "err", why)
	reason := fmt.Sprintf("refused a grant not signed by the API (claimed %s for %s %s on %s): %v",
		r.Status, r.Requester.Issuer, r.Requester.Subject, r.Target, why)
	if len(reason) > 512 {
		reason = reason[:512]
	}
	if r.ID == "" {
		r.ID = "unknown"
	}
	if r.Tenant == "" {
		r.Tenant = "default"
	}
	ev, err := Event(r, events.AccessDenied, System, fmt.Sprintf("refused/%d", rev), w.cfg.Now(), w.cfg.Source,
		map[string]any{"reason": reason, "forged": true, "bucket_revision": rev})
	if err == nil {
		res, _ := w.cfg.Emitter.EmitAlone(context.WithoutCancel(ctx), ev)
		err = res.Stored(false)
	}
	if err != nil {
		w.cfg.Logger.Error("refused access grant not recorded", "access_id", r.ID, "err", err)
	}
}

// stale reports whether the state is too old to rely on, at now.
func (w *Watcher) stale(now time.Time) bool {
	return !w.synced || now.Sub(w.heard) > w.cfg.Stale
}

// Find returns the live grant at now for who (as events record it) on
// target in tenant, or an error wrapping ErrNoGrant or ErrStale that says
// why there is none.
func (w *Watcher) Find(tenant string, who events.Actor, target string) (*Request, error) {
	now := w.cfg.Now()
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.stale(now) {
		return nil, fmt.Errorf("%w (last heard %s ago, limit %s)", ErrStale, now.Sub(w.heard).Round(time.Millisecond), w.cfg.Stale)
	}
	var later *Request
	for _, r := range w.grants {
		if r.Tenant != tenant || r.Target != target || !identity.Same(r.Requester, who) {
			continue
		}
		if r.LiveAt(now) {
			return r, nil
		}
		if now.Before(r.NotBefore) {
			later = r
		}
	}
	if later != nil {
		return nil, fmt.Errorf("%w: grant %s for %s starts at %s", ErrNoGrant, later.ID, target, later.NotBefore.Format(time.RFC3339))
	}
	return nil, fmt.Errorf("%w for %s on %s: ask with `auditledger access request --target %s --for DURATION --reason TEXT`", ErrNoGrant, who.Subject, target, target)
}

// Check returns nil while grant id is live at the watcher's now, else
// why it is not.
func (w *Watcher) Check(id string) error {
	now := w.cfg.Now()
	w.mu.Lock()
	defer w.mu.Unlock()
	// What is known for certain comes first: the grant's end, then its
	// removal; then whether the state can still be relied on.
	r, ok := w.grants[id]
	switch {
	case ok && !now.Before(r.NotAfter):
		return fmt.Errorf("access grant %s ended at %s", id, r.NotAfter.Format(time.RFC3339))
	case !ok:
		return fmt.Errorf("access grant %s was revoked or withdrawn", id)
	case w.stale(now):
		return fmt.Errorf("%w (last heard %s ago, limit %s)", ErrStale, now.Sub(w.heard).Round(time.Millisecond), w.cfg.Stale)
	}
	return nil
}

// End is when grant id ends, if the watcher holds it.
func (w *Watcher) End(id string) (time.Time, bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	r, ok := w.grants[id]
	if !ok {
		return time.Time{}, false
	}
	return r.NotAfter, true
}

// MarkUsed marks grant id used in the bucket (best effort).
func (w *Watcher) MarkUsed(ctx context.Context, id string) {
	if err := MarkUsed(ctx, w.kv, id, w.cfg.Now()); err != nil {
		w.cfg.Logger.Debug("access grant not marked used", "access_id", id, "err", err)
	}
}
