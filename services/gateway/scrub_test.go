package gateway_test

import (
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/auditledger/auditledger/events"
	"github.com/auditledger/auditledger/events/detect"
	"github.com/auditledger/auditledger/ledger/piikeys"
	"github.com/auditledger/auditledger/services/gateway"
)

// Every string of a recorded payload passes the built-in detectors,
// whatever the policy says: values, member names, nested values and a
// stream's chunks. The bus stores no raw value, and the payload says
// where and by which detector a value was replaced, never the value.
func TestRecordedTextIsScrubbed(t *testing.T) {
	b := startBus(t, true)
	g := newGateway(t, b.em, nil)
	if err := g.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	const card, email = "4556 7375 8689 9855", "canary.gw@example.org"
	// A digest with a card-like run of digits inside stays as it is.
	digest := "ab4111111111111111" + strings.Repeat("cd", 23)
	s := g.Session(events.Target{Kind: "ssh", Name: "bastion"})
	s.Authenticated(alice)
	if _, err := s.Record(t.Context(), events.CommandExecuted, map[string]any{
		"statement":        "grep " + email + " cards.txt; echo card=" + card + "&x=1",
		"statement_sha256": digest,
		"headers":          map[string][]string{"X-Card": {card}, email: {"1"}},
	}); err != nil {
		t.Fatal(err)
	}
	st := s.Stream("stdout", gateway.StreamConfig{FlushAfter: time.Hour})
	st.Write([]byte("name: Jane\ncard: " + card + "\nmail: <" + email + ">\n"))
	st.Close()
	got := b.stored(t, 2)
	for _, e := range got {
		raw := e.Raw
		if e.Event.Type == events.SessionOutput {
			data, _ := base64.StdEncoding.DecodeString(e.Payload["data"].(string))
			raw = append(raw, data...)
		}
		for _, v := range []string{card, strings.ReplaceAll(card, " ", ""), email} {
			if bytes.Contains(raw, []byte(v)) {
				t.Errorf("%s: the bus stored %q in clear", e.Event.Type, v)
			}
		}
		var red []gateway.Redaction
		rb, _ := json.Marshal(e.Payload[gateway.RedactedKey])
		json.Unmarshal(rb, &red)
		if len(red) == 0 {
			t.Errorf("%s: no redacted member: %s", e.Event.Type, e.Raw)
		}
		switch e.Event.Type {
		case events.CommandExecuted:
			if e.Payload["statement_sha256"] != digest {
				t.Errorf("a digest was scrubbed: %v", e.Payload["statement_sha256"])
			}
			if want := "grep [REDACTED:email] cards.txt; echo card=[REDACTED:credit_card]&x=1"; e.Payload["statement"] != want {
				t.Errorf("statement %q, want %q", e.Payload["statement"], want)
			}
			want := map[string]int{"/statement credit_card": 1, "/statement email": 1, "/headers/X-Card/0 credit_card": 1, "/headers/[REDACTED:email] email": 1}
			for _, r := range red {
				if want[r.Path+" "+r.Detector] != r.Count {
					t.Errorf("redacted %+v not expected", r)
				}
				delete(want, r.Path+" "+r.Detector)
			}
			if len(want) > 0 {
				t.Errorf("redacted lacks %v", want)
			}
		case events.SessionOutput:
			data, _ := base64.StdEncoding.DecodeString(e.Payload["data"].(string))
			if want := "name: Jane\ncard: [REDACTED:credit_card]\nmail: <[REDACTED:email]>\n"; string(data) != want {
				t.Errorf("chunk %q, want %q", data, want)
			}
		}
	}
}

// A value written in pieces (a card number typed key by key, each piece
// flushed) is recorded whole, so the detectors see it: a flush holds
// back the tail of the text until more bytes or Close.
func TestStreamKeepsAValueInOneChunk(t *testing.T) {
	b := startBus(t, true)
	g := newGateway(t, b.em, nil)
	s := g.Session(events.Target{Kind: "ssh"})
	st := s.Stream("stdin", gateway.StreamConfig{FlushAfter: time.Hour})
	for _, piece := range []string{"pay ", "4556 73", "75 8689", " 9855", "\r\n$ "} {
		st.Write([]byte(piece))
		st.Flush()
	}
	st.Flush() // the prompt, silent since the last flush, is still held
	st.Close()
	var joined []byte
	for _, c := range outputs(b.stored(t, 1)) {
		data, _ := base64.StdEncoding.DecodeString(c.Payload["data"].(string))
		if int(c.Payload["offset"].(float64)) > 0 && len(joined) == 0 {
			t.Errorf("chunk at offset %v first", c.Payload["offset"])
		}
		joined = append(joined, data...)
	}
	if want := "pay [REDACTED:credit_card]\r\n$ "; string(joined) != want {
		t.Errorf("recorded %q, want %q", joined, want)
	}
}

