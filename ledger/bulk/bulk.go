// Package bulk reads the bulk pieces a session's session.output events
// name (docs/FORMAT.md §1.7): it finds a piece's object in the store
// (bulk/<name>) or, while the writer has not yet copied it there, on
// the bus (AUDIT_BULK), checks it against the event's name and size, and
// opens it under its subject's key at its place. What the detectors find
// in the bytes is replaced by the services that show them
// (services/gateway BulkText), never here.
package bulk

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/auditledger/auditledger/events"
	"github.com/auditledger/auditledger/ledger"
	"github.com/auditledger/auditledger/ledger/bus"
	"github.com/auditledger/auditledger/ledger/piikeys"
)

// Ref is the bulk member of a session.output event.
type Ref struct {
	Object    string `json:"object"`
	Pseudonym string `json:"pseudonym"`
	Size      int    `json:"size"`
}

// Piece is a bulk piece as its event names it, at its place.
type Piece struct {
	piikeys.BulkPlace
	Ref
	// Bytes is the event's bytes: the stream's bytes the piece holds.
	Bytes int
	// Event is the id of the event that names the piece.
	Event string
}

func (p Piece) String() string {
	return fmt.Sprintf("bulk piece %s (event %s: %s of session %s at offset %d)", p.Object, p.Event, p.Stream, p.Session, p.Offset)
}

// Of returns the piece a session.output event names; ok is false for a
// chunk that names none (text or binary). A bulk member that breaks
// docs/FORMAT.md §1.7 is an error naming the event. It reads the event
// as the writer and verify do (events.BulkOf, member names matched
// exactly): a piece a reader plays is one the writer checked and copied.
func Of(e *events.Event) (p Piece, ok bool, err error) {
	b, err := events.BulkOf(e)
	if err != nil {
		return Piece{}, false, fmt.Errorf("event %s: %w", e.ID, err)
	}
	if b == nil {
		return Piece{}, false, nil
	}
	return Piece{BulkPlace: piikeys.BulkPlace{Tenant: e.Tenant, Session: e.SessionID, Stream: b.Stream, Offset: b.Offset},
		Ref: Ref{Object: b.Object, Pseudonym: b.Pseudonym, Size: int(b.Size)}, Bytes: int(b.Bytes), Event: e.ID}, true, nil
}

// Name is the piece's object name in a store.
func Name(object string) string { return "bulk/" + object }

// Errors of reading a piece. ErrErased and ErrNoKeys are states a reader
// shows; the others are failures that name the piece.
var (
	// ErrErased: the subject's key was destroyed (piikeys.ErrErased).
	ErrErased = piikeys.ErrErased
	// ErrNoKeys: the reader has no key store to open pieces with.
	ErrNoKeys = errors.New("no key store to open bulk pieces with")
	// ErrMissing: neither the store nor the bus holds the piece.
	ErrMissing = errors.New("bulk piece not found")
	// ErrDamaged: the object is not the one the event names (its
	// SHA-256 or size differ), or it does not open at its place.
	ErrDamaged = errors.New("bulk piece damaged")
)

// Objects is where pieces are stored: a segment store (ledger.SegmentStore)
// does.
type Objects interface {
	// Get returns the object's content, or an error wrapping
	// ledger.ErrNotExist when there is none.
	Get(ctx context.Context, name string) ([]byte, error)
}

// Reader gets and opens pieces. Store and Bus may each be nil (the
// piece is then looked for in the other only); Keys nil opens nothing
// (ErrNoKeys).
type Reader struct {
	Store Objects
	Bus   jetstream.JetStream
	Keys  *piikeys.Store
}

// Object returns the piece's object, checked against its name and size:
// from the store, else from AUDIT_BULK.
func (r *Reader) Object(ctx context.Context, p Piece) ([]byte, error) {
	var where []string
	if r.Store != nil {
		b, err := r.Store.Get(ctx, Name(p.Object))
		if err == nil {
			return b, Check(p, b, "the store's "+Name(p.Object))
		}
		if !errors.Is(err, ledger.ErrNotExist) {
			return nil, fmt.Errorf("%s: reading %s from the store: %w", p, Name(p.Object), err)
		}
		where = append(where, "the store holds no "+Name(p.Object))
	}
	if r.Bus != nil {
		b, err := FromBus(ctx, r.Bus.Conn(), p)
		if err == nil {
			return b, Check(p, b, bus.BulkStream+"'s message")
		}
		if err != ErrMissing {
			return nil, err // failed, or no stream at all
		}
		if r.Store != nil {
			// The writer may have copied it to the store, then deleted
			// it from the bus, between the two looks.
			if b, err := r.Store.Get(ctx, Name(p.Object)); err == nil {
				return b, Check(p, b, "the store's "+Name(p.Object))
			}
		}
		where = append(where, bus.BulkStream+" holds no "+subject(p)+" (the writer deletes a piece there once it copied it to the store)")
	}
	if len(where) == 0 {
		return nil, fmt.Errorf("%w: %s: this reader has neither the store nor the bus to read it from", ErrMissing, p)
	}
	return nil, fmt.Errorf("%w: %s: %s", ErrMissing, p, strings.Join(where, "; "))
}

