package gateway

import (
	"encoding/json"
	"maps"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/auditledger/auditledger/events/detect"
)

// payloadPieces returns generators of random texts and payload values
// built of pieces the detectors read, in values, member names, arrays
// and numbers.
func payloadPieces(r *rand.Rand) (text func() string, value func(depth int) any) {
	pieces := []string{"SELECT", " ", "x", "4111", "1111", "4111111111111111", "jane", "@", "example.com", "+44 20 7946 0958", "123-45-6789",
		"DE89370400440532013000", "AKIAIOSFODNN7EXAMPLE", "\t", "\u2028", "é", "４", "%40", "\\u0040", "2026-12-06T19:41:13.123456789Z",
		strings.Repeat("ab", 32), "hmac:" + strings.Repeat("cd", 32), "4539578763621486" + strings.Repeat("0", 48), "NDExMTExMTExMTExMTExMQ=="}
	text = func() string {
		var sb strings.Builder
		for range 1 + r.IntN(4) {
			sb.WriteString(pieces[r.IntN(len(pieces))])
		}
		return sb.String()
	}
	value = func(depth int) any {
		switch k := r.IntN(6); {
		case k == 0 && depth < 3:
			m := map[string]any{}
			for range r.IntN(3) {
				m[text()] = value(depth + 1)
			}
			return m
		case k == 1 && depth < 3:
			var a []any
			for range r.IntN(5) {
				if r.IntN(2) == 0 {
					a = append(a, int64(r.IntN(10)))
				} else {
					a = append(a, value(depth+1))
				}
			}
			return a
		case k == 2:
			return int64(r.Uint64() >> r.IntN(64))
		default:
			return text()
		}
	}
	return text, value
}

// detect.PayloadClean, the one walk that lets a payload through as
// encoded, says so only of payloads the scrub has nothing to read in
// (anyCandidate) and the writer's judge finds nothing in (InEvent on the
// event's payload member): on payloads built of pieces the detectors
// read, in values, member names, arrays and numbers, every payload it
// passes is one both pass, and encodePayload leaves it as marshalled.
func TestPayloadCleanAgrees(t *testing.T) {
	r := rand.New(rand.NewPCG(13, 14))
	text, value := payloadPieces(r)
	clean := 0
	for range 20_000 {
		p := map[string]any{"statement": text(), "kind": "SELECT"}
		for range r.IntN(3) {
			p[text()] = value(0)
		}
		if r.IntN(2) == 0 {
			p["statement_sha256"] = strings.Repeat("9f", 32)
		}
		body, err := marshalPayload(p)
		if err != nil {
			t.Fatal(err)
		}
		if !detect.PayloadClean(body) {
			continue
		}
		clean++
		doc, _ := json.Marshal(map[string]json.RawMessage{"payload": body})
		if m, found, err := detect.InEvent(doc); found || err != nil {
			t.Fatalf("PayloadClean(%s), but the writer's judge finds %+v (%v)", body, m, err)
		}
		if anyCandidate(body) {
			t.Fatalf("PayloadClean(%s), but the scrub has something to read", body)
		}
		out, err := encodePayload(p, nil)
		if err != nil || string(out) != string(body) {
			t.Fatalf("PayloadClean(%s), but encodePayload made %s (%v)", body, out, err)
		}
	}
	if clean < 500 || clean > 19_500 {
		t.Fatalf("%d of 20,000 payloads clean: the test proves little", clean)
	}
}

// A text a producer judged itself and handed as Judged (a statement) is
// recorded exactly as the same text handed as a string, scrubbed the
// same way: the core skips reading it again only where that changes
// nothing — the same bytes, the same "redacted" entries and search
// digests, on payloads built of pieces the detectors read.
func TestJudgedRecordsTheSame(t *testing.T) {
	r := rand.New(rand.NewPCG(15, 16))
	text, value := payloadPieces(r)
	digest := digester(func(v string) string { return "hmac:" + strings.Repeat("0", 63) + string(rune('a'+len(v)%6)) })
	hexCard := "ab" + "4111111111111111" + strings.Repeat("c", 46)
	spared := 0
	for i := range 20_000 {
		stmt := text()
		switch i % 10 {
		case 0:
			stmt = hexCard
		case 1:
			stmt = "INSERT INTO pgbench_history (tid, bid, aid, delta, mtime) VALUES (7, 3, " + strings.Repeat("41", i%9) + ", -12, CURRENT_TIMESTAMP);"
		case 2:
			// Bytes that are not UTF-8 are recorded as U+FFFD, which
			// a detector may read otherwise than the bytes.
			bad := []string{"\xff", "\xc3", "\xe2\x80", "\xed\xa0\x80"}[i/10%4]
			stmt = "SELECT '4111" + bad + "1111" + bad + "1111" + bad + "1111', 'jane" + bad + "@example.com' " + text()
		}
		rest := map[string]any{"kind": "SELECT", "statement_sha256": strings.Repeat("9f", 32)}
		for range r.IntN(3) {
			if r.IntN(2) == 0 {
				rest["protocol"] = "simple"
			} else {
				rest[text()] = value(0)
			}
		}
		var found, jfound []Finding
		plain, counts := ScrubFound(stmt, &found)
		judged, jcounts := JudgeText(stmt, &jfound)
		if judged.String() != plain || len(jcounts) != len(counts) {
			t.Fatalf("JudgeText(%q) = %q, ScrubFound %q", stmt, judged, plain)
		}
		a, b := maps.Clone(rest), maps.Clone(rest)
		a["statement"], b["statement"] = plain, judged
		if counts != nil {
			AddRedactions(a, Found("/statement", found)...)
			AddRedactions(b, Found("/statement", jfound)...)
		} else if ok, _ := restClean(b); ok {
			spared++
		}
		want, werr := encodePayload(a, digest)
		got, gerr := encodePayload(b, digest)
		if string(got) != string(want) || (werr == nil) != (gerr == nil) {
			t.Fatalf("statement %q with %v:\n judged %s (%v)\n string %s (%v)", stmt, rest, got, gerr, want, werr)
		}
	}
	if spared < 2_000 {
		t.Fatalf("%d of 20,000 judged statements spared a second reading: the test proves little", spared)
	}
}
