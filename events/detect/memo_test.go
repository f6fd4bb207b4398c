package detect

import (
	"encoding/json"
	"strings"
	"testing"
)

// memoTexts are the texts TestCleanTextsAgree places in events: every
// detector vector, the envelope's own (ids, times, hosts, digests in and
// out of their places), and texts of the lengths the memo's bounds fall
// at.
func memoTexts() []string {
	out := detectorVectors()
	out = append(out, "08d3b8cae0685b0e", "08d3b8cae0685b0e.2", "2026-12-08T00:58:18.893885349Z", "2026-12-06T19:41:13.4111111111111111Z",
		"127.0.0.1:5497", "db1.internal:5432", "https://idp.example", "static-users", "pseudonym:0123456789abcdef0123456789abcdef",
		"pii1.0123456789abcdef0123456789abcdef.AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8gISIjJCUm",
		strings.Repeat("4111111111111111", 4), strings.Repeat("ab", 32), "hmac:"+strings.Repeat("ab", 32), "0123456789abcdef0123456789abcdef",
		"SELECT abalance FROM pgbench_accounts WHERE aid = 48213;", "4111111111", "11111111111", "abc4111111111111111")
	for _, n := range []int{memoMin - 1, memoMin, memoMax, memoMax + 1} {
		out = append(out, strings.Repeat("4", n), strings.Repeat("x", n), "jane@example.org"+strings.Repeat("z", max(0, n-16)))
	}
	return out
}

// memoEvents places text at each kind of place the writer's judge reads
// a string at: the envelope (the target's host, the actor's e-mail and
// subject, the session id), a free payload member, a member a digest
// stands in, a member name, and an array of short scalars beside
// others.
func memoEvents(text string) [][]byte {
	q, _ := json.Marshal(text)
	s := string(q)
	return [][]byte{
		[]byte(`{"id":"a.1","session_id":` + s + `,"target":{"kind":"postgres","host":` + s + `},"payload":{}}`),
		[]byte(`{"id":"a.2","actor":{"subject":` + s + `,"email":` + s + `},"payload":{}}`),
		[]byte(`{"id":"a.3","payload":{"note":` + s + `,"sha256":` + s + `,"statement_sha256":` + s + `,"hmac":` + s + `,"pseudonym":` + s + `}}`),
		[]byte(`{"id":"a.4","payload":{` + s + `:1,"matches":[` + s + `],"values":["4111",` + s + `,"1111"]}}`),
		[]byte(`{"id":"a.5","payload":{"parameters":{"values":[` + s + `,` + s + `]},"a":[` + s + `]}}`),
	}
}

// The memo of texts judged clean changes no verdict: every event, judged
// again and again with it (so that its texts are kept, then taken from
// it), gets what the judge gives it without the memo — in the order the
// events come and in the reverse order, the clean readings of each text
// kept before the others are judged.
func TestCleanTextsAgree(t *testing.T) {
	type verdict struct {
		m     Match
		found bool
		err   bool
	}
	judge := func(ev []byte, off bool) verdict {
		cleanTexts.off = off
		defer func() { cleanTexts.off = false }()
		m, found, err := InEvent(ev)
		return verdict{m, found, err != nil}
	}
	var evs [][]byte
	for _, text := range memoTexts() {
		evs = append(evs, memoEvents(text)...)
	}
	want := make([]verdict, len(evs))
	for i, ev := range evs {
		want[i] = judge(ev, true)
	}
	kept := 0
	for round := range 3 {
		for k := range evs {
			i := k
			if round == 1 {
				i = len(evs) - 1 - k
			}
			if got := judge(evs[i], false); got != want[i] {
				t.Errorf("round %d: %s: with the memo %+v, without %+v", round, evs[i], got, want[i])
			}
		}
	}
	for i := range cleanTexts.kept {
		if cleanTexts.kept[i].Load() != nil {
			kept++
		}
	}
	if kept == 0 {
		t.Fatal("the memo kept no text: the test compared nothing")
	}
	// A text found once is never kept: the vectors the scrub finds a
	// value in are judged each time.
	for _, v := range detectorVectors() {
		if _, counts := Scrub(v); counts != nil && cleanTexts.fits(v) && cleanTexts.has(v, cleanTexts.hash(v)) {
			t.Errorf("the memo holds %q, in which the scrub finds %v", v, counts)
		}
	}
}

// Concurrent judges share the memo (the writer judges batches side by
// side); run with -race.
func TestCleanTextsConcurrent(t *testing.T) {
	evs := sessionEvents(64)
	done := make(chan error)
	for range 4 {
		go func() {
			var err error
			for range 20 {
				for _, ev := range evs {
					if e := CheckEvent(ev); e != nil && err == nil {
						err = e
					}
				}
			}
			done <- err
		}()
	}
	for range 4 {
		if err := <-done; err != nil {
			t.Error(err)
		}
	}
	if has := func(s string) bool { return cleanTexts.has(s, cleanTexts.hash(s)) }; !has("127.0.0.1:5497") || !has("08d3b8cae0685b0e") {
		t.Error("the memo did not keep the texts every event of the session holds")
	}
}
