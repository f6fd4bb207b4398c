package gateway

import (
	"context"
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/auditledger/auditledger/events"
	"github.com/auditledger/auditledger/events/detect"
)

// AuthMethod says how a gateway established an identity.
type AuthMethod string

// Authentication methods. A gateway with another names its own.
const (
	OIDCToken AuthMethod = "oidc-token" // a bearer token or a password that is one
	Password  AuthMethod = "password"   // a static development password
	// SSHCertificate: an OpenSSH user certificate signed by the gateway's
	// certificate authority.
	SSHCertificate AuthMethod = "ssh-certificate"
	// KubernetesExecToken: a token handed over by a kubectl
	// exec-credential plugin.
	KubernetesExecToken AuthMethod = "kubernetes-exec-credential"
)

// Identity is who a session acts as: user and groups (in the events'
// actor), the tenant, and how it was established.
type Identity struct {
	events.Actor
	// Tenant is the tenant of the session's events; empty means the
	// gateway's.
	Tenant string
	// Method, when set, is recorded in session.started as auth_method.
	Method AuthMethod
}

// Session is one client session of a gateway — a connection, an HTTP
// exchange, an SSH channel — and numbers its events from 1 (session_seq),
// so a gap shows. Record, RecordAsync and Hold are safe for concurrent
// use (a relay's two directions); the identity is set before they start.
type Session struct {
	g       *Gateway
	id      string
	seq     atomic.Uint64 // the last session_seq used
	who     Identity
	tenant  string
	target  events.Target
	started time.Time

	// scrubbed is the target as its events carry it (scrubTarget), made
	// once for the target it was made from: a session's events all name
	// the same target, and judging its names (a host that is an
	// address goes through the whole scrub) was a part of every event's
	// cost.
	scrubbed atomic.Pointer[targetScrub]

	jmu     sync.Mutex
	journal *journalEntry // open while the session is in the journal

	amu    sync.Mutex
	sealed *events.Actor // who.Actor as events carry it, once sealed

	cmu       sync.Mutex
	grant     string              // the access grant admitted on (Admit)
	cut       func(reason string) // ends the session when the grant does
	cutReason string              // why the core ended it
}

// Session opens a session on target. Until Authenticated, its events'
// actor is "unauthenticated", issued by the gateway's Name.
func (g *Gateway) Session(target events.Target) *Session {
	// Its events are named <id>.<seq>: an id a detector would find a
	// card number in would have the writer refuse all of them.
	s := &Session{g: g, id: detect.RandomHex(8), target: target, tenant: g.cfg.Tenant, started: time.Now()}
	s.who.Actor = g.Unauthenticated()
	return s
}

// Unauthenticated is the actor of events about a client that did not
// (or could not) authenticate.
func (g *Gateway) Unauthenticated() events.Actor {
	return events.Actor{Issuer: g.cfg.Name, Subject: "unauthenticated", Kind: events.Human}
}

// ID is the session's id (session_id in its events).
func (s *Session) ID() string { return s.id }

// Identity is who the session acts as.
func (s *Session) Identity() Identity { return s.who }

// Target is what the session acts upon.
func (s *Session) Target() events.Target { return s.target }

// SetTarget changes the target of the events that follow (a PostgreSQL
// session names its database after it opened).
func (s *Session) SetTarget(t events.Target) { s.target = t }

// Started is when the session was opened.
func (s *Session) Started() time.Time { return s.started }

// Authenticated sets who the session acts as, for every event after.
func (s *Session) Authenticated(id Identity) {
	s.who = id
	s.amu.Lock()
	s.sealed = nil
	s.amu.Unlock()
	if id.Tenant != "" {
		s.tenant = id.Tenant
	} else {
		s.tenant = s.g.cfg.Tenant
	}
}

