package projections_test

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/auditledger/auditledger/events"
	"github.com/auditledger/auditledger/ledger"
	"github.com/auditledger/auditledger/projections"
)

// readFixture projects a log of two tenants: acme's session s1 numbered
// 1, 2, 5, 5, 7 (gaps 3-4 and 6), globex's session s1 and acme's s2, and
// returns a reader over it.
func readFixture(t *testing.T) (*projections.Reader, *fixture) {
	t.Helper()
	f := newFixture(t)
	ev := func(i int, tenant, subject, session string, seq int, stmt string) ledger.Entry {
		return ledger.Entry{Event: fmt.Appendf(nil, `{"version":1,"id":"ev-%d","type":"command.executed","time":"2026-11-26T12:00:%02dZ","tenant":%q,"source":{"kind":"postgres-proxy","instance":"p1"},"actor":{"issuer":"https://idp.example","subject":%q,"kind":"human"},"session_id":%q,"session_seq":%d,"target":{"kind":"postgres","name":"orders"},"payload":{"statement":%q}}`,
			i, i, tenant, subject, session, seq, stmt)}
	}
	segments := [][]ledger.Entry{
		{ev(0, "acme", "alice", "s1", 1, "SELECT 1"), ev(1, "acme", "alice", "s1", 2, "SELECT 100%"), ev(2, "globex", "gus", "s1", 1, "SELECT g")},
		{ev(3, "acme", "alice", "s1", 5, "SELECT a_b"), ev(4, "acme", "alice", "s1", 5, "SELECT 5 again"), ev(5, "acme", "bob", "s2", 1, "SELECT b")},
		{ev(6, "acme", "alice", "s1", 7, "SELECT 7")},
	}
	for _, es := range segments {
		if _, err := f.log.Append(t.Context(), es); err != nil {
			t.Fatal(err)
		}
	}
	f.project(t)
	return projections.NewReader(f.cfg.DB), f
}

func indexes(evs []projections.Event) []uint64 {
	var out []uint64
	for _, e := range evs {
		out = append(out, e.Index)
	}
	return out
}

// Pages follow each other by cursor until Next is empty, each filter
// narrows, and Tenants is the scope: nil every tenant, empty none.
func TestReaderEvents(t *testing.T) {
	rd, _ := readFixture(t)
	var all []uint64
	f := projections.EventFilter{Limit: 3}
	for pages := 0; ; pages++ {
		p, err := rd.Events(t.Context(), f)
		if err != nil {
			t.Fatal(err)
		}
		all = append(all, indexes(p.Events)...)
		if p.Next == "" {
			if pages != 2 {
				t.Errorf("%d pages of 3 for 7 events; want 3", pages+1)
			}
			break
		}
		f.After = p.Next
	}
	if !slices.Equal(all, []uint64{0, 1, 2, 3, 4, 5, 6}) {
		t.Errorf("paged: %v", all)
	}
	for _, c := range []struct {
		name string
		f    projections.EventFilter
		want []uint64
	}{
		{"tenant", projections.EventFilter{Tenants: []string{"globex"}}, []uint64{2}},
		{"tenants", projections.EventFilter{Tenants: []string{"globex", "acme"}}, []uint64{0, 1, 2, 3, 4, 5, 6}},
		{"no tenant", projections.EventFilter{Tenants: []string{}}, nil},
		{"actor", projections.EventFilter{Actor: "bob"}, []uint64{5}},
		{"session", projections.EventFilter{Session: "s1", Tenants: []string{"acme"}}, []uint64{0, 1, 3, 4, 6}},
		{"type", projections.EventFilter{Types: []events.Type{events.CommandExecuted, events.CommandBlocked}}, []uint64{0, 1, 2, 3, 4, 5, 6}},
		{"other type", projections.EventFilter{Types: []events.Type{events.CommandBlocked}}, nil},
		{"text, a literal %", projections.EventFilter{Text: "100%"}, []uint64{1}},
		{"text, a literal _", projections.EventFilter{Text: "a_b"}, []uint64{3}},
		{"text, any case", projections.EventFilter{Text: "AGAIN"}, []uint64{4}},
		{"after", projections.EventFilter{After: "4"}, []uint64{5, 6}},
	} {
		p, err := rd.Events(t.Context(), c.f)
		if err != nil || !slices.Equal(indexes(p.Events), c.want) || p.Next != "" {
			t.Errorf("%s: %v, next %q, %v; want %v", c.name, indexes(p.Events), p.Next, err, c.want)
		}
	}
	// Each event is its record: the leaf hash covers header ‖ event.
	p, _ := rd.Events(t.Context(), projections.EventFilter{Limit: 1})
	if e := p.Events[0]; ledger.LeafHash(e.Record()) != e.Leaf || e.Tenant != "acme" {
		t.Errorf("event 0: leaf %x does not cover its record, or tenant %q", e.Leaf, e.Tenant)
	}
}