// subject is where a producer published the piece: under its own token,
// which any will do, the name binding the bytes (Check).
func subject(p Piece) string { return strings.TrimSuffix(bus.BulkSubjects, ">") + "*." + p.Object }

// Check reports whether object is the piece its event names: SHA-256
// the name, and the size. from says where it was read.
func Check(p Piece, object []byte, from string) error {
	if len(object) != p.Size {
		return fmt.Errorf("%w: %s: %s is %d bytes, the event says %d", ErrDamaged, p, from, len(object), p.Size)
	}
	if name := piikeys.BulkName(object); name != p.Object {
		return fmt.Errorf("%w: %s: %s has SHA-256 %s, not its name", ErrDamaged, p, from, name)
	}
	return nil
}

// FromBus reads the piece's message from AUDIT_BULK: the last message on
// audit.bulk.*.<name>, whichever producer's token it has (the name binds
// its bytes: the caller checks them). ErrMissing when there is none. It
// asks the stream (STREAM.MSG.GET), which needs no direct get allowed.
func FromBus(ctx context.Context, nc *nats.Conn, p Piece) ([]byte, error) {
	subj := subject(p)
	req, _ := json.Marshal(map[string]string{"last_by_subj": subj})
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
	}
	msg, err := nc.RequestWithContext(ctx, "$JS.API.STREAM.MSG.GET."+bus.BulkStream, req)
	if errors.Is(err, context.DeadlineExceeded) {
		// A request the bus's permissions refuse is never answered.
		return nil, fmt.Errorf("%s: reading %s from %s: no answer (may this process's bus principal get its messages, $JS.API.STREAM.MSG.GET.%s?): %w",
			p, subj, bus.BulkStream, bus.BulkStream, err)
	}
	if err != nil {
		return nil, fmt.Errorf("%s: reading %s from %s: %w", p, subj, bus.BulkStream, err)
	}
	var res struct {
		Message *struct {
			Subject string `json:"subject"`
			Data    []byte `json:"data"`
		} `json:"message"`
		Error *struct {
			Code        int    `json:"code"`
			ErrCode     int    `json:"err_code"`
			Description string `json:"description"`
		} `json:"error"`
	}
	if err := json.Unmarshal(msg.Data, &res); err != nil {
		return nil, fmt.Errorf("%s: reading %s from %s: the answer: %w", p, subj, bus.BulkStream, err)
	}
	switch {
	case res.Error != nil && res.Error.ErrCode == 10059: // stream not found
		return nil, fmt.Errorf("%w: %s: the bus has no stream %s", ErrMissing, p, bus.BulkStream)
	case res.Error != nil && res.Error.Code == 404:
		return nil, ErrMissing
	case res.Error != nil:
		return nil, fmt.Errorf("%s: reading %s from %s: %s (code %d)", p, subj, bus.BulkStream, res.Error.Description, res.Error.Code)
	case res.Message == nil:
		return nil, fmt.Errorf("%s: reading %s from %s: an answer without a message", p, subj, bus.BulkStream)
	}
	return res.Message.Data, nil
}

// Open returns the bytes the piece holds, as the stream carried them:
// ErrNoKeys without a key store, ErrErased once its subject was erased,
// ErrMissing or ErrDamaged (naming the piece) when it cannot be read.
// Nothing here replaces what the detectors find: show them through
// services/gateway BulkText.
func (r *Reader) Open(ctx context.Context, p Piece) ([]byte, error) {
	object, err := r.Object(ctx, p)
	if err != nil {
		return nil, err
	}
	return OpenObject(ctx, r.Keys, p, object)
}

// OpenObject opens object, read elsewhere (a tool that read the store
// itself), as Open does: it is checked against the piece first.
func OpenObject(ctx context.Context, keys *piikeys.Store, p Piece, object []byte) ([]byte, error) {
	if err := Check(p, object, "the object"); err != nil {
		return nil, err
	}
	if keys == nil {
		return nil, ErrNoKeys
	}
	b, err := keys.OpenBulk(ctx, p.Pseudonym, p.BulkPlace, object)
	switch {
	case errors.Is(err, piikeys.ErrErased):
		return nil, err
	case errors.Is(err, piikeys.ErrBulkDamaged):
		return nil, fmt.Errorf("%w: %s: %v", ErrDamaged, p, err)
	case err != nil:
		return nil, fmt.Errorf("%s: %w", p, err)
	}
	if len(b) != p.Bytes {
		return nil, fmt.Errorf("%w: %s: opened to %d bytes, the event says %d", ErrDamaged, p, len(b), p.Bytes)
	}
	return b, nil
}
