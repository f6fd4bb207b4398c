package events_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/auditledger/auditledger/events"
)

// A session.output member spelled like one its readers act on in
// another case ("Bulk", "DATA", the Kelvin sign for k, an escape that
// spells one) is refused, as is one named twice: a reader matching names
// without case (encoding/json) would play a piece the writer never
// checked, or another object than the one it copied. The exact
// spellings, and other members, are read as before.
func TestBulkOfRefusesMembersInAnotherCase(t *testing.T) {
	name, ps := strings.Repeat("ab", 32), strings.Repeat("cd", 16)
	bulk := `{"object":"` + name + `","pseudonym":"` + ps + `","size":33}`
	ev := func(payload string) *events.Event {
		return &events.Event{ID: "ev-1", Type: events.SessionOutput, Payload: []byte(payload)}
	}
	b, err := events.BulkOf(ev(`{"stream":"stdout","offset":7,"bytes":5,"bulk":` + bulk + `}`))
	if err != nil || b == nil || b.Object != name || b.Stream != "stdout" || b.Offset != 7 || b.Bytes != 5 {
		t.Fatalf("the exact form: %+v, %v", b, err)
	}
	for _, ok := range []string{
		`{"stream":"stdout","offset":0,"bytes":2,"data":"aGkK","sha256":"x"}`,
		`{"stream":"stdout","offset":0,"bytes":2,"binary":true,"hmac":"x","note":"Bulky"}`,
		`{ "stream" : "stdout", "offset":0, "bytes":2, "data":"aGkK", "bulks":1 }`,
		`{"stream":"stdout","offset":0,"bytes":2,"data":"aGkK","note":"x\",\"Bulk\":\""}`, // inside a string
	} {
		if b, err := events.BulkOf(ev(ok)); b != nil || err != nil {
			t.Errorf("%s: %v, %v; want no piece and no error", ok, b, err)
		}
	}
	for _, c := range []struct{ payload, field string }{
		{`{"stream":"stdout","offset":0,"bytes":5,"Bulk":` + bulk + `}`, "payload.Bulk"},
		{`{"stream":"stdout","offset":0,"bytes":5,"BULK":` + bulk + `,"bulk":` + bulk + `}`, "payload.BULK"},
		{`{"stream":"stdout","offset":0,"bytes":5,"bul` + "\u212a" + `":` + bulk + `}`, "payload.bul\u212a"},
		{`{"stream":"stdout","offset":0,"bytes":5,"\u0042ulk":` + bulk + `}`, "payload.Bulk"},
		{`{"stream":"stdout","offset":0,"bytes":2,"DATA":"aGkK","data":"aGkK"}`, "payload.DATA"},
		{`{"Stream":"stdout","offset":0,"bytes":2,"data":"aGkK"}`, "payload.Stream"},
		{`{"stream":"stdout","Offset":0,"bytes":2,"binary":true}`, "payload.Offset"},
		{`{"stream":"stdout","offset":0,"bytes":2,"binary":true,"HMAC":"x"}`, "payload.HMAC"},
		{`{"stream":"stdout","offset":0,"bytes":2,"data":"aGkK","SHA256":"x"}`, "payload.SHA256"},
		{`{"stream":"stdout","offset":0,"bytes":2,"Bytes":3,"data":"aGkK"}`, "payload.Bytes"},
		{`{"stream":"stdout","offset":0,"bytes":2,"Binary":false,"data":"aGkK"}`, "payload.Binary"},
		{`{"stream":"stdout","offset":0,"bytes":2,"data":"aGkK","Bulk_Before":4}`, "payload.Bulk_Before"},
		{`{"stream":"stdout","offset":0,"bytes":5,"bulk":` + bulk + `,"Insert":true}`, "payload.Insert"},
		{`{"stream":"stdout","offset":0,"bytes":5,"bulk":` + bulk + `,"bulk":` + bulk + `}`, "payload"},
		{`{"stream":"stdout","offset":0,"bytes":2,"data":"aGkK","note":"x\\","Bulk":1}`, "payload.Bulk"}, // after a string ending in a backslash
		{`{"stream":"stdout","offset":0,"bytes":2,"data":"aGkK","n":{"a":"}"},"Data":"x"}`, "payload.Data"},
	} {
		_, err := events.BulkOf(ev(c.payload))
		var fe *events.FieldError
		if !errors.As(err, &fe) || fe.Field != c.field || !errors.Is(err, events.ErrInvalid) {
			t.Errorf("%s: %v, want it refused naming %s", c.payload, err, c.field)
		}
	}
	// Any other type is not read.
	if b, err := events.BulkOf(&events.Event{Type: events.SessionStarted, Payload: []byte(`{"Bulk":1}`)}); b != nil || err != nil {
		t.Errorf("session.started: %v, %v", b, err)
	}
}

// BulkOf reads every session.output the writer seals and verify reads:
// a full text chunk's payload (16,384 bytes as base64) costs the scan
// of its member names.
func BenchmarkBulkOfTextChunk(b *testing.B) {
	data := strings.Repeat("QUJDRA", 16384*4/3/6)
	ev := &events.Event{ID: "ev-1", Type: events.SessionOutput,
		Payload: []byte(`{"stream":"stdout","offset":0,"bytes":16384,"data":"` + data + `","sha256":"` + strings.Repeat("0", 64) + `"}`)}
	b.SetBytes(int64(len(ev.Payload)))
	for b.Loop() {
		if bk, err := events.BulkOf(ev); bk != nil || err != nil {
			b.Fatal(bk, err)
		}
	}
}