// A filter the reader cannot run is refused before any query, naming it.
func TestReaderRefusesBadFilters(t *testing.T) {
	rd, _ := readFixture(t)
	for _, c := range []struct {
		f     projections.EventFilter
		field string
	}{
		{projections.EventFilter{Types: []events.Type{"drop.table"}}, "type"},
		{projections.EventFilter{After: "-1"}, "after"},
		{projections.EventFilter{After: "x"}, "after"},
		{projections.EventFilter{Limit: 1001}, "limit"},
		{projections.EventFilter{Limit: -1}, "limit"},
		{projections.EventFilter{Actor: "a\x00b"}, "actor"},
		{projections.EventFilter{Target: "\xff"}, "target"},
		{projections.EventFilter{Text: string(make([]byte, 257))}, "q"},
	} {
		_, err := rd.Events(t.Context(), c.f)
		var fe *projections.FilterError
		if !errors.As(err, &fe) || fe.Field != c.field || !errors.Is(err, projections.ErrBadFilter) {
			t.Errorf("%+v: %v; want a FilterError naming %s", c.f, err, c.field)
		}
	}
	if _, err := rd.Sessions(t.Context(), projections.SessionFilter{After: "\x00"}); err == nil {
		t.Error("a session cursor holding NUL: no error")
	}
	if _, err := rd.CheckpointAt(t.Context(), 4); !errors.Is(err, projections.ErrBadFilter) {
		t.Errorf("a checkpoint where no segment ends: %v; want a bad filter", err)
	}
}

// A timeline is in sequence order with its gaps; sessions list by id.
func TestReaderSessions(t *testing.T) {
	rd, _ := readFixture(t)
	tl, err := rd.Timeline(t.Context(), "acme", "s1")
	if err != nil {
		t.Fatal(err)
	}
	if got := indexes(tl.Events); !slices.Equal(got, []uint64{0, 1, 3, 4, 6}) {
		t.Errorf("timeline: %v", got)
	}
	if want := []projections.Gap{{3, 4}, {6, 6}}; !slices.Equal(tl.Gaps, want) {
		t.Errorf("gaps %v; want %v", tl.Gaps, want)
	}
	if _, err := rd.Timeline(t.Context(), "globex", "s2"); !errors.Is(err, projections.ErrNotFound) {
		t.Errorf("another tenant's session: %v; want not found", err)
	}
	list, err := rd.Sessions(t.Context(), projections.SessionFilter{Tenants: []string{"acme"}})
	if err != nil || len(list) != 2 || list[0].SessionID != "s1" || !list[0].HasGaps || list[0].Events != 5 || list[1].SessionID != "s2" || list[1].HasGaps {
		t.Errorf("acme's sessions: %+v, %v", list, err)
	}
	list, err = rd.Sessions(t.Context(), projections.SessionFilter{After: "s1", Limit: 5})
	if err != nil || len(list) != 1 || list[0].SessionID != "s2" {
		t.Errorf("sessions after s1: %+v, %v", list, err)
	}
}

// Checkpoints, records and spans of a period; a reader without a
// database says so.
func TestReaderCheckpointsAndRecords(t *testing.T) {
	rd, _ := readFixture(t)
	cp, err := rd.LatestCheckpoint(t.Context())
	if err != nil || cp.Size != 7 {
		t.Fatalf("latest checkpoint: size %d, %v", cp.Size, err)
	}
	if at, err := rd.CheckpointAt(t.Context(), 3); err != nil || at.Size != 3 || at.Note == "" {
		t.Errorf("checkpoint at 3: %+v, %v", at, err)
	}
	var got []uint64
	err = rd.Records(t.Context(), 1, 6, "acme", func(e *projections.Event) error { got = append(got, e.Index); return nil })
	if err != nil || !slices.Equal(got, []uint64{1, 3, 4, 5}) {
		t.Errorf("acme's records of [1, 6): %v, %v", got, err)
	}
	segs, err := rd.Segments(t.Context(), 2, 4)
	if err != nil || len(segs) != 2 || segs[0].First != 0 || segs[1].Size != 6 {
		t.Errorf("segments of [2, 4): %+v, %v", segs, err)
	}
	if _, err := projections.NewReader(nil).Events(t.Context(), projections.EventFilter{}); !errors.Is(err, projections.ErrUnavailable) {
		t.Errorf("a reader without a database: %v", err)
	}
}