// event builds the session's next event: envelope, session sequence, id
// ("<session id>.<seq>") and, while a policy is in force, the policy's
// reference in the payload (member "policy"). Every string of the
// payload passes the detectors (encodePayload), and each value replaced
// is recorded as its keyed digest under the tenant's search key. A key
// that cannot be read fails the event (wrapping ErrNotRecorded): the
// record would lack what finds it; failing open, it is recorded without
// the digests, and that is logged.
func (s *Session) event(ctx context.Context, t events.Type, payload map[string]any) (*events.Event, error) {
	if p := s.g.cfg.Policy; p != nil {
		payload["policy"] = p.Source.Ref()
	}
	key := s.g.searchKey(ctx, s.tenant)
	body, err := encodePayload(payload, key.digester())
	if err != nil {
		return nil, fmt.Errorf("%s payload: %w", t, err)
	}
	if err := key.failed(); err != nil {
		if !s.g.cfg.FailOpen {
			return nil, fmt.Errorf("%w: %s: the search digests of its replaced values: %w", ErrNotRecorded, t, err)
		}
		s.g.cfg.Logger.Warn("recorded without the search digests of its replaced values: the tenant's search key is unavailable",
			"type", t, "session_id", s.id, "tenant", s.tenant, "err", err)
	}
	// The target's names can come from the client (the database a
	// PostgreSQL client names, before it has authenticated): they pass
	// the detectors as the payload does.
	target := s.scrubbedTarget()
	ev := &events.Event{
		Version: events.Version, Type: t, Time: time.Now().UTC(), Tenant: s.tenant,
		Source: s.g.source, Actor: s.actor(ctx), Target: &target, Payload: body,
	}
	ev.SessionID, ev.SessionSeq = s.id, s.seq.Add(1)
	ev.ID = s.id + "." + strconv.FormatUint(ev.SessionSeq, 10)
	s.noteSeq(ev.SessionSeq)
	return ev, nil
}

// targetScrub is a target and scrubTarget of it.
type targetScrub struct{ raw, out events.Target }

// scrubbedTarget is scrubTarget(s.target), judged again only when the
// target is not the one last judged (SetTarget).
func (s *Session) scrubbedTarget() events.Target {
	t := s.target
	if c := s.scrubbed.Load(); c != nil && c.raw == t {
		return c.out
	}
	c := &targetScrub{raw: t, out: scrubTarget(t)}
	s.scrubbed.Store(c)
	return c.out
}

// FieldActorEmail names the sealed actor e-mail (the additional data of
// its sealing, docs/FORMAT.md §1.6).
const FieldActorEmail = "actor.email"

// actor is the session's actor as its events carry it: the e-mail sealed
// under the subject's key (Config.Keys), or left out when there is no key
// store or the key cannot be had — never in clear; then a personal
// subject or group as RecordedActor records it. It is made once per
// identity; a failed sealing or pseudonym is tried again at the next
// event.
func (s *Session) actor(ctx context.Context) events.Actor {
	s.amu.Lock()
	defer s.amu.Unlock()
	if s.sealed != nil {
		return *s.sealed
	}
	a, err := SealActor(ctx, s.g.cfg.Keys, s.tenant, s.who.Actor)
	if err != nil {
		s.g.cfg.Logger.Warn("actor recorded in part", "session_id", s.id, "err", err)
		return a
	}
	s.sealed = &a
	return a
}

// Record records one event and waits until the bus has stored it (or,
// failing open, this host's spool). It returns the event's id, set even
// when the record failed once the event was built: the event may have
// been stored although its answer never came. An error MUST be answered
// by refusing what the event describes (record or refuse); it wraps
// ErrNotRecorded.
func (s *Session) Record(ctx context.Context, t events.Type, payload map[string]any) (string, error) {
	ev, err := s.event(ctx, t, payload)
	if err != nil {
		return "", err
	}
	if err := s.g.emit(ctx, ev); err != nil {
		return ev.ID, fmt.Errorf("%w: %w", ErrNotRecorded, err)
	}
	return ev.ID, nil
}

