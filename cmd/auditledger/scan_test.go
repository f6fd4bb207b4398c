package main

import (
	"testing"
	"time"

	"github.com/auditledger/auditledger/ledger"
)

// TestNotAnEvent: erased records and the writer's own records are told
// apart from events without decoding the events.
func TestNotAnEvent(t *testing.T) {
	gap, err := ledger.GapEntry("o", ledger.Gap{FirstSeq: 1, LastSeq: 2, NoticedAt: time.Date(2026, 12, 6, 12, 0, 0, 0, time.UTC)})
	if err != nil {
		t.Fatal(err)
	}
	for want, r := range map[string]ledger.Record{
		"erased": {Bound: true},
		"gap":    {Event: gap.Event},
		"":       {Event: []byte(`{"type":"command.executed"}`)},
	} {
		if got := notAnEvent(r); got != want {
			t.Errorf("notAnEvent(%q) = %q, want %q", r.Event, got, want)
		}
	}
}