// The search digests an event recorded are kept with their place and
// found by tenant and digest, the other filters still applying; a digest
// under another tenant finds nothing of this one; a rebuild keeps them.
func TestReaderMatches(t *testing.T) {
	f := newFixture(t)
	d1 := "hmac:" + strings.Repeat("1a", 32)
	d2 := "hmac:" + strings.Repeat("2b", 32)
	ev := func(i int, tenant, redacted string) ledger.Entry {
		return ledger.Entry{Event: fmt.Appendf(nil, `{"version":1,"id":"m-%d","type":"command.executed","time":"2026-11-26T12:00:%02dZ","tenant":%q,"source":{"kind":"postgres-proxy","instance":"p1"},"actor":{"issuer":"https://idp.example","subject":"alice","kind":"human"},"target":{"kind":"postgres","name":"orders"},"payload":{"statement":"SELECT '[REDACTED:credit_card]'","redacted":%s}}`,
			i, i, tenant, redacted)}
	}
	es := []ledger.Entry{
		ev(0, "acme", `[{"path":"/statement","detector":"credit_card","count":1,"matches":["`+d1+`"]}]`),
		ev(1, "acme", `[{"path":"/statement","detector":"credit_card","count":2,"matches":["`+d2+`","`+d1+`"]},{"path":"/parameters/values/0","detector":"credit_card","count":1,"matches":["`+d1+`"]}]`),
		ev(2, "globex", `[{"path":"/statement","detector":"credit_card","count":1,"matches":["`+d1+`"]}]`),
		ev(3, "acme", `[{"path":"/statement","detector":"credit_card","count":1}]`),
		ev(4, "acme", `[{"path":"/statement","detector":"credit_card","count":1,"matches":["sha256:`+strings.Repeat("1a", 32)+`"]}]`),
	}
	if _, err := f.log.Append(t.Context(), es); err != nil {
		t.Fatal(err)
	}
	if err := projections.Migrate(t.Context(), f.cfg.DB); err != nil {
		t.Fatal(err)
	}
	step := func() {
		for {
			applied, err := projections.Step(t.Context(), f.cfg)
			if err != nil {
				t.Fatal(err)
			}
			if !applied {
				return
			}
		}
	}
	step()
	rd := projections.NewReader(f.cfg.DB)
	check := func(when string) {
		for _, c := range []struct {
			name string
			f    projections.EventFilter
			want []uint64
		}{
			{"acme d1", projections.EventFilter{Matches: []projections.Match{{"acme", d1}}}, []uint64{0, 1}},
			{"acme d2", projections.EventFilter{Matches: []projections.Match{{"acme", d2}}}, []uint64{1}},
			{"globex d1", projections.EventFilter{Matches: []projections.Match{{"globex", d1}}}, []uint64{2}},
			{"globex d2", projections.EventFilter{Matches: []projections.Match{{"globex", d2}}}, nil},
			{"both", projections.EventFilter{Matches: []projections.Match{{"acme", d2}, {"globex", d1}}}, []uint64{1, 2}},
			{"none", projections.EventFilter{Matches: []projections.Match{}}, nil},
			{"scoped", projections.EventFilter{Matches: []projections.Match{{"acme", d1}, {"globex", d1}}, Tenants: []string{"globex"}}, []uint64{2}},
			{"after", projections.EventFilter{Matches: []projections.Match{{"acme", d1}}, After: "0"}, []uint64{1}},
		} {
			p, err := rd.Events(t.Context(), c.f)
			if err != nil || !slices.Equal(indexes(p.Events), c.want) {
				t.Errorf("%s: %s: %v, %v; want %v", when, c.name, indexes(p.Events), err, c.want)
			}
		}
		p, err := rd.Events(t.Context(), projections.EventFilter{Matches: []projections.Match{{"acme", d1}}})
		if err != nil || len(p.Events) != 2 {
			t.Fatalf("%s: %v", when, err)
		}
		want := []projections.MatchPlace{{"/parameters/values/0", "credit_card"}, {"/statement", "credit_card"}}
		if got := p.Events[1].Matched; !slices.Equal(got, want) {
			t.Errorf("%s: event 1 matched at %v; want %v", when, got, want)
		}
	}
	check("projected")
	if err := projections.Rebuild(t.Context(), f.cfg, nil); err != nil {
		t.Fatal(err)
	}
	check("rebuilt")
	_, err := rd.Events(t.Context(), projections.EventFilter{Matches: []projections.Match{{"acme", "sha256:00"}}})
	var fe *projections.FilterError
	if !errors.As(err, &fe) || fe.Field != "match_value" {
		t.Errorf("a malformed digest: %v; want a FilterError naming match_value", err)
	}
}