// RecordOrLog records an event whose loss cannot stop anything (the
// session is over, or never began); a failure is logged loudly and
// counted.
func (s *Session) RecordOrLog(ctx context.Context, t events.Type, payload map[string]any) {
	if id, err := s.Record(ctx, t, payload); err != nil {
		s.g.cfg.Logger.Error("event not recorded", "type", t, "event_id", id, "session_id", s.id, "err", err)
	}
}

// RecordAsync records an event owed for something that already happened
// (a result, a mask) without waiting. It runs to the end whatever
// happens to ctx's cancellation; a failure is logged and counted. With
// an emitter that can (emitter.Emitter.EmitLater), the event starts no
// bus round trip of its own: it goes with the next record the gateway
// waits for (most often the session's next command) or, with none,
// after a few milliseconds.
func (s *Session) RecordAsync(ctx context.Context, t events.Type, payload map[string]any) {
	ev, err := s.event(ctx, t, payload)
	if err == nil {
		err = s.g.emitAsync(context.WithoutCancel(ctx), ev, false, func(err error) {
			if err != nil {
				s.g.cfg.Logger.Error("event not recorded", "type", t, "event_id", ev.ID, "session_id", s.id, "err", err)
			}
		})
	}
	if err != nil {
		s.g.cfg.Logger.Error("event not recorded", "type", t, "session_id", s.id, "err", err)
	}
}

// Command records a command (command.executed) as the durability mode
// says. BeforeForward: the record is stored when Command returns, and
// stored is nil. BeforeResponse: the record is on its way, and stored
// delivers the outcome; the command's answer MUST wait for it, and a
// failure MUST end the session. err (wrapping ErrNotRecorded once the
// event was built) means the command MUST NOT run; id may still be set,
// as in Record.
func (s *Session) Command(ctx context.Context, payload map[string]any) (id string, stored <-chan error, err error) {
	st := s.g.cfg.Stages
	t := st.Now()
	ev, err := s.event(ctx, events.CommandExecuted, payload)
	if err != nil {
		return "", nil, err
	}
	t = st.Since(StageEvent, t)
	ch := make(chan error, 1)
	err = s.g.emitAsync(ctx, ev, true, func(err error) {
		st.Since(StageStored, t)
		if err != nil {
			err = fmt.Errorf("%w: %w", ErrNotRecorded, err)
		}
		ch <- err
	})
	st.Since(StageEncode, t)
	if err != nil {
		return ev.ID, nil, fmt.Errorf("%w: %w", ErrNotRecorded, err)
	}
	if s.g.cfg.Durability == BeforeResponse {
		return ev.ID, ch, nil
	}
	// Before forwarding: stored when Command returns, or not at all as
	// far as the caller knows (the event may still be stored, under the
	// emitter's lifetime, and its id says which).
	select {
	case err = <-ch:
	case <-ctx.Done():
		err = fmt.Errorf("%w: %w", ErrNotRecorded, ctx.Err())
	}
	return ev.ID, nil, err
}

// Start records session.started, stored, and puts the session in the
// journal (with a StateDir), so that a crash before End is recorded as
// the session's end, lost. An error means the session MUST NOT begin.
// The payload gets auth_method when the identity names one.
func (s *Session) Start(ctx context.Context, payload map[string]any) error {
	if s.who.Method != "" {
		payload["auth_method"] = s.who.Method
	}
	if g := s.Grant(); g != "" {
		payload["access_id"] = g
	}
	if err := s.journalOpen(s.actor(ctx)); err != nil {
		return err
	}
	if _, err := s.Record(ctx, events.SessionStarted, payload); err != nil {
		s.journalClose()
		return err
	}
	return nil
}

// End records session.ended (a failure is logged: the session is over)
// and takes the session out of the journal. It runs to the end whatever
// happens to ctx's cancellation.
func (s *Session) End(ctx context.Context, payload map[string]any) {
	s.release()
	if g := s.Grant(); g != "" {
		payload["access_id"] = g
	}
	if why := s.CutReason(); why != "" {
		payload["end_reason"] = "access: " + why
	}
	s.RecordOrLog(context.WithoutCancel(ctx), events.SessionEnded, payload)
	s.journalClose()
}