// TestEscapedSeparatorsAreJudged: a card number whose groups are split by
// characters JSON escapes (tab, line feed, U+2028) is found: the cheap
// test that lets most payloads through unscrubbed sees the escapes, not
// the characters.
func TestEscapedSeparatorsAreJudged(t *testing.T) {
	b := startBus(t, true)
	g := newGateway(t, b.em, nil)
	if err := g.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	s := g.Session(events.Target{Kind: "postgres", Name: "orders"})
	s.Authenticated(alice)
	values := []string{"4111\t1111\t1111\t1111", "4111\n1111\n1111\n1111", "4111\u20281111\u20281111\u20281111"}
	if _, err := s.Record(t.Context(), events.SessionStarted, map[string]any{"a": values[0], "b": values[1], "c": values[2]}); err != nil {
		t.Fatal(err)
	}
	for _, e := range b.stored(t, 1) {
		if e.Event.Type != events.SessionStarted {
			continue
		}
		for _, k := range []string{"a", "b", "c"} {
			if v, _ := e.Payload[k].(string); v != "[REDACTED:credit_card]" {
				t.Errorf("%s recorded as %q, want the placeholder", k, v)
			}
		}
		return
	}
	t.Fatal("no session.started stored")
}

// TestPayloadPassesTheWriter: whatever a gateway hands the core, the
// payload it records is one the writer's judge (detect.InEvent) finds
// nothing in — values the text detectors alone do not read (a card
// number written as a JSON number, as an array of its digits, inside a
// string of a digest's shape away from a digest's place) are replaced
// too, so a record is never refused by the writer after the command it
// describes ran.
func TestPayloadPassesTheWriter(t *testing.T) {
	hexCard := "ab" + "4111111111111111" + strings.Repeat("c", 46)
	cases := []map[string]any{
		{"n": json.Number("4111111111111111")},
		{"digits": []any{4, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1}},
		{"groups": []any{"4111", "1111", "1111", "1111"}},
		{"token": hexCard},
		{"nested": map[string]any{"list": []any{map[string]any{"id": hexCard}}}},
	}
	for i, p := range cases {
		body, err := gateway.EncodePayload(p, nil)
		if err != nil {
			t.Fatalf("case %d: %v", i, err)
		}
		doc := append(append([]byte(`{"payload":`), body...), '}')
		if m, found, err := detect.InEvent(doc); err != nil || found {
			t.Errorf("case %d: the writer finds %+v (err %v) in %s", i, m, err, body)
		}
		if !strings.Contains(string(body), `"redacted"`) || !strings.Contains(string(body), "[REDACTED:credit_card]") {
			t.Errorf("case %d: nothing counted as replaced: %s", i, body)
		}
		if strings.Contains(string(body), "4111111111111111") {
			t.Errorf("case %d: the card number is in the record: %s", i, body)
		}
	}
	// A member replaced whole takes its digest with it: the digest of the
	// text as it was would be one of text holding the card number.
	was := sha256.Sum256([]byte(hexCard))
	placeholder := sha256.Sum256([]byte("[REDACTED:credit_card]"))
	for _, p := range []map[string]any{
		{"data": hexCard, "sha256": hex.EncodeToString(was[:]), "stream": "stdout"},
		{"statement": hexCard, "statement_sha256": hex.EncodeToString(was[:])},
	} {
		body, err := gateway.EncodePayload(p, nil)
		if err != nil {
			t.Fatal(err)
		}
		if strings.Contains(string(body), hex.EncodeToString(was[:])) || !strings.Contains(string(body), hex.EncodeToString(placeholder[:])) {
			t.Errorf("a member replaced whole kept the digest of the text before: %s", body)
		}
	}
	// A digest at a digest's place stays as it is.
	sum := strings.Repeat("ab", 32)
	body, err := gateway.EncodePayload(map[string]any{"statement_sha256": sum}, nil)
	if err != nil || !strings.Contains(string(body), sum) {
		t.Errorf("a digest at its place changed: %s (%v)", body, err)
	}
}

// A value only the writer's judge reads — a card number as a JSON number
// (a Kubernetes body's replicas, in any notation), or short numbers side
// by side in an array — is replaced, and its search digest recorded
// like any other: an investigator searching for the card finds it.
func TestWriterRuleValuesSearchable(t *testing.T) {
	key := []byte("tenant search key")
	want := piikeys.MatchDigest(key, "4111111111111111")
	for _, v := range []any{
		json.Number("4111111111111111"),
		json.Number("4.111111111111111e15"),
		int64(4111111111111111),
		[]any{json.Number("4111"), json.Number("1111"), json.Number("1111"), json.Number("1111")},
		[]any{"4111", "1111", "1111", "1111"},
	} {
		body, err := gateway.EncodePayload(map[string]any{"body": map[string]any{"spec": v}}, key)
		if err != nil {
			t.Fatal(err)
		}
		if strings.Contains(string(body), "1111") || !strings.Contains(string(body), want) {
			t.Errorf("%v recorded as %s, want it replaced and its digest %s listed", v, body, want)
		}
	}
}