// The session list the projector keeps, segment by segment, says what
// grouping every event of each session says: across segments, with a
// sequence number recorded twice (in one segment and in two), a gap, a
// session of two actors and one with and without a target; and again
// after a rebuild.
func TestSessionListAgreesWithEvents(t *testing.T) {
	f := newFixture(t)
	i := 0
	ev := func(tenant, subject, session string, seq int, target bool) ledger.Entry {
		i++
		tg := ""
		if target {
			tg = fmt.Sprintf(`,"target":{"kind":"postgres","name":"t%d"}`, i%3)
		}
		return ledger.Entry{Event: fmt.Appendf(nil, `{"version":1,"id":"ev-%d","type":"command.executed","time":"2026-11-26T12:%02d:%02dZ","tenant":%q,"source":{"kind":"postgres-proxy","instance":"p1"},"actor":{"issuer":"https://idp.example","subject":%q,"kind":"human"},"session_id":%q,"session_seq":%d%s,"payload":{"statement":"SELECT 1"}}`,
			i, (97*i)%60, i%60, tenant, subject, session, seq, tg)}
	}
	segments := [][]ledger.Entry{
		{ev("acme", "alice", "a", 1, true), ev("acme", "alice", "a", 2, true), ev("globex", "gus", "a", 1, false), ev("acme", "bob", "b", 1, true)},
		{ev("acme", "alice", "a", 2, true), ev("acme", "alice", "a", 3, true), ev("acme", "bob", "b", 3, true), ev("acme", "bob", "b", 3, true)},
		{ev("globex", "gus", "a", 2, true), ev("acme", "aaron", "b", 2, false), ev("acme", "carol", "c", 2, true), ev("acme", "carol", "c", 4, true)},
		{ev("acme", "alice", "a", 4, true)},
	}
	want := `SELECT tenant, session_id, min(time), max(time), count(*), max(session_seq), count(DISTINCT session_seq) <> max(session_seq),
		min(actor_subject), min(target_name) FROM events WHERE session_id IS NOT NULL GROUP BY tenant, session_id ORDER BY session_id, tenant`
	got := `SELECT tenant, session_id, started, last_seen, events, last_seq, has_gaps, actor_subject, target_name FROM sessions ORDER BY session_id, tenant`
	agree := func(when string) {
		t.Helper()
		w, g := query(t, f, want), query(t, f, got)
		if !slices.Equal(w, g) || len(g) != 4 {
			t.Errorf("%s: the session list\n%s\nwant (from the events)\n%s", when, strings.Join(g, "\n"), strings.Join(w, "\n"))
		}
	}
	if err := projections.Migrate(t.Context(), f.cfg.DB); err != nil {
		t.Fatal(err)
	}
	for _, es := range segments {
		if _, err := f.log.Append(t.Context(), es); err != nil {
			t.Fatal(err)
		}
		if _, err := projections.Step(t.Context(), f.cfg); err != nil {
			t.Fatal(err)
		}
	}
	agree("followed")
	if g := query(t, f, `SELECT session_id FROM sessions WHERE has_gaps`); !slices.Equal(g, []string{"[c]"}) {
		t.Errorf("sessions with gaps: %v, want c alone", g)
	}
	rd := projections.NewReader(f.cfg.DB)
	list, err := rd.Sessions(t.Context(), projections.SessionFilter{Tenants: []string{"acme"}, Actor: "aaron"})
	if err != nil || len(list) != 1 || list[0].SessionID != "b" || list[0].HasGaps || list[0].Events != 4 || list[0].LastSeq != 3 || list[0].Target != "t1" {
		t.Errorf("aaron's sessions: %+v, %v", list, err)
	}
	if err := projections.Rebuild(t.Context(), f.cfg, nil); err != nil {
		t.Fatal(err)
	}
	agree("rebuilt")
}

// query is every row of sql, as text.
func query(t *testing.T, f *fixture, sql string) []string {
	t.Helper()
	rs, err := f.cfg.DB.Query(t.Context(), sql)
	if err != nil {
		t.Fatal(err)
	}
	defer rs.Close()
	var out []string
	for rs.Next() {
		vals, _ := rs.Values()
		out = append(out, fmt.Sprint(vals))
	}
	if err := rs.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}
