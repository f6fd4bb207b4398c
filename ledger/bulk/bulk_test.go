package bulk_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/auditledger/auditledger/events"
	"github.com/auditledger/auditledger/ledger/bulk"
	"github.com/auditledger/auditledger/ledger/bulk/bulktest"
	"github.com/auditledger/auditledger/ledger/file"
	"github.com/auditledger/auditledger/ledger/piikeys"
	"github.com/auditledger/auditledger/test/natstest"
)

// An event's bulk member is read as docs/FORMAT.md §1.7 has it, and
// one that breaks it is an error naming the event; a chunk of text or
// binary names no piece.
func TestPieceOf(t *testing.T) {
	ev := func(payload string) *events.Event {
		return &events.Event{ID: "ev-1", Type: events.SessionOutput, Tenant: "acme", SessionID: "s", Payload: []byte(payload)}
	}
	name, ps := strings.Repeat("ab", 32), strings.Repeat("cd", 16)
	p, ok, err := bulk.Of(ev(`{"stream":"stdout","offset":7,"bytes":5,"bulk":{"object":"` + name + `","pseudonym":"` + ps + `","size":33}}`))
	if !ok || err != nil || p.Object != name || p.Pseudonym != ps || p.Offset != 7 || p.Tenant != "acme" || p.Session != "s" || p.Stream != "stdout" || p.Event != "ev-1" {
		t.Fatalf("piece %+v, %v, %v", p, ok, err)
	}
	for _, bad := range []string{
		`{"stream":"stdout","offset":0,"bytes":5,"bulk":{"object":"` + strings.ToUpper(name) + `","pseudonym":"` + ps + `","size":33}}`,
		`{"stream":"stdout","offset":0,"bytes":5,"bulk":{"object":"` + name + `","pseudonym":"x","size":33}}`,
		`{"stream":"stdout","offset":0,"bytes":5,"bulk":{"object":"` + name + `","pseudonym":"` + ps + `","size":34}}`,
		`{"stream":"stdout","offset":0,"bytes":0,"bulk":{"object":"` + name + `","pseudonym":"` + ps + `","size":28}}`,
		`{"stream":"stdout","offset":0,"bytes":5,"bulk":{"object":"` + name + `","pseudonym":"` + ps + `","size":33,"key":"x"}}`,
		// Read as the writer reads it (events.BulkOf): a member in
		// another case is refused, not played as a piece the writer
		// never checked or copied.
		`{"stream":"stdout","offset":0,"bytes":5,"Bulk":{"object":"` + name + `","pseudonym":"` + ps + `","size":33}}`,
		`{"stream":"stdout","offset":0,"bytes":5,"bulk":{"object":"` + name + `","pseudonym":"` + ps + `","size":33},"BULK":{"object":"` + name + `","pseudonym":"` + ps + `","size":33}}`,
	} {
		if _, _, err := bulk.Of(ev(bad)); err == nil || !strings.Contains(err.Error(), "ev-1") {
			t.Errorf("%s: %v, want an error naming the event", bad, err)
		}
	}
	for _, other := range []string{`{"stream":"stdout","offset":0,"bytes":2,"data":"aGkK"}`, `{"stream":"stdout","offset":0,"bytes":2,"binary":true}`} {
		if _, ok, err := bulk.Of(ev(other)); ok || err != nil {
			t.Errorf("%s names a piece: %v", other, err)
		}
	}
}

// A piece in neither place is missing, saying where it was looked for;
// on a bus without AUDIT_BULK, saying so; a reader without a key store
// opens nothing.
func TestReaderLooksEverywhere(t *testing.T) {
	_, js := natstest.Start(t).Connect(t)
	keys, err := piikeys.Open(t.Context(), js, 1)
	if err != nil {
		t.Fatal(err)
	}
	store, _ := file.New(t.TempDir())
	s := bulktest.New(t, keys, js, store, "acme", "s-1", 0, 0)
	e, object := s.Piece("stdout", []byte("hello\n"), 0)
	p, _, _ := bulk.Of(e)
	rd := &bulk.Reader{Store: store, Bus: js, Keys: keys}
	if _, err := rd.Open(t.Context(), p); !errors.Is(err, bulk.ErrMissing) || !strings.Contains(err.Error(), "no stream AUDIT_BULK") {
		t.Errorf("without AUDIT_BULK: %v", err)
	}
	bulktest.EnsureStream(t, js)
	if _, err := rd.Open(t.Context(), p); !errors.Is(err, bulk.ErrMissing) || !strings.Contains(err.Error(), "the store holds no bulk/"+p.Object) ||
		!strings.Contains(err.Error(), "the writer deletes") || !strings.Contains(err.Error(), e.ID) {
		t.Errorf("in neither place: %v", err)
	}
	if b, err := bulk.OpenObject(t.Context(), keys, p, object); err != nil || string(b) != "hello\n" {
		t.Errorf("the object opened: %q, %v", b, err)
	}
	if _, err := bulk.OpenObject(t.Context(), nil, p, object); !errors.Is(err, bulk.ErrNoKeys) {
		t.Errorf("without a key store: %v", err)
	}
	if _, err := bulk.OpenObject(t.Context(), keys, p, object[1:]); !errors.Is(err, bulk.ErrDamaged) {
		t.Errorf("a byte short: %v", err)
	}
}
