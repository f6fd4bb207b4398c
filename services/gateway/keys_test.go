package gateway_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/auditledger/auditledger/events"
	"github.com/auditledger/auditledger/ledger/piikeys"
	"github.com/auditledger/auditledger/services/gateway"
	"github.com/auditledger/auditledger/test/natstest"
)

func redactedOf(t *testing.T, s natstest.Stored) []gateway.Redaction {
	t.Helper()
	var red []gateway.Redaction
	rb, _ := json.Marshal(s.Payload[gateway.RedactedKey])
	if err := json.Unmarshal(rb, &red); err != nil {
		t.Fatal(err)
	}
	return red
}

// Each value the recording rule replaces — found by the core, or handed
// by a gateway that replaced it itself — is recorded as its keyed digest
// under the session tenant's key, one per value, each once per entry;
// the caller's payload keeps no value once recorded.
func TestReplacedValuesRecordKeyedDigests(t *testing.T) {
	b := startBus(t, true)
	keys, err := piikeys.Open(t.Context(), b.js, 1)
	if err != nil {
		t.Fatal(err)
	}
	g := newGateway(t, b.em, func(c *gateway.Config) { c.Keys = keys })
	const card, card2, email = "4556 7375 8689 9855", "4111-1111-1111-1111", "canary.gw@example.org"
	s := g.Session(events.Target{Kind: "ssh", Name: "bastion"})
	s.Authenticated(alice)
	// A value the gateway replaced itself (a SQL literal, a parameter).
	given := gateway.Found("/parameters/values/0", []gateway.Finding{{Detector: "credit_card", Value: card2}, {Detector: "credit_card", Value: "4111111111111111"}})
	payload := map[string]any{
		"statement": "pay " + card + " then " + strings.ReplaceAll(card, " ", "-") + " and " + card2 + "; mail " + email,
		email:       "x",
	}
	gateway.AddRedactions(payload, given...)
	if _, err := s.Record(t.Context(), events.CommandExecuted, payload); err != nil {
		t.Fatal(err)
	}
	if dump := fmt.Sprintf("%#v", payload[gateway.RedactedKey]); strings.Contains(dump, card2) || strings.Contains(dump, "4111111111111111") {
		t.Errorf("the caller's payload still holds a value it handed: %s", dump)
	}
	// Another tenant's session: the same value, another digest.
	s2 := g.Session(events.Target{Kind: "ssh", Name: "bastion"})
	s2.Authenticated(gateway.Identity{Actor: alice.Actor, Tenant: "globex"})
	if _, err := s2.Record(t.Context(), events.CommandExecuted, map[string]any{"statement": "pay " + card}); err != nil {
		t.Fatal(err)
	}
	st := s.Stream("stdout", gateway.StreamConfig{FlushAfter: time.Hour})
	st.Write([]byte("card: " + card + "\n"))
	st.Close()

	acme, _ := keys.TenantKey(t.Context(), "acme")
	globex, _ := keys.TenantKey(t.Context(), "globex")
	d := func(key []byte, v string) string { return piikeys.MatchDigest(key, v) }
	got := map[string][]string{}
	for _, e := range b.stored(t, 3) {
		for _, r := range redactedOf(t, e) {
			got[e.Event.Tenant+" "+string(e.Event.Type)+" "+r.Path+" "+r.Detector+" "+fmt.Sprint(r.Count)] = r.Matches
		}
	}
	want := map[string][]string{
		// card twice (spaces, dashes: one digest), then card2.
		"acme command.executed /statement credit_card 3":           {d(acme, card), d(acme, card2)},
		"acme command.executed /statement email 1":                 {d(acme, email)},
		"acme command.executed /" + "[REDACTED:email] email 1":     {d(acme, email)},
		"acme command.executed /parameters/values/0 credit_card 2": {d(acme, card2)},
		"globex command.executed /statement credit_card 1":         {d(globex, card)},
		"acme session.output /data credit_card 1":                  {d(acme, card)},
	}
	for k, w := range want {
		if !slices.Equal(got[k], w) {
			t.Errorf("%s: matches %v, want %v", k, got[k], w)
		}
		delete(got, k)
	}
	if len(got) > 0 {
		t.Errorf("unexpected entries: %v", got)
	}
	if d(acme, card) == d(globex, card) {
		t.Error("two tenants' keys give one digest")
	}
}

// A key store the gateway cannot read refuses the record of a replaced
// value (it would lack what finds it), unless the gateway fails open: then
// it is recorded without digests. Events with nothing replaced never ask.
func TestUnreadableSearchKey(t *testing.T) {
	b := startBus(t, true)
	other := natstest.Start(t) // the key store's bus, stopped below
	_, kjs := other.Connect(t)
	keys, err := piikeys.Open(t.Context(), kjs, 1)
	if err != nil {
		t.Fatal(err)
	}
	other.Shutdown()
	for _, failOpen := range []bool{false, true} {
		g := newGateway(t, b.em, func(c *gateway.Config) { c.Keys = keys; c.FailOpen = failOpen })
		s := g.Session(events.Target{Kind: "ssh"})
		s.Authenticated(alice)
		if _, err := s.Record(t.Context(), events.CommandExecuted, map[string]any{"statement": "ls"}); err != nil {
			t.Errorf("fail open %v: nothing replaced, yet: %v", failOpen, err)
		}
		_, err := s.Record(t.Context(), events.CommandExecuted, map[string]any{"statement": "pay 4556 7375 8689 9855"})
		if !failOpen && !errors.Is(err, gateway.ErrNotRecorded) {
			t.Errorf("fail closed: %v; want ErrNotRecorded", err)
		}
		if failOpen && err != nil {
			t.Errorf("fail open: %v", err)
		}
	}
	got := b.stored(t, 3)
	if red := redactedOf(t, got[2]); len(red) != 1 || red[0].Count != 1 || red[0].Matches != nil {
		t.Errorf("failing open: redacted %+v; want the count without matches", red)
	}
}

