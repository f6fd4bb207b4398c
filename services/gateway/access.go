package gateway

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/auditledger/auditledger/events"
	"github.com/auditledger/auditledger/services/access"
)

// Just-in-time access: a session to a target an access rule names is
// admitted only inside a live grant for its identity (Admit), and the
// core ends every admitted session once its grant ends or is revoked, or
// once the grant state has not been heard for the watcher's limit: it
// calls the session's cut function, which the gateway gives in its
// protocol's terms (cancel a running statement and close; close the
// connection), and the session's end is recorded with the reason.

// ErrAccessDenied: the session needs a grant and has none (the error
// also wraps access.ErrNoGrant or access.ErrStale, saying why).
var ErrAccessDenied = errors.New("access refused")

// enforcer checks admitted sessions against their grants.
type enforcer struct {
	w    *access.Watcher
	tick time.Duration

	mu       sync.Mutex
	sessions map[*Session]string // session → grant id
	stop     chan struct{}
	done     chan struct{}
	once     sync.Once
}

func newEnforcer(w *access.Watcher, tick time.Duration) *enforcer {
	if tick == 0 {
		tick = 100 * time.Millisecond
	}
	e := &enforcer{w: w, tick: tick, sessions: map[*Session]string{}, stop: make(chan struct{}), done: make(chan struct{})}
	go e.run()
	return e
}

func (e *enforcer) run() {
	defer close(e.done)
	t := time.NewTicker(e.tick)
	defer t.Stop()
	for {
		select {
		case <-e.stop:
			return
		case <-t.C:
		case <-e.w.Changed():
		}
		e.check()
	}
}

// check cuts every session whose grant is no longer live.
func (e *enforcer) check() {
	e.mu.Lock()
	var cut []*Session
	var why []error
	for s, id := range e.sessions {
		if err := e.w.Check(id); err != nil {
			cut, why = append(cut, s), append(why, err)
			delete(e.sessions, s)
		}
	}
	e.mu.Unlock()
	for i, s := range cut {
		s.cutFor(why[i])
	}
}

func (e *enforcer) close() {
	e.once.Do(func() { close(e.stop) })
	<-e.done
}

// AccessRequired reports whether the session's identity needs a grant
// for its target (an access rule names the target and does not exempt
// the identity).
func (s *Session) AccessRequired() bool { return s.accessRule() != nil }

// accessRule is the access rule that requires the session's identity to
// hold a grant for its target, or nil.
func (s *Session) accessRule() *access.Rule {
	w := s.g.cfg.Access
	if w == nil {
		return nil
	}
	if r := w.Rules().For(s.target.Name); r != nil && r.Applies(s.who.Subject, s.who.Groups) {
		return r
	}
	return nil
}

// Admit lets the session begin if its target needs no grant, or inside a
// live grant for its identity; then, until End (or the returned release),
// the core calls cut once if the grant ends, is revoked or can no longer
// be heard, and End records why. cut MUST end the session in the
// protocol's terms and return promptly. A refusal is recorded
// (command.blocked, stored, naming the access rule that required the
// grant as a deny rule's refusal names its rule) and wraps
// ErrAccessDenied; the session MUST NOT begin. Admit after Authenticated.
func (s *Session) Admit(ctx context.Context, cut func(reason string)) (release func(), err error) {
	rule := s.accessRule()
	if rule == nil {
		return func() {}, nil
	}
	w := s.g.cfg.Access
	g, ferr := w.Find(s.tenant, s.actor(ctx), s.target.Name)
	if ferr != nil {
		err := fmt.Errorf("%w: %w", ErrAccessDenied, ferr)
		if _, rerr := s.Record(ctx, events.CommandBlocked, map[string]any{"reason": err.Error(), "access_required": true, "rule": rule.ID}); rerr != nil {
			return nil, errors.Join(err, rerr)
		}
		return nil, err
	}
	s.cmu.Lock()
	s.grant, s.cut = g.ID, cut
	s.cmu.Unlock()
	e := s.g.enforcer
	e.mu.Lock()
	e.sessions[s] = g.ID
	e.mu.Unlock()
	go w.MarkUsed(context.WithoutCancel(ctx), g.ID)
	return s.release, nil
}

// Grant is the id of the grant the session was admitted on, if any.
func (s *Session) Grant() string {
	s.cmu.Lock()
	defer s.cmu.Unlock()
	return s.grant
}

// CutReason is why the core ended the session, or "".
func (s *Session) CutReason() string {
	s.cmu.Lock()
	defer s.cmu.Unlock()
	return s.cutReason
}

// release stops watching the session's grant.
func (s *Session) release() {
	if e := s.g.enforcer; e != nil {
		e.mu.Lock()
		delete(e.sessions, s)
		e.mu.Unlock()
	}
}

func (s *Session) cutFor(why error) {
	s.cmu.Lock()
	cut := s.cut
	s.cut = nil
	s.cutReason = why.Error()
	s.cmu.Unlock()
	s.g.cfg.Logger.Info("session ended: its access grant is no longer live", "session_id", s.id, "access_id", s.Grant(), "err", why)
	if cut != nil {
		cut(why.Error())
	}
}
