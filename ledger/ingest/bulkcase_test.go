package ingest_test

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/auditledger/auditledger/events"
	"github.com/auditledger/auditledger/ledger"
	"github.com/auditledger/auditledger/ledger/bulk"
	"github.com/auditledger/auditledger/ledger/bus"
)

// A session.output whose bulk member is spelled in another case ("Bulk"),
// or which has one beside bulk ("BULK", "DATA"), is rejected naming the
// member: sealed as an ordinary chunk, it was played by a reader
// matching names without case — a piece the writer never checked or
// copied to the store. No piece reaches the store; the log verifies.
func TestBulkMemberInAnotherCaseRejected(t *testing.T) {
	h := newHarness(t)
	_, l, stop := h.start(50)
	defer stop()
	g := newBulkGateway(t, h.js, "t1")
	cases := []struct {
		edit   func(payload string) string
		reason string
	}{
		{func(p string) string { return strings.Replace(p, `"bulk"`, `"Bulk"`, 1) }, "payload.Bulk: bulk in another case"},
		{func(p string) string {
			var m map[string]json.RawMessage
			json.Unmarshal([]byte(p), &m)
			return strings.TrimSuffix(p, "}") + `,"BULK":` + string(m["bulk"]) + "}"
		}, "payload.BULK: bulk in another case"},
		{func(p string) string { return strings.TrimSuffix(p, "}") + `,"DATA":"aGVsbG8="}` }, "payload.DATA: data in another case"},
	}
	var evs []*events.Event
	for i, c := range cases {
		_, ev := g.piece("t1", int64(100*i), []byte("hello\n"))
		ev.Payload = []byte(c.edit(string(ev.Payload)))
		if _, ok, err := bulk.Of(ev); ok || err == nil {
			t.Fatalf("case %d: the reader reads %s as a piece (%v)", i, ev.Payload, err)
		}
		evs = append(evs, ev)
		g.publish(ev)
	}
	h.emit(0, 1)
	waitSize(t, l, uint64(len(cases)+1))
	rs, _ := h.js.Stream(t.Context(), bus.RejectStream)
	for i, c := range cases {
		m, err := rs.GetMsg(t.Context(), uint64(i+1))
		if err != nil {
			t.Fatal(err)
		}
		if why := m.Header.Get(bus.HeaderReason); !strings.Contains(why, c.reason) {
			t.Errorf("case %d (%s): rejected for %q, want %q", i, evs[i].Payload, why, c.reason)
		}
	}
	if names, err := h.store.List(t.Context(), ledger.BulkPrefix); err != nil || len(names) != 0 {
		t.Fatalf("pieces of rejected events in the store: %v, %v", names, err)
	}
	rep, err := ledger.Verify(t.Context(), h.store, ledger.VerifyOptions{Verifier: h.signer.Verifier()})
	if err != nil || rep.Rejected != len(cases) || rep.Bulk != 0 {
		t.Fatalf("verify: %v, %+v", err, rep)
	}
}