// The digests of docs/FORMAT.md §1.5 under the key of 32 bytes 0x07, as
// the document lists them; each was computed independently with
// Python's hmac module.
func TestKeyedDigestVectors(t *testing.T) {
	k := bytes.Repeat([]byte{7}, 32)
	for _, c := range []struct{ got, want string }{
		{piikeys.MatchDigest(k, "4111 1111 1111 1111"), "hmac:11ced3e756f6471f5c1c0f7fa4ca58789cffffb1573aa3e87d6add8b9fd1a2fa"},
		{piikeys.MatchDigest(k, "4111-1111-1111-1111"), "hmac:11ced3e756f6471f5c1c0f7fa4ca58789cffffb1573aa3e87d6add8b9fd1a2fa"},
		{piikeys.MatchDigest(k, "4111:1111:1111:1111"), "hmac:11ced3e756f6471f5c1c0f7fa4ca58789cffffb1573aa3e87d6add8b9fd1a2fa"},
		{piikeys.MatchDigest(k, "4111|1111|1111|1111"), "hmac:11ced3e756f6471f5c1c0f7fa4ca58789cffffb1573aa3e87d6add8b9fd1a2fa"},
		{piikeys.MatchDigest(k, "4111·1111·1111·1111"), "hmac:11ced3e756f6471f5c1c0f7fa4ca58789cffffb1573aa3e87d6add8b9fd1a2fa"},
		{piikeys.MatchDigest(k, "4111,1111,1111,1111"), "hmac:11ced3e756f6471f5c1c0f7fa4ca58789cffffb1573aa3e87d6add8b9fd1a2fa"},
		{piikeys.MatchDigest(k, "4111_1111_1111_1111"), "hmac:11ced3e756f6471f5c1c0f7fa4ca58789cffffb1573aa3e87d6add8b9fd1a2fa"},
		{piikeys.MatchDigest(k, "\u0664\u0661\u0661\u0661\u0661\u0661\u0661\u0661\u0661\u0661\u0661\u0661\u0661\u0661\u0661\u0661"), "hmac:11ced3e756f6471f5c1c0f7fa4ca58789cffffb1573aa3e87d6add8b9fd1a2fa"},
		{piikeys.MatchDigest(k, "\uff14\uff11\uff11\uff11 1111 1111 1111"), "hmac:11ced3e756f6471f5c1c0f7fa4ca58789cffffb1573aa3e87d6add8b9fd1a2fa"},
		{piikeys.MatchDigest(k, "4111\u200b1111\u200b1111\u200b1111"), "hmac:11ced3e756f6471f5c1c0f7fa4ca58789cffffb1573aa3e87d6add8b9fd1a2fa"},
		{piikeys.MatchDigest(k, "4\u03011\u03011\u03011111111111111"), "hmac:11ced3e756f6471f5c1c0f7fa4ca58789cffffb1573aa3e87d6add8b9fd1a2fa"},
		{piikeys.MatchDigest(k, "DE89 3704 0044 0532 0130 00"), "hmac:a17ac58fc9142d82b9e41a6bff53bd20055c321c73eae849bd0ec49456ecdec7"},
		{piikeys.MatchDigest(k, "de89-3704-0044-0532-0130-00"), "hmac:a17ac58fc9142d82b9e41a6bff53bd20055c321c73eae849bd0ec49456ecdec7"},
		{piikeys.MatchDigest(k, "jane\u200b@example.com"), "hmac:494ed9895d5d7f0bef132e4a591019d685e262710a049541fbfda7117f7bb7b6"},
		{piikeys.MatchDigest(k, "Jane@Example.com"), "hmac:494ed9895d5d7f0bef132e4a591019d685e262710a049541fbfda7117f7bb7b6"},
		{gateway.KeyedDigest(k, gateway.ParamLabel, []byte("\x00\x00\x00\x07")), "hmac:e6818d781b6b88534a87a9eb5aa6fd60a1de1699b489f6ac9b5c2aff7615c7bb"},
		{gateway.KeyedDigest(k, gateway.BodyLabel, []byte(`{"card":"4111 1111 1111 1111"}`)), "hmac:3a677961e621fb2d858a62f78b453589cc833754ed7829e1126d0684bd183c95"},
		{gateway.KeyedDigest(k, gateway.ResponseLabel, []byte("D\x00\x00\x00\x1a\x00\x01\x00\x00\x00\x104012888888881881")), "hmac:0adf591af8c023b09f2755929de6b2b3d1e1560bb07c4d0425c6e1f602dff5e9"},
		{sum(k, gateway.CopyLabel, "1\tann@", "example.com\n"), "hmac:774c1cda56f1891be0e686ef32cf6e4d6d5fb3ef45b997e6952bd0a429023020"},
	} {
		if c.got != c.want {
			t.Errorf("digest %s, want %s", c.got, c.want)
		}
	}
}

// sum digests parts through a KeyedSum, as a gateway digests content
// that arrives in pieces.
func sum(key []byte, label string, parts ...string) string {
	s := gateway.NewKeyedSum(key, label)
	for _, p := range parts {
		s.Write([]byte(p))
	}
	return s.Digest()
}
