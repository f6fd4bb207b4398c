// Package bulktest records sessions with bulk pieces (docs/FORMAT.md
// §1.7) for tests of their readers: each piece sealed with the real key
// store, put where the writer and the gateway put them (the store as
// bulk/<name>, AUDIT_BULK), and named by a session.output event.
package bulktest

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"maps"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/auditledger/auditledger/events"
	"github.com/auditledger/auditledger/ledger"
	"github.com/auditledger/auditledger/ledger/bulk"
	"github.com/auditledger/auditledger/ledger/bus"
	"github.com/auditledger/auditledger/ledger/piikeys"
)

// EnsureStream creates AUDIT_BULK when the bus has none yet.
func EnsureStream(t testing.TB, js jetstream.JetStream) {
	t.Helper()
	if _, err := js.Stream(t.Context(), bus.BulkStream); err == nil {
		return
	}
	if _, err := js.CreateStream(t.Context(), jetstream.StreamConfig{Name: bus.BulkStream, Subjects: []string{bus.BulkSubjects},
		MaxAge: 7 * 24 * time.Hour, AllowDirect: true}); err != nil {
		t.Fatal(err)
	}
}

// Where a piece is put.
type Where int

const (
	InStore Where = 1 << iota // bulk/<name> in the store (the writer copied it)
	OnBus                     // AUDIT_BULK (the gateway published it)
)

// Session records one session's events.
type Session struct {
	t       testing.TB
	Keys    *piikeys.Store
	JS      jetstream.JetStream
	Store   ledger.SegmentStore
	Tenant  string
	ID      string
	Source  events.Source
	Issuer  string
	Subject string
	Events  []*events.Event
	start   time.Time
	offsets map[string]int64
}

// New starts session id of tenant (a pty of cols x rows, 0: none) by
// the subject alice of https://idp.example.
func New(t testing.TB, keys *piikeys.Store, js jetstream.JetStream, store ledger.SegmentStore, tenant, id string, cols, rows int) *Session {
	s := &Session{t: t, Keys: keys, JS: js, Store: store, Tenant: tenant, ID: id, Source: events.Source{Kind: "ssh-proxy", Instance: "gw-1"},
		Issuer: "https://idp.example", Subject: "alice", start: time.Now().UTC().Truncate(time.Second), offsets: map[string]int64{}}
	p := map[string]any{}
	if cols > 0 {
		p["pty"] = map[string]any{"term": "xterm", "cols": cols, "rows": rows}
	}
	s.add(events.SessionStarted, p)
	return s
}

func (s *Session) add(typ events.Type, payload map[string]any) *events.Event {
	b, err := json.Marshal(payload)
	if err != nil {
		s.t.Fatal(err)
	}
	seq := uint64(len(s.Events) + 1)
	e := &events.Event{Version: events.Version, ID: fmt.Sprintf("%s-e%d", s.ID, seq), Type: typ, Tenant: s.Tenant,
		Time: s.start.Add(time.Duration(seq) * 100 * time.Millisecond), Source: s.Source,
		Actor:     events.Actor{Kind: events.Human, Subject: "u-alice", Issuer: s.Issuer},
		SessionID: s.ID, SessionSeq: seq, Payload: b}
	s.Events = append(s.Events, e)
	return e
}

// Text records b in stream as a text chunk (its data as recorded).
func (s *Session) Text(stream string, b []byte) *events.Event {
	return s.TextWith(stream, b, len(b), nil)
}

// TextWith records data in stream as a text chunk standing for n bytes
// of the stream, with the payload's other members.
func (s *Session) TextWith(stream string, data []byte, n int, members map[string]any) *events.Event {
	off := s.offsets[stream]
	s.offsets[stream] += int64(n)
	p := map[string]any{"stream": stream, "offset": off, "bytes": n, "data": base64.StdEncoding.EncodeToString(data)}
	maps.Copy(p, members)
	return s.add(events.SessionOutput, p)
}

// Piece records b in stream as a bulk piece, put where says, and
// returns its event and object.
func (s *Session) Piece(stream string, b []byte, where Where) (*events.Event, []byte) {
	s.t.Helper()
	off := s.offsets[stream]
	s.offsets[stream] += int64(len(b))
	place := piikeys.BulkPlace{Tenant: s.Tenant, Session: s.ID, Stream: stream, Offset: off}
	object, pseudonym, err := s.Keys.SealBulk(s.t.Context(), s.Issuer, s.Subject, place, b)
	if err != nil {
		s.t.Fatal(err)
	}
	name := piikeys.BulkName(object)
	if where&InStore != 0 {
		if err := s.Store.Create(s.t.Context(), bulk.Name(name), object, time.Time{}); err != nil {
			s.t.Fatal(err)
		}
	}
	if where&OnBus != 0 {
		if _, err := s.JS.Publish(s.t.Context(), bus.BulkSubject(s.Source.Instance, name), object, jetstream.WithMsgID(name)); err != nil {
			s.t.Fatal(err)
		}
	}
	e := s.add(events.SessionOutput, map[string]any{"stream": stream, "offset": off, "bytes": len(b),
		"bulk": map[string]any{"object": name, "pseudonym": pseudonym, "size": len(object)}})
	return e, object
}

// End records session.ended.
func (s *Session) End() { s.add(events.SessionEnded, map[string]any{}) }
