package emitter

import (
	"errors"
	"fmt"
	"regexp"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
)

// RefusedError: the bus refused to let this emitter's credentials
// publish on Subject (a NATS permissions violation), or to receive the
// acknowledgements on their reply inbox (Subject is then that inbox).
// It is final: trying again, or spooling, cannot store the event while
// the credentials stay what they are, so the event is reported failed at
// once, without retries.
type RefusedError struct {
	Subject string
	// Inbox: the refusal was of the reply inbox, not of Subject's
	// publish: no publish on this connection can be acknowledged.
	Inbox bool
	Err   error // wraps nats.ErrPermissionViolation
}

func (e *RefusedError) Error() string {
	if e.Inbox {
		return fmt.Sprintf("emitter: the bus refused these credentials the reply inbox %s, so no publish can be acknowledged (the inbox prefix must be the bus role's own): %v", e.Subject, e.Err)
	}
	return fmt.Sprintf("emitter: the bus refused these credentials publishing on %s: they lack publish rights on that subject: %v", e.Subject, e.Err)
}

func (e *RefusedError) Unwrap() error { return e.Err }

var (
	publishViolation   = regexp.MustCompile(`(?i)publish to "([^"]+)"`)
	subscribeViolation = regexp.MustCompile(`(?i)subscription to "([^"]+)"`)
)

// refusalMemory is how long a refused subject is refused without asking
// the bus again: an operator may correct the permissions meanwhile.
const refusalMemory = time.Minute

// refusals tracks the permission violations the bus reported on this
// emitter's connection. NATS reports a refused publish only to the
// connection's error handler, never to the publish: without this, each
// refused event would wait out every acknowledgement timeout and retry.
type refusals struct {
	mu      sync.Mutex
	byPub   map[string]refusal // subject → when and why
	inbox   refusal            // the reply inbox, if refused
	changed chan struct{}      // closed, and replaced, on each refusal
}

type refusal struct {
	at  time.Time
	err *RefusedError
}

// watchRefusals chains onto nc's error handler, so the emitter learns of
// a refusal as soon as the bus reports it; the previous handler (the
// process's logging) still runs.
func (r *refusals) watch(nc *nats.Conn) {
	r.changed = make(chan struct{})
	r.byPub = map[string]refusal{}
	if nc == nil {
		return
	}
	inboxPrefix := nc.Opts.InboxPrefix
	if inboxPrefix == "" {
		inboxPrefix = nats.InboxPrefix
	}
	inboxPrefix = strings.TrimSuffix(inboxPrefix, ".") + "."
	prev := nc.ErrorHandler()
	nc.SetErrorHandler(func(c *nats.Conn, s *nats.Subscription, err error) {
		r.note(err, inboxPrefix)
		if prev != nil {
			prev(c, s, err)
		}
	})
}

func (r *refusals) note(err error, inboxPrefix string) {
	if !errors.Is(err, nats.ErrPermissionViolation) {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	now := time.Now()
	if m := publishViolation.FindStringSubmatch(err.Error()); m != nil {
		r.byPub[m[1]] = refusal{now, &RefusedError{Subject: m[1], Err: err}}
	} else if m := subscribeViolation.FindStringSubmatch(err.Error()); m != nil && strings.HasPrefix(m[1], inboxPrefix) {
		r.inbox = refusal{now, &RefusedError{Subject: m[1], Inbox: true, Err: err}}
	} else {
		return
	}
	close(r.changed)
	r.changed = make(chan struct{})
}

// of returns the refusal that stops a publish on subject, if any, and a
// channel closed at the next refusal.
func (r *refusals) of(subject string) (*RefusedError, <-chan struct{}) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.inbox.err != nil && time.Since(r.inbox.at) < refusalMemory {
		return r.inbox.err, r.changed
	}
	if f, ok := r.byPub[subject]; ok && time.Since(f.at) < refusalMemory {
		return f.err, r.changed
	}
	return nil, r.changed
}
